"""``cems replay``: the same rules over files of HJ 212 packets or JSON readings, offline.

Each input line is one HJ 212 packet (``##...``; CR LF optional), one device JSON reading as
published over MQTT (the MN says whose it is), or one JSON reading of the reading contract.
Lines that cannot be read are counted with their reason and line number; they never stop
the replay. Readings are sorted by event time and fed to the same
engine the stream processor runs; alert events come out as JSON lines.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from contracts.emergency import EmergencyResponse
from contracts.errors import ConfigError
from contracts.reading import Reading, Source
from contracts.registry import Registry
from ingest.validation import ReadingValidator, Rejected, ValidationSettings
from rules.engine import DetectionEngine
from rules.replay import ReplayDriver, ReplayResult
from streams.engine import load_engine

__all__ = ["load_engine", "read_inputs", "run_replay", "summary", "write_influx"]


@dataclass
class LineProblem:
    file: str
    line: int
    reason: str
    detail: str


@dataclass
class ReplayInput:
    readings: list[Reading] = field(default_factory=list)
    problems: list[LineProblem] = field(default_factory=list)
    lines: int = 0


def read_inputs(paths: list[Path], registry: Registry) -> ReplayInput:
    # historical data: no arrival-time window, the registry still decides who is who
    validator = ReadingValidator(registry, ValidationSettings(max_future_s=float("inf"), max_age_s=float("inf")))
    out = ReplayInput()
    for path in paths:
        for number, line in _lines(path):
            out.lines += 1
            try:
                out.readings.append(_parse_line(line, validator))
            except Rejected as rej:
                out.problems.append(LineProblem(str(path), number, rej.reason.value, rej.detail))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                out.problems.append(LineProblem(str(path), number, "schema_invalid", f"{where}: {first['msg']}"))
    out.readings.sort(key=lambda r: r.event_time)
    return out


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8", errors="surrogateescape") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            if line.strip():
                yield number, line


def _parse_line(line: str, validator: ReadingValidator) -> Reading:
    if line.startswith("##"):
        packet = validator.parse_hj212(line.encode("utf-8", errors="surrogateescape") + b"\r\n")
        when = packet.data_time() if "DataTime" in packet.cp_items() else datetime.now(UTC)
        return validator.from_packet(packet, when, Source.REPLAY)
    doc = json.loads(line) if line.lstrip().startswith("{") else None
    if isinstance(doc, dict) and "enterprise" not in doc and "mn" in doc:
        # a device's own JSON reading, as published over MQTT
        return validator.from_device_json(line.encode("utf-8", errors="surrogateescape"), datetime.now(UTC))
    return Reading.model_validate_json(line)


def run_replay(engine: DetectionEngine, data: ReplayInput, responses: Iterable[EmergencyResponse] = ()) -> ReplayResult:
    """The rules over the readings; declared emergency responses apply from the start (as if
    declared before the first reading)."""
    driver = ReplayDriver(engine)
    for response in responses:
        driver.respond(response)
    return driver.feed_all(data.readings).finish()


def read_responses(path: Path) -> list[EmergencyResponse]:
    """Emergency responses, one JSON object per line (as ``cems emergency list --json`` prints)."""
    out = []
    for number, line in _lines(path):
        try:
            out.append(EmergencyResponse.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{path}:{number}: not an emergency response: {where}: {first['msg']}") from exc
    return out


def summary(data: ReplayInput, result: ReplayResult) -> dict[str, object]:
    by_kind = Counter(f"{e.kind.value}/{e.event.value}" for e in result.events)
    return {
        "lines": data.lines,
        "readings": len(data.readings),
        "rejected_lines": dict(Counter(p.reason for p in data.problems)),
        "first_rejections": [p.__dict__ for p in data.problems[:5]],
        "late_readings": result.late,
        "unknown_stacks": sorted(result.unknown_stacks),
        "hourly_averages": len(result.hourly),
        "events": dict(sorted(by_kind.items())),
        "first_event_time": min((r.event_time for r in data.readings), default=None),
        "last_event_time": max((r.event_time for r in data.readings), default=None),
    }


def dumps_summary(doc: dict[str, object]) -> str:
    return json.dumps(doc, indent=2, default=str, ensure_ascii=False)


def write_influx(
    data: ReplayInput,
    result: ReplayResult,
    registry: Registry,
    *,
    namespace: str,
    url: str,
    token: str,
    org: str,
    bucket: str,
    batch: int = 5000,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write the replay's readings, hourly averages and alert events to InfluxDB, as the live
    sink does (same points, same schema), so dashboards can show a backfill or a scenario.
    Writes are idempotent: replaying the same input twice gives the same points."""
    from influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS

    from streams.influx_points import PointBuilder, stack_tags

    builder = PointBuilder(stack_tags(registry), namespace)
    points = [builder.reading(r) for r in data.readings]
    points += [builder.hourly(h) for h in result.hourly]
    points += [builder.alert(e) for e in result.events]
    with InfluxDBClient(url=url, token=token, org=org, timeout=30_000) as client:
        write_api = client.write_api(write_options=SYNCHRONOUS)
        for i in range(0, len(points), batch):
            write_api.write(bucket=bucket, record=points[i : i + batch])
            if progress is not None:
                progress(min(i + batch, len(points)), len(points))
    return len(points)
