"""Building blocks for rule tests: profiles, readings, and a replay loop over the engine."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.alerts import AlertEvent, HourlyAverage, HourlyStatus
from contracts.emergency import EmergencyResponse, Level
from contracts.parameters import PARAMETERS
from contracts.reading import DataFlag, DataKind, Measurement, Reading, Source
from contracts.registry import BypassInstrument, EmergencyPlan, FacilityRole, FacilityType, Industry, Measure
from rules.config import FacilityProfile, RuleSettings, StackProfile, meter_key
from rules.engine import DetectionEngine
from rules.replay import ReplayDriver

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def profile(
    stack: str = "s1",
    *,
    industry: Industry = Industry.COAL_POWER,
    reference_o2_pct: float = 6.0,
    limits: dict[str, float] | None = None,
    converted: Iterable[str] = ("so2", "nox", "pm", "nh3"),
    parameters: Iterable[str] = ("flow", "temperature", "humidity", "o2", "so2", "nox", "pm"),
    bypass: BypassInstrument = BypassInstrument.NONE,
    wet: bool = False,
    interval_s: int = 60,
) -> StackProfile:
    params = frozenset(parameters)
    lim = limits if limits is not None else {"so2": 35.0, "nox": 50.0, "pm": 10.0}
    return StackProfile(
        enterprise="e1",
        stack=stack,
        industry=industry,
        reference_o2_pct=reference_o2_pct,
        limits_mg_m3={k: v for k, v in lim.items() if k in params},
        o2_converted=frozenset(converted),
        parameters=params,
        bypass_present=bypass is not BypassInstrument.NONE,
        bypass_instrument=bypass,
        wet_desulphurisation=wet,
        reporting_interval_s=interval_s,
    )


def reading(
    t: datetime,
    stack: str = "s1",
    flags: dict[str, DataFlag] | None = None,
    zs: dict[str, float] | None = None,
    **values: float,
) -> Reading:
    return reading_of(t, values, stack, flags, zs)


def reading_of(
    t: datetime,
    values: Mapping[str, float],
    stack: str = "s1",
    flags: Mapping[str, DataFlag] | None = None,
    zs: Mapping[str, float] | None = None,
) -> Reading:
    flags = flags or {}
    zs = zs or {}
    return Reading(
        enterprise="e1",
        stack=stack,
        mn=f"MN-{stack}",
        event_time=t,
        kind=DataKind.REALTIME,
        values={
            name: Measurement(
                value=v, unit=PARAMETERS[name].unit, flag=flags.get(name, DataFlag.NORMAL), zs=zs.get(name)
            )
            for name, v in values.items()
        },
        source=Source.MQTT_JSON,
        received_at=t,
    )


BASE = {"flow": 100.0, "temperature": 50.0, "humidity": 12.0, "o2": 6.0, "so2": 20.0, "nox": 30.0, "pm": 5.0}


def minutes(start: datetime, count: int, stack: str = "s1", jitter: float = 0.01, **overrides: float) -> list[Reading]:
    """One reading per minute (at :30) with BASE values and overrides, plus an alternating
    +/- ``jitter`` (relative) that averages out over any even number of minutes, as a live
    analyser's noise would not let values sit perfectly still."""
    values = {**BASE, **overrides}
    out = []
    for i in range(count):
        sign = 1 if i % 2 == 0 else -1
        noisy = {k: v * (1 + sign * jitter) for k, v in values.items()}
        out.append(reading_of(start + timedelta(minutes=i, seconds=30), noisy, stack))
    return out


def run(
    engine_profiles: Iterable[StackProfile],
    readings: Iterable[Reading],
    settings: RuleSettings | None = None,
    until: datetime | None = None,
    tick_every: timedelta = timedelta(minutes=1),
    tick_start: datetime | None = None,
) -> tuple[list[AlertEvent], list[HourlyAverage]]:
    """Feed readings in arrival order with now = latest event time; tick every stack each minute;
    tick on (judging silence) until ``until``; no end-of-input flush, so the last hour stays open
    unless ``until`` closes it."""
    engine = DetectionEngine({p.stack: p for p in engine_profiles}, settings or RuleSettings())
    driver = ReplayDriver(engine, tick_every=tick_every, tick_start=tick_start).feed_all(readings)
    if until is not None:
        driver.advance_to(until)
    return driver.result.events, driver.result.hourly


