"""HJ 212 over TCP as an attacker would try it, against a real `cems gateway` and the real Kafka:

- a device registered without a PW (a JSON device) sending HJ 212 over TCP with any PW is
  refused (``hj212_password``), and a device sending from outside its allowed networks is
  refused (``source_not_allowed``): nothing of theirs in the readings;
- 5,000 idle or byte-a-second connections open: they open quickly and a legitimate device
  still delivers every reading, once, within a bound;
- idle and slow connections are closed after the idle time, and so is one that authenticated
  once and then sends only junk lines: only authenticated packets keep a connection open;
- a connection on which nothing authenticates is closed after the (short) time to authenticate;
- a flood of bare CR LF makes no dead letter, and a flood of junk lines at most the refusal
  budget's worth, before the connection is closed;
- connections over the per-network cap (a /24) are closed at once; at the total cap a newcomer
  evicts the oldest connection that has not authenticated, and is refused only when every
  connection has.

Source addresses are loopback addresses in different /24s (``127.N.0.1``) where the test means
different networks.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings
from contracts.registry import SAMPLE_REGISTRY
from ingest.tcp_source import raise_open_files_limit
from tests.integration.helpers import GatewayProcess, consume_all
from tests.sockets import closed_by_peer

from .ingest_rig import start_gateway
from .tcp_rig import (
    HJ212_DEVICES,
    JSON_DEVICE,
    KILN,
    base_time,
    close_all,
    connect,
    metrics,
    packet,
    qn_of,
    read_answers,
    rss_mb,
    stop_gateway,
    threads,
    wait_metric,
)

pytestmark = pytest.mark.integration

OPEN = "cems_gateway_tcp_connections"


def from_tcp(infra: InfraSettings, topic: str, expect: int, timeout_s: float = 60) -> list[dict[str, Any]]:
    """The records of ``topic`` that came over TCP (readings from ``tcp-hj212``, dead letters from
    a ``tcp:`` origin), at least ``expect`` of them unless ``timeout_s`` passes. The gateway also
    serves the shared broker, where other tests publish: what came over MQTT is not this test's."""

    def over_tcp(record: dict[str, Any]) -> bool:
        return record.get("source") == "tcp-hj212" or str(record.get("origin", "")).startswith("tcp:")

    deadline = time.monotonic() + timeout_s
    while True:
        records = consume_all(infra.kafka_bootstrap, topic, expect=expect, settle_s=1, timeout_s=timeout_s)
        got = [r for r in records if over_tcp(r)]
        if len(got) >= expect or time.monotonic() > deadline:
            return got


@pytest.fixture
def gateways(infra: InfraSettings, secrets: SecretStore, tmp_path: Path) -> Iterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    yield started
    for gw in started:
        stop_gateway(gw, secrets)


