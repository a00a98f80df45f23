"""What to tell whom, and when: routing, grouping, escalation, reminders, silences and quiet
hours as one pure function of what the notifier has seen and ``now``. Pure.

``NotifyBook`` folds three logs: alert events (with the time each was *seen*, the Kafka
timestamp the worker gave it, so timers survive a restart), silences, and the notifier's own
delivery log. ``plan(now)`` returns the notices to send now, the items to log as held back
or expired, and when to look again. Nothing here reads a clock.

Per receiver, an alert gives *items* (``contracts.notifications``):

- ``firing`` to the first level of each route that takes it, when it is seen;
- ``escalation-<L>`` to level L, ``after`` the alert was seen, unless it was acknowledged or
  resolved by then; a receiver already told at a lower level is not told again;
- ``reminder-<n>`` every ``repeat_interval`` after a receiver was told, while the alert is
  open and unacknowledged (only the latest one is due, so an outage does not make a burst);
- ``resolved`` to every receiver that was told, or from whom a silence held it back.

Items of one receiver and one enterprise go out together: a group's first items wait
``group_wait`` (a burst becomes one message), later ones ``group_interval`` after the last
message (the smallest of the routes' values). Non-critical items ready in quiet hours wait
for their end. An item matched by an active silence is held back (and logged once per
silence); it goes out when the silence ends, if it is still due. An item ready longer ago
than ``max_delay_s`` (an outage of the notifier) is logged as expired, not sent.
A notice logged ``sending`` with no outcome is sent again with the same id and items.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from contracts.alerts import AlertEvent, AlertEventType, Severity
from contracts.notifications import DeliveryRecord, DeliveryStatus, Silence, item_key, split_item

from .config import QuietHours, Route, RoutingConfig
from .render import AlertFacts
from .routing import Directory, labels, routes_for

#: items ready longer ago than this are logged as expired instead of sent (default one day)
DEFAULT_MAX_DELAY_S = 24 * 3600


@dataclass
class TrackedAlert:
    first: AlertEvent
    latest: AlertEvent
    labels: dict[str, str]
    routes: tuple[Route, ...]
    seen_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None

    def quiet_by(self, now: datetime) -> bool:
        """Acknowledged or resolved by ``now``: no escalation or reminder is due after it."""
        return any(t is not None and t <= now for t in (self.acknowledged_at, self.resolved_at))


class Outcome(StrEnum):
    HOLD = "hold"  # a silence holds it back
    EXPIRE = "expire"  # ready too long ago


@dataclass(frozen=True)
class Notice:
    """One message to one receiver about one enterprise's alerts."""

    notice_id: str
    receiver: str
    group: str
    items: tuple[str, ...]
    #: a notice logged ``sending`` before a restart, sent again as it was
    resend: bool = False


@dataclass(frozen=True)
class Logged:
    """Items to log without sending: held back by ``silence_id``, or expired."""

    outcome: Outcome
    receiver: str
    group: str
    items: tuple[str, ...]
    silence_id: str | None = None


@dataclass(frozen=True)
class Plan:
    notices: list[Notice]
    logged: list[Logged]
    #: the earliest time something may become due (None: nothing is waiting)
    wake_at: datetime | None


@dataclass
class _Candidate:
    item: str
    ready_at: datetime
    route: Route


@dataclass
class _GroupLog:
    last_sent: datetime | None = None
    last_undelivered: datetime | None = None


def notice_id(receiver: str, items: tuple[str, ...]) -> str:
    return hashlib.sha1("\n".join((receiver, *items)).encode()).hexdigest()[:20]


def quiet_release(quiet: QuietHours | None, severity: Severity, ready: datetime, config: RoutingConfig) -> datetime:
    """When an item ready at ``ready`` may go out: at once, or at the end of quiet hours."""
    if quiet is None or severity not in quiet.hold:
        return ready
    return _release(quiet, ready.astimezone(config.zone)).astimezone(ready.tzinfo)


def _release(quiet: QuietHours, local: datetime) -> datetime:
    start = local.replace(hour=quiet.start.hour, minute=quiet.start.minute, second=0, microsecond=0)
    end = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
    if quiet.start <= quiet.end:  # e.g. 12:00-14:00 the same day
        return end if start <= local < end else local
    # over midnight, e.g. 22:00-07:00
    if local >= start:
        return end + timedelta(days=1)
    if local < end:
        return end
    return local


