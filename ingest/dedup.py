"""Duplicate memory: the same device, data kind and event time is one reading. Pure.

**Identity.** A reading's *stream* is its device and data kind (``mn|kind``); its identity is
the stream and its event time as an instant in epoch microseconds (so ``08:15+08:00`` and
``00:15Z`` are the same reading, which the ISO text of ``Reading.dedup_key`` does not see).

**Window.** The memory covers event times from its *horizon* on: ``now - window`` for the
newest ``now`` it was shown, never moving back. It is advanced in sweeps (at most one per
``sweep_s`` of ``now``) that drop every event time before the new horizon. Its size is bounded
by what arrives in one window, not by a count: per stream a sorted ``array('q')`` of event
times, 8 bytes a reading (10,000 stacks x 1 reading a minute x 24 h = 14.4 million times,
~120 MB).

**Invariant.** The memory holds every key it accepted (``add`` answered ``NEW``, not
discarded since) or loaded whose event time is at or after the horizon; sweeps drop only
keys before the new horizon, and the loader (``ingest/dedup_loader.py``) loads every key in
Kafka with an event time at or after the first horizon. ``add`` answers ``NEW`` only for an
event time at or after the horizon whose key it does not hold, and ``BEYOND_WINDOW`` for
one before the horizon, which it cannot judge and which must then be refused, never stored.
So: **a reading is accepted only if no reading of the same identity is in Kafka from before
this process started or was accepted by it.** What the gateway adds for this to mean "no
duplicates in Kafka":

- the window equals the oldest event time the validator accepts (``max_age_s``, one
  setting): anything the memory has swept is refused as ``stale_timestamp`` before it is
  looked up, and a reading validated just before a sweep passed it gets ``BEYOND_WINDOW``;
- a key is added before its record is produced and removed only if Kafka refused it;
- the readings topic keeps records longer than the window (retention 14 days);
- one gateway process at a time receives a given stream: each instance keeps its own
  memory, which covers other instances only as far as Kafka had their records when it
  started. MQTT shards split the enterprises (``--shard I/N``), so this holds for MQTT; an
  HJ 212 device that sends the same reading over TCP to two live instances, or over TCP to
  one and MQTT to another, is not covered;
- a restarted gateway reads Kafka after the previous process is gone (a produce request
  still in flight from a dead process, landing after the loader read the end offsets, is
  not seen).
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from contracts.reading import Reading

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = 1_000_000


class Seen(StrEnum):
    """What the memory says about a reading's key."""

    NEW = "new"  # not seen: remembered now, to be stored
    DUPLICATE = "duplicate"  # already accepted or already in Kafka
    BEYOND_WINDOW = "beyond_window"  # before the horizon: cannot tell, so never store it
    FULL = "full"  # the stream holds more than one reading a second of the window: refuse it