def test_a_device_without_pw_or_from_elsewhere_is_refused_over_tcp(
    infra: InfraSettings, tmp_path: Path, gateways: list[GatewayProcess]
) -> None:
    # the kiln may send only from 10.0.0.0/8; a second HJ 212 device from loopback
    allowed_elsewhere, allowed_here = KILN, next(d for d in HJ212_DEVICES if d.mn != KILN.mn)
    text = SAMPLE_REGISTRY.read_text(encoding="utf-8")
    for device, network in ((allowed_elsewhere, "10.0.0.0/8"), (allowed_here, "127.0.0.0/8")):
        anchor = f"    - mn: {device.mn}\n"
        assert text.count(anchor) == 1
        text = text.replace(anchor, f"{anchor}      tcp_allowed_networks: [{network}]\n")
    registry = tmp_path / "registry.yaml"
    registry.write_text(text, encoding="utf-8")
    gw = start_gateway(infra, tmp_path, {"CEMS_REGISTRY": str(registry)})
    gateways.append(gw)

    t0 = base_time()
    refused = {
        (JSON_DEVICE.mn, "123456"): "hj212_password",
        (JSON_DEVICE.mn, "anything"): "hj212_password",
        (JSON_DEVICE.mn, ""): "hj212_password",
        (allowed_elsewhere.mn, "123456"): "source_not_allowed",
    }
    with connect(gw.tcp_port) as sock:
        for i, (mn, pw) in enumerate(refused):
            sock.sendall(packet(mn, pw, t0 + timedelta(seconds=i), 50.0 + i))
        good = packet(allowed_here.mn, "123456", t0, 7.0)
        sock.sendall(good)
        # only the legitimate packet is answered
        assert read_answers(sock, {qn_of(good)}, timeout_s=20) == {qn_of(good)}
        assert not read_answers(sock, {"none"}, timeout_s=1)

    letters = from_tcp(infra, gw.topics.dead_letters.name, len(refused))
    got = Counter((d["mn"], d["reason"]) for d in letters)
    assert got == {(JSON_DEVICE.mn, "hj212_password"): 3, (allowed_elsewhere.mn, "source_not_allowed"): 1}, letters
    assert all(d["origin"].startswith("tcp:127.0.0.1:") for d in letters)
    readings = from_tcp(infra, gw.topics.readings.name, 1)
    assert [(r["mn"], r["source"]) for r in readings] == [(allowed_here.mn, "tcp-hj212")]
    m = metrics(gw)
    assert m['cems_gateway_rejected_total{reason="hj212_password"}'] == 3
    assert m['cems_gateway_rejected_total{reason="source_not_allowed"}'] == 1


class Trickle:
    """Sends one byte a second on each socket (never a whole packet), in a thread."""

    def __init__(self, socks: list[socket.socket]) -> None:
        self.socks = socks
        self.stop = threading.Event()
        self.sent = 0
        self.failed = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            for sock in self.socks:
                try:
                    sock.send(b"#")
                    self.sent += 1
                except OSError:
                    self.failed += 1


def test_a_device_delivers_while_5000_idle_or_slow_connections_are_open(
    infra: InfraSettings, tmp_path: Path, gateways: list[GatewayProcess]
) -> None:
    n_idle, n_slow, n_readings = 4000, 1000, 300
    sources = [f"127.{i}.0.1" for i in range(2, 10)]  # 625 a source network (/24), under a cap of 700
    nofile = raise_open_files_limit()
    assert nofile >= n_idle + n_slow + 200, f"open files limit {nofile}: raise the hard limit (ulimit -Hn)"
    # none of them authenticates: the time to authenticate is raised so that they stay
    env = {"CEMS_GATEWAY_TCP_MAX_PER_ADDRESS": "700", "CEMS_GATEWAY_TCP_AUTH_TIMEOUT_S": "600"}
    gw = start_gateway(infra, tmp_path, env)
    gateways.append(gw)
    rss_before, threads_before = rss_mb(gw), threads(gw)

    socks = []
    started = time.monotonic()
    try:
        for i in range(n_idle + n_slow):
            socks.append(connect(gw.tcp_port, sources[i % len(sources)]))
        opening_s = time.monotonic() - started
        assert wait_metric(gw, OPEN, n_idle + n_slow, timeout_s=10) == n_idle + n_slow
        held_s = time.monotonic() - started
        print(
            f"opened {len(socks)} connections in {opening_s:.2f}s ({len(socks) / opening_s:,.0f}/s); "
            f"the gateway held them all {held_s:.2f}s after the first ({len(socks) / held_s:,.0f}/s)"
        )
        assert held_s < 20
        trickle = Trickle(socks[n_idle:])
        try:
            time.sleep(2)  # the slow ones have sent a few bytes each
            t0 = base_time()
            frames = [packet(KILN.mn, "123456", t0 + timedelta(seconds=i), float(i)) for i in range(n_readings)]
            qns = {qn_of(f) for f in frames}
            sent_at = time.monotonic()
            with connect(gw.tcp_port) as device:
                for frame in frames:
                    device.sendall(frame)
                answered = read_answers(device, qns, timeout_s=30)
            delivered_s = time.monotonic() - sent_at
            print(f"{len(answered)} of {n_readings} readings answered in {delivered_s:.2f}s")
        finally:
            trickle.stop.set()
            trickle.thread.join(5)
        m = metrics(gw)
        print(
            f"gateway RSS {rss_before:.0f} -> {rss_mb(gw):.0f} MB, threads {threads_before} -> {threads(gw)}, "
            f"slow bytes sent {trickle.sent}"
        )
        assert answered == qns, f"{len(qns - answered)} not answered\n{gw.tail()}"
        assert delivered_s < 10
        assert trickle.failed == 0 and trickle.sent >= n_slow
        # none closed (the device's own connection has just ended), none refused
        assert wait_metric(gw, OPEN, n_idle + n_slow, timeout_s=5) == n_idle + n_slow
        assert not any(k.startswith("cems_gateway_tcp_refused_total{") and v for k, v in m.items())
        assert threads(gw) < threads_before + 10  # no thread a connection
    finally:
        close_all(socks)
    readings = from_tcp(infra, gw.topics.readings.name, n_readings)
    values = Counter(r["values"]["so2"]["value"] for r in readings)
    assert sorted(values) == [float(i) for i in range(n_readings)]
    assert max(values.values()) == 1, "duplicates"
    assert wait_metric(gw, OPEN, 0, timeout_s=10) == 0
    assert gw.process.proc is not None and gw.process.proc.poll() is None


