"""`cems replay` over files: HJ 212 and JSON lines, refused lines counted, events out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from cems.cli import app
from contracts.hj212 import encode_packet
from contracts.hj212_data import PacketValue, data_packet
from contracts.parameters import Unit
from contracts.reading import DataKind, Measurement, Reading, Source
from contracts.registry import load_registry

REG = load_registry()
KILN = REG.stack_index()["jy-cement-1-s1"][1]
POWER_ENT, POWER = REG.stack_index()["jy-power-1-s1"]
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def kiln_line(i: int, so2: float) -> str:
    values = {
        "so2": PacketValue(so2 + (i % 2) * 0.2), "o2": PacketValue(10.0 + (i % 2) * 0.1),
        "flow": PacketValue(80.0 + i % 2), "nox": PacketValue(40.0 + i % 3), "pm": PacketValue(4.0 + (i % 2) * 0.1),
    }  # fmt: skip
    packet = data_packet(
        mn=KILN.devices[0].mn, kind=DataKind.MINUTE, event_time=T0 + timedelta(minutes=i), values=values,
        pw=KILN.devices[0].hj212_pw or "",
    )  # fmt: skip
    return encode_packet(packet).decode().rstrip("\r\n")


def power_line(i: int) -> str:
    t = T0 + timedelta(minutes=i, seconds=20)
    reading = Reading(
        enterprise=POWER_ENT.id, stack=POWER.id, mn=POWER.devices[0].mn, event_time=t, kind=DataKind.REALTIME,
        values={
            "so2": Measurement(value=20.0 + i % 3, unit=Unit.MG_M3),
            "o2": Measurement(value=6.0 + (i % 2) / 10, unit=Unit.PERCENT),
        },
        source=Source.MQTT_JSON, received_at=t,
    )  # fmt: skip
    return reading.model_dump_json()


def test_replay_finds_the_exceeding_hour_and_counts_bad_lines(tmp_path: Path) -> None:
    lines = [kiln_line(i, 60.0 if i < 60 else 20.0) for i in range(125)]
    lines += [power_line(i) for i in range(125)]
    lines.insert(10, "##0010garbage")
    lines.insert(20, '{"not": "a reading"}')
    lines.reverse()  # replay sorts by event time itself
    src = tmp_path / "input.txt"
    src.write_text("\n".join(lines) + "\n")
    out, hourly = tmp_path / "events.jsonl", tmp_path / "hourly.jsonl"
    result = CliRunner().invoke(
        app, ["replay", str(src), "--out", str(out), "--hourly-out", str(hourly), "--input-stacks-only"]
    )
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in out.read_text().splitlines()]
    exceedances = [e for e in events if e["kind"] == "exceedance"]
    assert [(e["event"], e["stack"], e["parameter"]) for e in exceedances] == [
        ("opened", "jy-cement-1-s1", "so2"),
        ("resolved", "jy-cement-1-s1", "so2"),
    ]
    # SO2 60.1 mean at O2 10.05 with reference 10: 60.1 * 11 / 10.95
    assert exceedances[0]["evidence"]["converted_mg_m3"] == round(60.1 * 11 / 10.95, 4)
    assert exceedances[0]["start"] == "2026-03-02T00:00:00Z"
    assert exceedances[1]["end"] == "2026-03-02T01:00:00Z"
    # only the declared parameters these files never carry are missing; no stack is silent
    gaps = {(e["stack"], e["parameter"]) for e in events if e["kind"] == "data_gap"}
    sent = {"jy-cement-1-s1": {"so2", "o2", "flow", "nox", "pm"}, "jy-power-1-s1": {"so2", "o2"}}
    expected = {(s, p) for s in sent for p in REG.stack_index()[s][1].parameters if p not in sent[s]}
    assert gaps == expected
    averages = [json.loads(line) for line in hourly.read_text().splitlines()]
    assert {(a["stack"], a["parameter"]) for a in averages} >= {("jy-cement-1-s1", "so2"), ("jy-power-1-s1", "so2")}
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["readings"] == 250
    assert summary["rejected_lines"] == {"hj212_length": 1, "schema_invalid": 1}
