"""One batch of the worker's records through the rules: states, outputs and dead letters.

The Faust agent (``streams.detector``) hands each batch of consumed records here and writes
back what comes out, all in one Kafka transaction. Kept apart from Faust so that the failure
policy is tested on its own:

- a record that cannot be decoded, whose key is not the stack it carries, or whose stack
  the registry does not know goes to the dead-letter topic with its reason; the batch goes on;
- a reading for a minute already closed (late) is judged without, counted, and reported as a
  ``late`` dead letter (the original record, whole);
- if the rules raise on a record, that stack's state is rebuilt from the batch's start by
  re-running its earlier records of the batch (the engine is deterministic), the record goes
  to the dead letters as ``internal_error`` with the exception, and the batch goes on: one bad
  record or one bug never becomes a crash loop;
- a stored state this release cannot read (``StateFormatError``) is not a record's fault: it
  stops the worker with a message naming the stack and the formats it reads.

Decoded states are kept between batches, reused while the table still holds the very bytes
they were encoded to (the table replaces them on recovery or rebalance: then they are decoded
again). A state is written back only when its encoding changed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

from aiokafka.partitioner import DefaultPartitioner
from pydantic import ValidationError

from contracts.alerts import Acknowledgement
from contracts.emergency import EmergencyResponse
from contracts.reading import DeadLetter, RejectReason
from rules.engine import DetectionEngine, Output
from rules.state import StackState
from rules.watermark import Watermark

from .codec import decode_reading, decode_state, encode_state

log = logging.getLogger("cems.worker")


class Kind(Enum):
    READING = "reading"
    TICK = "tick"
    ACKNOWLEDGEMENT = "acknowledgement"
    #: a declared emergency response (or a revision), on every partition of the emergency topic
    RESPONSE = "response"


@dataclass(frozen=True)
class Record:
    kind: Kind
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    @property
    def origin(self) -> str:
        return f"kafka:{self.topic}/{self.partition}@{self.offset}"


@dataclass
class BatchResult:
    #: stack -> its state's new encoding (only the states that changed)
    writes: dict[str, bytes] = field(default_factory=dict)
    #: stack -> what the rules decided, in the order of its records
    outputs: dict[str, list[Output]] = field(default_factory=dict)
    #: (the source partition, the dead letter): it goes out in that partition's transaction
    dead_letters: list[tuple[int, DeadLetter]] = field(default_factory=list)
    readings: int = 0
    ticks: int = 0
    acknowledgements: int = 0
    responses: int = 0
    late: int = 0


Op = Callable[[StackState], Output]


def stacks_by_partition(stacks: list[str], partitions: int) -> dict[int, list[str]]:
    """Which stacks each partition of a topic keyed by stack id holds: the key -> partition rule
    of Kafka's clients (murmur2 of the key), as the gateway's producer places readings."""
    partitioner = DefaultPartitioner()
    every = list(range(partitions))
    out: dict[int, list[str]] = {}
    for stack in stacks:
        out.setdefault(partitioner(stack.encode(), every, every), []).append(stack)
    return out


def _decode_failure(exc: ValidationError) -> RejectReason:
    malformed = any(e["type"] == "json_invalid" for e in exc.errors())
    return RejectReason.MALFORMED_JSON if malformed else RejectReason.SCHEMA


class BatchProcessor:
    def __init__(
        self,
        engine: DetectionEngine,
        watermark: Watermark,
        stacks_by_partition: dict[int, list[str]],
        *,
        arrival: Callable[[], float],
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.watermark = watermark
        self.stacks_by_partition = stacks_by_partition
        self.arrival = arrival
        self.wall = wall
        #: stack -> (the stored bytes, the state they decode to)
        self.cache: dict[str, tuple[bytes | None, StackState]] = {}

    def state_bytes(self) -> int:
        """The encoded size of the states held (as last stored)."""
        return sum(len(raw) for raw, _ in self.cache.values() if raw)

    def process(self, records: list[Record], stored: Callable[[str], bytes | None]) -> BatchResult:
        batch = _Batch(self, stored)
        for record in records:
            batch.take(record)
        return batch.finish()


class _Batch:
    def __init__(self, proc: BatchProcessor, stored: Callable[[str], bytes | None]) -> None:
        self.proc = proc
        self.engine = proc.engine
        self.stored = stored
        self.result = BatchResult()
        self.states: dict[str, StackState] = {}
        self.raw: dict[str, bytes | None] = {}
        self.ops: dict[str, list[Op]] = {}

    # -- states --------------------------------------------------------------------------------
    def _decode(self, stack: str, raw: bytes | None) -> StackState:
        return decode_state(raw, stack) if raw else self.engine.new_state(stack)

    def state(self, stack: str) -> StackState:
        state = self.states.get(stack)
        if state is None:
            raw = self.stored(stack)
            hit = self.proc.cache.pop(stack, None)  # popped: a failed batch leaves no stale state
            state = hit[1] if hit is not None and hit[0] is raw else self._decode(stack, raw)
            self.states[stack], self.raw[stack] = state, raw
        return state

    def apply(self, stack: str, op: Op, record: Record) -> Output | None:
        state = self.state(stack)
        try:
            out = op(state)
        except Exception as exc:  # a bug in the rules on this record: never a crash loop
            log.exception("rules failed on %s (stack %s); the record goes to the dead letters", record.origin, stack)
            self._rebuild(stack)
            self.dead_letter(record, RejectReason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", stack=stack)
            return None
        self.ops.setdefault(stack, []).append(op)
        self.result.outputs.setdefault(stack, []).append(out)
        return out

    def _rebuild(self, stack: str) -> None:
        """The stack's state as at the batch's start, with the batch's earlier records re-run."""
        state = self._decode(stack, self.raw[stack])
        outputs = []
        try:
            outputs = [op(state) for op in self.ops.get(stack, [])]
        except Exception:  # not deterministic after all: leave this stack as it was stored
            log.exception("stack %s: re-running its batch failed; its state stays as stored", stack)
            state = self._decode(stack, self.raw[stack])
            self.ops.pop(stack, None)
            outputs = []
        self.states[stack] = state
        self.result.outputs[stack] = outputs

    # -- records -------------------------------------------------------------------------------
    def dead_letter(self, record: Record, reason: RejectReason, detail: str, stack: str | None = None) -> None:
        letter = DeadLetter.of_payload(reason, detail, record.origin, record.value, self.proc.wall(), stack=stack)
        self.result.dead_letters.append((record.partition, letter))

    def take(self, record: Record) -> None:
        if record.kind is Kind.READING:
            self._reading(record)
        elif record.kind is Kind.TICK:
            self._tick(record)
        elif record.kind is Kind.RESPONSE:
            self._response(record)
        else:
            self._acknowledgement(record)

    def _known(self, record: Record, stack: str) -> bool:
        """The record is keyed by the stack it is about, and the registry knows that stack;
        otherwise it goes to the dead letters."""
        if record.key != stack.encode():
            self.dead_letter(record, RejectReason.KEY_MISMATCH, f"keyed {record.key!r}, a record of {stack}", stack)
            return False
        if stack not in self.engine.profiles:
            detail = f"stack {stack} is not in the worker's registry"
            self.dead_letter(record, RejectReason.UNKNOWN_DEVICE, detail, stack)
            return False
        return True

    def _reading(self, record: Record) -> None:
        try:
            reading = decode_reading(record.value)
        except ValidationError as exc:
            self.dead_letter(record, _decode_failure(exc), str(exc))
            return
        stack = reading.stack
        if not self._known(record, stack):
            return
        arrival = self.proc.arrival()
        self.proc.watermark.observe(record.partition, reading.event_time, arrival)
        now = self.proc.watermark.now_for(record.partition, arrival) or reading.event_time
        self.result.readings += 1
        out = self.apply(stack, lambda state: self.engine.evaluate(state, reading, now)[1], record)
        if out is not None and out.late:
            self.result.late += 1
            self.dead_letter(
                record,
                RejectReason.LATE,
                f"reading of {stack} at {reading.event_time.isoformat()} came after its minute was closed "
                f"(watermark {now.isoformat()}): judged without it",
                stack,
            )

    def _tick(self, record: Record) -> None:
        try:
            wall = datetime.fromisoformat(json.loads(record.value)["wall_time"])
        except (ValueError, TypeError, KeyError) as exc:
            self.dead_letter(record, RejectReason.SCHEMA, f"not a tick: {exc}")
            return
        now = self.proc.watermark.now_for(record.partition, self.proc.arrival(), wall)
        if now is None:
            return
        self.result.ticks += 1
        # one tick per partition carries the watermark to every stack the partition holds; a
        # keyed tick (written by earlier releases) to its stack only
        stacks = [record.key.decode()] if record.key else self.proc.stacks_by_partition.get(record.partition, [])
        for stack in stacks:
            if stack in self.engine.profiles:
                self.apply(stack, lambda state: self.engine.tick(state, now)[1], record)

    def _response(self, record: Record) -> None:
        """A declared response reaches every stack of the partition it was written to (each
        revision is written to every partition: ``cems.emergency.publish``)."""
        try:
            response = EmergencyResponse.model_validate_json(record.value)
        except ValidationError as exc:
            self.dead_letter(record, _decode_failure(exc), str(exc))
            return
        self.result.responses += 1
        for stack in self.proc.stacks_by_partition.get(record.partition, []):
            if stack in self.engine.profiles:
                self.apply(stack, lambda state: self.engine.respond(state, response)[1], record)

    def _acknowledgement(self, record: Record) -> None:
        try:
            ack = Acknowledgement.model_validate_json(record.value)
        except ValidationError as exc:
            self.dead_letter(record, _decode_failure(exc), str(exc))
            return
        if not self._known(record, ack.stack):
            return
        at = self.proc.watermark.now(self.proc.arrival()) or ack.at
        self.result.acknowledgements += 1
        self.apply(
            ack.stack,
            lambda state: Output(events=self.engine.acknowledge(state, ack.alert_id, ack.officer, at, ack.note)),
            record,
        )

    def finish(self) -> BatchResult:
        for stack, state in self.states.items():
            raw = self.raw[stack]
            encoded = encode_state(state)
            if encoded == raw:
                self.proc.cache[stack] = (raw, state)
            else:
                self.result.writes[stack] = encoded
                self.proc.cache[stack] = (encoded, state)
        return self.result
