"""`cems simulate` publishing to the real Mosquitto and the HJ 212 TCP listener, into a real
gateway: the readings arrive, and the scenario's malformed, duplicate and skewed messages end
as dead letters with their reasons, not as readings."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cems.infra.secrets import SecretStore
from cems.infra.settings import REPO_ROOT, InfraSettings
from contracts.registry import SAMPLE_REGISTRY, load_registry
from simulators.fleet import Fleet, Message
from simulators.publish import Counters, MqttSink, run
from simulators.scenarios import load_scenario
from streams.engine import load_engine

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
METERS = len(load_registry().facilities())  # every facility's electricity meter publishes too
START = datetime(2026, 3, 2, tzinfo=UTC)


def simulate(infra: InfraSettings, gateway: GatewayProcess, tmp_path: Path, protocol: str) -> str:
    scenario = tmp_path / "wire-faults.yaml"
    scenario.write_text(SCENARIO)
    env = {**infra_env(infra), **gateway.process.env, "CEMS_GATEWAY_TCP_PORT": str(gateway.tcp_port)}
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
    if protocol == "hj212-tcp":  # over TCP only devices with a PW may send: give each one, for both sides
        text = SAMPLE_REGISTRY.read_text(encoding="utf-8")
        registry = tmp_path / "registry.yaml"
        registry.write_text(text.replace("protocol: json\n", "protocol: json\n      hj212_pw: '123456'\n"))
        gateway.stop()
        gateway.process.env["CEMS_REGISTRY"] = str(registry)
        gateway.start()
    output = simulate(infra, gateway, tmp_path, protocol)
    assert "errors 0" in output
    expected_readings = (STACKS + METERS) * 30 - 2  # two skewed readings are refused
    readings = consume_all(infra.kafka_bootstrap, gateway.topics.readings.name, expect=expected_readings)
    letters = consume_all(infra.kafka_bootstrap, gateway.topics.dead_letters.name, expect=7, settle_s=1)
    assert len(readings) == expected_readings, gateway.tail()
    assert len({(r["mn"], r["event_time"]) for r in readings}) == expected_readings
    assert Counter(d["reason"] for d in letters) == {"hj212_crc": 3, "duplicate": 2, "future_timestamp": 2}
    sources = Counter(r["source"] for r in readings)
    if protocol == "hj212-tcp":
        assert sources == {"tcp-hj212": expected_readings}
    else:
        assert set(sources) == {"mqtt-json", "mqtt-hj212"}


def test_simulator_publishes_in_batches_and_every_reading_arrives_intact(
    infra: InfraSettings, secrets: SecretStore, unique: str
) -> None:
    """The MQTT sink writes each batch of PUBLISH packets at once: every one is acknowledged,
    and a subscriber receives each payload as it was generated."""
    registry = load_registry()
    fleet = Fleet(registry, load_engine(registry).profiles, load_scenario("baseline"), START, count=600)
    expected: list[tuple[str, bytes]] = []

    class Recorder:
        def send(self, msg: Message) -> None:
            expected.append((msg.topic, msg.payload))

        def close(self) -> None:
            pass

    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    platform = infra.mqtt_platform_user
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{unique}", protocol=mqtt.MQTTv5)
    sub.username_pw_set(platform, secrets.mqtt_password(platform))
    sub.on_message = lambda c, u, m: received.put((m.topic, bytes(m.payload)))
    subscribed = threading.Event()
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.connect(infra.host, infra.mqtt_port)
    sub.loop_start()
    try:
        sub.subscribe("cems/v1/#", qos=1)
        assert subscribed.wait(10)
        counters = Counters()
        sink = MqttSink(infra.host, infra.mqtt_port, secrets.mqtt_password, counters, client_prefix=f"t-{unique}")
        run(fleet, [Recorder(), sink], steps=3, pacing=None, counters=counters, batch=256)
        assert counters.sent == counters.acked == len(expected) == 1800
        assert counters.errors == 0
        packets = sum(c.batched_packets for c in sink.connections.values())
        writes = sum(c.batch_writes for c in sink.connections.values())
        assert packets == 1800 and writes < packets / 5, f"PUBLISH packets went one by one ({writes} writes)"
        want = Counter(expected)
        deadline = time.monotonic() + 30
        while want and time.monotonic() < deadline:
            try:
                item = received.get(timeout=1)
            except queue.Empty:
                continue
            if want[item]:
                want[item] -= 1
                if not want[item]:
                    del want[item]
        assert not want, f"{sum(want.values())} readings did not arrive intact"
    finally:
        sub.disconnect()
        sub.loop_stop()


def test_a_refused_account_is_a_clear_error(infra: InfraSettings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cems.cli", "simulate", "--scenario", "baseline", "--duration-min", "1",
         "--speed", "60"],
        env={**os.environ, **infra_env(infra), "CEMS_MQTT_DEV_PASSWORD": "not-the-password"}, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    output = " ".join((done.stdout + done.stderr).split())
    assert "did not accept account 'jy-" in output and "not authorised" in output
    assert "Traceback" not in output
