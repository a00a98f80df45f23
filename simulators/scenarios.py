"""Fault scenarios in YAML, applied onto a fleet, each with the alerts it must cause.

A scenario lists faults; each names a stack, a time window (minutes from the scenario
start) and its parameters. ``Scenario.overrides(stack, minute)`` tells the stack model what
to change; ``Scenario.delivery(stack, minute)`` says whether and how the reading travels
(silence, clock skew, duplicates, malformed packets); ``ground_truth()`` lists the alerts and
dead letters the system should produce, with the window their start must fall in.

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
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.errors import config_error
from contracts.reading import DataFlag
from contracts.yamlfile import load_yaml_mapping
from rules.config import RuleSettings

from .models import Overrides

SCENARIO_DIR = Path(__file__).with_name("scenarios")

FaultType = Literal[
    "exceedance", "drift", "ammonia_slip", "voc_exceedance", "bypass", "silent", "never_reports", "mark",
    "flatline", "hugging", "wrong_zs", "clock_skew", "malformed", "duplicates",
]  # fmt: skip


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FaultType
    stack: str
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

    def active(self, minute: int) -> bool:
        return self.from_min <= minute and (self.to_min is None or minute < self.to_min)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    name: str
    description: str = ""
    duration_min: int = Field(gt=0)
    faults: list[Fault] = Field(default_factory=list)

    # -- what the model should do ---------------------------------------------------------------
    def overrides(self, stack: str, minute: int) -> Overrides:
        o = Overrides()
        for f in self.faults:
            if f.stack != stack or not f.active(minute):
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
    def ground_truth(self, start: datetime, settings: RuleSettings | None = None) -> dict[str, Any]:
        caps = (settings or RuleSettings()).mark_caps_s
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


def load_scenario(name_or_path: str | Path) -> Scenario:
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
    data = load_yaml_mapping(path)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise config_error(path, exc) from exc


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
