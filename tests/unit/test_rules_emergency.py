"""Emergency-response checks (rules.emergency) and the response report (rules.emergency_report):
tables with baselines and reductions computed by hand, the alert's lifecycle, properties."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from contracts.alerts import AlertEvent, AlertEventType, AlertKind, HourlyAverage
from contracts.emergency import Action, EmergencyResponse, Level
from contracts.evidence import check_evidence
from contracts.registry import FacilityRole, Measure
from rules import emergency
from rules.config import EmergencySettings, RuleSettings, StackProfile
from rules.conversion import emission_rate_kg_h, standard_dry_flow_m3_h
from rules.emergency import Status, baseline, baseline_hours, first_judged_hour, judge_measure
from rules.emergency_report import ROW_COLUMNS, Reduction, report_rows, response_report
from rules.engine import DetectionEngine
from rules.replay import ReplayDriver
from rules.state import StackState
from tests.rulekit import (
    T0,
    emergency_profile,
    emergency_response,
    facility_profile,
    hour_averages,
    meter_reading,
    minutes,
    summary,
)

H = timedelta(hours=1)
D = timedelta(days=1)
#: the responses below start on the fourth day at 08:00, after three days of history
S = T0 + 3 * D + 8 * H
KIND = AlertKind.EMERGENCY_NONCOMPLIANCE


def epoch(t: datetime) -> int:
    return int(t.timestamp())


def limit(facility: str, pct: float) -> Measure:
    return Measure(facility=facility, action=Action.LIMIT, limit_pct=pct)


def cut(facility: str, pct: float, *pollutants: str) -> Measure:
    return Measure(facility=facility, action=Action.CUT, cut_pct=pct, pollutants=list(pollutants))


def stop(facility: str) -> Measure:
    return Measure(facility=facility, action=Action.STOP)


BOILER = facility_profile("b1", running_kw=100.0, normal_kw=1000.0)
FGD = facility_profile("f1", role=FacilityRole.CONTROL, running_kw=20.0, normal_kw=200.0, treats=["b1"])


@dataclass
class Stack:
    """One stack's state driven hour by hour, as the engine drives it (hours close in order)."""

    profile: StackProfile
    settings: RuleSettings = field(default_factory=RuleSettings)
    state: StackState = field(default_factory=lambda: StackState(stack="s1"))
    events: list[AlertEvent] = field(default_factory=list)

    def respond(self, response: EmergencyResponse) -> list[AlertEvent]:
        return self._take(emergency.on_response(self.state, self.profile, self.settings, response))

    def hour(self, t: datetime, **values: Mapping[str, float | None] | float | None) -> list[AlertEvent]:
        averages = hour_averages(t, self.profile.stack, **values)  # type: ignore[arg-type]
        events = emergency.on_hour_closed(self.state, self.profile, self.settings, epoch(t), averages)
        self.state.hours_closed_until = epoch(t + H)
        return self._take(events)

    def _take(self, events: list[AlertEvent]) -> list[AlertEvent]:
        for e in events:  # the engine checks every event's evidence the same way
            check_evidence(e.kind, e.evidence)
        self.events += events
        return events


def noncompliant_hours(events: Iterable[AlertEvent]) -> set[str]:
    return {
        e.evidence["hour_start"]
        for e in events
        if e.kind is KIND and e.event in (AlertEventType.OPENED, AlertEventType.UPDATED)
    }


# -- which hours, against which baseline ---------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "lead_h", "first"),
    [
        (S, 0, S),
        (S, 2, S + 2 * H),
        (S, 1.5, S + 2 * H),  # 09:30 rounded up to 10:00
        (S + timedelta(minutes=30), 2, S + 3 * H),  # 08:30 + 2 h = 10:30 -> 11:00
        (S + timedelta(minutes=30), 0, S + H),
    ],
)
def test_the_first_judged_hour_is_start_plus_lead_time_rounded_up(
    start: datetime, lead_h: float, first: datetime
) -> None:
    assert first_judged_hour(epoch(start), round(lead_h * 3600)) == epoch(first)


@pytest.mark.parametrize(
    ("hour", "days", "expected"),
    [
        (S + 4 * H, 3, [S - 20 * H, S - 44 * H, S - 68 * H]),  # 12:00 on the three days before
        (S, 2, [S - D, S - 2 * D]),
        (S + 30 * H, 3, [S - 18 * H, S - 42 * H, S - 66 * H]),  # the next day's 14:00: not S + 6 h (in the response)
        (S + 23 * H, 1, [S - H]),
    ],
)
def test_baseline_hours_are_the_same_clock_hour_before_the_start(
    hour: datetime, days: int, expected: list[datetime]
) -> None:
    assert baseline_hours(epoch(S), epoch(hour), days) == [epoch(t) for t in expected]


HISTORY = {
    epoch(S - 20 * H): {"so2": 10.0, "nox": 30.0},
    epoch(S - 44 * H): {"so2": 12.0},
    epoch(S - 68 * H): {"so2": 14.0, "nox": 36.0},
    epoch(S - 92 * H): {"so2": 100.0, "nox": 100.0},  # four days before: outside a 3-day baseline
    epoch(S - 21 * H): {"so2": 100.0},  # another clock hour
}


