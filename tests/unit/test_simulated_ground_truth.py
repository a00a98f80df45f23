"""The electricity and emergency scenarios, replayed through the gateway's validation and the
pure rules (as `cems simulate --out` and `cems replay` do, with the scenario's emergency
responses applied as the worker applies them), raise exactly their ground truth: the alerts
the scenario's fault definitions imply, derived without running the rules."""

from __future__ import annotations

import functools
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cems.cli import app
from contracts.alerts import AlertEvent, AlertEventType
from contracts.registry import Registry, load_registry
from ingest.validation import ReadingValidator, ValidationSettings
from rules.replay import ReplayDriver
from simulators.fleet import Fleet
from simulators.scenarios import Scenario, load_scenario
from simulators.truth import compare
from streams.engine import load_engine

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
EMERGENCY_REGISTRY = Path(__file__).parents[1] / "data" / "emergency-registry.yaml"


@functools.cache
def replay(name: str, registry_path: Path | None = None) -> tuple[dict[str, Any], tuple[AlertEvent, ...], Counter[str]]:
    """The scenario's ground truth, the alert events of its replay, and what validation refused."""
    registry: Registry = load_registry(registry_path) if registry_path else load_registry()
    engine = load_engine(registry)
    scenario: Scenario = load_scenario(name)
    fleet = Fleet(registry, engine.profiles, scenario, START, seed=7)
    validator = ReadingValidator(registry, ValidationSettings(max_future_s=300, max_age_s=float("inf")))
    readings = []
    refused: Counter[str] = Counter()
    for minute in range(fleet.scenario.duration_min):
        for msg in fleet.messages(minute):
            try:
                reading, _ = validator.from_mqtt(msg.topic, msg.payload, msg.event_time + timedelta(seconds=1))
            except Exception as exc:
                refused[str(getattr(exc, "reason", type(exc).__name__))] += 1
                continue
            readings.append(reading)
    readings.sort(key=lambda r: r.event_time)
    responses = sorted(fleet.scenario.responses(START), key=lambda r: r.declared_at)
    driver = ReplayDriver(engine)
    for reading in readings:
        while responses and responses[0].declared_at <= reading.event_time:
            driver.respond(responses.pop(0))  # declared when the run reaches its start
        driver.feed(reading)
    result = driver.finish()
    truth = scenario.ground_truth(START, engine.settings, engine.profiles)
    return truth, tuple(result.events), refused


def opened(events: tuple[AlertEvent, ...], kind: str) -> list[tuple[str, str | None, str]]:
    return [
        (e.stack, e.parameter, e.start.isoformat())
        for e in events
        if e.event is AlertEventType.OPENED and e.kind.value == kind
    ]


def test_electricity_scenario_raises_exactly_its_ground_truth() -> None:
    truth, events, refused = replay("electricity")
    assert not refused, refused
    kinds = Counter(a["kind"] for a in truth["alerts"])
    assert kinds == {"treatment_off": 2, "control_late_start": 1, "control_underpowered": 1}
    assert compare(truth, events) == []


@pytest.mark.parametrize("kind", ["treatment_off", "control_late_start", "control_underpowered"])
def test_electricity_alerts_name_the_control_facility(kind: str) -> None:
    truth, events, _ = replay("electricity")
    expected = sorted((a["stack"], a["parameter"]) for a in truth["alerts"] if a["kind"] == kind)
    assert sorted((stack, parameter) for stack, parameter, _ in opened(events, kind)) == expected


def test_emergency_scenario_on_the_small_registry_raises_exactly_its_ground_truth() -> None:
    truth, events, refused = replay("emergency", EMERGENCY_REGISTRY)
    assert not refused, refused
    by_enterprise = {a["enterprise"]: a["hours"] for a in truth["alerts"] if a["kind"] == "emergency_noncompliance"}
    response_start = START + timedelta(days=1)
    hours = [(response_start + timedelta(hours=h)).isoformat() for h in range(8)]
    assert (
        by_enterprise
        == {
            "jy-coke-1": hours[2:],  # a paper cut: its power never falls under the 70 % limit
            "jy-steel-1": hours[3:5],  # its 30 % cut from hour 5 only
            "jy-coat-1": hours[1:],  # does not stop
        }
    )
    assert compare(truth, events) == []
    complying = {e.stack for e in events if e.kind.value == "emergency_noncompliance"}
    assert not complying & {"jy-cement-1-s1", "jy-cement-1-s3", "jy-gas-1-s1"}


def test_simulate_to_a_file_then_replay_it_gives_the_emergency_ground_truth(tmp_path: Path) -> None:
    """The pure path with the commands: `cems simulate --no-publish` writes the messages, the
    ground truth and the responses; `cems replay --responses` judges them (the responses held
    from the start, as the report of a past response does)."""
    out, truth_path, responses = tmp_path / "em.txt", tmp_path / "truth.json", tmp_path / "responses.jsonl"
    registry = str(EMERGENCY_REGISTRY)
    done = CliRunner().invoke(
        app,
        ["simulate", "--scenario", "emergency", "--registry", registry, "--no-publish", "--out", str(out),
         "--truth-out", str(truth_path), "--responses-out", str(responses), "--start", "2026-03-02T00:00:00+00:00"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "emergency response to declare: sim-orange-1 orange" in done.output
    assert len(out.read_text().splitlines()) == 1980 * 15  # 6 stacks and 9 meters, a day and 9 hours
    events = tmp_path / "events.jsonl"
    done = CliRunner().invoke(
        app, ["replay", str(out), "--registry", registry, "--responses", str(responses), "--out", str(events)]
    )
    assert done.exit_code == 0, done.output
    truth = json.loads(truth_path.read_text())
    assert truth["responses"][0]["start"] == "2026-03-03T00:00:00Z"
    found = [AlertEvent.model_validate_json(line) for line in events.read_text().splitlines()]
    assert compare(truth, found) == []
    assert {e.stack for e in found if e.kind.value == "emergency_noncompliance"} == {
        "jy-coke-1-s1", "jy-steel-1-s1", "jy-coat-1-s1"
    }  # fmt: skip
