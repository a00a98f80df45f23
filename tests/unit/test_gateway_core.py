"""The gateway core without servers: a stand-in sink records what would go to Kafka and
confirms it when the test says so, so acknowledgement order is visible. Split packets,
unforeseen errors, repeats of readings still on their way, size limits, backfill marking."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from contracts.hj212 import encode_packet
from contracts.hj212_data import PacketValue, data_packet
from contracts.reading import DataKind, DeadLetter, Reading
from contracts.registry import load_registry
from ingest.backfill import BackfillPlanner
from ingest.dedup import DedupMemory, epoch_us
from ingest.gateway import Gateway
from ingest.split import MAX_PENDING_PER_DEVICE
from ingest.validation import ReadingValidator

REG = load_registry()
NOW = datetime.now(UTC).replace(microsecond=0)
KILN = REG.stack_index()["jy-cement-1-s1"][1]  # an HJ 212 device with a PW
KILN_TOPIC = "cems/v1/jy-cement-1/jy-cement-1-s1/hj212"
POWER = REG.stack_index()["jy-power-1-s1"][1]  # a JSON device
POWER_TOPIC = "cems/v1/jy-power-1/jy-power-1-s1/reading"
OTHER_TOPIC = "cems/v1/jy-power-1/jy-power-1-s1/hj212"  # another enterprise's prefix


@dataclass
class Sink:
    """Records records; ``confirm`` runs their delivery callbacks, as Kafka's report would."""

    readings: list[Reading] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    waiting: list[Callable[[Exception | None], None]] = field(default_factory=list)

    def send_reading(self, reading: Reading, on_done: Callable[[Exception | None], None]) -> None:
        self.readings.append(reading)
        self.waiting.append(on_done)

    def send_dead_letter(self, letter: DeadLetter, on_done: Callable[[Exception | None], None]) -> None:
        self.letters.append(letter)
        self.waiting.append(on_done)

    def confirm(self, error: Exception | None = None) -> None:
        waiting, self.waiting = self.waiting, []
        for done in waiting:
            done(error)

    def reasons(self) -> list[str]:
        return [letter.reason.value for letter in self.letters]


def gateway(sink: Sink, clock: Callable[[], datetime] = lambda: NOW) -> Gateway:
    memory = DedupMemory(window_s=26 * 3600, now_us=epoch_us(NOW))
    return Gateway(ReadingValidator(REG), sink, memory, clock, backfill=BackfillPlanner(delay_s=0))


def kiln_parts(t: datetime, pnum: int = 2, mn: str | None = None, pw: str = "123456") -> list[bytes]:
    whole = data_packet(
        mn=mn or KILN.devices[0].mn,
        kind=DataKind.REALTIME,
        event_time=t,
        values={"so2": PacketValue(30.0), "o2": PacketValue(10.0)},
        pw=pw,
    )
    groups = [whole.cp[:2], whole.cp[2:]] if pnum == 2 else [whole.cp]
    parts = [replace(whole, flag=6, pnum=pnum, pno=i + 1, cp=g) for i, g in enumerate(groups)]
    return [encode_packet(p) for p in parts]


def json_reading(t: datetime) -> bytes:
    doc = {"mn": POWER.devices[0].mn, "time": t.isoformat(), "values": {"so2": {"value": 20.0}}}
    return json.dumps(doc).encode()


class Acks:
    def __init__(self) -> None:
        self.done: list[str] = []

    def __call__(self, name: str) -> Callable[[], None]:
        return lambda: self.done.append(name)


def _no_answer(data: bytes) -> None:
    pass


def test_split_parts_assemble_and_every_part_is_acknowledged_after_kafka() -> None:
    sink, acks = Sink(), Acks()
    gw = gateway(sink)
    first, second = kiln_parts(NOW - timedelta(minutes=5))
    gw.handle_mqtt(KILN_TOPIC, first, acks("p1"), _no_answer)
    gw.handle_mqtt(KILN_TOPIC, second, acks("p2"), _no_answer)
    assert [r.values.keys() >= {"so2", "o2"} for r in sink.readings] == [True]
    assert acks.done == []  # nothing acknowledged before Kafka confirmed
    sink.confirm()
    assert sorted(acks.done) == ["p1", "p2"]


