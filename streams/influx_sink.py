"""InfluxDB sink: readings, hourly averages and alert events, written in batches.

Offsets are committed only after InfluxDB confirmed the batch: if InfluxDB is down, the
sink retries the same batch with back-off (logging each failure) and resumes by itself;
nothing is skipped. Re-written points overwrite themselves (same measurement, tags and
time), so a crash between write and commit duplicates nothing. The measurement, tag and
field schema is documented in ``docs/influxdb-schema.md``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, KafkaError, Message
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from contracts.alerts import AlertEvent, HourlyAverage
from contracts.reading import Reading
from contracts.registry import Registry
from contracts.topics import Topics

log = logging.getLogger("cems.sink")


@dataclass(frozen=True)
class StackTags:
    enterprise: str
    district: str
    industry: str


def stack_tags(registry: Registry) -> dict[str, StackTags]:
    return {s.id: StackTags(e.id, e.district, e.industry.value) for e, s in registry.stacks()}


def _epoch_s(t: datetime | None) -> int | None:
    return None if t is None else int(t.timestamp())


class PointBuilder:
    """Contract records to InfluxDB points (the schema in docs/influxdb-schema.md)."""

    def __init__(self, tags: dict[str, StackTags], namespace: str) -> None:
        self.tags = tags
        self.namespace = namespace

    def _base(self, measurement: str, enterprise: str, stack: str) -> Point:
        point = Point(measurement).tag("ns", self.namespace).tag("enterprise", enterprise).tag("stack", stack)
        where = self.tags.get(stack)
        if where is not None:
            point = point.tag("district", where.district).tag("industry", where.industry)
        return point

    def reading(self, r: Reading) -> Point:
        point = self._base("reading", r.enterprise, r.stack).tag("kind", r.kind.value).tag("source", r.source.value)
        for name, m in r.values.items():
            point = point.field(name, float(m.value)).field(f"{name}_flag", m.flag.value)
            if m.zs is not None:
                point = point.field(f"{name}_zs", float(m.zs))
        return point.time(r.event_time, WritePrecision.MS)

    def hourly(self, h: HourlyAverage) -> Point:
        point = (
            self._base("hourly", h.enterprise, h.stack)
            .tag("parameter", h.parameter)
            .tag("status", h.status.value)
            .field("valid_minutes", h.valid_minutes)
            .field("exceeds", h.exceeds)
            .field("o2_converted", h.o2_converted)
        )
        for name in ("mean", "converted", "limit", "o2_mean", "reference_o2_pct", "emission_kg_h"):
            value = getattr(h, name)
            if value is not None:
                point = point.field(name, float(value))
        for flag, minutes in h.flag_minutes.items():
            point = point.field(f"flag_minutes_{flag}", minutes)
        return point.time(h.hour_start, WritePrecision.S)

    def alert(self, e: AlertEvent) -> Point:
        point = (
            self._base("alert", e.enterprise, e.stack)
            .tag("parameter", e.parameter or "-")
            .tag("kind", e.kind.value)
            .tag("severity", e.severity.value)
            .tag("event", e.event.value)
            .field("alert_id", e.alert_id)
            .field("fingerprint", e.fingerprint)
            .field("reason", e.reason)
            .field("start_s", _epoch_s(e.start))
            .field("evidence", json.dumps(e.evidence, ensure_ascii=False, sort_keys=True))
        )
        end = _epoch_s(e.end)
        if end is not None:
            point = point.field("end_s", end)
        # bypass (and any other kind with them): the dashboards show these without parsing JSON
        confidence = e.evidence.get("confidence")
        if isinstance(confidence, int | float) and not isinstance(confidence, bool):
            point = point.field("confidence", float(confidence))
        signals = e.evidence.get("signals")
        if isinstance(signals, list) and signals:
            point = point.field("signals", ", ".join(str(s) for s in signals))
        return point.time(e.at, WritePrecision.S)


class InfluxSink:
    def __init__(
        self,
        *,
        bootstrap: str,
        group: str,
        topics: Topics,
        namespace: str,
        influx_url: str,
        token: str,
        org: str,
        bucket: str,
        registry: Registry,
        batch_size: int = 5000,
        max_wait_s: float = 1.0,
    ) -> None:
        self.topics = topics
        self.bucket = bucket
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.builder = PointBuilder(stack_tags(registry), namespace)
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                # a crashed sink's partitions go to its replacement within seconds
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 3_000,
            }
        )
        self.consumer.subscribe([topics.readings.name, topics.hourly_averages.name, topics.alerts.name])
        self.client = InfluxDBClient(url=influx_url, token=token, org=org, timeout=10_000)
        self.write_api = self.client.write_api(write_options=SYNCHRONOUS)
        self.written = 0
        self.failures = 0

    def points(self, messages: Iterable[Message]) -> list[Point]:
        out = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka consume error: %s", err)
                continue
            topic, value = msg.topic(), msg.value()
            try:
                if topic == self.topics.readings.name:
                    out.append(self.builder.reading(Reading.model_validate_json(value)))
                elif topic == self.topics.hourly_averages.name:
                    out.append(self.builder.hourly(HourlyAverage.model_validate_json(value)))
                elif topic == self.topics.alerts.name:
                    out.append(self.builder.alert(AlertEvent.model_validate_json(value)))
            except ValueError as exc:
                # our own topics carry only contract records; one that is not is logged, not fatal
                log.error("skipping unreadable record %s[%s]@%s: %s", topic, msg.partition(), msg.offset(), exc)
        return out

    def write(self, points: list[Point], stop: threading.Event) -> bool:
        """Write until InfluxDB takes the batch; ``False`` only if asked to stop meanwhile."""
        delay = 0.5
        while True:
            try:
                self.write_api.write(bucket=self.bucket, record=points)
                self.written += len(points)
                return True
            except Exception as exc:
                self.failures += 1
                log.warning("influxdb write of %d points failed (%s); retrying in %.1fs", len(points), exc, delay)
            if stop.wait(delay):
                return False
            delay = min(delay * 2, 5.0)

    def run(self, stop: threading.Event) -> None:
        log.info("sink running: %s -> %s", [t.name for t in self.topics.all()], self.bucket)
        last_report = time.monotonic()
        try:
            while not stop.is_set():
                messages = self.consumer.consume(num_messages=self.batch_size, timeout=self.max_wait_s)
                if not messages:
                    continue
                points = self.points(messages)
                if points and not self.write(points, stop):
                    break  # stopping mid-outage: offsets not committed, the batch comes again
                self.consumer.commit(asynchronous=False)
                if time.monotonic() - last_report > 30:
                    log.info("sink progress: %d points written, %d failed writes", self.written, self.failures)
                    last_report = time.monotonic()
        finally:
            self.consumer.close()
            self.client.close()
