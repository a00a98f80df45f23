"""A stack's status on the monitoring centre's overview, and the fleet's ranking. Pure.

One definition, used twice: ``dashboards/flux.py`` renders it to the Flux of the Grafana
overview (*Stack status*, *Stacks by status*, *Attention by ...*) and the case console
evaluates it in Python, so both rank the fleet alike (``tests/integration/test_dashboards.py``
runs both on the same data and compares them stack by stack).

A stack's status is its worst open condition, then its flags, then normal (``Status``, worst
first; a higher ``rank`` is worse):

- every open alert gives the status its kind maps to (``KIND_RULES``): an exceedance is
  *exceeding*, a bypass *bypass suspected*, a data gap on the whole stack (no parameter: the
  stack sends nothing, or never has) *offline*, a data gap of one parameter *data gap*, ...
  There is no clock threshold for *offline*: the detection engine decides when a stack is
  silent and opens that alert; the status only reads it.
- an alert is open when its latest event is not ``resolved``; ``acknowledged`` alerts stay
  open until their condition clears. Events at the same time are ordered ``EVENT_ORDER``
  (resolved last), as InfluxDB stores them by the second.
- a parameter whose latest data flag is not ``N`` makes the stack *marked* (``flag_order``: at
  the same time, a mark wins over ``N``).

What is wrong (``problem``) is the worst condition's text: ``"<kind> <parameter>"`` for an alert
(``"<kind>"`` on the whole stack), ``"marked <flag> <parameter>"`` for a flag, ``"-"`` when
normal; of several equally bad ones, the smallest text (so the answer never depends on the
order the data came in).

The fleet: every stack with an open alert whose latest event lies in the ``ALERT_LOOKBACK_S``
before ``now``, or with a data flag in the ``SEEN_LOOKBACK_S`` before ``now`` (windows are
``[now - lookback, now)``: what happens at ``now`` is not seen yet, like a Flux range's stop).
``last_seen`` is the time of the stack's latest flagged value in that window. Ranked worst
first, then by stack id (``rank_fleet``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar

from contracts.alerts import AlertEventType, AlertKind
from contracts.reading import DataFlag

DAY_S = 86_400
#: alert events are few: a year of them is read to find what is still open (a stack-level data
#: gap sends one ``opened`` event, then one update every few hours, until it ends)
ALERT_LOOKBACK_S = 366 * DAY_S
#: a stack's latest data flags, and when it last reported, are looked for this far back
SEEN_LOOKBACK_S = 30 * DAY_S
#: the problem text of a stack with nothing wrong
NO_PROBLEM = "-"


class Status(StrEnum):
    """A stack's status, worst first."""

    EXCEEDING = "exceeding"
    BYPASS_SUSPECTED = "bypass suspected"
    OFFLINE = "offline"
    EARLY_WARNING = "early warning"
    SUSPECT_DATA = "suspect data"
    DATA_GAP = "data gap"
    MARKED = "marked"
    NORMAL = "normal"

    @property
    def rank(self) -> int:
        """Higher is worse; normal is 0."""
        return _RANKS[self]

    @property
    def colour(self) -> str:
        """Grafana's colour name for it."""
        return _COLOURS[self]

    @property
    def needs_attention(self) -> bool:
        return self.rank > _RANKS[Status.NORMAL]


#: every status, worst first
STATUSES: tuple[Status, ...] = tuple(Status)
MAX_RANK = len(STATUSES) - 1
_RANKS: Mapping[Status, int] = {s: MAX_RANK - i for i, s in enumerate(STATUSES)}
_COLOURS: Mapping[Status, str] = {
    Status.EXCEEDING: "red",
    Status.BYPASS_SUSPECTED: "dark-red",
    Status.OFFLINE: "purple",
    Status.EARLY_WARNING: "orange",
    Status.SUSPECT_DATA: "yellow",
    Status.DATA_GAP: "blue",
    Status.MARKED: "light-blue",
    Status.NORMAL: "green",
}


def status_of_rank(rank: int) -> Status:
    return STATUSES[MAX_RANK - rank]


class Scope(StrEnum):
    """Which alerts of a kind a rule covers: on the whole stack (no parameter), on one
    parameter, or either."""

    ANY = "any"
    STACK = "stack"
    PARAMETER = "parameter"

    def covers(self, parameter: str | None) -> bool:
        if self is Scope.ANY:
            return True
        return (parameter is None) == (self is Scope.STACK)