def test_a_part_from_another_enterprise_neither_joins_nor_completes_a_packet() -> None:
    sink, acks = Sink(), Acks()
    gw = gateway(sink)
    t = NOW - timedelta(minutes=5)
    first, second = kiln_parts(t)
    # jy-power-1's account publishes a part carrying jy-cement-1's MN under its own prefix
    gw.handle_mqtt(OTHER_TOPIC, second, acks("intruder"), _no_answer)
    assert sink.reasons() == ["mn_topic_mismatch"] and len(gw.splits) == 0
    # and with a wrong PW under the right topic (a TCP sender without the PW, say)
    wrong_pw = kiln_parts(t, pw="000000")[1]
    gw.handle_mqtt(KILN_TOPIC, wrong_pw, acks("wrong-pw"), _no_answer)
    assert sink.reasons()[-1] == "hj212_password" and len(gw.splits) == 0
    gw.handle_mqtt(KILN_TOPIC, first, acks("p1"), _no_answer)
    assert sink.readings == [] and len(gw.splits) == 1  # waiting for its own second part
    gw.handle_mqtt(KILN_TOPIC, second, acks("p2"), _no_answer)
    [reading] = sink.readings
    assert reading.values["so2"].value == 30.0


def test_split_packets_held_are_bounded_per_device_and_expire_on_the_clock() -> None:
    sink, acks = Sink(), Acks()
    now = [NOW]
    gw = gateway(sink, clock=lambda: now[0])
    for i in range(MAX_PENDING_PER_DEVICE + 2):  # first parts that never complete
        first = kiln_parts(NOW - timedelta(minutes=30, seconds=i))[0]
        gw.handle_mqtt(KILN_TOPIC, first, acks(f"p{i}"), _no_answer)
    assert len(gw.splits) == MAX_PENDING_PER_DEVICE
    assert sink.reasons() == ["hj212_field", "hj212_field"]  # the excess refused at once
    sink.confirm()
    assert sorted(acks.done) == [f"p{i}" for i in (8, 9)]
    now[0] = NOW + timedelta(minutes=3)
    gw.expire_splits()  # from the timer: no further part needed
    assert len(gw.splits) == 0 and len(sink.letters) == 2 + MAX_PENDING_PER_DEVICE
    expired = sink.letters[2:]
    assert {letter.origin for letter in expired} == {f"mqtt:{KILN_TOPIC}"}
    assert len({letter.payload_sha256 for letter in expired}) == MAX_PENDING_PER_DEVICE  # each its own part
    sink.confirm()
    assert len(acks.done) == MAX_PENDING_PER_DEVICE + 2


def test_an_unforeseen_error_after_assembly_releases_every_part() -> None:
    sink, acks = Sink(), Acks()
    gw = gateway(sink)
    first, second = kiln_parts(NOW - timedelta(minutes=5))
    gw.handle_mqtt(KILN_TOPIC, first, acks("p1"), _no_answer)

    def broken(*args: object, **kwargs: object) -> Reading:
        raise RuntimeError("a bug")

    gw.validator.from_packet = broken  # type: ignore[method-assign]
    gw.handle_mqtt(KILN_TOPIC, second, acks("p2"), _no_answer)
    assert sink.reasons() == ["internal_error"] and "RuntimeError: a bug" in sink.letters[0].detail
    sink.confirm()
    assert sorted(acks.done) == ["p1", "p2"]


def test_a_repeat_of_a_reading_on_its_way_is_acknowledged_with_it_not_before() -> None:
    sink, acks = Sink(), Acks()
    gw = gateway(sink)
    payload = json_reading(NOW - timedelta(minutes=1))
    gw.handle_mqtt(POWER_TOPIC, payload, acks("original"), _no_answer)
    gw.handle_mqtt(POWER_TOPIC, payload, acks("repeat"), _no_answer)
    assert len(sink.readings) == 1 and sink.reasons() == ["duplicate"]
    done_original, done_letter = sink.waiting
    done_letter(None)  # the repeat's dead letter is stored first
    assert acks.done == []  # the original is not in Kafka yet: nothing acknowledged
    done_original(None)
    assert acks.done == ["original", "repeat"]
    gw.handle_mqtt(POWER_TOPIC, payload, acks("later"), _no_answer)  # a repeat once stored
    sink.confirm()
    assert acks.done[-1] == "later"


