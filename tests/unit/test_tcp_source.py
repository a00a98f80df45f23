"""The HJ 212 TCP listener on real loopback sockets, with a recording handler in place of the
gateway core (it says a packet authenticated when it holds ``PW=ok``): packets cut from the
stream, answers from other threads, blank lines ignored, idle and never authenticated
connections closed, too many refused packets closing a connection, caps per source network
and in all (with eviction of the oldest stranger), bounded buffers, and a handler that fails
without taking the listener down. The pure decisions are tested in ``test_tcp_limits.py``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from contracts.hj212 import split_stream
from ingest.tcp_source import TcpLimits, TcpSource
from tests.sockets import closed_by_peer

HOST = "127.0.0.1"
#: packets that authenticate their connection, and one that does not (wrong PW, say)
PACKET = b"##0010QN=1;PW=ok;CN=2011ABCD\r\n"
REFUSED = b"##0010QN=1;PW=no;CN=2011ABCD\r\n"


def numbered(i: int, packet: bytes = PACKET) -> bytes:
    return packet.replace(b"QN=1", b"QN=%d" % i)


class Recorder:
    """The gateway core's stand-in: records packets, returns True for those with ``PW=ok``."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []
        self.answers: dict[bytes, object] = {}
        self.fail_on: bytes | None = None
        #: what it returns for a packet that did not authenticate (the gateway core before it
        #: returned a verdict returned None)
        self.refused_as: bool | None = False
        self.lock = threading.Lock()

    def __call__(self, peer: str, packet: bytes, answer: object) -> bool | None:
        if packet == self.fail_on:
            raise RuntimeError("handler failed")
        with self.lock:
            self.items.append((peer, packet))
            self.answers[packet] = answer
        return True if b"PW=ok" in packet else self.refused_as

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


def closed(cause: str) -> float:
    return metric("cems_gateway_tcp_closed_total", cause=cause)


def connect(port: int, source: str = HOST) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect((HOST, port))
    return sock


def settles(source: TcpSource, *, open_: int | None = None, strangers: int | None = None) -> bool:
    """Wait (up to 5 s) until the listener holds ``open_`` connections, ``strangers`` of them
    not authenticated."""

    def now() -> tuple[int | None, int | None]:
        return (
            None if open_ is None else source.open_connections,
            None if strangers is None else source.unauthenticated_connections,
        )

    deadline = time.monotonic() + 5
    while now() != (open_, strangers) and time.monotonic() < deadline:
        time.sleep(0.01)
    return now() == (open_, strangers)


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
        sock.sendall(PACKET + numbered(2)[:9])
        time.sleep(0.05)
        sock.sendall(numbered(2)[9:] + b"garbage-before##")
        got = recorder.wait_for(2)
        peer = f"{HOST}:{sock.getsockname()[1]}"
    assert got[:2] == [PACKET, numbered(2)]
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


def test_blank_lines_are_no_packets(source: TcpSource, recorder: Recorder) -> None:
    before = metric("cems_gateway_tcp_blank_lines_total")
    with connect(source.port) as sock:
        # 50 bare CR LF, white space, a packet, one more CR LF, and a lone LF left when it hangs up
        sock.sendall(b"\r\n" * 50 + b" \t\r\n" + PACKET + b"\r\n" + b"\n")
        assert recorder.wait_for(1) == [PACKET]
        assert not closed_by_peer(sock, 0.2), "53 blank lines are within the refusal budget"
    assert settles(source, open_=0)
    assert recorder.packets() == [PACKET]
    assert metric("cems_gateway_tcp_blank_lines_total") - before == 53


def test_a_flood_of_blank_lines_closes_the_connection_and_makes_no_packet(
    source: TcpSource, recorder: Recorder
) -> None:
    blank, refusals = metric("cems_gateway_tcp_blank_lines_total"), closed("refusals")
    with connect(source.port) as sock:
        try:
            for _ in range(50):
                sock.sendall(b"\r\n" * 2000)
        except (ConnectionResetError, BrokenPipeError):
            pass  # closed while we were still sending
        assert closed_by_peer(sock, 2)
    assert closed("refusals") - refusals == 1
    # the budget is 100 in a burst: the 101st closes it; the rest of that read is dropped unread
    assert 101 <= metric("cems_gateway_tcp_blank_lines_total") - blank <= 100_000
    with connect(source.port) as sock:
        sock.sendall(PACKET)
        assert recorder.wait_for(1) == [PACKET]  # nothing from the flood, and the listener serves on


