"""What the console reads: the case list (filtered to what the user may see), a case with its
alerts, events and history, the users an officer may assign to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from rules.cases import access, machine
from rules.cases.access import Actor
from rules.cases.policy import CasePolicy

from . import db
from .store import actor_of, to_domain

PAGE_SIZE = 50
_Q = TypeVar("_Q", bound="Select[*tuple[Any, ...]]")


class Sort(StrEnum):
    NEWEST = "newest"
    OLDEST = "oldest"
    DEADLINE = "deadline"
    SEVERITY = "severity"
    LAST_SEEN = "last_seen"


@dataclass(frozen=True)
class CaseFilter:
    district: str | None = None
    industry: str | None = None
    kind: str | None = None
    state: str | None = None
    enterprise: str | None = None
    stack: str | None = None
    overdue: bool = False
    sort: Sort = Sort.NEWEST
    page: int = 1


@dataclass(frozen=True)
class CasePage:
    rows: list[db.Case]
    total: int
    page: int
    pages: int


@dataclass(frozen=True)
class CaseDetail:
    case: db.Case
    domain: machine.Case
    alerts: list[db.Alert]
    events: list[db.AlertEventRow]
    history: list[db.CaseHistory]
    verification: machine.Verification
    #: the manual actions this user may take now
    actions: frozenset[machine.Action]
    assignees: list[db.User] = field(default_factory=list)


def visible(query: _Q, actor: Actor) -> _Q:
    scope = access.scope(actor)
    if scope.districts is not None:
        query = query.where(db.Case.district.in_(sorted(scope.districts)))
    if scope.enterprise is not None:
        query = query.where(db.Case.enterprise == scope.enterprise)
    return query


def _filtered(actor: Actor, f: CaseFilter, now: datetime) -> Select[Any]:
    query = visible(select(db.Case), actor)
    for column, value in (
        (db.Case.district, f.district),
        (db.Case.industry, f.industry),
        (db.Case.kind, f.kind),
        (db.Case.state, f.state),
        (db.Case.enterprise, f.enterprise),
        (db.Case.stack, f.stack),
    ):
        if value:
            query = query.where(column == value)
    if f.overdue:
        query = query.where(and_(db.Case.state == machine.CaseState.RECTIFYING.value, db.Case.deadline < now))
    return query


_ORDER = {
    Sort.NEWEST: (db.Case.opened_at.desc(), db.Case.id.desc()),
    Sort.OLDEST: (db.Case.opened_at.asc(), db.Case.id.asc()),
    Sort.DEADLINE: (db.Case.deadline.is_(None), db.Case.deadline.asc(), db.Case.id.asc()),
    Sort.LAST_SEEN: (db.Case.last_occurrence_at.desc(), db.Case.id.desc()),
}


def list_cases(s: Session, actor: Actor, f: CaseFilter, now: datetime) -> CasePage:
    query = _filtered(actor, f, now)
    total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, f.page), pages)
    if f.sort is Sort.SEVERITY:
        order: tuple[Any, ...] = (
            (db.Case.severity == "critical").desc(),
            (db.Case.severity == "warning").desc(),
            db.Case.opened_at.desc(),
            db.Case.id.desc(),
        )
    else:
        order = _ORDER[f.sort]
    rows = list(s.scalars(query.order_by(*order).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)))
    return CasePage(rows=rows, total=total, page=page, pages=pages)


def facets(s: Session, actor: Actor) -> dict[str, list[str]]:
    """The values the list's filters offer, within what the user may see."""
    out: dict[str, list[str]] = {}
    for name, column in (
        ("district", db.Case.district),
        ("industry", db.Case.industry),
        ("kind", db.Case.kind),
    ):
        out[name] = list(s.scalars(visible(select(column).distinct(), actor).order_by(column)))
    return out


def case_detail(s: Session, actor: Actor, case_id: int, policy: CasePolicy, now: datetime) -> CaseDetail | None:
    row = s.get(db.Case, case_id)
    if row is None or not access.can_see(actor, district=row.district, enterprise=row.enterprise):
        return None
    domain = to_domain(row)
    alerts = list(s.scalars(select(db.Alert).where(db.Alert.case_id == case_id).order_by(db.Alert.start)))
    events = list(
        s.scalars(
            select(db.AlertEventRow)
            .where(db.AlertEventRow.alert_id.in_([a.alert_id for a in alerts]))
            .order_by(db.AlertEventRow.at, db.AlertEventRow.id)
        )
    )
    history = list(
        s.scalars(select(db.CaseHistory).where(db.CaseHistory.case_id == case_id).order_by(db.CaseHistory.id))
    )
    allowed = frozenset(
        a
        for a in machine.available(domain.state)
        if access.refusal(actor, a, district=row.district, enterprise=row.enterprise) is None
    )
    assignees: list[db.User] = []
    if machine.Action.ASSIGN in allowed:
        candidates = s.scalars(
            select(db.User)
            .where(db.User.active, or_(db.User.role == "officer", db.User.role == "supervisor"))
            .order_by(db.User.username)
        )
        assignees = [u for u in candidates if access.can_assign_to(actor, actor_of(u), district=row.district) is None]
    return CaseDetail(
        case=row,
        domain=domain,
        alerts=alerts,
        events=events,
        history=history,
        verification=machine.verification(domain, policy, now),
        actions=allowed,
        assignees=assignees,
    )
