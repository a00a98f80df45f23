"""The console's store, report, accounts and charts on an embedded SQLite database (the
default for ./scripts/run.sh); the same code runs on PostgreSQL in tests/integration."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from console import auth, db, migrate, report
from console.charts import svg_chart
from console.evidence import Point
from console.store import CaseStore, Record
from console.web import _local, _parse_deadline
from contracts.alerts import AlertEvent, AlertEventType, AlertKind, Severity, alert_id, fingerprint
from contracts.registry import load_registry
from rules.cases.access import Actor, Role
from rules.cases.machine import Action, CaseState, Command, Refusal, Step
from rules.cases.policy import CasePolicy, KindPolicy
from rules.notify.routing import directory

REGISTRY = load_registry()
STACKS = [(e, s) for e, s in REGISTRY.stacks()]
CHIEF = Actor("chief", Role.SUPERVISOR)
NOV = datetime(2026, 11, 1, tzinfo=report.BEIJING)
OTHER = next(i for i, (e, _) in enumerate(STACKS) if e.id != STACKS[0][0].id)  # a stack of another enterprise


def event(stack_no: int, start: datetime, what: AlertEventType = AlertEventType.OPENED, **update: object) -> AlertEvent:
    enterprise, stack = STACKS[stack_no]
    fp = fingerprint(stack.id, "so2", AlertKind.EXCEEDANCE)
    e = AlertEvent(
        event=what, kind=AlertKind.EXCEEDANCE, severity=Severity.CRITICAL, alert_id=alert_id(fp, start),
        fingerprint=fp, enterprise=enterprise.id, stack=stack.id, parameter="so2", start=start,
        end=start + timedelta(hours=1) if what is AlertEventType.RESOLVED else None,
        at=start + timedelta(hours=1) if what is AlertEventType.RESOLVED else start,
        reason="so2 above its limit", evidence={},
    )  # fmt: skip
    return e.model_copy(update=update)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CaseStore]:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'console.db'}")
    migrate.upgrade(engine)
    policy = CasePolicy(kinds={AlertKind.EXCEEDANCE: KindPolicy(verify_days=2, response_days=3)})
    store = CaseStore(engine, policy, directory(REGISTRY))
    with store.session() as s:
        auth.add_user(s, username="chief", password="long-enough-1", role=Role.SUPERVISOR, now=datetime.now(UTC))
    yield store
    engine.dispose()


def feed(store: CaseStore, *events: AlertEvent) -> None:
    start = sum(store.positions("alerts").values())
    store.ingest("alerts", [Record(0, start + i, e.model_dump_json().encode()) for i, e in enumerate(events)])


def act(store: CaseStore, case_id: int, command: Command, now: datetime) -> Step:
    result = store.act(CHIEF, case_id, command, now)
    assert isinstance(result, Step), result
    return result


def test_a_case_through_its_whole_life_and_the_monthly_report(store: CaseStore) -> None:
    t = datetime(2026, 11, 3, 1, tzinfo=UTC)
    with store.session() as s:
        auth.add_user(s, username="officer-x", password="long-enough-1", role=Role.OFFICER,
                      districts=[STACKS[0][0].district], now=t)  # fmt: skip
    feed(store, event(0, t), event(OTHER, t))
    with store.session() as s:
        ids = [c.id for c in s.scalars(select(db.Case).order_by(db.Case.id))]
    first, second = ids
    act(store, first, Command(Action.ASSIGN, "chief", assignee="officer-x"), t + timedelta(hours=1))
    act(store, first, Command(Action.SET_DEADLINE, "chief", deadline=t + timedelta(days=2)), t + timedelta(hours=2))
    feed(store, event(0, t, AlertEventType.RESOLVED))
    act(store, first, Command(Action.RESPOND, "chief", note="new bags in the filter"), t + timedelta(days=1))
    refused = store.act(CHIEF, first, Command(Action.VERIFY, "chief"), t + timedelta(days=2))
    assert isinstance(refused, Refusal) and refused.reason == "verification_window_not_elapsed"
    closed = act(store, first, Command(Action.VERIFY, "chief"), t + timedelta(days=3))
    assert closed.case.state is CaseState.CLOSED
    # the second case: assigned, ordered, never answered: overdue at the month's end
    act(store, second, Command(Action.ASSIGN, "chief", assignee="chief"), t + timedelta(hours=1))
    act(store, second, Command(Action.SET_DEADLINE, "chief", deadline=t + timedelta(days=1)), t + timedelta(hours=2))
    # a recurrence on the first stack after its case closed opens a new case
    feed(store, event(0, t + timedelta(days=10)))
    with store.session() as s:
        history = s.scalars(select(db.CaseHistory).where(db.CaseHistory.case_id == first)).all()
        assert [h.action for h in history] == ["open", "assign", "set_deadline", "respond", "verify"]
        assert [h.to_state for h in history] == ["new", "assigned", "rectifying", "verifying", "closed"]
        assert s.scalar(select(db.Case).where(db.Case.id == 3)) is not None
        rows = report.monthly(s, CHIEF, NOV, datetime(2026, 12, 5, tzinfo=UTC))
    total = rows[-1]
    assert (total.opened, total.closed, total.verified, total.overdue) == (3, 1, 1, 1)
    assert total.mean_days_to_close == 3.0
    by_enterprise = {r.enterprise: r for r in rows[:-1]}
    assert by_enterprise[STACKS[0][0].id].opened == 2
    parsed = list(csv.reader(io.StringIO(report.to_csv(rows).decode("utf-8-sig"))))
    assert parsed[0][0] == "District" and parsed[-1][3:7] == ["3", "1", "1", "1"]
    sheet = load_workbook(io.BytesIO(report.to_xlsx(rows, "2026-11"))).active
    assert sheet is not None and sheet.cell(row=len(rows) + 1, column=4).value == 3


def test_recurrence_while_verifying_reopens_and_counts_in_the_report(store: CaseStore) -> None:
    t = datetime(2026, 11, 3, 1, tzinfo=UTC)
    feed(store, event(0, t))
    act(store, 1, Command(Action.ASSIGN, "chief", assignee="chief"), t)
    act(store, 1, Command(Action.SET_DEADLINE, "chief", deadline=t + timedelta(days=2)), t + timedelta(minutes=1))
    act(store, 1, Command(Action.RESPOND, "chief", note="fixed"), t + timedelta(hours=5))
    feed(store, event(0, t + timedelta(days=1)))
    with store.session() as s:
        case = s.get_one(db.Case, 1)
        assert (case.state, case.recurrences) == ("rectifying", 1)
        rows = report.monthly(s, CHIEF, NOV, datetime(2026, 11, 20, tzinfo=UTC))
    assert rows[-1].recurrences == 1 and rows[-1].opened == 1


def test_a_replayed_batch_changes_nothing(store: CaseStore) -> None:
    t = datetime(2026, 11, 3, 1, tzinfo=UTC)
    events = [
        event(0, t),
        event(0, t, AlertEventType.UPDATED, at=t + timedelta(hours=1)),
        event(0, t, AlertEventType.RESOLVED),
    ]
    feed(store, *events)
    stats = store.ingest("alerts", [Record(1, i, e.model_dump_json().encode()) for i, e in enumerate(events)])
    assert (stats.events, stats.duplicates, stats.opened) == (3, 3, 0)
    with store.session() as s:
        assert len(s.scalars(select(db.CaseHistory)).all()) == 1
        assert s.get_one(db.Case, 1).open_alerts == []


def test_accounts_passwords_and_sessions(store: CaseStore) -> None:
    now = datetime(2026, 11, 3, tzinfo=UTC)
    with store.session() as s:
        with pytest.raises(auth.AccountError, match="password: at least 10"):
            auth.add_user(s, username="x", password="short", role=Role.SUPERVISOR, now=now)
        with pytest.raises(ValueError, match="has no district"):
            auth.add_user(s, username="y", password="long-enough-1", role=Role.OFFICER, now=now)
        with pytest.raises(auth.AccountError, match="username"):
            auth.add_user(s, username="a b", password="long-enough-1", role=Role.SUPERVISOR, now=now)
        user = s.scalars(select(db.User).where(db.User.username == "chief")).one()
        assert user.password_hash.startswith("$argon2id$") and "long-enough-1" not in user.password_hash
        with pytest.raises(auth.AccountError, match="exists already"):
            auth.add_user(s, username="chief", password="long-enough-1", role=Role.SUPERVISOR, now=now)
        assert auth.authenticate(s, "chief", "long-enough-1", "10.0.0.1", now) is not None
        assert auth.authenticate(s, "chief", "wrong", "10.0.0.1", now) is None
        assert auth.authenticate(s, "nobody", "wrong", "10.0.0.1", now) is None
        limit = auth.LoginLimit(max_failures=2, window_s=60)
        assert auth.login_blocked(s, "other", "10.0.0.1", now, limit)  # two failures from that address
        assert not auth.login_blocked(s, "other", "10.0.0.2", now, limit)
        assert not auth.login_blocked(s, "other", "10.0.0.1", now + timedelta(seconds=61), limit)
        token, web = auth.new_session(s, user, now, timedelta(hours=1))
        assert web.token_hash != token and auth.find_session(s, token, now) is web
        assert auth.find_session(s, token, now + timedelta(hours=1)) is None
        assert auth.csrf_ok(web, web.csrf_token) and not auth.csrf_ok(web, "x") and not auth.csrf_ok(None, "x")


def test_charts_and_form_parsing() -> None:
    t = datetime(2026, 11, 3, tzinfo=UTC)
    svg = svg_chart([Point(t + timedelta(hours=i), 10.0 * i) for i in range(5)], limit=35, unit="mg/m³")
    assert svg.count(",") == 5 and 'class="limit"' in svg and "limit 35" in svg
    assert "no data" in svg_chart([], limit=None, unit="mg/m³")
    assert _parse_deadline("2026-12-01") == datetime(2026, 12, 1, 15, 59, tzinfo=UTC)  # 23:59 Beijing
    assert _parse_deadline("2026-12-01T08:00+00:00") == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert _parse_deadline("tomorrow") is None
    assert [_local(u) for u in ("/cases?x=1", "//evil.example", "https://evil.example", "/\\evil")] == [
        "/cases?x=1", "/cases", "/cases", "/cases",
    ]  # fmt: skip


def test_electricity_and_emergency_alerts_open_cases_under_the_default_policy(tmp_path: Path) -> None:
    """The default case policy opens a case for treatment_off and emergency_noncompliance at once
    (an officer must act on both); the case names the facility."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'console.db'}")
    migrate.upgrade(engine)
    store = CaseStore(engine, CasePolicy(), directory(REGISTRY))
    start = datetime(2026, 12, 1, 2, tzinfo=UTC)
    events = [
        event(0, start).model_copy(update={"kind": kind, "parameter": facility, "alert_id": f"{kind.value}-1"})
        for kind, facility in (
            (AlertKind.TREATMENT_OFF, "jy-power-1-fgd1"),
            (AlertKind.EMERGENCY_NONCOMPLIANCE, "jy-power-1-boiler1"),
        )
    ]
    feed(store, *events)
    with store.session() as s:
        cases = {(c.kind, c.title) for c in s.scalars(select(db.Case))}
    engine.dispose()
    assert cases == {
        ("treatment_off", "#1 boiler stack: treatment off of jy-power-1-fgd1"),
        ("emergency_noncompliance", "#1 boiler stack: emergency noncompliance of jy-power-1-boiler1"),
    }