@pytest.mark.parametrize(
    ("days", "min_days", "expected"),
    [
        (3, 1, {"so2": 12.0, "nox": 33.0}),  # (10 + 12 + 14) / 3, (30 + 36) / 2
        (3, 2, {"so2": 12.0, "nox": 33.0}),
        (3, 3, {"so2": 12.0}),  # nox on two days only: no baseline
        (2, 1, {"so2": 11.0, "nox": 30.0}),
        (1, 1, {"so2": 10.0, "nox": 30.0}),
        (1, 2, {}),
    ],
)
def test_baseline_table(days: int, min_days: int, expected: dict[str, float]) -> None:
    assert baseline(HISTORY, epoch(S), epoch(S + 4 * H), days, min_days) == pytest.approx(expected)


# -- one measure in one hour ----------------------------------------------------------------------
def _judge(measure: Measure, averages: dict[str, HourlyAverage], base: dict[str, float] | None = None,
           flow_base: float | None = None, stack_stops: bool = False) -> emergency.MeasureCheck:  # fmt: skip
    prof = emergency_profile(facilities=[BOILER, FGD], reduction={Level.ORANGE: [measure]})
    fac = prof.facility(measure.facility)
    assert fac is not None
    base = {**(base or {}), **({"flow": flow_base} if flow_base is not None else {})}
    return judge_measure(fac, measure, prof, RuleSettings(), averages, base, stack_stops=stack_stops)


def _rows(mc: emergency.MeasureCheck) -> list[tuple[str, str | None, Status, float | None, float | None]]:
    return [(c.check, c.pollutant, c.status, c.required, c.measured) for c in mc.checks]


C, N, U = Status.COMPLIANT, Status.NONCOMPLIANT, Status.UNVERIFIABLE


@pytest.mark.parametrize(
    ("measure", "values", "base", "flow_base", "stack_stops", "rows", "status"),
    [
        # stop: under running_kw (100 kW), strictly
        (stop("b1"), {"power_kw": {"b1": 99.9}}, None, None, False, [("power_stopped", None, C, 100.0, 99.9)], C),
        (stop("b1"), {"power_kw": {"b1": 100.0}}, None, None, False, [("power_stopped", None, N, 100.0, 100.0)], N),
        (stop("b1"), {"power_kw": {"b1": None}}, None, None, False, [("power_stopped", None, U, 100.0, None)], U),
        (stop("b1"), {}, None, None, False, [("power_stopped", None, U, 100.0, None)], U),
        # every producer stops: the stack's flow under 0.3 x its learnt baseline (100 m3/s -> 30)
        (stop("b1"), {"power_kw": {"b1": 5.0}, "flow": 12.0}, None, 100.0, True,
         [("power_stopped", None, C, 100.0, 5.0), ("stack_stopped", None, C, 30.0, 12.0)], C),
        (stop("b1"), {"power_kw": {"b1": 5.0}, "flow": 80.0}, None, 100.0, True,
         [("power_stopped", None, C, 100.0, 5.0), ("stack_stopped", None, N, 30.0, 80.0)], N),
        (stop("b1"), {"power_kw": {"b1": 5.0}, "flow": 80.0}, None, None, True,
         [("power_stopped", None, C, 100.0, 5.0), ("stack_stopped", None, U, None, 80.0)], U),
        # limit 60 % of normal_kw 1000: at most 600 kW
        (limit("b1", 60), {"power_kw": {"b1": 600.0}}, None, None, False, [("power_limit", None, C, 600.0, 600.0)], C),
        (limit("b1", 60), {"power_kw": {"b1": 600.5}}, None, None, False, [("power_limit", None, N, 600.0, 600.5)], N),
        (limit("b1", 60), {"power_kw": {"b1": None}}, None, None, False, [("power_limit", None, U, 600.0, None)], U),
        # cut 20 %: at most 0.8 x baseline, per pollutant (so2 base 10 -> 8; nox base 22 -> 17.6)
        (cut("f1", 20, "so2", "nox"), {"emission_kg_h": {"so2": 7.9, "nox": 18.0}}, {"so2": 10.0, "nox": 22.0},
         None, False, [("emission_cut", "so2", C, 8.0, 7.9), ("emission_cut", "nox", N, 17.6, 18.0)], N),
        (cut("f1", 20, "so2", "nox"), {"emission_kg_h": {"so2": 8.0, "nox": 17.6}}, {"so2": 10.0, "nox": 22.0},
         None, False, [("emission_cut", "so2", C, 8.0, 8.0), ("emission_cut", "nox", C, 17.6, 17.6)], C),
        # no baseline for nox, no emission rate for so2: unverifiable, not a breach
        (cut("f1", 20, "so2", "nox"), {"emission_kg_h": {"so2": None, "nox": 50.0}}, {"so2": 10.0},
         None, False, [("emission_cut", "so2", U, 8.0, None), ("emission_cut", "nox", U, None, 50.0)], U),
        # default pollutants: those of so2, nox, pm, nmhc the stack has a limit for (so2, nox, pm)
        (cut("f1", 50), {"emission_kg_h": {"so2": 4.0, "nox": 4.0, "pm": 0.5}}, {"so2": 10.0, "nox": 10.0, "pm": 1.0},
         None, False, [("emission_cut", "so2", C, 5.0, 4.0), ("emission_cut", "nox", C, 5.0, 4.0),
                       ("emission_cut", "pm", C, 0.5, 0.5)], C),
        # self-directed: nothing checked
        (Measure(facility="b1", action=Action.SELF_DIRECTED), {"power_kw": {"b1": 5000.0}}, None, None, False, [],
         Status.NOT_CHECKED),
    ],
)  # fmt: skip
def test_judge_measure_table(
    measure: Measure,
    values: dict[str, object],
    base: dict[str, float] | None,
    flow_base: float | None,
    stack_stops: bool,
    rows: list[tuple[str, str | None, Status, float | None, float | None]],
    status: Status,
) -> None:
    mc = _judge(measure, hour_averages(S, **values), base, flow_base, stack_stops)  # type: ignore[arg-type]
    assert _rows(mc) == [(c, p, s, pytest.approx(r) if r else r, m) for c, p, s, r, m in rows]
    assert mc.status is status


