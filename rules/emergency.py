"""Heavy-pollution emergency response (重污染天气应急), checked from data. Pure.

**Holding a response.** A declared response (``contracts.emergency.EmergencyResponse``) reaches
every stack (``on_response``). A stack holds it when the response covers its district and its
enterprise's reduction list has measures at the response's level for facilities on this stack
(``StackProfile.reduction``). A later revision of the same id (higher ``revision``) replaces
the held one (an earlier end, a later one); an older or equal revision changes nothing; a
revision that no longer concerns the stack releases it. Held responses live in
``StackState.emergency.responses``.

**History.** Every closed hour (``on_hour_closed``), response or not, records the hour's
emission rate (kg/h, ``HourlyAverage.emission_kg_h``: the mean concentration times the standard
dry flow) of the pollutants the stack's cut measures judge, and its mean flow where a stop
measure must stop the whole stack (``history_pollutants``; nothing on a stack without such
measures: only they need baselines, and the stored state stays small) in
``emergency.emission_history``. It keeps ``EmergencySettings.history_days`` days (at least
the plan's ``baseline_days``), longer while a held response that has not ended needs its
baseline hours.

**Judged hours.** Hour ``h`` of response ``r`` is judged when ``h >= start + lead_time``
(rounded up to the hour; the enterprise's ``lead_time_h``) and ``h + 1 h <= end`` (no end: open),
once: ``ResponseHeld.judged_until`` keeps revisions from judging an hour twice. The worker
judges hours as they close after the response reached the stack: an hour closed before is not
judged (the report, ``rules.emergency_report``, judges every hour of the response from the
stored hourly averages); an hour in which nothing reached the stack never closes (its silence
is a ``data_gap``). When several held responses are in force in one hour, the one with the
highest level judges it (then the later start, then the id).

**Baseline** of a pollutant for hour ``h`` (``baseline``): the mean emission rate of the hours
``h - k x 24 h`` that fall in ``[start - baseline_days x 24 h, start)``: the same clock hour on each
of the plan's ``baseline_days`` days before the start. It needs ``min_baseline_days`` of them,
else that pollutant cannot be judged (unverifiable, not an alert).

**Checks** (``judge_measure``), per measure, each compliant, noncompliant or unverifiable:

- ``stop``: ``power_stopped``: the facility's hourly mean power under its ``running_kw``; when
  every production facility on the stack must stop at this level, also ``stack_stopped``: the
  stack's hourly mean flow under ``running_flow_ratio`` x its flow baseline: the mean hourly flow
  of the same baseline hours as the emissions (so the worker and the report, which has only the
  stored hourly averages, judge alike);
- ``limit``: ``power_limit``: the hourly mean power at most ``limit_pct`` % of ``normal_kw``;
- ``cut``: ``emission_cut`` per pollutant (the measure's ``pollutants``, default: those of
  so2, nox, pm, nmhc the stack has a limit for): the hour's emission rate at most
  baseline x (1 - ``cut_pct``/100);
- ``self_directed``: nothing checked (A-level enterprises choose their own measures).

Missing data (no valid hourly power, flow or emission rate, no baseline) makes that check
unverifiable, never a breach. A measure is noncompliant when any check is, compliant when
every check is, unverifiable otherwise.

**Alert.** A noncompliant hour raises ``emergency_noncompliance`` (critical), parameter = the
facility id, ``start`` = the first noncompliant hour; each later noncompliant hour updates it
with that hour's evidence (``EmergencyNoncomplianceEvidence``). It resolves at the next
compliant judged hour (``end`` = that hour's start), or when its response ends (``end`` = the
response's end) or no longer concerns the stack. Unverifiable hours change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from contracts.alerts import AlertEvent, AlertKind, HourlyAverage, Severity
from contracts.emergency import Action, EmergencyResponse, Level
from contracts.reading import DataFlag
from contracts.registry import FacilityRole, Measure

from .aggregation import HOUR
from .alerts import activate, deactivate, ts
from .config import CUT_POLLUTANTS, FacilityProfile, RuleSettings, StackProfile
from .state import EmergencyState, ResponseHeld, StackState

DAY = 24 * HOUR
#: the hourly mean flow kept beside the emission rates, for the baseline of a stack that must stop
FLOW = "flow"
STOPPED = DataFlag.STOPPED.value
_KIND = AlertKind.EMERGENCY_NONCOMPLIANCE
_LEVEL_RANK = {level: rank for rank, level in enumerate(Level)}


class Status(StrEnum):
    """The outcome of a check, or of a measure in one hour."""

    COMPLIANT = "compliant"
    NONCOMPLIANT = "noncompliant"
    UNVERIFIABLE = "unverifiable"  # data or baseline missing
    NOT_CHECKED = "not_checked"  # self-directed measures


@dataclass(frozen=True, slots=True)
class Check:
    """One requirement of a measure in one hour: required vs measured."""

    #: ``power_stopped``, ``stack_stopped``, ``power_limit``, ``emission_cut``
    check: str
    status: Status
    unit: str
    #: the bound: power_stopped and stack_stopped must stay under it, the others at or under it
    required: float | None
    measured: float | None
    pollutant: str | None = None
    #: what the bound was worked out from (emission_cut: kg/h; power_limit: normal kW; stack_stopped: m3/s)
    baseline: float | None = None
    #: why it is unverifiable
    missing: str | None = None

    def breach(self) -> dict[str, Any]:
        """As an ``EmergencyBreach`` (contracts/evidence.py) in the alert's evidence."""
        assert self.required is not None and self.measured is not None
        return {
            "check": self.check,
            "pollutant": self.pollutant,
            "required": _round(self.required),
            "measured": _round(self.measured),
            "unit": self.unit,
            "baseline": None if self.baseline is None else _round(self.baseline),
        }


