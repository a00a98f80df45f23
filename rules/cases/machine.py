"""The case state machine. Pure: ``now`` is an argument, nothing is read or written.

States: new -> assigned -> rectifying (the enterprise must respond by a deadline) ->
verifying -> closed; a recurrence of the condition while verifying sends the case back to
rectifying ("reopened"), as does a manual reopen of a closed case. Each applied step returns
the new case and one history entry (actor, time, action, states, note); a step that may not
happen returns a ``Refusal`` with its reason instead. Whether a case may be closed as verified
is computed from the alert stream (``verification``), never typed in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from contracts.alerts import AlertEvent, AlertEventType, AlertKind

from .policy import CasePolicy

SYSTEM = "system"


class CaseState(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    RECTIFYING = "rectifying"
    VERIFYING = "verifying"
    CLOSED = "closed"


class Resolution(StrEnum):
    VERIFIED = "verified"  # quiet for the kind's verification window, from data
    DISMISSED = "dismissed"  # closed by a supervisor without verification (reason in the note)


class Action(StrEnum):
    OPEN = "open"  # system: an alert opened the case
    JOIN = "join"  # system: another alert of the same stack and kind joined it
    RECUR = "recur"  # system: the condition came back while verifying: reopened
    ASSIGN = "assign"
    SET_DEADLINE = "set_deadline"  # orders rectification by a date (assigned -> rectifying)
    RESPOND = "respond"  # the enterprise's response (rectifying -> verifying)
    VERIFY = "verify"  # close as verified from data
    CLOSE = "close"  # close without verification
    REOPEN = "reopen"
    ACKNOWLEDGE = "acknowledge"  # the underlying alert, through the acknowledgements topic
    COMMENT = "comment"

    @property
    def manual(self) -> bool:
        return self not in (Action.OPEN, Action.JOIN, Action.RECUR)


@dataclass(frozen=True)
class Case:
    enterprise: str
    stack: str
    kind: AlertKind
    district: str
    industry: str
    state: CaseState
    opened_at: datetime
    #: when the condition was last seen (latest event time of any of the case's alerts)
    last_occurrence_at: datetime
    #: the case's alerts whose condition still holds (not resolved)
    open_alerts: frozenset[str]
    assignee: str | None = None
    deadline: datetime | None = None
    responded_at: datetime | None = None
    recurrences: int = 0
    closed_at: datetime | None = None
    resolution: Resolution | None = None

    @property
    def is_open(self) -> bool:
        return self.state is not CaseState.CLOSED

    def overdue(self, now: datetime) -> bool:
        return self.state is CaseState.RECTIFYING and self.deadline is not None and now > self.deadline


@dataclass(frozen=True)
class Entry:
    """One line of a case's history; stored append-only."""

    at: datetime
    actor: str
    action: Action
    from_state: CaseState | None
    to_state: CaseState
    note: str = ""


@dataclass(frozen=True)
class Step:
    case: Case
    entry: Entry


@dataclass(frozen=True)
class Refusal:
    reason: str

    def __bool__(self) -> bool:  # a refusal is falsy, so `if step:` reads naturally
        return False


@dataclass(frozen=True)
class Command:
    action: Action
    actor: str
    note: str = ""
    assignee: str | None = None
    deadline: datetime | None = None


@dataclass(frozen=True)
class Verification:
    ready: bool
    reason: str
    #: the window's start (response or last occurrence, whichever is later) and end
    quiet_since: datetime | None
    ready_at: datetime | None


# which manual actions each state allows, and where they lead (None: the state stays)
_MANUAL: dict[Action, dict[CaseState, CaseState | None]] = {
    Action.ASSIGN: {
        CaseState.NEW: CaseState.ASSIGNED,
        CaseState.ASSIGNED: None,
        CaseState.RECTIFYING: None,
        CaseState.VERIFYING: None,
    },
    Action.SET_DEADLINE: {CaseState.ASSIGNED: CaseState.RECTIFYING, CaseState.RECTIFYING: None},
    Action.RESPOND: {CaseState.RECTIFYING: CaseState.VERIFYING},
    Action.VERIFY: {CaseState.VERIFYING: CaseState.CLOSED},
    Action.CLOSE: {s: CaseState.CLOSED for s in CaseState if s is not CaseState.CLOSED},
    Action.REOPEN: {CaseState.CLOSED: CaseState.RECTIFYING},
    Action.ACKNOWLEDGE: {s: None for s in CaseState if s is not CaseState.CLOSED},
    Action.COMMENT: {s: None for s in CaseState},
}


def available(state: CaseState) -> frozenset[Action]:
    """The manual actions a case in ``state`` allows (permissions aside)."""
    return frozenset(action for action, targets in _MANUAL.items() if state in targets)


def open_case(event: AlertEvent, *, district: str, industry: str) -> Step:
    """A new case for an alert the policy says opens one."""
    case = Case(
        enterprise=event.enterprise,
        stack=event.stack,
        kind=event.kind,
        district=district,
        industry=industry,
        state=CaseState.NEW,
        opened_at=event.at,
        last_occurrence_at=_seen_at(event),
        open_alerts=frozenset() if event.event is AlertEventType.RESOLVED else frozenset({event.alert_id}),
    )
    return Step(case, Entry(event.at, SYSTEM, Action.OPEN, None, CaseState.NEW, _describe(event)))


