"""Fill the duplicate memory at start-up from the readings topic, reading only its window.

The memory must hold every reading in Kafka whose event time is at or after its horizon
(``now - window``, see ``ingest/dedup.py``). A reading is produced after it arrived
(record timestamp = the producer's CreateTime >= arrival) and arrives at most
``max_future_s`` before its event time, so every such reading is in a record with a
timestamp at or after ``horizon - max_future_s``. The loader asks Kafka for the first offset
of each partition at that time (``offsets_for_times``, Kafka's time index: every record
before it has an older timestamp), reads from there to the end offsets taken at the start,
and decodes only the dedup header of each record. Start-up time therefore follows the
number of readings produced in one window, whatever the topic's size or retention.

The header ``cems-dedup`` is ``{mn}|{kind}|{event time in epoch microseconds}``: cheap to
parse, readable in ``kcat``. Records written before it carry ``cems-dedup-key``
(``Reading.dedup_key``, ISO 8601 event time) and are read as well; a record with neither
header (written by another producer) is decoded from its JSON value.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from contracts.errors import InfrastructureError
from contracts.reading import Reading

from .dedup import DedupMemory, epoch_us, reading_stream, stream_id

log = logging.getLogger("cems.gateway")

DEDUP_HEADER = "cems-dedup"
LEGACY_DEDUP_HEADER = "cems-dedup-key"
#: read this much further back than the window needs: covers a broker clock behind the
#: producers' if a topic is switched to LogAppendTime
CLOCK_SLACK_S = 60.0
_BATCH = 1_000


def dedup_header(reading: Reading) -> tuple[str, bytes]:
    """The header the gateway writes with every reading; only this loader reads it."""
    return dedup_header_for(reading_stream(reading), epoch_us(reading.event_time))


def dedup_header_for(stream: str, event_us: int) -> tuple[str, bytes]:
    return DEDUP_HEADER, f"{stream}|{event_us}".encode()


def parse_dedup_key(name: str, value: bytes) -> tuple[str, int] | None:
    """(stream, event epoch-us) from a dedup header, or ``None`` if ``name`` is not one."""
    if name == DEDUP_HEADER:
        stream, _, us = value.rpartition(b"|")
        return stream.decode(), int(us)
    if name == LEGACY_DEDUP_HEADER:
        text, _, iso = value.decode().rpartition("|")
        return text, epoch_us(datetime.fromisoformat(iso))
    return None


def _record_key(headers: list[tuple[str, bytes]] | None, value: bytes | None) -> tuple[str, int] | None:
    """A record's key from its dedup header, else from its JSON value; ``None`` if neither reads."""
    for name, raw in headers or ():
        try:
            key = parse_dedup_key(name, raw)
        except (ValueError, UnicodeDecodeError):
            break
        if key is not None:
            return key
    try:
        doc = json.loads(value or b"")
        return stream_id(doc["mn"], doc["kind"]), epoch_us(datetime.fromisoformat(doc["event_time"]))
    except (ValueError, KeyError, TypeError):
        return None


def consumer_config(bootstrap: str, client_id: str) -> dict[str, object]:
    """A consumer tuned to read a span of the readings topic once, fast, committing nothing."""
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "group.id": client_id,  # required by the client; the loader assigns, never joins or commits
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "isolation.level": "read_uncommitted",
        # a sought offset removed by retention meanwhile: read what is left, do not skip to the end
        "auto.offset.reset": "earliest",
        "fetch.max.bytes": 16 * 1024 * 1024,
        "max.partition.fetch.bytes": 4 * 1024 * 1024,
        "queued.max.messages.kbytes": 16 * 1024,
        "queued.min.messages": 1_000_000,
        # when the local queue is full, look again after 10 ms (default: a second, which
        # left the consumer idle most of the time: 3 times slower here)
        "fetch.queue.backoff.ms": 10,
        "logger": logging.getLogger("cems.gateway.kafka"),  # librdkafka's lines as structured logs
    }


@dataclass(frozen=True)
class LoadReport:
    topic: str
    partitions: int
    #: records read (from the seek offsets to the end offsets)
    records: int
    #: keys in the memory afterwards (records before the horizon or repeated are not)
    keys: int
    #: records whose key could not be read (no header, no readable value): not in the memory
    unreadable: int
    seconds: float
    horizon: datetime
    #: the record timestamp the partitions were sought to (epoch ms)
    seek_ms: int

    def log_fields(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "records": self.records,
            "keys": self.keys,
            "unreadable": self.unreadable,
            "seconds": round(self.seconds, 2),
            "horizon": self.horizon.isoformat(),
        }