def test_idle_and_slow_connections_are_closed_after_the_idle_time(
    infra: InfraSettings, tmp_path: Path, gateways: list[GatewayProcess]
) -> None:
    idle_s, n_idle, n_slow = 2.0, 200, 50
    env = {"CEMS_GATEWAY_TCP_IDLE_TIMEOUT_S": str(idle_s), "CEMS_GATEWAY_TCP_MAX_PER_ADDRESS": "300"}
    gw = start_gateway(infra, tmp_path, env)
    gateways.append(gw)
    idle = [connect(gw.tcp_port, "127.2.0.1") for _ in range(n_idle)]
    slow = [connect(gw.tcp_port, "127.3.0.1") for _ in range(n_slow)]
    # authenticates once, then sends only junk lines (each refused): they keep nothing open
    chatty = connect(gw.tcp_port, "127.4.0.1")
    opened = time.monotonic()
    device = connect(gw.tcp_port)
    t0 = base_time()
    frames = [packet(KILN.mn, "123456", t0 + timedelta(seconds=i), float(i)) for i in range(16)]
    chatty_frame = packet(KILN.mn, "123456", t0 - timedelta(seconds=1), 99.0)
    chatty.sendall(chatty_frame)
    chatty_origin = f"tcp:127.4.0.1:{chatty.getsockname()[1]}"
    junk_sent = 0
    trickle = Trickle(slow)
    closed_after: float | None = None
    try:
        # the device sends a reading every 0.25 s for 4 s: never idle
        for frame in frames:
            device.sendall(frame)
            with contextlib.suppress(OSError):
                chatty.sendall(b"x\r\n")
                junk_sent += 1
            time.sleep(0.25)
            if closed_after is None and metrics(gw)[OPEN] == 1:
                closed_after = time.monotonic() - opened
        print(
            f"{n_idle + n_slow + 1} idle, slow or junk-sending connections all closed {closed_after:.2f}s "
            f"after opening (idle {idle_s}s)"
        )
        assert closed_after is not None and idle_s <= closed_after <= idle_s + 1.0
        assert all(closed_by_peer(s, 0.5) for s in [*idle, *slow, chatty])
        assert read_answers(device, {qn_of(f) for f in frames}, 10) == {qn_of(f) for f in frames}
        assert not closed_by_peer(device, 0.2)
        device.close()
        # and no sooner than the idle time: a quiet period shorter than it keeps a connection
        early = connect(gw.tcp_port, "127.5.0.1")
        assert not closed_by_peer(early, idle_s * 0.75)
        assert closed_by_peer(early, idle_s)
        early.close()
    finally:
        trickle.stop.set()
        close_all([*idle, *slow, chatty, device])
    m = metrics(gw)
    assert m['cems_gateway_tcp_closed_total{cause="idle"}'] == n_idle + n_slow + 2
    assert not any(k.startswith("cems_gateway_tcp_refused_total{") and v for k, v in m.items())
    readings = from_tcp(infra, gw.topics.readings.name, len(frames) + 1)
    assert sorted(r["values"]["so2"]["value"] for r in readings) == [float(i) for i in range(len(frames))] + [99.0]
    # what each slow connection sent (never a packet) is kept as a dead letter, not dropped; so is
    # each junk line the chatty connection got in before it was closed
    letters = from_tcp(infra, gw.topics.dead_letters.name, n_slow + 1)
    junk = [d for d in letters if d["origin"] == chatty_origin]
    assert Counter(d["reason"] for d in letters if d not in junk) == {"hj212_framing": n_slow}, letters[:3]
    assert 1 <= len(junk) <= junk_sent and {d["reason"] for d in junk} == {"hj212_framing"}
    print(f"junk lines sent {junk_sent}, dead-lettered before the close {len(junk)}")


