"""`cems simulate` publishing to the real Mosquitto and the HJ 212 TCP listener, into a real
gateway: the readings arrive, and the scenario's malformed, duplicate and skewed messages end
as dead letters with their reasons, not as readings."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from cems.infra.settings import REPO_ROOT, InfraSettings
from contracts.registry import load_registry

from .helpers import GatewayProcess, consume_all, infra_env

pytestmark = pytest.mark.integration

SCENARIO = """\
version: 1
name: wire-faults
duration_min: 30
faults:
  - {type: malformed, stack: jy-gas-1-s1, from: 5, count: 3}
  - {type: duplicates, stack: jy-coat-2-s1, from: 10, to: 12}
  - {type: clock_skew, stack: jy-coat-1-s1, from: 15, to: 17, offset_s: 1800}
"""
STACKS = len(load_registry().stacks())


def simulate(infra: InfraSettings, gateway: GatewayProcess, tmp_path: Path, protocol: str) -> str:
    scenario = tmp_path / "wire-faults.yaml"
    scenario.write_text(SCENARIO)
    env = {**infra_env(infra), "CEMS_GATEWAY_TCP_PORT": str(gateway.tcp_port)}
    done = subprocess.run(
        [sys.executable, "-m", "cems.cli", "simulate", "--scenario", str(scenario), "--speed", "600",
         "--protocol", protocol],
        env={**os.environ, **env}, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("protocol", ["registry", "hj212-tcp"])
def test_simulated_fleet_through_the_gateway(
    infra: InfraSettings, gateway: GatewayProcess, tmp_path: Path, protocol: str
) -> None:
    output = simulate(infra, gateway, tmp_path, protocol)
    assert "errors 0" in output
    expected_readings = STACKS * 30 - 2  # two skewed readings are refused
    readings = consume_all(infra.kafka_bootstrap, gateway.topics.readings.name, expect=expected_readings)
    letters = consume_all(infra.kafka_bootstrap, gateway.topics.dead_letters.name, expect=7, settle_s=1)
    assert len(readings) == expected_readings, gateway.tail()
    assert len({(r["stack"], r["event_time"]) for r in readings}) == expected_readings
    assert Counter(d["reason"] for d in letters) == {"hj212_crc": 3, "duplicate": 2, "future_timestamp": 2}
    sources = Counter(r["source"] for r in readings)
    if protocol == "hj212-tcp":
        assert sources == {"tcp-hj212": expected_readings}
    else:
        assert set(sources) == {"mqtt-json", "mqtt-hj212"}
