"""The report of an emergency response: per enterprise, each measure required vs measured hour by
hour, its compliant, noncompliant and unverifiable hours, the reduction achieved per pollutant;
for the region, the reduction per pollutant against the plan's target. Pure.

It judges from stored hourly averages with the worker's own functions (``rules.emergency``:
``baseline``, ``judge_hour``): the caller passes the hourly averages of the covered stacks from
``start - baseline_days`` to the end (the baselines are worked out from the days before the
start). Unlike the worker, it judges every hour of the response, also those that closed before
the response reached a stack and those in which nothing arrived (unverifiable).

**Scope.** Every stack of ``profiles`` in a district the response covers. Measures come from
the stacks that hold it (measures at its level); the reductions, per enterprise and for the
region, cover every covered stack (an enterprise without measures still counts in the zone's
emissions; ``listed`` tells them apart).

**Reduction** of a pollutant on a stack: over its judged hours (``start + lead time`` to the
end) that have both an emission rate and a baseline (``baseline``, the same as the cut check),
``baseline_kg`` = the sum of the baselines x 1 h, ``measured_kg`` = the sum of the rates x 1 h,
``reduction_kg`` = their difference, ``reduction_pct`` = it as % of ``baseline_kg``; judged
hours lacking either count as ``missing_hours``. Pollutants: those of so2, nox, pm, nmhc the
stack has a limit for. The region sums the stacks; ``target_pct`` is the plan's
``targets_pct[level][pollutant]`` and ``target_met`` whether ``reduction_pct`` reaches it.

**CSV** (``report_rows``): one table, one row per line of the report, every row with the
columns ``ROW_COLUMNS`` (empty where they do not apply); ``section`` says which line it is:

- ``measure``: a measure's totals (``compliant_hours``, ``noncompliant_hours``,
  ``unverifiable_hours``, ``not_checked_hours``; ``requirement``: e.g. ``limit 60 %``);
- ``check``: one check of a measure in one hour (``hour_start``, ``check``, ``pollutant``,
  ``status``, ``required``, ``measured``, ``unit``, ``baseline``);
- ``reduction``: an enterprise's reduction of one pollutant (``hours``, ``missing_hours``,
  ``baseline_kg``, ``measured_kg``, ``reduction_kg``, ``reduction_pct``);
- ``region``: the region's, with ``target_pct`` and ``target_met``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.alerts import HourlyAverage
from contracts.emergency import Action, EmergencyResponse, Level
from contracts.registry import EmergencyPlan, Measure

from .aggregation import HOUR
from .alerts import ts
from .config import CUT_POLLUTANTS, RuleSettings, StackProfile
from .emergency import (
    Check,
    MeasureCheck,
    Status,
    as_judged,
    baseline,
    default_pollutants,
    epoch_s,
    first_judged_hour,
    history_pollutants,
    holds,
    hour_record,
    judge_hour,
)


@dataclass(frozen=True)
class MeasureHour:
    hour_start: datetime
    status: Status
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class MeasureReport:
    enterprise: str
    stack: str
    facility: str
    action: Action
    #: ``stop``, ``limit 60 %``, ``cut 20 % so2, nox``, ``self_directed``
    requirement: str
    hours: tuple[MeasureHour, ...]

    def count(self, status: Status) -> int:
        return sum(1 for h in self.hours if h.status is status)

    @property
    def compliant_hours(self) -> int:
        return self.count(Status.COMPLIANT)

    @property
    def noncompliant_hours(self) -> int:
        return self.count(Status.NONCOMPLIANT)

    @property
    def unverifiable_hours(self) -> int:
        return self.count(Status.UNVERIFIABLE)

    @property
    def not_checked_hours(self) -> int:
        return self.count(Status.NOT_CHECKED)


@dataclass(frozen=True)
class Reduction:
    """One pollutant's emissions over judged hours against their baselines."""

    pollutant: str
    #: judged hours with both an emission rate and a baseline, and those lacking either
    hours: int
    missing_hours: int
    baseline_kg: float
    measured_kg: float

    @property
    def reduction_kg(self) -> float:
        return self.baseline_kg - self.measured_kg

    @property
    def reduction_pct(self) -> float | None:
        return None if self.baseline_kg <= 0 else 100.0 * self.reduction_kg / self.baseline_kg

    def __add__(self, other: Reduction) -> Reduction:
        return Reduction(
            self.pollutant,
            self.hours + other.hours,
            self.missing_hours + other.missing_hours,
            self.baseline_kg + other.baseline_kg,
            self.measured_kg + other.measured_kg,
        )