def refused_within(port: int, source: str) -> float:
    """Connect from ``source``; seconds until the gateway closed the connection (reset during
    the connect counts: the reset came before the handshake finished on our side)."""
    started = time.monotonic()
    try:
        sock = connect(port, source)
    except ConnectionResetError:
        return time.monotonic() - started
    with sock:
        assert closed_by_peer(sock, 2.0), "not closed"
    return time.monotonic() - started


def test_connections_over_the_per_network_cap_are_closed_at_once(
    infra: InfraSettings, tmp_path: Path, gateways: list[GatewayProcess]
) -> None:
    per_network = 20
    gw = start_gateway(infra, tmp_path, {"CEMS_GATEWAY_TCP_MAX_PER_ADDRESS": str(per_network)})
    gateways.append(gw)
    # 20 from 127.0.0.0/24, from two addresses in it
    held = [connect(gw.tcp_port, "127.0.0.1" if i % 2 else "127.0.0.2") for i in range(per_network)]
    socks = list(held)
    try:
        assert wait_metric(gw, OPEN, per_network, timeout_s=5) == per_network
        # more from that /24, whichever address: each closed at once
        for i in range(10):
            assert refused_within(gw.tcp_port, f"127.0.0.{1 + i}") < 0.5
        # other networks are still served
        for _ in range(per_network):
            socks.append(connect(gw.tcp_port, "127.1.0.1"))
        device = connect(gw.tcp_port, "127.2.0.1")
        socks.append(device)
        frame = packet(KILN.mn, "123456", base_time(), 3.0)
        device.sendall(frame)
        assert read_answers(device, {qn_of(frame)}, 10) == {qn_of(frame)}
        assert wait_metric(gw, OPEN, 2 * per_network + 1, timeout_s=5) == 2 * per_network + 1
        assert all(not closed_by_peer(s, 0.01) for s in held)
        m = metrics(gw)
        assert m['cems_gateway_tcp_refused_total{cause="per_address_cap"}'] == 10
        assert m.get('cems_gateway_tcp_refused_total{cause="total_cap"}', 0) == 0
        # one leaves: room for its network again
        held.pop().close()
        assert wait_metric(gw, OPEN, 2 * per_network, timeout_s=5) == 2 * per_network
        again = connect(gw.tcp_port, "127.0.0.200")
        socks.append(again)
        assert not closed_by_peer(again, 0.3)
    finally:
        close_all(socks)
    readings = from_tcp(infra, gw.topics.readings.name, 1)
    assert [r["values"]["so2"]["value"] for r in readings] == [3.0]


