"""Contract records to InfluxDB points: the measurements, tags and fields of
``docs/influxdb-schema.md`` (written by ``cems sink`` and ``cems replay --influx``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from influxdb_client import Point, WritePrecision

from contracts.alerts import AlertEvent, HourlyAverage
from contracts.reading import Reading
from contracts.registry import Registry


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
        if r.facility is not None:  # a meter: its own series beside the stack's analysers
            point = point.tag("facility", r.facility)
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
