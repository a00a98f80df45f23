"""The detection engine: per stack, ``evaluate(state, reading, now)`` and ``tick(state, now)``.

``now`` is the event-time watermark the adapter maintains (the latest event time it has
seen, or in live operation the wall clock if that is later): nothing here reads a clock.
Minutes close once ``now`` has passed their end by ``grace_s``; closed minutes run the
minute rules (marks, bypass, flat lines, Zs, early warnings) in time order, and closed hours
the hourly rules (exceedance, limit hugging) with the hour's averages. Gaps are checked on
every call. The state is mutated in place and returned; decisions come back as events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from contracts.alerts import AlertEvent, HourlyAverage
from contracts.emergency import EmergencyResponse
from contracts.evidence import check_evidence
from contracts.reading import Reading

from . import bypass, electricity, emergency, exceedance, falsification, gaps
from .aggregation import HOUR, MINUTE, add_reading, close_minute, hourly_averages
from .alerts import acknowledge
from .config import RuleSettings, StackProfile
from .state import StackState


@dataclass(slots=True)
class Output:
    events: list[AlertEvent] = field(default_factory=list)
    hourly: list[HourlyAverage] = field(default_factory=list)
    late: bool = False


class DetectionEngine:
    def __init__(self, profiles: dict[str, StackProfile], settings: RuleSettings | None = None) -> None:
        self.profiles = profiles
        self.settings = settings or RuleSettings()

    def new_state(self, stack: str) -> StackState:
        return StackState(stack=stack)

    def evaluate(self, state: StackState, reading: Reading, now: datetime) -> tuple[StackState, Output]:
        profile = self.profiles.get(reading.stack)
        if profile is None:
            return state, Output()
        accepted = add_reading(state, reading, self.settings)
        if accepted and reading.backfilled:
            gaps.note_backfilled(state, int(reading.event_time.timestamp()))
        out = self._advance(state, profile, int(now.timestamp()))
        out.late = not accepted
        return state, out

    def tick(self, state: StackState, now: datetime) -> tuple[StackState, Output]:
        profile = self.profiles.get(state.stack)
        if profile is None:
            return state, Output()
        return state, self._advance(state, profile, int(now.timestamp()))

    def flush(self, state: StackState, now: datetime) -> tuple[StackState, Output]:
        """Close what ``now`` allows without judging silence (end of a finite replay)."""
        profile = self.profiles.get(state.stack)
        if profile is None:
            return state, Output()
        return state, self._advance(state, profile, int(now.timestamp()), check_gaps=False)

    def respond(self, state: StackState, response: EmergencyResponse) -> tuple[StackState, Output]:
        """A declared emergency response (or a revision of it): held by the stack if it covers
        the stack's district; its hours are judged as they close."""
        profile = self.profiles.get(state.stack)
        if profile is None:
            return state, Output()
        out = Output(events=emergency.on_response(state, profile, self.settings, response))
        for event in out.events:
            check_evidence(event.kind, event.evidence)
        return state, out

    def acknowledge(
        self, state: StackState, alert_id: str, officer: str, now: datetime, note: str | None = None
    ) -> list[AlertEvent]:
        profile = self.profiles[state.stack]
        return acknowledge(state, profile, alert_id, officer, int(now.timestamp()), note)

    # -- internals ---------------------------------------------------------------------------
    def _advance(self, state: StackState, profile: StackProfile, now: int, check_gaps: bool = True) -> Output:
        settings = self.settings
        out = Output()
        if state.first_tick is None:
            state.first_tick = now
        horizon = now - settings.grace_s
        limit = horizon - horizon % MINUTE  # minutes starting before this have ended >= grace ago
        open_minutes = state.open_minutes
        due = [m for m in open_minutes if m < limit] if open_minutes and min(open_minutes) < limit else []
        due.sort()
        for minute in due:
            self._close_hours(state, profile, before=minute - minute % HOUR, out=out)
            minutes = close_minute(state, minute)  # also counted in its hour, for the early warning
            out.events += gaps.on_minute_closed(state, profile, settings, minute, minutes)
            out.events += bypass.on_minute_closed(state, profile, settings, minute, minutes)
            out.events += falsification.on_minute_closed(state, profile, settings, minute, minutes)
            out.events += exceedance.on_minute_closed(state, profile, settings, minute, minutes)
            if profile.facilities:
                out.events += electricity.on_minute_closed(state, profile, settings, minute, minutes)
            # only minutes that held data close: a clock running ahead of any data (live mode
            # in total silence) must not make a later backfill of that time "late"
            state.closed_until = max(state.closed_until or 0, minute + MINUTE)
        self._close_hours(state, profile, before=limit - limit % HOUR, out=out)
        if check_gaps:
            out.events += gaps.check_gaps(state, profile, settings, now)
            if profile.facilities:
                out.events += electricity.check_meters(state, profile, settings, now)
        for event in out.events:  # each kind's evidence has its fields, with their types
            check_evidence(event.kind, event.evidence)
        return out

    def _close_hours(self, state: StackState, profile: StackProfile, before: int, out: Output) -> None:
        if not state.hours or min(state.hours) + HOUR > before:
            return  # the usual case: only the open hour, not due
        due = [h for h in state.hours if h + HOUR <= before]
        due.sort()
        for hour in due:
            accs = state.hours.pop(hour)
            averages = hourly_averages(profile, self.settings, hour, accs)
            out.hourly += averages.values()
            out.events += exceedance.on_hour_closed(state, profile, self.settings, hour, averages)
            out.events += falsification.on_hour_closed(state, profile, self.settings, hour, averages)
            out.events += emergency.on_hour_closed(state, profile, self.settings, hour, averages)
            state.hours_closed_until = max(state.hours_closed_until or 0, hour + HOUR)