def test_at_the_total_cap_the_oldest_unauthenticated_connection_makes_room(
    infra: InfraSettings, tmp_path: Path, gateways: list[GatewayProcess]
) -> None:
    total, n_devices = 10, 3
    gw = start_gateway(infra, tmp_path, {"CEMS_GATEWAY_TCP_MAX_CONNECTIONS": str(total)})
    gateways.append(gw)
    t0 = base_time()
    values = iter(range(1000))
    sent: list[float] = []

    def authenticate(sock: socket.socket) -> None:
        value = float(next(values))
        frame = packet(KILN.mn, "123456", t0 + timedelta(seconds=value), value)
        sock.sendall(frame)
        assert read_answers(sock, {qn_of(frame)}, 10) == {qn_of(frame)}
        sent.append(value)

    devices = [connect(gw.tcp_port, f"127.{10 + i}.0.1") for i in range(n_devices)]
    for sock in devices:
        authenticate(sock)
    # strangers fill the rest, the oldest first; one of them sends a refused packet (a JSON
    # device's HJ 212 over TCP): a refusal authenticates nothing
    strangers = [connect(gw.tcp_port, f"127.{20 + i}.0.1") for i in range(total - n_devices)]
    strangers[0].sendall(packet(JSON_DEVICE.mn, "123456", t0, 1.0))
    socks = [*devices, *strangers]
    try:
        assert wait_metric(gw, OPEN, total, timeout_s=5) == total
        # each newcomer evicts the oldest stranger, never a device
        newcomers = []
        for i, stranger in enumerate(strangers):
            newcomers.append(connect(gw.tcp_port, f"127.{40 + i}.0.1"))
            socks.append(newcomers[-1])
            assert closed_by_peer(stranger, 2), f"stranger {i} not evicted"
            assert all(not closed_by_peer(s, 0.01) for s in strangers[i + 1 :] + devices + newcomers)
        m = metrics(gw)
        assert m['cems_gateway_tcp_closed_total{cause="evicted"}'] == len(strangers)
        assert m[OPEN] == total
        # every connection authenticates: now a newcomer is refused at once, and nobody evicted
        for sock in newcomers:
            authenticate(sock)
        refused_s = refused_within(gw.tcp_port, "127.60.0.1")
        print(f"a newcomer at a full cap of authenticated connections refused in {refused_s:.3f}s")
        assert refused_s < 0.5
        assert all(not closed_by_peer(s, 0.01) for s in devices + newcomers)
        m = metrics(gw)
        assert m['cems_gateway_tcp_refused_total{cause="total_cap"}'] == 1
        assert m['cems_gateway_tcp_closed_total{cause="evicted"}'] == len(strangers)
        assert m[OPEN] == total
    finally:
        close_all(socks)
    readings = from_tcp(infra, gw.topics.readings.name, len(sent))
    assert sorted(r["values"]["so2"]["value"] for r in readings) == sent


def test_a_connection_that_never_authenticates_is_closed_after_the_auth_timeout(
    infra: InfraSettings, tmp_path: Path, gateways: list[GatewayProcess]
) -> None:
    auth_s, n_silent = 2.0, 50
    gw = start_gateway(infra, tmp_path, {"CEMS_GATEWAY_TCP_AUTH_TIMEOUT_S": str(auth_s)})
    gateways.append(gw)
    t0 = base_time()
    silent = [connect(gw.tcp_port, "127.2.0.1") for _ in range(n_silent)]
    # sends a refused packet (no PW registered for it) every 0.25 s: well within the refusal budget
    refused = connect(gw.tcp_port, "127.3.0.1")
    opened = time.monotonic()
    device = connect(gw.tcp_port, "127.4.0.1")
    good = packet(KILN.mn, "123456", t0, 5.0)
    device.sendall(good)
    assert read_answers(device, {qn_of(good)}, 10) == {qn_of(good)}
    n_refused = 0
    closed_after: float | None = None
    while time.monotonic() - opened < auth_s + 1.5:
        if closed_after is None:
            with contextlib.suppress(OSError):
                refused.sendall(packet(JSON_DEVICE.mn, "123456", t0 + timedelta(seconds=n_refused), 1.0))
                n_refused += 1
        time.sleep(0.25)
        if closed_after is None and metrics(gw)[OPEN] == 1:
            closed_after = time.monotonic() - opened
    print(f"{n_silent + 1} connections with nothing authenticated closed {closed_after:.2f}s after opening")
    try:
        assert closed_after is not None and auth_s - 0.1 <= closed_after <= auth_s + 1.0
        assert all(closed_by_peer(s, 0.5) for s in [*silent, refused])
        # the device authenticated: the idle time (600 s) applies to it, not the time to authenticate
        assert not closed_by_peer(device, 0.2)
        again = packet(KILN.mn, "123456", t0 + timedelta(seconds=1), 6.0)
        device.sendall(again)
        assert read_answers(device, {qn_of(again)}, 10) == {qn_of(again)}
    finally:
        close_all([*silent, refused, device])
    m = metrics(gw)
    assert m['cems_gateway_tcp_closed_total{cause="auth_timeout"}'] == n_silent + 1
    assert m.get('cems_gateway_tcp_closed_total{cause="idle"}', 0) == 0
    readings = from_tcp(infra, gw.topics.readings.name, 2)
    assert sorted(r["values"]["so2"]["value"] for r in readings) == [5.0, 6.0]
    letters = from_tcp(infra, gw.topics.dead_letters.name, 1)  # up to n_refused: the last may come after the close
    assert 1 <= len(letters) <= n_refused and {d["reason"] for d in letters} == {"hj212_password"}


