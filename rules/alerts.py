"""Alert lifecycle: open, update, resolve, acknowledge. Pure decisions on ``StackState``.

Identity is the fingerprint of (stack, parameter, kind). ``activate`` opens an alert the
first time its condition holds and otherwise records new evidence (an ``updated`` event at
most every ``update_every_s``, so a standing condition does not spam); ``deactivate``
resolves it once the condition has been absent for ``hold_down_s`` (so flapping does not
open a new alert each time). Times are event times, never the clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contracts.alerts import AlertEvent, AlertEventType, AlertKind, Severity, alert_id, fingerprint

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
    key = (kind.value, parameter)
    alert = state.alerts.get(key)
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
        return [_event(profile, alert, AlertEventType.OPENED, at, None)]
    alert.last_active = max(alert.last_active, at)
    if evidence == alert.evidence or at - alert.last_update < update_every_s:
        return []
    alert.evidence = evidence
    alert.reason = reason
    alert.severity = max(alert.severity, severity.value, key=_SEVERITY_ORDER.index)
    alert.last_update = at
    alert.updates += 1
    return [_event(profile, alert, AlertEventType.UPDATED, at, None)]


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
    """Resolve the alert if open and its condition has been absent for ``hold_down_s``."""
    key = (kind.value, parameter)
    alert = state.alerts.get(key)
    if alert is None or at - alert.last_active < hold_down_s:
        return []
    del state.alerts[key]
    if evidence:
        alert.evidence = {**alert.evidence, **evidence}
    return [_event(profile, alert, AlertEventType.RESOLVED, at, end if end is not None else alert.last_active)]


def acknowledge(state: StackState, profile: StackProfile, alert_id_: str, officer: str, at: int) -> list[AlertEvent]:
    """Record that an officer took the case; the alert stays open until its condition clears."""
    for alert in state.alerts.values():
        if alert.alert_id == alert_id_ and alert.acknowledged_by is None:
            alert.acknowledged_by = officer
            alert.evidence = {**alert.evidence, "acknowledged_by": officer}
            return [_event(profile, alert, AlertEventType.ACKNOWLEDGED, at, None)]
    return []