def test_the_stack_must_stop_only_when_every_producer_on_it_stops() -> None:
    kiln2 = facility_profile("k2", running_kw=50.0, normal_kw=500.0)
    both = emergency_profile(facilities=[BOILER, kiln2, FGD], reduction={Level.RED: [stop("b1"), stop("k2")]})
    one = emergency_profile(facilities=[BOILER, kiln2, FGD], reduction={Level.RED: [stop("b1"), limit("k2", 50)]})
    averages = hour_averages(S, power_kw={"b1": 0.0, "k2": 0.0}, flow=90.0)
    judged = emergency.judge_hour(both, RuleSettings(), Level.RED, averages, {"flow": 100.0})
    assert [[c.check for c in mc.checks] for mc in judged] == [["power_stopped", "stack_stopped"]] * 2
    assert [mc.status for mc in judged] == [N, N]  # both meters at 0 kW, but the stack still blows 90 m3/s
    judged = emergency.judge_hour(one, RuleSettings(), Level.RED, averages, {"flow": 100.0})
    assert [[c.check for c in mc.checks] for mc in judged] == [["power_stopped"], ["power_limit"]]
    assert [mc.status for mc in judged] == [C, C]


# -- the alert, hour by hour ---------------------------------------------------------------------
def limited_stack(lead_time_h: float = 2.0) -> Stack:
    return Stack(
        emergency_profile(
            facilities=[BOILER, FGD], reduction={Level.ORANGE: [limit("b1", 60)]}, lead_time_h=lead_time_h
        )
    )


def test_a_limit_breach_opens_updates_each_hour_and_resolves_at_a_compliant_hour_or_the_end() -> None:
    s = limited_stack()
    assert s.respond(emergency_response(S, S + 8 * H)) == []
    for i, kw in enumerate([900, 900, 900, 800, None, 500, 700, 700, 700, 900]):
        s.hour(S + i * H, power_kw={"b1": kw})
    # 08:00 and 09:00 are within the lead time (2 h); 12:00 unverifiable; the response ends at 16:00
    assert summary(s.events) == [
        ("opened", KIND.value, "b1", "10:00", None),
        ("updated", KIND.value, "b1", "10:00", None),
        ("resolved", KIND.value, "b1", "10:00", "13:00"),
        ("opened", KIND.value, "b1", "14:00", None),
        ("updated", KIND.value, "b1", "14:00", None),
        ("resolved", KIND.value, "b1", "14:00", "16:00"),
    ]
    first = s.events[0]
    assert first.severity.value == "critical" and first.at == S + 3 * H
    assert first.evidence == {
        "response_id": "r1",
        "level": "orange",
        "facility": "b1",
        "action": "limit",
        "hour_start": (S + 2 * H).isoformat(),
        "breaches": [
            {"check": "power_limit", "pollutant": None, "required": 600.0, "measured": 900.0, "unit": "kW",
             "baseline": 1000.0}
        ],
        "noncompliant_hours": 1,
    }  # fmt: skip
    assert s.events[1].evidence["hour_start"] == (S + 3 * H).isoformat()
    assert s.events[1].evidence["breaches"][0]["measured"] == 800.0
    assert s.events[1].evidence["noncompliant_hours"] == 2
    assert [e.evidence["noncompliant_hours"] for e in s.events[3:5]] == [3, 4]
    assert s.events[5].at == S + 8 * H  # resolved as the response's last hour (15:00) closed
    assert "limited to 600 kW" in first.reason


def test_hours_before_the_lead_time_are_not_judged() -> None:
    s = limited_stack(lead_time_h=1.5)  # 08:00 + 1.5 h -> 10:00
    s.respond(emergency_response(S))
    s.hour(S, power_kw={"b1": 900})
    s.hour(S + H, power_kw={"b1": 900})
    assert s.events == []
    s.hour(S + 2 * H, power_kw={"b1": 900})
    assert summary(s.events) == [("opened", KIND.value, "b1", "10:00", None)]


@pytest.mark.parametrize(
    ("districts", "level", "held"),
    [((), Level.ORANGE, True), (("d1", "d2"), Level.ORANGE, True), (("d2",), Level.ORANGE, False),
     ((), Level.RED, False)],  # red: no measures for this stack
)  # fmt: skip
def test_a_stack_holds_a_response_only_in_a_covered_district_with_measures_at_its_level(
    districts: tuple[str, ...], level: Level, held: bool
) -> None:
    s = limited_stack(lead_time_h=0)
    s.respond(emergency_response(S, districts=districts, level=level))
    assert ("r1" in s.state.emergency.responses) == held
    s.hour(S, power_kw={"b1": 900})
    assert bool(s.events) == held


