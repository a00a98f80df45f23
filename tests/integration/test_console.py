"""The case console against the real Kafka and PostgreSQL: cases from the alerts topic exactly
once across restarts and replays, the audit trail the database refuses to edit, migrations that
match the models, acknowledgements onto the topic, and who may see and do what over HTTP."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import DBAPIError

from cems.infra.settings import InfraSettings
from cems.topics import ensure_topics
from console import db, migrate
from console.auth import LoginLimit
from console.demo import demo_accounts, ensure_demo_users
from console.kafka import AlertFollower, KafkaAcknowledger
from console.store import CaseStore
from console.web import ConsoleContext, create_app
from contracts.alerts import Acknowledgement, AlertEvent, AlertEventType, AlertKind
from contracts.registry import load_registry
from contracts.topics import topics
from rules.cases.policy import CasePolicy
from rules.notify.routing import directory

from .notify_rig import alert, publish, wait_for

pytestmark = pytest.mark.integration
PASSWORD = "demo-password-42"
REGISTRY = load_registry()
T0 = datetime(2026, 11, 3, 6, tzinfo=UTC)


@pytest.fixture
def store(postgres_url: str) -> Iterator[CaseStore]:
    engine = db.make_engine(postgres_url)
    migrate.upgrade(engine)
    yield CaseStore(engine, CasePolicy(), directory(REGISTRY))
    engine.dispose()


def _stacks(n: int) -> list[str]:
    return [stack.id for _, stack in REGISTRY.stacks()][:n]


def _events() -> list[AlertEvent]:
    """Six stacks: an exceedance opened, updated and resolved on each; a second episode on
    two of them; an early warning (opens nothing); a short data gap (opens nothing)."""
    events: list[AlertEvent] = []
    for stack in _stacks(6):
        opened = alert(stack, start=T0)
        events += [
            opened,
            opened.model_copy(update={"event": AlertEventType.UPDATED, "at": T0 + timedelta(hours=1)}),
            opened.model_copy(update={"event": AlertEventType.RESOLVED, "at": T0 + timedelta(hours=2),
                                      "end": T0 + timedelta(hours=2)}),
        ]  # fmt: skip
    for stack in _stacks(2):
        events.append(alert(stack, start=T0 + timedelta(days=1)))
    events.append(alert(_stacks(1)[0], kind=AlertKind.EARLY_WARNING, start=T0))
    gap = alert(_stacks(1)[0], None, kind=AlertKind.DATA_GAP, start=T0)
    events += [gap, gap.model_copy(update={"event": AlertEventType.RESOLVED, "at": T0 + timedelta(minutes=30),
                                           "end": T0 + timedelta(minutes=30)})]  # fmt: skip
    return events


def _counts(store: CaseStore) -> tuple[int, int, int]:
    with store.session() as s:
        return (
            s.scalar(select(func.count()).select_from(db.Case)) or 0,
            s.scalar(select(func.count()).select_from(db.CaseHistory)) or 0,
            s.scalar(select(func.count()).select_from(db.AlertEventRow)) or 0,
        )


def _follow_to_end(store: CaseStore, bootstrap: str, topic: str, end: int) -> AlertFollower:
    follower = AlertFollower(store, bootstrap, topic)
    follower._assign()
    wait_for(lambda: (follower.poll_once(0.2), sum(store.positions(topic).values()) >= end)[1], 30, "follow to end")
    return follower


def test_cases_from_the_alerts_topic_exactly_once(store: CaseStore, infra: InfraSettings, unique: str) -> None:
    topic_set = topics(f"c{unique}")
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    events = _events()
    publish(infra.kafka_bootstrap, topic_set.alerts.name, events)
    follower = _follow_to_end(store, infra.kafka_bootstrap, topic_set.alerts.name, len(events))
    assert follower.totals.events == len(events) and follower.totals.duplicates == 0
    cases, history, stored = _counts(store)
    # six exceedance cases; the second episodes join the two open ones; nothing else opens one
    assert cases == 6
    assert history == 6 + 2
    assert stored == len(events) - 1  # the early warning is not a case kind
    with store.session() as s:
        joined = s.scalars(select(db.Case).where(db.Case.stack.in_(_stacks(2)))).all()
        assert all(len(c.open_alerts) == 1 for c in joined)
        gap_alert = s.scalar(select(db.Alert).where(db.Alert.kind == "data_gap"))
        assert gap_alert is not None and gap_alert.case_id is None and gap_alert.state == "resolved"
    follower.stop()

    # a restart resumes after the stored positions: the same events again change nothing
    publish(infra.kafka_bootstrap, topic_set.alerts.name, events[:5])
    again = _follow_to_end(store, infra.kafka_bootstrap, topic_set.alerts.name, len(events) + 5)
    assert again.totals.events == 5 and again.totals.duplicates == 5
    assert _counts(store) == (cases, history, stored)
    again.stop()

    # a replay of the whole topic from the beginning (positions lost) changes nothing either
    with store.session() as s:
        s.execute(delete(db.ConsumerOffset))
    replay = _follow_to_end(store, infra.kafka_bootstrap, topic_set.alerts.name, len(events) + 5)
    assert replay.totals.duplicates == replay.totals.events - 1  # all but the early warning
    assert _counts(store) == (cases, history, stored)
    replay.stop()


def test_a_long_data_gap_opens_a_case_when_it_has_lasted_long_enough(store: CaseStore) -> None:
    from console.store import Record

    gap = alert(_stacks(1)[0], None, kind=AlertKind.DATA_GAP, start=T0)
    store.ingest("t", [Record(0, 0, gap.model_dump_json().encode())])
    assert store.sweep(T0 + timedelta(hours=3, minutes=59)) == 0
    assert _counts(store)[0] == 0
    assert store.sweep(T0 + timedelta(hours=4)) == 1
    assert _counts(store)[0] == 1
    assert store.sweep(T0 + timedelta(hours=5)) == 0  # already in its case


def test_history_is_append_only_in_the_database(store: CaseStore) -> None:
    from console.store import Record

    store.ingest("t", [Record(0, 0, alert(_stacks(1)[0]).model_dump_json().encode())])
    for statement in ("UPDATE case_history SET note = 'edited'", "DELETE FROM case_history"):
        with pytest.raises(DBAPIError, match="append-only"), store.session() as s:
            s.execute(text(statement))
    assert _counts(store)[1] == 1


def test_migrations_match_the_models_and_go_down_and_up(store: CaseStore) -> None:
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), db.Base.metadata) == []
    assert migrate.current(store.engine) == migrate.head()
    migrate.downgrade(store.engine, "base")
    assert migrate.current(store.engine) is None
    migrate.upgrade(store.engine)
    assert migrate.current(store.engine) == migrate.head()


def test_acknowledgements_go_onto_the_topic(infra: InfraSettings, unique: str) -> None:
    import asyncio

    topic_set = topics(f"c{unique}")
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    ack = KafkaAcknowledger(infra.kafka_bootstrap, topic_set.acknowledgements.name)
    asyncio.run(ack(["a-1", "a-2"], "jy-power-1-s1", "officer-1", "on it"))
    consumer = Consumer({"bootstrap.servers": infra.kafka_bootstrap, "group.id": f"t{unique}"})
    parts = consumer.list_topics(topic_set.acknowledgements.name, timeout=10).topics[topic_set.acknowledgements.name]
    consumer.assign([TopicPartition(topic_set.acknowledgements.name, p, 0) for p in parts.partitions])
    got: list[Acknowledgement] = []
    deadline = time.monotonic() + 20
    while len(got) < 2 and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            got.append(Acknowledgement.model_validate_json(m.value()))
    consumer.close()
    assert sorted(a.alert_id for a in got) == ["a-1", "a-2"]
    assert {(a.stack, a.officer, a.note) for a in got} == {("jy-power-1-s1", "officer-1", "on it")}


# -- who may see and do what, over HTTP --------------------------------------------------


def _login(client: TestClient, username: str, password: str = PASSWORD) -> int:
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    return client.post(
        "/login", data={"username": username, "password": password, "csrf": csrf.group(1)}, follow_redirects=False
    ).status_code


def _csrf(client: TestClient, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


@pytest.fixture
def web(store: CaseStore) -> Iterator[tuple[CaseStore, TestClient, dict[str, int]]]:
    from console.store import Record

    ensure_demo_users(store, REGISTRY, PASSWORD)
    enterprises = REGISTRY.enterprises
    first, other = enterprises[0], next(e for e in enterprises if e.district != enterprises[0].district)
    store.ingest(
        "t",
        [
            Record(0, 0, alert(first.stacks[0].id).model_dump_json().encode()),
            Record(0, 1, alert(other.stacks[0].id).model_dump_json().encode()),
        ],
    )
    with store.session() as s:
        ids = {c.enterprise: c.id for c in s.scalars(select(db.Case))}
    ctx = ConsoleContext(store=store, session_lifetime=timedelta(hours=1), login_limit=LoginLimit(3, 900))
    with TestClient(create_app(ctx)) as client:
        yield store, client, {"mine": ids[first.id], "other": ids[other.id]}


def _officer_of(district: str) -> str:
    return next(
        u for u, role, districts, _, _ in demo_accounts(REGISTRY) if role.value == "officer" and district in districts
    )


def test_an_enterprise_sees_only_its_own_cases(web: tuple[CaseStore, TestClient, dict[str, int]]) -> None:
    _, client, ids = web
    me = REGISTRY.enterprises[0]
    assert _login(client, me.id) == 303
    listing = client.get("/cases").text
    assert f'href="/cases/{ids["mine"]}"' in listing and f'href="/cases/{ids["other"]}"' not in listing
    assert client.get(f"/cases/{ids['mine']}").status_code == 200
    other = client.get(f"/cases/{ids['other']}")
    assert other.status_code == 404
    csrf = _csrf(client, f"/cases/{ids['mine']}")
    # acting on another's case: 404 as if it did not exist; on its own, only responses
    assert client.post(f"/cases/{ids['other']}/comment", data={"csrf": csrf, "note": "x"}).status_code == 404
    refused = client.post(f"/cases/{ids['mine']}/verify", data={"csrf": csrf}, follow_redirects=False)
    assert "role_enterprise_cannot_verify" in refused.headers["location"]


def test_an_officer_cannot_act_outside_their_district(web: tuple[CaseStore, TestClient, dict[str, int]]) -> None:
    store, client, ids = web
    assert _login(client, _officer_of(REGISTRY.enterprises[0].district)) == 303
    assert client.get(f"/cases/{ids['other']}").status_code == 404
    csrf = _csrf(client, f"/cases/{ids['mine']}")
    assert client.post(f"/cases/{ids['other']}/comment", data={"csrf": csrf, "note": "x"}).status_code == 404
    with store.session() as s:
        notes = s.scalars(select(db.CaseHistory.note).where(db.CaseHistory.case_id == ids["other"])).all()
    assert "x" not in notes
    ok = client.post(
        f"/cases/{ids['mine']}/comment", data={"csrf": csrf, "note": "called the plant"}, follow_redirects=False
    )
    assert "comment" in ok.headers["location"] and "refused" not in ok.headers["location"]


def test_forms_without_the_session_csrf_token_are_refused(web: tuple[CaseStore, TestClient, dict[str, int]]) -> None:
    store, client, ids = web
    assert _login(client, "chief") == 303
    for token in ("", "forged"):
        response = client.post(f"/cases/{ids['mine']}/comment", data={"csrf": token, "note": "forged"})
        assert response.status_code == 403
    with store.session() as s:
        assert "forged" not in s.scalars(select(db.CaseHistory.note)).all()


def test_logins_are_rate_limited_and_sessions_end(web: tuple[CaseStore, TestClient, dict[str, int]]) -> None:
    _, client, _ = web
    assert [_login(client, "chief", "wrong-password-x") for _ in range(3)] == [401, 401, 401]
    assert _login(client, "chief") == 429  # the right password, but too many failures
    assert client.get("/cases", follow_redirects=False).status_code == 303  # not logged in
