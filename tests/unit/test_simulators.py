"""Simulated stacks are physically consistent and reproducible; each scenario, replayed
through the same rules the stream processor runs, raises exactly its ground truth."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from contracts.emergency import Level
from contracts.errors import ConfigError
from contracts.hj212 import CRC_START, crc16, crc_feed, encode_packet
from contracts.hj212_data import PacketValue, data_packet
from contracts.parameters import PARAMETERS, Unit
from contracts.reading import DataKind
from contracts.registry import Device, Meter, Stack, load_registry
from contracts.yamlfile import load_yaml_mapping
from ingest.validation import ReadingValidator, ValidationSettings
from rules.replay import ReplayDriver
from simulators.fleet import Fleet, Message
from simulators.models import Overrides, Sample, StackModel
from simulators.scenarios import Scenario, load_scenario, scenario_names
from simulators.truth import UndecidableError, compare
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
    assert {"baseline", "faults", "limit-hugging", "demo", "electricity", "emergency"} <= set(names)
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


# -- electricity meters -------------------------------------------------------------------------------


def _meter_messages(scenario: Scenario, minutes: range, seed: int = 7) -> dict[str, list[Message]]:
    """Each facility's meter messages, by facility id."""
    fleet = Fleet(REG, ENGINE.profiles, scenario, START, seed=seed)
    out: dict[str, list[Message]] = {}
    for minute in minutes:
        for msg in fleet.messages(minute):
            if msg.facility:
                out.setdefault(msg.facility, []).append(msg)
    return out


def _values(msg: Message) -> dict[str, float]:
    """What the gateway makes of a message: canonical values."""
    validator = ReadingValidator(REG, ValidationSettings(max_future_s=300, max_age_s=float("inf")))
    reading, _ = validator.from_mqtt(msg.topic, msg.payload, msg.event_time + timedelta(seconds=1))
    return {name: m.value for name, m in reading.values.items() if m.value is not None}


def _stack_values(scenario: Scenario, stack: str, minutes: range) -> list[dict[str, float]]:
    fleet = Fleet(REG, ENGINE.profiles, scenario, START, seed=7)
    return [fleet.sample(stack, m).values for m in minutes]


def _scenario(*faults: dict[str, object], duration_min: int = 120) -> Scenario:
    return Scenario.model_validate({"version": 1, "name": "t", "duration_min": duration_min, "faults": list(faults)})


HEALTHY = _scenario()


def test_every_facility_has_a_meter_publishing_each_minute_on_its_facility_topic() -> None:
    found = _meter_messages(HEALTHY, range(3))
    facilities = {f.id: (e, f) for e, f in REG.facilities()}
    assert set(found) == set(facilities) and len(facilities) == 14
    for fid, msgs in found.items():
        ent, fac = facilities[fid]
        assert len(msgs) == 3
        channel = "reading" if fac.meter.protocol == "json" else "hj212"
        for msg in msgs:
            assert msg.topic == f"cems/v1/{ent.id}/{fid}/{channel}"
            assert (msg.stack, msg.mn, msg.protocol) == (fac.stack, fac.meter.mn, fac.meter.protocol)
            if fac.meter.protocol == "hj212":
                assert b"xe0001-Rtd=" in msg.payload and b"xe0002-Rtd=" in msg.payload and b"xe0003-Rtd=" in msg.payload
            assert set(_values(msg)) == {"power", "current", "energy"}


def test_meters_only_with_the_registry_fleet() -> None:
    assert not Fleet(REG, ENGINE.profiles, HEALTHY, START, count=30).meters
    assert not Fleet(REG, ENGINE.profiles, HEALTHY, START, meters=False).meters
    assert not [m for m in Fleet(REG, ENGINE.profiles, HEALTHY, START, meters=False).messages(0) if m.facility]


def test_production_power_follows_its_stack_load_and_control_power_its_own_schedule() -> None:
    minutes = range(0, 24 * 60, 20)  # a day: the power plant's load swings
    meters = _meter_messages(HEALTHY, minutes)
    loads = [v["load"] / 100 for v in _stack_values(HEALTHY, "jy-power-1-s1", minutes)]
    boiler = [_values(m)["power"] / 4000 for m in meters["jy-power-1-boiler1"]]
    assert max(loads) - min(loads) > 0.3
    for load, share in zip(loads, boiler, strict=True):
        assert share == pytest.approx(load, rel=0.08)
    scr = [_values(m)["power"] / 180 for m in meters["jy-power-1-scr1"]]  # SCR: half fixed, half with the load
    for load, share in zip(loads, scr, strict=True):
        assert share == pytest.approx(0.5 + 0.5 * load, rel=0.08)
    fgd = [_values(m)["power"] / 1500 for m in meters["jy-power-1-fgd1"]]  # FGD pumps hardly follow it
    assert max(fgd) - min(fgd) < 0.5 * (max(loads) - min(loads))
    for fid, msgs in meters.items():
        fac = next(f for _, f in REG.facilities() if f.id == fid)
        assert all(_values(m)["power"] >= fac.running_kw for m in msgs), f"{fid} looks stopped"
        current = [_values(m)["current"] / _values(m)["power"] for m in msgs]
        assert max(current) / min(current) < 1.05  # current follows power