def test_a_revision_ending_the_response_early_resolves_and_stops_judging() -> None:
    s = limited_stack(lead_time_h=0)
    s.respond(emergency_response(S))
    s.hour(S, power_kw={"b1": 900})
    s.hour(S + H, power_kw={"b1": 900})
    # ended at 11:00 while 10:00 is still open: 10:00 is its last hour, resolved as it closes
    assert s.respond(emergency_response(S, S + 3 * H, revision=2)) == []
    assert s.respond(emergency_response(S, revision=1)) == []  # an older revision changes nothing
    assert s.state.emergency.responses["r1"].end == epoch(S + 3 * H)
    for i in range(2, 5):
        s.hour(S + i * H, power_kw={"b1": 900})
    assert summary(s.events) == [
        ("opened", KIND.value, "b1", "08:00", None),
        ("updated", KIND.value, "b1", "08:00", None),
        ("updated", KIND.value, "b1", "08:00", None),
        ("resolved", KIND.value, "b1", "08:00", "11:00"),
    ]
    assert s.events[-1].at == S + 3 * H
    assert s.events[-2].evidence["noncompliant_hours"] == 3


def test_a_revision_ending_it_in_hours_already_closed_resolves_at_once_and_hours_are_judged_once() -> None:
    s = limited_stack(lead_time_h=0)
    s.respond(emergency_response(S))
    for i in range(3):
        s.hour(S + i * H, power_kw={"b1": 900})
    events = s.respond(emergency_response(S, S + H, revision=2))
    assert summary(events) == [("resolved", KIND.value, "b1", "08:00", "09:00")]
    assert events[0].at == S + 3 * H
    # extended again: 11:00 on is judged, the hours already judged are not judged again
    s.respond(emergency_response(S, S + 6 * H, revision=3))
    s.hour(S + 3 * H, power_kw={"b1": 900})
    assert summary(s.events[-1:]) == [("opened", KIND.value, "b1", "11:00", None)]
    assert s.events[-1].evidence["noncompliant_hours"] == 4  # 08, 09, 10, 11


def test_a_revision_that_no_longer_covers_the_stack_releases_it() -> None:
    s = limited_stack(lead_time_h=0)
    s.respond(emergency_response(S))
    s.hour(S, power_kw={"b1": 900})
    events = s.respond(emergency_response(S, districts=("d9",), revision=2))
    assert summary(events) == [("resolved", KIND.value, "b1", "08:00", "09:00")]
    assert s.state.emergency.responses == {}
    s.hour(S + H, power_kw={"b1": 900})
    assert len(s.events) == 2


def cut_stack(min_baseline_days: int = 1, baseline_days: int = 3) -> Stack:
    prof = emergency_profile(
        facilities=[BOILER, FGD], reduction={Level.ORANGE: [cut("f1", 20, "so2", "nox")]}, baseline_days=baseline_days
    )
    return Stack(prof, RuleSettings(emergency=EmergencySettings(min_baseline_days=min_baseline_days)))


def feed_history(s: Stack, rates: dict[int, dict[str, float | None]]) -> None:
    """Hourly emission rates on the days before S at 08:00 (key: days before S)."""
    for days_before, values in sorted(rates.items(), reverse=True):
        s.hour(S - days_before * D, emission_kg_h=values)


def test_a_cut_is_judged_per_pollutant_against_the_same_hours_of_the_days_before() -> None:
    s = cut_stack()
    feed_history(s, {3: {"so2": 9.0, "nox": 20.0}, 2: {"so2": 10.0, "nox": 22.0}, 1: {"so2": 11.0, "nox": 24.0}})
    s.respond(emergency_response(S))
    # baselines at 08:00: so2 (9 + 10 + 11) / 3 = 10 -> at most 8; nox 22 -> at most 17.6
    s.hour(S, emission_kg_h={"so2": 7.9, "nox": 18.0})
    (opened,) = s.events
    assert opened.event is AlertEventType.OPENED and opened.parameter == "f1"
    assert opened.evidence["breaches"] == [
        {"check": "emission_cut", "pollutant": "nox", "required": 17.6, "measured": 18.0, "unit": "kg/h",
         "baseline": 22.0}
    ]  # fmt: skip
    assert "nox 18 kg/h, cut to 17.6 kg/h (baseline 22)" in opened.reason


def test_without_enough_baseline_days_a_cut_cannot_be_judged() -> None:
    s = cut_stack(min_baseline_days=2)
    feed_history(s, {1: {"so2": 10.0, "nox": 10.0}})  # one day only
    s.respond(emergency_response(S))
    s.hour(S, emission_kg_h={"so2": 50.0, "nox": 50.0})
    assert s.events == []
    hour = epoch(S)
    base = baseline(s.state.emergency.emission_history, epoch(S), hour, 3, 2)
    assert base == {}


def test_unverifiable_hours_neither_open_nor_resolve() -> None:
    s = cut_stack()
    feed_history(s, {1: {"so2": 10.0, "nox": 10.0}})
    s.respond(emergency_response(S))
    s.hour(S - 23 * H, emission_kg_h={"so2": 10.0, "nox": 10.0})  # the baseline of 09:00
    s.hour(S, emission_kg_h={"so2": None, "nox": None})
    assert s.events == []
    s.hour(S + H, emission_kg_h={"so2": 20.0, "nox": 5.0})
    s.hour(S + 2 * H, emission_kg_h={"so2": None, "nox": 5.0})  # so2 unverifiable, nox within: not compliant
    assert summary(s.events) == [("opened", KIND.value, "f1", "09:00", None)]


def test_self_directed_measures_are_not_checked() -> None:
    prof = emergency_profile(
        facilities=[BOILER], reduction={Level.YELLOW: [Measure(facility="b1", action=Action.SELF_DIRECTED)]}
    )
    s = Stack(prof)
    s.respond(emergency_response(S, level=Level.YELLOW))
    assert "r1" in s.state.emergency.responses
    s.hour(S, power_kw={"b1": 5000.0})
    assert s.events == []