def test_refused_packets_beyond_the_budget_close_the_connection(recorder: Recorder) -> None:
    for source in serve(recorder, max_refusals=10, refusal_window_s=60):
        refusals = closed("refusals")
        with connect(source.port) as sock:
            sock.sendall(b"".join(numbered(i, REFUSED) for i in range(10)))
            assert len(recorder.wait_for(10)) == 10
            sock.sendall(PACKET)  # an authenticated packet spends nothing
            assert len(recorder.wait_for(11)) == 11
            assert not closed_by_peer(sock, 0.2), "10 refusals are within the budget"
            sock.sendall(numbered(10, REFUSED) + numbered(11) + numbered(12, REFUSED))
            assert closed_by_peer(sock, 2)
        assert closed("refusals") - refusals == 1
        # the 11th refused packet was handled and closed the connection; what came after it was not
        assert recorder.packets()[-2:] == [PACKET, numbered(10, REFUSED)]
        assert source.alive


def test_the_idle_time_counts_only_authenticated_packets(recorder: Recorder) -> None:
    for source in serve(recorder, idle_timeout_s=0.5, auth_timeout_s=5):
        idle_before = closed("idle")
        quiet, chatty, slow, busy = (connect(source.port) for _ in range(4))
        quiet.sendall(PACKET)
        chatty.sendall(numbered(2))
        started = time.monotonic()
        closed_at: dict[str, float] = {}
        while time.monotonic() - started < 1.5:
            if "chatty" not in closed_at:
                chatty.sendall(numbered(3, REFUSED))  # refused packets keep nothing open
            if "slow" not in closed_at:
                slow.send(b"#")  # a byte at a time, never a packet
            busy.sendall(numbered(4))  # an authenticated packet every 0.1 s: never idle
            for name, sock in (("quiet", quiet), ("chatty", chatty), ("slow", slow)):
                if name not in closed_at and closed_by_peer(sock, 0.1 / 3):
                    closed_at[name] = time.monotonic() - started
        assert set(closed_at) == {"quiet", "chatty", "slow"}
        assert all(0.45 <= t <= 0.5 + 0.0625 + 0.3 for t in closed_at.values()), closed_at
        assert not closed_by_peer(busy, 0.05)
        assert closed("idle") - idle_before == 3
        assert source.open_connections == 1
        for sock in (quiet, chatty, slow, busy):
            sock.close()
    # the slow sender's unfinished bytes were kept as one bad packet
    assert any(set(p) == {ord("#")} for p in recorder.packets())


@pytest.mark.parametrize("refused_as", [False, None])
def test_a_connection_that_never_authenticates_is_closed_after_the_auth_timeout(
    recorder: Recorder, refused_as: bool | None
) -> None:
    recorder.refused_as = refused_as
    for source in serve(recorder, idle_timeout_s=30, auth_timeout_s=0.4):
        before = closed("auth_timeout")
        silent, stranger, device = connect(source.port), connect(source.port), connect(source.port)
        device.sendall(REFUSED)
        started = time.monotonic()
        closed_at: dict[str, float] = {}
        sent_good = False
        while time.monotonic() - started < 1.2:
            if "stranger" not in closed_at:
                stranger.sendall(REFUSED)
            if not sent_good and time.monotonic() - started > 0.1:
                device.sendall(PACKET)  # authenticates before the timeout: stays
                sent_good = True
            for name, sock in (("silent", silent), ("stranger", stranger)):
                if name not in closed_at and closed_by_peer(sock, 0.05):
                    closed_at[name] = time.monotonic() - started
        assert set(closed_at) == {"silent", "stranger"}
        assert all(0.35 <= t <= 0.4 + 0.05 + 0.3 for t in closed_at.values()), closed_at
        assert not closed_by_peer(device, 0.05)
        assert closed("auth_timeout") - before == 2
        assert source.open_connections == 1 and source.unauthenticated_connections == 0
        for sock in (silent, stranger, device):
            sock.close()