def test_energy_counts_up_with_power_over_time() -> None:
    meters = _meter_messages(HEALTHY, range(120))
    for fid, msgs in meters.items():
        values = [_values(m) for m in msgs]
        energy = [v["energy"] for v in values]
        assert all(b > a for a, b in itertools.pairwise(energy)), fid
        used = energy[-1] - energy[0]  # kWh over 119 minutes
        mean_kw = sum(v["power"] for v in values[1:]) / (len(values) - 1)
        assert used == pytest.approx(mean_kw * 119 / 60, rel=0.02), fid


def test_meter_streams_are_reproducible_and_answer_history_with_the_same_bytes() -> None:
    a = _meter_messages(HEALTHY, range(5), seed=3)
    b = _meter_messages(HEALTHY, range(5), seed=3)
    c = _meter_messages(HEALTHY, range(5), seed=4)
    assert {k: [m.payload for m in v] for k, v in a.items()} == {k: [m.payload for m in v] for k, v in b.items()}
    assert a["jy-coke-1-oven1"][0].payload != c["jy-coke-1-oven1"][0].payload
    # asked for later, out of order, by a fleet that never sent them: the same bytes
    again = Fleet(REG, ENGINE.profiles, HEALTHY, START, seed=3).history(
        "jy-coke-1-oven1", START, START + timedelta(minutes=5), timedelta(minutes=1)
    )
    assert [m.payload for m in again] == [m.payload for m in a["jy-coke-1-oven1"]]


def test_a_meter_in_megawatts() -> None:
    meter = Meter(mn="M1", parameters={"power": Unit.MW, "energy": Unit.KWH})
    encoded = JsonEncoder(meter, meter).encode(Sample({"energy": 1234.5, "power": 4321.0}, {}, {}), "t")
    doc = json.loads(encoded)
    assert doc["values"]["power"] == {"value": 4.321, "unit": "MW"}
    assert doc["values"]["energy"] == {"value": 1234.5, "unit": "kWh"}


# -- facility faults ------------------------------------------------------------------------------------


def _power(scenario: Scenario, facility: str, minutes: range) -> list[float]:
    return [_values(m)["power"] for m in _meter_messages(scenario, minutes)[facility]]


def test_a_stopped_producer_draws_nothing_and_its_stack_stops_with_it() -> None:
    stop = _scenario({"type": "production_stop", "facility": "jy-cement-1-mill", "from": 30, "to": 60})
    power = _power(stop, "jy-cement-1-mill", range(20, 70))
    assert all(p < 150 for p in power[10:40]) and all(p > 1500 for p in power[:10] + power[40:])
    stack = _stack_values(stop, "jy-cement-1-s3", range(20, 70))
    healthy = _stack_values(HEALTHY, "jy-cement-1-s3", range(20, 70))
    for i, (v, h) in enumerate(zip(stack, healthy, strict=True)):
        if 10 <= i < 40:
            assert v["flow"] < 0.05 * h["flow"] and v["o2"] > 20 and v["pm"] < 0.1 * h["pm"] and v["load"] < 1
        else:
            assert v == h
    # the kiln on the other stack goes on
    assert _stack_values(stop, "jy-cement-1-s1", range(40, 41)) == _stack_values(
        HEALTHY, "jy-cement-1-s1", range(40, 41)
    )


def test_limited_production_lowers_power_flow_and_emissions() -> None:
    limit = _scenario({"type": "production_limit", "facility": "jy-coke-1-oven1", "from": 0, "pct": 50})
    power = _power(limit, "jy-coke-1-oven1", range(30))
    assert all(p == pytest.approx(1100, rel=0.08) for p in power)
    stack = _stack_values(limit, "jy-coke-1-s1", range(30))
    healthy = _stack_values(HEALTHY, "jy-coke-1-s1", range(30))
    for v, h in zip(stack, healthy, strict=True):
        assert v["load"] == pytest.approx(50, rel=0.05)
        assert v["flow"] < 0.8 * h["flow"]
        assert v["so2"] * v["flow"] < 0.8 * h["so2"] * h["flow"]


