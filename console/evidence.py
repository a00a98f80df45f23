"""The series behind a case's charts, read from InfluxDB (schema: docs/influxdb-schema.md):
the hourly averages at reference O2 with their limit, and the raw readings around an event."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from influxdb_client import InfluxDBClient

from contracts.alerts import AlertEventType, AlertKind, HourlyAverage, HourlyStatus
from contracts.reading import DataFlag
from rules.fleet_status import FlagSample


@dataclass(frozen=True)
class Point:
    at: datetime
    value: float


@dataclass(frozen=True)
class HourlySeries:
    converted: list[Point]
    limit: float | None


@dataclass(frozen=True)
class AlertPoint:
    """An alert event as the sink stored it: enough for ``rules.fleet_status``."""

    alert_id: str
    stack: str
    kind: AlertKind
    parameter: str | None
    event: AlertEventType
    at: datetime


class EvidenceSource(Protocol):
    async def hourly(self, stack: str, parameter: str, start: datetime, stop: datetime) -> HourlySeries: ...

    async def readings(self, stack: str, parameter: str, start: datetime, stop: datetime) -> list[Point]: ...


def _flux_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxEvidence:
    def __init__(self, url: str, token: str, org: str, bucket: str, namespace: str, timeout_ms: int = 10_000) -> None:
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=timeout_ms)
        self._bucket = bucket
        self._ns = namespace

    def close(self) -> None:
        self._client.close()

    def _query(self, flux: str) -> list[Any]:
        tables = self._client.query_api().query(flux)
        return [record for table in tables for record in table.records]

    def _range(self, measurement: str, start: datetime, stop: datetime, where: str = "true") -> str:
        """The namespace's points of ``measurement`` in [start, stop) that match ``where``."""
        return (
            f"from(bucket: {_flux_string(self._bucket)})"
            f" |> range(start: {start.isoformat()}, stop: {stop.isoformat()})"
            f' |> filter(fn: (r) => r._measurement == "{measurement}" and r.ns == {_flux_string(self._ns)}'
            f" and {where})"
        )

    async def hourly(self, stack: str, parameter: str, start: datetime, stop: datetime) -> HourlySeries:
        flux = (
            self._range("hourly", start, stop, f"r.stack == {_flux_string(stack)}")
            + f' |> filter(fn: (r) => r.parameter == {_flux_string(parameter)} and r.status == "valid")'
            + ' |> filter(fn: (r) => r._field == "converted" or r._field == "limit")'
        )
        records = await asyncio.to_thread(self._query, flux)
        converted = sorted(
            (Point(r.get_time(), float(r.get_value())) for r in records if r.get_field() == "converted"),
            key=lambda p: p.at,
        )
        limits = [float(r.get_value()) for r in records if r.get_field() == "limit"]
        return HourlySeries(converted, limits[-1] if limits else None)

    async def readings(self, stack: str, parameter: str, start: datetime, stop: datetime) -> list[Point]:
        where = f"r.stack == {_flux_string(stack)} and r._field == {_flux_string(parameter)}"
        flux = self._range("reading", start, stop, where)
        records = await asyncio.to_thread(self._query, flux)
        return sorted((Point(r.get_time(), float(r.get_value())) for r in records), key=lambda p: p.at)

    async def alert_events(self, start: datetime, stop: datetime) -> list[AlertPoint]:
        """Every alert event of the namespace in [start, stop)."""
        flux = self._range("alert", start, stop, 'r._field == "alert_id"')
        records = await asyncio.to_thread(self._query, flux)
        kinds = {k.value for k in AlertKind}
        return [
            AlertPoint(
                alert_id=str(r.get_value()),
                stack=str(r.values["stack"]),
                kind=AlertKind(r.values["kind"]),
                parameter=None if r.values.get("parameter") in (None, "-") else str(r.values["parameter"]),
                event=AlertEventType(r.values["event"]),
                at=r.get_time(),
            )
            for r in records
            if r.values.get("kind") in kinds
        ]

    async def latest_flags(self, start: datetime, stop: datetime) -> list[FlagSample]:
        """Each stack's latest data flag per parameter in [start, stop)."""
        # last() per series (realtime, minute...); rules.fleet_status breaks ties between them
        flux = self._range("reading", start, stop, "r._field =~ /_flag$/") + " |> last()"
        records = await asyncio.to_thread(self._query, flux)
        flags = {f.value for f in DataFlag}
        return [
            FlagSample(
                str(r.values["stack"]), str(r.get_field()).removesuffix("_flag"), DataFlag(r.get_value()), r.get_time()
            )
            for r in records
            if r.get_value() in flags
        ]

    def hourly_averages(self, start: datetime, stop: datetime) -> list[HourlyAverage]:
        """Every hourly average of the namespace with an hour start in [start, stop), read back
        as the contract it was written from (``streams.influx_points``, docs/influxdb-schema.md)."""
        pivot = ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
        return [hourly_from_row(r.values) for r in self._query(self._range("hourly", start, stop) + pivot)]


def hourly_from_row(row: dict[str, Any]) -> HourlyAverage:
    """An ``hourly`` point read back (pivoted: one row per stack, parameter and hour, its fields
    as columns) as the ``HourlyAverage`` it was written from."""

    def num(name: str) -> float | None:
        value = row.get(name)
        return None if value is None else float(value)

    return HourlyAverage(
        enterprise=row["enterprise"],
        stack=row["stack"],
        parameter=row["parameter"],
        hour_start=row["_time"],
        status=HourlyStatus(row["status"]),
        valid_minutes=int(row.get("valid_minutes") or 0),
        o2_converted=bool(row.get("o2_converted")),
        flag_minutes={
            k.removeprefix("flag_minutes_"): int(v) for k, v in row.items() if k.startswith("flag_minutes_") and v
        },
        mean=num("mean"),
        converted=num("converted"),
        limit=num("limit"),
        o2_mean=num("o2_mean"),
        reference_o2_pct=num("reference_o2_pct"),
        emission_kg_h=num("emission_kg_h"),
    )
