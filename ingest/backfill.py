"""Backfill: ask a device for the readings of a period the platform missed. Pure: time is passed in.

What a broker crash can still lose (messages it acknowledged but had not yet saved or
delivered), a device keeps: HJ 212 data acquisition devices store their history. So when a
stream (one device's data of one kind) reports again after a hole longer than
``tolerance`` x its reporting interval, the planner schedules a history request for the
hole. It waits ``delay_s`` first: readings that were only late (a broker redelivering its
queue after a restart) fill the hole meanwhile and the request is dropped; otherwise it is
sent and, for ``answer_window_s``, readings inside the period count as backfilled. A
backfilled reading the platform already has is a duplicate and stored once, like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

from contracts.commands import HistoryRequest
from contracts.hj212 import format_time
from contracts.reading import DataKind

Stream = tuple[str, DataKind]  # (mn, kind)

SECOND = timedelta(seconds=1)
#: the period between two readings of each kind (real-time: the stack's reporting interval)
KIND_INTERVAL_S = {DataKind.MINUTE: 60, DataKind.HOURLY: 3600, DataKind.DAILY: 86400}


@dataclass
class _Hole:
    request: HistoryRequest
    interval_s: float
    due_at: datetime
    #: the device's form of the request: "json" or "hj212"
    protocol: str
    sent_at: datetime | None = None
    #: event times accepted inside the hole before the request went out
    seen: list[datetime] = field(default_factory=list)

    def filled(self, tolerance: float) -> bool:
        points = [self.request.begin - SECOND, *sorted(self.seen), self.request.end + SECOND]
        return all((b - a).total_seconds() <= tolerance * self.interval_s for a, b in pairwise(points))


@dataclass(frozen=True)
class DueRequest:
    request: HistoryRequest
    protocol: str


class BackfillPlanner:
    def __init__(
        self,
        *,
        tolerance: float = 1.5,
        delay_s: float = 5.0,
        answer_window_s: float = 600.0,
        max_span_s: float = 24 * 3600.0,
        max_holes: int = 10_000,
        max_holes_per_stream: int = 4,
    ) -> None:
        self.tolerance = tolerance
        self.delay = timedelta(seconds=delay_s)
        self.answer_window = timedelta(seconds=answer_window_s)
        self.max_span = timedelta(seconds=max_span_s)
        self.max_holes = max_holes
        #: a device that jumps about in time opens holes only for itself: it cannot crowd out others
        self.max_holes_per_stream = max_holes_per_stream
        self._last: dict[Stream, datetime] = {}
        self._holes: dict[Stream, list[_Hole]] = {}
        self.dropped_holes = 0  # holes not asked for because too many were open

    def __len__(self) -> int:
        return sum(len(h) for h in self._holes.values())

    def seed(self, mn: str, kind: DataKind, last: datetime) -> None:
        """What a stream last sent before this gateway started (from the duplicate memory),
        so a hole that began before a restart is found when the stream reports again."""
        stream = (mn, kind)
        current = self._last.get(stream)
        if current is None or last > current:
            self._last[stream] = last

    def observe(
        self, mn: str, kind: DataKind, event_time: datetime, interval_s: float, protocol: str, now: datetime
    ) -> None:
        """A reading was accepted: note it, and schedule a request if it ends a hole."""
        stream = (mn, kind)
        for hole in self._holes.get(stream, ()):
            if hole.sent_at is None and hole.request.covers(event_time):
                hole.seen.append(event_time)
        last = self._last.get(stream)
        if last is not None and event_time <= last:
            return  # late or redelivered: it may fill a hole, it opens none
        self._last[stream] = event_time
        if last is None or (event_time - last).total_seconds() <= self.tolerance * interval_s:
            return
        begin, end = max(last + SECOND, now - self.max_span), event_time - SECOND
        if begin > end:
            return
        holes = self._holes.setdefault(stream, [])
        if len(holes) >= self.max_holes_per_stream or len(self) >= self.max_holes:
            self.dropped_holes += 1
            if not holes:
                del self._holes[stream]
            return
        request = HistoryRequest(mn, kind, begin, end, request_id=format_time(now, with_millis=True))
        holes.append(_Hole(request, interval_s, now + self.delay, protocol))

    def due(self, now: datetime) -> list[DueRequest]:
        """Requests to send now; holes filled meanwhile and answers past their window are dropped."""
        out: list[DueRequest] = []
        for stream in list(self._holes):
            keep: list[_Hole] = []
            for hole in self._holes[stream]:
                if hole.sent_at is None:
                    if now < hole.due_at:
                        keep.append(hole)
                    elif not hole.filled(self.tolerance):
                        hole.sent_at = now
                        out.append(DueRequest(hole.request, hole.protocol))
                        keep.append(hole)
                elif now - hole.sent_at <= self.answer_window:
                    keep.append(hole)
            if keep:
                self._holes[stream] = keep
            else:
                del self._holes[stream]
        return out

    def is_backfill(self, mn: str, kind: DataKind, event_time: datetime) -> bool:
        """Is this reading inside a period the device was asked for?"""
        return any(h.sent_at is not None and h.request.covers(event_time) for h in self._holes.get((mn, kind), ()))
