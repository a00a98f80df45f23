"""The monthly report per district and enterprise: cases opened and closed in the month, cases
overdue at its end, mean days to close, recurrences; as rows for the page, CSV and XLSX.

Months are Beijing-time calendar months. "Overdue" counts cases still rectifying past their
deadline at the month's end (or now, for the current month). Recurrences count the times a
condition came back while a case was being verified, and manual reopens, in the month.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from rules.cases import machine
from rules.cases.access import Actor

from . import db
from .queries import visible

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

COLUMNS = [
    ("district", "District"),
    ("enterprise", "Enterprise id"),
    ("enterprise_name", "Enterprise"),
    ("opened", "Opened"),
    ("closed", "Closed"),
    ("verified", "Closed as verified"),
    ("overdue", "Overdue at month end"),
    ("mean_days_to_close", "Mean days to close"),
    ("recurrences", "Recurrences"),
]


@dataclass
class ReportRow:
    district: str
    enterprise: str
    enterprise_name: str
    opened: int = 0
    closed: int = 0
    verified: int = 0
    overdue: int = 0
    mean_days_to_close: float | None = None
    recurrences: int = 0


def parse_month(text: str) -> datetime | None:
    try:
        first = datetime.strptime(text, "%Y-%m")
    except ValueError:
        return None
    return first.replace(tzinfo=BEIJING)


def month_of(now: datetime) -> datetime:
    local = now.astimezone(BEIJING)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(first: datetime) -> datetime:
    return (first + timedelta(days=32)).replace(day=1)


def monthly(s: Session, actor: Actor, first: datetime, now: datetime) -> list[ReportRow]:
    """The report for the month starting at ``first`` (Beijing midnight), over the cases the
    user may see; one row per district and enterprise with any activity, and a total row."""
    start, end = first.astimezone(UTC), _next_month(first).astimezone(UTC)
    cut = min(end, now)
    cases = s.scalars(
        visible(select(db.Case), actor).where(
            or_(
                and_(db.Case.opened_at >= start, db.Case.opened_at < end),
                and_(db.Case.closed_at >= start, db.Case.closed_at < end),
                and_(db.Case.state == machine.CaseState.RECTIFYING.value, db.Case.deadline < cut),
            )
        )
    ).all()
    recurring = s.execute(
        visible(select(db.Case.district, db.Case.enterprise, db.Case.enterprise_name), actor)
        .join(db.CaseHistory, db.CaseHistory.case_id == db.Case.id)
        .where(
            db.CaseHistory.action.in_([machine.Action.RECUR.value, machine.Action.REOPEN.value]),
            db.CaseHistory.at >= start,
            db.CaseHistory.at < end,
        )
    ).all()
    rows: dict[tuple[str, str], ReportRow] = {}
    days_to_close: dict[tuple[str, str], list[float]] = defaultdict(list)

    def row_for(district: str, enterprise: str, name: str) -> ReportRow:
        return rows.setdefault((district, enterprise), ReportRow(district, enterprise, name))

    for case in cases:
        row = row_for(case.district, case.enterprise, case.enterprise_name)
        if start <= case.opened_at < end:
            row.opened += 1
        if case.closed_at is not None and start <= case.closed_at < end:
            row.closed += 1
            row.verified += case.resolution == machine.Resolution.VERIFIED.value
            days_to_close[(case.district, case.enterprise)].append(
                (case.closed_at - case.opened_at).total_seconds() / 86400
            )
        if case.state == machine.CaseState.RECTIFYING.value and case.deadline is not None and case.deadline < cut:
            row.overdue += 1
    for district, enterprise, name in recurring:
        row_for(district, enterprise, name).recurrences += 1
    for key, days in days_to_close.items():
        rows[key].mean_days_to_close = round(sum(days) / len(days), 1)
    ordered = [rows[k] for k in sorted(rows)]
    all_days = [d for days in days_to_close.values() for d in days]
    total = ReportRow(
        "all",
        "",
        "total",
        opened=sum(r.opened for r in ordered),
        closed=sum(r.closed for r in ordered),
        verified=sum(r.verified for r in ordered),
        overdue=sum(r.overdue for r in ordered),
        mean_days_to_close=round(sum(all_days) / len(all_days), 1) if all_days else None,
        recurrences=sum(r.recurrences for r in ordered),
    )
    return [*ordered, total]


def _cells(row: ReportRow) -> list[object]:
    return [getattr(row, key) for key, _ in COLUMNS]


def to_csv(rows: list[ReportRow]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([title for _, title in COLUMNS])
    for row in rows:
        writer.writerow(["" if v is None else v for v in _cells(row)])
    return ("\ufeff" + out.getvalue()).encode()  # a BOM so spreadsheet programs read UTF-8 names


def to_xlsx(rows: list[ReportRow], month: str) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = f"cases {month}"
    sheet.append([title for _, title in COLUMNS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(_cells(row))
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
