"""Data gaps (a silent stack, a missing parameter, a stack never heard from) and invalid
marks held too long. Driven by the event-time watermark, not by the next reading. Pure."""

from __future__ import annotations

from datetime import datetime

from contracts.alerts import AlertEvent, AlertKind, Severity
from contracts.reading import DataFlag

from .aggregation import MINUTE
from .alerts import activate, deactivate, ts
from .config import RuleSettings, StackProfile, in_name_order
from .state import Mark, Minute, StackState

MARK_LOG_KEEP = 200
QUIET_UPDATES_S = 6 * 3600
_DATA_GAP = AlertKind.DATA_GAP.value  # how open data gaps are keyed in ``StackState.alerts``


def gap_threshold_s(profile: StackProfile, settings: RuleSettings) -> float:
    return max(settings.gap_min_s, settings.gap_intervals * profile.reporting_interval_s)


def check_gaps(state: StackState, profile: StackProfile, settings: RuleSettings, now: int) -> list[AlertEvent]:
    """Silence is judged at the watermark minus the grace period, the point up to which data
    counts as complete: readings delayed in transit by less than the grace period (a burst,
    one stack's messages overtaken by another's) are not mistaken for a gap."""
    threshold = gap_threshold_s(profile, settings)
    horizon = now - settings.grace_s
    last_seen, param_last_seen, alerts = state.last_seen, state.param_last_seen, state.alerts
    if (
        not alerts
        and last_seen is not None
        and horizon - last_seen <= threshold
        and profile.parameters <= param_last_seen.keys()
        and last_seen - min(param_last_seen.values()) <= threshold
    ):
        return []  # the usual case: the stack and each declared parameter reported in time, no gap is open
    interval = profile.reporting_interval_s
    events: list[AlertEvent] = []
    if last_seen is None:
        if state.first_tick is not None and horizon - state.first_tick > threshold:
            events += activate(
                state, profile, AlertKind.DATA_GAP, None, at=now, start=state.first_tick,
                severity=Severity.CRITICAL,
                reason=f"no data from {profile.stack} since monitoring started",
                evidence={"never_reported": True, "expected_interval_s": interval, "threshold_s": threshold},
                update_every_s=QUIET_UPDATES_S,
            )  # fmt: skip
        return events
    if horizon - last_seen > threshold:
        return activate(
            state, profile, AlertKind.DATA_GAP, None, at=now, start=last_seen + interval,
            severity=Severity.CRITICAL,
            reason=f"{profile.stack} silent since {ts(last_seen).isoformat()}",
            evidence={"never_reported": False, "last_seen": ts(last_seen).isoformat(),
                      "expected_interval_s": interval, "threshold_s": threshold},
            update_every_s=QUIET_UPDATES_S,
        )  # fmt: skip
    if alerts:
        events += _resolve_stack_gap(state, profile, settings, now)
    # the stack reports: is any declared parameter missing from its readings?
    first = state.first_seen if state.first_seen is not None else last_seen
    for name in in_name_order(profile.parameters):
        seen = param_last_seen.get(name)
        missing_since = seen if seen is not None else first
        if last_seen - missing_since > threshold:
            events += activate(
                state, profile, AlertKind.DATA_GAP, name, at=last_seen, start=missing_since,
                severity=Severity.WARNING,
                reason=f"{name} missing from {profile.stack}'s readings",
                evidence={"never_reported": seen is None, "last_seen": None if seen is None else ts(seen).isoformat(),
                          "threshold_s": threshold},
                update_every_s=QUIET_UPDATES_S,
            )  # fmt: skip
        elif seen is not None and alerts and (_DATA_GAP, name) in alerts:
            events += deactivate(state, profile, AlertKind.DATA_GAP, name, at=last_seen, end=seen)
    return events


def _resolve_stack_gap(state: StackState, profile: StackProfile, settings: RuleSettings, now: int) -> list[AlertEvent]:
    """The stack reports again: the gap ends at its first reading after the silence, and is
    resolved ``gap_backfill_wait_s`` later, saying how many of the missing readings the device
    sent when asked (``note_backfilled``)."""
    alert = state.alerts.get((_DATA_GAP, None))
    if alert is None:
        return []
    assert state.last_seen is not None
    evidence = alert.evidence
    evidence.setdefault("reporting_again_at", ts(state.last_seen).isoformat())
    evidence.setdefault("backfilled_readings", 0)
    end = int(datetime.fromisoformat(evidence["reporting_again_at"]).timestamp())
    return deactivate(
        state, profile, AlertKind.DATA_GAP, None, at=now, end=end, hold_down_s=settings.gap_backfill_wait_s
    )


def note_backfilled(state: StackState, event_time: int) -> None:
    """A reading the device sent when asked for a period: if it falls in the stack's open data
    gap, the gap's evidence counts it (and the period it covers)."""
    alert = state.alerts.get((_DATA_GAP, None))
    if alert is None or event_time < alert.start:
        return
    evidence, at = alert.evidence, ts(event_time).isoformat()
    evidence["backfilled_readings"] = evidence.get("backfilled_readings", 0) + 1
    evidence["backfilled_from"] = min(evidence.get("backfilled_from", at), at)
    evidence["backfilled_to"] = max(evidence.get("backfilled_to", at), at)


def on_minute_closed(
    state: StackState, profile: StackProfile, settings: RuleSettings, minute: int, minutes: dict[str, Minute]
) -> list[AlertEvent]:
    """Track invalid-flag periods per parameter; alert when one lasts longer than its cap."""
    events: list[AlertEvent] = []
    at = minute + MINUTE
    marks = state.marks
    for name, m in minutes.items():
        mark = marks.get(name) if marks else None
        if m.valid or m.flag is None:
            if mark is not None:
                events += _close_mark(state, profile, name, mark, at, end=minute)
            continue
        if mark is not None and mark.flag != m.flag:
            events += _close_mark(state, profile, name, mark, at, end=minute)
            mark = None
        if mark is None:
            mark = state.marks[name] = Mark(m.flag, minute, minute)
        mark.last = minute
        cap = settings.mark_caps_s.get(DataFlag(m.flag))
        duration = at - mark.start
        if cap is not None and duration > cap:
            events += activate(
                state, profile, AlertKind.INVALID_MARK, name, at=at, start=mark.start,
                severity=Severity.WARNING,
                reason=f"{name} marked {m.flag} for over {cap / 3600:g} h",
                evidence={"flag": m.flag, "since": ts(mark.start).isoformat(), "cap_s": cap},
                update_every_s=QUIET_UPDATES_S,
            )  # fmt: skip
    return events


def _close_mark(state: StackState, profile: StackProfile, name: str, mark: Mark, at: int, end: int) -> list[AlertEvent]:
    del state.marks[name]
    state.mark_log.append((name, mark.flag, mark.start, end))
    del state.mark_log[:-MARK_LOG_KEEP]
    return deactivate(
        state, profile, AlertKind.INVALID_MARK, name, at=at, end=end, evidence={"duration_s": end - mark.start}
    )
