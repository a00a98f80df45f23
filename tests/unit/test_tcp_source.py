"""The HJ 212 TCP listener on real loopback sockets, with a recording handler in place of the
gateway core: packets cut from the stream, answers from other threads, idle connections
closed, connection caps, bounded buffers, and a handler that fails without taking the
listener down."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from contracts.hj212 import split_stream
from ingest.tcp_source import ConnectionBook, Refusal, TcpLimits, TcpSource, is_idle

HOST = "127.0.0.1"
PACKET = b"##0010QN=1;CN=2011ABCD\r\n"


class Recorder:
    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []
        self.answers: dict[bytes, object] = {}
        self.fail_on: bytes | None = None
        self.lock = threading.Lock()

    def __call__(self, peer: str, packet: bytes, answer: object) -> None:
        if packet == self.fail_on:
            raise RuntimeError("handler failed")
        with self.lock:
            self.items.append((peer, packet))
            self.answers[packet] = answer

    def packets(self) -> list[bytes]:
        with self.lock:
            return [p for _, p in self.items]

    def wait_for(self, n: int, timeout_s: float = 5) -> list[bytes]:
        deadline = time.monotonic() + timeout_s
        while len(self.packets()) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.packets()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """True if the server closed the connection (EOF or reset) within ``within_s``."""
    sock.settimeout(within_s)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def connect(port: int, source: str = HOST) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect((HOST, port))
    return sock


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def serve(recorder: Recorder, **limits: float) -> Iterator[TcpSource]:
    source = TcpSource(HOST, 0, recorder, TcpLimits(**limits))  # type: ignore[arg-type]
    source.start()
    try:
        yield source
    finally:
        source.stop()


@pytest.fixture
def source(recorder: Recorder) -> Iterator[TcpSource]:
    yield from serve(recorder)


def test_packets_cut_from_the_stream_in_order(source: TcpSource, recorder: Recorder) -> None:
    with connect(source.port) as sock:
        sock.sendall(PACKET + PACKET.replace(b"QN=1", b"QN=2")[:9])
        time.sleep(0.05)
        sock.sendall(PACKET.replace(b"QN=1", b"QN=2")[9:] + b"garbage-before##")
        got = recorder.wait_for(2)
        peer = f"{HOST}:{sock.getsockname()[1]}"
    assert got[:2] == [PACKET, PACKET.replace(b"QN=1", b"QN=2")]
    # what was left unfinished when the device hung up goes on as one (bad) packet
    assert recorder.wait_for(3)[2] == b"garbage-before##"
    assert {p for p, _ in recorder.items} == {peer}


def test_answers_from_another_thread_reach_the_device(source: TcpSource, recorder: Recorder) -> None:
    with connect(source.port) as sock:
        sock.sendall(PACKET)
        recorder.wait_for(1)
        answer = recorder.answers[PACKET]
        assert callable(answer)
        threads = [threading.Thread(target=answer, args=(b"ANSWER-%d\r\n" % i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sock.settimeout(5)
        data = b""
        while data.count(b"\r\n") < 20:
            data += sock.recv(4096)
    assert sorted(data.split(b"\r\n")[:-1]) == sorted(b"ANSWER-%d" % i for i in range(20))


def test_idle_and_slow_connections_are_closed_after_the_idle_time(recorder: Recorder) -> None:
    for source in serve(recorder, idle_timeout_s=0.5):
        before = metric("cems_gateway_tcp_closed_total", cause="idle")
        idle, slow, busy = connect(source.port), connect(source.port), connect(source.port)
        started = time.monotonic()
        closed_at: dict[str, float] = {}
        while time.monotonic() - started < 1.5:
            if "slow" not in closed_at:
                slow.send(b"#")  # a byte at a time, never a packet: idle all the same
            busy.sendall(PACKET)  # a packet every 0.1 s: not idle
            for name, sock in (("idle", idle), ("slow", slow)):
                if name not in closed_at and closed_by_server(sock, 0.1):
                    closed_at[name] = time.monotonic() - started
        assert set(closed_at) == {"idle", "slow"}
        assert all(0.45 <= t <= 0.5 + 0.0625 + 0.25 for t in closed_at.values()), closed_at
        assert not closed_by_server(busy, 0.05)
        assert metric("cems_gateway_tcp_closed_total", cause="idle") - before == 2
        assert source.open_connections == 1
        for sock in (idle, slow, busy):
            sock.close()
    # the slow sender's unfinished bytes were kept as one bad packet
    assert any(set(p) == {ord("#")} for p in recorder.packets())


def test_caps_in_all_and_per_address(recorder: Recorder) -> None:
    for source in serve(recorder, max_connections=5, max_per_address=3):
        per_address = metric("cems_gateway_tcp_refused_total", cause="per_address_cap")
        total = metric("cems_gateway_tcp_refused_total", cause="total_cap")
        local = [connect(source.port) for _ in range(3)]
        extra = connect(source.port)
        assert closed_by_server(extra, 2), "a 4th connection from one address is closed at once"
        other = [connect(source.port, "127.0.0.2") for _ in range(2)]
        beyond = connect(source.port, "127.0.0.3")
        assert closed_by_server(beyond, 2), "a 6th connection in all is closed at once"
        for sock in local + other:
            assert not closed_by_server(sock, 0.05)
        assert metric("cems_gateway_tcp_refused_total", cause="per_address_cap") - per_address == 1
        assert metric("cems_gateway_tcp_refused_total", cause="total_cap") - total == 1
        assert metric("cems_gateway_tcp_connections") == 5
        # one closes: room again for its address
        local.pop().close()
        deadline = time.monotonic() + 2
        while source.open_connections > 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        again = connect(source.port)
        again.sendall(PACKET)
        assert recorder.wait_for(1) == [PACKET]
        for sock in [*local, *other, extra, beyond, again]:
            sock.close()
    assert metric("cems_gateway_tcp_connections") == 0


def test_a_flood_without_cr_lf_becomes_bounded_bad_packets(recorder: Recorder) -> None:
    for source in serve(recorder, max_buffer_bytes=1000):
        with connect(source.port) as sock:
            for _ in range(5):
                sock.sendall(b"x" * 999)
                time.sleep(0.05)
            recorder.wait_for(1)
            sock.sendall(PACKET)
            deadline = time.monotonic() + 5
            while PACKET not in recorder.packets() and time.monotonic() < deadline:
                time.sleep(0.01)
            got = recorder.packets()
        # 5 x 999 bytes without CR LF: two bad packets of just over the bound, the rest on its own,
        # and the packet that followed intact
        assert got == [b"x" * 1998, b"x" * 1998, b"x" * 999, PACKET]


def test_a_failing_handler_does_not_stop_the_listener(source: TcpSource, recorder: Recorder) -> None:
    bad = PACKET.replace(b"QN=1", b"QN=9")
    recorder.fail_on = bad
    before = metric("cems_gateway_tcp_errors_total", stage="handler")
    with connect(source.port) as sock:
        sock.sendall(bad + PACKET)
        assert recorder.wait_for(1) == [PACKET]
    with connect(source.port) as sock:
        sock.sendall(PACKET)
        assert recorder.wait_for(2) == [PACKET, PACKET]
    assert metric("cems_gateway_tcp_errors_total", stage="handler") - before == 1
    assert source.alive


def test_stop_closes_connections_and_the_thread(recorder: Recorder) -> None:
    source = TcpSource(HOST, 0, recorder, TcpLimits())
    source.start()
    socks = [connect(source.port) for _ in range(10)]
    source.stop()
    assert not source.alive
    assert all(closed_by_server(s, 2) for s in socks)
    for s in socks:
        s.close()
    with pytest.raises(OSError):
        connect(source.port)


@pytest.mark.parametrize(
    ("admitted_before", "address", "expected"),
    [
        ([], "10.0.0.1", None),
        (["10.0.0.1"] * 2, "10.0.0.1", Refusal.PER_ADDRESS),
        (["10.0.0.1"] * 2, "10.0.0.2", None),
        (["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"], "10.0.0.5", Refusal.TOTAL),
        (["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"], "10.0.0.1", Refusal.TOTAL),
    ],
)
def test_connection_book(admitted_before: list[str], address: str, expected: Refusal | None) -> None:
    book = ConnectionBook(TcpLimits(max_connections=4, max_per_address=2))
    for a in admitted_before:
        assert book.admit(a) is None
    assert book.admit(address) is expected
    total = len(admitted_before) + (expected is None)
    assert book.total == total
    for a in admitted_before:
        book.release(a)
    assert book.total == (expected is None)
    assert book.from_address("10.0.0.1") == (address == "10.0.0.1" and expected is None)


def test_idle_is_measured_from_the_last_packet() -> None:
    assert not is_idle(100.0, 699.9, 600)
    assert is_idle(100.0, 700.0, 600)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TcpLimits(idle_timeout_s=0)
    with pytest.raises(ValueError):
        TcpLimits(max_per_address=0)


@pytest.mark.parametrize(
    ("stream", "packets", "rest"),
    [
        (PACKET + PACKET, [PACKET, PACKET], b""),
        (PACKET[:-2] + PACKET, [PACKET[:-2], PACKET], b""),  # a packet lost its CR LF: the next one survives
        (b"junk" + PACKET + b"##00", [b"junk", PACKET], b"##00"),
        (b"#" + PACKET, [b"#", PACKET], b""),
        (b"\r\n", [b"\r\n"], b""),
    ],
)
def test_split_stream_resynchronises_on_the_next_packet(stream: bytes, packets: list[bytes], rest: bytes) -> None:
    assert split_stream(stream) == (packets, rest)
