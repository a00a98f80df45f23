"""The worker's batch processor: the failure policy, state reuse and writes, ticks per partition.

Real rules (``DetectionEngine``) on hand-made records; no Kafka (the Faust adapter around this
is tested in tests/integration/test_worker.py and test_pipeline.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from contracts.emergency import Action, Level
from contracts.reading import Reading, RejectReason
from contracts.registry import Measure
from rules.engine import DetectionEngine, Output
from rules.state import StackState
from rules.watermark import Watermark
from streams.codec import decode_state, encode_state
from streams.processor import BatchProcessor, Kind, Record
from tests.rulekit import T0, emergency_profile, emergency_response, facility_profile, profile, reading_of

VALUES = {"flow": 100.0, "temperature": 50.0, "humidity": 10.0, "o2": 6.0, "so2": 20.0, "nox": 30.0, "pm": 4.0}
STACKS = {0: ["s1", "s2"], 1: ["s3"]}
WALL = datetime(2026, 11, 29, tzinfo=UTC)


def engine() -> DetectionEngine:
    return DetectionEngine({s: profile(s) for stacks in STACKS.values() for s in stacks})


class Table:
    """What the Faust table holds: stack -> bytes (the processor's writes applied)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, stack: str) -> bytes | None:
        return self.data.get(stack)


offsets = count()


def rec(kind: Kind, value: bytes, key: str | None, partition: int = 0) -> Record:
    return Record(kind, f"t.{kind.value}", partition, next(offsets), key.encode() if key else None, value)


def reading_record(r: Reading, partition: int = 0, key: str | None = None) -> Record:
    return rec(Kind.READING, r.model_dump_json().encode(), key or r.stack, partition)


def minute_readings(stack: str, minutes: range) -> list[Reading]:
    return [reading_of(T0 + timedelta(minutes=m, seconds=30), VALUES, stack) for m in minutes]


def run(proc: BatchProcessor, table: Table, records: list[Record]) -> dict[str, list[Output]]:
    result = proc.process(records, table.get)
    table.data.update(result.writes)
    return result.outputs


def processor(eng: DetectionEngine | None = None) -> BatchProcessor:
    return BatchProcessor(eng or engine(), Watermark(live=False), STACKS, arrival=lambda: 0.0, wall=lambda: WALL)


def test_bad_records_go_to_the_dead_letters_with_their_reason_and_the_batch_goes_on() -> None:
    proc, table = processor(), Table()
    good = minute_readings("s1", range(3))
    other = reading_of(T0, VALUES, "nowhere")
    records = [
        reading_record(good[0]),
        rec(Kind.READING, b'{"stack": "s1", ', "s1"),  # cut short
        rec(Kind.READING, json.dumps({"stack": "s1", "values": 3}).encode(), "s1"),
        reading_record(good[1], key="s2"),  # keyed as another stack: would reach the wrong state
        reading_record(other),
        rec(Kind.ACKNOWLEDGEMENT, b"not json", "s1"),
        rec(Kind.TICK, b"{}", None),
        reading_record(good[2]),
    ]
    result = proc.process(records, table.get)
    reasons = [(d.reason, d.stack) for _, d in result.dead_letters]
    assert reasons == [
        (RejectReason.MALFORMED_JSON, None),
        (RejectReason.SCHEMA, None),
        (RejectReason.KEY_MISMATCH, "s1"),
        (RejectReason.UNKNOWN_DEVICE, "nowhere"),
        (RejectReason.MALFORMED_JSON, None),
        (RejectReason.SCHEMA, None),
    ]
    partition, letter = result.dead_letters[0]
    assert partition == 0
    assert letter.origin == f"kafka:t.reading/0@{records[1].offset}"
    assert letter.payload_text == '{"stack": "s1", '
    assert letter.received_at == WALL
    assert result.readings == 2  # the two good ones, in the same batch after the bad ones
    state = decode_state(result.writes["s1"], "s1")
    assert state.last_seen == int(good[2].event_time.timestamp())


def test_a_late_reading_is_judged_without_counted_and_reported() -> None:
    proc, table = processor(), Table()
    run(proc, table, [reading_record(r) for r in minute_readings("s1", range(20))])
    late = reading_of(T0 + timedelta(minutes=2, seconds=10), VALUES, "s1")  # minute 2 closed long ago
    result = proc.process([reading_record(late)], table.get)
    assert result.late == 1
    [(_, letter)] = result.dead_letters
    assert letter.reason is RejectReason.LATE and letter.stack == "s1"
    assert Reading.model_validate_json(letter.payload_text) == late  # kept whole, replayable
    assert "judged without it" in letter.detail
    assert decode_state(result.writes["s1"], "s1").late_readings == 1


class Exploding(DetectionEngine):
    """The rules with a bug that fires on one reading (its so2 value)."""

    def evaluate(self, state: StackState, reading: Reading, now: datetime) -> tuple[StackState, Output]:
        if reading.values["so2"].value == 666.0:
            state.last_seen = 0  # half-way through changing the state
            raise ZeroDivisionError("boom")
        return super().evaluate(state, reading, now)


def test_rules_failing_on_a_record_rebuild_the_stack_and_dead_letter_only_that_record() -> None:
    readings = minute_readings("s1", range(10))
    bad = reading_of(T0 + timedelta(minutes=5, seconds=45), {**VALUES, "so2": 666.0}, "s1")
    broken, table = processor(Exploding(engine().profiles)), Table()
    records = [reading_record(r) for r in readings[:6]] + [reading_record(bad)]
    records += [reading_record(r) for r in readings[6:]]
    result = broken.process(records, table.get)
    [(_, letter)] = result.dead_letters
    assert letter.reason is RejectReason.INTERNAL_ERROR and letter.stack == "s1"
    assert letter.detail == "ZeroDivisionError: boom"
    # the same as if the bad record had never come: state and outputs
    clean = processor().process([reading_record(r) for r in readings], Table().get)
    assert result.writes["s1"] == clean.writes["s1"]
    assert result.outputs == clean.outputs


def test_decoded_states_are_reused_while_the_table_holds_their_bytes_and_written_only_when_changed() -> None:
    proc, table = processor(), Table()
    run(proc, table, [reading_record(r) for r in minute_readings("s1", range(3))])
    stored = table.data["s1"]
    cached = proc.cache["s1"][1]
    tick = rec(Kind.TICK, json.dumps({"wall_time": WALL.isoformat()}).encode(), None, partition=0)
    first = proc.process([tick], table.get)
    assert proc.cache["s1"][1] is cached  # not decoded again
    assert set(first.writes) == {"s2"}  # s1's state is as it was; s2's is new (first tick)
    table.data.update(first.writes)
    again = proc.process([tick], table.get)
    assert "s1" not in again.writes  # nothing changed: nothing written
    # the table replaced the bytes (recovery, rebalance): the state is decoded from them
    table.data["s1"] = bytes(bytearray(table.data["s1"]))  # equal bytes, another object
    proc.process([tick], table.get)
    assert proc.cache["s1"][1] is not cached
    assert encode_state(proc.cache["s1"][1]) == table.data["s1"] == stored


def test_a_tick_reaches_every_stack_of_its_partition_and_a_keyed_tick_its_stack_only() -> None:
    proc, table = processor(), Table()
    value = json.dumps({"wall_time": WALL.isoformat()}).encode()
    firsts = [reading_record(minute_readings(s, range(1))[0], partition=p) for p, ss in STACKS.items() for s in ss]
    run(proc, table, firsts)
    later = T0 + timedelta(hours=1)
    proc.watermark.observe(0, later)
    proc.watermark.observe(1, later)
    result = proc.process([rec(Kind.TICK, value, None, partition=0)], table.get)
    assert set(result.writes) == {"s1", "s2"}  # s3 lives on partition 1
    assert result.ticks == 1
    result = proc.process([rec(Kind.TICK, value, "s3", partition=1)], table.get)
    assert set(result.writes) == {"s3"}


@pytest.mark.parametrize("partition", [0, 1])
def test_each_partition_is_judged_at_its_own_event_time(partition: int) -> None:
    """A partition far ahead closes its own minutes; it does not wait for the slowest."""
    proc, table = processor(), Table()
    slow = STACKS[1 - partition][0]
    fast = STACKS[partition][0]
    run(proc, table, [reading_record(minute_readings(slow, range(1))[0], partition=1 - partition)])
    run(proc, table, [reading_record(r, partition=partition) for r in minute_readings(fast, range(180))])
    state = decode_state(table.data[fast], fast)
    assert len(state.open_minutes) <= 7  # the grace period's worth, not three hours
    assert state.hours_closed_until == int((T0 + timedelta(hours=2)).timestamp())


def test_a_declared_response_reaches_every_stack_of_its_partition() -> None:
    """Each revision is written to every partition (``cems.emergency.publish``): the copy on a
    partition is held by that partition's stacks it concerns; a record that is not a response is
    a dead letter."""
    limit = Measure(facility="b1", action=Action.LIMIT, limit_pct=50)
    eng = DetectionEngine({
        s: emergency_profile(s, facilities=[facility_profile("b1")], reduction={Level.ORANGE: [limit]})
        for stacks in STACKS.values() for s in stacks
    })  # fmt: skip
    proc, table = processor(eng), Table()
    response = emergency_response(T0, T0 + timedelta(hours=6))
    result = proc.process(
        [rec(Kind.RESPONSE, response.model_dump_json().encode(), response.id, partition=0),
         rec(Kind.RESPONSE, b'{"id": "r2"}', "r2", partition=1)],
        table.get,
    )  # fmt: skip
    table.data.update(result.writes)
    assert result.responses == 1
    assert sorted(result.writes) == ["s1", "s2"]  # partition 0's stacks; s3 (partition 1) untouched
    for stack in ("s1", "s2"):
        held = decode_state(table.data[stack], stack).emergency.responses
        assert list(held) == ["r1"] and held["r1"].level == "orange"
    ((partition, letter),) = result.dead_letters
    assert partition == 1 and letter.reason is RejectReason.SCHEMA
