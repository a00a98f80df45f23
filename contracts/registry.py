"""The device registry: enterprises, their stacks and the devices (数采仪) that report them;
their production and pollution-control facilities with the electricity meters on them (分表计电);
and their heavy-pollution emergency reduction lists (应急减排清单).

One versioned YAML file, loaded strictly: an unknown key, a duplicate id or MN, or a unit
that a parameter cannot be given in is a ``ConfigError`` naming the file, the entry and
the key. The broker's accounts and their dynamic-security roles are generated from it
(``cems infra``, ``cems/infra/dynsec.py``).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, PrivateAttr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from .emergency import Action, Level
from .errors import ConfigError, config_error
from .parameters import DERIVED_FROM, METER_PARAMETERS, PARAMETERS, Unit, computable
from .yamlfile import load_yaml_mapping

#: version 2 added facilities, meters and reduction lists; a version 1 file (which has none of
#: them) is still read as it is (``docs/changelog.md``, "Registry format 2")
REGISTRY_VERSION = 2
READABLE_VERSIONS = (1, 2)
SAMPLE_REGISTRY = Path(__file__).with_name("samples") / "jiyuan-registry.yaml"

Ident = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,47}$")]


class Industry(StrEnum):
    COAL_POWER = "coal_power"
    GAS_TURBINE = "gas_turbine"
    CEMENT = "cement"
    STEEL_SINTER = "steel_sinter"
    STEEL_OTHER = "steel_other"
    COKING = "coking"
    CHEMICAL = "chemical"
    COATING = "coating"


class BypassInstrument(StrEnum):
    NONE = "none"  # a bypass exists but nothing measures it: signature detection only
    DAMPER = "damper"  # damper position / limit switch
    DUCT_FLOW = "duct_flow"  # flow meter in the bypass duct
    DUCT_TEMPERATURE = "duct_temperature"  # thermometer in the bypass duct


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_Problem = tuple[tuple[int | str, ...], str]


def _raise(problems: list[_Problem], model: BaseModel) -> None:
    """Report every problem at its own location (relative to ``model``): pydantic prefixes the
    locations of a ``ValidationError`` raised in a validator with the validated object's own."""
    if problems:
        raise ValidationError.from_exception_data(
            type(model).__name__,
            [
                InitErrorDetails(type=PydanticCustomError("registry", "{detail}", {"detail": msg}), loc=loc, input=None)
                for loc, msg in problems
            ],
        )


def _unreported(name: str) -> str:
    sources = DERIVED_FROM.get(name)
    if sources:
        derived = " and ".join(sorted(sources))
        return f"{name} is not reported: declare {name}, or {derived} ({name} is then derived from them)"
    return f"{name} is not in the stack's parameters"


class Bypass(_Strict):
    present: bool = False
    instrumented: BypassInstrument = BypassInstrument.NONE


class Device(_Strict):
    mn: Annotated[str, Field(min_length=1, max_length=24, pattern=r"^[0-9A-Za-z]+$")]
    #: where the device's secrets live: ``mqtt:<account>`` (its enterprise account) and the
    #: HJ 212 ``PW`` it sends, if any
    credentials: str | None = None
    hj212_pw: str | None = None
    protocol: Literal["json", "hj212"] = "json"
    #: HJ 212 over TCP only from these networks (empty: from any address; a PW is needed anyway)
    tcp_allowed_networks: tuple[IPvAnyNetwork, ...] = ()


class Stack(_Strict):
    id: Ident
    name: str
    reference_o2_pct: float = Field(ge=0, lt=21)
    #: parameter -> unit the device reports it in
    parameters: dict[str, Unit]
    limits_mg_m3: dict[str, float] = Field(default_factory=dict, description="overrides of the catalogue")
    bypass: Bypass = Field(default_factory=Bypass)
    wet_desulphurisation: bool = False
    reporting_interval_s: int = Field(default=60, gt=0, le=3600)
    devices: list[Device] = Field(min_length=1)

    @model_validator(mode="after")
    def _parameters_and_limits(self) -> Stack:
        problems: list[_Problem] = []
        for name, unit in self.parameters.items():
            param = PARAMETERS.get(name)
            if param is None:
                known = ", ".join(sorted(set(PARAMETERS) - METER_PARAMETERS))
                problems.append((("parameters", name), f"unknown parameter; known: {known}"))
            elif name in METER_PARAMETERS:
                problems.append(
                    (("parameters", name), "an electricity meter's parameter: declare it on a facility's meter")
                )
            elif unit not in param.accepted_units:
                allowed = ", ".join(sorted(u.value for u in param.accepted_units))
                problems.append((("parameters", name), f"cannot be reported in {unit.value!r} (allowed: {allowed})"))
        reported = computable(self.parameters)
        for name, limit in self.limits_mg_m3.items():
            if name not in PARAMETERS:
                problems.append((("limits_mg_m3", name), "limit for an unknown parameter"))
            elif limit <= 0:
                problems.append((("limits_mg_m3", name), f"a limit must be positive, got {limit:g}"))
            elif name not in reported:
                msg = f"a limit that could never be judged: {_unreported(name)}"
                problems.append((("limits_mg_m3", name), msg))
        _raise(problems, self)
        return self


