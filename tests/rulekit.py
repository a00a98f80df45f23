"""Building blocks for rule tests: profiles, readings, and a replay loop over the engine."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from contracts.alerts import AlertEvent, HourlyAverage
from contracts.parameters import PARAMETERS
from contracts.reading import DataFlag, DataKind, Measurement, Reading, Source
from contracts.registry import BypassInstrument, Industry
from rules.config import RuleSettings, StackProfile
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
