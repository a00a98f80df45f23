"""The worker's encodings: readings off Kafka, and the stack state in its table's changelog.

The stack state is stored as a **versioned** record, not a bare pickle: ``b"CS"``, the format
version as two bytes (big endian), then the state as MessagePack (msgspec, typed by
``rules.state.StackState``). A release reads the formats listed in ``READERS``; a state in a
format it does not know stops the worker with a ``StateFormatError`` that names the stack
and the versions it can read, instead of guessing. Changelogs written before the format
existed hold bare pickles: they are read once (``LEGACY_PICKLE``) and written back in the
current format the next time the stack changes.

When ``StackState`` (or a dataclass inside it) changes shape, ``STATE_FORMAT_VERSION`` goes up,
the old version gets a reader that converts it, and the change is noted in
``docs/changelog.md`` (``tests/unit/test_state_format.py`` fails until then).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

import msgspec

from contracts.reading import Reading
from rules.state import StackState

MAGIC = b"CS"
#: 2 added ``electricity`` and ``emergency`` (facilities' power, held emergency responses)
STATE_FORMAT_VERSION = 2
#: the version number a changelog record written as a bare pickle counts as
LEGACY_PICKLE = 0

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(StackState)
_HEADER = MAGIC + STATE_FORMAT_VERSION.to_bytes(2, "big")


class StateFormatError(Exception):
    """A stored stack state this release cannot read."""


def decode_reading(raw: bytes) -> Reading:
    """A reading as the gateway wrote it to the readings topic (``contracts.reading.Reading``)."""
    return Reading.model_validate_json(raw)


def encode_state(state: StackState) -> bytes:
    return _HEADER + _encoder.encode(state)


def _read_current(body: bytes) -> StackState:
    return _decoder.decode(body)


def _read_v1(body: bytes) -> StackState:
    """Format 1 is format 2 without ``electricity`` and ``emergency``: they start empty (their
    dataclasses' defaults), as for a stack that never had a meter reading or a response."""
    return _decoder.decode(body)


def _read_legacy_pickle(raw: bytes) -> StackState:
    state = pickle.loads(raw)  # our own changelog, written by an earlier release of this worker
    if not isinstance(state, StackState):
        raise TypeError(f"a pickled {type(state).__name__}, not a StackState")
    return _decoder.decode(_encoder.encode(state))  # checks every field against today's shape


#: format version -> reader of the bytes after the header
READERS: dict[int, Callable[[bytes], StackState]] = {1: _read_v1, 2: _read_current}


def state_format(raw: bytes) -> int:
    """The format version of a stored state (``LEGACY_PICKLE`` for a bare pickle)."""
    if raw[:2] == MAGIC and len(raw) >= 4:
        return int.from_bytes(raw[2:4], "big")
    if raw[:1] == b"\x80":  # pickle protocol 2 and later
        return LEGACY_PICKLE
    raise StateFormatError("not a stack state: neither the versioned format nor a pickle")


def decode_state(raw: bytes, stack: str) -> StackState:
    """The stack state stored for ``stack``, in any format this release reads."""
    try:
        version = state_format(raw)
    except StateFormatError as exc:
        raise StateFormatError(f"stack {stack}: {exc}") from None
    readable = f"this release reads formats {sorted(READERS)} and legacy pickles"
    try:
        if version == LEGACY_PICKLE:
            state = _read_legacy_pickle(raw)
        elif version in READERS:
            state = READERS[version](raw[4:])
        else:
            raise StateFormatError(
                f"stack {stack}: its stored state is format {version}, written by a newer release; {readable}"
            )
    except StateFormatError:
        raise
    except Exception as exc:  # a corrupt record, or an old one that no longer fits
        kind = "legacy pickle" if version == LEGACY_PICKLE else f"format {version}"
        raise StateFormatError(f"stack {stack}: its stored state ({kind}) cannot be read: {exc}; {readable}") from exc
    if state.stack != stack:
        raise StateFormatError(f"stack {stack}: the stored state is that of {state.stack}")
    return state