@dataclass
class NotifyBook:
    config: RoutingConfig
    places: Directory
    max_delay_s: int = DEFAULT_MAX_DELAY_S
    alerts: dict[str, TrackedAlert] = field(default_factory=dict)
    silences: dict[str, Silence] = field(default_factory=dict)
    #: (receiver, item) -> done (delivered or expired)
    done: set[tuple[str, str]] = field(default_factory=set)
    #: (receiver, alert_id) -> when the receiver was first told of the alert
    told_at: dict[tuple[str, str], datetime] = field(default_factory=dict)
    #: (receiver, item) -> silences that held it back (logged)
    held: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    groups: dict[tuple[str, str], _GroupLog] = field(default_factory=lambda: defaultdict(_GroupLog))
    #: notices logged ``sending`` and not yet delivered or given up
    in_doubt: dict[str, DeliveryRecord] = field(default_factory=dict)
    #: alerts that may still give items (the rest are settled and skipped by ``plan``)
    active: set[str] = field(default_factory=set)

    # -- folding the logs --------------------------------------------------------------------
    def add_event(self, event: AlertEvent, seen_at: datetime) -> None:
        tracked = self.alerts.get(event.alert_id)
        if tracked is None:
            alert_labels = labels(event, self.places)
            tracked = TrackedAlert(event, event, alert_labels, routes_for(self.config, alert_labels), seen_at)
            self.alerts[event.alert_id] = tracked
        elif event.at >= tracked.latest.at:
            tracked.latest = event
        if event.event is AlertEventType.ACKNOWLEDGED and tracked.acknowledged_at is None:
            tracked.acknowledged_at = seen_at
        if event.event is AlertEventType.RESOLVED and tracked.resolved_at is None:
            tracked.resolved_at = seen_at
        self.active.add(event.alert_id)

    def facts(self, items: tuple[str, ...]) -> list[AlertFacts]:
        """A notice's items with each alert's latest event (items of unknown alerts are left out)."""
        out = []
        for item in items:
            alert_id, what = split_item(item)
            tracked = self.alerts.get(alert_id)
            if tracked is not None:
                out.append(AlertFacts(item, what, tracked.latest))
        return out

    def add_silence(self, silence: Silence) -> None:
        self.silences[silence.id] = silence

    def add_record(self, record: DeliveryRecord) -> None:
        status = record.status
        if status is DeliveryStatus.SENDING:
            self.in_doubt[record.notice_id] = record
            self.groups[(record.receiver, record.group)].last_sent = record.at
        elif status is DeliveryStatus.DELIVERED:
            self.in_doubt.pop(record.notice_id, None)
            self.groups[(record.receiver, record.group)].last_sent = record.at
            for item in record.items:
                self.done.add((record.receiver, item))
                alert, what = split_item(item)
                if what != "resolved":
                    self.told_at.setdefault((record.receiver, alert), record.at)
        elif status is DeliveryStatus.UNDELIVERED:
            self.in_doubt.pop(record.notice_id, None)
            self.groups[(record.receiver, record.group)].last_undelivered = record.at
        elif status is DeliveryStatus.SILENCED and record.silence_id is not None:
            for item in record.items:
                self.held[(record.receiver, item)].add(record.silence_id)
        elif status is DeliveryStatus.EXPIRED:
            self.done.update((record.receiver, item) for item in record.items)

    # -- planning ----------------------------------------------------------------------------
    def plan(self, now: datetime, busy: frozenset[tuple[str, str]] = frozenset()) -> Plan:
        """What is due at ``now``; (receiver, group) pairs in ``busy`` (a notice is being sent
        to them) are left for later, so each group's messages go out in order."""
        notices: list[Notice] = []
        taken: set[tuple[str, str]] = set()
        for record in self.in_doubt.values():
            if (record.receiver, record.group) not in busy:
                notices.append(Notice(record.notice_id, record.receiver, record.group, record.items, resend=True))
            taken.update((record.receiver, item) for item in record.items)

        wake: list[datetime] = []
        sendable: dict[tuple[str, str], list[_Candidate]] = defaultdict(list)
        logged: list[Logged] = []
        settled: list[str] = []
        for alert_id in sorted(self.active):
            tracked = self.alerts[alert_id]
            candidates = self._candidates(tracked, now, wake)
            silence = self._silence(tracked, now) if self.silences else None
            pending = False
            for receiver, candidate in candidates:
                key = (receiver, candidate.item)
                if key in self.done or key in taken:
                    pending = pending or key in taken
                    continue
                pending = True
                group = tracked.first.enterprise
                if (receiver, group) in busy:
                    continue
                if candidate.ready_at > now:
                    wake.append(candidate.ready_at)
                    continue
                if (now - candidate.ready_at).total_seconds() > self.max_delay_s:
                    logged.append(Logged(Outcome.EXPIRE, receiver, group, (candidate.item,)))
                    continue
                if silence is not None:
                    wake.append(silence.ends_at)
                    if silence.id not in self.held.get(key, ()):
                        logged.append(Logged(Outcome.HOLD, receiver, group, (candidate.item,), silence.id))
                    continue
                sendable[(receiver, group)].append(candidate)
            if not pending and tracked.resolved_at is not None and tracked.resolved_at <= now:
                settled.append(alert_id)
        self.active.difference_update(settled)

        for (receiver, group), ready in sorted(sendable.items()):
            flush_at = self._flush_at(receiver, group, ready)
            if flush_at > now:
                wake.append(flush_at)
                continue
            items = tuple(sorted({c.item for c in ready}))
            notices.append(Notice(notice_id(receiver, items), receiver, group, items))
        return Plan(notices, _merge(logged), min(wake) if wake else None)

    def _candidates(self, tracked: TrackedAlert, now: datetime, wake: list[datetime]) -> list[tuple[str, _Candidate]]:
        alert_id = tracked.first.alert_id
        severity = tracked.first.severity
        out: list[tuple[str, _Candidate]] = []
        told: set[str] = set()
        for route in tracked.routes:
            for index, level in enumerate(route.levels):
                ready = tracked.seen_at + timedelta(seconds=level.after)
                if index > 0 and tracked.quiet_by(ready):
                    continue
                what = "firing" if index == 0 else f"escalation-{index}"
                for receiver in level.receivers:
                    if receiver in told:
                        continue
                    told.add(receiver)
                    released = quiet_release(route.quiet_hours, severity, ready, self.config)
                    out.append((receiver, _Candidate(item_key(alert_id, what), released, route)))
        for receiver, candidate in list(out):
            route = candidate.route
            told_at = self.told_at.get((receiver, alert_id))
            if told_at is not None and route.repeat_interval is not None and not tracked.quiet_by(now):
                periods = int((now - told_at).total_seconds() // route.repeat_interval)
                wake.append(told_at + timedelta(seconds=(periods + 1) * route.repeat_interval))
                if periods >= 1:
                    ready = told_at + timedelta(seconds=periods * route.repeat_interval)
                    released = quiet_release(route.quiet_hours, severity, ready, self.config)
                    out.append((receiver, _Candidate(item_key(alert_id, f"reminder-{periods}"), released, route)))
            if tracked.resolved_at is not None and (told_at is not None or self.held.get((receiver, candidate.item))):
                released = quiet_release(route.quiet_hours, severity, tracked.resolved_at, self.config)
                out.append((receiver, _Candidate(item_key(alert_id, "resolved"), released, route)))
        return out

    def _silence(self, tracked: TrackedAlert, now: datetime) -> Silence | None:
        found = [s for s in self.silences.values() if s.active(now) and s.matches(tracked.labels)]
        return max(found, key=lambda s: (s.ends_at, s.id)) if found else None

    def _flush_at(self, receiver: str, group: str, ready: list[_Candidate]) -> datetime:
        log = self.groups.get((receiver, group), _GroupLog())
        first_ready = min(c.ready_at for c in ready)
        times = [first_ready + timedelta(seconds=min(c.route.group_wait for c in ready))]
        if log.last_sent is not None:
            times.append(log.last_sent + timedelta(seconds=min(c.route.group_interval for c in ready)))
        if log.last_undelivered is not None and (log.last_sent is None or log.last_undelivered > log.last_sent):
            times.append(log.last_undelivered + timedelta(seconds=self.config.delivery.retry_interval))
        return max(times)


def _merge(logged: list[Logged]) -> list[Logged]:
    """One log entry per receiver, group, outcome and silence."""
    merged: dict[tuple[Outcome, str, str, str | None], list[str]] = defaultdict(list)
    for entry in logged:
        merged[(entry.outcome, entry.receiver, entry.group, entry.silence_id)].extend(entry.items)
    return [
        Logged(outcome, receiver, group, tuple(sorted(items)), silence_id)
        for (outcome, receiver, group, silence_id), items in merged.items()
    ]