def test_a_paper_cut_reports_a_lower_load_with_power_and_emissions_unchanged() -> None:
    paper = _scenario({"type": "paper_cut", "stack": "jy-coke-1-s1", "from": 0, "pct": 55})
    assert _power(paper, "jy-coke-1-oven1", range(10)) == _power(HEALTHY, "jy-coke-1-oven1", range(10))
    for v, h in zip(
        _stack_values(paper, "jy-coke-1-s1", range(10)), _stack_values(HEALTHY, "jy-coke-1-s1", range(10)), strict=True
    ):
        assert v["load"] == pytest.approx(55, rel=0.03) and h["load"] > 80
        assert {k: x for k, x in v.items() if k != "load"} == {k: x for k, x in h.items() if k != "load"}


def test_an_emission_cut_scales_concentrations_not_power() -> None:
    cut = _scenario({"type": "emission_cut", "stack": "jy-steel-1-s1", "from": 0, "factor": 0.5})
    assert _power(cut, "jy-steel-1-sinter1", range(10)) == _power(HEALTHY, "jy-steel-1-sinter1", range(10))
    for v, h in zip(
        _stack_values(cut, "jy-steel-1-s1", range(10)), _stack_values(HEALTHY, "jy-steel-1-s1", range(10)), strict=True
    ):
        for p in ("so2", "nox", "pm", "nh3"):
            assert v[p] == pytest.approx(0.5 * h[p])
        assert v["flow"] == h["flow"] and v["o2"] == h["o2"]


def test_control_faults_change_the_control_meter_only() -> None:
    faults = _scenario(
        {"type": "control_off", "facility": "jy-power-1-fgd1", "from": 10, "to": 20},
        {"type": "underpowered", "facility": "jy-steel-1-fgd1", "from": 10, "to": 20, "power_share": 0.3},
    )
    fgd = _power(faults, "jy-power-1-fgd1", range(30))
    assert all(p < 100 for p in fgd[10:20]) and all(p > 1000 for p in fgd[:10] + fgd[20:])
    weak = _power(faults, "jy-steel-1-fgd1", range(30))
    assert all(p == pytest.approx(270, rel=0.08) for p in weak[10:20]) and all(p > 700 for p in weak[20:])
    assert _power(faults, "jy-power-1-boiler1", range(30)) == _power(HEALTHY, "jy-power-1-boiler1", range(30))
    for stack in ("jy-power-1-s1", "jy-steel-1-s1"):  # what the stack's analysers read does not change
        assert _stack_values(faults, stack, range(30)) == _stack_values(HEALTHY, stack, range(30))


