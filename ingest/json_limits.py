"""JSON from devices, decoded with limits: untrusted input may not make the decoder (or
anything after it) run out of stack or build huge integers. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

#: JSON from devices: how deep objects and arrays may nest, how long a number may be written.
#: A reading is three levels deep; the longest number a device has reason to send is a
#: cumulative total or a float with many decimals.
MAX_JSON_DEPTH = 8
MAX_JSON_NUMBER_CHARS = 40


def _bounded_number(parse: Callable[[str], float | int]) -> Callable[[str], float | int]:
    def parse_bounded(text: str) -> float | int:
        if len(text) > MAX_JSON_NUMBER_CHARS:
            raise ValueError(f"a number written with {len(text)} characters (at most {MAX_JSON_NUMBER_CHARS})")
        return parse(text)

    return parse_bounded


_parse_int, _parse_float = _bounded_number(int), _bounded_number(float)


def loads_bounded(payload: bytes) -> Any:
    """``json.loads`` for untrusted input: numbers of at most ``MAX_JSON_NUMBER_CHARS``
    characters, nesting at most ``MAX_JSON_DEPTH`` deep. Anything else is a ``ValueError``
    naming the limit (never an ``OverflowError`` or ``RecursionError`` later on)."""
    try:
        doc = json.loads(payload, parse_int=_parse_int, parse_float=_parse_float)
    except RecursionError as exc:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from exc
    # depth of what did parse, without recursion
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)
    return doc
