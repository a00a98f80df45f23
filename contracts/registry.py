"""The device registry: enterprises, their stacks and the devices (数采仪) that report them.

One versioned YAML file, loaded strictly: an unknown key, a duplicate id or MN, or a unit
that a parameter cannot be given in is a ``ConfigError`` naming the file, the entry and
the key. The MQTT password file and ACL are generated from it (``cems infra``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, config_error
from .parameters import PARAMETERS, Unit
from .yamlfile import load_yaml_mapping

REGISTRY_VERSION = 1
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

    @field_validator("parameters")
    @classmethod
    def _known_parameters(cls, value: dict[str, Unit]) -> dict[str, Unit]:
        for name, unit in value.items():
            param = PARAMETERS.get(name)
            if param is None:
                raise ValueError(f"unknown parameter {name!r}; known: {', '.join(sorted(PARAMETERS))}")
            if unit not in param.accepted_units:
                allowed = ", ".join(sorted(u.value for u in param.accepted_units))
                raise ValueError(f"parameter {name!r} cannot be reported in {unit.value!r} (allowed: {allowed})")
        return value

    @field_validator("limits_mg_m3")
    @classmethod
    def _limits_for_known(cls, value: dict[str, float]) -> dict[str, float]:
        for name, limit in value.items():
            if name not in PARAMETERS:
                raise ValueError(f"limit for unknown parameter {name!r}")
            if limit <= 0:
                raise ValueError(f"limit for {name!r} must be positive, got {limit}")
        return value


class Enterprise(_Strict):
    id: Ident  # also the MQTT account name and the topic prefix cems/v1/<id>/...
    name: str
    district: str
    industry: Industry
    stacks: list[Stack] = Field(min_length=1)


class Registry(_Strict):
    version: Literal[1]
    zone: str
    enterprises: list[Enterprise]

    @model_validator(mode="after")
    def _unique(self) -> Registry:
        seen_ent: set[str] = set()
        seen_stack: dict[str, str] = {}
        seen_mn: dict[str, str] = {}
        for ent in self.enterprises:
            if ent.id in seen_ent:
                raise ValueError(f"duplicate enterprise id {ent.id!r}")
            seen_ent.add(ent.id)
            for stack in ent.stacks:
                if stack.id in seen_stack:
                    raise ValueError(f"duplicate stack id {stack.id!r} (also in {seen_stack[stack.id]!r})")
                seen_stack[stack.id] = ent.id
                for dev in stack.devices:
                    if dev.mn in seen_mn:
                        raise ValueError(f"duplicate MN {dev.mn!r} on stack {stack.id!r} (also on {seen_mn[dev.mn]!r})")
                    seen_mn[dev.mn] = stack.id
        return self

    # -- look-ups ----------------------------------------------------------------------
    def stacks(self) -> list[tuple[Enterprise, Stack]]:
        return [(e, s) for e in self.enterprises for s in e.stacks]

    def device_index(self) -> dict[str, tuple[Enterprise, Stack, Device]]:
        return {d.mn: (e, s, d) for e, s in self.stacks() for d in s.devices}

    def stack_index(self) -> dict[str, tuple[Enterprise, Stack]]:
        return {s.id: (e, s) for e, s in self.stacks()}


def _where(registry: dict[str, object], loc: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as a path with entry ids, e.g.
    ``enterprises[jy-power-1].stacks[jy-power-1-s1].parameters``."""
    parts: list[str] = []
    node: object = registry
    for key in loc:
        if isinstance(key, int) and isinstance(node, list):
            node = node[key] if key < len(node) else None
            ident = node.get("id") or node.get("mn") if isinstance(node, dict) else None
            parts[-1] = f"{parts[-1]}[{ident if ident else key}]"
        else:
            parts.append(str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


def load_registry(path: Path | str = SAMPLE_REGISTRY) -> Registry:
    path = Path(path)
    try:
        raw = load_yaml_mapping(path)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(": file not found", ": registry file not found")) from exc
    if raw.get("version") != REGISTRY_VERSION:
        raise ConfigError(f"{path}: key 'version' must be {REGISTRY_VERSION}, got {raw.get('version')!r}")
    try:
        return Registry.model_validate(raw)
    except ValidationError as exc:
        raise config_error(path, exc, lambda loc: _where(raw, loc)) from exc
