"""The case console SIGKILLed while it applies alert events, and started again: every event is
applied exactly once (the cases, their alerts and their history equal those of an independent
run of the same events through the store), none is lost, none counted twice.

A real `cems console serve` on the shared Kafka (a namespace of its own) and PostgreSQL (a
database of its own). The first wave of events is on the topic before it starts; it is killed
as soon as it has stored its first positions (mid-wave, with batches in flight); the second
wave arrives while it is down; the restarted console must end exactly where the reference does.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cems.infra.settings import InfraSettings
from cems.topics import ensure_topics
from console import db, migrate
from console.store import CaseStore, Record
from contracts.alerts import AlertEvent, AlertEventType, AlertKind
from contracts.registry import load_registry
from contracts.topics import topics
from rules.cases.policy import CasePolicy
from rules.notify.routing import directory
from tests.integration.helpers import CemsProcess, free_port, infra_env
from tests.integration.notify_rig import alert, publish, wait_for

pytestmark = pytest.mark.integration
REGISTRY = load_registry()
T0 = datetime(2026, 10, 1, tzinfo=UTC)
KINDS = (AlertKind.EXCEEDANCE, AlertKind.BYPASS, AlertKind.FLATLINE, AlertKind.DATA_GAP, AlertKind.EARLY_WARNING)


def episodes(first: int, count: int) -> list[AlertEvent]:
    """For every stack and kind, episodes ``first``.. of opened, updated, resolved (data gaps
    of 5 h, so each opens or joins a case when it resolves)."""
    events = []
    for _, stack in REGISTRY.stacks():
        for kind in KINDS:
            parameter = None if kind is AlertKind.DATA_GAP else "so2"
            for n in range(first, first + count):
                start = T0 + timedelta(hours=6 * n)
                opened = alert(stack.id, parameter, kind=kind, start=start)
                end = start + timedelta(hours=5)
                events += [
                    opened,
                    opened.model_copy(update={"event": AlertEventType.UPDATED, "at": start + timedelta(hours=1)}),
                    opened.model_copy(update={"event": AlertEventType.RESOLVED, "at": end, "end": end}),
                ]
    return events


def snapshot(store: CaseStore) -> dict[tuple[str, str], tuple[object, ...]]:
    """Per (stack, kind): its cases' states, open alerts, recurrences and history actions."""
    out: dict[tuple[str, str], list[tuple[object, ...]]] = defaultdict(list)
    with store.session() as s:
        for case in s.scalars(select(db.Case).order_by(db.Case.opened_at)):
            history = s.scalars(
                select(db.CaseHistory.action).where(db.CaseHistory.case_id == case.id).order_by(db.CaseHistory.id)
            ).all()
            alerts = s.scalar(select(func.count()).select_from(db.Alert).where(db.Alert.case_id == case.id))
            out[(case.stack, case.kind)].append(
                (case.state, tuple(case.open_alerts), case.recurrences, case.last_occurrence_at, alerts, tuple(history))
            )
    return {k: tuple(v) for k, v in out.items()}


def stored_events(store: CaseStore) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(db.AlertEventRow)) or 0


def test_console_sigkill_mid_stream_applies_every_event_once(
    infra: InfraSettings, postgres_url: str, unique: str, tmp_path: Path
) -> None:
    namespace = f"ck{unique}"
    topic_set = topics(namespace)
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    wave1, wave2 = episodes(0, 12), episodes(12, 4)
    publish(infra.kafka_bootstrap, topic_set.alerts.name, wave1)

    engine = db.make_engine(postgres_url)
    migrate.upgrade(engine)
    store = CaseStore(engine, CasePolicy(), directory(REGISTRY))
    console = CemsProcess(
        ["console", "serve", "--port", str(free_port()), "--database-url", postgres_url, "--namespace", namespace],
        tmp_path / "console.log",
        b"console on http",
        env=infra_env(infra),
    )
    try:
        console.start()
        deadline = time.monotonic() + 60
        while not sum(store.positions(topic_set.alerts.name).values()) and time.monotonic() < deadline:
            time.sleep(0.01)
        console.kill()
        at_kill = sum(store.positions(topic_set.alerts.name).values())
        assert 0 < at_kill < len(wave1), f"the kill did not land mid-wave ({at_kill} of {len(wave1)})"
        publish(infra.kafka_bootstrap, topic_set.alerts.name, wave2)
        console.start()
        total = len(wave1) + len(wave2)
        wait_for(lambda: sum(store.positions(topic_set.alerts.name).values()) == total, 120, "all events applied",
                 console.tail)  # fmt: skip
    finally:
        console.stop()

    reference = CaseStore(db.make_engine(f"sqlite:///{tmp_path / 'reference.db'}"), CasePolicy(), directory(REGISTRY))
    migrate.upgrade(reference.engine)
    everything = wave1 + wave2
    for i in range(0, len(everything), 1000):
        reference.ingest(
            "reference",
            [Record(0, i + j, e.model_dump_json().encode()) for j, e in enumerate(everything[i : i + 1000])],
        )
    got, want = snapshot(store), snapshot(reference)
    case_kinds = len(KINDS) - 1  # early warnings open no case
    assert len(want) == len(list(REGISTRY.stacks())) * case_kinds
    assert got == want
    assert stored_events(store) == stored_events(reference) == len(everything) * case_kinds // len(KINDS)
    print(f"killed after {at_kill} of {len(wave1)} events; {len(everything)} events, {len(want)} cases, exactly once")
    engine.dispose()
    reference.engine.dispose()
