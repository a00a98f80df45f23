"""Invariants of the detection rules (Hypothesis)."""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.alerts import AlertEvent, AlertKind
from contracts.reading import Reading
from contracts.registry import BypassInstrument
from rules.config import RuleSettings
from tests.rulekit import T0, minutes, profile, run

M = timedelta(minutes=1)
H = timedelta(hours=1)
GRACE = RuleSettings().grace_s


@st.composite
def scenarios(draw: st.DrawFn) -> list[Reading]:
    """Two stacks, three hours: per hour an SO2 level and O2, sometimes an open damper."""
    readings: list[Reading] = []
    for stack in ("s1", "s2"):
        for hour in range(3):
            so2 = draw(st.sampled_from([15.0, 28.0, 33.0, 45.0, 80.0]))
            o2 = draw(st.sampled_from([6.0, 8.0, 10.0]))
            damper_from = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=50)))
            start = T0 + hour * H
            if damper_from is None:
                readings += minutes(start, 60, stack, so2=so2, o2=o2, bypass_damper=0.0)
            else:
                readings += minutes(start, damper_from, stack, so2=so2, o2=o2, bypass_damper=0.0)
                readings += minutes(
                    start + damper_from * M, 60 - damper_from, stack, so2=so2, o2=o2, bypass_damper=70.0
                )
    return sorted(readings, key=lambda r: r.event_time)


PROFILES = [
    profile(s, parameters=("flow", "temperature", "humidity", "o2", "so2", "nox", "pm", "bypass_damper"),
            bypass=BypassInstrument.DAMPER)
    for s in ("s1", "s2")
]  # fmt: skip
END = T0 + 3 * H + 10 * M


def canonical(events: list[AlertEvent]) -> list[str]:
    return sorted(e.model_dump_json() for e in events)


@given(scenarios(), st.integers(min_value=0, max_value=2**32))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_reordering_within_the_grace_period_changes_no_alert(readings: list[Reading], seed: int) -> None:
    # each reading is delayed by less than the grace period: arrival key = event time + delay
    rnd = random.Random(seed)
    delayed = sorted(readings, key=lambda r: r.event_time + timedelta(seconds=rnd.uniform(0, GRACE - 1)))
    assert delayed != readings  # with ~700 readings a minute apart and delays up to 5 min, order changes
    expected, hourly_a = run(PROFILES, readings, until=END, tick_start=T0)
    got, hourly_b = run(PROFILES, delayed, until=END, tick_start=T0)
    assert canonical(got) == canonical(expected)
    assert sorted(h.model_dump_json() for h in hourly_b) == sorted(h.model_dump_json() for h in hourly_a)


@given(scenarios(), st.floats(min_value=5, max_value=34))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_lowering_a_limit_never_removes_an_exceedance(readings: list[Reading], lower: float) -> None:
    strict = [p.model_copy(update={"limits_mg_m3": {**p.limits_mg_m3, "so2": lower}}) for p in PROFILES]
    _, hourly = run(PROFILES, readings, until=END, tick_start=T0)
    strict_events, strict_hourly = run(strict, readings, until=END, tick_start=T0)
    exceeding = {(h.stack, h.hour_start) for h in hourly if h.parameter == "so2" and h.exceeds}
    strict_exceeding = {(h.stack, h.hour_start) for h in strict_hourly if h.parameter == "so2" and h.exceeds}
    assert exceeding <= strict_exceeding
    episodes = [e for e in strict_events if e.kind is AlertKind.EXCEEDANCE and e.parameter == "so2"]
    for stack, hour in exceeding:
        assert any(e.stack == stack and e.start <= hour and (e.end is None or e.end > hour) for e in episodes)


@given(scenarios())
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_replaying_the_same_input_twice_gives_the_same_alerts(readings: list[Reading]) -> None:
    first, _ = run(PROFILES, readings, until=END, tick_start=T0)
    second, _ = run(PROFILES, readings, until=END, tick_start=T0)
    assert [e.model_dump_json() for e in first] == [e.model_dump_json() for e in second]


@given(
    st.lists(st.integers(min_value=1, max_value=60), min_size=30, max_size=200),
    st.sampled_from([60, 120, 300]),
)
@settings(max_examples=40, deadline=None)
def test_no_gap_alert_when_readings_arrive_within_the_expected_interval(steps: list[int], interval: int) -> None:
    p = profile(interval_s=interval)
    readings = []
    t = T0
    for i, step in enumerate(steps):
        t += timedelta(seconds=step * interval // 60)
        readings.append(minutes(t, 1, jitter=0.0, so2=20.0 + i % 3)[0].model_copy(update={"event_time": t}))
    events, _ = run([p], readings, tick_start=T0)
    assert [e for e in events if e.kind is AlertKind.DATA_GAP] == []
