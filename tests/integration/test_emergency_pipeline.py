"""The emergency scenario end to end, through the real servers: `cems simulate` publishes the
fleet of tests/data/emergency-registry.yaml (stacks and electricity meters, JSON and HJ 212)
to Mosquitto, a real gateway puts it on Kafka, `cems emergency declare` declares the orange
response, a real worker judges it and a real sink stores everything in InfluxDB.

Exactly the scenario's ground truth is raised (no alert missing, none unexplained); the report,
judged again from the hourly averages InfluxDB holds, finds the same non-compliant hours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cems.infra.secrets import SecretStore
from cems.infra.settings import REPO_ROOT, InfraSettings
from console.evidence import InfluxEvidence
from contracts.alerts import AlertEvent, AlertEventType, AlertKind
from contracts.emergency import EmergencyResponse
from contracts.registry import load_registry
from contracts.topics import topics
from rules.emergency_report import response_report
from simulators.truth import compare
from streams.engine import load_engine

from .helpers import consume_all, infra_env, pipeline

pytestmark = pytest.mark.integration
REGISTRY_FILE = REPO_ROOT / "tests" / "data" / "emergency-registry.yaml"
#: the scenario's lead-in (the plan's baseline_days: 1) and its own 540 minutes
RUN = timedelta(days=1, minutes=540)


def cems(*args: str, env: dict[str, str], timeout_s: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cems.cli", *args], env={**os.environ, **env}, cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=timeout_s, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"cems {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def opened_noncompliance(events: list[AlertEvent]) -> dict[str, set[str]]:
    """Facility -> the hours its emergency_noncompliance alerts found not met."""
    out: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.kind is AlertKind.EMERGENCY_NONCOMPLIANCE and e.event in (AlertEventType.OPENED, AlertEventType.UPDATED):
            out[e.evidence["facility"]].add(datetime.fromisoformat(e.evidence["hour_start"]).isoformat())
    return dict(out)


def test_the_emergency_scenario_raises_exactly_its_ground_truth(
    infra: InfraSettings, secrets: SecretStore, unique: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    registry = load_registry(REGISTRY_FILE)
    engine = load_engine(registry)
    ns = f"em{unique}"
    topic_set = topics(ns)
    # the run ends an hour before now: its first readings are about 35 hours old
    t0 = (datetime.now(UTC) - RUN - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    rules_file = tmp_path / "rules.yaml"
    # published ~4000x faster than real time: 15 event-minutes of grace are ~0.2 s of wall time
    rules_file.write_text("version: 1\ngrace_s: 900\n")
    env = {
        **infra_env(infra),
        "CEMS_REGISTRY": str(REGISTRY_FILE),
        "CEMS_RULES_FILE": str(rules_file),
        "CEMS_TOPIC_NAMESPACE": ns,
        "CEMS_TICK_INTERVAL_S": "1",
        "CEMS_WATERMARK_IDLE_S": "2",
        # history older than the gateway's usual 26 h acceptance window: accept three days
        "CEMS_MAX_AGE_S": str(3 * 86400),
    }
    truth_file, responses_file, wire = tmp_path / "truth.json", tmp_path / "responses.jsonl", tmp_path / "wire.txt"
    common = ["--scenario", "emergency", "--registry", str(REGISTRY_FILE), "--start", t0.isoformat()]
    cems("simulate", *common, "--no-publish", "--out", str(wire), "--truth-out", str(truth_file),
         "--responses-out", str(responses_file), env=env)  # fmt: skip
    truth = json.loads(truth_file.read_text(encoding="utf-8"))
    (response,) = [EmergencyResponse.model_validate_json(line) for line in responses_file.read_text().splitlines()]
    expected_kinds = {a["kind"] for a in truth["alerts"]}
    assert expected_kinds == {AlertKind.EMERGENCY_NONCOMPLIANCE.value}, truth["alerts"]

    gateway, worker, sink = pipeline(request, infra, secrets, ns, unique, tmp_path, env)
    gateway.start()
    worker.start()
    sink.start()
    assert response.end is not None
    declare = ["emergency", "declare", "--namespace", ns, "--registry", str(REGISTRY_FILE), "--id", response.id,
               "--level", response.level.value, "--by", "test centre", "--start", response.start.isoformat(),
               "--end", response.end.isoformat()]  # fmt: skip
    for district in response.districts:
        declare += ["--district", district]
    assert f"declared {response.id}" in cems(*declare, env=env)
    published = cems("simulate", *common, "--speed", "4000", env=env)
    assert "errors 0" in published, published

    # every expected alert opened, then nothing more for a while: exactly the ground truth
    deadline = time.monotonic() + 180
    events: list[AlertEvent] = []
    while time.monotonic() < deadline:
        events = [AlertEvent.model_validate(e) for e in consume_all(infra.kafka_bootstrap, topic_set.alerts.name,
                                                                     expect=0, timeout_s=10, settle_s=1)]  # fmt: skip
        if not [p for p in compare(truth, events) if p.startswith("missing")]:
            break
        time.sleep(2)
    time.sleep(5)
    events = [AlertEvent.model_validate(e) for e in consume_all(infra.kafka_bootstrap, topic_set.alerts.name,
                                                                 expect=len(events), timeout_s=30)]  # fmt: skip
    assert compare(truth, events) == [], worker.tail()
    letters = consume_all(infra.kafka_bootstrap, topic_set.dead_letters.name, expect=0, timeout_s=5, settle_s=1)
    assert letters == [], letters[:3]
    found = opened_noncompliance(events)
    assert found, "no emergency_noncompliance raised"

    # the report, from what InfluxDB holds, judges the same hours non-compliant
    evidence = InfluxEvidence(infra.influxdb_url, secrets.influxdb_token(), infra.influxdb_org,
                              infra.influxdb_bucket, ns)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            hourly = evidence.hourly_averages(t0, t0 + RUN)
            report = response_report(engine.profiles, engine.settings, response, hourly, until=response.end)
            noncompliant = {
                m.facility: {h.hour_start.isoformat() for h in m.hours if h.status.value == "noncompliant"}
                for ent in report.enterprises for m in ent.measures
            }  # fmt: skip
            if {f: hours for f, hours in noncompliant.items() if hours} == found or time.monotonic() > deadline:
                break
            time.sleep(2)
    finally:
        evidence.close()
    assert {f: hours for f, hours in noncompliant.items() if hours} == found
    meters = {h.parameter for h in hourly if h.parameter.endswith("/power")}
    assert meters == {f"{f.id}/power" for _, f in registry.facilities()}
    # the command-line report reads the same
    csv_file = tmp_path / "report.csv"
    cems("emergency", "report", response.id, "--namespace", ns, "--registry", str(REGISTRY_FILE),
         "--csv", str(csv_file), env=env)  # fmt: skip
    rows = csv_file.read_text(encoding="utf-8").splitlines()
    assert sum(1 for r in rows if r.startswith("check,") and ",noncompliant," in r) >= sum(
        len(h) for h in found.values()
    )