class FacilityRole(StrEnum):
    PRODUCTION = "production"  # 生产设施
    CONTROL = "control"  # 污染治理设施


class FacilityType(StrEnum):
    # production
    BOILER = "boiler"
    KILN = "kiln"
    SINTER_MACHINE = "sinter_machine"
    COKE_OVEN = "coke_oven"
    FURNACE = "furnace"
    COATING_LINE = "coating_line"
    REACTOR = "reactor"
    OTHER_PRODUCTION = "other_production"
    # pollution control
    SCR = "scr"
    SNCR = "sncr"
    FGD = "fgd"
    DUST_COLLECTOR = "dust_collector"
    RTO = "rto"
    ACTIVATED_CARBON = "activated_carbon"
    OTHER_CONTROL = "other_control"


CONTROL_TYPES = frozenset(
    {FacilityType.SCR, FacilityType.SNCR, FacilityType.FGD, FacilityType.DUST_COLLECTOR, FacilityType.RTO,
     FacilityType.ACTIVATED_CARBON, FacilityType.OTHER_CONTROL}
)  # fmt: skip


class Meter(Device):
    """A facility's electricity meter: a device of its own (MN, protocol, secrets)."""

    #: parameter -> unit the meter reports it in; ``power`` (active power) is required
    parameters: dict[str, Unit] = Field(default_factory=lambda: {"power": Unit.KW})
    #: a meter reports each minute at least: the rules judge facilities minute by minute
    reporting_interval_s: int = Field(default=60, gt=0, le=60)

    @model_validator(mode="after")
    def _meter_parameters(self) -> Meter:
        problems: list[_Problem] = []
        if "power" not in self.parameters:
            problems.append((("parameters",), "a meter must report power (active power)"))
        for name, unit in self.parameters.items():
            if name not in METER_PARAMETERS:
                known = ", ".join(sorted(METER_PARAMETERS))
                problems.append((("parameters", name), f"not a meter parameter; a meter reports {known}"))
            elif unit not in PARAMETERS[name].accepted_units:
                allowed = ", ".join(sorted(u.value for u in PARAMETERS[name].accepted_units))
                problems.append((("parameters", name), f"cannot be reported in {unit.value!r} (allowed: {allowed})"))
        _raise(problems, self)
        return self


class Facility(_Strict):
    """A production or pollution-control facility and the meter on its power supply."""

    id: Ident  # also its topic level: cems/v1/<enterprise>/<facility>/reading
    name: str
    role: FacilityRole
    type: FacilityType
    #: the stack it exhausts to (production) or whose flue gas it treats (control)
    stack: str
    #: control only: the production facilities it treats (exhausting to the same stack)
    treats: list[str] = Field(default_factory=list)
    #: at or above this power (kW) the facility counts as running
    running_kw: float = Field(gt=0)
    #: its power at normal production / normal operation (kW)
    normal_kw: float = Field(gt=0)
    meter: Meter

    @model_validator(mode="after")
    def _consistent(self) -> Facility:
        problems: list[_Problem] = []
        if self.normal_kw <= self.running_kw:
            msg = f"normal_kw {self.normal_kw:g} must be above running_kw {self.running_kw:g}"
            problems.append((("normal_kw",), msg))
        is_control = self.type in CONTROL_TYPES
        if is_control != (self.role is FacilityRole.CONTROL):
            problems.append((("type",), f"a {self.type.value} is not a {self.role.value} facility"))
        if self.role is FacilityRole.CONTROL and not self.treats:
            problems.append((("treats",), "a control facility must name the production facilities it treats"))
        if self.role is FacilityRole.PRODUCTION and self.treats:
            problems.append((("treats",), "only a control facility treats others"))
        _raise(problems, self)
        return self


class Measure(_Strict):
    """One line of a reduction list: what one facility must do at one level."""

    facility: str
    action: Action
    #: limit: production at most this % of normal
    limit_pct: float | None = Field(default=None, gt=0, lt=100)
    #: cut: the stack's emission rate at least this % under its baseline
    cut_pct: float | None = Field(default=None, ge=0, lt=100)
    #: cut: the pollutants it applies to (default: those of the stack with a limit among so2, nox, pm, nmhc)
    pollutants: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fields_of_action(self) -> Measure:
        problems: list[_Problem] = []
        wants = {Action.LIMIT: "limit_pct", Action.CUT: "cut_pct"}
        for action, key in wants.items():
            given = getattr(self, key) is not None
            if self.action is action and not given:
                problems.append(((key,), f"a {action.value} measure needs {key}"))
            elif self.action is not action and given:
                problems.append(((key,), f"{key} belongs to a {action.value} measure, not {self.action.value}"))
        if self.pollutants and self.action is not Action.CUT:
            problems.append((("pollutants",), f"pollutants belong to a cut measure, not {self.action.value}"))
        _raise(problems, self)
        return self


