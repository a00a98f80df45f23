"""Drive the engine over a finite, event-time-ordered stream of readings. Pure.

The watermark (``rules.watermark``, the policy the worker uses, with the input as its one
source) is the latest event time fed so far; every known stack is ticked once per
``tick_every`` of watermark progress, so silence is detected from the other stacks'
progress, exactly as the stream processor's timer does. ``finish`` closes the minutes and
hours the data allows without declaring everyone silent at the end of the input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts.alerts import AlertEvent, HourlyAverage
from contracts.emergency import EmergencyResponse
from contracts.reading import Reading

from .engine import DetectionEngine, Output
from .state import StackState
from .watermark import REPLAY_SOURCE, Watermark


@dataclass
class ReplayResult:
    events: list[AlertEvent] = field(default_factory=list)
    hourly: list[HourlyAverage] = field(default_factory=list)
    readings: int = 0
    late: int = 0
    unknown_stacks: set[str] = field(default_factory=set)


class ReplayDriver:
    def __init__(
        self,
        engine: DetectionEngine,
        *,
        tick_every: timedelta = timedelta(minutes=1),
        tick_start: datetime | None = None,
    ) -> None:
        self.engine = engine
        self.states: dict[str, StackState] = {s: engine.new_state(s) for s in engine.profiles}
        self.tick_every = tick_every
        self.next_tick = tick_start
        self.watermark = Watermark(live=False)
        self.now: datetime | None = None
        self.result = ReplayResult()

    def _take(self, out: Output) -> None:
        self.result.events += out.events
        self.result.hourly += out.hourly

    def advance_to(self, now: datetime) -> None:
        if self.next_tick is None:
            self.next_tick = now
        while self.next_tick <= now:
            for state in self.states.values():
                self._take(self.engine.tick(state, self.next_tick)[1])
            self.next_tick += self.tick_every

    def respond(self, response: EmergencyResponse) -> None:
        """A declared emergency response (or a revision) reaches every stack, as the worker
        applies one on each partition."""
        for state in self.states.values():
            self._take(self.engine.respond(state, response)[1])

    def feed(self, reading: Reading) -> None:
        self.result.readings += 1
        state = self.states.get(reading.stack)
        if state is None:
            self.result.unknown_stacks.add(reading.stack)
            return
        self.watermark.observe(REPLAY_SOURCE, reading.event_time)
        self.now = self.watermark.now_for(REPLAY_SOURCE) or reading.event_time
        self.advance_to(self.now)
        _, out = self.engine.evaluate(state, reading, self.now)
        self.result.late += out.late
        self._take(out)

    def feed_all(self, readings: Iterable[Reading]) -> ReplayDriver:
        for reading in readings:
            self.feed(reading)
        return self

    def finish(self, until: datetime | None = None) -> ReplayResult:
        """Tick on to ``until`` (judging silence), then close what the data allows."""
        if until is not None:
            self.advance_to(until)
        if self.now is not None:
            end = max(self.now, until or self.now) + timedelta(seconds=self.engine.settings.grace_s + 60)
            for state in self.states.values():
                self._take(self.engine.flush(state, end)[1])
        return self.result