@dataclass(frozen=True)
class KindRule:
    """An open alert of ``kind`` (within ``scope``) gives its stack ``status``."""

    kind: AlertKind
    status: Status
    scope: Scope = Scope.ANY


KIND_RULES: tuple[KindRule, ...] = (
    KindRule(AlertKind.EXCEEDANCE, Status.EXCEEDING),
    KindRule(AlertKind.BYPASS, Status.BYPASS_SUSPECTED),
    KindRule(AlertKind.DATA_GAP, Status.OFFLINE, Scope.STACK),
    KindRule(AlertKind.EARLY_WARNING, Status.EARLY_WARNING),
    KindRule(AlertKind.SPIKE, Status.EARLY_WARNING),
    KindRule(AlertKind.FLATLINE, Status.SUSPECT_DATA),
    KindRule(AlertKind.ZS_MISMATCH, Status.SUSPECT_DATA),
    KindRule(AlertKind.LIMIT_HUGGING, Status.SUSPECT_DATA),
    KindRule(AlertKind.DATA_GAP, Status.DATA_GAP, Scope.PARAMETER),
    KindRule(AlertKind.INVALID_MARK, Status.MARKED),
    # flue gas leaving untreated is judged like a bypass; a breach of an emergency measure like
    # an exceedance (a legal requirement not met); timing and power anomalies as suspect operation
    KindRule(AlertKind.TREATMENT_OFF, Status.BYPASS_SUSPECTED),
    KindRule(AlertKind.EMERGENCY_NONCOMPLIANCE, Status.EXCEEDING),
    KindRule(AlertKind.CONTROL_LATE_START, Status.SUSPECT_DATA),
    KindRule(AlertKind.CONTROL_EARLY_STOP, Status.SUSPECT_DATA),
    KindRule(AlertKind.CONTROL_UNDERPOWERED, Status.SUSPECT_DATA),
    KindRule(AlertKind.PRODUCTION_OFF_EMITTING, Status.SUSPECT_DATA),
)


def _rule_for(kind: AlertKind, parameter: str | None) -> KindRule:
    (rule,) = [r for r in KIND_RULES if r.kind is kind and r.scope.covers(parameter)]
    return rule


# every kind, on a stack and on a parameter, has exactly one rule (an import error otherwise)
_BY_KIND: Mapping[tuple[AlertKind, bool], Status] = {
    (kind, on_stack): _rule_for(kind, None if on_stack else "p").status
    for kind in AlertKind
    for on_stack in (True, False)
}


def alert_status(kind: AlertKind, parameter: str | None) -> Status:
    """The status an open alert gives its stack (``parameter`` None: on the whole stack)."""
    return _BY_KIND[(kind, parameter is None)]


#: events at the same time, in the order they happened: ``resolved`` after anything else
EVENT_ORDER: Mapping[AlertEventType, int] = {
    AlertEventType.OPENED: 0,
    AlertEventType.UPDATED: 1,
    AlertEventType.ACKNOWLEDGED: 2,
    AlertEventType.RESOLVED: 3,
}


# -- one stack -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """One open alert, as the status sees it (``parameter`` None: on the whole stack)."""

    kind: AlertKind
    parameter: str | None = None

    @property
    def status(self) -> Status:
        return alert_status(self.kind, self.parameter)

    @property
    def problem(self) -> str:
        return self.kind.value if self.parameter is None else f"{self.kind.value} {self.parameter}"


def mark_problem(parameter: str, flag: DataFlag) -> str:
    return f"{Status.MARKED.value} {flag.value} {parameter}"


@dataclass(frozen=True)
class StackStatus:
    status: Status
    problem: str

    @property
    def rank(self) -> int:
        return self.status.rank


NORMAL = StackStatus(Status.NORMAL, NO_PROBLEM)


def stack_status(open_alerts: Iterable[Condition], latest_flags: Mapping[str, DataFlag]) -> StackStatus:
    """The status of one stack from its open alerts and each parameter's latest data flag."""
    found = [StackStatus(c.status, c.problem) for c in open_alerts]
    found += [
        StackStatus(Status.MARKED, mark_problem(p, flag))
        for p, flag in latest_flags.items()
        if flag is not DataFlag.NORMAL
    ]
    return min(found, key=lambda s: (-s.rank, s.problem), default=NORMAL)


