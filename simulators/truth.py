"""A scenario's ground truth for facilities and emergency responses, and the comparison of
alert events with a ground truth. Pure.

The electricity and emergency parts of the ground truth are derived from the fault definitions
with the models' noise-free curves (``plant.Plant``, ``models.curve_load``), never by running
the rules. Where that cannot decide (a facility starting or stopping within a judged hour, a
level within ``MARGIN`` of a threshold, another fault changing the pollutant a cut is judged
on), ``UndecidableError`` names the place: change the scenario rather than guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from contracts.alerts import AlertEvent, AlertEventType
from contracts.emergency import Action
from contracts.registry import FacilityRole, Measure
from rules.config import CUT_POLLUTANTS, FacilityProfile, RuleSettings, StackProfile

from .models import (
    SHAPES,
    STOPPED_CONCENTRATION_SHARE,
    STOPPED_FLOW_SHARE,
    STOPPED_O2_PCT,
    curve_load,
    power_share,
    stack_load,
)
from .plant import Key, Plant

if TYPE_CHECKING:
    from .scenarios import Scenario

#: how far (share of normal, or of the baseline) a modelled value must be from a threshold for
#: the ground truth to call it: the noise of an hour's mean is far smaller
MARGIN = 0.03
#: pollutants a cut applies to when its measure names none (those of the stack with a limit)
HOUR = timedelta(hours=1)


class UndecidableError(ValueError):
    """The ground truth cannot be derived with confidence: the scenario must be changed."""


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


# -- electricity ----------------------------------------------------------------------------------


def _at_least(value: float, threshold: float, what: str) -> bool:
    """``value >= threshold``, clear by ``MARGIN`` of the threshold, or ``UndecidableError``."""
    if value >= threshold * (1 + MARGIN):
        return True
    if value < threshold * (1 - MARGIN):
        return False
    raise UndecidableError(f"{what}: {value:.4g} is too close to {threshold:.4g} to call")


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """``(first, length)`` of each run of True."""
    out: list[tuple[int, int]] = []
    begin: int | None = None
    for i, flag in enumerate([*flags, False]):
        if flag and begin is None:
            begin = i
        elif not flag and begin is not None:
            out.append((begin, i - begin))
            begin = None
    return out


def _producing(fac: FacilityProfile, level: float, what: str) -> bool:
    return _at_least(fac.normal_kw * power_share(fac, level), fac.running_kw, what)


def electricity_truth(
    scenario: Scenario, plant: Plant, start: datetime, settings: RuleSettings
) -> list[dict[str, Any]]:
    """The electricity alerts the facility faults cause: for each control facility a fault
    touches (itself, or what it treats), minute by minute, whether what it treats runs and
    whether it runs (at what share of its normal power):

    - treatment_off: a run of minutes with production running and the control off, at least
      ``treatment_off_minutes`` long; its start in [run start - 1 min, run start + that many];
    - control_late_start: production starting while the control is off, the control starting
      more than ``start_grace_minutes`` later; its start from production's start to the control's;
    - control_early_stop: the control stopping while production runs, production stopping
      more than ``stop_grace_minutes`` later with the control still off;
    - control_underpowered: a run of minutes with the control running under
      ``underpowered_ratio`` of its normal power while what it treats runs at normal load
      (``normal_load_ratio``), at least ``underpowered_minutes`` long.

    Each has the stack and, as parameter, the control facility."""
    es = settings.electricity
    alerts: list[dict[str, Any]] = []
    end = scenario.duration_min

    def at(minute: int) -> datetime:
        return start + timedelta(minutes=minute)

    def expect(kind: str, key: Key, lo: datetime, hi: datetime) -> None:
        alerts.append({"kind": kind, "stack": key[0], "parameter": key[1], "start": [lo.isoformat(), hi.isoformat()]})

    slack = timedelta(minutes=1)
    for key in sorted(plant.faulty_facilities):
        fac = plant.facilities[key]
        if fac.role is not FacilityRole.CONTROL:
            continue
        stack = key[0]
        shape = SHAPES[plant.profiles[stack].industry]
        treated = [plant.facilities[(stack, p)] for p in fac.treats if (stack, p) in plant.facilities]
        producing: list[bool] = []
        running: list[bool] = []
        weak: list[bool] = []
        for m in range(end):
            curve = curve_load(shape, start + timedelta(minutes=m, seconds=30))
            where = f"{scenario.name}: minute {m}, {fac.id}"
            levels = [plant.level((stack, p.id), m) for p in treated]
            producing.append(
                any(_producing(p, curve if lv is None else lv, where) for p, lv in zip(treated, levels, strict=True))
            )
            share = plant.share(key, m, curve)
            on = _at_least(share * fac.normal_kw, fac.running_kw, where)
            running.append(on)
            low = on and not _at_least(share, es.underpowered_ratio, f"{where} power share")
            weak.append(
                low
                and _at_least(plant.treated_level(stack, fac, m, curve), es.normal_load_ratio, f"{where} production")
            )
        for first, length in _runs([p and not r for p, r in zip(producing, running, strict=True)]):
            if length >= es.treatment_off_minutes:
                expect("treatment_off", key, at(first) - slack, at(first + es.treatment_off_minutes))
        for m in range(1, end):
            if producing[m] and not producing[m - 1] and not running[m]:
                started = next((k for k in range(m, end) if running[k]), end)
                if started - m > es.start_grace_minutes:
                    expect("control_late_start", key, at(m) - slack, at(started) + slack)
            if running[m - 1] and not running[m] and producing[m - 1]:
                after = next((k for k in range(m, end) if running[k] or not producing[k]), None)
                if after is not None and not running[after] and after - m > es.stop_grace_minutes:
                    expect("control_early_stop", key, at(m) - slack, at(after) + slack)
        for first, length in _runs(weak):
            if length >= es.underpowered_minutes:
                expect("control_underpowered", key, at(first) - slack, at(first + es.underpowered_minutes))
    return alerts


# -- emergency responses --------------------------------------------------------------------------


def _ceil_hour(t: datetime) -> datetime:
    floor = t.replace(minute=0, second=0, microsecond=0)
    return floor if floor == t else floor + HOUR


def emergency_truth(scenario: Scenario, plant: Plant, start: datetime, settings: RuleSettings) -> list[dict[str, Any]]:
    """The ``emergency_noncompliance`` alerts of each declared response: for every stack in its
    districts with measures at its level, the hours from its start plus the enterprise's lead
    time (rounded up to the hour) to its end (whole hours, within the run) in which a measure is
    not met by the modelled data:

    - stop: the facility draws power (runs) through the hour; stopped through it, it is met
      (its stack stopped with it: no other producer runs on it);
    - limit: its mean power over the hour above ``limit_pct`` % of its normal power;
    - cut: the stack's emission rate (concentration x flow) of a pollutant of the measure above
      ``(100 - cut_pct)`` % of its baseline: the mean of the same hour on each of the plan's
      ``baseline_days`` days before (those within the run; none judged with fewer than
      ``min_baseline_days``); decided both with raw and with converted concentrations;
    - self_directed: not checked.

    One alert per run of consecutive breached hours, its start in the first hour, its parameter
    the facility; ``hours`` lists the hours."""
    alerts: list[dict[str, Any]] = []
    run_end = start + timedelta(minutes=scenario.duration_min)
    for spec in scenario.declared:
        begin = start + timedelta(minutes=spec.from_min)
        finish = min(
            run_end, start + timedelta(minutes=spec.to_min if spec.to_min is not None else scenario.duration_min)
        )
        for stack, profile in sorted(plant.profiles.items()):
            if spec.districts and profile.district not in spec.districts:
                continue
            measures = profile.reduction.get(spec.level, ())
            hour = _ceil_hour(begin + timedelta(seconds=profile.lead_time_s))
            hours = []
            while hour + HOUR <= finish:
                hours.append(hour)
                hour += HOUR
            for measure in measures:
                if measure.action is Action.SELF_DIRECTED:
                    continue
                judge = _Judge(scenario, plant, start, settings, stack, profile, measure)
                breached = [h for h in hours if judge.breached(h)]
                for first, length in _runs([h in breached for h in hours]):
                    run = hours[first : first + length]
                    alerts.append(
                        {
                            "kind": "emergency_noncompliance", "stack": stack, "parameter": measure.facility,
                            "start": [run[0].isoformat(), (run[0] + HOUR).isoformat()],
                            "enterprise": profile.enterprise, "response": spec.id, "action": measure.action.value,
                            "hours": [h.isoformat() for h in run],
                        }
                    )  # fmt: skip
    return alerts


class _Judge:
    """One measure of one stack, hour by hour, on the modelled (noise-free) data."""

    def __init__(
        self,
        scenario: Scenario,
        plant: Plant,
        start: datetime,
        settings: RuleSettings,
        stack: str,
        profile: StackProfile,
        measure: Measure,
    ) -> None:
        self.scenario, self.plant, self.start, self.settings = scenario, plant, start, settings
        self.stack, self.profile, self.measure = stack, profile, measure
        self.shape = SHAPES[profile.industry]
        self.key = (stack, measure.facility)
        self.facility = plant.facilities[self.key]

    def _minutes(self, hour: datetime) -> range:
        first = int((hour - self.start).total_seconds() // 60)
        return range(first, first + 60)

    def _curve(self, minute: int) -> float:
        return curve_load(self.shape, self.start + timedelta(minutes=minute, seconds=30))

    def _level(self, key: Key, minute: int) -> float:
        level = self.plant.level(key, minute)
        return self._curve(minute) if level is None else level

    def breached(self, hour: datetime) -> bool:
        measure = self.measure
        where = f"{self.scenario.name}: {measure.action.value} of {measure.facility} in the hour {hour.isoformat()}"
        minutes = self._minutes(hour)
        if self.measure.action is Action.STOP:
            runs = [_producing(self.facility, self._level(self.key, m), where) for m in minutes]
            if all(runs):
                return True
            if any(runs):
                raise UndecidableError(f"{where}: the facility stops or starts within the hour")
            others = [p for p in self.plant.producers(self.stack) if p.id != self.facility.id]
            if any(_producing(p, self._level((self.stack, p.id), m), where) for p in others for m in minutes):
                raise UndecidableError(f"{where}: stopped, but its stack runs on for other producers")
            return False
        if self.measure.action is Action.LIMIT:
            shares = [power_share(self.facility, self._level(self.key, m)) for m in minutes]
            limit = (self.measure.limit_pct or 0) / 100
            mean = sum(shares) / len(shares)
            if abs(mean - limit) < MARGIN:
                raise UndecidableError(f"{where}: power at {mean:.1%} of normal, too close to the limit {limit:.0%}")
            return mean > limit
        if self.measure.action is Action.CUT:
            return self._cut_breached(hour, where)
        return False

    def _cut_breached(self, hour: datetime, where: str) -> bool:
        required = 1 - (self.measure.cut_pct or 0) / 100
        pollutants = self.measure.pollutants or [p for p in CUT_POLLUTANTS if p in self.profile.limits_mg_m3]
        days = self.profile.emergency_plan.baseline_days
        earlier = [hour - timedelta(days=d) for d in range(1, days + 1)]
        earlier = [h for h in earlier if h >= self.start]
        if len(earlier) < self.settings.emergency.min_baseline_days:
            return False  # no baseline to judge a cut against
        breached = False
        for pollutant in pollutants:
            verdicts = set()
            for converted in (False, True):
                now = self._emission(hour, pollutant, converted, where)
                base = sum(self._emission(h, pollutant, converted, where) for h in earlier) / len(earlier)
                ratio = now / base
                if abs(ratio - required) < MARGIN:
                    raise UndecidableError(
                        f"{where}: {pollutant} at {ratio:.1%} of its baseline, required {required:.0%}"
                    )
                verdicts.add(ratio > required)
            if len(verdicts) > 1:
                raise UndecidableError(f"{where}: {pollutant} meets the cut with raw and not converted values or back")
            breached = breached or verdicts.pop()
        return breached

    def _emission(self, hour: datetime, pollutant: str, converted: bool, where: str) -> float:
        """The stack's emission of ``pollutant`` over the hour, relative (flow and concentration
        as shares of their full-load values at the modelled level of the pollutant)."""
        p, shape = self.profile, self.shape
        total = 0.0
        for m in self._minutes(hour):
            o = self.scenario.overrides(self.stack, m)
            if (
                pollutant in o.level_share or pollutant in o.level_mg_m3 or pollutant in o.constant
                or o.bypass_fraction or (o.nh3_boost_mg_m3 and pollutant in ("nh3", "nox"))
            ):  # fmt: skip
                raise UndecidableError(f"{where}: another fault changes {pollutant} (minute {m})")
            load = stack_load(self._curve(m), self.plant.stack_production(self.stack, m))
            factor = o.emission_factor
            if load <= 0:
                flow = STOPPED_FLOW_SHARE
                concentration = factor * STOPPED_CONCENTRATION_SHARE
                if converted and pollutant in p.o2_converted:
                    concentration *= (21 - p.reference_o2_pct) / (21 - STOPPED_O2_PCT)
            else:
                flow = 0.3 + 0.7 * load
                concentration = factor
                if not converted and pollutant in p.o2_converted:
                    o2 = shape.o2_full_load + (1 - load) * shape.o2_per_unloaded
                    concentration *= (21 - o2) / (21 - p.reference_o2_pct)
            total += flow * concentration
        return total