def summary(events: Iterable[AlertEvent]) -> list[tuple[str, str, str | None, str, str | None]]:
    """(event, kind, parameter, start, end) tuples, for readable assertions."""
    return [
        (
            e.event.value,
            e.kind.value,
            e.parameter,
            e.start.strftime("%H:%M"),
            e.end.strftime("%H:%M") if e.end else None,
        )
        for e in events
    ]


# -- facilities, meters and emergency responses (rules.emergency) --------------------------------
def facility_profile(
    facility_id: str,
    *,
    role: FacilityRole = FacilityRole.PRODUCTION,
    type_: FacilityType | None = None,
    running_kw: float = 100.0,
    normal_kw: float = 1000.0,
    treats: Iterable[str] = (),
) -> FacilityProfile:
    default_type = FacilityType.BOILER if role is FacilityRole.PRODUCTION else FacilityType.FGD
    return FacilityProfile(
        id=facility_id, role=role, type=type_ or default_type, running_kw=running_kw, normal_kw=normal_kw,
        treats=tuple(treats),
    )  # fmt: skip


def emergency_profile(
    stack: str = "s1",
    *,
    facilities: Iterable[FacilityProfile] = (),
    reduction: Mapping[Level, Iterable[Measure]] | None = None,
    lead_time_h: float = 0.0,
    baseline_days: int = 3,
    targets_pct: Mapping[Level, Mapping[str, float]] | None = None,
    district: str = "d1",
    enterprise: str = "e1",
    **kwargs: Any,
) -> StackProfile:
    """``profile(...)`` with facilities, a reduction list, a lead time and the zone's plan."""
    return profile(stack, **kwargs).model_copy(
        update={
            "enterprise": enterprise,
            "district": district,
            "facilities": tuple(facilities),
            "reduction": {level: tuple(ms) for level, ms in (reduction or {}).items()},
            "lead_time_s": round(lead_time_h * 3600),
            "emergency_plan": EmergencyPlan(
                baseline_days=baseline_days,
                targets_pct={level: dict(t) for level, t in (targets_pct or {}).items()},
            ),
        }
    )


def emergency_response(
    start: datetime,
    end: datetime | None = None,
    *,
    response_id: str = "r1",
    level: Level = Level.ORANGE,
    districts: Iterable[str] = (),
    revision: int = 1,
) -> EmergencyResponse:
    return EmergencyResponse(
        id=response_id, level=level, districts=tuple(districts), start=start, end=end, revision=revision,
        declared_by="centre", declared_at=start,
    )  # fmt: skip


def meter_reading(t: datetime, facility: str, power_kw: float, stack: str = "s1") -> Reading:
    """A facility meter's reading (keyed by the stack it exhausts to)."""
    return Reading(
        enterprise="e1", stack=stack, mn=f"MN-{facility}", event_time=t, kind=DataKind.REALTIME,
        values={"power": Measurement(value=power_kw, unit=PARAMETERS["power"].unit)}, source=Source.MQTT_JSON,
        received_at=t, facility=facility,
    )  # fmt: skip


def hour_averages(
    hour: datetime,
    stack: str = "s1",
    *,
    emission_kg_h: Mapping[str, float | None] | None = None,
    power_kw: Mapping[str, float | None] | None = None,
    flow: float | None = None,
) -> dict[str, HourlyAverage]:
    """One closed hour's averages as ``rules.aggregation.hourly_averages`` gives them, built by
    hand: pollutants with their emission rate (kg/h; None: not computable), facilities' power
    under ``<facility>/power`` (None: under 45 valid minutes), the stack's flow (m3/s)."""

    def avg(name: str, mean: float | None, emission: float | None = None) -> HourlyAverage:
        return HourlyAverage(
            enterprise="e1", stack=stack, parameter=name, hour_start=hour,
            status=HourlyStatus.VALID if mean is not None else HourlyStatus.INSUFFICIENT,
            valid_minutes=60 if mean is not None else 0, mean=mean, converted=mean, o2_converted=False, limit=None,
            o2_mean=None, reference_o2_pct=None, flag_minutes={}, emission_kg_h=emission,
        )  # fmt: skip

    out = {}
    for name, rate in (emission_kg_h or {}).items():
        out[name] = avg(name, None if rate is None else 10.0, rate)
    for fac, kw in (power_kw or {}).items():
        out[meter_key(fac, "power")] = avg(meter_key(fac, "power"), kw)
    if flow is not None:
        out["flow"] = avg("flow", flow)
    return out
