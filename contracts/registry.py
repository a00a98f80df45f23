"""The device registry: enterprises, their stacks and the devices (数采仪) that report them.

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

from .errors import ConfigError, config_error
from .parameters import DERIVED_FROM, PARAMETERS, Unit, computable
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
                problems.append((("parameters", name), f"unknown parameter; known: {', '.join(sorted(PARAMETERS))}"))
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
                        msg = f"duplicate MN {dev.mn!r} (also on stack {seen_mn[dev.mn]!r})"
                        problems.append(((*where, "devices", k, "mn"), msg))
                    seen_mn.setdefault(dev.mn, stack.id)
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
    if raw.get("version") != REGISTRY_VERSION:
        raise ConfigError(f"{path}: key 'version' must be {REGISTRY_VERSION}, got {raw.get('version')!r}")
    try:
        registry = Registry.model_validate(raw)
    except ValidationError as exc:
        raise config_error(path, exc, lambda loc: _where(raw, loc)) from exc
    registry._source = str(path)
    return registry
