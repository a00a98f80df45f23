"""A rig for the HJ 212 TCP fault tests: a real `cems gateway` with TCP settings of the test's
choosing (on the shared Kafka, in its own topic namespace), devices that speak HJ 212 over
loopback sockets, and the gateway's Prometheus metrics."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cems.infra.secrets import SecretStore
from contracts.hj212 import encode_packet, parse_packet, split_stream
from contracts.hj212_data import PacketValue, data_packet
from contracts.reading import DataKind
from contracts.registry import load_registry
from tests.integration.helpers import GatewayProcess, prometheus_samples

REGISTRY = load_registry()
#: HJ 212 devices with a PW in the sample registry, and a JSON device without one
KILN = REGISTRY.stack_index()["jy-cement-1-s1"][1].devices[0]
HJ212_DEVICES = [d for _, s in REGISTRY.stacks() for d in s.devices if d.hj212_pw is not None]
JSON_DEVICE = REGISTRY.stack_index()["jy-power-1-s2"][1].devices[0]


def stop_gateway(gw: GatewayProcess, secrets: SecretStore) -> None:
    gw.stop()
    gw.end_session(secrets)


def base_time() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def packet(mn: str, pw: str, t: datetime, so2: float, *, ack: bool = True) -> bytes:
    values = {"so2": PacketValue(so2), "o2": PacketValue(9.5)}
    return encode_packet(data_packet(mn=mn, kind=DataKind.REALTIME, event_time=t, values=values, pw=pw, ack=ack))


def qn_of(frame: bytes) -> str:
    return parse_packet(frame).qn or ""


def connect(port: int, source: str = "127.0.0.1", timeout_s: float = 10) -> socket.socket:
    """A socket to the gateway from ``source`` (a loopback address)."""
    assert source.startswith("127."), "loopback only"
    sock = socket.socket()
    sock.settimeout(timeout_s)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_answers(sock: socket.socket, qns: set[str], timeout_s: float) -> set[str]:
    """Read CN 9014 answers until every QN in ``qns`` was answered (or ``timeout_s``)."""
    answered: set[str] = set()
    buffer = b""
    deadline = time.monotonic() + timeout_s
    while not qns <= answered and time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        packets, buffer = split_stream(buffer + chunk)
        for raw in packets:
            answer = parse_packet(raw)
            if answer.cn == "9014":  # (a history request, if the gateway sends one, is not an answer)
                answered.add(answer.qn or "")
    return answered


def metrics(gw: GatewayProcess) -> dict[str, float]:
    """The gateway's Prometheus samples, ``name{labels}`` -> value."""
    return prometheus_samples(gw.metrics_port)


def wait_metric(gw: GatewayProcess, name: str, value: float, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    got = metrics(gw).get(name, 0.0)
    while got != value and time.monotonic() < deadline:
        time.sleep(0.1)
        got = metrics(gw).get(name, 0.0)
    return got


def rss_mb(gw: GatewayProcess) -> float:
    assert gw.process.proc is not None
    status = Path(f"/proc/{gw.process.proc.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def threads(gw: GatewayProcess) -> int:
    assert gw.process.proc is not None
    status = Path(f"/proc/{gw.process.proc.pid}/status").read_text()
    return int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def close_all(socks: Iterable[socket.socket]) -> None:
    for sock in socks:
        sock.close()
