"""Alerts as a person reads them: folded to their current state, filtered, one line each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cems.alert_view import describe, fold, select
from contracts.alerts import AlertEvent, AlertEventType, AlertKind, Severity
from contracts.registry import load_registry

REG = load_registry()
T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def event(kind: str, stack: str, what: AlertEventType, at_min: int, alert: str, **extra: object) -> AlertEvent:
    enterprise = REG.stack_index()[stack][0].id
    return AlertEvent(
        event=what,
        kind=AlertKind(kind),
        severity=Severity.CRITICAL,
        alert_id=alert,
        fingerprint=alert[:8],
        enterprise=enterprise,
        stack=stack,
        parameter=extra.get("parameter"),  # type: ignore[arg-type]
        start=T0,
        end=T0 + timedelta(minutes=at_min) if what is AlertEventType.RESOLVED else None,
        at=T0 + timedelta(minutes=at_min),
        reason=f"{kind} on {stack}",
        evidence={},
    )


EVENTS = [
    event("exceedance", "jy-power-1-s1", AlertEventType.OPENED, 60, "a1", parameter="so2"),
    event("data_gap", "jy-cement-2-s1", AlertEventType.OPENED, 70, "a2"),
    event("exceedance", "jy-power-1-s1", AlertEventType.UPDATED, 120, "a1", parameter="so2"),
    event("data_gap", "jy-cement-2-s1", AlertEventType.RESOLVED, 90, "a2"),
]


def test_fold_keeps_first_and_latest_per_alert_in_order_of_appearance() -> None:
    book = fold(EVENTS)
    assert list(book) == ["a1", "a2"]
    assert book["a1"].first.event is AlertEventType.OPENED and book["a1"].latest.event is AlertEventType.UPDATED
    assert book["a1"].is_open and not book["a2"].is_open
    late_duplicate = event("exceedance", "jy-power-1-s1", AlertEventType.OPENED, 60, "a1", parameter="so2")
    assert fold([*EVENTS, late_duplicate])["a1"].latest.event is AlertEventType.UPDATED  # not older news


def test_select_by_state_kind_and_district() -> None:
    lines = fold(EVENTS).values()
    assert [line.first.alert_id for line in select(lines, REG, open_only=True)] == ["a1"]
    assert [line.first.alert_id for line in select(lines, REG, kind=AlertKind.DATA_GAP)] == ["a2"]
    power_district = REG.stack_index()["jy-power-1-s1"][0].district
    cement_district = REG.stack_index()["jy-cement-2-s1"][0].district
    assert power_district != cement_district
    assert [line.first.alert_id for line in select(lines, REG, district=cement_district)] == ["a2"]


def test_a_line_says_what_where_since_when_and_why() -> None:
    opened = describe(EVENTS[0], REG)
    district = REG.stack_index()["jy-power-1-s1"][0].district
    for part in (
        "opened",
        "critical",
        "exceedance",
        "jy-power-1/jy-power-1-s1 so2",
        district,
        "since 2026-11-29 08:00",
    ):
        assert part in opened, (part, opened)
    resolved = describe(EVENTS[3])
    assert "resolved" in resolved and "2026-11-29 08:00:00 UTC to 2026-11-29 09:30:00 UTC" in resolved
