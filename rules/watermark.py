"""The event-time watermark: the detection's "now", one policy for the worker and replay. Pure.

Readings arrive from several sources at their own pace (Kafka partitions fetched in batches,
or one file in ``cems replay``). "Now" is the *minimum* over sources of the latest event time
each has delivered, ignoring sources that have been idle for ``idle_s`` of arrival time (a
partition holding only a silent stack must not stop the clock). When every source is idle,
live mode takes the wall clock, so total silence is noticed; while data flows its event time
rules, so a backfill of the recent past is judged as it happened. Event mode (replaying
history) never looks at the wall clock.

Each source's records are judged at that source's own time (``now_for``: the latest event
time it delivered), as long as it is active; an idle source's at the common "now". Sources
read at uneven speeds (a backlog in Kafka: one partition hours ahead of another) thus close
their minutes as their data goes by, and the state the worker holds, and writes to its
changelog, stays the size of a few minutes per stack: under the common "now" alone, the
faster partitions' readings would wait in the rules' open minutes for the slowest one. Within
a source, readings of different stacks are ordered by arrival, which follows event time
closely in live flow.

Arrival times are whatever monotonic clock the caller keeps (the worker: ``time.monotonic()``;
a replay: none, so sources never go idle). Nothing here reads a clock.
"""

from __future__ import annotations

import math
from datetime import datetime

#: a replay has one source that never idles: its watermark is the latest event time fed
REPLAY_SOURCE = 0


class Watermark:
    def __init__(self, live: bool, idle_s: float = math.inf) -> None:
        self.live = live
        self.idle_s = idle_s
        self.latest: dict[int, datetime] = {}
        self.arrived: dict[int, float] = {}

    def observe(self, source: int, event_time: datetime, arrival_s: float = 0.0) -> None:
        current = self.latest.get(source)
        if current is None or event_time > current:
            self.latest[source] = event_time
        self.arrived[source] = arrival_s

    def now(self, arrival_s: float = 0.0, wall: datetime | None = None) -> datetime | None:
        active = [t for p, t in self.latest.items() if arrival_s - self.arrived[p] <= self.idle_s]
        if active:
            return min(active)  # data is flowing: its event time is the clock (also for backfills)
        latest = max(self.latest.values(), default=None)
        if self.live and wall is not None:
            return wall if latest is None else max(latest, wall)  # total silence: the wall clock
        return latest

    def forget(self) -> None:
        """Start again from nothing: the sources will be read again from earlier positions
        (a consumer-group rebalance seeks back to the committed offsets), and times seen past
        those positions must not judge the records before them."""
        self.latest.clear()
        self.arrived.clear()

    def now_for(self, source: int, arrival_s: float = 0.0, wall: datetime | None = None) -> datetime | None:
        """The time ``source``'s records are judged at: its own latest event time while it
        delivers, the common ``now`` once it has been idle for ``idle_s``."""
        latest = self.latest.get(source)
        if latest is not None and arrival_s - self.arrived[source] <= self.idle_s:
            return latest
        return self.now(arrival_s, wall)
