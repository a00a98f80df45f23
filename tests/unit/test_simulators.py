"""Simulated stacks are physically consistent and reproducible; each scenario, replayed
through the same rules the stream processor runs, raises exactly its ground truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.registry import load_registry
from contracts.yamlfile import load_yaml_mapping
from ingest.validation import ReadingValidator, ValidationSettings
from rules.replay import ReplayDriver
from simulators.fleet import Fleet
from simulators.models import Overrides, StackModel
from simulators.scenarios import load_scenario, scenario_names
from simulators.truth import compare
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
