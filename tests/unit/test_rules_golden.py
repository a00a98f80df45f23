"""The rules decide over every simulator scenario exactly what they decided when the digests in
``rules_golden.json`` were written (alert events, hourly averages, late readings): changes
meant only to make the rules faster must leave every byte alone. A change meant to change
decisions rewrites the digests (``python -m tests.unit.rules_golden --write``) and says why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.rules_golden import GOLDEN, cases, digest, scenario_readings

EXPECTED = json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module", autouse=True)
def _free_readings() -> Iterator[None]:
    yield
    scenario_readings.cache_clear()


@pytest.mark.parametrize(("name", "make"), list(cases()), ids=[name for name, _ in cases()])
def test_the_rules_decide_what_they_decided(name: str, make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines = make(False)
    found = digest(lines)
    if found != EXPECTED[name]:
        dump = tmp_path / "lines.jsonl"
        dump.write_text("\n".join(lines) + "\n")
        pytest.fail(f"{name}: {found} != {EXPECTED[name]}; the lines are in {dump}")


def test_every_case_has_a_digest() -> None:
    assert sorted(EXPECTED) == sorted(name for name, _ in cases())
