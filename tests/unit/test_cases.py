"""The case state machine and who may do what, as tables and timelines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.alerts import AlertEvent, AlertEventType, AlertKind, Severity, alert_id, fingerprint
from rules.cases.access import Actor, Role, can_assign_to, can_see, refusal, scope
from rules.cases.machine import (
    Action,
    Case,
    CaseState,
    Command,
    Refusal,
    Resolution,
    Step,
    apply,
    on_alert,
    open_case,
    verification,
)
from rules.cases.policy import CasePolicy, KindPolicy, load_case_policy

T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)
POLICY = CasePolicy()


def ev(
    kind: AlertKind = AlertKind.EXCEEDANCE,
    event: AlertEventType = AlertEventType.OPENED,
    *,
    start: datetime = T0,
    at: datetime | None = None,
    end: datetime | None = None,
    stack: str = "s1",
) -> AlertEvent:
    fp = fingerprint(stack, "so2", kind)
    return AlertEvent(
        event=event,
        kind=kind,
        severity=Severity.CRITICAL,
        alert_id=alert_id(fp, start),
        fingerprint=fp,
        enterprise="e1",
        stack=stack,
        parameter="so2",
        start=start,
        end=end,
        at=at or start,
        reason="hourly so2 above limit",
        evidence={},
    )


def new_case() -> Case:
    return open_case(ev(), district="济源", industry="power").case


def at_state(state: CaseState) -> Case:
    """A case driven to ``state`` through the machine itself."""
    case = new_case()
    steps = [
        (CaseState.ASSIGNED, Command(Action.ASSIGN, "chief", assignee="li")),
        (CaseState.RECTIFYING, Command(Action.SET_DEADLINE, "li", deadline=T0 + timedelta(days=5))),
        (CaseState.VERIFYING, Command(Action.RESPOND, "e1-user", note="replaced the SCR catalyst")),
    ]
    for target, command in steps:
        if case.state is state:
            break
        if target is CaseState.VERIFYING:
            case = on_resolved(case)
        step = apply(case, command, POLICY, T0 + timedelta(hours=2))
        assert isinstance(step, Step), step
        case = step.case
    if state is CaseState.CLOSED:
        step = apply(
            case, Command(Action.CLOSE, "chief", note="false alarm: calibration"), POLICY, T0 + timedelta(days=1)
        )
        assert isinstance(step, Step), step
        case = step.case
    assert case.state is state
    return case


def on_resolved(case: Case) -> Case:
    from rules.cases.machine import observe

    return observe(case, ev(event=AlertEventType.RESOLVED, at=T0 + timedelta(hours=1), end=T0 + timedelta(hours=1)))


def test_an_alert_opens_a_new_case_with_a_system_entry() -> None:
    step = open_case(ev(), district="济源", industry="power")
    assert step.case.state is CaseState.NEW
    assert step.case.open_alerts == {ev().alert_id}
    assert step.entry.actor == "system" and step.entry.action is Action.OPEN and step.entry.from_state is None
    assert "so2" in step.entry.note


# (state, action, expected: new state or the refusal reason)
TABLE: list[tuple[CaseState, Command, CaseState | str]] = [
    (CaseState.NEW, Command(Action.ASSIGN, "chief", assignee="li"), CaseState.ASSIGNED),
    (CaseState.NEW, Command(Action.ASSIGN, "chief"), "assignee_required"),
    (
        CaseState.NEW,
        Command(Action.SET_DEADLINE, "li", deadline=T0 + timedelta(days=3)),
        "cannot_set_deadline_when_new",
    ),
    (CaseState.NEW, Command(Action.RESPOND, "e1", note="done"), "cannot_respond_when_new"),
    (CaseState.NEW, Command(Action.VERIFY, "li"), "cannot_verify_when_new"),
    (CaseState.NEW, Command(Action.CLOSE, "chief", note="duplicate"), CaseState.CLOSED),
    (CaseState.NEW, Command(Action.CLOSE, "chief", note=" "), "reason_required"),
    (CaseState.NEW, Command(Action.REOPEN, "chief", note="x"), "cannot_reopen_when_new"),
    (CaseState.ASSIGNED, Command(Action.SET_DEADLINE, "li", deadline=T0 + timedelta(days=3)), CaseState.RECTIFYING),
    (CaseState.ASSIGNED, Command(Action.SET_DEADLINE, "li", deadline=T0), "deadline_in_the_past"),
    (CaseState.ASSIGNED, Command(Action.SET_DEADLINE, "li"), "deadline_required"),
    (CaseState.ASSIGNED, Command(Action.ASSIGN, "chief", assignee="wang"), CaseState.ASSIGNED),
    (CaseState.RECTIFYING, Command(Action.RESPOND, "e1", note="fixed"), CaseState.VERIFYING),
    (CaseState.RECTIFYING, Command(Action.RESPOND, "e1", note=""), "response_text_required"),
    (CaseState.RECTIFYING, Command(Action.SET_DEADLINE, "li", deadline=T0 + timedelta(days=9)), CaseState.RECTIFYING),
    (CaseState.RECTIFYING, Command(Action.VERIFY, "li"), "cannot_verify_when_rectifying"),
    (CaseState.VERIFYING, Command(Action.VERIFY, "li"), "verification_window_not_elapsed"),
    (CaseState.VERIFYING, Command(Action.RESPOND, "e1", note="again"), "cannot_respond_when_verifying"),
    (CaseState.VERIFYING, Command(Action.COMMENT, "li", note="looks good"), CaseState.VERIFYING),
    (CaseState.CLOSED, Command(Action.REOPEN, "chief", note="complaint"), CaseState.RECTIFYING),
    (CaseState.CLOSED, Command(Action.REOPEN, "chief"), "reason_required"),
    (CaseState.CLOSED, Command(Action.ACKNOWLEDGE, "li"), "cannot_acknowledge_when_closed"),
    (CaseState.CLOSED, Command(Action.CLOSE, "chief", note="x"), "cannot_close_when_closed"),
    (CaseState.CLOSED, Command(Action.COMMENT, "li", note="archived"), CaseState.CLOSED),
    (CaseState.VERIFYING, Command(Action.OPEN, "li"), "open_is_not_manual"),
]


@pytest.mark.parametrize(("state", "command", "expected"), TABLE, ids=lambda x: getattr(x, "value", None))
def test_transitions(state: CaseState, command: Command, expected: CaseState | str) -> None:
    case = at_state(state)
    now = T0 + timedelta(days=1, hours=3)
    step = apply(case, command, POLICY, now)
    if isinstance(expected, CaseState):
        assert isinstance(step, Step), step
        assert step.case.state is expected
        assert (step.entry.actor, step.entry.action, step.entry.at) == (command.actor, command.action, now)
        assert (step.entry.from_state, step.entry.to_state) == (state, expected)
    else:
        assert isinstance(step, Refusal) and not step
        assert step.reason == expected


def test_close_records_dismissal_and_reopen_sets_a_new_deadline() -> None:
    closed = at_state(CaseState.CLOSED)
    assert (closed.resolution, closed.closed_at) == (Resolution.DISMISSED, T0 + timedelta(days=1))
    now = T0 + timedelta(days=2)
    step = apply(closed, Command(Action.REOPEN, "chief", note="complaint"), POLICY, now)
    assert isinstance(step, Step)
    assert step.case.resolution is None and step.case.closed_at is None
    assert step.case.recurrences == 1
    assert step.case.deadline == now + timedelta(days=POLICY.kinds[AlertKind.EXCEEDANCE].response_days)


def test_verification_from_data_timeline() -> None:
    """Responded at T0+2h, condition last seen T0+1h: exceedance needs 7 quiet days."""
    case = at_state(CaseState.VERIFYING)
    responded = T0 + timedelta(hours=2)
    assert case.responded_at == responded
    check = verification(case, POLICY, responded + timedelta(days=7) - timedelta(seconds=1))
    assert (check.ready, check.reason, check.ready_at) == (
        False,
        "verification_window_not_elapsed",
        responded + timedelta(days=7),
    )
    assert verification(case, POLICY, responded + timedelta(days=7)).ready
    step = apply(case, Command(Action.VERIFY, "li"), POLICY, responded + timedelta(days=7))
    assert isinstance(step, Step)
    assert (step.case.state, step.case.resolution) == (CaseState.CLOSED, Resolution.VERIFIED)


def test_a_case_with_an_open_alert_cannot_be_verified() -> None:
    case = at_state(CaseState.VERIFYING)
    from dataclasses import replace

    still_open = replace(case, open_alerts=frozenset({"a"}))
    assert verification(still_open, POLICY, T0 + timedelta(days=60)).reason == "alert_still_open"


def test_verify_days_are_per_kind() -> None:
    policy = CasePolicy(kinds={AlertKind.EXCEEDANCE: KindPolicy(verify_days=1)})
    case = at_state(CaseState.VERIFYING)
    assert verification(case, policy, T0 + timedelta(days=1, hours=2)).ready
    assert not verification(case, POLICY, T0 + timedelta(days=1, hours=2)).ready


def test_recurrence_while_verifying_reopens_and_a_late_event_moves_the_window() -> None:
    case = at_state(CaseState.VERIFYING)
    again = ev(start=T0 + timedelta(days=3))
    step = on_alert(case, again, known_alert=False, policy=POLICY)
    assert step is not None
    assert step.case.state is CaseState.RECTIFYING and step.entry.action is Action.RECUR
    assert step.case.recurrences == 1 and step.case.responded_at is None
    assert step.case.deadline == again.at + timedelta(days=5)
    assert step.case.last_occurrence_at == again.at


def test_a_new_alert_joins_an_open_case_and_a_known_one_adds_no_history() -> None:
    case = at_state(CaseState.ASSIGNED)
    other = ev(start=T0 + timedelta(hours=5))
    step = on_alert(case, other, known_alert=False, policy=POLICY)
    assert step is not None and step.entry.action is Action.JOIN and step.case.state is CaseState.ASSIGNED
    assert on_alert(step.case, other, known_alert=True, policy=POLICY) is None


def test_policy_opens_cases_for_the_listed_kinds_and_long_gaps_only() -> None:
    assert POLICY.opens_case(ev(AlertKind.EXCEEDANCE))
    assert POLICY.opens_case(ev(AlertKind.BYPASS))
    assert not POLICY.opens_case(ev(AlertKind.EARLY_WARNING))
    assert not POLICY.opens_case(ev(AlertKind.SPIKE))
    assert not POLICY.opens_case(ev(AlertKind.EXCEEDANCE, AlertEventType.ACKNOWLEDGED))
    short_gap = ev(AlertKind.DATA_GAP, AlertEventType.RESOLVED, end=T0 + timedelta(hours=1), at=T0 + timedelta(hours=1))
    long_gap = ev(AlertKind.DATA_GAP, AlertEventType.UPDATED, at=T0 + timedelta(hours=4))
    assert not POLICY.opens_case(short_gap)
    assert POLICY.opens_case(long_gap)
    assert not POLICY.due_to_open(AlertKind.DATA_GAP, T0, T0 + timedelta(hours=3, minutes=59))
    assert POLICY.due_to_open(AlertKind.DATA_GAP, T0, T0 + timedelta(hours=4))


def test_policy_file_errors_name_the_file_and_key() -> None:
    with pytest.raises(Exception, match=r"cases\.yaml: kinds\.exceedance\.verify_dayz: unknown key"):
        load_case_policy({"kinds": {"exceedance": {"verify_dayz": 3}}}, "cases.yaml")
    with pytest.raises(Exception, match=r"cases\.yaml: kinds\.early_warnin"):
        load_case_policy({"kinds": {"early_warnin": {}}}, "cases.yaml")
    policy = load_case_policy({"kinds": {"bypass": {"verify_days": 60}}}, "cases.yaml")
    assert policy.opens_case(ev(AlertKind.BYPASS)) and not policy.opens_case(ev(AlertKind.EXCEEDANCE))


OFFICER = Actor("li", Role.OFFICER, districts=frozenset({"济源"}))
OTHER_OFFICER = Actor("zhao", Role.OFFICER, districts=frozenset({"孟州"}))
SUPERVISOR = Actor("chief", Role.SUPERVISOR)
ENTERPRISE = Actor("e1-user", Role.ENTERPRISE, enterprise="e1")
OTHER_ENTERPRISE = Actor("e2-user", Role.ENTERPRISE, enterprise="e2")

# (actor, action, expected refusal or None) on a case of district 济源, enterprise e1
ACCESS: list[tuple[Actor, Action, str | None]] = [
    (OFFICER, Action.SET_DEADLINE, None),
    (OFFICER, Action.VERIFY, None),
    (OFFICER, Action.ASSIGN, "role_officer_cannot_assign"),
    (OFFICER, Action.CLOSE, "role_officer_cannot_close"),
    (OTHER_OFFICER, Action.SET_DEADLINE, "not_visible"),
    (OTHER_OFFICER, Action.COMMENT, "not_visible"),
    (SUPERVISOR, Action.ASSIGN, None),
    (SUPERVISOR, Action.CLOSE, None),
    (ENTERPRISE, Action.RESPOND, None),
    (ENTERPRISE, Action.COMMENT, None),
    (ENTERPRISE, Action.VERIFY, "role_enterprise_cannot_verify"),
    (ENTERPRISE, Action.SET_DEADLINE, "role_enterprise_cannot_set_deadline"),
    (ENTERPRISE, Action.ACKNOWLEDGE, "role_enterprise_cannot_acknowledge"),
    (OTHER_ENTERPRISE, Action.RESPOND, "not_visible"),
    (SUPERVISOR, Action.OPEN, "role_supervisor_cannot_open"),
]


@pytest.mark.parametrize(("actor", "action", "expected"), ACCESS)
def test_access(actor: Actor, action: Action, expected: str | None) -> None:
    assert refusal(actor, action, district="济源", enterprise="e1") == expected


def test_scope_and_visibility() -> None:
    assert scope(ENTERPRISE).enterprise == "e1" and scope(ENTERPRISE).districts is None
    assert scope(OFFICER).districts == frozenset({"济源"})
    assert scope(SUPERVISOR) == scope(Actor("root", Role.ADMIN))
    assert can_see(SUPERVISOR, district="孟州", enterprise="e9")
    assert not can_see(ENTERPRISE, district="济源", enterprise="e2")
    assert can_assign_to(SUPERVISOR, OFFICER, district="济源") is None
    assert can_assign_to(SUPERVISOR, OTHER_OFFICER, district="济源") == "assignee_not_responsible_for_district"
    assert can_assign_to(SUPERVISOR, ENTERPRISE, district="济源") == "assignee_not_responsible_for_district"
    with pytest.raises(ValueError, match="has no enterprise"):
        Actor("x", Role.ENTERPRISE)
    with pytest.raises(ValueError, match="has no district"):
        Actor("y", Role.OFFICER)