def test_stop_and_stack_stop_against_the_flow_of_the_baseline_hours() -> None:
    """The stack of a facility that must stop is judged against its mean flow in the same clock
    hours of the baseline days, as the report (which has only the hourly averages) judges it."""
    prof = emergency_profile(facilities=[BOILER, FGD], reduction={Level.RED: [stop("b1")]})
    s = Stack(prof)
    for i in (1, 2, 3):  # the day before: 100 m3/s in the clock hours of S + 1 h .. S + 3 h
        s.hour(S - 24 * H + i * H, flow=100.0)
    s.respond(emergency_response(S, level=Level.RED))
    s.hour(S, power_kw={"b1": 5.0}, flow=80.0)  # no baseline hour for this clock hour: unverifiable
    assert s.events == []
    s.hour(S + H, power_kw={"b1": 5.0}, flow=80.0)
    s.hour(S + 2 * H, power_kw={"b1": 500.0}, flow=10.0)
    s.hour(S + 3 * H, power_kw={"b1": 5.0}, flow=10.0)
    assert summary(s.events) == [
        ("opened", KIND.value, "b1", "09:00", None),
        ("updated", KIND.value, "b1", "09:00", None),
        ("resolved", KIND.value, "b1", "09:00", "11:00"),
    ]
    assert [b["check"] for b in s.events[0].evidence["breaches"]] == ["stack_stopped"]
    assert s.events[0].evidence["breaches"][0] == {
        "check": "stack_stopped", "pollutant": None, "required": 30.0, "measured": 80.0, "unit": "m3/s",
        "baseline": 100.0,
    }  # fmt: skip
    assert [b["check"] for b in s.events[1].evidence["breaches"]] == ["power_stopped"]


def test_the_highest_level_in_force_judges_an_hour() -> None:
    prof = emergency_profile(
        facilities=[BOILER], reduction={Level.YELLOW: [limit("b1", 80)], Level.ORANGE: [limit("b1", 50)]}
    )
    s = Stack(prof)
    s.respond(emergency_response(S, response_id="y", level=Level.YELLOW))
    s.respond(emergency_response(S + H, S + 2 * H, response_id="o", level=Level.ORANGE))
    for i in range(3):
        s.hour(S + i * H, power_kw={"b1": 700.0})  # within 80 % (800), above 50 % (500)
    assert summary(s.events) == [
        ("opened", KIND.value, "b1", "09:00", None),
        ("resolved", KIND.value, "b1", "09:00", "10:00"),  # the orange response ended at 10:00
    ]
    assert s.events[0].evidence["response_id"] == "o"
    assert s.state.emergency.responses["y"].noncompliant_hours == {}
    assert s.state.emergency.responses["y"].judged_until == epoch(S + 3 * H)


def test_history_is_recorded_every_hour_and_kept_while_a_response_needs_it() -> None:
    s = cut_stack()  # history_days 7
    for i in range(8 * 24):
        s.hour(T0 + i * H, emission_kg_h={"so2": float(i), "nox": None})
    history = s.state.emergency.emission_history
    assert len(history) == 7 * 24 and min(history) == epoch(T0 + D)
    assert history[epoch(T0 + 30 * H)] == {"so2": 30.0}
    # a response still running 9 days after its start keeps its 3 baseline days
    start = T0 + 8 * D
    s.respond(emergency_response(start))
    for i in range(9 * 24):
        s.hour(start + i * H, emission_kg_h={"so2": 1.0})
    assert min(history) == epoch(start - 3 * D)
    # ended: the response is forgotten 7 days after its end, and the history shrinks back
    s.respond(emergency_response(start, start + 9 * D + 2 * H, revision=2))
    for i in range(9 * 24, 17 * 24):
        s.hour(start + i * H, emission_kg_h={"so2": 1.0})
    assert s.state.emergency.responses == {}
    assert len(history) == 7 * 24


def test_only_the_pollutants_of_cut_measures_are_kept() -> None:
    limited = limited_stack()
    limited.hour(S, emission_kg_h={"so2": 1.0, "nox": 2.0, "pm": 0.1}, power_kw={"b1": 500.0})
    assert limited.state.emergency.emission_history == {}
    so2_only = Stack(emergency_profile(facilities=[FGD], reduction={Level.RED: [cut("f1", 10, "so2")]}))
    so2_only.hour(S, emission_kg_h={"so2": 1.0, "nox": 2.0, "pm": 0.1})
    defaults = Stack(emergency_profile(facilities=[FGD], reduction={Level.RED: [cut("f1", 10)]}))
    defaults.hour(S, emission_kg_h={"so2": 1.0, "nox": 2.0, "pm": 0.1, "nh3": 0.5})
    assert so2_only.state.emergency.emission_history == {epoch(S): {"so2": 1.0}}
    assert defaults.state.emergency.emission_history == {epoch(S): {"so2": 1.0, "nox": 2.0, "pm": 0.1}}


