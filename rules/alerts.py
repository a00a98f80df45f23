"""Alert lifecycle: open, update, resolve, acknowledge. Pure decisions on ``StackState``.

Identity is the fingerprint of (stack, parameter, kind). ``activate`` opens an alert the
first time its condition holds and otherwise records new evidence (an ``updated`` event at
most every ``update_every_s``, so a standing condition does not spam); ``deactivate``
resolves it once the condition has been absent for ``hold_down_s`` (so flapping does not
open a new alert each time). Times are event times, never the clock.

Every decision to emit or hold back an event has a reason (``Verdict``), decided by a small
pure function that takes ``at`` (as Alertmanager's ``notify/dedup_stage.go`` does):
``update_verdict``, ``resolve_verdict``, ``acknowledge_verdict``. ``decide_*`` return the
verdict with the events; ``activate``/``deactivate``/``acknowledge`` return the events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from contracts.alerts import AlertEvent, AlertEventType, AlertKind, AlertState, Severity, alert_id, fingerprint

from .config import StackProfile
from .state import OpenAlert, StackState


def ts(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _event(profile: StackProfile, alert: OpenAlert, event: AlertEventType, at: int, end: int | None) -> AlertEvent:
    return AlertEvent(
        event=event,
        kind=AlertKind(alert.kind),
        severity=Severity(alert.severity),
        alert_id=alert.alert_id,
        fingerprint=alert.fingerprint,
        enterprise=profile.enterprise,
        stack=profile.stack,
        parameter=alert.parameter,
        start=ts(alert.start),
        end=None if end is None else ts(end),
        at=ts(at),
        reason=alert.reason,
        evidence=alert.evidence,
    )


class Verdict(StrEnum):
    """Why an event was emitted, or held back."""

    FIRST = "first"  # opened: the condition holds and no alert was open
    NEW_EVIDENCE = "new_evidence"  # updated: the evidence changed
    UNCHANGED = "unchanged"  # held back: the same evidence again
    RATE_LIMITED = "rate_limited"  # held back: new evidence within update_every_s of the last update
    CLEARED = "cleared"  # resolved: the condition has been absent for hold_down_s
    HOLD_DOWN = "hold_down_not_elapsed"  # held back: absent, but not for hold_down_s yet
    NOT_OPEN = "not_open"  # held back: no such open alert
    TAKEN = "taken"  # acknowledged: an officer took it
    ALREADY_TAKEN = "already_taken"  # held back: it was acknowledged before

    @property
    def emits(self) -> bool:
        return self in _EMITTING


_EMITTING = frozenset({Verdict.FIRST, Verdict.NEW_EVIDENCE, Verdict.CLEARED, Verdict.TAKEN})


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    events: list[AlertEvent]


def update_verdict(alert: OpenAlert | None, evidence: dict[str, Any], at: int, update_every_s: int) -> Verdict:
    """The condition holds at ``at`` with ``evidence``."""
    if alert is None:
        return Verdict.FIRST
    if evidence == alert.evidence:
        return Verdict.UNCHANGED
    if at - alert.last_update < update_every_s:
        return Verdict.RATE_LIMITED
    return Verdict.NEW_EVIDENCE


def resolve_verdict(alert: OpenAlert | None, at: int, hold_down_s: int) -> Verdict:
    """The condition is absent at ``at``."""
    if alert is None:
        return Verdict.NOT_OPEN
    if at - alert.last_active < hold_down_s:
        return Verdict.HOLD_DOWN
    return Verdict.CLEARED


def acknowledge_verdict(alert: OpenAlert | None) -> Verdict:
    if alert is None:
        return Verdict.NOT_OPEN
    return Verdict.TAKEN if alert.state is AlertState.OPEN else Verdict.ALREADY_TAKEN


def activate(
    state: StackState,
    profile: StackProfile,
    kind: AlertKind,
    parameter: str | None,
    *,
    at: int,
    start: int,
    severity: Severity,
    reason: str,
    evidence: dict[str, Any],
    update_every_s: int = 0,
) -> list[AlertEvent]:
    return decide_activate(
        state, profile, kind, parameter, at=at, start=start, severity=severity, reason=reason,
        evidence=evidence, update_every_s=update_every_s,
    ).events  # fmt: skip


def decide_activate(
    state: StackState,
    profile: StackProfile,
    kind: AlertKind,
    parameter: str | None,
    *,
    at: int,
    start: int,
    severity: Severity,
    reason: str,
    evidence: dict[str, Any],
    update_every_s: int = 0,
) -> Decision:
    """The condition holds at ``at``: open the alert, record new evidence, or hold back."""
    key = (kind.value, parameter)
    alert = state.alerts.get(key)
    verdict = update_verdict(alert, evidence, at, update_every_s)
    if alert is None:
        fp = fingerprint(profile.stack, parameter, kind)
        alert = OpenAlert(
            kind=kind.value,
            parameter=parameter,
            fingerprint=fp,
            alert_id=alert_id(fp, ts(start)),
            start=start,
            last_active=at,
            last_update=at,
            severity=severity.value,
            reason=reason,
            evidence=evidence,
        )
        state.alerts[key] = alert
        return Decision(verdict, [_event(profile, alert, AlertEventType.OPENED, at, None)])
    alert.last_active = max(alert.last_active, at)
    if not verdict.emits:
        return Decision(verdict, [])
    alert.evidence = evidence
    alert.reason = reason
    alert.severity = max(alert.severity, severity.value, key=_SEVERITY_ORDER.index)
    alert.last_update = at
    alert.updates += 1
    return Decision(verdict, [_event(profile, alert, AlertEventType.UPDATED, at, None)])


_SEVERITY_ORDER = [s.value for s in (Severity.INFO, Severity.WARNING, Severity.CRITICAL)]


def deactivate(
    state: StackState,
    profile: StackProfile,
    kind: AlertKind,
    parameter: str | None,
    *,
    at: int,
    end: int | None = None,
    hold_down_s: int = 0,
    evidence: dict[str, Any] | None = None,
) -> list[AlertEvent]:
    if (kind.value, parameter) not in state.alerts:
        return []  # not open: nothing to resolve (``Verdict.NOT_OPEN``)
    return decide_deactivate(
        state, profile, kind, parameter, at=at, end=end, hold_down_s=hold_down_s, evidence=evidence
    ).events


def decide_deactivate(
    state: StackState,
    profile: StackProfile,
    kind: AlertKind,
    parameter: str | None,
    *,
    at: int,
    end: int | None = None,
    hold_down_s: int = 0,
    evidence: dict[str, Any] | None = None,
) -> Decision:
    """The condition is absent at ``at``: resolve the alert once absent for ``hold_down_s``."""
    key = (kind.value, parameter)
    alert = state.alerts.get(key)
    verdict = resolve_verdict(alert, at, hold_down_s)
    if alert is None or not verdict.emits:
        return Decision(verdict, [])
    del state.alerts[key]
    if evidence:
        alert.evidence = {**alert.evidence, **evidence}
    return Decision(
        verdict, [_event(profile, alert, AlertEventType.RESOLVED, at, end if end is not None else alert.last_active)]
    )


def acknowledge(
    state: StackState, profile: StackProfile, alert_id_: str, officer: str, at: int, note: str | None = None
) -> list[AlertEvent]:
    return decide_acknowledge(state, profile, alert_id_, officer, at, note).events


def decide_acknowledge(
    state: StackState, profile: StackProfile, alert_id_: str, officer: str, at: int, note: str | None = None
) -> Decision:
    """Record that an officer took the case; the alert stays open until its condition clears."""
    alert = next((a for a in state.alerts.values() if a.alert_id == alert_id_), None)
    verdict = acknowledge_verdict(alert)
    if alert is None or not verdict.emits:
        return Decision(verdict, [])
    alert.acknowledged_by = officer
    alert.evidence = {**alert.evidence, "acknowledged_by": officer, **({"acknowledgement_note": note} if note else {})}
    return Decision(verdict, [_event(profile, alert, AlertEventType.ACKNOWLEDGED, at, None)])