@dataclass(frozen=True)
class RegionReduction:
    reduction: Reduction
    target_pct: float | None

    @property
    def target_met(self) -> bool | None:
        achieved = self.reduction.reduction_pct
        return None if achieved is None or self.target_pct is None else achieved >= self.target_pct


@dataclass(frozen=True)
class EnterpriseReport:
    enterprise: str
    #: the covered stacks of the enterprise
    stacks: tuple[str, ...]
    #: whether its reduction list has measures at the response's level
    listed: bool
    measures: tuple[MeasureReport, ...]
    reductions: tuple[Reduction, ...]


@dataclass(frozen=True)
class ResponseReport:
    response_id: str
    revision: int
    level: Level
    districts: tuple[str, ...]
    start: datetime
    end: datetime | None
    #: hours judged up to here (the end, or for a response still running the data's last hour)
    until: datetime
    baseline_days: int
    enterprises: tuple[EnterpriseReport, ...]
    region: tuple[RegionReduction, ...]


def _order(pollutants: Iterable[str]) -> list[str]:
    rank = {p: i for i, p in enumerate(CUT_POLLUTANTS)}
    return sorted(set(pollutants), key=lambda p: (rank.get(p, len(rank)), p))


def _requirement(measure: Measure, profile: StackProfile) -> str:
    if measure.action is Action.LIMIT:
        return f"limit {measure.limit_pct:g} %"
    if measure.action is Action.CUT:
        return f"cut {measure.cut_pct:g} % {', '.join(measure.pollutants or default_pollutants(profile))}"
    return measure.action.value


def _stack_report(
    profile: StackProfile,
    settings: RuleSettings,
    response: EmergencyResponse,
    hours: Mapping[int, Mapping[str, HourlyAverage]],
    plan: EmergencyPlan,
    horizon: int,
) -> tuple[list[MeasureReport], dict[str, Reduction]]:
    """One stack's measures (if it holds the response) and reductions over its judged hours."""
    start = epoch_s(response.start)
    holding = holds(profile, response)
    wanted = history_pollutants(profile) | set(default_pollutants(profile))
    hours = {h: as_judged(a, settings) for h, a in hours.items()}
    history = {h: hour_record(a, frozenset(wanted)) for h, a in hours.items() if h < start}
    judged: list[tuple[int, tuple[MeasureCheck, ...]]] = []
    totals = {p: Reduction(p, 0, 0, 0.0, 0.0) for p in default_pollutants(profile)}
    for hour in range(first_judged_hour(start, profile.lead_time_s), horizon - HOUR + 1, HOUR):
        averages = hours.get(hour, {})
        base = baseline(history, start, hour, plan.baseline_days, settings.emergency.min_baseline_days)
        if holding:
            judged.append((hour, judge_hour(profile, settings, response.level, averages, base)))
        for p, total in totals.items():
            avg = averages.get(p)
            rate, b = (None if avg is None else avg.emission_kg_h), base.get(p)
            totals[p] = total + (
                Reduction(p, 0, 1, 0.0, 0.0) if rate is None or b is None else Reduction(p, 1, 0, b, rate)
            )
    measures = [
        MeasureReport(
            profile.enterprise, profile.stack, measure.facility, measure.action, _requirement(measure, profile),
            tuple(MeasureHour(ts(h), mcs[k].status, mcs[k].checks) for h, mcs in judged),
        )
        for k, measure in enumerate(profile.reduction.get(response.level, ()) if holding else ())
    ]  # fmt: skip
    return measures, totals


