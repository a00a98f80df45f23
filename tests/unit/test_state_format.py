"""The stack state's stored format (streams.codec): versioned, read back exactly, old states
read or refused with a message that says why."""

from __future__ import annotations

import hashlib
import json
import pickle
from datetime import timedelta

import msgspec
import pytest

from rules.engine import DetectionEngine
from rules.replay import ReplayDriver
from rules.state import StackState
from streams.codec import MAGIC, STATE_FORMAT_VERSION, StateFormatError, decode_state, encode_state, state_format
from tests.rulekit import T0, profile, reading

#: the shape of StackState that each format stores (msgspec's JSON Schema of it, hashed).
#: When this test fails, StackState changed: raise STATE_FORMAT_VERSION in streams/codec.py,
#: give the old version a reader that converts it, note it in docs/changelog.md, and record
#: the new shape here.
SHAPES = {1: "a5f99d03bc34", 2: "f322edecf749"}


def shape() -> str:
    schema = msgspec.json.schema(StackState)
    return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()[:12]


def busy_state() -> StackState:
    """A state with open minutes, hours, baselines, runs, marks and an open alert."""
    engine = DetectionEngine({"s1": profile("s1", parameters=("flow", "temperature", "humidity", "o2", "so2"))})
    driver = ReplayDriver(engine)
    for m in range(150):
        so2 = 80.0 if 60 <= m < 120 else 20.0  # an exceedance hour
        driver.feed(reading(T0 + timedelta(minutes=m, seconds=30), "s1", flow=100.0, temperature=50.0,
                            humidity=10.0, o2=6.0, so2=so2))  # fmt: skip
    state = driver.states["s1"]
    assert state.alerts and state.open_minutes and state.hourly_history
    return state


def test_the_stored_shape_is_the_one_the_format_version_names() -> None:
    assert shape() == SHAPES[STATE_FORMAT_VERSION], (
        f"StackState changed shape ({shape()}): raise STATE_FORMAT_VERSION in streams/codec.py, add a reader "
        "for the old format, note it in docs/changelog.md and record the new shape in SHAPES"
    )


def test_a_state_reads_back_exactly_and_says_its_version() -> None:
    state = busy_state()
    raw = encode_state(state)
    assert raw[:2] == MAGIC and state_format(raw) == STATE_FORMAT_VERSION
    back = decode_state(raw, "s1")
    assert back == state
    assert encode_state(back) == raw


def test_a_format_1_state_is_read_with_empty_electricity_and_emergency() -> None:
    """Format 1 (before facilities and emergency responses): the same record without the two
    fields; read, they start empty, and the state is written back in the current format."""
    state = busy_state()
    body = msgspec.msgpack.decode(encode_state(state)[4:])
    del body["electricity"], body["emergency"]
    v1 = MAGIC + (1).to_bytes(2, "big") + msgspec.msgpack.encode(body)
    assert state_format(v1) == 1
    back = decode_state(v1, "s1")
    assert back == state  # busy_state has no meters and no response: empty is what it holds
    assert back.electricity.facilities == {} and back.emergency.responses == {}
    assert state_format(encode_state(back)) == STATE_FORMAT_VERSION == 2


def test_a_state_pickled_by_an_earlier_release_is_read() -> None:
    state = busy_state()
    legacy = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)  # what the changelog held before
    assert state_format(legacy) == 0
    assert decode_state(legacy, "s1") == state


def test_a_state_from_a_newer_release_is_refused_naming_the_stack_and_the_versions() -> None:
    raw = encode_state(busy_state())
    future = MAGIC + (STATE_FORMAT_VERSION + 1).to_bytes(2, "big") + raw[4:]
    with pytest.raises(StateFormatError, match=r"stack s1: its stored state is format 3, written by a newer release; "
                       r"this release reads formats \[1, 2\] and legacy pickles"):  # fmt: skip
        decode_state(future, "s1")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{}", "stack s1: not a stack state"),
        (MAGIC + b"\x00\x01" + b"\xc1", r"stack s1: its stored state \(format 1\) cannot be read"),
        (pickle.dumps({"not": "a state"}), r"stack s1: its stored state \(legacy pickle\) cannot be read: a pickled"),
    ],
)
def test_a_corrupt_state_is_refused_with_the_reason(raw: bytes, message: str) -> None:
    with pytest.raises(StateFormatError, match=message):
        decode_state(raw, "s1")


def test_a_state_stored_under_another_stack_is_refused() -> None:
    with pytest.raises(StateFormatError, match="stack s2: the stored state is that of s1"):
        decode_state(encode_state(busy_state()), "s2")