class ReductionList(_Strict):
    """An enterprise's emergency reduction list (应急减排清单)."""

    #: hours after a response starts before its measures must hold (time to ramp down)
    lead_time_h: float = Field(default=2.0, ge=0, le=48)
    #: per level, its measures; a level not listed requires nothing
    levels: dict[Level, list[Measure]] = Field(default_factory=dict)


class EmergencyPlan(_Strict):
    """The zone's heavy-pollution emergency plan (重污染天气应急预案), as far as the checks need it."""

    #: the baseline of an hour is the mean emission rate of the same hour on this many days before the response
    baseline_days: int = Field(default=3, ge=1, le=7)
    #: per level, the region's reduction target per pollutant (% of the baseline emission)
    targets_pct: dict[Level, dict[str, float]] = Field(default_factory=dict)


class Enterprise(_Strict):
    id: Ident  # also the MQTT account name and the topic prefix cems/v1/<id>/...
    name: str
    district: str
    industry: Industry
    stacks: list[Stack] = Field(min_length=1)
    facilities: list[Facility] = Field(default_factory=list)
    emergency: ReductionList | None = None

    @model_validator(mode="after")
    def _facilities(self) -> Enterprise:
        problems: list[_Problem] = []
        stacks = {s.id: s for s in self.stacks}
        by_id: dict[str, Facility] = {}
        for i, fac in enumerate(self.facilities):
            if fac.id in by_id or fac.id in stacks:
                problems.append(
                    (("facilities", i, "id"), f"duplicate id {fac.id!r} (facility and stack ids are one namespace)")
                )
            by_id.setdefault(fac.id, fac)
            if fac.stack not in stacks:
                problems.append((("facilities", i, "stack"), f"no stack {fac.stack!r} in enterprise {self.id!r}"))
        for i, fac in enumerate(self.facilities):
            for j, treated in enumerate(fac.treats):
                other = by_id.get(treated)
                at: tuple[int | str, ...] = ("facilities", i, "treats", j)
                if other is None:
                    problems.append((at, f"no facility {treated!r} in enterprise {self.id!r}"))
                elif other.role is not FacilityRole.PRODUCTION:
                    problems.append((at, f"{treated!r} is not a production facility"))
                elif other.stack != fac.stack and other.stack in stacks:  # (an unknown stack is reported above)
                    msg = f"{treated!r} exhausts to {other.stack!r}, not to {fac.stack!r} where {fac.id!r} treats"
                    problems.append((at, msg))
        if self.emergency is not None:
            for level, measures in self.emergency.levels.items():
                seen: set[str] = set()
                for k, m in enumerate(measures):
                    where: tuple[int | str, ...] = ("emergency", "levels", level.value, k)
                    found = by_id.get(m.facility)
                    if found is None:
                        problems.append(((*where, "facility"), f"no facility {m.facility!r} in enterprise {self.id!r}"))
                        continue
                    fac = found
                    if m.facility in seen:
                        problems.append(((*where, "facility"), f"{m.facility!r} has two measures at {level.value}"))
                    seen.add(m.facility)
                    if m.action in (Action.LIMIT, Action.STOP) and fac.role is not FacilityRole.PRODUCTION:
                        msg = f"a {m.action.value} measure applies to production, {m.facility!r} is {fac.role.value}"
                        problems.append(((*where, "action"), msg))
                    measured = computable(stacks[fac.stack].parameters) if fac.stack in stacks else frozenset()
                    for p, name in enumerate(m.pollutants):
                        if name not in measured:
                            msg = f"{name!r} is not measured on stack {fac.stack!r}: its emission cannot be judged"
                            problems.append(((*where, "pollutants", p), msg))
                    if m.action is Action.CUT and fac.stack in stacks and "flow" not in stacks[fac.stack].parameters:
                        msg = f"stack {fac.stack!r} reports no flow: its emission rate (kg/h) cannot be computed"
                        problems.append(((*where, "action"), msg))
        _raise(problems, self)
        return self

    def facility(self, facility_id: str) -> Facility | None:
        return next((f for f in self.facilities if f.id == facility_id), None)


