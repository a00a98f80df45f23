"""The fleet's stack status (rules/fleet_status.py): the table of statuses, which alert makes
which, a stack's worst condition and its problem text, what is open, the windows, the ranking.

Expectations are written out here (the monitoring centre's order), not read from the module."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.alerts import AlertEvent, AlertEventType, AlertKind, Severity, alert_id, fingerprint
from contracts.reading import DataFlag
from rules.fleet_status import (
    ALERT_LOOKBACK_S,
    MAX_RANK,
    NORMAL,
    SEEN_LOOKBACK_S,
    STATUSES,
    Condition,
    FlagSample,
    StackRow,
    StackStatus,
    Status,
    alert_status,
    fleet_status,
    latest_flags,
    open_alerts,
    rank_fleet,
    stack_status,
    status_of_rank,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
Ev = AlertEventType
K = AlertKind

# -- the table --------------------------------------------------------------------------------------


def test_statuses_worst_first_with_rank_and_colour() -> None:
    got = [(s.value, s.rank, s.colour) for s in STATUSES]
    assert got == [
        ("exceeding", 7, "red"),
        ("bypass suspected", 6, "dark-red"),
        ("offline", 5, "purple"),
        ("early warning", 4, "orange"),
        ("suspect data", 3, "yellow"),
        ("data gap", 2, "blue"),
        ("marked", 1, "light-blue"),
        ("normal", 0, "green"),
    ]
    assert MAX_RANK == 7
    assert [status_of_rank(r) for r in range(7, -1, -1)] == list(STATUSES)
    assert [s.needs_attention for s in STATUSES] == [True] * 7 + [False]


KIND_TABLE = [
    # kind, on the whole stack, on a parameter
    (K.EXCEEDANCE, Status.EXCEEDING, Status.EXCEEDING),
    (K.BYPASS, Status.BYPASS_SUSPECTED, Status.BYPASS_SUSPECTED),
    (K.DATA_GAP, Status.OFFLINE, Status.DATA_GAP),
    (K.EARLY_WARNING, Status.EARLY_WARNING, Status.EARLY_WARNING),
    (K.SPIKE, Status.EARLY_WARNING, Status.EARLY_WARNING),
    (K.FLATLINE, Status.SUSPECT_DATA, Status.SUSPECT_DATA),
    (K.ZS_MISMATCH, Status.SUSPECT_DATA, Status.SUSPECT_DATA),
    (K.LIMIT_HUGGING, Status.SUSPECT_DATA, Status.SUSPECT_DATA),
    (K.INVALID_MARK, Status.MARKED, Status.MARKED),
    (K.TREATMENT_OFF, Status.BYPASS_SUSPECTED, Status.BYPASS_SUSPECTED),
    (K.EMERGENCY_NONCOMPLIANCE, Status.EXCEEDING, Status.EXCEEDING),
    (K.CONTROL_LATE_START, Status.SUSPECT_DATA, Status.SUSPECT_DATA),
    (K.CONTROL_EARLY_STOP, Status.SUSPECT_DATA, Status.SUSPECT_DATA),
    (K.CONTROL_UNDERPOWERED, Status.SUSPECT_DATA, Status.SUSPECT_DATA),
    (K.PRODUCTION_OFF_EMITTING, Status.SUSPECT_DATA, Status.SUSPECT_DATA),
]


@pytest.mark.parametrize(("kind", "on_stack", "on_parameter"), KIND_TABLE)
def test_each_alert_kind_gives_its_status(kind: AlertKind, on_stack: Status, on_parameter: Status) -> None:
    assert alert_status(kind, None) is on_stack
    assert alert_status(kind, "so2") is on_parameter


def test_every_alert_kind_is_in_the_table() -> None:
    assert {k for k, _, _ in KIND_TABLE} == set(AlertKind)


# -- one stack ----------------------------------------------------------------------------------------
C = Condition
STACK_CASES = [
    # open alerts, latest flags -> status, problem
    ([], {}, Status.NORMAL, "-"),
    ([], {"so2": DataFlag.NORMAL, "nox": DataFlag.NORMAL}, Status.NORMAL, "-"),
    ([C(K.EXCEEDANCE, "so2")], {}, Status.EXCEEDING, "exceedance so2"),
    ([C(K.BYPASS)], {}, Status.BYPASS_SUSPECTED, "bypass"),
    ([C(K.DATA_GAP)], {}, Status.OFFLINE, "data_gap"),
    ([C(K.SPIKE, "pm")], {}, Status.EARLY_WARNING, "spike pm"),
    ([C(K.EARLY_WARNING, "nox")], {}, Status.EARLY_WARNING, "early_warning nox"),
    ([C(K.ZS_MISMATCH, "so2")], {}, Status.SUSPECT_DATA, "zs_mismatch so2"),
    ([C(K.DATA_GAP, "nox")], {}, Status.DATA_GAP, "data_gap nox"),
    ([C(K.INVALID_MARK, "so2")], {}, Status.MARKED, "invalid_mark so2"),
    ([], {"so2": DataFlag.CALIBRATION}, Status.MARKED, "marked C so2"),
    # the worst condition wins, whatever the order
    ([C(K.DATA_GAP, "nox"), C(K.EXCEEDANCE, "so2"), C(K.BYPASS)], {"so2": DataFlag.FAULT},
     Status.EXCEEDING, "exceedance so2"),
    ([C(K.DATA_GAP), C(K.BYPASS)], {}, Status.BYPASS_SUSPECTED, "bypass"),
    ([C(K.EARLY_WARNING, "so2"), C(K.DATA_GAP)], {}, Status.OFFLINE, "data_gap"),
    ([C(K.DATA_GAP, "nox")], {"so2": DataFlag.MAINTENANCE}, Status.DATA_GAP, "data_gap nox"),
    # ties: the smallest problem text
    ([C(K.EXCEEDANCE, "so2"), C(K.EXCEEDANCE, "nox")], {}, Status.EXCEEDING, "exceedance nox"),
    ([C(K.FLATLINE, "so2"), C(K.ZS_MISMATCH, "nox"), C(K.LIMIT_HUGGING, "pm")], {},
     Status.SUSPECT_DATA, "flatline so2"),
    ([], {"so2": DataFlag.OVER_RANGE, "nox": DataFlag.CALIBRATION}, Status.MARKED, "marked C nox"),
    ([C(K.INVALID_MARK, "so2")], {"nox": DataFlag.CALIBRATION}, Status.MARKED, "invalid_mark so2"),
]  # fmt: skip


@pytest.mark.parametrize(("alerts", "flags", "status", "problem"), STACK_CASES)
def test_stack_status(alerts: list[Condition], flags: dict[str, DataFlag], status: Status, problem: str) -> None:
    got = stack_status(alerts, flags)
    assert got == StackStatus(status, problem)
    assert got.rank == status.rank
    assert stack_status(list(reversed(alerts)), dict(reversed(flags.items()))) == got


def test_every_status_is_reached_by_a_stack_case() -> None:
    assert {s for _, _, s, _ in STACK_CASES} == set(Status)
    assert stack_status([], {}) is NORMAL


# -- open alerts and the windows -----------------------------------------------------------------------
@dataclass(frozen=True)
class E:
    """An alert event as InfluxDB or the console holds it (only what the status reads)."""

    alert_id: str
    event: AlertEventType
    at: datetime
    stack: str = "s1"
    kind: AlertKind = K.EXCEEDANCE
    parameter: str | None = "so2"


def _open(*events: E, now: datetime = NOW) -> list[tuple[str, AlertEventType]]:
    return [(e.alert_id, e.event) for e in open_alerts(events, now)]


T = NOW - timedelta(hours=1)


def test_open_until_resolved_acknowledged_still_open() -> None:
    assert _open(E("a", Ev.OPENED, T)) == [("a", Ev.OPENED)]
    assert _open(E("a", Ev.OPENED, T), E("a", Ev.UPDATED, T + timedelta(minutes=5))) == [("a", Ev.UPDATED)]
    assert _open(E("a", Ev.OPENED, T), E("a", Ev.ACKNOWLEDGED, T + timedelta(minutes=5))) == [("a", Ev.ACKNOWLEDGED)]
    m1, m2 = T + timedelta(minutes=1), T + timedelta(minutes=2)
    assert _open(E("a", Ev.OPENED, T), E("a", Ev.ACKNOWLEDGED, m1), E("a", Ev.RESOLVED, m2)) == []
    # the next episode of the same condition is another alert
    assert _open(E("a", Ev.OPENED, T), E("a", Ev.RESOLVED, m1), E("b", Ev.OPENED, m2)) == [("b", Ev.OPENED)]


@pytest.mark.parametrize("other", [Ev.OPENED, Ev.UPDATED, Ev.ACKNOWLEDGED])
def test_resolved_is_last_of_events_at_the_same_second(other: AlertEventType) -> None:
    events = [E("a", Ev.RESOLVED, T), E("a", other, T)]
    assert _open(*events) == _open(*reversed(events)) == []
    # but a later event after a resolution (not emitted by the engine) is what the data says
    assert _open(E("a", Ev.RESOLVED, T), E("a", other, T + timedelta(seconds=1))) == [("a", other)]


@pytest.mark.parametrize(
    ("opened", "is_open"),
    [
        (NOW - timedelta(seconds=ALERT_LOOKBACK_S), True),  # the window's start is in it
        (NOW - timedelta(seconds=ALERT_LOOKBACK_S + 1), False),  # older: not read
        (NOW - timedelta(seconds=1), True),
        (NOW, False),  # at "now": not yet
    ],
)
def test_alert_lookback_boundary(opened: datetime, is_open: bool) -> None:
    assert ALERT_LOOKBACK_S == 366 * 86_400
    assert bool(_open(E("a", Ev.OPENED, opened))) is is_open


def test_an_alert_resolved_after_now_is_open_at_now() -> None:
    events = [E("a", Ev.OPENED, T), E("a", Ev.RESOLVED, NOW)]
    assert _open(*events) == [("a", Ev.OPENED)]
    assert _open(*events, now=NOW + timedelta(seconds=1)) == []


def _flags(*samples: FlagSample, now: datetime = NOW) -> dict[str, dict[str, str]]:
    return {stack: {p: s.flag.value for p, s in params.items()} for stack, params in latest_flags(samples, now).items()}


def F(flag: str, at: datetime, parameter: str = "so2", stack: str = "s1") -> FlagSample:  # noqa: N802
    return FlagSample(stack, parameter, DataFlag(flag), at)


@pytest.mark.parametrize(
    ("at", "seen"),
    [
        (NOW - timedelta(seconds=SEEN_LOOKBACK_S), True),
        (NOW - timedelta(seconds=SEEN_LOOKBACK_S, milliseconds=1), False),
        (NOW - timedelta(milliseconds=1), True),
        (NOW, False),
    ],
)
def test_seen_lookback_boundary(at: datetime, seen: bool) -> None:
    assert SEEN_LOOKBACK_S == 30 * 86_400
    assert _flags(F("C", at)) == ({"s1": {"so2": "C"}} if seen else {})


def test_latest_flag_per_parameter() -> None:
    samples = [F("C", T), F("N", T + timedelta(minutes=1)), F("M", T, "nox"), F("T", NOW), F("D", T, stack="s2")]
    assert _flags(*samples) == {"s1": {"so2": "N", "nox": "M"}, "s2": {"so2": "D"}}


@pytest.mark.parametrize(("a", "b", "wins"), [("N", "C", "C"), ("C", "N", "C"), ("C", "T", "T"), ("T", "B", "T")])
def test_flags_at_the_same_time_a_mark_then_the_greater_letter(a: str, b: str, wins: str) -> None:
    assert _flags(F(a, T), F(b, T)) == _flags(F(b, T), F(a, T)) == {"s1": {"so2": wins}}


# -- the fleet ----------------------------------------------------------------------------------------
def test_fleet_rows_and_ranking() -> None:
    events = [
        E("x1", Ev.OPENED, T, stack="b-exceeding"),
        E("x2", Ev.OPENED, T, stack="a-exceeding", parameter="nox"),
        E("g1", Ev.OPENED, T - timedelta(days=200), stack="silent", kind=K.DATA_GAP, parameter=None),
        E("k1", Ev.OPENED, T, stack="acked", kind=K.BYPASS, parameter=None),
        E("k1", Ev.ACKNOWLEDGED, T + timedelta(minutes=1), stack="acked", kind=K.BYPASS, parameter=None),
        E("r1", Ev.OPENED, T, stack="recovered"),
        E("r1", Ev.RESOLVED, T + timedelta(minutes=1), stack="recovered"),
        E("o1", Ev.OPENED, NOW - timedelta(days=400), stack="forgotten", kind=K.DATA_GAP, parameter=None),
    ]
    flags = [
        F("N", T, stack="b-exceeding"),
        F("N", T, stack="recovered"),
        F("N", T - timedelta(minutes=5), stack="marked"),
        F("C", T, stack="marked", parameter="nox"),
        F("N", NOW - timedelta(days=31), stack="gone"),
    ]
    rows = fleet_status(events, flags, NOW)
    assert [(r.stack, r.status, r.problem, r.last_seen) for r in rows] == [
        ("a-exceeding", Status.EXCEEDING, "exceedance nox", None),
        ("b-exceeding", Status.EXCEEDING, "exceedance so2", T),
        ("acked", Status.BYPASS_SUSPECTED, "bypass", None),
        ("silent", Status.OFFLINE, "data_gap", None),
        ("marked", Status.MARKED, "marked C nox", T),
        ("recovered", Status.NORMAL, "-", T),
    ]
    assert [r.rank for r in rows] == [7, 7, 6, 5, 1, 0]


def test_rank_fleet_worst_first_then_by_stack() -> None:
    statuses = [("b", Status.NORMAL), ("c", Status.OFFLINE), ("a", Status.NORMAL), ("a2", Status.OFFLINE)]
    rows = [StackRow(stack, status, "-", None) for stack, status in statuses]
    assert [r.stack for r in rank_fleet(rows)] == ["a2", "c", "a", "b"]


def test_contract_alert_events_are_read_as_they_are() -> None:
    fp = fingerprint("jy-1-s1", None, K.DATA_GAP)
    opened = AlertEvent(
        event=Ev.OPENED, kind=K.DATA_GAP, severity=Severity.CRITICAL, alert_id=alert_id(fp, T), fingerprint=fp,
        enterprise="jy-1", stack="jy-1-s1", parameter=None, start=T, at=T, reason="silent", evidence={},
    )  # fmt: skip
    acked = opened.model_copy(update={"event": Ev.ACKNOWLEDGED, "at": T + timedelta(minutes=3)})
    (row,) = fleet_status([opened, acked], [], NOW)
    assert (row.stack, row.status, row.problem) == ("jy-1-s1", Status.OFFLINE, "data_gap")


# -- order does not matter ------------------------------------------------------------------------------
STACKS = ["s1", "s2", "s3"]
minutes = st.integers(min_value=-60 * 24 * 40, max_value=5)


@st.composite
def fleet_data(draw: st.DrawFn) -> tuple[list[E], list[FlagSample]]:
    events = []
    for i in range(draw(st.integers(0, 8))):
        stack, kind = draw(st.sampled_from(STACKS)), draw(st.sampled_from(list(AlertKind)))
        parameter = draw(st.sampled_from([None, "so2", "nox"]))
        for _ in range(draw(st.integers(1, 3))):
            at = NOW + timedelta(minutes=draw(minutes))
            events.append(E(f"a{i}", draw(st.sampled_from(list(Ev))), at, stack, kind, parameter))
    flags = [
        F(draw(st.sampled_from([f.value for f in DataFlag])), NOW + timedelta(minutes=draw(minutes)),
          draw(st.sampled_from(["so2", "nox"])), draw(st.sampled_from(STACKS)))
        for _ in range(draw(st.integers(0, 10)))
    ]  # fmt: skip
    return events, flags


@given(fleet_data(), st.randoms(use_true_random=False))
def test_the_order_the_data_comes_in_changes_nothing(
    data: tuple[list[E], list[FlagSample]], rnd: random.Random
) -> None:
    events, flags = data
    want = fleet_status(events, flags, NOW)
    rnd.shuffle(events)
    rnd.shuffle(flags)
    assert fleet_status(events, flags, NOW) == want
    assert want == rank_fleet(want)
    for row in want:
        assert row.problem == "-" if row.status is Status.NORMAL else row.problem != "-"
