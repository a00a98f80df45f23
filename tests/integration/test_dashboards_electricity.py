"""The "Electricity use and emergency response" board's queries against the real InfluxDB, over
two simulated scenarios replayed into it: the electricity scenario (controls off, late, weak)
on the sample fleet, and the emergency scenario with its orange response on the small
registry of tests/data. Each panel returns what the engine decided."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from influxdb_client import InfluxDBClient
from typer.testing import CliRunner

from cems.cli import app
from cems.infra.secrets import SecretStore
from cems.infra.settings import REPO_ROOT, InfraSettings
from cems.replay import read_inputs
from contracts.alerts import ELECTRICITY_KINDS, AlertEvent, AlertEventType, AlertKind, HourlyAverage
from contracts.registry import load_registry

from .test_dashboards import Scenario, checks, episodes, forget, panel

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 12, tzinfo=UTC)
EMERGENCY_REGISTRY = REPO_ROOT / "tests" / "data" / "emergency-registry.yaml"


def _replayed(
    infra: InfraSettings, folder: Path, scenario: str, registry: Path | None, minutes: int
) -> Iterator[tuple[Scenario, datetime]]:
    ns = f"dash{uuid.uuid4().hex[:8]}"
    messages, alerts, hourly, responses = (folder / n for n in ("m.txt", "a.jsonl", "h.jsonl", "r.jsonl"))
    reg_args = ["--registry", str(registry)] if registry else []
    runner = CliRunner()
    sim = runner.invoke(app, ["simulate", "--scenario", scenario, "--no-publish", "--out", str(messages),
                              "--start", T0.isoformat(), "--responses-out", str(responses), *reg_args])  # fmt: skip
    assert sim.exit_code == 0, sim.output
    rep = runner.invoke(app, ["replay", str(messages), "--influx", "--namespace", ns, "--out", str(alerts),
                              "--hourly-out", str(hourly), "--responses", str(responses), *reg_args])  # fmt: skip
    assert rep.exit_code == 0, rep.output
    reg = load_registry(registry) if registry else load_registry()
    data = read_inputs([messages], reg)
    events = [AlertEvent.model_validate_json(line) for line in alerts.read_text().splitlines()]
    hours = [HourlyAverage.model_validate_json(line) for line in hourly.read_text().splitlines()]
    token = SecretStore(infra.secrets_dir).influxdb_token()
    with InfluxDBClient(url=infra.influxdb_url, token=token, org=infra.influxdb_org, timeout=30_000) as client:
        yield (
            Scenario(ns, reg, data.readings, events, hours, client, infra.influxdb_bucket, infra.influxdb_org),
            T0 + timedelta(minutes=minutes),
        )
        forget(client, ns, infra)


@pytest.fixture(scope="module")
def electricity(infra: InfraSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Scenario, datetime]]:
    yield from _replayed(infra, tmp_path_factory.mktemp("electricity"), "electricity", None, 240)


@pytest.fixture(scope="module")
def emergency(infra: InfraSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Scenario, datetime]]:
    # the lead-in of one baseline day, then the scenario's 540 minutes
    yield from _replayed(infra, tmp_path_factory.mktemp("emergency"), "emergency", EMERGENCY_REGISTRY, 1440 + 540)


@checks("Electricity alerts")
def test_electricity_alert_episodes(electricity: tuple[Scenario, datetime]) -> None:
    s, end = electricity
    kinds = set(ELECTRICITY_KINDS)
    want = episodes(s.events, kinds, start=T0, stop=end)
    assert {e.kind for e in s.events} & kinds >= {AlertKind.TREATMENT_OFF, AlertKind.CONTROL_LATE_START,
                                                  AlertKind.CONTROL_UNDERPOWERED}  # fmt: skip
    rows = s.query(panel("Electricity alerts"), start=T0, stop=end)
    assert {r["alert_id"]: (r["start"], r.get("end"), r["minutes"]) for r in rows} == {
        k: (e.start, e.end, e.minutes) for k, e in want.items()
    }
    assert {r["kind"] for r in rows} == {e.kind.value for e in s.events if e.kind in kinds}


@checks("Facility power")
def test_facility_power_is_each_meters_readings(electricity: tuple[Scenario, datetime]) -> None:
    s, end = electricity
    rows = s.query(panel("Facility power"), start=T0, stop=end)
    got = sorted((r["facility"], r["_time"], r["_value"]) for r in rows)
    want = sorted(
        (r.facility, r.event_time.replace(second=0) + timedelta(minutes=1), r.values["power"].value)
        for r in s.readings
        if r.facility is not None
    )
    assert {g[0] for g in got} == {f.id for _, f in s.registry.facilities()}
    assert [g[:2] for g in got] == [w[:2] for w in want]
    assert [g[2] for g in got] == pytest.approx([w[2] for w in want])
    # the FGD switched off from minute 60 to 90: near zero while the boiler draws power
    off = [
        v for f, t, v in got if f == "jy-power-1-fgd1" and T0 + timedelta(minutes=65) <= t < T0 + timedelta(minutes=85)
    ]
    assert off and max(off) < 100


@checks("Emergency non-compliance")
def test_emergency_noncompliance_episodes(emergency: tuple[Scenario, datetime]) -> None:
    s, end = emergency
    kind = {AlertKind.EMERGENCY_NONCOMPLIANCE}
    want = episodes(s.events, kind, start=T0, stop=end)
    assert want, "the scenario raises emergency_noncompliance"
    rows = s.query(panel("Emergency non-compliance"), start=T0, stop=end, window=timedelta(hours=1))
    assert {r["alert_id"]: (r["start"], r.get("end"), r["minutes"]) for r in rows} == {
        k: (e.start, e.end, e.minutes) for k, e in want.items()
    }


@checks("Non-compliant hours by facility")
def test_noncompliant_hours_by_facility(emergency: tuple[Scenario, datetime]) -> None:
    s, end = emergency
    want = Counter(
        (e.enterprise, e.parameter)
        for e in s.events
        if e.kind is AlertKind.EMERGENCY_NONCOMPLIANCE and e.event in (AlertEventType.OPENED, AlertEventType.UPDATED)
    )
    rows = s.query(panel("Non-compliant hours by facility"), start=T0, stop=end, window=timedelta(hours=1))
    assert {(r["enterprise"], r["facility"]): r["noncompliant_hours"] for r in rows} == dict(want)
    assert sum(want.values()) > 1