def test_a_reading_kafka_refused_is_forgotten_and_nothing_more_is_acknowledged() -> None:
    sink, acks = Sink(), Acks()
    gw = gateway(sink)
    payload = json_reading(NOW - timedelta(minutes=1))
    gw.handle_mqtt(POWER_TOPIC, payload, acks("original"), _no_answer)
    sink.confirm(RuntimeError("not enough replicas"))
    assert gw.failed.is_set() and acks.done == []
    assert not gw.dedup.holds(f"{POWER.devices[0].mn}|realtime", epoch_us(NOW - timedelta(minutes=1)))


def test_over_the_size_limit_only_an_excerpt_is_kept() -> None:
    sink, acks = Sink(), Acks()
    gw = gateway(sink)
    gw.handle_mqtt(POWER_TOPIC, b"{" + b"x" * 200_000, acks("big"), _no_answer)
    [letter] = sink.letters
    assert letter.reason.value == "payload_too_large" and letter.payload_truncated
    assert letter.payload_size == 200_001 and len(letter.payload_text) == 1024
    assert len(letter.model_dump_json()) < 5_000


def test_answers_to_a_history_request_are_marked_backfilled() -> None:
    sink, acks = Sink(), Acks()
    now = [NOW]
    gw = gateway(sink, clock=lambda: now[0])
    t0 = NOW - timedelta(minutes=30)
    for minute in (0, 10):  # nine minutes missing between them
        gw.handle_mqtt(POWER_TOPIC, json_reading(t0 + timedelta(minutes=minute)), acks(f"m{minute}"), _no_answer)
    [(topic, request)] = gw.backfill_requests()
    assert topic == "cems/v1/jy-power-1/jy-power-1-s1/cmd" and b'"command": "history"' in request
    gw.handle_mqtt(POWER_TOPIC, json_reading(t0 + timedelta(minutes=5)), acks("m5"), _no_answer)
    gw.handle_mqtt(POWER_TOPIC, json_reading(t0 + timedelta(minutes=5)), acks("m5-again"), _no_answer)  # answered twice
    assert [r.backfilled for r in sink.readings] == [False, False, True]
    assert sink.letters == []  # a repeat inside an asked-for period is dropped quietly
    sink.confirm()
    assert sorted(acks.done) == ["m0", "m10", "m5", "m5-again"]
    gw.handle_mqtt(POWER_TOPIC, json_reading(t0), acks("m0-again"), _no_answer)  # outside the period
    assert sink.reasons() == ["duplicate"]


def test_a_dead_letter_stays_under_kafkas_limit_whatever_the_payload_limit() -> None:
    sink, acks = Sink(), Acks()
    memory = DedupMemory(window_s=3600, now_us=epoch_us(NOW))
    gw = Gateway(ReadingValidator(REG), sink, memory, lambda: NOW, max_payload_bytes=256 * 1024)
    for size in (64 * 1024, 200 * 1024):  # not UTF-8: every byte escaped in the text
        gw.handle_mqtt(POWER_TOPIC, b"\xff" * size, acks(str(size)), _no_answer)
    small, large = sink.letters
    assert small.reason.value == large.reason.value == "malformed_json"
    assert not small.payload_truncated and large.payload_truncated and large.payload_size == 200 * 1024
    assert max(len(letter.model_dump_json()) for letter in sink.letters) < 1_000_000


def test_a_device_minting_event_times_is_refused_past_one_reading_a_second() -> None:
    sink, acks = Sink(), Acks()
    memory = DedupMemory(window_s=26 * 3600, now_us=epoch_us(NOW), max_per_stream=5)
    gw = Gateway(ReadingValidator(REG), sink, memory, lambda: NOW)
    times = [NOW - timedelta(minutes=1, microseconds=i) for i in range(7)]
    for i, t in enumerate(times):
        gw.handle_mqtt(POWER_TOPIC, json_reading(t), acks(str(i)), _no_answer)
    gw.handle_mqtt(POWER_TOPIC, json_reading(times[0]), acks("repeat"), _no_answer)
    assert len(sink.readings) == 5 and sink.reasons() == ["too_frequent", "too_frequent", "duplicate"]
