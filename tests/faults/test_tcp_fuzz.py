"""Mutated HJ 212 frames over TCP, interleaved with good ones, into a real `cems gateway` and the
real Kafka: the gateway stays up, every good frame is answered and stored once, and every
other chunk of the stream is a dead letter (none an ``internal_error``).

The byte streams are cut into packets by the same rules the listener applies
(``contracts.hj212.split_stream``, blank lines ignored: ``ingest.tcp_limits.is_blank``), so
the dead letters each connection must produce are known exactly; writes of random sizes
exercise the reassembly across reads. A last connection sends floods without CR LF (cut by
the listener's buffer bound or where a read brings the next CR LF, so counted as one dead
letter or more each) with a good frame after each.

Each connection sends far more refused packets than a device would: the refusal budget per
connection (``CEMS_GATEWAY_TCP_MAX_REFUSALS``) is raised so that none is closed for it (the
budget itself is tested in ``test_tcp_limits.py``).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings
from contracts.hj212 import crc16, split_stream
from ingest.tcp_limits import is_blank
from tests.integration.helpers import consume_all

from .ingest_rig import start_gateway
from .tcp_rig import HJ212_DEVICES, base_time, connect, metrics, packet, qn_of, read_answers, rss_mb

pytestmark = pytest.mark.integration

CONNECTIONS = 4
MUTATED_PER_CONNECTION = 1250  # 5,000 in all
GOOD_EVERY = 5  # a good frame after every 5 mutated ones: 1,000 in all
FLOODS = 3
FLOOD_BYTES = 30_000


def frame(segment: bytes, length: int | None = None) -> bytes:
    """Frame a data segment as HJ 212 does (length and CRC computed unless given)."""
    return b"##%04d" % (len(segment) if length is None else length) + segment + b"%04X\r\n" % crc16(segment)


def segment_of(good: bytes) -> bytes:
    return good[6:-6]


def _semantic(rng: random.Random, good: bytes) -> bytes:
    """Framing and CRC right, content wrong: the validator's refusals, one at a time."""
    seg = segment_of(good)
    choice = rng.randrange(9)
    if choice == 0:
        seg = seg.replace(b"CN=2011", b"CN=9999")
    elif choice == 1:
        seg = seg.replace(b"PW=123456", b"PW=654321")
    elif choice == 2:
        seg = seg.replace(b"MN=", b"MN=X", 1)
    elif choice == 3:
        seg = seg.replace(b"DataTime=", b"DataTime=2026", 1)
    elif choice == 4:
        seg = seg.replace(b"a21026-Rtd=", b"a21026-Rtd=abc", 1)
    elif choice == 5:
        seg = seg.replace(b"a21026-Rtd=", b"a21026-Rtd=1e999", 1)
    elif choice == 6:
        seg = seg.replace(b"a21026-", b"z99999-")
    elif choice == 7:
        seg = seg.replace(b"a21026-Rtd=", b"a21026-Rtd=-5", 1)
    else:
        seg = seg[: len(seg) // 2] + bytes([rng.randrange(0x80, 0x100)]) + seg[len(seg) // 2 :]
    return frame(seg)


def mutate(rng: random.Random, good: bytes, earlier_good: list[bytes]) -> bytes:
    """One mutation of a good frame (never the frame itself)."""
    kind = rng.randrange(12)
    n = len(good)
    if kind == 0:  # one bit flipped
        i = rng.randrange(n)
        out = good[:i] + bytes([good[i] ^ (1 << rng.randrange(8))]) + good[i + 1 :]
    elif kind == 1:  # cut short
        out = good[: rng.randrange(1, n - 1)]
    elif kind == 2:  # a byte gone
        i = rng.randrange(n)
        out = good[:i] + good[i + 1 :]
    elif kind == 3:  # a byte more
        i = rng.randrange(n)
        out = good[:i] + bytes([rng.randrange(256)]) + good[i:]
    elif kind == 4:  # no CR LF, or half of it
        out = good[:-2] + rng.choice([b"", b"\r", b"\n", b"\n\r"])
    elif kind == 5:  # a CR LF inside
        i = rng.randrange(1, n - 2)
        out = good[:i] + b"\r\n" + good[i:]
    elif kind == 6:  # noise, with or without a line end
        out = rng.randbytes(rng.randrange(1, 400)) + rng.choice([b"", b"\r\n"])
    elif kind == 7:  # a wrong length field
        out = frame(segment_of(good), length=rng.choice([0, 9999, len(segment_of(good)) + 1]))
    elif kind == 8:  # a wrong CRC
        out = good[:-6] + b"%04X\r\n" % (crc16(segment_of(good)) ^ (1 + rng.randrange(0xFFFF)))
    elif kind == 9 and earlier_good:  # a good frame sent again
        out = rng.choice(earlier_good)
    else:
        out = _semantic(rng, good)
    return out if out != good else good[:-3] + b"\r\n"


@dataclass
class Stream:
    mn: str
    data: bytes = b""
    good: list[bytes] = field(default_factory=list)

    def expected_chunks(self) -> list[bytes]:
        """What the listener hands on: every chunk but the blank ones (ignored, no dead letter)."""
        chunks, rest = split_stream(self.data)
        return [c for c in [*chunks, rest] if not is_blank(c)]


def build_stream(rng: random.Random, mn: str, t0: datetime) -> Stream:
    stream = Stream(mn)
    parts: list[bytes] = []
    for k in range(MUTATED_PER_CONNECTION // GOOD_EVERY):
        good = packet(mn, "123456", t0 + timedelta(seconds=k), float(k))
        for _ in range(GOOD_EVERY):
            parts.append(mutate(rng, good, stream.good))
        parts.append(good)
        stream.good.append(good)
    stream.data = b"".join(parts)
    return stream


def send_in_pieces(rng: random.Random, sock: object, data: bytes) -> None:
    i = 0
    while i < len(data):
        n = rng.randrange(1, 4096)
        sock.sendall(data[i : i + n])  # type: ignore[attr-defined]
        i += n


def test_mutated_frames_over_tcp_never_stop_ingest(infra: InfraSettings, secrets: SecretStore, tmp_path: Path) -> None:
    rng = random.Random(212)
    t0 = base_time()
    devices = HJ212_DEVICES[:CONNECTIONS]
    streams = [build_stream(rng, d.mn, t0) for d in devices]  # a device each: event times may repeat
    flood_mn = HJ212_DEVICES[CONNECTIONS].mn
    flood_good = [packet(flood_mn, "123456", t0 + timedelta(seconds=i), 1.0 + i) for i in range(FLOODS)]
    flood = b"".join(bytes(rng.choice(b"0123456789ABCDEF;=&") for _ in range(FLOOD_BYTES)) + g for g in flood_good)

    gw = start_gateway(infra, tmp_path, {"CEMS_GATEWAY_TCP_MAX_REFUSALS": "1000000"}, name="fuzz")
    try:
        rss_before = rss_mb(gw)
        socks = [connect(gw.tcp_port) for _ in streams]
        flood_sock = connect(gw.tcp_port)
        origins = {f"tcp:127.0.0.1:{s.getsockname()[1]}": st for s, st in zip(socks, streams, strict=True)}
        flood_origin = f"tcp:127.0.0.1:{flood_sock.getsockname()[1]}"
        started = time.monotonic()
        senders = [
            threading.Thread(target=send_in_pieces, args=(random.Random(i), s, st.data))
            for i, (s, st) in enumerate(zip(socks, streams, strict=True))
        ]
        senders.append(threading.Thread(target=send_in_pieces, args=(random.Random(99), flood_sock, flood)))
        for t in senders:
            t.start()
        answered = [read_answers(s, {qn_of(g) for g in st.good}, 60) for s, st in zip(socks, streams, strict=True)]
        answered_flood = read_answers(flood_sock, {qn_of(g) for g in flood_good}, 30)
        for t in senders:
            t.join(30)
        for s in [*socks, flood_sock]:
            s.close()
        elapsed = time.monotonic() - started
        assert gw.process.proc is not None and gw.process.proc.poll() is None, gw.tail()
        for got, st in zip(answered, streams, strict=True):
            assert {qn_of(g) for g in st.good} <= got, f"{st.mn}: {len(st.good) - len(got)} good frames unanswered"
        assert answered_flood == {qn_of(g) for g in flood_good}

        n_good = sum(len(st.good) for st in streams) + FLOODS
        expected_letters = sum(len(st.expected_chunks()) - len(st.good) for st in streams)
        # (the gateway also serves the shared broker, where other tests publish: only TCP's is ours)
        readings = consume_all(infra.kafka_bootstrap, gw.topics.readings.name, expect=n_good, settle_s=1)
        readings = [r for r in readings if r["source"] == "tcp-hj212"]
        letters = consume_all(
            infra.kafka_bootstrap, gw.topics.dead_letters.name, expect=expected_letters + FLOODS, timeout_s=90
        )
        letters = [d for d in letters if d["origin"].startswith("tcp:")]
        rss_after = rss_mb(gw)
        m = metrics(gw)
    finally:
        gw.stop()
        gw.end_session(secrets)

    reasons = Counter(d["reason"] for d in letters)
    print(
        f"{sum(len(st.data) for st in streams) + len(flood):,} bytes on {CONNECTIONS + 1} connections: "
        f"{CONNECTIONS * MUTATED_PER_CONNECTION:,} mutated frames, {n_good:,} good; "
        f"{len(readings):,} readings, {len(letters):,} dead letters in {elapsed:.1f}s; "
        f"RSS {rss_before:.0f} -> {rss_after:.0f} MB; reasons {dict(reasons)}"
    )
    # every good frame stored, once; nothing else
    stored = Counter((r["mn"], r["values"]["so2"]["value"]) for r in readings)
    wanted = {(st.mn, float(k)) for st in streams for k in range(len(st.good))}
    wanted |= {(flood_mn, 1.0 + i) for i in range(FLOODS)}
    assert set(stored) == wanted
    assert max(stored.values()) == 1
    # every other chunk of each stream a dead letter, with a reason the validator gives
    by_origin = Counter(d["origin"] for d in letters)
    for origin, st in origins.items():
        assert by_origin[origin] == len(st.expected_chunks()) - len(st.good), origin
    # a flood is cut at the buffer bound, or where a read brings the CR LF: one dead letter or more
    assert FLOODS <= by_origin[flood_origin] <= FLOODS * (FLOOD_BYTES // 10_063 + 1)
    assert "internal_error" not in reasons
    assert reasons["hj212_crc"] > 0 and reasons["duplicate"] > 0 and reasons["hj212_password"] > 0
    assert not any(k.startswith("cems_gateway_tcp_errors_total{") and v for k, v in m.items())
    assert rss_after < rss_before + 150  # a leak of a few KB a frame would show
