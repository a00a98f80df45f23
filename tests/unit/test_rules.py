"""Detection rules, table-driven, with expectations computed by hand from HJ 75 / the reference."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts.alerts import AlertEventType, AlertKind, HourlyStatus
from contracts.reading import DataFlag
from contracts.registry import BypassInstrument, Industry
from rules.config import RuleSettings
from rules.conversion import emission_rate_kg_h, nox_as_no2, o2_converted, ppm_to_mg_m3, standard_dry_flow_m3_h
from tests.rulekit import T0, minutes, profile, reading, reading_of, run, summary

H = timedelta(hours=1)
M = timedelta(minutes=1)
S = timedelta(seconds=1)


def opened(events, kind):  # type: ignore[no-untyped-def]
    return [e for e in events if e.event is AlertEventType.OPENED and e.kind is kind]


# -- formulas ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("c", "o2", "ref", "expected"),
    [
        (30, 9, 6, 37.5),  # SO2 30 at O2 9 % with reference 6 % -> 37.5 (exceeds 35)
        (40, 18, 16, 66.667),  # sinter NOx 40 at O2 18 % with reference 16 % -> 66.7 (exceeds 50)
        (10, 6, 6, 10.0),
        (50, 15, 10, 91.667),
    ],
)
def test_o2_conversion(c: float, o2: float, ref: float, expected: float) -> None:
    assert o2_converted(c, o2, ref) == pytest.approx(expected, abs=1e-3)


def test_unit_conversions_and_emission_rate() -> None:
    assert nox_as_no2(20, 0) == pytest.approx(30.667, abs=1e-3)
    assert ppm_to_mg_m3(3, 17) == pytest.approx(2.277, abs=1e-3)
    # 100 m3/s at 50 C, +1.2 kPa, 12 % moisture: 360000 * 273/323 * 102.525/101.325 * 0.88
    qsn = standard_dry_flow_m3_h(100, 50, 1.2, 12)
    assert qsn == pytest.approx(360000 * 273 / 323 * 102.525 / 101.325 * 0.88)
    assert emission_rate_kg_h(30, qsn) == pytest.approx(30 * qsn * 1e-6)


# -- hourly exceedance --------------------------------------------------------------------------
def test_converted_hourly_average_above_limit_opens_and_clean_hour_resolves() -> None:
    events, hourly = run([profile()], minutes(T0, 60, so2=30.0, o2=9.0) + minutes(T0 + H, 60), until=T0 + 2 * H + 6 * M)
    so2 = [h for h in hourly if h.parameter == "so2"]
    assert [(h.status, h.valid_minutes, round(h.converted or 0, 3)) for h in so2] == [
        (HourlyStatus.VALID, 60, 37.5),
        (HourlyStatus.VALID, 60, 20.0),
    ]
    exc = [e for e in events if e.kind is AlertKind.EXCEEDANCE]
    assert summary(exc) == [
        ("opened", "exceedance", "so2", "00:00", None),
        ("resolved", "exceedance", "so2", "00:00", "01:00"),
    ]
    evidence = exc[0].evidence
    assert evidence["converted_mg_m3"] == pytest.approx(37.5)
    assert evidence["average_mg_m3"] == pytest.approx(30.0)
    assert evidence["limit_mg_m3"] == 35.0
    assert evidence["valid_minutes"] == 60
    assert evidence["o2_pct"] == pytest.approx(9.0)
    assert evidence["reference_o2_pct"] == 6.0
    assert evidence["ratio"] == pytest.approx(37.5 / 35, abs=1e-4)


@pytest.mark.parametrize(("valid", "exceeds"), [(44, False), (45, True)])
def test_an_hour_needs_45_valid_minutes(valid: int, exceeds: bool) -> None:
    rs = minutes(T0, valid, so2=30.0, o2=9.0)
    events, hourly = run([profile()], rs, until=T0 + H + 6 * M)
    (so2,) = [h for h in hourly if h.parameter == "so2"]
    assert so2.valid_minutes == valid
    assert (so2.status is HourlyStatus.VALID) == exceeds
    assert bool(opened(events, AlertKind.EXCEEDANCE)) == exceeds


def test_calibration_minutes_do_not_count_and_are_recorded() -> None:
    good = minutes(T0, 40, so2=30.0, o2=9.0)
    cal = [
        reading(
            T0 + (40 + i) * M + 30 * timedelta(seconds=1),
            flags={"so2": DataFlag.CALIBRATION},
            so2=80.0,
            o2=9.0,
            flow=100.0,
        )
        for i in range(20)
    ]
    events, hourly = run([profile()], good + cal, until=T0 + H + 6 * M)
    (so2,) = [h for h in hourly if h.parameter == "so2"]
    assert so2.status is HourlyStatus.INSUFFICIENT
    assert so2.valid_minutes == 40
    assert so2.flag_minutes == {"C": 20}
    assert not opened(events, AlertKind.EXCEEDANCE)


def test_o2_near_ambient_is_not_converted_and_not_judged() -> None:
    events, hourly = run([profile()], minutes(T0, 60, so2=5.0, o2=20.0), until=T0 + H + 6 * M)
    (so2,) = [h for h in hourly if h.parameter == "so2"]
    assert so2.status is HourlyStatus.NOT_CONVERTIBLE
    assert so2.converted is None
    assert not opened(events, AlertKind.EXCEEDANCE)


@pytest.mark.parametrize(
    ("prof", "values", "parameter", "converted"),
    [
        (profile(industry=Industry.STEEL_SINTER, reference_o2_pct=16), {"nox": 40.0, "o2": 18.0}, "nox", 66.667),
        (
            profile(parameters=("flow", "o2", "nh3"), limits={"nh3": 2.5}),
            {"nh3": 2.2, "o2": 9.0},
            "nh3",
            2.75,  # ammonia slip 2.2 at O2 9 -> 2.75 > 2.5 (SCR)
        ),
        (
            profile(industry=Industry.CHEMICAL, parameters=("flow", "o2", "nmhc"), limits={"nmhc": 60}, converted=()),
            {"nmhc": 65.0, "o2": 15.0},
            "nmhc",
            65.0,  # VOC stacks: NMHC judged as measured
        ),
    ],
)
def test_same_machinery_for_sinter_nox_ammonia_slip_and_vocs(prof, values, parameter, converted) -> None:  # type: ignore[no-untyped-def]
    events, hourly = run([prof], minutes(T0, 60, **values), until=T0 + H + 6 * M)
    (avg,) = [h for h in hourly if h.parameter == parameter]
    assert avg.converted == pytest.approx(converted, abs=1e-3)
    assert [e.parameter for e in opened(events, AlertKind.EXCEEDANCE)] == [parameter]


def test_lower_limit_override_applies() -> None:
    strict = profile(limits={"so2": 15.0, "nox": 50, "pm": 10})
    events, _ = run([strict], minutes(T0, 60, so2=16.0), until=T0 + H + 6 * M)
    assert [e.parameter for e in opened(events, AlertKind.EXCEEDANCE)] == ["so2"]


# -- early warning ------------------------------------------------------------------------------
def test_early_warning_when_exceedance_certain_before_the_hour_ends() -> None:
    # 40 minutes at 100 mg/m3 (O2 = reference): even 20 more minutes at 0 give 66.7 > 35
    rs = minutes(T0, 40, jitter=0.0, so2=100.0) + minutes(T0 + 40 * M, 20, jitter=0.0, so2=0.0)
    events, _ = run([profile()], rs, until=T0 + H + 6 * M)
    warnings = [e for e in events if e.kind is AlertKind.EARLY_WARNING]
    likely, certain = warnings[0], warnings[1]
    assert (likely.event, likely.evidence["certain"]) == (AlertEventType.OPENED, False)
    assert likely.at == T0 + 15 * M  # 15 valid minutes with a running average above the limit
    assert (certain.event, certain.evidence["certain"]) == (AlertEventType.UPDATED, True)
    assert certain.at == T0 + 22 * M  # 100 * 22 / 60 = 36.7 > 35 even if the rest were 0
    resolved = [e for e in events if e.kind is AlertKind.EARLY_WARNING and e.event is AlertEventType.RESOLVED]
    assert resolved[0].evidence["outcome"] == "exceeded"


def test_no_early_warning_for_a_clean_hour() -> None:
    events, _ = run([profile()], minutes(T0, 60, so2=20.0), until=T0 + H + 6 * M)
    assert not opened(events, AlertKind.EARLY_WARNING)


# -- bypass ---------------------------------------------------------------------------------------
def test_damper_opening_is_a_measured_bypass_resolved_after_hold_down() -> None:
    p = profile(parameters=("flow", "o2", "so2", "bypass_damper"), bypass=BypassInstrument.DAMPER)
    rs = (
        minutes(T0, 30, bypass_damper=0.0)
        + minutes(T0 + 30 * M, 10, bypass_damper=60.0)
        + minutes(T0 + 40 * M, 40, bypass_damper=0.0)
    )
    events, _ = run([p], rs)
    bypass = [e for e in events if e.kind is AlertKind.BYPASS]
    assert [e.event for e in bypass] == [AlertEventType.OPENED, AlertEventType.RESOLVED]
    assert bypass[0].start == T0 + 30 * M
    assert bypass[0].evidence["signals"] == ["damper_open"]
    assert bypass[0].evidence["confidence"] == 0.95
    assert bypass[1].end == T0 + 40 * M


def test_wet_scrubber_signature_without_instrumentation() -> None:
    p = profile(wet=True)
    rs = minutes(T0, 60) + minutes(T0 + H, 10, temperature=120.0, humidity=3.0) + minutes(T0 + H + 10 * M, 30)
    events, _ = run([p], rs)
    (bypass,) = opened(events, AlertKind.BYPASS)
    assert bypass.evidence["signals"] == ["scrubber_bypass_signature"]
    assert bypass.evidence["confidence"] == 0.6
    assert bypass.start == T0 + H


def test_flow_collapse_while_load_continues() -> None:
    p = profile(parameters=("flow", "o2", "so2", "load"))
    rs = minutes(T0, 60, load=90.0) + minutes(T0 + H, 10, load=90.0, flow=20.0)
    events, _ = run([p], rs)
    (bypass,) = opened(events, AlertKind.BYPASS)
    assert "flow_collapse_under_load" in bypass.evidence["signals"]


def test_normal_operation_raises_no_bypass() -> None:
    events, _ = run([profile(wet=True)], minutes(T0, 180))
    assert not opened(events, AlertKind.BYPASS)


# -- gaps and marks -------------------------------------------------------------------------------
def test_silent_stack_gap_opens_from_the_watermark_and_resolves_on_data() -> None:
    quiet, other = profile("s1"), profile("s2")
    rs = sorted(
        minutes(T0, 20, "s1") + minutes(T0 + 40 * M, 20, "s1") + minutes(T0, 60, "s2"), key=lambda r: r.event_time
    )
    events, _ = run([quiet, other], rs)
    gaps = [e for e in events if e.kind is AlertKind.DATA_GAP]
    assert summary(gaps) == [
        ("opened", "data_gap", None, "00:20", None),
        ("resolved", "data_gap", None, "00:20", "00:40"),
    ]
    assert gaps[0].stack == "s1"
    assert gaps[0].at < T0 + 40 * M  # decided while s1 was still silent, from s2's progress


def test_a_gap_resolves_after_the_backfill_wait_naming_what_the_device_sent_when_asked() -> None:
    """Timeline: s1 silent 00:20-00:40; its reading at 00:40:30 ends the gap; the device's
    answers for 00:25-00:30 arrive after it (backfilled); the gap resolves 60 s of event time
    after 00:40:30, ending at 00:40:30, with the six backfilled readings in its evidence."""
    s1 = minutes(T0, 20, "s1") + minutes(T0 + 40 * M, 20, "s1")
    asked = [r.model_copy(update={"backfilled": True}) for r in minutes(T0 + 25 * M, 6, "s1")]
    by_time = sorted(s1 + minutes(T0, 60, "s2"), key=lambda r: r.event_time)
    resumed = next(i for i, r in enumerate(by_time) if r.stack == "s1" and r.event_time > T0 + 40 * M)
    arrivals = by_time[: resumed + 1] + asked + by_time[resumed + 1 :]
    events, _ = run([profile("s1"), profile("s2")], arrivals)
    opened_, resolved = [e for e in events if e.kind is AlertKind.DATA_GAP]
    assert resolved.event.value == "resolved" and resolved.alert_id == opened_.alert_id
    assert resolved.end == T0 + 40 * M + 30 * S
    assert T0 + 41 * M + 30 * S <= resolved.at < T0 + 43 * M  # held for the answers: 60 s, ticked each minute
    assert resolved.evidence["reporting_again_at"] == (T0 + 40 * M + 30 * S).isoformat()
    assert resolved.evidence["backfilled_readings"] == 6
    assert (resolved.evidence["backfilled_from"], resolved.evidence["backfilled_to"]) == (
        (T0 + 25 * M + 30 * S).isoformat(),
        (T0 + 30 * M + 30 * S).isoformat(),
    )
    # without answers the resolution says so
    events, _ = run([profile("s1"), profile("s2")], by_time)
    assert [e.evidence["backfilled_readings"] for e in events if e.event.value == "resolved"] == [0]


def test_stack_never_heard_from() -> None:
    events, _ = run([profile("s1"), profile("ghost")], minutes(T0, 30, "s1"))
    (gap,) = opened(events, AlertKind.DATA_GAP)
    assert gap.stack == "ghost"
    assert gap.evidence["never_reported"] is True


def test_missing_parameter_gap() -> None:
    rs = [
        reading_of(T0 + i * M, {"flow": 100.0 + i % 2, "o2": 6.0 + (i % 2) / 10, "so2": 20.0 + i % 3,
                                "temperature": 50.0, "humidity": 12.0, "pm": 5.0 + i % 2})
        for i in range(30)
    ]  # fmt: skip
    events, _ = run([profile()], rs)
    assert [(e.parameter, e.evidence["never_reported"]) for e in opened(events, AlertKind.DATA_GAP)] == [("nox", True)]


def test_no_gap_when_readings_arrive_on_time() -> None:
    events, _ = run([profile()], minutes(T0, 120))
    assert not opened(events, AlertKind.DATA_GAP)


def test_calibration_mark_longer_than_its_cap() -> None:
    settings = RuleSettings(mark_caps_s={DataFlag.CALIBRATION: 3600})
    cal = [
        reading(T0 + i * M, flags={"so2": DataFlag.CALIBRATION}, so2=50.0, o2=6.0 + (i % 2) / 10, flow=100.0 + i % 2,
                nox=30.0 + i % 2, pm=5.0 + (i % 2) / 10, temperature=50.0, humidity=12.0)
        for i in range(90)
    ]  # fmt: skip
    events, _ = run([profile()], cal + minutes(T0 + 90 * M, 20), settings=settings)
    marks = [e for e in events if e.kind is AlertKind.INVALID_MARK]
    assert [e.event for e in marks] == [AlertEventType.OPENED, AlertEventType.RESOLVED]
    assert marks[0].start == T0
    assert marks[0].evidence["flag"] == "C"
    assert marks[1].end == T0 + 90 * M


# -- falsification ----------------------------------------------------------------------------------
def test_flatline_while_running() -> None:
    rs = minutes(T0, 60) + minutes(T0 + H, 40, jitter=0.0, so2=22.0)
    events, _ = run([profile()], rs)
    flat = {e.parameter for e in opened(events, AlertKind.FLATLINE)}
    assert "so2" in flat
    (so2,) = [e for e in opened(events, AlertKind.FLATLINE) if e.parameter == "so2"]
    assert so2.start == T0 + H
    assert so2.evidence["value"] == 22.0


def test_flatline_resolves_when_the_value_moves_again() -> None:
    # one sample per minute: a minute never moves within itself, only from one minute to the next
    rs = minutes(T0, 60) + minutes(T0 + H, 40, jitter=0.0, so2=22.0) + minutes(T0 + H + 40 * M, 20)
    events, _ = run([profile()], rs)
    so2 = [e for e in events if e.kind is AlertKind.FLATLINE and e.parameter == "so2"]
    assert [e.event for e in so2] == [AlertEventType.OPENED, AlertEventType.RESOLVED]
    assert so2[1].end == T0 + H + 40 * M


def test_limit_hugging_over_a_day() -> None:
    # converted 33.5 on a 35 limit for 24 hours: inside [0.85 x 35, 35] every hour
    events, _ = run([profile()], minutes(T0, 24 * 60, so2=33.5), until=T0 + 24 * H + 6 * M)
    (hug,) = opened(events, AlertKind.LIMIT_HUGGING)
    assert hug.parameter == "so2"
    assert hug.evidence["hours"] >= 20
    assert hug.evidence["hours_in_band"] == hug.evidence["hours"]
    assert not opened(events, AlertKind.EXCEEDANCE)


def test_zs_that_disagrees_with_recomputation() -> None:
    # raw 30 at O2 9 with reference 6 should be reported as 37.5; the device reports 30
    bad = [
        reading(T0 + i * M + timedelta(seconds=30), zs={"so2": 30.0}, so2=30.0, o2=9.0, flow=100.0 + i % 2,
                nox=30.0 + i % 2, pm=5.0 + (i % 2) / 10, temperature=50.0, humidity=12.0)
        for i in range(20)
    ]  # fmt: skip
    good = [
        reading(T0 + (20 + i) * M + timedelta(seconds=30), zs={"so2": 37.5}, so2=30.0, o2=9.0, flow=100.0 + i % 2,
                nox=30.0 + i % 2, pm=5.0 + (i % 2) / 10, temperature=50.0, humidity=12.0)
        for i in range(20)
    ]  # fmt: skip
    events, _ = run([profile()], bad + good)
    zs = [e for e in events if e.kind is AlertKind.ZS_MISMATCH]
    assert [e.event for e in zs] == [AlertEventType.OPENED, AlertEventType.RESOLVED]
    assert zs[0].evidence["recomputed"] == pytest.approx(37.5)
    assert zs[0].evidence["reported_zs"] == pytest.approx(30.0)


def test_late_reading_beyond_grace_is_counted_not_used() -> None:
    rs = minutes(T0, 30)
    late = reading(T0 + 2 * M, so2=999.0)
    _, hourly = run([profile()], [*rs, late], until=T0 + H + 6 * M)
    (so2,) = [h for h in hourly if h.parameter == "so2"]
    assert so2.valid_minutes == 30


def test_a_clock_ahead_of_any_data_does_not_make_a_backfill_late() -> None:
    # live mode in total silence ticks with the wall clock; the recent past arrives afterwards
    from rules.engine import DetectionEngine

    engine = DetectionEngine({"s1": profile()})
    state = engine.new_state("s1")
    engine.tick(state, T0 + 6 * H)
    out_hourly = []
    for r in minutes(T0, 70, so2=30.0, o2=9.0):
        _, out = engine.evaluate(state, r, r.event_time)
        assert not out.late
        out_hourly += out.hourly
    assert [h.converted for h in out_hourly if h.parameter == "so2"] == [pytest.approx(37.5)]