def on_alert(case: Case, event: AlertEvent, *, known_alert: bool, policy: CasePolicy) -> Step | None:
    """An alert event of this case's stack and kind. Returns a history step when it matters (a
    new alert joins, or recurs while verifying), None when only the case's facts change, which
    the caller gets from ``observe``."""
    if known_alert:
        return None
    updated = observe(case, event)
    if case.state is CaseState.VERIFYING:
        days = policy.windows(case.kind).response_days
        reopened = replace(
            updated,
            state=CaseState.RECTIFYING,
            recurrences=case.recurrences + 1,
            responded_at=None,
            deadline=event.at + timedelta(days=days),
        )
        note = f"recurred while verifying: {_describe(event)}"
        return Step(reopened, Entry(event.at, SYSTEM, Action.RECUR, case.state, CaseState.RECTIFYING, note))
    return Step(updated, Entry(event.at, SYSTEM, Action.JOIN, case.state, case.state, _describe(event)))


def observe(case: Case, event: AlertEvent) -> Case:
    """The case's facts after an event of one of its alerts (no history entry)."""
    if event.event is AlertEventType.ACKNOWLEDGED:
        return case
    alerts = set(case.open_alerts)
    if event.event is AlertEventType.RESOLVED:
        alerts.discard(event.alert_id)
    else:
        alerts.add(event.alert_id)
    return replace(
        case, open_alerts=frozenset(alerts), last_occurrence_at=max(case.last_occurrence_at, _seen_at(event))
    )


def verification(case: Case, policy: CasePolicy, now: datetime) -> Verification:
    """May the case be closed as verified at ``now``: it is verifying, none of its alerts is
    open, and the kind's window has passed since the response and since the condition was last
    seen, whichever is later."""
    days = policy.windows(case.kind).verify_days
    if case.state is not CaseState.VERIFYING or case.responded_at is None:
        return Verification(False, "not_verifying", None, None)
    quiet_since = max(case.responded_at, case.last_occurrence_at)
    ready_at = quiet_since + timedelta(days=days)
    if case.open_alerts:
        return Verification(False, "alert_still_open", quiet_since, None)
    if now < ready_at:
        return Verification(False, "verification_window_not_elapsed", quiet_since, ready_at)
    return Verification(True, "quiet_for_window", quiet_since, ready_at)


def apply(case: Case, command: Command, policy: CasePolicy, now: datetime) -> Step | Refusal:
    """A person's action on a case (permissions are checked by ``access``, before this)."""
    targets = _MANUAL.get(command.action)
    if targets is None:
        return Refusal(f"{command.action.value}_is_not_manual")
    if case.state not in targets:
        return Refusal(f"cannot_{command.action.value}_when_{case.state.value}")
    to_state = targets[case.state] or case.state
    new = case
    match command.action:
        case Action.ASSIGN:
            if not command.assignee:
                return Refusal("assignee_required")
            new = replace(case, assignee=command.assignee)
        case Action.SET_DEADLINE:
            if command.deadline is None:
                return Refusal("deadline_required")
            if command.deadline <= now:
                return Refusal("deadline_in_the_past")
            new = replace(case, deadline=command.deadline)
        case Action.RESPOND:
            if not command.note.strip():
                return Refusal("response_text_required")
            new = replace(case, responded_at=now)
        case Action.VERIFY:
            check = verification(case, policy, now)
            if not check.ready:
                return Refusal(check.reason)
            new = replace(case, closed_at=now, resolution=Resolution.VERIFIED)
        case Action.CLOSE:
            if not command.note.strip():
                return Refusal("reason_required")
            new = replace(case, closed_at=now, resolution=Resolution.DISMISSED)
        case Action.REOPEN:
            if not command.note.strip():
                return Refusal("reason_required")
            days = policy.windows(case.kind).response_days
            new = replace(
                case,
                closed_at=None,
                resolution=None,
                responded_at=None,
                recurrences=case.recurrences + 1,
                deadline=now + timedelta(days=days),
            )
        case Action.COMMENT:
            if not command.note.strip():
                return Refusal("comment_text_required")
    new = replace(new, state=to_state)
    note = command.note
    if command.action is Action.ASSIGN:
        note = f"assigned to {command.assignee}" + (f": {note}" if note else "")
    elif command.action is Action.SET_DEADLINE and command.deadline is not None:
        note = f"respond by {command.deadline.isoformat(timespec='minutes')}" + (f": {note}" if note else "")
    return Step(new, Entry(now, command.actor, command.action, case.state, to_state, note))


def _seen_at(event: AlertEvent) -> datetime:
    return event.end if event.event is AlertEventType.RESOLVED and event.end else event.at


def _describe(event: AlertEvent) -> str:
    what = f"{event.kind.value}" + (f" of {event.parameter}" if event.parameter else "")
    return f"alert {event.alert_id} ({what}, {event.severity.value}) {event.event.value}: {event.reason}"
