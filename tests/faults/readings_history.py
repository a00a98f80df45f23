"""A readings topic as the gateway would have written it over days of production.

Used by the start-up fault test and ``scripts/bench_gateway_startup.py``. Every record has
the gateway's key, JSON value and dedup header (``ingest.kafka_sink.reading_record`` for one
template reading per stack, the times substituted) and an explicit CreateTime: ``stacks``
stacks report once per ``interval_s``, staggered across the interval and produced a second
after their event time, the newest at ``end``. Every ``late_every``-th record is instead a
``minute`` reading delivered late (1 to 30 hours after its event time), as a device's backlog
would be. ``extra`` records (already built, with their timestamps) are merged in time order.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import KafkaException, Producer

from contracts.parameters import Unit
from contracts.reading import DataKind, Measurement, Reading, Source
from ingest.dedup import epoch_us, stream_id
from ingest.dedup_loader import dedup_header_for
from ingest.kafka_sink import reading_record

#: a record ready to produce: timestamp (epoch ms), key, value, headers
Record = tuple[int, bytes, bytes, list[tuple[str, bytes]]]

_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
_RECEIVED = datetime(2000, 1, 2, tzinfo=UTC)


@dataclass(frozen=True)
class Written:
    records: int
    first_ms: int
    last_ms: int
    seconds: float


def _template(enterprise: str, stack: str, mn: str, kind: DataKind) -> tuple[bytes, list[bytes]]:
    """The key and the value of a reading split around its event and arrival times."""
    mg = Unit("mg/m3")
    values = {
        "so2": Measurement(value=21.5, unit=mg),
        "nox": Measurement(value=48.25, unit=mg),
        "dust": Measurement(value=4.1, unit=mg),
        "o2": Measurement(value=8.5, unit=Unit("%")),
        "flow": Measurement(value=118.0, unit=Unit("m3/s")),
    }
    sample = Reading(
        enterprise=enterprise, stack=stack, mn=mn, event_time=_EVENT, kind=kind, values=values,
        source=Source.MQTT_JSON, received_at=_RECEIVED,
    )  # fmt: skip
    key, value, _ = reading_record(sample)
    event_text = sample.model_dump(mode="json")["event_time"].encode()
    received_text = sample.model_dump(mode="json")["received_at"].encode()
    before, rest = value.split(event_text)
    middle, after = rest.split(received_text)
    return key, [before, middle, after]


def _iso(ms: int) -> bytes:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z").encode()


def history(
    stacks: int, records: int, end: datetime, *, interval_s: float = 60.0, late_every: int = 0
) -> Iterable[Record]:
    """The records, oldest first (see the module docstring)."""
    interval_ms = round(interval_s * 1000)
    rounds = -(-records // stacks)
    first_event_ms = epoch_us(end) // 1000 - rounds * interval_ms - 1000
    names = [(f"bench-{i // 10}", f"bench-{i // 10}-s{i % 10}", f"BENCH{i:09d}") for i in range(stacks)]
    templates = {
        kind: [_template(e, s, mn, kind) for e, s, mn in names] for kind in (DataKind.REALTIME, DataKind.MINUTE)
    }
    streams = {kind: [stream_id(mn, kind.value) for _, _, mn in names] for kind in templates}
    late_minutes: set[tuple[int, int]] = set()
    for j in range(records):
        r, s = divmod(j, stacks)
        event_ms = first_event_ms + r * interval_ms
        produce_ms = event_ms + 1000 + s * interval_ms // stacks
        kind = DataKind.REALTIME
        if late_every and j % late_every == late_every - 1:
            delay_min = 60 + (j * 7919) % (29 * 60)
            minute = (produce_ms // 60_000) - delay_min
            if (s, minute) not in late_minutes:  # each late minute reading once
                late_minutes.add((s, minute))
                kind, event_ms = DataKind.MINUTE, minute * 60_000
        key, (before, middle, after) = templates[kind][s]
        value = before + _iso(event_ms) + middle + _iso(produce_ms - 3) + after
        yield produce_ms, key, value, [dedup_header_for(streams[kind][s], event_ms * 1000)]


def write(bootstrap: str, topic: str, records: Iterable[Record], extra: Iterable[Record] = ()) -> Written:
    """Produce ``records`` (and ``extra``, merged by timestamp) with their timestamps, as the
    gateway's producer does (idempotent, acks=all, the same partitioner)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 100,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    errors: list[str] = []

    def report(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    started = time.monotonic()
    pending = sorted(extra)
    stamps: list[int] = []  # every record's timestamp, for the span and the count
    produce = producer.produce

    def send(record: Record) -> None:
        ts, key, value, headers = record
        stamps.append(ts)
        while True:
            try:
                produce(topic, value=value, key=key, headers=headers, timestamp=ts, on_delivery=report)
                return
            except BufferError:
                producer.poll(0.05)

    for record in records:
        while pending and pending[0][0] <= record[0]:
            send(pending.pop(0))
        send(record)
    for record in pending:
        send(record)
    if producer.flush(120):
        raise KafkaException(f"{topic}: records still unconfirmed after 120 s")
    if errors:
        raise KafkaException(f"{topic}: {len(errors)} records refused, e.g. {errors[0]}")
    return Written(len(stamps), min(stamps, default=0), max(stamps, default=0), time.monotonic() - started)
