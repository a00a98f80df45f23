"""Fault scenarios in YAML, applied onto a fleet, each with the alerts it must cause.

A scenario lists faults; each names a stack or a facility, a time window (minutes from the
scenario start) and its parameters. ``Scenario.overrides(stack, minute)`` tells the stack model
what to change; ``silent``/``skew_s``/``duplicated``/``malformed`` say whether and how a reading
travels; faults on facilities (production and pollution control, each with its electricity
meter) are applied by ``plant.Plant``; ``ground_truth()`` lists the alerts and dead letters the
system should produce, with the window their start must fall in.

Fault types and what they cause:

| type | effect | expected |
| --- | --- | --- |
| exceedance | a parameter at ``level_share`` x limit (converted) | exceedance for each full hour |
| drift | a parameter ramps linearly to ``to_share`` x limit, crossing it mid-hour | exceedance (mean over) |
| ammonia_slip | SCR over-injection: NH3 + ``boost_mg_m3``, NOx down | NH3 exceedance |
| voc_exceedance | NMHC at ``level_mg_m3`` | NMHC exceedance |
| bypass | share ``fraction`` of flue gas round the treatment; with ``damper: true`` the damper reads open | bypass |
| silent | the device stops sending | data_gap (stack) |
| never_reports | the device never sends | data_gap (stack, never reported) |
| mark | a flag (C, M, D, ...) on a parameter | invalid_mark if longer than its cap |
| flatline | a parameter stuck at its value | flatline |
| hugging | a parameter held at ``share`` (0.85-1) of its limit | limit_hugging after a day |
| wrong_zs | converted values reported at ``share`` of the true ones | zs_mismatch |
| clock_skew | event times shifted by ``offset_s`` | future_timestamp dead letters beyond tolerance, so a data_gap |
| malformed | ``count`` broken packets (bad CRC, length, JSON) | dead letters |
| duplicates | every reading sent twice | duplicate dead letters |
| control_off | ``facility`` (control) off; the stack's data unchanged | treatment_off if production runs on (1) |
| late_start | down from ``down_from`` (default 0), production back at ``from``, control ``lag_min`` later | (2) |
| underpowered | ``facility`` (control) at ``power_share`` of its normal power | control_underpowered (3) |
| production_stop | ``facility`` (production) stopped; its stack too when no producer runs on it | none |
| production_limit | ``facility`` (production) at ``pct`` % of normal: power, flow, emissions down | none |
| paper_cut | the stack's device reports ``load`` at ``pct`` %; power and emissions unchanged | none |
| emission_cut | the stack's concentrations x ``factor``; power unchanged (better abatement) | none |

Facility faults name a production or control ``facility`` (and its ``stack`` only where the
id is not unique); their alerts have the control facility as parameter. (1) at least
``treatment_off_minutes`` of it. (2) control_late_start if the lag exceeds
``start_grace_minutes``, and treatment_off if it reaches ``treatment_off_minutes``. (3) while
what it treats runs at normal load (``normal_load_ratio``), at least ``underpowered_minutes``.
The last four are no faults to the electricity rules; during an emergency response they meet
(stop, limit, cut) or, for a paper cut, do not meet (a limit is judged from power) a measure.

Emergency responses: ``responses`` lists the declarations the run must make (``Scenario.responses``
gives them as ``EmergencyResponse``); the ground truth has, for each covered stack with measures
at the response's level, an ``emergency_noncompliance`` alert (parameter: the facility) for each
run of judged hours in which the modelled data does not meet the measure. Every hour judged is
derived from the fault definitions with the models' noise-free curves (``truth.py``), never by
running the rules; an hour too close to call (a fault changing within it, a level within a few
points of a threshold) is an error naming it.

``lead_in_days`` (a number, or ``baseline_days``: the registry's ``emergency_plan.baseline_days``)
puts that many days of normal running before the minutes the faults and responses count from,
for the baselines of the emergency checks; ``Scenario.resolved`` shifts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from contracts.emergency import EmergencyResponse, Level, ResponseId
from contracts.errors import config_error
from contracts.reading import DataFlag
from contracts.yamlfile import load_yaml_mapping
from rules.config import RuleSettings, StackProfile

from .models import Overrides
from .plant import FACILITY_FAULTS, Plant

SCENARIO_DIR = Path(__file__).with_name("scenarios")

FaultType = Literal[
    "exceedance", "drift", "ammonia_slip", "voc_exceedance", "bypass", "silent", "never_reports", "mark",
    "flatline", "hugging", "wrong_zs", "clock_skew", "malformed", "duplicates",
    "control_off", "late_start", "underpowered", "production_stop", "production_limit", "paper_cut", "emission_cut",
]  # fmt: skip
#: what each new fault type needs besides its window
_NEEDS: dict[str, tuple[str, ...]] = {
    "late_start": ("lag_min",),
    "underpowered": ("power_share",),
    "production_limit": ("pct",),
    "paper_cut": ("pct",),
    "emission_cut": ("factor",),
}


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FaultType
    #: the stack (stack faults); for a facility fault, optional: the stack the facility is on
    stack: str | None = None
    #: the facility (production or control) a facility fault acts on
    facility: str | None = None
    parameter: str | None = None
    #: window in minutes from the scenario start; ``to`` None = until the end
    from_min: int = Field(default=0, alias="from", ge=0)
    to_min: int | None = Field(default=None, alias="to")
    level_share: float | None = None
    to_share: float | None = None
    level_mg_m3: float | None = None
    boost_mg_m3: float = 3.0
    fraction: float = 0.6
    damper: bool = False
    flag: str | None = None
    share: float = 0.93
    offset_s: int = 0
    count: int = 3
    #: production_limit: production at this % of normal; paper_cut: the load % reported
    pct: float | None = Field(default=None, ge=0, le=150)
    #: emission_cut: concentrations times this
    factor: float | None = Field(default=None, ge=0, le=10)
    #: late_start: minutes from production starting (``from``) to the control starting
    lag_min: int = Field(default=0, ge=0)
    #: late_start: when the plant (what the control treats, and the control) went down
    down_from: int = Field(default=0, ge=0)
    #: underpowered: the control facility's power as a share of its normal
    power_share: float | None = Field(default=None, gt=0, lt=1)

    @model_validator(mode="after")
    def _fields_of_type(self) -> Fault:
        if self.type in FACILITY_FAULTS:
            if self.facility is None:
                raise ValueError(f"a {self.type} fault names its facility")
        elif self.stack is None:
            raise ValueError(f"a {self.type} fault names its stack")
        elif self.facility is not None:
            raise ValueError(f"a {self.type} fault acts on a stack, not a facility")
        for key in _NEEDS.get(self.type, ()):
            if key == "lag_min":
                if self.lag_min <= 0:
                    raise ValueError("a late_start fault needs lag_min > 0")
            elif getattr(self, key) is None:
                raise ValueError(f"a {self.type} fault needs {key}")
        if self.type == "late_start":
            if self.to_min is not None:
                raise ValueError("a late_start has no 'to': production starts at 'from' and runs on")
            if self.down_from >= self.from_min:
                raise ValueError(f"down_from {self.down_from} is not before 'from' {self.from_min}")
        return self

    def active(self, minute: int) -> bool:
        return self.from_min <= minute and (self.to_min is None or minute < self.to_min)

    def shifted(self, minutes: int) -> Fault:
        to = None if self.to_min is None else self.to_min + minutes
        down = self.down_from + minutes if self.type == "late_start" else self.down_from
        return self.model_copy(update={"from_min": self.from_min + minutes, "to_min": to, "down_from": down})


class ResponseSpec(BaseModel):
    """An emergency response the run declares (``Scenario.responses``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ResponseId
    level: Level
    #: the districts it covers (empty: the whole zone)
    districts: tuple[str, ...] = ()
    #: minutes from the scenario start; ``to`` None: it runs to the scenario's end, not ended
    from_min: int = Field(alias="from", ge=0)
    to_min: int | None = Field(default=None, alias="to")
    note: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ResponseSpec:
        if self.to_min is not None and self.to_min <= self.from_min:
            raise ValueError(f"'to' {self.to_min} is not after 'from' {self.from_min}")
        return self

    def shifted(self, minutes: int) -> ResponseSpec:
        to = None if self.to_min is None else self.to_min + minutes
        return self.model_copy(update={"from_min": self.from_min + minutes, "to_min": to})


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    name: str
    description: str = ""
    duration_min: int = Field(gt=0)
    #: days of normal running before the minutes below count (``baseline_days``: the
    #: registry's emergency plan's); ``duration_min`` counts after them
    lead_in_days: int | Literal["baseline_days"] = Field(default=0)
    faults: list[Fault] = Field(default_factory=list)
    #: the emergency responses the run declares (``responses`` in the file)
    declared: list[ResponseSpec] = Field(default_factory=list, alias="responses")
    #: the file it was read from, for messages
    _source: str = PrivateAttr(default="scenario")

    @model_validator(mode="after")
    def _unique_responses(self) -> Scenario:
        ids = [r.id for r in self.declared]
        if len(ids) != len(set(ids)):
            raise ValueError(f"response ids must be unique: {ids}")
        if isinstance(self.lead_in_days, int) and not 0 <= self.lead_in_days <= 14:
            raise ValueError("lead_in_days must be between 0 and 14")
        return self

    @property
    def source(self) -> str:
        return self._source

    def resolved(self, baseline_days: int) -> Scenario:
        """The scenario with its lead-in laid out: faults and responses shifted by the lead-in
        (``baseline_days`` stands for the registry's), ``duration_min`` counting it."""
        days = baseline_days if self.lead_in_days == "baseline_days" else self.lead_in_days
        if not days:
            return self
        shift = days * 24 * 60
        out = self.model_copy(
            update={
                "lead_in_days": 0,
                "duration_min": self.duration_min + shift,
                "faults": [f.shifted(shift) for f in self.faults],
                "declared": [r.shifted(shift) for r in self.declared],
            }
        )
        out._source = self._source
        return out

    def plant(self, profiles: Mapping[str, StackProfile]) -> Plant:
        """The facility faults on a fleet's facilities (a ``ConfigError`` naming the fault if
        one names a stack or facility the registry does not have, or a facility of the wrong role)."""
        return Plant(self.faults, profiles, self._source)

    def responses(self, start: datetime) -> list[EmergencyResponse]:
        """The emergency responses the run declares, for a run starting at ``start`` (each
        declared at its own start, by ``simulator``); minutes as ``resolved`` lays them out."""
        out = []
        for r in self.declared:
            begin = start + timedelta(minutes=r.from_min)
            end = None if r.to_min is None else start + timedelta(minutes=r.to_min)
            out.append(
                EmergencyResponse(
                    id=r.id,
                    level=r.level,
                    districts=r.districts,
                    start=begin,
                    end=end,
                    declared_by="simulator",
                    declared_at=begin,
                    note=r.note or f"scenario {self.name}",
                )
            )
        return out

    # -- what the model should do ---------------------------------------------------------------
    def overrides(self, stack: str, minute: int) -> Overrides:
        o = Overrides()
        for f in self.faults:
            if f.stack != stack or not f.active(minute) or f.facility is not None:
                continue
            p = f.parameter
            if f.type == "exceedance" and p:
                o.level_share[p] = f.level_share or 1.5
            elif f.type == "drift" and p:
                span = max(1, (f.to_min or self.duration_min) - f.from_min)
                start_share = f.level_share or 0.6
                o.level_share[p] = start_share + ((f.to_share or 1.6) - start_share) * (minute - f.from_min) / span
            elif f.type == "ammonia_slip":
                o.nh3_boost_mg_m3 = f.boost_mg_m3
            elif f.type == "voc_exceedance":
                o.level_mg_m3[p or "nmhc"] = f.level_mg_m3 or 100.0
            elif f.type == "bypass":
                o.bypass_fraction = f.fraction
                o.damper_pct = 70.0 if f.damper else None
            elif f.type == "mark" and p:
                o.flags[p] = f.flag or "C"
            elif f.type == "hugging" and p:
                o.level_share[p] = f.share
            elif f.type == "wrong_zs" and p:
                o.wrong_zs[p] = f.share
            elif f.type == "paper_cut":
                o.reported_load_pct = f.pct
            elif f.type == "emission_cut" and f.factor is not None:
                o.emission_factor *= f.factor
        return o

    def flatline(self, stack: str, minute: int) -> list[Fault]:
        return [f for f in self.faults if f.type == "flatline" and f.stack == stack and f.active(minute)]

    # -- how readings travel ------------------------------------------------------------------------
    def silent(self, stack: str, minute: int) -> bool:
        return any(
            (f.type == "silent" and f.stack == stack and f.active(minute))
            or (f.type == "never_reports" and f.stack == stack)
            for f in self.faults
        )

    def skew_s(self, stack: str, minute: int) -> int:
        return sum(f.offset_s for f in self.faults if f.type == "clock_skew" and f.stack == stack and f.active(minute))

    def duplicated(self, stack: str, minute: int) -> bool:
        return any(f.type == "duplicates" and f.stack == stack and f.active(minute) for f in self.faults)

    def malformed(self) -> list[Fault]:
        return [f for f in self.faults if f.type == "malformed"]

    # -- what the system should say -----------------------------------------------------------------
    def ground_truth(
        self, start: datetime, settings: RuleSettings | None = None, profiles: Mapping[str, StackProfile] | None = None
    ) -> dict[str, Any]:
        """The alerts and dead letters the run starting at ``start`` must cause. ``profiles``
        (the stacks' profiles, as the rules have them) are needed for faults on facilities, for
        emergency responses and for a lead-in (a ``ValueError`` without them)."""
        settings = settings or RuleSettings()
        needs_plant = self.declared or self.lead_in_days or any(f.type in FACILITY_FAULTS for f in self.faults)
        if profiles is None:
            if needs_plant:
                raise ValueError(
                    f"{self.name}: facilities, responses or a lead-in: the ground truth needs the profiles"
                )
            return self._ground_truth(start, settings)
        scenario = self.resolved(_baseline_days(profiles))
        truth = scenario._ground_truth(start, settings)
        from .truth import electricity_truth, emergency_truth

        plant = scenario.plant(profiles)
        truth["alerts"] += electricity_truth(scenario, plant, start, settings)
        truth["alerts"] += emergency_truth(scenario, plant, start, settings)
        truth["responses"] = [r.model_dump(mode="json") for r in scenario.responses(start)]
        return truth

    def _ground_truth(self, start: datetime, settings: RuleSettings) -> dict[str, Any]:
        caps = settings.mark_caps_s
        alerts: list[dict[str, Any]] = []
        letters: list[dict[str, Any]] = []

        def at(minute: int) -> datetime:
            return start + timedelta(minutes=minute)

        def window(lo: datetime, hi: datetime) -> list[str]:
            return [lo.isoformat(), hi.isoformat()]

        end = self.duration_min
        for f in self.faults:
            to = f.to_min if f.to_min is not None else end
            kind = {
                "exceedance": "exceedance", "drift": "exceedance", "ammonia_slip": "exceedance",
                "voc_exceedance": "exceedance", "bypass": "bypass", "silent": "data_gap",
                "never_reports": "data_gap", "mark": "invalid_mark", "flatline": "flatline",
                "hugging": "limit_hugging", "wrong_zs": "zs_mismatch",
            }.get(f.type)  # fmt: skip
            parameter = {"ammonia_slip": "nh3", "voc_exceedance": f.parameter or "nmhc"}.get(f.type, f.parameter)
            if f.type in ("bypass", "silent", "never_reports"):
                parameter = None
            if kind == "exceedance":
                # an hour inside the window (a drift: the hour it crosses the limit on average)
                first_hour = at(f.from_min).replace(minute=0, second=0, microsecond=0)
                alerts.append({"kind": kind, "stack": f.stack, "parameter": parameter,
                               "start": window(first_hour, at(to))})  # fmt: skip
            elif kind == "bypass":
                alerts.append({"kind": kind, "stack": f.stack, "parameter": None,
                               "start": window(at(f.from_min), at(f.from_min + 10))})  # fmt: skip
            elif kind == "data_gap":
                lo = start if f.type == "never_reports" else at(f.from_min)
                alerts.append({"kind": kind, "stack": f.stack, "parameter": None,
                               "start": window(lo - timedelta(minutes=2), lo + timedelta(minutes=2))})  # fmt: skip
            elif kind == "invalid_mark":
                cap = caps.get(DataFlag(f.flag or "C"))
                if cap is None or (to - f.from_min) * 60 <= cap:
                    continue  # a mark within its cap is allowed
                alerts.append({"kind": kind, "stack": f.stack, "parameter": parameter,
                               "start": window(at(f.from_min), at(f.from_min + 1))})  # fmt: skip
            elif kind == "flatline":
                alerts.append({"kind": kind, "stack": f.stack, "parameter": parameter,
                               "start": window(at(f.from_min), at(f.from_min + 2))})  # fmt: skip
            elif kind == "limit_hugging":
                alerts.append({"kind": kind, "stack": f.stack, "parameter": parameter,
                               "start": window(at(f.from_min) - timedelta(hours=1), at(to))})  # fmt: skip
            elif kind == "zs_mismatch":
                alerts.append({"kind": kind, "stack": f.stack, "parameter": parameter,
                               "start": window(at(f.from_min), at(f.from_min + 2))})  # fmt: skip
            elif f.type == "clock_skew" and f.offset_s > 300:
                letters.append({"reason": "future_timestamp", "stack": f.stack, "min_count": 1})
                skewed, slack = at(f.from_min), timedelta(minutes=2)  # refused readings: the stack looks silent
                alerts.append({"kind": "data_gap", "stack": f.stack, "parameter": None,
                               "start": window(skewed - slack, skewed + slack)})  # fmt: skip
            elif f.type == "malformed":
                letters.append({"reason": "hj212_crc", "stack": f.stack, "min_count": f.count})
            elif f.type == "duplicates":
                letters.append({"reason": "duplicate", "stack": f.stack, "min_count": 1})
        return {"scenario": self.name, "start": start.isoformat(), "alerts": alerts, "dead_letters": letters}


def _baseline_days(profiles: Mapping[str, StackProfile]) -> int:
    return next(iter(profiles.values())).emergency_plan.baseline_days if profiles else 1


def load_scenario(name_or_path: str | Path) -> Scenario:
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
    data = load_yaml_mapping(path)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise config_error(path, exc) from exc
    scenario._source = str(path)
    return scenario


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
