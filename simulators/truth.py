"""Compare alert events with a scenario's ground truth. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from contracts.alerts import AlertEvent, AlertEventType


def compare(truth: dict[str, Any], events: Iterable[AlertEvent]) -> list[str]:
    """Problems, if any: an expected alert not opened in its window, or an alert opened that
    nothing in the scenario explains (an early warning is explained by an expected exceedance
    of the same stack and parameter)."""
    opened = [e for e in events if e.event is AlertEventType.OPENED]
    expected = truth["alerts"]
    problems: list[str] = []
    matched: set[int] = set()
    for exp in expected:
        lo, hi = (datetime.fromisoformat(x) for x in exp["start"])
        hits = [
            i
            for i, e in enumerate(opened)
            if e.kind.value == exp["kind"]
            and e.stack == exp["stack"]
            and e.parameter == exp["parameter"]
            and lo <= e.start <= hi
        ]
        if not hits:
            near = [f"{e.kind.value}@{e.start.isoformat()}" for e in opened if e.stack == exp["stack"]]
            problems.append(
                f"missing {exp['kind']} on {exp['stack']}/{exp['parameter']} starting in [{lo}, {hi}]; "
                f"that stack opened: {near or 'nothing'}"
            )
        matched.update(hits)
    for i, e in enumerate(opened):
        if i in matched:
            continue
        explained = e.kind.value == "early_warning" and any(
            x["kind"] == "exceedance" and x["stack"] == e.stack and x["parameter"] == e.parameter for x in expected
        )
        if not explained:
            problems.append(f"unexpected {e.kind.value} on {e.stack}/{e.parameter} starting {e.start.isoformat()}")
    return problems
