"""The gateway core: one path for every message, whatever it came in by.

``Gateway.handle`` validates a message, drops duplicates, reassembles split HJ 212 packets,
and hands the result to Kafka: a ``Reading`` to the readings topic, anything refused to the
dead-letter topic with its reason. The message's ``ack`` (the MQTT PUBACK, or for HJ 212 the
9014 answer) is called only after Kafka confirmed the record, so a crash before that leaves
the message with the broker or the device, which sends it again. A record Kafka refuses for
good makes the gateway stop (``failed`` is set) without acknowledging anything more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from contracts.commands import encode_history
from contracts.hj212 import data_answer, encode_packet
from contracts.mqtt_topics import CMD_CHANNEL, HJ212_CHANNEL
from contracts.mqtt_topics import topic as mqtt_topic
from contracts.reading import DEAD_LETTER_WHOLE_BYTES, DataKind, DeadLetter, Reading, RejectReason, Source

from . import metrics
from .backfill import KIND_INTERVAL_S, BackfillPlanner
from .dedup import DedupMemory, Seen, epoch_us
from .split import SplitAssembler, SplitRefused
from .validation import ReadingValidator, Rejected, TopicAddress, parse_topic, peer_address

log = logging.getLogger("cems.gateway")

Ack = Callable[[], None]
Answer = Callable[[bytes], None]

#: the largest payload the gateway reads (a reading is under 2 KB; an HJ 212 packet under 10 KB)
MAX_PAYLOAD_BYTES = 64 * 1024


#: how a history request reaches a device that sent a reading by this path
_ROUTE = {Source.MQTT_JSON: "json", Source.MQTT_HJ212: "hj212", Source.TCP_HJ212: "tcp", Source.REPLAY: "json"}


#: refusals that say the sender is not who it claims (over TCP: not authenticated)
AUTHENTICATION_REASONS = frozenset(
    {
        RejectReason.UNKNOWN_DEVICE,
        RejectReason.MN_TOPIC_MISMATCH,
        RejectReason.HJ212_PASSWORD,
        RejectReason.SOURCE_NOT_ALLOWED,
    }
)


def _refusal(reason: RejectReason, detail: str, reading: Reading) -> Rejected:
    """A refusal of a reading that passed validation (its enterprise, stack and MN known)."""
    return Rejected(reason, detail, enterprise=reading.enterprise, stack=reading.stack, mn=reading.mn)


def _no_ack() -> None:
    """HJ 212 over TCP has no acknowledgement but the answer packet."""


class Sink(Protocol):
    def send_reading(self, reading: Reading, on_done: Callable[[Exception | None], None]) -> None: ...

    def send_dead_letter(self, letter: DeadLetter, on_done: Callable[[Exception | None], None]) -> None: ...


@dataclass(frozen=True)
class _Part:
    """A part of a split packet, held until the packet is whole."""

    ack: Ack
    payload: bytes
    origin: str


@dataclass(frozen=True)
class _Pending:
    """What to do once Kafka confirmed: acknowledge these, answer with that."""

    acks: list[Ack]
    answer: tuple[Answer, bytes] | None = None


class Gateway:
    def __init__(
        self,
        validator: ReadingValidator,
        sink: Sink,
        dedup: DedupMemory,
        clock: Callable[[], datetime],
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        backfill: BackfillPlanner | None = None,
    ) -> None:
        self.max_payload_bytes = max_payload_bytes
        self.validator = validator
        self.sink = sink
        self.dedup = dedup
        self.clock = clock
        self.splits: SplitAssembler[_Part] = SplitAssembler()
        self.backfill = backfill if backfill is not None else BackfillPlanner()
        #: stack devices and meters alike: a meter is a device of its own (MN, interval, topic)
        self._senders = validator.senders
        #: the connection each registered HJ 212 TCP device last sent a valid packet on (by MN)
        self._tcp_routes: dict[str, Answer] = {}
        #: readings produced and not yet confirmed, with repeats that arrived meanwhile
        self._inflight: dict[tuple[str, DataKind, int], list[_Pending]] = {}
        self.failed = threading.Event()
        self.failure: Exception | None = None
        self._lock = threading.Lock()

    # -- entry points ---------------------------------------------------------------------------
    def handle_mqtt(self, topic: str, payload: bytes, ack: Ack, answer: Answer) -> None:
        """A message from MQTT; ``answer`` publishes an HJ 212 answer to the device's ack topic."""
        origin = f"mqtt:{topic}"
        self._guarded(origin, payload, ack, lambda held: self._handle_mqtt(topic, origin, payload, held, answer))

    def handle_tcp(self, peer: str, payload: bytes, answer: Answer) -> bool:
        """A packet pushed over a TCP socket by a legacy device. True when it came from a
        registered device that authenticated (PW, allowed source), whatever else was wrong."""
        origin = f"tcp:{peer}"
        return self._guarded(
            origin,
            payload,
            _no_ack,
            lambda held: self._handle_packet(payload, origin, Source.TCP_HJ212, None, held, answer, peer_address(peer)),
        )

    # -- internals ------------------------------------------------------------------------------
    def _guarded(self, origin: str, payload: bytes, ack: Ack, handle: Callable[[list[Ack]], bool]) -> bool:
        """Whatever arrives ends as a reading or a dead letter, and the next message is handled:
        a payload over the size limit is refused unread, and an exception nobody foresaw
        becomes an ``internal_error`` dead letter (with the exception type) and a metric,
        releasing every acknowledgement the input held (all parts of a split packet)."""
        if len(payload) > self.max_payload_bytes:
            detail = f"{len(payload):,} bytes (at most {self.max_payload_bytes:,})"
            self._refuse(Rejected(RejectReason.PAYLOAD_TOO_LARGE, detail), origin, payload, _Pending([ack]))
            return False
        held = [ack]
        try:
            return handle(held)
        except Exception as exc:  # the point: no input may stop ingest
            kind = type(exc).__name__
            metrics.INTERNAL_ERRORS.labels(kind).inc()
            log.exception("internal error on input", extra={"origin": origin, "error_type": kind})
            detail = f"{kind}: {exc}"[:500]
            self._refuse(Rejected(RejectReason.INTERNAL_ERROR, detail), origin, payload, _Pending(held))
            return False

    def _handle_mqtt(self, topic: str, origin: str, payload: bytes, held: list[Ack], answer: Answer) -> bool:
        try:
            address = parse_topic(topic)
        except Rejected as rej:
            self._refuse(rej, origin, payload, _Pending(list(held)))
            return False
        if address.channel == HJ212_CHANNEL:
            return self._handle_packet(payload, origin, Source.MQTT_HJ212, address, held, answer)
        received_at = self.clock()
        try:
            reading = self.validator.from_json(address, payload, received_at)
        except Rejected as rej:
            self._refuse(rej, origin, payload, _Pending(list(held)))
            return False
        self._accept(reading, origin, payload, _Pending(list(held)))
        return True

    def _handle_packet(
        self,
        payload: bytes,
        origin: str,
        source: Source,
        address: TopicAddress | None,
        held: list[Ack],
        answer: Answer,
        peer: IPv4Address | IPv6Address | None = None,
    ) -> bool:
        """One HJ 212 packet (or part); ``held`` are the acknowledgements in play, all parts'
        once a split packet is whole. Returns whether its sender authenticated."""
        received_at = self.clock()
        try:
            packet = self.validator.parse_hj212(payload, address)
        except Rejected as rej:
            self._refuse(rej, origin, payload, _Pending(list(held)))
            return False
        if packet.is_split and packet.pnum is not None:
            try:  # each part: only its device's own parts may join it
                self.validator.authenticate(packet, source, address, peer)
            except Rejected as rej:
                self._refuse(rej, origin, payload, _Pending(list(held)))
                return False
            try:
                with self._lock:
                    assembled = self.splits.add(packet, _Part(held[0], payload, origin), received_at, origin)
            except SplitRefused as exc:
                refused = Rejected(RejectReason.HJ212_FIELD, str(exc), mn=packet.mn)
                self._refuse(refused, origin, payload, _Pending(list(held)))
                return True
            self.expire_splits()
            if assembled is None:
                return True  # acknowledged with the last part
            packet = assembled.packet
            held[:] = [part.ack for part in assembled.tokens]
        reply = (answer, encode_packet(data_answer(packet))) if packet.ack_requested else None
        try:
            reading = self.validator.from_packet(packet, received_at, source, address, peer)
        except Rejected as rej:
            self._refuse(rej, origin, payload, _Pending(list(held)))
            return rej.reason not in AUTHENTICATION_REASONS
        if source is Source.TCP_HJ212:  # a request for its history goes back on this connection
            with self._lock:
                self._tcp_routes[reading.mn] = answer
        self._accept(reading, origin, payload, _Pending(list(held), reply))
        return True

    def _accept(self, reading: Reading, origin: str, payload: bytes, pending: _Pending) -> None:
        key = (reading.mn, reading.kind, epoch_us(reading.event_time))
        with self._lock:
            seen = self.dedup.add_reading(reading)
            fresh = seen is Seen.NEW
            try:
                backfilled = self.backfill.is_backfill(reading.mn, reading.kind, reading.event_time)
                if fresh:
                    self.backfill.observe(
                        reading.mn,
                        reading.kind,
                        reading.event_time,
                        self._interval_s(reading),
                        _ROUTE[reading.source],
                        self.clock(),
                    )
                    self._inflight[key] = []
                #: a repeat of a reading still on its way to Kafka is acknowledged with it, not before
                waiting = self._inflight.get(key) if seen is Seen.DUPLICATE else None
                if waiting is not None:
                    waiting.append(pending)
            except BaseException:
                if fresh:
                    self.dedup.discard_reading(reading)
                    self._inflight.pop(key, None)
                raise
        if seen is Seen.FULL:
            cap = self.dedup.max_per_stream
            detail = f"more than {cap:,} {reading.kind.value} readings of MN {reading.mn} in the window"
            self._refuse(_refusal(RejectReason.TOO_FREQUENT, detail, reading), origin, payload, pending)
            return
        if seen is Seen.BEYOND_WINDOW:  # a sweep for a later arrival passed it while it was validated
            detail = (
                f"event time {reading.event_time.isoformat()} is before the duplicate memory's window "
                f"(from {self.dedup.horizon.isoformat()})"
            )
            self._refuse(_refusal(RejectReason.STALE_TIMESTAMP, detail, reading), origin, payload, pending)
            return
        if not fresh:
            after = _Pending([]) if waiting is not None else pending  # the original's delivery completes it
            if backfilled:  # asked for a period, the device sent what arrived after all
                metrics.BACKFILL_DUPLICATES.inc()
                self._complete(after)
                return
            metrics.DUPLICATES.labels(reading.source.value).inc()
            detail = f"{reading.kind.value} reading of {reading.event_time.isoformat()} already accepted"
            # the device asked for an answer and Kafka has the data: answer again
            self._refuse(_refusal(RejectReason.DUPLICATE, detail, reading), origin, payload, after)
            return
        started = time.perf_counter()

        def done(error: Exception | None) -> None:
            with self._lock:
                repeats = self._inflight.pop(key, [])
                if error is not None:
                    self.dedup.discard_reading(reading)
            if error is not None:
                self._fatal(error, f"producing reading {reading.dedup_key}")
                return
            metrics.PRODUCE_LATENCY.observe(time.perf_counter() - started)
            metrics.ACCEPTED.labels(reading.source.value).inc()
            self._complete(pending)
            for repeat in repeats:
                self._complete(repeat)

        try:
            if backfilled:
                metrics.BACKFILLED.inc()
                reading = reading.model_copy(update={"backfilled": True})
            self.sink.send_reading(reading, done)
        except BaseException:
            with self._lock:
                self.dedup.discard_reading(reading)
                self._inflight.pop(key, None)
            raise

    def expire_splits(self) -> None:
        """Refuse split packets whose parts did not all arrive in time: each part a dead letter
        of its own (its payload, where it came from), so its acknowledgement is released."""
        with self._lock:
            expired = self.splits.expire(self.clock())
        for gone in expired:
            detail = f"split packet QN={gone.qn} got parts {gone.received} of {gone.pnum} before timing out"
            for part in gone.tokens:
                self._refuse(
                    Rejected(RejectReason.HJ212_FIELD, detail, mn=gone.mn),
                    part.origin,
                    part.payload,
                    _Pending([part.ack]),
                )

    def _interval_s(self, reading: Reading) -> float:
        """How often the reading's stream reports: real-time data as the registry says for its
        sender (a stack's device: the stack's interval; a meter: its own)."""
        sender = self._senders.get(reading.mn)
        return KIND_INTERVAL_S.get(reading.kind) or (sender.reporting_interval_s if sender else 60)

    def backfill_requests(self) -> list[tuple[str, bytes]]:
        """History requests due now, as (MQTT topic, payload) for the devices' command topics."""
        with self._lock:
            due = self.backfill.due(self.clock())
            metrics.BACKFILL_HOLES_OPEN.set(len(self.backfill))
            metrics.BACKFILL_HOLES_DROPPED.set(self.backfill.dropped_holes)
        out = []
        for item in due:
            sender = self._senders.get(item.request.mn)
            if sender is None:
                continue
            pw = sender.device.hj212_pw
            payload = encode_history(item.request, "json" if item.protocol == "json" else "hj212", pw)
            if item.protocol == "tcp":
                route = self._tcp_routes.get(item.request.mn)
                if route is None:
                    metrics.BACKFILL_UNREACHABLE.inc()
                    continue
                route(payload)  # written on the device's connection, if it is still open
            metrics.BACKFILL_REQUESTS.inc()
            log.info(
                "asking a device for a period it sent but the platform missed",
                extra={
                    "mn": item.request.mn,
                    "kind": item.request.kind.value,
                    "begin": item.request.begin.isoformat(),
                    "end": item.request.end.isoformat(),
                },
            )
            if item.protocol != "tcp":
                out.append((mqtt_topic(sender.enterprise.id, sender.topic_level, CMD_CHANNEL), payload))
        return out

    def _refuse(self, rej: Rejected, origin: str, payload: bytes, pending: _Pending) -> None:
        metrics.REJECTED.labels(rej.reason.value).inc()
        letter = DeadLetter.of_payload(
            rej.reason,
            rej.detail,
            origin,
            payload,
            self.clock(),
            whole_up_to=min(self.max_payload_bytes, DEAD_LETTER_WHOLE_BYTES),
            enterprise=rej.enterprise,
            stack=rej.stack,
            mn=rej.mn,
        )
        log.info(
            "refused",
            extra={"reason": rej.reason.value, "detail": rej.detail, "origin": origin, "mn": rej.mn},
        )

        def done(error: Exception | None) -> None:
            if error is not None:
                self._fatal(error, f"producing dead letter ({rej.reason.value})")
                return
            self._complete(pending)

        self.sink.send_dead_letter(letter, done)

    def _complete(self, pending: _Pending) -> None:
        if self.failed.is_set():
            return  # stop acknowledging once anything failed: the broker will redeliver
        for ack in pending.acks:
            ack()
        if pending.answer is not None:
            answer, data = pending.answer
            answer(data)

    def _fatal(self, error: Exception, what: str) -> None:
        log.error("kafka refused a record; stopping without acknowledging", extra={"what": what, "error": str(error)})
        self.failure = error
        self.failed.set()
