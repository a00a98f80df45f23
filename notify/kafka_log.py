"""The notifier's Kafka I/O: reading topics from their beginning (committed records only,
with each record's timestamp) and writing delivery records, each confirmed by Kafka before
the caller goes on."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from contracts.errors import InfrastructureError


@dataclass(frozen=True)
class Record:
    topic: str
    value: bytes
    #: the record's Kafka timestamp (the producer's clock when it was written)
    at: datetime


class TopicReader:
    """Reads whole topics (all partitions, from their beginning, or only what comes after
    it started with ``from_end``; read_committed). ``caught_up()`` says whether everything
    written before it started has been read."""

    def __init__(self, bootstrap: str, topics: list[str], *, group: str, from_end: bool = False) -> None:
        try:
            self.consumer = Consumer(
                {
                    "bootstrap.servers": bootstrap,
                    "group.id": group,
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "enable.partition.eof": False,
                }
            )
            assigned: list[TopicPartition] = []
            self.ends: dict[tuple[str, int], int] = {}
            #: the next offset to read per partition, as far as this reader knows
            self.positions: dict[tuple[str, int], int] = {}
            for topic in topics:
                meta = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
                if meta is None or meta.error is not None:
                    raise InfrastructureError(f"kafka at {bootstrap}: no topic {topic} (`cems topics ensure`)")
                for partition in sorted(meta.partitions):
                    low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                    self.ends[(topic, partition)] = high
                    start = high if from_end else low
                    self.positions[(topic, partition)] = start
                    assigned.append(TopicPartition(topic, partition, start))
            self.consumer.assign(assigned)
        except KafkaException as exc:
            raise InfrastructureError(f"kafka at {bootstrap}: {exc}", retryable=True) from exc

    def poll(self, timeout_s: float, max_records: int = 1000) -> list[Record]:
        out: list[Record] = []
        try:
            # wait for the first record only, then take what is already fetched
            first = self.consumer.poll(timeout_s)
            messages = [] if first is None else [first, *self.consumer.consume(max_records - 1, 0)]
        except KafkaException as exc:
            raise InfrastructureError(f"kafka: {exc}", retryable=True) from exc
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise InfrastructureError(f"kafka: reading {msg.topic()}: {error}", retryable=True)
            self.positions[(msg.topic(), msg.partition())] = msg.offset() + 1
            value = msg.value()
            if value is not None:
                out.append(Record(msg.topic(), value, datetime.fromtimestamp(msg.timestamp()[1] / 1000, UTC)))
        return out

    def caught_up(self) -> bool:
        """Read up to the end offsets seen at start (past transaction markers too: the
        consumer's position moves over them, the records read alone would not)."""
        behind = [key for key, end in self.ends.items() if self.positions[key] < end]
        if not behind:
            return True
        for tp in self.consumer.position([TopicPartition(t, p) for t, p in behind]):
            key = (tp.topic, tp.partition)
            self.positions[key] = max(self.positions[key], int(tp.offset))
        return all(self.positions[key] >= self.ends[key] for key in behind)

    def until_caught_up(self, timeout_s: float = 120.0) -> Iterator[Record]:
        deadline = time.monotonic() + timeout_s
        while not self.caught_up():
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    f"kafka: reading {sorted({t for t, _ in self.ends})} took over {timeout_s:.0f}s"
                )
            yield from self.poll(0.5)

    def close(self) -> None:
        self.consumer.close()


class LogWriter:
    """Writes records to one topic; ``write`` returns once Kafka has confirmed the record
    (idempotent producer, acks=all). A background thread serves the delivery callbacks."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 2}
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="notify-log-writer", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    async def write(self, key: str, value: bytes, timeout_s: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def delivered(err: KafkaError | None, _msg: object) -> None:
            def settle() -> None:
                if done.done():
                    return
                if err is None:
                    done.set_result(None)
                else:
                    done.set_exception(InfrastructureError(f"kafka: writing {self.topic}: {err}", retryable=True))

            loop.call_soon_threadsafe(settle)

        try:
            self.producer.produce(self.topic, key=key.encode(), value=value, on_delivery=delivered)
        except (KafkaException, BufferError) as exc:
            raise InfrastructureError(f"kafka: writing {self.topic}: {exc}", retryable=True) from exc
        try:
            await asyncio.wait_for(done, timeout_s)
        except TimeoutError as exc:
            raise InfrastructureError(f"kafka: writing {self.topic}: not confirmed in {timeout_s:.0f}s") from exc

    def close(self) -> None:
        self.producer.flush(10)
        self._stop.set()
        self._thread.join(timeout=5)


def produce_confirmed(bootstrap: str, topic: str, key: str, value: bytes, what: str) -> None:
    """Write one record and wait until Kafka confirmed it (for command-line tools)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    failed: list[str] = []
    try:
        producer.produce(topic, key=key.encode(), value=value,
                         on_delivery=lambda err, _msg: failed.append(str(err)) if err else None)  # fmt: skip
        left = producer.flush(30)
    except (KafkaException, BufferError) as exc:
        raise InfrastructureError(f"kafka at {bootstrap}: {exc}", retryable=True) from exc
    if left or failed:
        raise InfrastructureError(
            f"kafka at {bootstrap}: the {what} was not confirmed: {failed or 'timeout after 30 s'}"
        )
