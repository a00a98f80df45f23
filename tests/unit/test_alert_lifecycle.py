"""The alert lifecycle as timelines: push a condition at t, expect an event (or a reason for
none) at t. Pure: the stack state and event times only."""

from __future__ import annotations

import pytest

from contracts.alerts import AlertEventType, AlertKind, AlertState, Severity
from rules.alerts import Decision, Verdict, decide_acknowledge, decide_activate, decide_deactivate
from rules.state import StackState
from tests.rulekit import profile

P = profile()
KIND = AlertKind.EXCEEDANCE


def holds(state: StackState, at: int, evidence: dict[str, object], every_s: int = 300) -> Decision:
    return decide_activate(
        state, P, KIND, "so2", at=at, start=at, severity=Severity.CRITICAL, reason="so2 over", evidence=evidence,
        update_every_s=every_s,
    )  # fmt: skip


def absent(state: StackState, at: int, hold_down_s: int = 300) -> Decision:
    return decide_deactivate(state, P, KIND, "so2", at=at, hold_down_s=hold_down_s)


def summary(d: Decision) -> tuple[str, list[str]]:
    return d.verdict.value, [e.event.value for e in d.events]


def test_a_timeline_of_one_alert() -> None:
    state = StackState(stack=P.stack)
    timeline = [
        (0, lambda: holds(state, 0, {"value": 40}), ("first", ["opened"])),
        (60, lambda: holds(state, 60, {"value": 40}), ("unchanged", [])),
        (120, lambda: holds(state, 120, {"value": 45}), ("rate_limited", [])),
        (400, lambda: holds(state, 400, {"value": 45}), ("new_evidence", ["updated"])),
        (500, lambda: absent(state, 500), ("hold_down_not_elapsed", [])),
        (650, lambda: holds(state, 650, {"value": 45}), ("unchanged", [])),  # back: same episode
        (900, lambda: absent(state, 900), ("hold_down_not_elapsed", [])),
        (950, lambda: absent(state, 950), ("cleared", ["resolved"])),
        (1000, lambda: absent(state, 1000), ("not_open", [])),
    ]
    for at, push, expected in timeline:
        assert summary(push()) == expected, at


def test_the_resolved_event_ends_when_the_condition_was_last_seen() -> None:
    state = StackState(stack=P.stack)
    opened = holds(state, 0, {"value": 40}).events[0]
    holds(state, 240, {"value": 40})
    [resolved] = absent(state, 600).events
    assert resolved.alert_id == opened.alert_id and resolved.event is AlertEventType.RESOLVED
    assert resolved.end is not None
    assert (
        resolved.end - opened.start
    ).total_seconds() == 240 and resolved.at.timestamp() - opened.at.timestamp() == 600


def test_acknowledged_once_and_still_open_until_it_clears() -> None:
    state = StackState(stack=P.stack)
    opened = holds(state, 0, {"value": 40}).events[0]
    assert summary(decide_acknowledge(state, P, "no-such-alert", "li", 10)) == ("not_open", [])
    taken = decide_acknowledge(state, P, opened.alert_id, "li", 10)
    assert summary(taken) == ("taken", ["acknowledged"]) and taken.events[0].evidence["acknowledged_by"] == "li"
    assert state.alerts[(KIND.value, "so2")].state is AlertState.ACKNOWLEDGED
    assert summary(decide_acknowledge(state, P, opened.alert_id, "wang", 20)) == ("already_taken", [])
    assert summary(absent(state, 400)) == ("cleared", ["resolved"])


@pytest.mark.parametrize(
    ("verdict", "emits"),
    [(v, v in {Verdict.FIRST, Verdict.NEW_EVIDENCE, Verdict.CLEARED, Verdict.TAKEN}) for v in Verdict],
)
def test_only_four_verdicts_emit(verdict: Verdict, emits: bool) -> None:
    assert verdict.emits is emits