def epoch_us(t: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact, no float rounding)."""
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t.isoformat()}: event times carry a time zone")
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def from_epoch_us(us: int) -> datetime:
    """Back from epoch microseconds, exactly (no float rounding)."""
    return _EPOCH + timedelta(microseconds=us)


def stream_id(mn: str, kind: str) -> str:
    """The stream a reading belongs to: its device and its data kind."""
    return f"{mn}|{kind}"


def reading_stream(reading: Reading) -> str:
    return stream_id(reading.mn, reading.kind.value)


class DedupMemory:
    """Per stream the event times accepted within the window (see the module docstring)."""

    def __init__(
        self, window_s: float, now_us: int, *, sweep_s: float = 60.0, max_per_stream: int | None = None
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        if sweep_s < 0:
            raise ValueError("sweep_s must not be negative")
        #: a device minting event times (microseconds apart) cannot grow its stream without
        #: bound, nor make each insert slow for everyone: one reading a second of the window
        self.max_per_stream = max_per_stream if max_per_stream is not None else math.ceil(window_s)
        self.window_us = round(window_s * _US)
        self.sweep_us = round(sweep_s * _US)
        self._horizon_us = now_us - self.window_us
        self._streams: dict[str, array[int]] = {}
        self._keys = 0

    # -- queries --------------------------------------------------------------------------------
    @property
    def horizon_us(self) -> int:
        """The oldest event time the memory can judge."""
        return self._horizon_us

    @property
    def horizon(self) -> datetime:
        return from_epoch_us(self._horizon_us)

    def __len__(self) -> int:
        return self._keys

    @property
    def streams(self) -> int:
        return len(self._streams)

    @property
    def nbytes(self) -> int:
        """Bytes held by the event-time arrays (without dictionary and key overhead)."""
        return sum(a.buffer_info()[1] * a.itemsize for a in self._streams.values())

    def latest(self) -> Iterator[tuple[str, str, int]]:
        """Each stream's MN, data kind and the latest event time it holds (epoch microseconds)."""
        for stream, times in self._streams.items():
            if times:
                mn, kind = stream.rsplit("|", 1)
                yield mn, kind, times[-1]

    def holds(self, stream: str, event_us: int) -> bool:
        times = self._streams.get(stream)
        if times is None:
            return False
        i = bisect.bisect_left(times, event_us)
        return i < len(times) and times[i] == event_us

    # -- changes --------------------------------------------------------------------------------
    def add(self, stream: str, event_us: int, now_us: int) -> Seen:
        """Judge a reading that arrived at ``now_us``; remember it if it is ``NEW``."""
        if now_us - self.window_us >= self._horizon_us + self.sweep_us:
            self.sweep(now_us)
        if event_us < self._horizon_us:
            return Seen.BEYOND_WINDOW
        times = self._streams.get(stream)
        if times is not None and len(times) >= self.max_per_stream:
            return Seen.DUPLICATE if self.holds(stream, event_us) else Seen.FULL
        return Seen.NEW if self._insert(stream, event_us) else Seen.DUPLICATE

    def add_reading(self, reading: Reading) -> Seen:
        """``add`` for a validated reading, judged at its arrival time."""
        return self.add(reading_stream(reading), epoch_us(reading.event_time), epoch_us(reading.received_at))

    def discard(self, stream: str, event_us: int) -> None:
        """Forget a key (Kafka refused its record, so it was not stored)."""
        times = self._streams.get(stream)
        if times is None:
            return
        i = bisect.bisect_left(times, event_us)
        if i < len(times) and times[i] == event_us:
            del times[i]
            self._keys -= 1
            if not times:
                del self._streams[stream]

    def discard_reading(self, reading: Reading) -> None:
        self.discard(reading_stream(reading), epoch_us(reading.event_time))

    def load(self, keys: Iterable[tuple[str, int]]) -> int:
        """Remember keys already stored (read back from Kafka); those before the horizon are
        left out. Returns how many were new to the memory."""
        horizon = self._horizon_us
        streams = self._streams
        added = 0
        for stream, event_us in keys:
            if event_us < horizon:
                continue
            times = streams.get(stream)
            if times is None:
                streams[stream] = array("q", (event_us,))
                added += 1
            elif event_us > times[-1]:  # the usual case: a stream's records come in time order
                times.append(event_us)
                added += 1
            else:
                i = bisect.bisect_left(times, event_us)
                if i == len(times) or times[i] != event_us:
                    times.insert(i, event_us)
                    added += 1
        self._keys += added
        return added

    def sweep(self, now_us: int) -> int:
        """Move the horizon to ``now_us - window`` (never back) and drop what is before it.
        Returns how many keys were dropped."""
        horizon = now_us - self.window_us
        if horizon <= self._horizon_us:
            return 0
        self._horizon_us = horizon
        dropped = 0
        for stream in list(self._streams):
            times = self._streams[stream]
            if times[0] >= horizon:
                continue
            i = bisect.bisect_left(times, horizon)
            dropped += i
            if i == len(times):
                del self._streams[stream]
            else:
                del times[:i]
        self._keys -= dropped
        return dropped

    def _insert(self, stream: str, event_us: int) -> bool:
        times = self._streams.get(stream)
        if times is None:
            self._streams[stream] = array("q", (event_us,))
        elif event_us > times[-1]:
            times.append(event_us)
        else:
            i = bisect.bisect_left(times, event_us)
            if i < len(times) and times[i] == event_us:
                return False
            times.insert(i, event_us)
        self._keys += 1
        return True