def response_report(
    profiles: Mapping[str, StackProfile],
    settings: RuleSettings,
    response: EmergencyResponse,
    hourly: Iterable[HourlyAverage],
    *,
    until: datetime | None = None,
) -> ResponseReport:
    """The report of ``response`` (its latest revision) from the ``hourly`` averages of the stacks
    in ``profiles`` (from ``baseline_days`` before the start: the baselines, of emissions and of
    the flow of a stack that must stop, come from them as in the worker); ``until``: judge only the hours
    ending by then (default: the response's end; for a response still running, the end of the
    last hour in ``hourly``)."""
    covered = {s: p for s, p in profiles.items() if response.covers(p.district)}
    by_stack: dict[str, dict[int, dict[str, HourlyAverage]]] = {s: {} for s in covered}
    for avg in hourly:
        if avg.stack in by_stack:
            by_stack[avg.stack].setdefault(epoch_s(avg.hour_start), {})[avg.parameter] = avg
    start = epoch_s(response.start)
    end = None if response.end is None else epoch_s(response.end)
    if until is not None:
        horizon = epoch_s(until) if end is None else min(end, epoch_s(until))
    elif end is not None:
        horizon = end
    else:
        horizon = max((h + HOUR for hours in by_stack.values() for h in hours), default=start)
    plan = next(iter(profiles.values())).emergency_plan if profiles else EmergencyPlan()

    measures: dict[str, list[MeasureReport]] = {}
    reductions: dict[str, dict[str, Reduction]] = {}
    stacks: dict[str, list[str]] = {}
    listed: dict[str, bool] = {}
    for stack in sorted(covered):
        profile = covered[stack]
        ent = profile.enterprise
        stacks.setdefault(ent, []).append(stack)
        listed[ent] = listed.get(ent, False) or holds(profile, response)
        stack_measures, totals = _stack_report(profile, settings, response, by_stack[stack], plan, horizon)
        measures.setdefault(ent, []).extend(stack_measures)
        ent_red = reductions.setdefault(ent, {})
        for p, total in totals.items():
            ent_red[p] = ent_red[p] + total if p in ent_red else total

    enterprises = tuple(
        EnterpriseReport(
            enterprise=ent,
            stacks=tuple(stacks[ent]),
            listed=listed[ent],
            measures=tuple(measures.get(ent, ())),
            reductions=tuple(reductions[ent][p] for p in _order(reductions[ent])),
        )
        for ent in sorted(stacks)
    )
    targets = plan.targets_pct.get(response.level, {})
    region_totals: dict[str, Reduction] = {p: Reduction(p, 0, 0, 0.0, 0.0) for p in targets}
    for ent_red in reductions.values():
        for p, r in ent_red.items():
            region_totals[p] = region_totals[p] + r if p in region_totals else r
    region = tuple(RegionReduction(region_totals[p], targets.get(p)) for p in _order(region_totals))
    return ResponseReport(
        response_id=response.id,
        revision=response.revision,
        level=response.level,
        districts=response.districts,
        start=response.start,
        end=response.end,
        until=ts(horizon),
        baseline_days=plan.baseline_days,
        enterprises=enterprises,
        region=region,
    )


#: the CSV columns of ``report_rows``, in order (stable: consumers read them by name)
ROW_COLUMNS = (
    "section",
    "response_id",
    "level",
    "enterprise",
    "stack",
    "facility",
    "action",
    "requirement",
    "hour_start",
    "check",
    "pollutant",
    "status",
    "required",
    "measured",
    "unit",
    "baseline",
    "compliant_hours",
    "noncompliant_hours",
    "unverifiable_hours",
    "not_checked_hours",
    "hours",
    "missing_hours",
    "baseline_kg",
    "measured_kg",
    "reduction_kg",
    "reduction_pct",
    "target_pct",
    "target_met",
)


def _num(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _reduction_columns(r: Reduction) -> dict[str, Any]:
    return {
        "pollutant": r.pollutant,
        "hours": r.hours,
        "missing_hours": r.missing_hours,
        "baseline_kg": _num(r.baseline_kg),
        "measured_kg": _num(r.measured_kg),
        "reduction_kg": _num(r.reduction_kg),
        "reduction_pct": None if r.reduction_pct is None else round(r.reduction_pct, 2),
    }


def report_rows(report: ResponseReport) -> list[dict[str, Any]]:
    """The report as rows for a CSV (every row has every column of ``ROW_COLUMNS``; ``None`` where
    one does not apply; times in ISO 8601 UTC)."""
    blank = dict.fromkeys(ROW_COLUMNS)
    head = {"response_id": report.response_id, "level": report.level.value}
    rows: list[dict[str, Any]] = []
    for ent in report.enterprises:
        for m in ent.measures:
            where = {**head, "enterprise": ent.enterprise, "stack": m.stack, "facility": m.facility,
                     "action": m.action.value, "requirement": m.requirement}  # fmt: skip
            rows.append({
                **blank, **where, "section": "measure", "compliant_hours": m.compliant_hours,
                "noncompliant_hours": m.noncompliant_hours, "unverifiable_hours": m.unverifiable_hours,
                "not_checked_hours": m.not_checked_hours,
            })  # fmt: skip
            for h in m.hours:
                for c in h.checks:
                    rows.append({
                        **blank, **where, "section": "check", "hour_start": h.hour_start.isoformat(),
                        "check": c.check, "pollutant": c.pollutant, "status": c.status.value,
                        "required": _num(c.required), "measured": _num(c.measured), "unit": c.unit,
                        "baseline": _num(c.baseline),
                    })  # fmt: skip
        for r in ent.reductions:
            rows.append(
                {**blank, **head, "section": "reduction", "enterprise": ent.enterprise, **_reduction_columns(r)}
            )
    for reg in report.region:
        rows.append({
            **blank, **head, "section": "region", **_reduction_columns(reg.reduction),
            "target_pct": reg.target_pct, "target_met": reg.target_met,
        })  # fmt: skip
    return rows
