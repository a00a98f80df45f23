"""Helpers for integration tests: run `cems gateway` as a real process, publish, consume."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from kafka import KafkaConsumer, TopicPartition
from paho.mqtt.enums import CallbackAPIVersion

from cems.infra.secrets import SecretStore
from cems.infra.settings import REPO_ROOT, InfraSettings
from contracts.topics import Topics, topics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """`cems gateway` as a real process, in its own topic namespace and MQTT session."""

    def __init__(
        self, infra: InfraSettings, namespace: str, log_path: Path, client_id: str, env: dict[str, str] | None = None
    ) -> None:
        self.infra = infra
        self.namespace = namespace
        self.client_id = client_id
        self.log_path = log_path
        self.tcp_port = free_port()
        self.metrics_port = free_port()
        args = [
            "gateway", "--namespace", namespace, "--client-id", client_id, "--tcp-port", str(self.tcp_port),
            "--metrics-port", str(self.metrics_port),
        ]  # fmt: skip
        self.process = CemsProcess(args, log_path, b'"gateway running"', {**infra_env(infra), **(env or {})})

    @property
    def topics(self) -> Topics:
        return topics(self.namespace)

    def start(self, timeout_s: float = 60) -> None:
        self.process.start(timeout_s)

    def tail(self, n: int = 4000) -> str:
        return self.process.tail(n)

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        self.process.stop()

    def end_session(self, secrets: SecretStore) -> None:
        """Discard the broker's persistent session of this test gateway (it would keep queueing)."""
        end_mqtt_session(self.infra, secrets, self.client_id)


def end_mqtt_session(infra: InfraSettings, secrets: SecretStore, client_id: str) -> None:
    """Discard the broker's persistent session of a platform client (a test gateway's): left
    behind, it would queue every later publish until it expires."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(infra.mqtt_platform_user, secrets.mqtt_password(infra.mqtt_platform_user))
    connected: queue.Queue[Any] = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p: connected.put(rc)
    client.connect(infra.host, infra.mqtt_port, keepalive=10, clean_start=True)
    client.loop_start()
    connected.get(timeout=10)
    client.disconnect()
    client.loop_stop()


class Publisher:
    """An enterprise's device account publishing with QoS 1."""

    def __init__(self, infra: InfraSettings, secrets: SecretStore, account: str, client_id: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(account, secrets.mqtt_password(account))
        self.client.max_inflight_messages_set(100)
        connected: queue.Queue[Any] = queue.Queue()
        self.client.on_connect = lambda c, u, f, rc, p: connected.put(rc)
        self.client.connect(infra.host, infra.mqtt_port, keepalive=30)
        self.client.loop_start()
        rc = connected.get(timeout=10)
        assert not rc.is_failure, rc

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1)

    def publish_all(self, items: list[tuple[str, bytes]]) -> None:
        infos = [self.publish(t, p) for t, p in items]
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class CemsProcess:
    """Any `cems` command as a real process, ready when its log shows ``ready_marker``."""

    args: list[str]
    log_path: Path
    ready_marker: bytes
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 90) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cems.cli", *self.args],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.args[0]} exited {self.proc.returncode}:\n{self.tail()}")
            with self.log_path.open("rb") as f:
                f.seek(offset)
                if self.ready_marker in f.read():
                    return
            time.sleep(0.2)
        raise AssertionError(f"{self.args[0]} not ready in {timeout_s}s:\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def infra_env(infra: InfraSettings) -> dict[str, str]:
    return {
        "CEMS_HOST": infra.host,
        "CEMS_MQTT_PORT": str(infra.mqtt_port),
        "CEMS_KAFKA_PORT": str(infra.kafka_port),
        "CEMS_INFLUXDB_PORT": str(infra.influxdb_port),
        "CEMS_STATE_DIR": str(infra.state_dir),
    }


def consume_all(
    bootstrap: str, topic: str, *, expect: int, timeout_s: float = 60, settle_s: float = 2.0
) -> list[dict[str, Any]]:
    """Read a topic (committed records only) from the beginning until ``expect`` records
    arrived and no more come."""
    return [
        value for _, value in consume_keyed(bootstrap, topic, expect=expect, timeout_s=timeout_s, settle_s=settle_s)
    ]


def consume_keyed(
    bootstrap: str, topic: str, *, expect: int, timeout_s: float = 60, settle_s: float = 2.0
) -> list[tuple[bytes | None, dict[str, Any]]]:
    """``consume_all`` with each record's key."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, isolation_level="read_committed"
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        consumer.seek_to_beginning()
        out: list[tuple[bytes | None, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=300)
            got = [(r.key, json.loads(r.value)) for records in batch.values() for r in records]
            out.extend(got)
            if got:
                quiet_since = time.monotonic()
            elif len(out) >= expect and time.monotonic() - quiet_since > settle_s:
                break
        return out
    finally:
        consumer.close()


def count_records(bootstrap: str, topic: str) -> int:
    """How many records a topic holds now (end minus beginning offsets, all partitions)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or set()]
        ends, begins = consumer.end_offsets(tps), consumer.beginning_offsets(tps)
        return sum(ends[tp] - begins[tp] for tp in tps)
    finally:
        consumer.close()


def prometheus_samples(port: int) -> dict[str, float]:
    """A service's Prometheus samples on ``port``: ``name{labels}`` -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def pipeline(
    request: Any, infra: InfraSettings, secrets: SecretStore, ns: str, unique: str, folder: Path, env: dict[str, str]
) -> tuple[CemsProcess, CemsProcess, CemsProcess]:
    """A gateway, a worker (event-time watermark) and a sink of their own, in namespace ``ns``,
    logging into ``folder`` (not started); stopped after the test (``request``: pytest's), and
    the gateway's broker session ended."""
    client_id = f"gw-{unique}"
    gateway = CemsProcess(
        ["gateway", "--namespace", ns, "--client-id", client_id, "--tcp-port", "0", "--metrics-port", "0"],
        folder / "gateway.log", b'"gateway running"', env,
    )  # fmt: skip
    worker = CemsProcess(
        ["worker", "--namespace", ns, "--app-id", f"detect-{unique}", "--watermark", "event"],
        folder / "worker.log", b"[^Worker]: Ready", env,
    )  # fmt: skip
    sink = CemsProcess(
        ["sink", "--namespace", ns, "--group", f"sink-{unique}"], folder / "sink.log", b"sink running", env
    )
    request.addfinalizer(lambda: end_mqtt_session(infra, secrets, client_id))  # runs last
    for proc in (gateway, worker, sink):
        request.addfinalizer(proc.stop)
    return gateway, worker, sink
