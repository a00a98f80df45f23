"""Backfill as timelines: a hole in a stream is asked for once, after a delay, unless late
readings fill it meanwhile; the device's answers count as backfilled; the request is the
same in both wire forms; a simulated device answers with exactly the bytes it first sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from contracts.commands import CommandError, HistoryRequest, decode_history, encode_history
from contracts.hj212 import parse_packet
from contracts.reading import DataKind
from contracts.registry import load_registry
from ingest.backfill import BackfillPlanner
from simulators.fleet import Fleet, step_offset
from simulators.scenarios import load_scenario
from streams.engine import load_engine

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
RT = DataKind.REALTIME


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def planner() -> BackfillPlanner:
    return BackfillPlanner(tolerance=1.5, delay_s=5, answer_window_s=60)


def test_a_steady_stream_asks_for_nothing() -> None:
    p = planner()
    for i in range(10):
        p.observe("MN1", RT, at(10 * i), 10, "json", now=at(10 * i))
    assert p.due(at(200)) == [] and len(p) == 0


def test_a_hole_is_asked_for_after_the_delay_and_answers_count_as_backfilled() -> None:
    p = planner()
    p.observe("MN1", RT, at(0), 10, "hj212", now=at(0))
    p.observe("MN1", RT, at(60), 10, "hj212", now=at(60))  # 10..50 missing
    assert p.due(at(64)) == []  # push at 60, nothing before 65
    assert not p.is_backfill("MN1", RT, at(30))  # not asked yet
    [due] = p.due(at(65))
    assert due.protocol == "hj212"
    assert (due.request.mn, due.request.kind) == ("MN1", RT)
    assert (due.request.begin, due.request.end) == (at(1), at(59))
    assert p.due(at(66)) == []  # asked once
    assert p.is_backfill("MN1", RT, at(30)) and p.is_backfill("MN1", RT, at(10))
    assert not p.is_backfill("MN1", RT, at(60)) and not p.is_backfill("MN2", RT, at(30))
    p.due(at(65 + 61))  # the answer window passed
    assert not p.is_backfill("MN1", RT, at(30)) and len(p) == 0


def test_late_readings_that_fill_the_hole_cancel_the_request() -> None:
    p = planner()
    p.observe("MN1", RT, at(0), 10, "json", now=at(0))
    p.observe("MN1", RT, at(40), 10, "json", now=at(40))
    for s in (10, 20, 30):  # a broker's queue redelivered after the newer reading
        p.observe("MN1", RT, at(s), 10, "json", now=at(41))
    assert p.due(at(50)) == [] and len(p) == 0


def test_a_partly_filled_hole_is_still_asked_for() -> None:
    p = planner()
    p.observe("MN1", RT, at(0), 10, "json", now=at(0))
    p.observe("MN1", RT, at(40), 10, "json", now=at(40))
    p.observe("MN1", RT, at(10), 10, "json", now=at(41))
    [due] = p.due(at(50))
    assert (due.request.begin, due.request.end) == (at(1), at(39))


def test_a_gap_within_tolerance_is_no_hole_and_old_periods_are_capped() -> None:
    p = BackfillPlanner(tolerance=1.5, delay_s=0, max_span_s=100)
    p.observe("MN1", RT, at(0), 10, "json", now=at(0))
    p.observe("MN1", RT, at(15), 10, "json", now=at(15))  # 15 s <= 1.5 x 10 s
    assert p.due(at(20)) == []
    p.observe("MN1", RT, at(1000), 10, "json", now=at(1000))
    [due] = p.due(at(1000))
    assert due.request.begin == at(900)  # no further back than max_span_s


def test_open_holes_are_bounded() -> None:
    p = BackfillPlanner(delay_s=0, max_holes=2)
    for n in range(4):
        p.observe(f"MN{n}", RT, at(0), 10, "json", now=at(0))
        p.observe(f"MN{n}", RT, at(100), 10, "json", now=at(100))
    assert len(p) == 2 and p.dropped_holes == 2


def test_a_device_jumping_about_in_time_cannot_crowd_out_the_others() -> None:
    p = BackfillPlanner(delay_s=0, max_holes=10, max_holes_per_stream=3)
    for k in range(50):  # a hole with every reading
        p.observe("BAD", RT, at(100 * k), 10, "json", now=at(100 * k))
    p.observe("GOOD", RT, at(0), 10, "json", now=at(0))
    p.observe("GOOD", RT, at(100), 10, "json", now=at(100))
    assert len(p) == 4 and p.dropped_holes == 46
    assert {d.request.mn for d in p.due(at(5000))} == {"BAD", "GOOD"}


@pytest.mark.parametrize("protocol", ["json", "hj212"])
def test_history_request_round_trips_in_both_forms(protocol: str) -> None:
    req = HistoryRequest("41900100030101JYC", DataKind.MINUTE, at(60), at(3600), "20261129160000000")
    payload = encode_history(req, protocol, pw="123456")
    back = decode_history(payload)
    assert back == req
    if protocol == "hj212":
        packet = parse_packet(payload)
        assert (packet.cn, packet.st, packet.pw) == ("2051", "91", "123456")
        assert packet.cp_items() == {"BeginTime": "20261129160100", "EndTime": "20261129170000"}


@pytest.mark.parametrize("payload", [b"", b"{}", b'{"command": "reboot"}', b"##0000garbage\r\n", b"[1]"])
def test_anything_else_is_not_a_history_request(payload: bytes) -> None:
    with pytest.raises(CommandError):
        decode_history(payload)


@pytest.mark.parametrize(
    ("begin", "end"),
    [
        ("2026-11-29T16:01:00", "2026-11-29T17:00:00+08:00"),
        ("2026-11-29T16:01:00+08:00", "2026-11-29T17:00:00"),
        ("2026-11-29T16:01:00", "2026-11-29T17:00:00"),
    ],
)
def test_a_json_history_request_without_a_time_zone_is_refused(begin: str, end: str) -> None:
    doc = {"command": "history", "request_id": "r1", "mn": "41900100030101JYC", "kind": "minute"}
    with pytest.raises(CommandError, match="has no time zone"):
        decode_history(json.dumps({**doc, "begin": begin, "end": end}).encode())
    # the same times with their zone are a request
    zoned = {**doc, "begin": "2026-11-29T16:01:00+08:00", "end": "2026-11-29T17:00:00Z"}
    assert decode_history(json.dumps(zoned).encode()).begin.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    ("stack", "step_s", "first"),
    [
        ("jy-power-1-s1", 1, 0),
        ("jy-power-1-s1", 60, 0),
        ("jy-cement-2-s1", 60, 80),  # silent from minute 100 in the faults scenario
        ("jy-coat-2-s1", 60, 0),  # sends some readings twice
    ],
)
def test_a_simulated_device_answers_with_the_bytes_it_sent(stack: str, step_s: int, first: int) -> None:
    registry = load_registry()
    engine = load_engine(registry)
    scenario = load_scenario("faults")
    fleet = Fleet(registry, engine.profiles, scenario, T0, seed=3)
    step = timedelta(seconds=step_s)
    sent = []
    for index in range(first, first + 40):
        t = T0 + index * step + step_offset(step)
        minute = int((t - T0).total_seconds() // 60)
        sent += [m for m in fleet.messages(minute, t) if m.stack == stack and not m.facility and m.expect == "reading"]
    begin, end = T0 + (first + 5) * step, T0 + (first + 31) * step
    again = Fleet(registry, engine.profiles, scenario, T0, seed=3).history(stack, begin, end, step)
    expected = [m.payload for m in sent if begin <= m.event_time <= end]
    assert [m.payload for m in again] == expected and expected
    assert len({m.event_time for m in again}) == len(again)  # a reading once, even if it was sent twice
    if stack == "jy-cement-2-s1":
        assert len(expected) == 100 - (first + 5)  # nothing from the silent minutes
    assert Fleet(registry, engine.profiles, scenario, T0, seed=3).history("no-such-stack", begin, end, step) == []


def test_the_device_guide_example_is_a_history_request() -> None:
    from pathlib import Path

    guide = Path(__file__).parents[2] / "docs" / "device-guide.md"
    line = next(line.strip() for line in guide.read_text(encoding="utf-8").splitlines() if "CN=2051;PW=" in line)
    request = decode_history(line.encode() + b"\r\n")
    assert (request.kind, request.mn) == (DataKind.MINUTE, "41900100030101JYC")
    assert request.end - request.begin == timedelta(minutes=59)


def test_a_hole_that_began_before_a_restart_is_found_from_the_seed() -> None:
    from ingest.dedup import DedupMemory, epoch_us, stream_id

    memory = DedupMemory(window_s=3600, now_us=epoch_us(at(0)))
    for s in (0, 10, 20):
        memory.add(stream_id("MN1", "realtime"), epoch_us(at(s)), epoch_us(at(s)))
    p = planner()
    for mn, kind, last_us in memory.latest():
        p.seed(mn, DataKind(kind), datetime.fromtimestamp(last_us / 1e6, UTC))
    p.observe("MN1", RT, at(100), 10, "json", now=at(100))  # the first reading after the restart
    [due] = p.due(at(105))
    assert (due.request.begin, due.request.end) == (at(21), at(99))
