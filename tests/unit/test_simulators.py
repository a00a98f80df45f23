"""Simulated stacks are physically consistent and reproducible; each scenario, replayed
through the same rules the stream processor runs, raises exactly its ground truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from contracts.hj212 import CRC_START, crc16, crc_feed, encode_packet
from contracts.hj212_data import PacketValue, data_packet
from contracts.parameters import PARAMETERS
from contracts.reading import DataKind
from contracts.registry import Device, Stack, load_registry
from contracts.yamlfile import load_yaml_mapping
from ingest.validation import ReadingValidator, ValidationSettings
from rules.replay import ReplayDriver
from simulators.fleet import Fleet
from simulators.models import Overrides, Sample, StackModel
from simulators.scenarios import load_scenario, scenario_names
from simulators.truth import compare
from simulators.wire import EventTime, Hj212Encoder, JsonEncoder, conversion, crc_table
from streams.engine import load_engine

REG = load_registry()
ENGINE = load_engine(REG)
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    scenario = load_scenario("faults")
    a = [m.payload for m in Fleet(REG, ENGINE.profiles, scenario, START, seed=3).messages(75)]
    b = [m.payload for m in Fleet(REG, ENGINE.profiles, scenario, START, seed=3).messages(75)]
    c = [m.payload for m in Fleet(REG, ENGINE.profiles, scenario, START, seed=4).messages(75)]
    assert a == b
    assert a != c


@pytest.mark.parametrize("stack", sorted(ENGINE.profiles))
def test_signals_stay_physical_and_flow_follows_load(stack: str) -> None:
    model = StackModel(ENGINE.profiles[stack], seed=1)
    samples = [model.sample(START + timedelta(minutes=10 * i)) for i in range(144)]  # a day
    for s in samples:
        assert 0 < s.values["o2"] < 21
        assert all(v >= 0 for name, v in s.values.items() if name != "pressure")
        if "humidity" in s.values:
            assert 0 <= s.values["humidity"] <= 100
    if "load" in ENGINE.profiles[stack].parameters:
        loads = [s.values["load"] for s in samples]
        flows = [s.values["flow"] for s in samples]
        mean_l, mean_f = sum(loads) / len(loads), sum(flows) / len(flows)
        cov = sum((x - mean_l) * (y - mean_f) for x, y in zip(loads, flows, strict=True))
        assert cov > 0, "flow must rise with load"


def test_wet_desulphurisation_stacks_are_humid_and_about_50_c() -> None:
    wet = [p for p in ENGINE.profiles.values() if p.wet_desulphurisation]
    assert wet
    for profile in wet:
        s = StackModel(profile, seed=2).sample(START)
        assert 45 <= s.values["temperature"] <= 55
        assert s.values["humidity"] >= 10


def test_over_injection_raises_nh3_and_lowers_nox() -> None:
    model = StackModel(ENGINE.profiles["jy-power-2-s1"], seed=5)
    normal = [model.sample(START + timedelta(minutes=i)) for i in range(30)]
    slipping = [model.sample(START + timedelta(minutes=i), Overrides(nh3_boost_mg_m3=3.0)) for i in range(30)]
    mean = lambda xs, p: sum(x.values[p] for x in xs) / len(xs)  # noqa: E731
    assert mean(slipping, "nh3") > mean(normal, "nh3") + 2
    assert mean(slipping, "nox") < 0.7 * mean(normal, "nox")


def test_every_scenario_file_loads() -> None:
    names = scenario_names()
    assert {"baseline", "faults", "limit-hugging", "demo"} <= set(names)
    for name in names:
        assert load_scenario(name).duration_min > 0


@pytest.mark.parametrize("name", ["baseline", "faults", "demo", "limit-hugging"])
def test_scenario_replayed_through_the_rules_raises_exactly_its_ground_truth(name: str) -> None:
    scenario = load_scenario(name)
    fleet = Fleet(REG, ENGINE.profiles, scenario, START, seed=7)
    validator = ReadingValidator(REG, ValidationSettings(max_future_s=300, max_age_s=float("inf")))
    readings = []
    refused: dict[str, int] = {}
    for minute in range(scenario.duration_min):
        for msg in fleet.messages(minute):
            arrival = START + timedelta(minutes=minute, seconds=31)  # the gateway's clock
            try:
                reading, _ = validator.from_mqtt(msg.topic, msg.payload, arrival)
            except Exception as exc:
                reason = getattr(exc, "reason", type(exc).__name__)
                refused[str(reason)] = refused.get(str(reason), 0) + 1
                continue
            readings.append(reading)
    truth = scenario.ground_truth(START, ENGINE.settings)
    for letter in truth["dead_letters"]:
        if letter["reason"] != "duplicate":  # duplicates are the gateway's stateful check
            assert refused.get(letter["reason"], 0) >= letter["min_count"], (letter, refused)
    result = ReplayDriver(ENGINE).feed_all(sorted(readings, key=lambda r: r.event_time)).finish()
    assert compare(truth, result.events) == []


def test_scenario_files_are_strict(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from contracts.errors import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\nduration_min: 10\nfaults:\n  - {type: exceedance, stack: a, colour: red}\n")
    with pytest.raises(ConfigError, match=r"faults\.0\.colour: unknown key"):
        load_scenario(bad)
    assert load_yaml_mapping(bad)["name"] == "x"


def _reference_json(stack: Stack, device: Device, sample: Sample, t: datetime) -> bytes:
    values: dict[str, dict[str, object]] = {}
    for name, value in sample.values.items():
        unit = stack.parameters.get(name, PARAMETERS[name].unit)
        conv = conversion(name, unit)
        item: dict[str, object] = {"value": round(conv(value), 4), "unit": unit.value}
        if name in sample.flags:
            item["flag"] = sample.flags[name]
        if name in sample.zs:
            item["zs"] = round(conv(sample.zs[name]), 4)
        values[name] = item
    doc = {"mn": device.mn, "time": t.isoformat(), "kind": "realtime", "values": values}
    return json.dumps(doc, separators=(",", ":")).encode()


def _reference_hj212(stack: Stack, device: Device, sample: Sample, t: datetime) -> bytes:
    def reported(name: str, value: float) -> float:
        return round(conversion(name, stack.parameters.get(name, PARAMETERS[name].unit))(value), 4)

    values = {
        name: PacketValue(
            reported(name, value),
            flag=sample.flags.get(name, "N"),
            zs=reported(name, sample.zs[name]) if name in sample.zs else None,
        )
        for name, value in sample.values.items()
    }
    packet = data_packet(
        mn=device.mn, kind=DataKind.REALTIME, event_time=t, values=values, pw=device.hj212_pw or "123456"
    )
    return encode_packet(packet)


@pytest.mark.parametrize("faults", [None, Overrides(flags={"so2": "C", "o2": "M"}, wrong_zs={"so2": 0.5})])
def test_payload_encoders_write_what_json_and_the_hj212_codec_write(faults: Overrides | None) -> None:
    for index, (_, stack, device) in enumerate(Fleet(REG, ENGINE.profiles, load_scenario("baseline"), START).devices):
        model = StackModel(ENGINE.profiles[stack.id], seed=index)
        json_encoder, hj212_encoder = JsonEncoder(stack, device), Hj212Encoder(stack, device)
        for i in range(20):
            t = START + timedelta(seconds=37 * i, microseconds=1000 * i)
            sample = model.sample(t, faults)
            sample.values["pressure"] = -sample.values.get("pressure", 0.00001)  # signs and tiny values
            times = EventTime.of(t)
            assert json_encoder.encode(sample, times.iso) == _reference_json(stack, device, sample, t)
            assert hj212_encoder.encode(sample, times.qn, times.data_time) == _reference_hj212(stack, device, sample, t)


def test_piecewise_crc_is_the_hj212_crc() -> None:
    data = b"QN=20260302080000000;ST=32;CN=2011;PW=123456;MN=X;Flag=4;CP=&&DataTime=20260302080000&&"
    for cut in range(1, len(data)):
        assert crc_table(data[cut:])[crc_feed(CRC_START, data[:cut]) >> 8] == crc16(data)
