"""Bypass detection: measured where the bypass is instrumented, inferred from signatures
where not. Evaluated per closed minute; a signal must hold ``persist_minutes`` in a row.

Signals and their confidence:

- ``damper_open`` (0.95): the bypass damper opening at or above ``damper_open_pct``;
- ``bypass_duct_flow`` (0.95): flow in the bypass duct at or above ``duct_flow_m3_s``;
- ``bypass_duct_hot`` (0.85): the bypass duct at or above ``duct_temperature_c``;
- ``flow_collapse_under_load`` (0.7): main-stack flow below ``flow_collapse_ratio`` of its
  baseline while the load stays at or above ``load_running_pct``;
- ``scrubber_bypass_signature`` (0.6): after wet desulphurisation, the stack too hot or too dry
  while the unit runs (flue gas going round the scrubber);
- ``dilution`` (0.5): O2 rising to ``dilution_o2_pct`` from a lower baseline while raw
  concentrations fall below ``dilution_drop_ratio`` of theirs;
- ``production_without_flow`` (0.7): a metered production facility on the stack at normal load
  (``electricity.normal_load_ratio``) while the stack's flow is under ``electricity.no_flow_ratio``
  of its baseline (before one is learnt: at most ``electricity.zero_flow_m3_s``).
"""

from __future__ import annotations

from typing import Any, cast

from contracts.alerts import AlertEvent, AlertKind, Severity
from contracts.registry import FacilityRole

from .aggregation import MINUTE
from .alerts import activate, deactivate
from .config import RuleSettings, StackProfile
from .state import Minute, StackState

SIGNALS = (
    "damper_open",
    "bypass_duct_flow",
    "bypass_duct_hot",
    "flow_collapse_under_load",
    "scrubber_bypass_signature",
    "dilution",
    "production_without_flow",
)
BASELINE_PARAMETERS = ("flow", "o2", "so2", "nox", "pm", "nmhc", "temperature", "humidity")
_NO_RUNS = dict.fromkeys(SIGNALS, 0)
_BYPASS = AlertKind.BYPASS.value  # how the bypass alert is keyed in ``StackState.alerts``


def valid_values(minutes: dict[str, Minute]) -> dict[str, float]:
    """The minute's value of each parameter that has a valid one (a valid minute has a value)."""
    return cast(dict[str, float], {name: m.value for name, m in minutes.items() if m.valid})


def learnt_baselines(state: StackState, settings: RuleSettings) -> dict[str, float]:
    """The baselines, once learnt from enough normal minutes (none before)."""
    return {} if state.baseline_minutes < settings.bypass.baseline_min_minutes else state.baselines


def unit_running(state: StackState, settings: RuleSettings, minutes: dict[str, Minute]) -> bool:
    return _running(settings, valid_values(minutes), learnt_baselines(state, settings))


def _running(settings: RuleSettings, values: dict[str, float], bases: dict[str, float]) -> bool:
    flow = values.get("flow")
    if flow is None:
        return False
    base = bases.get("flow")
    return flow > 0 if base is None else flow >= settings.running_flow_ratio * base


