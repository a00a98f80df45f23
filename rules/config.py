"""Rule settings, the limits catalogue and each stack's resolved profile. Pure.

Files are read by the adapters (``contracts.yamlfile``); this module validates the parsed
mappings strictly and resolves, per stack, the limits and reference O2 that apply: the
industry's catalogue entry, overridden by the registry's per-stack values.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.emergency import Level
from contracts.errors import ConfigError, config_error
from contracts.parameters import DERIVED_FROM, computable
from contracts.reading import DataFlag
from contracts.registry import (
    BypassInstrument,
    EmergencyPlan,
    Enterprise,
    Facility,
    FacilityRole,
    FacilityType,
    Industry,
    Measure,
    Registry,
    Stack,
)

CATALOGUE_PATH = Path(__file__).with_name("data") / "limits-catalogue.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IndustryLimits(_Strict):
    reference_o2_pct: float = Field(ge=0, lt=21)
    o2_converted: frozenset[str] = frozenset()
    limits_mg_m3: dict[str, float]


class LimitsCatalogue(_Strict):
    version: Literal[1]
    industries: dict[Industry, IndustryLimits]


class BypassSettings(_Strict):
    damper_open_pct: float = 10.0
    duct_flow_m3_s: float = 1.0
    duct_temperature_c: float = 80.0
    #: consecutive minutes a signature must hold before a bypass is suspected
    persist_minutes: int = 3
    hold_down_s: int = 900
    #: main-stack flow below this share of its baseline while load continues
    flow_collapse_ratio: float = 0.4
    load_running_pct: float = 50.0
    #: after wet desulphurisation the flue is humid and ~50 C
    wet_fgd_max_temperature_c: float = 75.0
    wet_fgd_min_humidity_pct: float = 5.0
    #: dilution: O2 at or above this while raw concentrations fall below ratio x baseline
    dilution_o2_pct: float = 18.0
    dilution_drop_ratio: float = 0.5
    #: baselines are exponential moving averages of normal minutes with this weight
    baseline_alpha: float = 0.05
    baseline_min_minutes: int = 30


class FalsificationSettings(_Strict):
    #: parameters watched for flat lines (signals such as a closed damper may rightly be constant)
    flatline_parameters: frozenset[str] = frozenset({"so2", "nox", "pm", "o2", "nh3", "nmhc", "flow"})
    flatline_minutes: int = 30
    flatline_tolerance: float = 1e-6
    hugging_window_hours: int = 24
    hugging_min_hours: int = 20
    hugging_band_low: float = 0.85
    hugging_fraction: float = 0.8
    zs_tolerance_ratio: float = 0.05
    zs_tolerance_abs: float = 1.0
    zs_minutes: int = 10


class ElectricitySettings(_Strict):
    """Electricity-use rules (``rules.electricity``): production vs pollution-control power."""

    #: a control facility off while what it treats runs, this many minutes in a row: treatment_off
    treatment_off_minutes: int = Field(default=10, ge=1)
    #: a control facility starting more than this after its production started: control_late_start
    start_grace_minutes: int = Field(default=5, ge=0)
    #: a control facility stopping more than this before its production stopped: control_early_stop
    stop_grace_minutes: int = Field(default=5, ge=0)
    #: production at or above this share of its normal power counts as normal load
    normal_load_ratio: float = Field(default=0.8, gt=0, le=2)
    #: a running control facility under this share of its normal power while production is at
    #: normal load, this many minutes in a row: control_underpowered
    underpowered_ratio: float = Field(default=0.5, gt=0, lt=1)
    underpowered_minutes: int = Field(default=15, ge=1)
    #: every metered producer on a stack off while the stack runs, this many minutes: production_off_emitting
    production_off_minutes: int = Field(default=15, ge=1)
    #: stack flow under this share of its baseline while production is at normal load: a bypass signal
    no_flow_ratio: float = Field(default=0.1, gt=0, lt=1)
    #: ... or, before a flow baseline is learnt, at or under this flow (m3/s)
    zero_flow_m3_s: float = Field(default=0.5, ge=0)
    hold_down_s: int = Field(default=600, ge=0)

    def at_normal_load(self, facility: FacilityProfile, kw: float) -> bool:
        """Whether a facility drawing ``kw`` is at normal load (production) or normal operation."""
        return kw >= self.normal_load_ratio * facility.normal_kw


class EmergencySettings(_Strict):
    """Emergency-response checks (``rules.emergency``)."""

    #: hourly emission rates are kept this many days back for baselines (at least the plan's baseline_days)
    history_days: int = Field(default=7, ge=1, le=14)
    #: a cut is judged only with a baseline from at least this many of the plan's days
    min_baseline_days: int = Field(default=1, ge=1)


class RuleSettings(_Strict):
    version: Literal[1] = 1
    #: flags whose data is not valid for averages and exceedance (HJ 75 / MEE 2022 No. 21)
    invalid_flags: frozenset[DataFlag] = frozenset(
        {DataFlag.STOPPED, DataFlag.MAINTENANCE, DataFlag.FAULT, DataFlag.CALIBRATION, DataFlag.COMMS_FAULT,
         DataFlag.OVER_RANGE}
    )  # fmt: skip
    #: how late a reading may arrive and still count (event time)
    grace_s: int = 300
    min_valid_minutes: int = 45
    #: at or above this O2 the unit is not running: no conversion, no exceedance judgement
    o2_not_convertible_pct: float = 19.0
    early_warning_min_minutes: int = 15
    #: spike notice when an instantaneous judged value exceeds ratio x limit (None: off)
    spike_ratio: float | None = None
    spike_hold_down_s: int = 900
    #: a stack is silent when nothing arrived for max(gap_min_s, gap_intervals x interval)
    gap_min_s: int = 300
    gap_intervals: float = 3.0
    #: a stack-level gap resolves this long (event time) after the stack reports again, so the
    #: readings the gateway asks the device for (backfill) can arrive and be named in it
    gap_backfill_wait_s: int = 60
    #: longest a data flag may be held before it raises its own alert
    mark_caps_s: dict[DataFlag, int] = Field(
        default_factory=lambda: {
            DataFlag.CALIBRATION: 4 * 3600,
            DataFlag.MAINTENANCE: 24 * 3600,
            DataFlag.FAULT: 24 * 3600,
            DataFlag.STOPPED: 72 * 3600,
            DataFlag.COMMS_FAULT: 24 * 3600,
            DataFlag.OVER_RANGE: 2 * 3600,
            DataFlag.MANUAL: 4 * 3600,
        }
    )
    #: a unit counts as running when its flow exceeds this share of its baseline
    running_flow_ratio: float = 0.3
    bypass: BypassSettings = Field(default_factory=BypassSettings)
    falsification: FalsificationSettings = Field(default_factory=FalsificationSettings)
    electricity: ElectricitySettings = Field(default_factory=ElectricitySettings)
    emergency: EmergencySettings = Field(default_factory=EmergencySettings)


@lru_cache(maxsize=1024)
def in_name_order(names: frozenset[str]) -> tuple[str, ...]:
    """``names`` sorted: the order the rules judge parameters in. Kept per set of names (a
    profile's parameters, the flat-line parameters), since the rules ask every minute."""
    return tuple(sorted(names))


def _strict(model: type[BaseModel], data: dict[str, Any], source: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise config_error(source, exc) from exc


def parse_catalogue(data: dict[str, Any], source: str = "limits catalogue") -> LimitsCatalogue:
    catalogue: LimitsCatalogue = _strict(LimitsCatalogue, data, source)
    return catalogue


def parse_settings(data: dict[str, Any], source: str = "rule settings") -> RuleSettings:
    settings: RuleSettings = _strict(RuleSettings, data, source)
    return settings


class FacilityProfile(_Strict):
    """A metered facility on the stack (it exhausts to it, or treats its flue gas)."""

    id: str
    role: FacilityRole
    type: FacilityType
    running_kw: float
    normal_kw: float
    #: control only: the production facilities it treats
    treats: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The name its power goes by in the stack's minutes and hours (``rules.aggregation``)."""
        return meter_key(self.id, "power")


def meter_key(facility: str, parameter: str) -> str:
    """How a meter's parameter is named in its stack's minutes and hourly averages."""
    return f"{facility}/{parameter}"


class StackProfile(_Strict):
    """Everything the rules need to know about one stack."""

    enterprise: str
    stack: str
    industry: Industry
    reference_o2_pct: float
    limits_mg_m3: dict[str, float]
    o2_converted: frozenset[str]
    parameters: frozenset[str]
    bypass_present: bool
    bypass_instrument: BypassInstrument
    wet_desulphurisation: bool
    reporting_interval_s: int
    district: str = ""
    #: the metered facilities exhausting to this stack or treating its gas
    facilities: tuple[FacilityProfile, ...] = ()
    #: the enterprise's reduction list, per level: the measures for facilities on this stack
    reduction: dict[Level, tuple[Measure, ...]] = Field(default_factory=dict)
    #: hours after a response starts before the measures must hold, in seconds
    lead_time_s: int = 0
    emergency_plan: EmergencyPlan = Field(default_factory=EmergencyPlan)

    def limit(self, parameter: str) -> float | None:
        return self.limits_mg_m3.get(parameter)

    def facility(self, facility_id: str) -> FacilityProfile | None:
        return next((f for f in self.facilities if f.id == facility_id), None)


def stack_limits(industry: IndustryLimits | None, stack: Stack) -> dict[str, float]:
    """The limits (mg/m3) that apply to a stack: its industry's in the catalogue, overridden by
    its own (``limits_mg_m3`` in the registry)."""
    return {**(industry.limits_mg_m3 if industry else {}), **stack.limits_mg_m3}


def stack_profile(
    enterprise: Enterprise, stack: Stack, catalogue: LimitsCatalogue, plan: EmergencyPlan | None = None
) -> StackProfile:
    """The stack's limits are the catalogue's for its industry, overridden by its own, kept for
    the parameters its readings carry: those it declares and those derived from them (NOx as
    NO2 from NO and NO2, ``contracts.parameters.computable``)."""
    industry = catalogue.industries.get(enterprise.industry)
    limits = stack_limits(industry, stack)
    reported = computable(stack.parameters)
    return StackProfile(
        enterprise=enterprise.id,
        stack=stack.id,
        industry=enterprise.industry,
        reference_o2_pct=stack.reference_o2_pct,
        limits_mg_m3={p: v for p, v in limits.items() if p in reported},
        o2_converted=industry.o2_converted if industry else frozenset(),
        parameters=frozenset(stack.parameters),
        bypass_present=stack.bypass.present,
        bypass_instrument=stack.bypass.instrumented,
        wet_desulphurisation=stack.wet_desulphurisation,
        reporting_interval_s=stack.reporting_interval_s,
        district=enterprise.district,
        facilities=tuple(_facility_profile(f) for f in enterprise.facilities if f.stack == stack.id),
        reduction=_reduction_on(enterprise, stack),
        lead_time_s=round(enterprise.emergency.lead_time_h * 3600) if enterprise.emergency else 0,
        emergency_plan=plan or EmergencyPlan(),
    )


def _facility_profile(f: Facility) -> FacilityProfile:
    return FacilityProfile(
        id=f.id, role=f.role, type=f.type, running_kw=f.running_kw, normal_kw=f.normal_kw, treats=tuple(f.treats)
    )


def _reduction_on(enterprise: Enterprise, stack: Stack) -> dict[Level, tuple[Measure, ...]]:
    if enterprise.emergency is None:
        return {}
    on_stack = {f.id for f in enterprise.facilities if f.stack == stack.id}
    out = {}
    for level, measures in enterprise.emergency.levels.items():
        mine = tuple(m for m in measures if m.facility in on_stack)
        if mine:
            out[level] = mine
    return out


def unjudgeable_limits(enterprise: Enterprise, stack: Stack, catalogue: LimitsCatalogue) -> list[str]:
    """Limits that apply to a pollutant the stack declares but that could never be judged, as
    ``<where>: <why>`` lines:

    - a limit for a derived parameter (NOx) when the stack declares part of what it is derived
      from (``no`` without ``no2`` or the reverse) and not the parameter itself;
    - a limit judged at reference O2 for a declared parameter when the stack declares no ``o2``
      (every hour would be "not convertible").

    A catalogue limit for a pollutant the stack declares nothing of is not a problem: the stack
    does not measure it (a cement mill vent reports only particulates). A per-stack override for
    an undeclared parameter is refused by the registry itself."""
    industry = catalogue.industries.get(enterprise.industry)
    limits = stack_limits(industry, stack)
    declared = set(stack.parameters)
    reported = computable(declared)
    where = f"enterprises[{enterprise.id}].stacks[{stack.id}]"
    problems = []
    for name, limit in sorted(limits.items()):
        origin = (
            "its limits_mg_m3"
            if name in stack.limits_mg_m3
            else f"the limits catalogue for {enterprise.industry.value}"
        )
        sources = DERIVED_FROM.get(name, frozenset())
        if name not in reported and declared & sources:
            have, lack, both = sorted(declared & sources), sorted(sources - declared), " and ".join(sorted(sources))
            problems.append(
                f"{where}.parameters.{have[0]}: a {name} limit of {limit:g} mg/m3 applies ({origin}) but {name} can "
                f"never be computed: {' and '.join(lack)} not declared; declare {name}, or {both}"
            )
        elif name in reported and industry and name in industry.o2_converted and "o2" not in declared:
            key = f"limits_mg_m3.{name}" if name in stack.limits_mg_m3 else f"parameters.{name}"
            problems.append(
                f"{where}.{key}: the {name} limit of {limit:g} mg/m3 ({origin}) is judged at reference O2 "
                f"{stack.reference_o2_pct:g} %, but o2 is not declared: every hour would be not convertible; declare o2"
            )
    return problems


#: the pollutants a cut applies to when its measure names none: those the stack has a limit for
CUT_POLLUTANTS = ("so2", "nox", "pm", "nmhc")


def unjudgeable_measures(enterprise: Enterprise, stack: Stack, catalogue: LimitsCatalogue) -> list[str]:
    """Cut measures on ``stack`` that could never be judged, as ``<where>: <why>`` lines: the
    emission rate (kg/h) is computed for pollutants with a limit, from the flow and temperature."""
    if enterprise.emergency is None:
        return []
    on_stack = {f.id for f in enterprise.facilities if f.stack == stack.id}
    limits = stack_limits(catalogue.industries.get(enterprise.industry), stack)
    limited = {p for p in limits if p in computable(stack.parameters)}
    problems = []
    for level, measures in enterprise.emergency.levels.items():
        for i, m in enumerate(measures):
            if m.action.value != "cut" or m.facility not in on_stack:
                continue
            where = f"enterprises[{enterprise.id}].emergency.levels.{level.value}[{i}]"
            named = m.pollutants or [p for p in CUT_POLLUTANTS if p in limited]
            if not named:
                problems.append(
                    f"{where}: a cut on stack {stack.id!r} judges no pollutant: it has no limit for "
                    f"{', '.join(CUT_POLLUTANTS)}; name the pollutants"
                )
            for p in named:
                if p not in limited:
                    problems.append(
                        f"{where}.pollutants: {p!r} has no limit on stack {stack.id!r}: its emission rate is not "
                        "computed, so the cut could never be judged"
                    )
            if "temperature" not in stack.parameters:
                problems.append(
                    f"{where}: stack {stack.id!r} reports no temperature: its emission rate (standard dry flow) "
                    "cannot be computed"
                )
    return problems


def profiles(registry: Registry, catalogue: LimitsCatalogue) -> dict[str, StackProfile]:
    """Every stack's profile; a ``ConfigError`` naming the registry file, the enterprise, the
    stack and the key when a limit or a cut measure could never be judged (``unjudgeable_limits``,
    ``unjudgeable_measures``)."""
    problems = [
        f"{registry.source}: {line}"
        for e, s in registry.stacks()
        for line in (*unjudgeable_limits(e, s, catalogue), *unjudgeable_measures(e, s, catalogue))
    ]
    if problems:
        raise ConfigError("\n".join(problems))
    return {s.id: stack_profile(e, s, catalogue, registry.emergency_plan) for e, s in registry.stacks()}