def test_a_late_start_starts_production_first_and_the_control_later() -> None:
    late = _scenario({"type": "late_start", "facility": "jy-coat-1-rto1", "down_from": 10, "from": 30, "lag_min": 15})
    line = _power(late, "jy-coat-1-line1", range(60))
    rto = _power(late, "jy-coat-1-rto1", range(60))
    assert all(p < 30 for p in line[10:30]) and all(p > 30 for p in line[:10] + line[30:])
    assert all(p < 20 for p in rto[10:45]) and all(p > 20 for p in rto[:10] + rto[45:])
    flows = [v["flow"] for v in _stack_values(late, "jy-coat-1-s1", range(60))]
    assert max(flows[10:30]) < 0.05 * min(flows[:10] + flows[30:])


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"type": "control_off", "stack": "jy-power-1-s1"}, "names its facility"),
        ({"type": "emission_cut", "facility": "jy-power-1-fgd1", "factor": 0.5}, "names its stack"),
        ({"type": "production_limit", "facility": "jy-coke-1-oven1"}, "needs pct"),
        ({"type": "late_start", "facility": "jy-coat-1-rto1", "from": 10}, "lag_min"),
        ({"type": "late_start", "facility": "jy-coat-1-rto1", "from": 10, "to": 20, "lag_min": 5}, "has no 'to'"),
    ],
)
def test_facility_faults_are_strict(fault: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _scenario(fault)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"type": "control_off", "facility": "jy-power-1-boiler9"}, "no facility 'jy-power-1-boiler9'"),
        ({"type": "control_off", "facility": "jy-power-1-boiler1"}, "is a production facility, not control"),
        ({"type": "production_stop", "facility": "jy-power-1-scr1"}, "is a control facility, not production"),
        ({"type": "silent", "stack": "jy-nowhere-s1"}, "no stack 'jy-nowhere-s1'"),
    ],
)
def test_faults_must_name_what_the_registry_has(fault: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Fleet(REG, ENGINE.profiles, _scenario(fault), START)


# -- emergency responses ---------------------------------------------------------------------------------


def test_the_emergency_scenario_lays_out_its_baseline_days_and_declares_its_response() -> None:
    scenario = load_scenario("emergency")
    assert scenario.lead_in_days == "baseline_days"
    fleet = Fleet(REG, ENGINE.profiles, scenario, START)
    assert REG.emergency_plan.baseline_days == 3
    assert fleet.scenario.duration_min == 3 * 1440 + 540
    (response,) = fleet.scenario.responses(START)
    assert response.level is Level.ORANGE and response.declared_by == "simulator"
    assert (response.start, response.end) == (START + timedelta(days=3), START + timedelta(days=3, hours=8))
    assert set(response.districts) == {"克井镇", "玉泉街道", "沁园街道", "承留镇"}
    shifted = {f.type: f.from_min for f in fleet.scenario.faults}
    assert shifted["production_stop"] == 3 * 1440 and shifted["emission_cut"] == 3 * 1440 + 300


def test_emergency_ground_truth_lists_each_enterprises_breached_hours() -> None:
    truth = load_scenario("emergency").ground_truth(START, ENGINE.settings, ENGINE.profiles)
    assert truth["responses"][0]["id"] == "sim-orange-1"
    alerts = [a for a in truth["alerts"] if a["kind"] == "emergency_noncompliance"]
    assert len(alerts) == len(truth["alerts"])  # no other alert: limits, stops and cuts are no faults
    found = {(a["enterprise"], a["stack"], a["parameter"]): [h[11:16] for h in a["hours"]] for a in alerts}
    day = [f"{h:02d}:00" for h in range(8)]  # the response: 00:00-08:00 UTC on the fourth day
    assert (
        found
        == {
            ("jy-coat-1", "jy-coat-1-s1", "jy-coat-1-line1"): day[1:],  # stop, lead time 1 h: does not stop
            ("jy-coke-1", "jy-coke-1-s1", "jy-coke-1-oven1"): day[2:],  # limit 70 %: cut on paper only
            ("jy-power-1", "jy-power-1-s1", "jy-power-1-boiler1"): day[2:],  # cut 20 %: does nothing
            ("jy-steel-1", "jy-steel-1-s1", "jy-steel-1-sinter1"): day[3:5],  # cut 30 %, lead 3 h: cuts from 05:00
        }
    )  # jy-cement-1 complies: kiln at 40 % (limit 50 %), mill stopped
    for a in alerts:
        assert a["start"] == [a["hours"][0], (datetime.fromisoformat(a["hours"][0]) + timedelta(hours=1)).isoformat()]


def test_a_response_over_the_whole_zone_with_no_one_reducing_breaches_every_judged_hour() -> None:
    scenario = Scenario.model_validate(
        {"version": 1, "name": "t", "duration_min": 300, "lead_in_days": 1,
         "responses": [{"id": "r1", "level": "red", "from": 0, "to": 240}]}
    )  # fmt: skip
    truth = scenario.ground_truth(START, ENGINE.settings, ENGINE.profiles)
    found = {a["parameter"]: len(a["hours"]) for a in truth["alerts"]}
    # red: power-1 boiler limit 60 % (its load under 60 % at night: judged per hour), cement kiln and
    # mill stop, steel sinter limit 50 %, coke oven limit 50 %, coating line stop; lead times 1-3 h
    assert found["jy-cement-1-kiln"] == found["jy-cement-1-mill"] == 2
    assert found["jy-steel-1-sinter1"] == 1 and found["jy-coke-1-oven1"] == 2 and found["jy-coat-1-line1"] == 3


def test_an_hour_the_ground_truth_cannot_call_is_an_error() -> None:
    scenario = Scenario.model_validate(
        {"version": 1, "name": "t", "duration_min": 300, "lead_in_days": 1,
         "responses": [{"id": "r1", "level": "orange", "districts": ["沁园街道"], "from": 0, "to": 240}],
         "faults": [{"type": "production_stop", "facility": "jy-coat-1-line1", "from": 90, "to": 240}]}
    )  # fmt: skip
    with pytest.raises(UndecidableError, match="stops or starts within the hour"):
        scenario.ground_truth(START, ENGINE.settings, ENGINE.profiles)
    with pytest.raises(ValueError, match="needs the profiles"):
        scenario.ground_truth(START, ENGINE.settings)