def load_dedup_memory(
    bootstrap: str,
    topic: str,
    *,
    window_s: float,
    max_future_s: float,
    now: datetime,
    client_id: str = "cems-gateway",
    stall_s: float = 30.0,
    progress_every_s: float = 5.0,
    request_timeout_s: float = 15.0,
) -> tuple[DedupMemory, LoadReport]:
    """A duplicate memory with horizon ``now - window_s``, holding every reading of ``topic``
    from that horizon on. Raises ``InfrastructureError`` (naming the topic) if Kafka cannot
    be reached or nothing is read for ``stall_s`` before the end is reached."""
    started = time.monotonic()
    memory = DedupMemory(window_s, epoch_us(now))
    seek_ms = (memory.horizon_us // 1000) - round((max_future_s + CLOCK_SLACK_S) * 1000)
    where = f"kafka at {bootstrap}: loading the duplicate memory from {topic}"
    try:
        consumer = Consumer(consumer_config(bootstrap, f"{client_id}-dedup-load"))
    except KafkaException as exc:
        raise InfrastructureError(f"{where}: cannot create a consumer: {exc}", retryable=False) from exc
    try:
        plan = _plan(consumer, topic, seek_ms, request_timeout_s, where)
        records, unreadable = _read(consumer, topic, plan, memory, stall_s, progress_every_s, where)
    finally:
        consumer.close()
    report = LoadReport(
        topic=topic,
        partitions=len(plan),
        records=records,
        keys=len(memory),
        unreadable=unreadable,
        seconds=time.monotonic() - started,
        horizon=memory.horizon,
        seek_ms=seek_ms,
    )
    if unreadable:
        log.warning("records without a readable dedup key", extra=report.log_fields())
    return memory, report


@dataclass
class _Span:
    partition: int
    start: int
    end: int


def _plan(consumer: Consumer, topic: str, seek_ms: int, timeout_s: float, where: str) -> list[_Span]:
    """Per partition: the first offset at ``seek_ms`` and the end offset now."""
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
        info = meta.topics.get(topic)
        if info is None or info.error is not None:
            if info is not None and info.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return []  # nothing was ever written
            raise InfrastructureError(f"{where}: {info.error if info else 'no metadata'}", retryable=True)
        partitions = sorted(info.partitions)
        # the ends first: a record appended after them is after the end, whatever its time
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s, cached=False)[1]
            for p in partitions
        }
        starts = consumer.offsets_for_times([TopicPartition(topic, p, seek_ms) for p in partitions], timeout=timeout_s)
        spans = []
        for tp in starts:
            if tp.error is not None:
                raise InfrastructureError(f"{where}: partition {tp.partition}: {tp.error}", retryable=True)
            end = ends[tp.partition]
            start = end if tp.offset < 0 else min(tp.offset, end)  # < 0: no record at or after seek_ms
            spans.append(_Span(tp.partition, start, end))
        return spans
    except KafkaException as exc:
        raise InfrastructureError(f"{where}: {exc.args[0] if exc.args else exc}", retryable=True) from exc


def _read(
    consumer: Consumer,
    topic: str,
    plan: list[_Span],
    memory: DedupMemory,
    stall_s: float,
    progress_every_s: float,
    where: str,
) -> tuple[int, int]:
    todo = {s.partition: s for s in plan if s.end > s.start}
    if not todo:
        return 0, 0
    total = sum(s.end - s.start for s in todo.values())
    consumer.assign([TopicPartition(topic, s.partition, s.start) for s in todo.values()])
    records = unreadable = 0
    last_progress = last_data = time.monotonic()
    keys: list[tuple[str, int]] = []
    last_error: str | None = None  # a client error since the last progress line (it retries by itself)
    while todo:
        try:
            batch = consumer.consume(num_messages=_BATCH, timeout=0.5)
        except KafkaException as exc:
            raise InfrastructureError(f"{where}: {exc}", retryable=True) from exc
        keys.clear()
        append = keys.append
        eofs = errors = 0
        for msg in batch:
            # the fast path: a record with the gateway's header first (error events have none)
            headers = msg.headers()
            if headers is not None and headers[0][0] == DEDUP_HEADER:
                stream, _, event_us = headers[0][1].rpartition(b"|")
                try:
                    append((stream.decode(), int(event_us)))
                    continue
                except ValueError:
                    pass
            err = msg.error()
            if err is None:
                key = _record_key(headers, msg.value())
                if key is None:
                    unreadable += 1
                else:
                    append(key)
            elif err.code() == KafkaError._PARTITION_EOF:
                eofs += 1
                span = todo.get(msg.partition())
                if span is not None and (msg.offset() or 0) >= span.end:
                    del todo[span.partition]
            elif err.fatal():
                raise InfrastructureError(f"{where}: {err}", retryable=False)
            else:
                errors += 1
                last_error = str(err)
        now = time.monotonic()
        if len(batch) > errors:  # records or ends reached: progress
            last_data = now
        elif now - last_data > stall_s:
            parts = ", ".join(f"{p} at {s.start}..{s.end}" for p, s in sorted(todo.items()))
            raise InfrastructureError(
                f"{where}: nothing read for {stall_s:.0f}s with {records:,} of {total:,} records read "
                f"(partitions {parts}); is Kafka up?",
                retryable=True,
            )
        records += len(batch) - eofs - errors
        memory.load(keys)
        if now - last_progress >= progress_every_s:
            last_progress = now
            log.info(
                "loading the duplicate memory",
                extra={"topic": topic, "records": records, "of": total, "keys": len(memory), "error": last_error},
            )
            last_error = None
    return records, unreadable
