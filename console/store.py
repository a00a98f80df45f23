"""Cases in the database: opened and updated from alert events, exactly once; changed by
people's actions; every decision made by ``rules.cases``.

Alert events arrive with their topic position. A batch's changes and the next offsets are
committed in one transaction, and each event is stored under a unique key (alert, event, time),
so a replayed or re-read event changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from contracts.alerts import AlertEvent, AlertEventType, AlertKind
from rules.cases import access, machine
from rules.cases.access import Actor
from rules.cases.machine import Command, Refusal, Step
from rules.cases.policy import CasePolicy
from rules.notify.routing import Directory, StackInfo

from . import db

log = logging.getLogger(__name__)

UNKNOWN_PLACE = StackInfo(enterprise_name="", stack_name="", district="unknown", industry="unknown")


@dataclass(frozen=True)
class Record:
    """One alerts-topic record: where it was and what it held."""

    partition: int
    offset: int
    value: bytes


@dataclass
class IngestStats:
    events: int = 0
    duplicates: int = 0
    undecodable: int = 0
    ignored: int = 0
    opened: int = 0
    joined: int = 0
    recurred: int = 0


def event_key(event: AlertEvent) -> str:
    return f"{event.alert_id}|{event.event.value}|{event.at.isoformat()}"


def to_domain(row: db.Case) -> machine.Case:
    return machine.Case(
        enterprise=row.enterprise,
        stack=row.stack,
        kind=AlertKind(row.kind),
        district=row.district,
        industry=row.industry,
        state=machine.CaseState(row.state),
        opened_at=row.opened_at,
        last_occurrence_at=row.last_occurrence_at,
        open_alerts=frozenset(row.open_alerts),
        assignee=row.assignee,
        deadline=row.deadline,
        responded_at=row.responded_at,
        recurrences=row.recurrences,
        closed_at=row.closed_at,
        resolution=machine.Resolution(row.resolution) if row.resolution else None,
    )


def _write(row: db.Case, case: machine.Case, now: datetime) -> None:
    row.state = case.state.value
    row.last_occurrence_at = case.last_occurrence_at
    row.open_alerts = sorted(case.open_alerts)
    row.assignee = case.assignee
    row.deadline = case.deadline
    row.responded_at = case.responded_at
    row.recurrences = case.recurrences
    row.closed_at = case.closed_at
    row.resolution = case.resolution.value if case.resolution else None
    row.updated_at = now


def _history(session: Session, case_id: int, entry: machine.Entry) -> None:
    session.add(
        db.CaseHistory(
            case_id=case_id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action.value,
            from_state=entry.from_state.value if entry.from_state else None,
            to_state=entry.to_state.value,
            note=entry.note,
        )
    )


_SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}


def _worse(severity: str, other: str) -> str:
    return max(severity, other, key=_SEVERITY_ORDER.__getitem__)


def actor_of(user: db.User) -> Actor:
    return Actor(
        username=user.username,
        role=access.Role(user.role),
        districts=frozenset(d for d in user.districts.split(",") if d),
        enterprise=user.enterprise,
    )


class CaseStore:
    def __init__(self, engine: Engine, policy: CasePolicy, places: Directory, *, consumer: str = "console") -> None:
        self.engine = engine
        self.policy = policy
        self.places = places
        self.consumer = consumer

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    # -- alert events --------------------------------------------------------------------
    def positions(self, topic: str) -> dict[int, int]:
        """The next offset to read per partition (absent: from the beginning)."""
        with self.session() as s:
            rows = s.scalars(
                select(db.ConsumerOffset).where(
                    db.ConsumerOffset.consumer == self.consumer, db.ConsumerOffset.topic == topic
                )
            )
            return {r.partition: r.next_offset for r in rows}

    def ingest(self, topic: str, records: Sequence[Record]) -> IngestStats:
        """Apply a batch of alerts-topic records and store the positions after them, in one
        transaction (decided again if a person changed one of its cases meanwhile)."""
        for _ in range(4):
            try:
                return self._ingest_once(topic, records)
            except StaleDataError:
                log.info("a case changed while alert events were applied to it; applying the batch again")
        return self._ingest_once(topic, records)

    def _ingest_once(self, topic: str, records: Sequence[Record]) -> IngestStats:
        stats = IngestStats()
        with self.session() as s:
            nexts: dict[int, int] = {}
            for record in records:
                nexts[record.partition] = max(nexts.get(record.partition, 0), record.offset + 1)
                try:
                    event = AlertEvent.model_validate_json(record.value)
                except ValidationError as exc:
                    stats.undecodable += 1
                    log.error(
                        "alerts record %s/%d@%d is not an alert event, skipped: %s",
                        topic,
                        record.partition,
                        record.offset,
                        exc.errors()[0]["msg"],
                    )
                    continue
                self._apply_event(s, event, stats)
            for partition, next_offset in nexts.items():
                position = s.get(db.ConsumerOffset, (self.consumer, topic, partition))
                if position is None:
                    s.add(
                        db.ConsumerOffset(
                            consumer=self.consumer, topic=topic, partition=partition, next_offset=next_offset
                        )
                    )
                else:
                    position.next_offset = max(position.next_offset, next_offset)
        return stats

    def _apply_event(self, s: Session, event: AlertEvent, stats: IngestStats) -> None:
        stats.events += 1
        if event.kind not in self.policy.kinds:
            stats.ignored += 1
            return
        key = event_key(event)
        if s.scalar(select(db.AlertEventRow.id).where(db.AlertEventRow.event_key == key)) is not None:
            stats.duplicates += 1
            return
        alert = s.get(db.Alert, event.alert_id)
        if alert is None:
            alert = db.Alert(
                alert_id=event.alert_id,
                case_id=None,
                kind=event.kind.value,
                enterprise=event.enterprise,
                stack=event.stack,
                parameter=event.parameter,
                severity=event.severity.value,
                state="open",
                start=event.start,
                end=None,
                last_event_at=event.at,
            )
            s.add(alert)
        if event.at >= alert.last_event_at:
            alert.last_event_at = event.at
            if event.event is AlertEventType.RESOLVED:
                alert.state, alert.end = "resolved", event.end or event.at
            elif event.event is AlertEventType.ACKNOWLEDGED:
                alert.state = "acknowledged" if alert.state != "resolved" else alert.state
            alert.severity = _worse(alert.severity, event.severity.value)
        s.add(
            db.AlertEventRow(
                event_key=key,
                alert_id=event.alert_id,
                event=event.event.value,
                at=event.at,
                body=event.model_dump(mode="json"),
            )
        )
        s.flush()
        if alert.case_id is not None:
            row = s.get_one(db.Case, alert.case_id)
            _write(row, machine.observe(to_domain(row), event), event.at)
            row.severity = _worse(row.severity, event.severity.value)
        elif self.policy.opens_case(event):
            self._open_or_join(s, alert, event, stats)

    def _open_or_join(self, s: Session, alert: db.Alert, event: AlertEvent, stats: IngestStats) -> None:
        open_row = s.scalar(
            select(db.Case)
            .where(
                db.Case.enterprise == event.enterprise,
                db.Case.stack == event.stack,
                db.Case.kind == event.kind.value,
                db.Case.state != machine.CaseState.CLOSED.value,
            )
            .order_by(db.Case.id.desc())
            .limit(1)
        )
        if open_row is None:
            place = self.places.get(event.stack, UNKNOWN_PLACE)
            step = machine.open_case(event, district=place.district, industry=place.industry)
            what = event.kind.value.replace("_", " ") + (f" of {event.parameter}" if event.parameter else "")
            row = db.Case(
                enterprise=event.enterprise,
                enterprise_name=place.enterprise_name or event.enterprise,
                stack=event.stack,
                kind=event.kind.value,
                district=place.district,
                industry=place.industry,
                severity=event.severity.value,
                title=f"{place.stack_name or event.stack}: {what}",
                opened_at=step.case.opened_at,
                last_occurrence_at=step.case.last_occurrence_at,
                open_alerts=[],
                recurrences=0,
                updated_at=event.at,
            )
            _write(row, step.case, event.at)
            s.add(row)
            s.flush()
            stats.opened += 1
        else:
            row = open_row
            joined = machine.on_alert(to_domain(row), event, known_alert=False, policy=self.policy)
            if joined is None:  # cannot happen for an alert not yet in the case
                return
            step = joined
            _write(row, step.case, event.at)
            row.severity = _worse(row.severity, event.severity.value)
            if step.entry.action is machine.Action.RECUR:
                stats.recurred += 1
            else:
                stats.joined += 1
        alert.case_id = row.id
        _history(s, row.id, step.entry)

    def sweep(self, now: datetime) -> int:
        """Open cases for alerts that have now lasted long enough (a long data gap with no new
        event); call it when caught up with the topic. Returns how many alerts joined or
        opened a case."""
        stats = IngestStats()
        with self.session() as s:
            pending = s.scalars(select(db.Alert).where(db.Alert.case_id.is_(None), db.Alert.state != "resolved")).all()
            for alert in pending:
                if not self.policy.due_to_open(AlertKind(alert.kind), alert.start, now):
                    continue
                latest = s.scalar(
                    select(db.AlertEventRow)
                    .where(db.AlertEventRow.alert_id == alert.alert_id)
                    .order_by(db.AlertEventRow.at.desc())
                    .limit(1)
                )
                if latest is None:
                    continue
                # the gap is known to have lasted until it became due (not until the wall clock's
                # now: a resolution may still be on its way)
                policy = self.policy.kinds[AlertKind(alert.kind)]
                due_at = max(latest.at, alert.start + timedelta(hours=policy.min_duration_h))
                event = AlertEvent.model_validate(latest.body).model_copy(update={"at": due_at})
                self._open_or_join(s, alert, event, stats)
        return stats.opened + stats.joined + stats.recurred

    # -- people's actions ----------------------------------------------------------------
    def act(self, actor: Actor, case_id: int, command: Command, now: datetime) -> Step | Refusal | None:
        """Apply an action; None when the case does not exist for this actor."""
        for _ in range(5):
            try:
                return self._act_once(actor, case_id, command, now)
            except StaleDataError:  # the consumer changed the case meanwhile: decide again
                continue
        return Refusal("busy_try_again")

    def _act_once(self, actor: Actor, case_id: int, command: Command, now: datetime) -> Step | Refusal | None:
        with self.session() as s:
            row = s.get(db.Case, case_id)
            if row is None or not access.can_see(actor, district=row.district, enterprise=row.enterprise):
                return None
            why = access.refusal(actor, command.action, district=row.district, enterprise=row.enterprise)
            if why:
                return Refusal(why)
            if command.action is machine.Action.ASSIGN and command.assignee:
                assignee = s.scalar(select(db.User).where(db.User.username == command.assignee, db.User.active))
                if assignee is None:
                    return Refusal("unknown_assignee")
                why = access.can_assign_to(actor, actor_of(assignee), district=row.district)
                if why:
                    return Refusal(why)
            result = machine.apply(to_domain(row), replace(command, actor=actor.username), self.policy, now)
            if isinstance(result, Refusal):
                return result
            _write(row, result.case, now)
            _history(s, row.id, result.entry)
            return result