# -- through the engine ---------------------------------------------------------------------------
def test_through_the_engine_from_readings_and_meter_readings() -> None:
    """A day of history (plan baseline_days 1), then an orange response from day 2 00:00 with a lead
    time of 1 h: b1 limited to 60 % (600 kW), its FGD f1 holding an so2 cut of 20 %."""
    prof = emergency_profile(
        facilities=[BOILER, FGD],
        reduction={Level.ORANGE: [limit("b1", 60), cut("f1", 20, "so2")]},
        lead_time_h=1,
        baseline_days=1,
    )
    engine = DetectionEngine({"s1": prof}, RuleSettings())
    driver = ReplayDriver(engine)
    day2 = T0 + D
    driver.respond(emergency_response(day2))
    readings = minutes(T0, 24 * 60 + 60, jitter=0.0)  # day 1 and day 2 00:00: so2 20 mg/m3
    readings += minutes(day2 + H, 60, jitter=0.0)  # 01:00: so2 20 (no cut), b1 at 900 kW
    readings += minutes(day2 + 2 * H, 60, jitter=0.0, so2=15.0)  # 02:00: so2 15 (-25 %), b1 at 500 kW
    power = [meter_reading(r.event_time, "b1", 500.0 if r.event_time >= day2 + 2 * H else 900.0) for r in readings]
    merged = sorted(readings + power, key=lambda r: r.event_time)
    driver.feed_all(merged)
    driver.advance_to(day2 + 3 * H + 10 * timedelta(minutes=1))
    events = [e for e in driver.result.events if e.kind is KIND]
    assert summary(events) == [
        ("opened", KIND.value, "b1", "01:00", None),
        ("opened", KIND.value, "f1", "01:00", None),
        ("resolved", KIND.value, "b1", "01:00", "02:00"),
        ("resolved", KIND.value, "f1", "01:00", "02:00"),
    ]
    # the hour's emission rate: 20 mg/m3 x the standard dry flow of 100 m3/s at 50 C, 12 % moisture
    rate = emission_rate_kg_h(20.0, standard_dry_flow_m3_h(100.0, 50.0, 0.0, 12.0))
    (breach,) = events[1].evidence["breaches"]
    assert breach["baseline"] == pytest.approx(rate, rel=1e-5)
    assert breach["required"] == pytest.approx(0.8 * rate, rel=1e-5)
    assert breach["measured"] == pytest.approx(rate, rel=1e-5)
    assert events[0].evidence["breaches"][0]["measured"] == pytest.approx(900.0)
    # the report over the engine's hourly averages judges the same hours the same way
    report = response_report({"s1": prof}, RuleSettings(), emergency_response(day2, day2 + 3 * H),
                             driver.result.hourly)  # fmt: skip
    (ent,) = report.enterprises
    assert [(m.facility, m.compliant_hours, m.noncompliant_hours, m.unverifiable_hours) for m in ent.measures] == [
        ("b1", 1, 1, 0),
        ("f1", 1, 1, 0),
    ]
    (so2,) = [r for r in ent.reductions if r.pollutant == "so2"]
    assert so2.hours == 2
    assert (so2.baseline_kg, so2.measured_kg) == pytest.approx((2 * rate, 1.75 * rate))
    assert so2.reduction_pct == pytest.approx(12.5)


# -- properties -----------------------------------------------------------------------------------
HOURS_IN = 6
rate_st = st.one_of(st.none(), st.floats(min_value=0.0, max_value=1e4, allow_nan=False))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, list[list[dict[str, float | None]]], list[dict[str, float | None]]]:
    """(baseline days, per day before the start: the hours' rates, the response's hours' rates)."""
    days = draw(st.integers(min_value=1, max_value=3))
    hours = st.lists(st.fixed_dictionaries({"so2": rate_st, "nox": rate_st}), min_size=HOURS_IN, max_size=HOURS_IN)
    history = draw(st.lists(hours, min_size=days, max_size=days))
    during = draw(hours)
    return days, history, during


def run_cut(days: int, history: list[list[dict[str, float | None]]], during: list[dict[str, float | None]],
            cut_pct: float) -> list[AlertEvent]:  # fmt: skip
    prof = emergency_profile(facilities=[BOILER, FGD], reduction={Level.ORANGE: [cut("f1", cut_pct)]},
                             baseline_days=days)  # fmt: skip
    s = Stack(prof)
    for d, hours in enumerate(history):
        for i, rates in enumerate(hours):
            s.hour(S - (d + 1) * D + i * H, emission_kg_h=rates)
    s.respond(emergency_response(S, S + HOURS_IN * H))
    for i, rates in enumerate(during):
        s.hour(S + i * H, emission_kg_h=rates)
    return s.events


@given(scenarios(), st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2 * HOURS_IN, max_size=2 * HOURS_IN))
@hsettings(max_examples=150, deadline=None)
def test_a_zero_cut_never_raises_noncompliance_on_data_within_its_baseline(
    scenario: tuple[int, list[list[dict[str, float | None]]], list[dict[str, float | None]]], factors: list[float]
) -> None:
    days, history, during = scenario
    rates: dict[int, dict[str, float]] = {}
    for d, hours in enumerate(history):
        for i, r in enumerate(hours):
            rates[epoch(S - (d + 1) * D + i * H)] = {p: v for p, v in r.items() if v is not None}
    within: list[dict[str, float | None]] = []
    for i, r in enumerate(during):
        base = baseline(rates, epoch(S), epoch(S + i * H), days, 1)
        # at or under the baseline where there is one; anything (unjudgeable) where there is none
        within.append({p: (base[p] * factors[2 * i + k] if p in base else v) for k, (p, v) in enumerate(r.items())})
    assert noncompliant_hours(run_cut(days, history, within, 0.0)) == set()