@dataclass(frozen=True, slots=True)
class MeasureCheck:
    """One measure judged in one hour."""

    facility: str
    action: Action
    checks: tuple[Check, ...]

    @property
    def status(self) -> Status:
        if self.action is Action.SELF_DIRECTED:
            return Status.NOT_CHECKED
        statuses = {c.status for c in self.checks}
        if Status.NONCOMPLIANT in statuses:
            return Status.NONCOMPLIANT
        return Status.COMPLIANT if statuses == {Status.COMPLIANT} else Status.UNVERIFIABLE

    @property
    def breaches(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status is Status.NONCOMPLIANT)


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def epoch_s(t: datetime) -> int:
    return int(t.timestamp())


# -- which hours, against which baseline ----------------------------------------------------------
def first_judged_hour(start: int, lead_time_s: int) -> int:
    """The first hour judged: ``start + lead_time_s`` rounded up to the hour."""
    return -(-(start + lead_time_s) // HOUR) * HOUR


def is_judged(hour: int, start: int, end: int | None, lead_time_s: int) -> bool:
    return hour >= first_judged_hour(start, lead_time_s) and (end is None or hour + HOUR <= end)


def baseline_hours(start: int, hour: int, days: int) -> list[int]:
    """The hours ``hour - k x 24 h`` in ``[start - days x 24 h, start)``, latest first (``start``
    taken at its hour: an hour the response began in is not part of its baseline)."""
    start -= start % HOUR
    first_k = max(1, (hour - start) // DAY + 1)  # the smallest k with hour - k x 24 h < start
    return [h for k in range(first_k, first_k + days) if (h := hour - k * DAY) >= start - days * DAY and h < start]


def baseline(
    history: Mapping[int, Mapping[str, float]], start: int, hour: int, days: int, min_days: int
) -> dict[str, float]:
    """Per pollutant, the mean emission rate (kg/h) of the same clock hour on the ``days`` days
    before ``start``, when at least ``min_days`` of them have one."""
    values: dict[str, list[float]] = {}
    for h in baseline_hours(start, hour, days):
        for pollutant, rate in history.get(h, {}).items():
            values.setdefault(pollutant, []).append(rate)
    return {p: sum(v) / len(v) for p, v in values.items() if len(v) >= min_days}


def emission_rates(averages: Mapping[str, HourlyAverage]) -> dict[str, float]:
    """The hour's emission rate (kg/h) of each pollutant that has one."""
    return {name: a.emission_kg_h for name, a in averages.items() if a.emission_kg_h is not None}


def default_pollutants(profile: StackProfile) -> tuple[str, ...]:
    """Those of so2, nox, pm, nmhc the stack has a limit for (a cut's pollutants when it names none,
    and the pollutants the response report sums)."""
    return tuple(p for p in CUT_POLLUTANTS if p in profile.limits_mg_m3)


def cut_pollutants(profile: StackProfile, measure: Measure) -> tuple[str, ...]:
    return tuple(measure.pollutants) or default_pollutants(profile)


def history_pollutants(profile: StackProfile) -> frozenset[str]:
    """What the stack keeps of each hour for baselines: the emission rates of its cut measures'
    pollutants, and ``flow`` when a stop measure stops the whole stack (limit measures need no
    baseline, and a stack without measures holds no response)."""
    cut = {
        p for measures in profile.reduction.values() for m in measures if m.action is Action.CUT
        for p in cut_pollutants(profile, m)
    }  # fmt: skip
    if any(stack_must_stop(profile, level) for level in profile.reduction):
        cut.add(FLOW)
    return frozenset(cut)


def hour_record(averages: Mapping[str, HourlyAverage], wanted: frozenset[str]) -> dict[str, float]:
    """What an hour leaves for later baselines (``history_pollutants``): emission rates (kg/h)
    and the mean flow (m3/s) under ``FLOW``."""
    record = {p: r for p, r in emission_rates(averages).items() if p in wanted}
    flow = _mean(averages, FLOW) if FLOW in wanted else None
    if flow is not None:
        record[FLOW] = flow
    return record


def stack_must_stop(profile: StackProfile, level: Level) -> bool:
    """Every production facility on the stack must stop at ``level``: the stack must emit nothing."""
    producers = [f.id for f in profile.facilities if f.role is FacilityRole.PRODUCTION]
    stops = {m.facility for m in profile.reduction.get(level, ()) if m.action is Action.STOP}
    return bool(producers) and all(f in stops for f in producers)


# -- the judgement ------------------------------------------------------------------------------
def _mean(averages: Mapping[str, HourlyAverage], name: str) -> float | None:
    avg = averages.get(name)
    return None if avg is None else avg.mean


def _under(check: str, unit: str, required: float | None, measured: float | None, *, strict: bool,
           baseline: float | None = None, pollutant: str | None = None, missing: str) -> Check:  # fmt: skip
    if required is None or measured is None:
        status = Status.UNVERIFIABLE
    else:
        ok = measured < required if strict else measured <= required
        status = Status.COMPLIANT if ok else Status.NONCOMPLIANT
        missing = ""
    return Check(check, status, unit, required, measured, pollutant, baseline, missing or None)


def judge_measure(
    facility: FacilityProfile,
    measure: Measure,
    profile: StackProfile,
    settings: RuleSettings,
    averages: Mapping[str, HourlyAverage],
    baseline: Mapping[str, float],
    *,
    stack_stops: bool = False,
) -> MeasureCheck:
    """``measure`` (of ``facility``, on ``profile``'s stack) in one hour of ``averages``, against
    the hour's ``baseline``: emission rates (kg/h) and, under ``FLOW``, the mean flow (m3/s) of the
    baseline hours; ``stack_stops``: every producer on the stack must stop (``stack_must_stop``)."""
    checks: list[Check] = []
    power = _mean(averages, facility.key)
    no_power = f"no valid hourly power of {facility.id}"
    if measure.action is Action.STOP:
        checks.append(_under("power_stopped", "kW", facility.running_kw, power, strict=True, missing=no_power))
        if stack_stops:
            flow, flow_baseline = _mean(averages, FLOW), baseline.get(FLOW)
            bound = None if flow_baseline is None else settings.running_flow_ratio * flow_baseline
            missing = "no valid hourly flow" if flow is None else "no flow in the baseline hours"
            checks.append(_under("stack_stopped", "m3/s", bound, flow, strict=True, baseline=flow_baseline,
                                 missing=missing))  # fmt: skip
    elif measure.action is Action.LIMIT:
        assert measure.limit_pct is not None
        allowed = measure.limit_pct / 100.0 * facility.normal_kw
        checks.append(_under("power_limit", "kW", allowed, power, strict=False, baseline=facility.normal_kw,
                             missing=no_power))  # fmt: skip
    elif measure.action is Action.CUT:
        assert measure.cut_pct is not None
        keep = 1.0 - measure.cut_pct / 100.0
        for pollutant in cut_pollutants(profile, measure):
            base = baseline.get(pollutant)
            avg = averages.get(pollutant)
            rate = None if avg is None else avg.emission_kg_h
            missing = f"no valid hourly emission rate of {pollutant}" if rate is None else f"no {pollutant} baseline"
            checks.append(_under("emission_cut", "kg/h", None if base is None else base * keep, rate, strict=False,
                                 baseline=base, pollutant=pollutant, missing=missing))  # fmt: skip
    return MeasureCheck(facility.id, measure.action, tuple(checks))


def judge_hour(
    profile: StackProfile,
    settings: RuleSettings,
    level: Level,
    averages: Mapping[str, HourlyAverage],
    baseline: Mapping[str, float],
) -> tuple[MeasureCheck, ...]:
    """Every measure of the stack's facilities at ``level`` in one hour, in reduction-list order
    (a facility the profile does not know, which ``rules.config`` never produces: no checks)."""
    stops = stack_must_stop(profile, level)
    out = []
    for measure in profile.reduction.get(level, ()):
        facility = profile.facility(measure.facility)
        if facility is None:
            out.append(MeasureCheck(measure.facility, measure.action, ()))
        else:
            out.append(judge_measure(facility, measure, profile, settings, averages, baseline, stack_stops=stops))
    return tuple(out)


# -- the stack's state ----------------------------------------------------------------------------
def holds(profile: StackProfile, response: EmergencyResponse) -> bool:
    """Whether the stack holds ``response``: it covers its district, and there are measures at its level."""
    return response.covers(profile.district) and bool(profile.reduction.get(response.level))


def on_response(
    state: StackState, profile: StackProfile, settings: RuleSettings, response: EmergencyResponse
) -> list[AlertEvent]:
    responses = state.emergency.responses
    held = responses.get(response.id)
    if held is not None and response.revision <= held.revision:
        return []  # this revision or a later one is held already
    if not holds(profile, response):
        if held is None:
            return []
        del responses[response.id]  # a revision that no longer concerns the stack
        return _resolve(state, profile, response.id, at=state.hours_closed_until, end=None)
    start = epoch_s(response.start)
    end = None if response.end is None else epoch_s(response.end)
    if held is None:
        responses[response.id] = ResponseHeld(response.id, response.level.value, start, end, response.revision)
        return []
    held.level, held.start, held.end, held.revision = response.level.value, start, end, response.revision
    closed = state.hours_closed_until
    if end is not None and closed is not None and end <= closed:
        return _resolve(state, profile, response.id, at=closed, end=end)  # ended in hours already closed
    return []


def as_judged(averages: Mapping[str, HourlyAverage], settings: RuleSettings) -> Mapping[str, HourlyAverage]:
    """The hour as the checks see it: a stack whose flow was flagged stopped (F) for at least
    ``min_valid_minutes`` of the hour (the unit is down, its analysers say so) emits nothing:
    flow 0 and emission rates 0, instead of an hour without valid data (unverifiable)."""
    flow = averages.get(FLOW)
    if flow is None or flow.mean is not None or flow.flag_minutes.get(STOPPED, 0) < settings.min_valid_minutes:
        return averages
    out = dict(averages)
    for name, avg in averages.items():
        if name == FLOW:
            out[name] = avg.model_copy(update={"mean": 0.0})
        elif avg.limit is not None:  # a pollutant whose emission rate is computed
            out[name] = avg.model_copy(update={"emission_kg_h": 0.0})
    return out


def on_hour_closed(
    state: StackState, profile: StackProfile, settings: RuleSettings, hour: int, averages: dict[str, HourlyAverage]
) -> list[AlertEvent]:
    em = state.emergency
    wanted = history_pollutants(profile)
    if wanted or em.responses:
        averages = dict(as_judged(averages, settings))
    if wanted:
        kept = hour_record(averages, wanted)
        if kept:
            em.emission_history[hour] = kept
    events = _judge(state, profile, settings, hour, averages) if em.responses else []
    if em.responses or em.emission_history:
        _prune(em, profile, settings, hour)
    return events


def _judge(
    state: StackState, profile: StackProfile, settings: RuleSettings, hour: int, averages: dict[str, HourlyAverage]
) -> list[AlertEvent]:
    em = state.emergency
    at = hour + HOUR
    due = [
        r for r in em.responses.values()
        if (r.judged_until is None or hour >= r.judged_until) and is_judged(hour, r.start, r.end, profile.lead_time_s)
    ]  # fmt: skip
    events: list[AlertEvent] = []
    for r in due:
        r.judged_until = at
    if due:
        r = max(due, key=lambda r: (_LEVEL_RANK[Level(r.level)], r.start, r.id))
        plan_days, min_days = profile.emergency_plan.baseline_days, settings.emergency.min_baseline_days
        base = baseline(em.emission_history, r.start, hour, plan_days, min_days)
        for mc in judge_hour(profile, settings, Level(r.level), averages, base):
            status = mc.status
            if status is Status.NONCOMPLIANT:
                n = r.noncompliant_hours[mc.facility] = r.noncompliant_hours.get(mc.facility, 0) + 1
                events += activate(
                    state, profile, _KIND, mc.facility, at=at, start=hour, severity=Severity.CRITICAL,
                    reason=_reason(r, mc, hour), evidence=_evidence(r, mc, hour, n), update_every_s=0,
                )  # fmt: skip
            elif status is Status.COMPLIANT:
                events += deactivate(state, profile, _KIND, mc.facility, at=at, end=hour)
    for held in em.responses.values():
        if held.end is not None and held.end <= at:
            events += _resolve(state, profile, held.id, at=at, end=held.end)
    return events


def _resolve(
    state: StackState, profile: StackProfile, response_id: str, at: int | None, end: int | None
) -> list[AlertEvent]:
    """Resolve the non-compliance alerts ``response_id`` opened: it ended (at ``end``) or no longer applies."""
    events: list[AlertEvent] = []
    if at is None:
        return events
    for (kind, facility), alert in list(state.alerts.items()):
        if kind == _KIND.value and alert.evidence.get("response_id") == response_id:
            stop = alert.last_active if end is None else max(end, alert.start)
            events += deactivate(state, profile, _KIND, facility, at=max(at, alert.last_active), end=stop)
    return events


def _prune(em: EmergencyState, profile: StackProfile, settings: RuleSettings, hour: int) -> None:
    """Keep ``history_days`` (at least the plan's baseline days) of history, and the baseline hours
    of responses not ended yet; forget responses that ended that long ago."""
    plan_days = profile.emergency_plan.baseline_days
    keep = max(settings.emergency.history_days, plan_days) * DAY
    now = hour + HOUR
    keep_from = now - keep
    for r in list(em.responses.values()):
        if r.end is not None and r.end + keep <= now:
            del em.responses[r.id]
        elif r.end is None or r.end > now:
            keep_from = min(keep_from, r.start - plan_days * DAY)
    history = em.emission_history
    if history and min(history) < keep_from:
        for h in [h for h in history if h < keep_from]:
            del history[h]


# -- the alert ------------------------------------------------------------------------------------
_TEXT = {
    "power_stopped": "{facility} draws {measured:.4g} kW, stopped means under {required:.4g} kW",
    "stack_stopped": "the stack's flow is {measured:.4g} m3/s, stopped means under {required:.4g} m3/s",
    "power_limit": "{facility} draws {measured:.4g} kW, limited to {required:.4g} kW",
    "emission_cut": "{pollutant} {measured:.4g} kg/h, cut to {required:.4g} kg/h (baseline {baseline:.4g})",
}


def _reason(r: ResponseHeld, mc: MeasureCheck, hour: int) -> str:
    what = "; ".join(
        _TEXT[c.check].format(facility=mc.facility, measured=c.measured, required=c.required,
                              pollutant=c.pollutant, baseline=c.baseline)
        for c in mc.breaches
    )  # fmt: skip
    when = f"{ts(hour):%Y-%m-%d %H:%M}Z"
    return f"{r.level} response {r.id}: {mc.action.value} measure of {mc.facility} not met in the hour {when}: {what}"


def _evidence(r: ResponseHeld, mc: MeasureCheck, hour: int, noncompliant_hours: int) -> dict[str, Any]:
    return {
        "response_id": r.id,
        "level": r.level,
        "facility": mc.facility,
        "action": mc.action.value,
        "hour_start": ts(hour).isoformat(),
        "breaches": [c.breach() for c in mc.breaches],
        "noncompliant_hours": noncompliant_hours,
    }
