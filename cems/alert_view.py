"""Alerts as a person reads them: one line per lifecycle event, and the current state of
each alert folded from its events. Used by `cems alerts list|tail` and by `cems run`, which
shows each alert as it opens and resolves.

The folding and formatting are pure; ``AlertReader`` reads the alerts topic (committed
events only, as the worker writes them in transactions).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from contracts.alerts import AlertEvent, AlertEventType, AlertKind, Severity
from contracts.registry import Registry
from notify.kafka_log import TopicReader

_EVENT_STYLE = {
    AlertEventType.OPENED: "bold red",
    AlertEventType.UPDATED: "yellow",
    AlertEventType.ACKNOWLEDGED: "cyan",
    AlertEventType.RESOLVED: "green",
}
_SEVERITY_STYLE = {Severity.CRITICAL: "bold red", Severity.WARNING: "yellow", Severity.INFO: "dim"}


@dataclass
class AlertLine:
    """An alert's current state: its first event and its latest."""

    first: AlertEvent
    latest: AlertEvent

    @property
    def is_open(self) -> bool:
        return self.latest.event is not AlertEventType.RESOLVED


def fold(events: Iterable[AlertEvent]) -> dict[str, AlertLine]:
    """Each alert (by id) with its first and latest event, in the order alerts first appeared."""
    book: dict[str, AlertLine] = {}
    for event in events:
        line = book.get(event.alert_id)
        if line is None:
            book[event.alert_id] = AlertLine(event, event)
        elif event.at >= line.latest.at:
            line.latest = event
    return book


def district_of(registry: Registry | None, stack: str) -> str | None:
    found = registry.stack_index().get(stack) if registry is not None else None
    return found[0].district if found is not None else None


def select(
    lines: Iterable[AlertLine],
    registry: Registry | None,
    *,
    open_only: bool = False,
    district: str | None = None,
    kind: AlertKind | None = None,
) -> list[AlertLine]:
    return [
        line
        for line in lines
        if (not open_only or line.is_open)
        and (kind is None or line.latest.kind is kind)
        and (district is None or district_of(registry, line.latest.stack) == district)
    ]


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def describe(event: AlertEvent, registry: Registry | None = None) -> str:
    """One line, with rich markup: what happened to which alert, where, since when, and why."""
    style = _EVENT_STYLE.get(event.event, "")
    where = event.stack + (f" {event.parameter}" if event.parameter else "")
    district = district_of(registry, event.stack)
    place = f"{event.enterprise}/{where}" + (f" ({district})" if district else "")
    span = f"since {_when(event.start)}"
    if event.event is AlertEventType.RESOLVED and event.end is not None:
        span = f"{_when(event.start)} to {_when(event.end)}"
    severity = _SEVERITY_STYLE.get(event.severity, "")
    return (
        f"[{style}]{event.event.value:>12}[/] [{severity}]{event.severity.value:<8}[/] "
        f"[bold]{event.kind.value}[/] {place}  {span}  {event.reason}  [dim]{event.alert_id}[/]"
    )


class AlertReader:
    """Reads alert events from a topic (read_committed), from its beginning or from its end
    at start; ``poll`` returns what has arrived since, without waiting long."""

    def __init__(self, bootstrap: str, topic: str, *, from_beginning: bool, group: str = "cems-alerts-view") -> None:
        self.topic = topic
        self.reader = TopicReader(bootstrap, [topic], group=group, from_end=not from_beginning)

    def poll(self, timeout_s: float = 0.0, max_events: int = 500) -> list[AlertEvent]:
        return [AlertEvent.model_validate_json(r.value) for r in self.reader.poll(timeout_s, max_events)]

    def until_end(self, timeout_s: float = 30.0) -> Iterator[AlertEvent]:
        """Everything up to the end offsets seen at start (transaction markers included)."""
        for record in self.reader.until_caught_up(timeout_s):
            yield AlertEvent.model_validate_json(record.value)

    def close(self) -> None:
        self.reader.close()


def current_alerts(bootstrap: str, topic: str) -> dict[str, AlertLine]:
    """Every alert in the topic now (committed events up to its end), by id."""
    reader = AlertReader(bootstrap, topic, from_beginning=True)
    try:
        return fold(reader.until_end())
    finally:
        reader.close()
