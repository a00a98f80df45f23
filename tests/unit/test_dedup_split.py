"""Duplicate memory and split-packet reassembly (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from confluent_kafka import KafkaError, TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from contracts.errors import InfrastructureError
from contracts.hj212 import Hj212Packet
from contracts.reading import DataKind, Reading, Source
from ingest.dedup import DedupMemory, Seen, epoch_us, stream_id
from ingest.dedup_loader import DEDUP_HEADER, LEGACY_DEDUP_HEADER, _read, _Span, dedup_header, parse_dedup_key
from ingest.split import SplitAssembler

T0 = datetime(2026, 11, 23, tzinfo=UTC)


H_US = 3600 * 1_000_000
NOW_US = epoch_us(T0)
S = stream_id("M1", "realtime")


def test_dedup_detects_repeats_per_stream_and_instant() -> None:
    memory = DedupMemory(window_s=24 * 3600, now_us=NOW_US)
    assert memory.add(S, NOW_US - H_US, NOW_US) is Seen.NEW
    assert memory.add(S, NOW_US - H_US, NOW_US) is Seen.DUPLICATE
    # another kind, another device: other streams
    assert memory.add(stream_id("M1", "minute"), NOW_US - H_US, NOW_US) is Seen.NEW
    assert memory.add(stream_id("M2", "realtime"), NOW_US - H_US, NOW_US) is Seen.NEW
    # the same instant written with another offset is the same reading
    at_8 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone(timedelta(hours=8)))
    assert epoch_us(at_8) == epoch_us(T0)
    assert memory.add(S, epoch_us(at_8), NOW_US) is Seen.NEW
    assert memory.add(S, epoch_us(T0), NOW_US) is Seen.DUPLICATE
    assert memory.add(S, epoch_us(T0) + 1, NOW_US) is Seen.NEW  # a microsecond later: another reading
    assert (len(memory), memory.streams) == (5, 3)


def test_out_of_order_inserts_keep_every_time_findable() -> None:
    memory = DedupMemory(window_s=24 * 3600, now_us=NOW_US)
    order = [5, 1, 9, 3, 7, 2, 8, 0, 6, 4]
    for m in order:
        assert memory.add(S, NOW_US - m * 60_000_000, NOW_US) is Seen.NEW
    for m in reversed(order):
        assert memory.add(S, NOW_US - m * 60_000_000, NOW_US) is Seen.DUPLICATE
    assert len(memory) == 10
    assert memory.nbytes >= 10 * 8


@given(st.lists(st.integers(0, 3 * 24 * 3600), max_size=60), st.lists(st.integers(0, 3 * 24 * 3600), max_size=60))
def test_memory_agrees_with_a_set_within_the_window(first: list[int], then: list[int]) -> None:
    """Whatever the order: NEW exactly for keys not seen before and not older than the horizon."""
    window_us = 24 * H_US
    memory = DedupMemory(window_s=window_us / 1e6, now_us=NOW_US, sweep_s=0)
    seen: set[int] = set()
    memory.load((S, NOW_US - s * 1_000_000) for s in first)
    seen.update(NOW_US - s * 1_000_000 for s in first if NOW_US - s * 1_000_000 >= NOW_US - window_us)
    assert len(memory) == len(seen)
    for i, s in enumerate(then):
        now = NOW_US + i * 600_000_000  # the clock moves on ten minutes a reading
        event = NOW_US - s * 1_000_000
        got = memory.add(S, event, now)
        if event < now - window_us:
            assert got is Seen.BEYOND_WINDOW
        elif event in seen:
            assert got is Seen.DUPLICATE
        else:
            assert got is Seen.NEW
            seen.add(event)
        assert memory.horizon_us == now - window_us


def test_window_edge_is_inclusive_and_sweeps_drop_by_event_time() -> None:
    window_s = 3600
    memory = DedupMemory(window_s=window_s, now_us=NOW_US, sweep_s=60)
    edge = NOW_US - H_US
    assert memory.add(S, edge - 1, NOW_US) is Seen.BEYOND_WINDOW  # just before the horizon
    assert memory.add(S, edge, NOW_US) is Seen.NEW  # at the horizon: still judged
    assert memory.add(S, edge + 30_000_000, NOW_US) is Seen.NEW
    # 59 s later: no sweep yet (at most one a minute), the horizon stays
    assert memory.add(S, edge, NOW_US + 59_000_000) is Seen.DUPLICATE
    assert memory.horizon_us == edge
    # 60 s later: swept; the keys before the new horizon are gone, and so is judging them
    assert memory.add(S, NOW_US, NOW_US + 60_000_000) is Seen.NEW
    assert memory.horizon_us == edge + 60_000_000
    assert not memory.holds(S, edge) and not memory.holds(S, edge + 30_000_000)
    assert memory.add(S, edge + 30_000_000, NOW_US + 60_000_000) is Seen.BEYOND_WINDOW
    assert len(memory) == 1


def test_a_reading_checked_late_is_never_taken_for_new_after_a_sweep() -> None:
    """Two threads: one validated a reading at t, another swept at t + 2 min first."""
    memory = DedupMemory(window_s=3600, now_us=NOW_US, sweep_s=60)
    event = NOW_US - H_US + 30_000_000  # valid for an arrival at NOW_US (30 s inside the window)
    assert memory.add(S, event, NOW_US) is Seen.NEW
    memory.add(stream_id("M2", "realtime"), NOW_US, NOW_US + 120_000_000)  # sweeps past ``event``
    assert memory.add(S, event, NOW_US) is Seen.BEYOND_WINDOW  # not NEW: it may be in Kafka
    assert memory.horizon_us == NOW_US + 120_000_000 - H_US  # the horizon never moves back
    memory.sweep(NOW_US)
    assert memory.horizon_us == NOW_US + 120_000_000 - H_US


def test_silent_streams_are_swept_away_and_discard_forgets_one_key() -> None:
    memory = DedupMemory(window_s=3600, now_us=NOW_US)
    memory.load([(stream_id(f"X{i}", "realtime"), NOW_US - 60_000_000) for i in range(100)])
    memory.load([(S, NOW_US - 60_000_000), (S, NOW_US - 60_000_000), (S, NOW_US - 2 * H_US)])
    assert (len(memory), memory.streams) == (101, 101)  # repeated and too old keys not kept
    memory.discard(S, NOW_US - 60_000_000)
    memory.discard(S, NOW_US)  # not there: nothing happens
    assert memory.add(S, NOW_US - 60_000_000, NOW_US) is Seen.NEW
    assert memory.sweep(NOW_US + H_US) == 101
    assert (len(memory), memory.streams, memory.nbytes) == (0, 0, 0)


def test_reading_helpers_use_arrival_time_as_now() -> None:
    reading = Reading(
        enterprise="e", stack="s", mn="M1", event_time=T0 - timedelta(hours=2), kind=DataKind.MINUTE,
        values={}, source=Source.MQTT_JSON, received_at=T0,
    )  # fmt: skip
    memory = DedupMemory(window_s=3600, now_us=NOW_US - 2 * H_US)
    assert memory.add_reading(reading) is Seen.BEYOND_WINDOW  # 2 h old at arrival, window 1 h
    memory = DedupMemory(window_s=3 * 3600, now_us=NOW_US)
    assert memory.add_reading(reading) is Seen.NEW
    assert memory.holds(stream_id("M1", "minute"), epoch_us(T0 - timedelta(hours=2)))
    assert memory.add_reading(reading) is Seen.DUPLICATE
    memory.discard_reading(reading)
    assert memory.add_reading(reading) is Seen.NEW
    with pytest.raises(ValueError, match="positive"):
        DedupMemory(0, NOW_US)
    with pytest.raises(ValueError, match="naive"):
        epoch_us(datetime(2026, 11, 23))


def test_dedup_header_round_trip_and_old_header() -> None:
    at = datetime(2026, 11, 23, 8, 15, 0, 500, tzinfo=timezone(timedelta(hours=8)))
    reading = Reading(
        enterprise="e", stack="s", mn="4190|01", event_time=at, kind=DataKind.REALTIME, values={},
        source=Source.MQTT_JSON, received_at=T0,
    )  # fmt: skip
    key = (stream_id("4190|01", "realtime"), epoch_us(reading.event_time))
    assert parse_dedup_key(*dedup_header(reading)) == key
    assert parse_dedup_key(LEGACY_DEDUP_HEADER, reading.dedup_key.encode()) == key
    assert parse_dedup_key("other", b"x") is None


def _part(
    pno: int, pnum: int, groups: tuple[tuple[tuple[str, str], ...], ...], qn: str = "20261123000000000"
) -> Hj212Packet:
    return Hj212Packet(cn="2051", mn="M1", qn=qn, flag=7, pnum=pnum, pno=pno, cp=groups)


def test_split_packet_parts_in_any_order_merge_into_one() -> None:
    assembler: SplitAssembler[str] = SplitAssembler()
    time = (("DataTime", "20261123000000"),)
    assert assembler.add(_part(2, 3, (time, (("a21026-Avg", "2"),))), "m2", T0) is None
    assert assembler.add(_part(1, 3, (time, (("a21002-Avg", "1"),))), "m1", T0) is None
    done = assembler.add(_part(3, 3, ((("a19001-Avg", "9"),),)), "m3", T0)
    assert done is not None
    assert done.packet.cp == (time, (("a21002-Avg", "1"),), (("a21026-Avg", "2"),), (("a19001-Avg", "9"),))
    assert (done.packet.pnum, done.packet.pno, done.packet.flag) == (None, None, 5)  # split bit cleared
    assert sorted(done.tokens) == ["m1", "m2", "m3"]
    assert len(assembler) == 0


def test_incomplete_split_packet_expires_with_its_tokens() -> None:
    assembler: SplitAssembler[str] = SplitAssembler(timeout=timedelta(seconds=60))
    assembler.add(_part(1, 2, ()), "m1", T0)
    assert assembler.expire(T0 + timedelta(seconds=30)) == []
    (gone,) = assembler.expire(T0 + timedelta(seconds=61))
    assert (gone.mn, gone.received, gone.pnum, gone.tokens) == ("M1", [1], 2, ["m1"])


# -- the loader's reading loop, over a stand-in consumer ---------------------------------------
class _Err:
    def __init__(self, code: int) -> None:
        self._code = code

    def code(self) -> int:
        return self._code

    def fatal(self) -> bool:
        return False


class _Msg:
    def __init__(
        self, partition: int, offset: int, headers: list[tuple[str, bytes]] | None = None,
        value: bytes | None = None, error: _Err | None = None,
    ) -> None:  # fmt: skip
        self._p, self._o, self._h, self._v, self._e = partition, offset, headers, value, error

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._h

    def value(self) -> bytes | None:
        return self._v

    def error(self) -> _Err | None:
        return self._e

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o


class _Consumer:
    """Hands out the given batches, then the last one for ever."""

    def __init__(self, batches: list[list[_Msg]]) -> None:
        self.batches = batches
        self.assigned: list[tuple[int, int]] = []

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = [(tp.partition, tp.offset) for tp in tps]

    def consume(self, num_messages: int, timeout: float) -> list[_Msg]:
        return self.batches.pop(0) if len(self.batches) > 1 else self.batches[0]


def test_loader_reads_every_header_form_until_each_partition_ends() -> None:
    t = NOW_US - H_US
    doc = {"mn": "M3", "kind": "minute", "event_time": datetime.fromtimestamp(t / 1e6, UTC).isoformat()}
    eof = _Err(KafkaError._PARTITION_EOF)
    batches = [
        [
            _Msg(0, 10, [(DEDUP_HEADER, f"{S}|{t}".encode())]),
            _Msg(1, 20, [(LEGACY_DEDUP_HEADER, f"M2|realtime|{doc['event_time']}".encode())]),
            _Msg(0, 11, [("other", b"x")], json.dumps(doc).encode()),  # no dedup header: from the value
            _Msg(0, 12, [(DEDUP_HEADER, b"garbage")], b"not json"),  # unreadable
            _Msg(0, 13, [(DEDUP_HEADER, f"{S}|{NOW_US - 3 * H_US}".encode())]),  # before the horizon
        ],
        [_Msg(0, 14, error=eof), _Msg(1, 21, error=eof)],
        [],
    ]  # fmt: skip
    consumer = _Consumer(batches)
    memory = DedupMemory(window_s=2 * 3600, now_us=NOW_US)
    plan = [_Span(0, 10, 14), _Span(1, 20, 21), _Span(2, 5, 5)]
    records, unreadable = _read(consumer, "t", plan, memory, 5.0, 60.0, "here")
    assert consumer.assigned == [(0, 10), (1, 20)]  # an empty partition is not read
    assert (records, unreadable) == (5, 1)
    assert memory.holds(S, t) and memory.holds(stream_id("M2", "realtime"), t)
    assert memory.holds(stream_id("M3", "minute"), t)
    assert len(memory) == 3


def test_loader_that_gets_only_errors_stops_with_the_topic_named() -> None:
    transport = [_Msg(-1, -1, error=_Err(KafkaError._TRANSPORT))]
    consumer = _Consumer([transport])
    memory = DedupMemory(window_s=3600, now_us=NOW_US)
    with pytest.raises(InfrastructureError, match=r"loading t: nothing read for 0s .*\(partitions 0 at 0\.\.9\)"):
        _read(consumer, "t", [_Span(0, 0, 9)], memory, 0.2, 60.0, "loading t")