@given(scenarios(), st.floats(min_value=0.0, max_value=99.0), st.floats(min_value=0.0, max_value=99.0))
@hsettings(max_examples=150, deadline=None)
def test_raising_the_required_cut_never_removes_a_noncompliant_hour(
    scenario: tuple[int, list[list[dict[str, float | None]]], list[dict[str, float | None]]], a: float, b: float
) -> None:
    days, history, during = scenario
    low, high = sorted((a, b))
    assert noncompliant_hours(run_cut(days, history, during, low)) <= noncompliant_hours(
        run_cut(days, history, during, high)
    )


# -- the report -----------------------------------------------------------------------------------
def report_fixture() -> tuple[dict[str, StackProfile], list[HourlyAverage], EmergencyResponse]:
    """e1/s1: b1 limited to 60 %; e2/s2: f2 cutting so2 and nox by 20 %; e3/s3 in another
    district. Baseline 2 days; the response 08:00-12:00 with a lead time of 1 h: judged 09, 10, 11."""
    targets = {Level.ORANGE: {"so2": 20.0, "nox": 20.0}}
    f2 = facility_profile("f2", role=FacilityRole.CONTROL, treats=["b2"])
    b2 = facility_profile("b2")
    profiles = {
        "s1": emergency_profile("s1", facilities=[BOILER], reduction={Level.ORANGE: [limit("b1", 60)]},
                                lead_time_h=1, baseline_days=2, targets_pct=targets, enterprise="e1"),
        "s2": emergency_profile("s2", facilities=[b2, f2], reduction={Level.ORANGE: [cut("f2", 20, "so2", "nox")]},
                                lead_time_h=1, baseline_days=2, targets_pct=targets, enterprise="e2"),
        "s3": emergency_profile("s3", facilities=[facility_profile("b3")], reduction={Level.ORANGE: [stop("b3")]},
                                baseline_days=2, targets_pct=targets, enterprise="e3", district="d2"),
    }  # fmt: skip
    rows: list[dict[str, HourlyAverage]] = [
        # s1: so2 20 kg/h in every baseline hour; 15 and 10 during; b1 500 kW (within 600), then 700
        *(hour_averages(S + h * H - d * D, "s1", emission_kg_h={"so2": 20.0}) for d in (1, 2) for h in (1, 2)),
        hour_averages(S + H, "s1", emission_kg_h={"so2": 15.0}, power_kw={"b1": 500.0}),
        hour_averages(S + 2 * H, "s1", emission_kg_h={"so2": 10.0}, power_kw={"b1": 700.0}),
        # s2: baselines 09:00 so2 (10 + 14) / 2 = 12, nox 5; 10:00 so2 (8 + 12) / 2 = 10, nox 5 (one day)
        hour_averages(S + H - D, "s2", emission_kg_h={"so2": 10.0, "nox": 5.0}),
        hour_averages(S + H - 2 * D, "s2", emission_kg_h={"so2": 14.0, "nox": 5.0}),
        hour_averages(S + 2 * H - D, "s2", emission_kg_h={"so2": 8.0, "nox": 5.0}),
        hour_averages(S + 2 * H - 2 * D, "s2", emission_kg_h={"so2": 12.0}),
        # 09:00 so2 9 <= 9.6, nox 4 <= 4; 10:00 so2 9 > 8, nox missing
        hour_averages(S + H, "s2", emission_kg_h={"so2": 9.0, "nox": 4.0}),
        hour_averages(S + 2 * H, "s2", emission_kg_h={"so2": 9.0, "nox": None}),
        # s3 is not covered: whatever it does is not in the report
        hour_averages(S + H, "s3", emission_kg_h={"so2": 999.0}, power_kw={"b3": 999.0}),
        # 11:00: nothing from anyone
    ]
    hourly = [a for r in rows for a in r.values()]
    return profiles, hourly, emergency_response(S, S + 4 * H, districts=("d1",))


def test_the_report_per_enterprise_and_for_the_region() -> None:
    profiles, hourly, response = report_fixture()
    report = response_report(profiles, RuleSettings(), response, hourly)
    assert report.until == S + 4 * H and report.baseline_days == 2
    assert [e.enterprise for e in report.enterprises] == ["e1", "e2"]
    e1, e2 = report.enterprises
    (b1,) = e1.measures
    assert (b1.requirement, b1.compliant_hours, b1.noncompliant_hours, b1.unverifiable_hours) == ("limit 60 %", 1, 1, 1)
    assert [(h.hour_start, h.status) for h in b1.hours] == [(S + H, C), (S + 2 * H, N), (S + 3 * H, U)]
    assert [(c.required, c.measured) for c in b1.hours[1].checks] == [(600.0, 700.0)]
    (f2,) = e2.measures
    assert (f2.requirement, f2.compliant_hours, f2.noncompliant_hours, f2.unverifiable_hours) == (
        "cut 20 % so2, nox", 1, 1, 1,
    )  # fmt: skip
    so2_check, nox_check = f2.hours[1].checks
    assert (so2_check.pollutant, so2_check.status, so2_check.measured) == ("so2", N, 9.0)
    assert (nox_check.pollutant, nox_check.status, nox_check.measured) == ("nox", U, None)
    assert (so2_check.required, nox_check.required) == pytest.approx((8.0, 4.0))

    def red(rs: Iterable[Reduction]) -> dict[str, tuple[int, int, float, float, float | None]]:
        return {r.pollutant: (r.hours, r.missing_hours, r.baseline_kg, r.measured_kg, r.reduction_pct) for r in rs}

    # e1 so2: baselines 20 + 20, measured 15 + 10: 15 kg less, 37.5 %; nox and pm: no data
    assert red(e1.reductions) == {
        "so2": (2, 1, 40.0, 25.0, pytest.approx(37.5)),
        "nox": (0, 3, 0.0, 0.0, None),
        "pm": (0, 3, 0.0, 0.0, None),
    }
    # e2 so2: 12 + 10 vs 9 + 9: 4 kg, 18.18 %; nox: 5 vs 4 (10:00 missing), 20 %
    assert red(e2.reductions) == {
        "so2": (2, 1, 22.0, 18.0, pytest.approx(400 / 22)),
        "nox": (1, 2, 5.0, 4.0, pytest.approx(20.0)),
        "pm": (0, 3, 0.0, 0.0, None),
    }
    region = {r.reduction.pollutant: (r.reduction.reduction_kg, r.reduction.reduction_pct, r.target_pct, r.target_met)
              for r in report.region}  # fmt: skip
    assert region == {
        "so2": (pytest.approx(19.0), pytest.approx(100 * 19 / 62), 20.0, True),
        "nox": (pytest.approx(1.0), pytest.approx(20.0), 20.0, True),
        "pm": (0.0, None, None, None),
    }