class Registry(_Strict):
    version: Literal[1, 2]
    zone: str
    emergency_plan: EmergencyPlan = Field(default_factory=EmergencyPlan)
    enterprises: list[Enterprise]
    #: the file it was read from, for messages (set by ``load_registry``)
    _source: str = PrivateAttr(default="registry")

    @model_validator(mode="after")
    def _unique(self) -> Registry:
        problems: list[_Problem] = []
        seen_ent: set[str] = set()
        seen_stack: dict[str, str] = {}
        seen_mn: dict[str, str] = {}
        for i, ent in enumerate(self.enterprises):
            if ent.id in seen_ent:
                problems.append((("enterprises", i, "id"), f"duplicate enterprise id {ent.id!r}"))
            seen_ent.add(ent.id)
            for j, stack in enumerate(ent.stacks):
                where = ("enterprises", i, "stacks", j)
                if stack.id in seen_stack:
                    problems.append(
                        ((*where, "id"), f"duplicate stack id {stack.id!r} (also in {seen_stack[stack.id]!r})")
                    )
                seen_stack.setdefault(stack.id, ent.id)
                for k, dev in enumerate(stack.devices):
                    if dev.mn in seen_mn:
                        msg = f"duplicate MN {dev.mn!r} (also on {seen_mn[dev.mn]!r})"
                        problems.append(((*where, "devices", k, "mn"), msg))
                    seen_mn.setdefault(dev.mn, stack.id)
            for j, fac in enumerate(ent.facilities):
                where = ("enterprises", i, "facilities", j)
                if self.version < 2:
                    problems.append(((*where,), "facilities need registry version 2"))
                if fac.id in seen_stack:
                    problems.append(((*where, "id"), f"{fac.id!r} is also a stack id (of {seen_stack[fac.id]!r})"))
                if fac.meter.mn in seen_mn:
                    msg = f"duplicate MN {fac.meter.mn!r} (also on {seen_mn[fac.meter.mn]!r})"
                    problems.append(((*where, "meter", "mn"), msg))
                seen_mn.setdefault(fac.meter.mn, fac.id)
            if ent.emergency is not None and self.version < 2:
                problems.append((("enterprises", i, "emergency"), "a reduction list needs registry version 2"))
        _raise(problems, self)
        return self

    @property
    def source(self) -> str:
        return self._source

    # -- look-ups ----------------------------------------------------------------------
    def stacks(self) -> list[tuple[Enterprise, Stack]]:
        return [(e, s) for e in self.enterprises for s in e.stacks]

    def device_index(self) -> dict[str, tuple[Enterprise, Stack, Device]]:
        return {d.mn: (e, s, d) for e, s in self.stacks() for d in s.devices}

    def stack_index(self) -> dict[str, tuple[Enterprise, Stack]]:
        return {s.id: (e, s) for e, s in self.stacks()}

    def facilities(self) -> list[tuple[Enterprise, Facility]]:
        return [(e, f) for e in self.enterprises for f in e.facilities]

    def meter_index(self) -> dict[str, tuple[Enterprise, Facility, Stack]]:
        """Meter MN -> its enterprise, its facility and the stack the facility exhausts to."""
        stacks = self.stack_index()
        return {f.meter.mn: (e, f, stacks[f.stack][1]) for e, f in self.facilities()}


def _where(registry: dict[str, object], loc: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as a path with entry ids and mapping keys, e.g.
    ``enterprises[jy-power-1].stacks[jy-power-1-s1].parameters.no``; a problem with a key
    itself (not its value) ends in ``(key)``, a key that is not text is written as YAML would
    (``parameters.false (key)``)."""
    parts: list[str] = []
    node: object = registry
    for key in loc:
        if isinstance(node, list) and isinstance(key, int) and parts:
            node = node[key] if 0 <= key < len(node) else None
            ident = (node.get("id") or node.get("mn")) if isinstance(node, dict) else None
            parts[-1] += f"[{ident if isinstance(ident, str) and ident else key}]"
        elif key == "[key]" and parts:
            parts[-1] += " (key)"
        else:
            # pydantic writes a key False as 0 and None as 'None': find the key as it was read
            actual = next((k for k in node if k == key), key) if isinstance(node, dict) else key
            parts.append(actual if isinstance(actual, str) else json.dumps(actual, default=str))
            node = node.get(actual) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


def load_registry(path: Path | str = SAMPLE_REGISTRY) -> Registry:
    path = Path(path)
    try:
        raw = load_yaml_mapping(path)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(": file not found", ": registry file not found")) from exc
    if raw.get("version") not in READABLE_VERSIONS:
        readable = " or ".join(str(v) for v in READABLE_VERSIONS)
        raise ConfigError(f"{path}: key 'version' must be {readable}, got {raw.get('version')!r}")
    try:
        registry = Registry.model_validate(raw)
    except ValidationError as exc:
        raise config_error(path, exc, lambda loc: _where(raw, loc)) from exc
    registry._source = str(path)
    return registry