def test_a_flood_of_blank_lines_makes_no_dead_letter_and_junk_lines_only_the_budget(
    infra: InfraSettings, tmp_path: Path, gateways: list[GatewayProcess]
) -> None:
    gw = start_gateway(infra, tmp_path)  # the default refusal budget: 100 at once, 100 per 10 s
    gateways.append(gw)
    t0 = base_time()
    flood_bytes = 2_000_000
    outcome: dict[str, tuple[str, int, float]] = {}
    for name, line in (("blank", b"\r\n"), ("junk", b"x\r\n")):
        with connect(gw.tcp_port, "127.2.0.1" if name == "blank" else "127.3.0.1") as sock:
            origin = f"tcp:{sock.getsockname()[0]}:{sock.getsockname()[1]}"
            started, sent = time.monotonic(), 0
            try:
                while sent < flood_bytes:
                    sock.sendall(line * 10_000)
                    sent += len(line) * 10_000
            except OSError:  # the gateway closed it while we were still sending
                pass
            assert closed_by_peer(sock, 5), f"{name} flood: connection not closed"
            outcome[name] = (origin, sent, time.monotonic() - started)
    # a device with a blank line before and after each packet: within the budget, all delivered
    frames = [packet(KILN.mn, "123456", t0 + timedelta(seconds=i), float(i)) for i in range(20)]
    with connect(gw.tcp_port, "127.4.0.1") as device:
        device.sendall(b"".join(b"\r\n" + f + b"\r\n" for f in frames))
        assert read_answers(device, {qn_of(f) for f in frames}, 10) == {qn_of(f) for f in frames}
        assert not closed_by_peer(device, 0.2)
    m = metrics(gw)
    letters = from_tcp(infra, gw.topics.dead_letters.name, 101)
    by_origin = Counter(d["origin"] for d in letters)
    blank_origin, blank_sent, blank_s = outcome["blank"]
    junk_origin, junk_sent, junk_s = outcome["junk"]
    print(
        f"blank-line flood: {blank_sent:,} bytes sent before the close ({blank_s:.2f}s), "
        f"{by_origin[blank_origin]} dead letters; junk-line flood: {junk_sent:,} bytes ({junk_s:.2f}s), "
        f"{by_origin[junk_origin]} dead letters; blank lines counted {m['cems_gateway_tcp_blank_lines_total']:,.0f}"
    )
    assert by_origin[blank_origin] == 0
    # the 101st refused junk line closes the connection (a few more if reads were spread out)
    assert 101 <= by_origin[junk_origin] <= 110
    assert set(by_origin) == {junk_origin}, by_origin
    assert m['cems_gateway_tcp_closed_total{cause="refusals"}'] == 2
    assert m["cems_gateway_tcp_blank_lines_total"] >= 101 + 2 * len(frames)
    readings = from_tcp(infra, gw.topics.readings.name, len(frames))
    assert sorted(r["values"]["so2"]["value"] for r in readings) == [float(i) for i in range(len(frames))]
