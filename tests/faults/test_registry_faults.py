"""Issue 10, the two registry rows: a parameter named ``no`` (nitric oxide) in a hand-written
registry, and a stack that reports NO and NO2 instead of NOx in an industry with a NOx limit.

Pure (no servers): the registry is read from a YAML file as an operator writes it, readings go
through the gateway's ``ReadingValidator`` (JSON and HJ 212 over MQTT topics) and are replayed
through the detection engine the worker builds (``streams.engine.load_engine``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts.errors import ConfigError
from contracts.hj212 import encode_packet
from contracts.hj212_data import PacketValue, data_packet
from contracts.parameters import Unit
from contracts.reading import DataKind, Reading
from contracts.registry import SAMPLE_REGISTRY, Registry, load_registry
from ingest.validation import ReadingValidator, ValidationSettings
from rules.replay import ReplayDriver
from streams.engine import load_engine

T0 = datetime(2026, 3, 2, tzinfo=UTC)
HOURS = 2
S1, S2 = "jy-power-1-s1", "jy-power-1-s2"  # coal power: NOx limit 50 mg/m3 at reference O2 6 %


def _registry_text(s1_parameters: str = "      no: ppm\n      no2: mg/m3\n") -> str:
    """The sample registry with jy-power-1's two stacks reporting NO and NO2 instead of NOx,
    written unquoted as an operator would: s1 (an HJ 212 device) NO in ppm, s2 (JSON) mg/m3."""
    text = SAMPLE_REGISTRY.read_text()
    start, end = text.index(f"  - id: {S1}\n"), text.index("- id: jy-power-2\n")
    block = text[start:end]
    assert block.count("      nox: mg/m3\n") == 2
    block = block.replace("      nox: mg/m3\n", s1_parameters, 1)
    block = block.replace("      nox: mg/m3\n", "      no: mg/m3\n      no2: mg/m3\n", 1)
    return text[:start] + block + text[end:]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return load_registry(_write(tmp_path, _registry_text()))


def test_a_parameter_named_no_is_nitric_oxide_not_false(registry: Registry) -> None:
    _, s1 = registry.stack_index()[S1]
    _, s2 = registry.stack_index()[S2]
    assert s1.parameters["no"] is Unit.PPM
    assert s2.parameters["no"] is Unit.MG_M3
    assert {"no", "no2"} <= s1.parameters.keys() and {"no", "no2"} <= s2.parameters.keys()
    assert not any(isinstance(k, bool) for _, s in registry.stacks() for k in s.parameters)


@pytest.mark.parametrize(
    ("s1_parameters", "expected"),
    [
        ("      no: ppb\n      no2: mg/m3\n", "parameters.no: Input should be 'mg/m3', 'ppm', "),
        ("      no: mg/m3\n      on: mg/m3\n", "parameters.on: unknown parameter; known: "),
        ("      no: mg/m3\n      no2: mg/m3\n      yes: mg/m3\n", "parameters.yes: unknown parameter; known: "),
        ("      no: mg/m3\n      no2: '%'\n", "parameters.no2: cannot be reported in '%' (allowed: mg/m3, ppm)"),
    ],
)
def test_an_error_names_the_file_enterprise_stack_and_key(tmp_path: Path, s1_parameters: str, expected: str) -> None:
    path = _write(tmp_path, _registry_text(s1_parameters))
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    assert str(info.value).startswith(f"{path}: enterprises[jy-power-1].stacks[{S1}].{expected}")
    assert len(str(info.value).splitlines()) == 1


def test_no_without_no2_under_a_nox_limit_is_refused_when_the_engine_is_built(tmp_path: Path) -> None:
    path = _write(tmp_path, _registry_text("      no: mg/m3\n"))
    registry = load_registry(path)  # the registry alone is consistent: the limit is the catalogue's
    with pytest.raises(ConfigError) as info:
        load_engine(registry)
    assert str(info.value) == (
        f"{path}: enterprises[jy-power-1].stacks[{S1}].parameters.no: a nox limit of 50 mg/m3 applies "
        "(the limits catalogue for coal_power) but nox can never be computed: no2 not declared; "
        "declare nox, or no and no2"
    )


def _readings(registry: Registry) -> tuple[int, list[Reading]]:
    """One reading a minute from each stack for two hours, through the gateway's validator:
    s1 over HJ 212 (NO 20 ppm, NO2 5 mg/m3, O2 9 %), s2 as JSON (NO 20, NO2 0 mg/m3, O2 6 %)."""
    validator = ReadingValidator(registry, ValidationSettings(max_future_s=300, max_age_s=float("inf")))
    _, s1 = registry.stack_index()[S1]
    _, s2 = registry.stack_index()[S2]
    sent, out = 0, []
    for minute in range(HOURS * 60):
        t = T0 + timedelta(minutes=minute, seconds=20)
        packet = data_packet(
            mn=s1.devices[0].mn,
            kind=DataKind.REALTIME,
            event_time=t,
            values={"no": PacketValue(20.0), "no2": PacketValue(5.0), "o2": PacketValue(9.0)},
            pw=s1.devices[0].hj212_pw or "",
        )
        doc = {
            "mn": s2.devices[0].mn,
            "time": t.isoformat(),
            "kind": "realtime",
            "values": {"no": {"value": 20.0}, "no2": {"value": 0.0}, "o2": {"value": 6.0, "unit": "%"}},
        }
        for topic, payload in (
            (f"cems/v1/jy-power-1/{S1}/hj212", encode_packet(packet)),
            (f"cems/v1/jy-power-1/{S2}/reading", json.dumps(doc).encode()),
        ):
            sent += 1
            reading, _ = validator.from_mqtt(topic, payload, t + timedelta(seconds=1))
            out.append(reading)
    return sent, out


def test_no_and_no2_stack_gets_nox_hourly_averages_and_the_exceedance(registry: Registry) -> None:
    sent, readings = _readings(registry)
    assert len(readings) == sent == 2 * HOURS * 60  # every reading accepted
    # NO 20 ppm = 30/22.4 * 20 = 26.786 mg/m3, as NO2 * 46/30 = 41.071, + NO2 5 = 46.071
    assert readings[0].values["nox"].value == pytest.approx(46.0714, abs=1e-4)
    assert readings[1].values["nox"].value == pytest.approx(30.6667, abs=1e-4)  # NO 20 mg/m3 as NO2

    result = ReplayDriver(load_engine(registry)).feed_all(readings).finish()
    nox = {(h.stack, h.hour_start): h for h in result.hourly if h.parameter == "nox"}
    hours = [T0 + timedelta(hours=h) for h in range(HOURS)]
    assert sorted(nox) == sorted((s, h) for s in (S1, S2) for h in hours)
    for hour in hours:
        s1, s2 = nox[(S1, hour)], nox[(S2, hour)]
        assert (s1.valid_minutes, s1.limit, s1.o2_converted) == (60, 50.0, True)
        assert s1.mean == pytest.approx(46.0714, abs=1e-4)
        assert s1.converted == pytest.approx(46.0714 * 15 / 12, abs=1e-4)  # at reference O2 6 %: 57.59
        assert (s2.valid_minutes, s2.limit) == (60, 50.0)
        assert s2.converted == pytest.approx(30.6667, abs=1e-4)  # within the limit

    exceedances = [e for e in result.events if e.kind.value == "exceedance"]
    assert [(e.event.value, e.stack, e.parameter) for e in exceedances] == [
        ("opened", S1, "nox"),
        ("updated", S1, "nox"),
    ]
    evidence = exceedances[0].evidence
    assert evidence["converted_mg_m3"] == pytest.approx(57.5893, abs=1e-4)
    assert (evidence["limit_mg_m3"], evidence["valid_minutes"], evidence["reference_o2_pct"]) == (50.0, 60, 6.0)
