"""Kafka out: readings keyed by stack (acks=all, idempotent producer) and dead letters."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Producer

from contracts.errors import InfrastructureError
from contracts.reading import DeadLetter, Reading
from contracts.topics import Topics

from .dedup_loader import dedup_header

log = logging.getLogger("cems.gateway.kafka")

OnDone = Callable[[Exception | None], None]


def reading_record(reading: Reading) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """A reading's record: key (the stack: one partition per stack), JSON value, and the
    dedup header the start-up loader reads (``ingest/dedup_loader.py``)."""
    return reading.stack.encode(), reading.model_dump_json().encode(), [dedup_header(reading)]


class KafkaSink:
    """Produces readings and dead letters; ``on_done`` runs once Kafka confirmed (or failed).

    Uses librdkafka (confluent-kafka) for throughput: acks=all, idempotence on (no
    duplicates or reordering from retries), delivery reports served by a poll thread.
    """

    def __init__(self, bootstrap: str, topics: Topics, *, linger_ms: int = 5, client_id: str = "cems-gateway") -> None:
        self.topics = topics
        try:
            self._producer = Producer(
                {
                    "bootstrap.servers": bootstrap,
                    "client.id": client_id,
                    "acks": "all",
                    "enable.idempotence": True,
                    # the same partition for a key as Java clients, aiokafka and Faust use
                    "partitioner": "murmur2_random",
                    "linger.ms": linger_ms,
                    "delivery.timeout.ms": 120_000,
                    "queue.buffering.max.messages": 200_000,
                }
            )
        except KafkaException as exc:
            raise InfrastructureError(f"kafka at {bootstrap}: cannot create producer: {exc}", retryable=True) from exc
        self._closing = threading.Event()
        #: set when a delivery callback failed: what it should have acknowledged never will be
        self.failure: str | None = None
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._poller.start()

    @property
    def alive(self) -> bool:
        """The delivery thread runs and no callback failed (else the gateway must restart)."""
        return self.failure is None and (self._closing.is_set() or self._poller.is_alive())

    def _poll(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.1)

    def send_reading(self, reading: Reading, on_done: OnDone) -> None:
        self._send(self.topics.readings.name, *reading_record(reading), on_done)

    def send_dead_letter(self, letter: DeadLetter, on_done: OnDone) -> None:
        key = (letter.stack or letter.mn or "").encode() or None
        self._send(self.topics.dead_letters.name, key, letter.model_dump_json().encode(), [], on_done)

    def _send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]], on_done: OnDone
    ) -> None:
        def report(err: KafkaError | None, _msg: object) -> None:
            try:
                on_done(None if err is None else KafkaException(err))
            except Exception as exc:  # a bug in the caller's callback: stop rather than go on half-acknowledging
                self.failure = f"{type(exc).__name__}: {exc}"
                log.exception("delivery callback failed")

        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=report)
                return
            except BufferError:  # local queue full: wait for deliveries to drain it
                self._producer.poll(0.05)
            except KafkaException as exc:  # refused before sending (e.g. too large): the caller decides
                on_done(exc)
                return

    def flush(self, timeout_s: float | None = None) -> None:
        remaining = self._producer.flush(-1 if timeout_s is None else timeout_s)
        if remaining:
            raise InfrastructureError(
                f"kafka: {remaining} records still unconfirmed after {timeout_s}s", retryable=True
            )

    def close(self, timeout_s: float = 30) -> None:
        try:
            self.flush(timeout_s)
        finally:
            self._closing.set()
            self._poller.join(5)