def test_the_report_judges_as_the_worker_does() -> None:
    """The worker fed the same hourly averages hour by hour finds the same noncompliant hours."""
    profiles, hourly, response = report_fixture()
    report = response_report(profiles, RuleSettings(), response, hourly)
    for stack in ("s1", "s2"):
        s = Stack(profiles[stack], state=StackState(stack=stack))
        s.respond(response)
        by_hour: dict[datetime, dict[str, HourlyAverage]] = {}
        for a in hourly:
            if a.stack == stack:
                by_hour.setdefault(a.hour_start, {})[a.parameter] = a
        for t in sorted(by_hour):
            s.events += emergency.on_hour_closed(s.state, s.profile, s.settings, epoch(t), by_hour[t])
            s.state.hours_closed_until = epoch(t + H)
        measures = [m for e in report.enterprises for m in e.measures if m.stack == stack]
        expected = {h.hour_start.isoformat() for m in measures for h in m.hours if h.status is N}
        assert noncompliant_hours(s.events) == expected != set()


def test_report_rows_have_stable_columns() -> None:
    profiles, hourly, response = report_fixture()
    rows = report_rows(response_report(profiles, RuleSettings(), response, hourly))
    assert all(tuple(r) == ROW_COLUMNS for r in rows)
    sections = [r["section"] for r in rows]
    # 2 measures; b1: 3 hours x 1 check; f2: 3 hours x 2 checks; 3 + 3 reductions; 3 region rows
    assert (sections.count("measure"), sections.count("check"), sections.count("reduction"),
            sections.count("region")) == (2, 9, 6, 3)  # fmt: skip
    (measure_b1,) = [r for r in rows if r["section"] == "measure" and r["facility"] == "b1"]
    assert measure_b1 == {
        **dict.fromkeys(ROW_COLUMNS), "section": "measure", "response_id": "r1", "level": "orange",
        "enterprise": "e1", "stack": "s1", "facility": "b1", "action": "limit", "requirement": "limit 60 %",
        "compliant_hours": 1, "noncompliant_hours": 1, "unverifiable_hours": 1, "not_checked_hours": 0,
    }  # fmt: skip
    (region_so2,) = [r for r in rows if r["section"] == "region" and r["pollutant"] == "so2"]
    assert (region_so2["baseline_kg"], region_so2["measured_kg"], region_so2["reduction_kg"]) == (62.0, 43.0, 19.0)
    assert (region_so2["reduction_pct"], region_so2["target_pct"], region_so2["target_met"]) == (30.65, 20.0, True)
    check = next(r for r in rows if r["section"] == "check" and r["hour_start"] == (S + 2 * H).isoformat())
    assert (check["check"], check["status"], check["required"], check["measured"], check["unit"]) == (
        "power_limit", "noncompliant", 600.0, 700.0, "kW",
    )  # fmt: skip


def test_a_stack_flagged_stopped_for_the_hour_is_stopped_and_emits_nothing() -> None:
    """A plant that really stops often flags its analysers F (stopped): the hour has no valid flow
    or emission rate, but it is no unverifiable hour: the stack emits nothing (flow 0, 0 kg/h)."""
    settings = RuleSettings()
    prof = emergency_profile(facilities=[BOILER, FGD], reduction={Level.RED: [stop("b1")]})
    flagged = hour_averages(S, power_kw={"b1": 5.0})
    flagged["flow"] = flagged["b1/power"].model_copy(
        update={"parameter": "flow", "mean": None, "valid_minutes": 0, "flag_minutes": {"F": 60}}
    )
    judged = emergency.as_judged(flagged, settings)
    assert judged["flow"].mean == 0.0 and judged["b1/power"].mean == 5.0
    (check,) = emergency.judge_hour(prof, settings, Level.RED, judged, {"flow": 100.0})
    assert check.status is emergency.Status.COMPLIANT
    assert [(c.check, c.measured) for c in check.checks] == [("power_stopped", 5.0), ("stack_stopped", 0.0)]
    # flagged for fewer than 45 minutes: an hour without enough data, unverifiable as before
    short = {**flagged, "flow": flagged["flow"].model_copy(update={"flag_minutes": {"F": 30}})}
    assert emergency.as_judged(short, settings) is short
