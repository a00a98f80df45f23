"""Declared emergency responses on Kafka: declare, revise (end), read back.

A response's every revision is written to **every partition** of the emergency topic in one
Kafka transaction: the topic is co-partitioned with the readings, so the worker holding a
readings partition reads the declaration in the same partition number and applies it to the
stacks of that partition (``streams.processor``); readers of the whole topic keep the latest
revision of each id (``contracts.emergency.latest``). The topic is compacted by response id.
"""

from __future__ import annotations

import contextlib
import csv
import uuid
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from contracts.emergency import EmergencyResponse, Level, latest
from contracts.errors import ConfigError, InfrastructureError
from contracts.topics import TopicSpec


class EmergencyError(ConfigError):
    """A declaration or revision that cannot be made (unknown id, already ended, bad times)."""


def publish(bootstrap: str, topic: TopicSpec, response: EmergencyResponse, timeout_s: float = 30.0) -> None:
    """Write one revision to every partition of ``topic``, all or nothing (the topic is created
    if it does not exist yet)."""
    from cems.topics import ensure_topics

    ensure_topics(bootstrap, [topic])
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": f"cems-emergency-{uuid.uuid4().hex}",
            "enable.idempotence": True,
            "acks": "all",
        }
    )
    value, key = response.model_dump_json().encode(), response.id.encode()
    try:
        producer.init_transactions(timeout_s)
        producer.begin_transaction()
        for partition in range(topic.partitions):
            producer.produce(topic.name, key=key, value=value, partition=partition)
        producer.commit_transaction(timeout_s)
    except KafkaException as exc:
        # an open transaction would hold read_committed readers of the topic until it times out
        with contextlib.suppress(KafkaException):
            producer.abort_transaction(timeout_s)
        raise InfrastructureError(f"kafka at {bootstrap}: writing {response.id} to {topic.name} failed: {exc}") from exc


def read_all(bootstrap: str, topic: TopicSpec, timeout_s: float = 30.0) -> list[EmergencyResponse]:
    """Every committed revision, in offset order. Each is on every partition: partition 0 holds
    them all."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"cems-emergency-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    out: list[EmergencyResponse] = []
    try:
        if topic.name not in consumer.list_topics(timeout=timeout_s).topics:
            return out  # nothing declared yet in this namespace
        ends: dict[int, int] = {}
        parts = []
        for p in (0,):  # every revision is on every partition
            low, high = consumer.get_watermark_offsets(TopicPartition(topic.name, p), timeout=timeout_s)
            if high > low:
                ends[p] = high
                parts.append(TopicPartition(topic.name, p, low))
        if not parts:
            return out
        consumer.assign(parts)
        deadline = datetime.now(UTC).timestamp() + timeout_s
        while ends and datetime.now(UTC).timestamp() < deadline:
            for msg in consumer.consume(500, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise InfrastructureError(f"kafka at {bootstrap}: reading {topic.name}: {err}")
                value = msg.value()
                if value:
                    out.append(EmergencyResponse.model_validate_json(value))
                p, offset = msg.partition(), msg.offset()
                if p in ends and offset + 1 >= ends[p]:
                    del ends[p]
            # a transaction marker may be the last offset: the position tells when one is read out
            for tp in consumer.position([TopicPartition(topic.name, p) for p in list(ends)]):
                if tp.offset >= ends.get(tp.partition, 0):
                    ends.pop(tp.partition, None)
        if ends:
            raise InfrastructureError(f"kafka at {bootstrap}: {topic.name} not read to its end in {timeout_s:.0f}s")
    except KafkaException as exc:
        raise InfrastructureError(f"kafka at {bootstrap}: reading {topic.name} failed: {exc}") from exc
    finally:
        consumer.close()
    return out


def current(bootstrap: str, topic: TopicSpec) -> dict[str, EmergencyResponse]:
    """The latest revision of every response declared."""
    return latest(read_all(bootstrap, topic))


def default_id(level: Level, start: datetime) -> str:
    return f"{start.astimezone(UTC):%Y%m%dT%H%MZ}-{level.value}"


def declare(
    bootstrap: str,
    topic: TopicSpec,
    *,
    level: Level,
    start: datetime,
    end: datetime | None,
    districts: tuple[str, ...],
    declared_by: str,
    response_id: str | None = None,
    note: str | None = None,
    known_districts: set[str] | None = None,
    now: datetime | None = None,
) -> EmergencyResponse:
    """Declare a response; refused when the id exists or a district is not the registry's."""
    unknown = sorted(set(districts) - known_districts) if known_districts is not None else []
    if unknown:
        raise EmergencyError(
            f"district(s) {', '.join(unknown)} not in the registry; known: {', '.join(sorted(known_districts or ()))}"
        )
    rid = response_id or default_id(level, start)
    if rid in current(bootstrap, topic):
        raise EmergencyError(f"response {rid!r} exists already: end or revise it (`cems emergency end {rid}`)")
    try:
        response = EmergencyResponse(
            id=rid, level=level, districts=districts, start=start, end=end, declared_by=declared_by,
            declared_at=now or datetime.now(UTC), note=note,
        )  # fmt: skip
    except ValueError as exc:
        raise EmergencyError(f"response {rid!r}: {exc}") from exc
    publish(bootstrap, topic, response)
    return response


def end(
    bootstrap: str, topic: TopicSpec, response_id: str, at: datetime, by: str, now: datetime | None = None
) -> EmergencyResponse:
    """End a response at ``at`` (a new revision). Ending one already ended earlier is refused."""
    held = current(bootstrap, topic).get(response_id)
    if held is None:
        raise EmergencyError(f"no response {response_id!r}; `cems emergency list` shows them")
    if held.end is not None and held.end <= at:
        raise EmergencyError(f"response {response_id!r} already ends at {held.end.isoformat()}")
    if at <= held.start:
        raise EmergencyError(f"response {response_id!r} starts at {held.start.isoformat()}: end it after that")
    revised = held.model_copy(
        update={"end": at, "revision": held.revision + 1, "declared_by": by, "declared_at": now or datetime.now(UTC)}
    )
    publish(bootstrap, topic, EmergencyResponse.model_validate(revised.model_dump()))
    return revised


# -- the response report (the hourly averages come from InfluxDB: console.evidence) ----------------
def report_window(response: EmergencyResponse, baseline_days: int, now: datetime) -> tuple[datetime, datetime]:
    """The hours a report reads: the baseline days before the start, to the end (or now)."""
    stop = min(response.end, now) if response.end is not None else now
    return response.start - timedelta(days=baseline_days), stop


def write_csv(rows: list[dict[str, Any]], columns: tuple[str, ...], out: IO[str]) -> None:
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