def test_caps_per_source_network(recorder: Recorder) -> None:
    for source in serve(recorder, max_per_address=3):
        refused = metric("cems_gateway_tcp_refused_total", cause="per_address_cap")
        # 127.0.0.1 and 127.0.0.2 are one /24: three in all
        local = [connect(source.port), connect(source.port, "127.0.0.2"), connect(source.port, "127.0.0.3")]
        extra = connect(source.port, "127.0.0.4")
        assert closed_by_peer(extra, 2), "a 4th connection from one /24 is closed at once"
        other = [connect(source.port, "127.0.1.1") for _ in range(3)]  # another /24
        for sock in local + other:
            assert not closed_by_peer(sock, 0.05)
        assert metric("cems_gateway_tcp_refused_total", cause="per_address_cap") - refused == 1
        assert source.open_connections == 6
        # one closes: room again for its network
        local.pop().close()
        assert settles(source, open_=5)
        again = connect(source.port, "127.0.0.9")
        again.sendall(PACKET)
        assert recorder.wait_for(1) == [PACKET]
        for sock in [*local, *other, extra, again]:
            sock.close()
    assert metric("cems_gateway_tcp_connections") == 0


def test_at_the_total_cap_the_oldest_stranger_makes_room(recorder: Recorder) -> None:
    for source in serve(recorder, max_connections=4, max_per_address=10):
        evicted, total = closed("evicted"), metric("cems_gateway_tcp_refused_total", cause="total_cap")
        a1 = connect(source.port)
        a1.sendall(numbered(1))
        assert recorder.wait_for(1)
        s1 = connect(source.port)
        a2 = connect(source.port)
        a2.sendall(numbered(2))
        assert recorder.wait_for(2)
        s2 = connect(source.port)
        s2.sendall(REFUSED)  # a refused packet authenticates nothing
        assert recorder.wait_for(3)
        assert source.open_connections == 4 and source.unauthenticated_connections == 2
        # the cap is reached: a newcomer closes the oldest that never authenticated (s1)
        n1 = connect(source.port, "127.0.5.1")
        assert closed_by_peer(s1, 2)
        for sock in (a1, a2, s2, n1):
            assert not closed_by_peer(sock, 0.05)
        assert closed("evicted") - evicted == 1
        assert source.open_connections == 4 and metric("cems_gateway_tcp_connections") == 4
        # all four authenticate: the next newcomer is refused, none evicted
        s2.sendall(numbered(3))
        n1.sendall(numbered(4))
        assert settles(source, strangers=0)
        n2 = connect(source.port, "127.0.6.1")
        assert closed_by_peer(n2, 2)
        for sock in (a1, a2, s2, n1):
            assert not closed_by_peer(sock, 0.05)
        assert metric("cems_gateway_tcp_refused_total", cause="total_cap") - total == 1
        assert closed("evicted") - evicted == 1
        for sock in (a1, s1, a2, s2, n1, n2):
            sock.close()
        assert settles(source, open_=0)
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
    bad = numbered(9)
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
    assert all(closed_by_peer(s, 2) for s in socks)
    for s in socks:
        s.close()
    with pytest.raises(OSError):
        connect(source.port)


@pytest.mark.parametrize(
    ("stream", "packets", "rest"),
    [
        (PACKET + PACKET, [PACKET, PACKET], b""),
        (PACKET[:-2] + PACKET, [PACKET[:-2], PACKET], b""),  # a packet lost its CR LF: the next one survives
        (b"junk" + PACKET + b"##00", [b"junk", PACKET], b"##00"),
        (b"#" + PACKET, [b"#", PACKET], b""),
        (b"\r\n", [b"\r\n"], b""),  # a chunk of its own, which the listener ignores (blank)
    ],
)
def test_split_stream_resynchronises_on_the_next_packet(stream: bytes, packets: list[bytes], rest: bytes) -> None:
    assert split_stream(stream) == (packets, rest)