def signals(
    profile: StackProfile, settings: RuleSettings, values: dict[str, float], bases: dict[str, float], running: bool
) -> dict[str, tuple[float, dict[str, Any]]]:
    """The bypass signals in one minute's valid ``values`` (against the ``bases`` learnt so far;
    ``running``: whether the unit runs in it), with their confidence and details."""
    bp = settings.bypass
    out: dict[str, tuple[float, dict[str, Any]]] = {}
    damper = values.get("bypass_damper")
    if damper is not None and damper >= bp.damper_open_pct:
        out["damper_open"] = (0.95, {"damper_pct": round(damper, 2)})
    duct_flow = values.get("bypass_flow")
    if duct_flow is not None and duct_flow >= bp.duct_flow_m3_s:
        out["bypass_duct_flow"] = (0.95, {"bypass_flow_m3_s": round(duct_flow, 3)})
    duct_temp = values.get("bypass_temperature")
    if duct_temp is not None and duct_temp >= bp.duct_temperature_c:
        out["bypass_duct_hot"] = (0.85, {"bypass_temperature_c": round(duct_temp, 2)})
    flow, load = values.get("flow"), values.get("load")
    base_flow = bases.get("flow")
    if (
        flow is not None
        and load is not None
        and base_flow
        and load >= bp.load_running_pct
        and flow < bp.flow_collapse_ratio * base_flow
    ):
        out["flow_collapse_under_load"] = (
            0.7,
            {"flow_m3_s": round(flow, 3), "baseline_flow_m3_s": round(base_flow, 3), "load_pct": round(load, 1)},
        )
    if profile.wet_desulphurisation and running:
        temp, hum = values.get("temperature"), values.get("humidity")
        too_hot = temp is not None and temp > bp.wet_fgd_max_temperature_c
        too_dry = hum is not None and hum < bp.wet_fgd_min_humidity_pct
        if too_hot or too_dry:
            out["scrubber_bypass_signature"] = (
                0.6,
                {"temperature_c": None if temp is None else round(temp, 2),
                 "humidity_pct": None if hum is None else round(hum, 2)},
            )  # fmt: skip
    o2, base_o2 = values.get("o2"), bases.get("o2")
    if running and o2 is not None and base_o2 is not None and o2 >= bp.dilution_o2_pct > base_o2 + 3:
        drops = {}
        for name in ("so2", "nox", "pm", "nmhc"):
            value, base = values.get(name), bases.get(name)
            if value is not None and base and value < bp.dilution_drop_ratio * base:
                drops[name] = {"value": round(value, 3), "baseline": round(base, 3)}
        if drops:
            out["dilution"] = (0.5, {"o2_pct": round(o2, 2), "baseline_o2_pct": round(base_o2, 2), "falling": drops})
    if flow is not None and profile.facilities:
        es = settings.electricity
        if flow < es.no_flow_ratio * base_flow if base_flow else flow <= es.zero_flow_m3_s:
            producing = {
                f.id: round(kw, 3)
                for f in profile.facilities
                if f.role is FacilityRole.PRODUCTION and (kw := values.get(f.key)) is not None
                and es.at_normal_load(f, kw)
            }  # fmt: skip
            if producing:
                base = None if base_flow is None else round(base_flow, 3)
                out["production_without_flow"] = (
                    0.7,
                    {"flow_m3_s": round(flow, 3), "baseline_flow_m3_s": base, "production_kw": producing},
                )
    return out


def on_minute_closed(
    state: StackState, profile: StackProfile, settings: RuleSettings, minute: int, minutes: dict[str, Minute]
) -> list[AlertEvent]:
    bp = settings.bypass
    values, bases = valid_values(minutes), learnt_baselines(state, settings)
    running = _running(settings, values, bases)
    found = signals(profile, settings, values, bases, running)
    runs = state.bypass_runs
    if found:
        for name in SIGNALS:
            runs[name] = runs.get(name, 0) + 1 if name in found else 0
        confirmed = {n: s for n, s in found.items() if runs[n] >= bp.persist_minutes}
    else:  # the usual minute: no signal, every run is broken
        runs.update(_NO_RUNS)
        confirmed = {}
        if running:
            _update_baselines(state, settings, values)
    at = minute + MINUTE
    if not confirmed:
        if (_BYPASS, None) not in state.alerts:
            return []  # nothing open to resolve
        return deactivate(state, profile, AlertKind.BYPASS, None, at=at, hold_down_s=bp.hold_down_s)
    longest = max(state.bypass_runs[n] for n in confirmed)
    confidence = max(c for c, _ in confirmed.values())
    evidence = {
        "confidence": confidence,
        "signals": sorted(confirmed),
        "details": {n: d for n, (_, d) in confirmed.items()},
        "instrumented": profile.bypass_instrument.value,
    }
    measured = any(n in ("damper_open", "bypass_duct_flow", "bypass_duct_hot") for n in confirmed)
    reason = f"bypass {'measured' if measured else 'suspected'}: {', '.join(sorted(confirmed))}"
    return activate(
        state, profile, AlertKind.BYPASS, None, at=at, start=minute - (longest - 1) * MINUTE,
        severity=Severity.CRITICAL, reason=reason, evidence=evidence, update_every_s=bp.hold_down_s,
    )  # fmt: skip


def _update_baselines(state: StackState, settings: RuleSettings, values: dict[str, float]) -> None:
    alpha = settings.bypass.baseline_alpha
    baselines = state.baselines
    updated = False
    for name in BASELINE_PARAMETERS:
        value = values.get(name)
        if value is None:
            continue
        old = baselines.get(name)
        baselines[name] = value if old is None else old + alpha * (value - old)
        updated = True
    if updated:
        state.baseline_minutes += 1