# -- the fleet -----------------------------------------------------------------------------------
class AlertEventLike(Protocol):
    """What the status reads of an alert lifecycle event (``contracts.alerts.AlertEvent`` is one)."""

    @property
    def alert_id(self) -> str: ...
    @property
    def stack(self) -> str: ...
    @property
    def kind(self) -> AlertKind: ...
    @property
    def parameter(self) -> str | None: ...
    @property
    def event(self) -> AlertEventType: ...
    @property
    def at(self) -> datetime: ...


@dataclass(frozen=True)
class FlagSample:
    """A parameter's data flag in a stack's reading at ``at``."""

    stack: str
    parameter: str
    flag: DataFlag
    at: datetime


@dataclass(frozen=True)
class StackRow:
    """One row of the fleet's status table."""

    stack: str
    status: Status
    problem: str
    #: the stack's latest flagged value in the window; None: it has not reported in it
    last_seen: datetime | None

    @property
    def rank(self) -> int:
        return self.status.rank


E = TypeVar("E", bound=AlertEventLike)


def _window(now: datetime, lookback_s: int, at: datetime) -> bool:
    return now - timedelta(seconds=lookback_s) <= at < now


def open_alerts(events: Iterable[E], now: datetime) -> list[E]:
    """The latest event of every alert that is open at ``now``: its latest event in the
    ``ALERT_LOOKBACK_S`` before ``now`` is not ``resolved``. Sorted by alert id."""
    latest: dict[str, E] = {}
    for e in events:
        if not _window(now, ALERT_LOOKBACK_S, e.at):
            continue
        seen = latest.get(e.alert_id)
        if seen is None or (e.at, EVENT_ORDER[e.event]) >= (seen.at, EVENT_ORDER[seen.event]):
            latest[e.alert_id] = e
    return [latest[k] for k in sorted(latest) if latest[k].event is not AlertEventType.RESOLVED]


def flag_order(sample: FlagSample) -> tuple[datetime, bool, str]:
    """Which of a parameter's flags is the latest: the later one; at the same time (two data
    kinds of one instant, e.g. a realtime value and a minute average), a mark before ``N``,
    then the greater letter."""
    return (sample.at, sample.flag is not DataFlag.NORMAL, sample.flag.value)


def latest_flags(samples: Iterable[FlagSample], now: datetime) -> dict[str, dict[str, FlagSample]]:
    """stack -> parameter -> its latest flag sample (``flag_order``) in the ``SEEN_LOOKBACK_S``
    before ``now``."""
    out: dict[str, dict[str, FlagSample]] = {}
    for s in samples:
        if not _window(now, SEEN_LOOKBACK_S, s.at):
            continue
        params = out.setdefault(s.stack, {})
        seen = params.get(s.parameter)
        if seen is None or flag_order(s) > flag_order(seen):
            params[s.parameter] = s
    return out


class Ranked(Protocol):
    @property
    def rank(self) -> int: ...
    @property
    def stack(self) -> str: ...


R = TypeVar("R", bound=Ranked)


def rank_key(row: Ranked) -> tuple[int, str]:
    """Worst first, then by stack id."""
    return (-row.rank, row.stack)


def rank_fleet(rows: Iterable[R]) -> list[R]:
    return sorted(rows, key=rank_key)


def fleet_status(events: Iterable[AlertEventLike], flags: Iterable[FlagSample], now: datetime) -> list[StackRow]:
    """Every stack with an open alert or a recent data flag: its status, ranked (``rank_fleet``)."""
    conditions: dict[str, list[Condition]] = {}
    for e in open_alerts(events, now):
        conditions.setdefault(e.stack, []).append(Condition(e.kind, e.parameter))
    latest = latest_flags(flags, now)
    rows = []
    for stack in conditions.keys() | latest.keys():
        params = latest.get(stack, {})
        status = stack_status(conditions.get(stack, []), {p: s.flag for p, s in params.items()})
        last_seen = max((s.at for s in params.values()), default=None)
        rows.append(StackRow(stack, status.status, status.problem, last_seen))
    return rank_fleet(rows)
