"""Signs of falsified data: flat lines while the unit runs, hourly values hugging just below
the limit, and reported converted values (Zs) that disagree with recomputation. Pure."""

from __future__ import annotations

from contracts.alerts import AlertEvent, AlertKind, HourlyAverage, HourlyStatus, Severity

from .aggregation import HOUR, MINUTE
from .alerts import activate, deactivate, ts
from .bypass import unit_running
from .config import RuleSettings, StackProfile, in_name_order
from .conversion import o2_converted
from .state import Minute, StackState

# how these alerts are keyed in ``StackState.alerts``
_FLATLINE, _ZS_MISMATCH = AlertKind.FLATLINE.value, AlertKind.ZS_MISMATCH.value


def on_minute_closed(
    state: StackState, profile: StackProfile, settings: RuleSettings, minute: int, minutes: dict[str, Minute]
) -> list[AlertEvent]:
    return _flatline(state, profile, settings, minute, minutes) + _zs(state, profile, settings, minute, minutes)


def _flatline(
    state: StackState, profile: StackProfile, settings: RuleSettings, minute: int, minutes: dict[str, Minute]
) -> list[AlertEvent]:
    fs = settings.falsification
    events: list[AlertEvent] = []
    running: bool | None = None  # whether the unit runs, once a flat line is long enough to ask
    at = minute + MINUTE
    tolerance, enough, flat_runs, alerts = fs.flatline_tolerance, fs.flatline_minutes, state.flat_runs, state.alerts
    for name in in_name_order(fs.flatline_parameters):
        m = minutes.get(name)
        if m is None or not m.valid or m.value is None or m.vmin is None or m.vmax is None:
            continue
        run = flat_runs.get(name)
        flat_minute = m.vmax - m.vmin <= tolerance
        if flat_minute and run is not None and abs(m.value - run[0]) <= tolerance:
            run = (run[0], run[1], run[2] + 1)
        else:
            # the value moved, within the minute or from the last one (a minute of one sample
            # never moves within itself): whatever was flat before is over
            if alerts and (_FLATLINE, name) in alerts:
                events += deactivate(state, profile, AlertKind.FLATLINE, name, at=at, end=minute)
            run = (m.value, minute, 1) if flat_minute else None
        if run is None:
            flat_runs.pop(name, None)
            continue
        flat_runs[name] = run
        if run[2] < enough:
            continue
        if running is None:
            running = unit_running(state, settings, minutes)
        if running:
            events += activate(
                state, profile, AlertKind.FLATLINE, name, at=at, start=run[1], severity=Severity.WARNING,
                reason=f"{name} constant at {run[0]:g} for {run[2]} minutes while the unit runs",
                evidence={"value": run[0], "since": ts(run[1]).isoformat(), "minutes": run[2]},
                update_every_s=HOUR,
            )  # fmt: skip
    return events


def _zs(
    state: StackState, profile: StackProfile, settings: RuleSettings, minute: int, minutes: dict[str, Minute]
) -> list[AlertEvent]:
    fs = settings.falsification
    events: list[AlertEvent] = []
    o2 = minutes.get("o2")
    if o2 is None or not o2.valid or o2.value is None or o2.value >= settings.o2_not_convertible_pct:
        return events
    at = minute + MINUTE
    for name in in_name_order(profile.o2_converted):
        m = minutes.get(name)
        if m is None or not m.valid or m.value is None or m.zs is None:
            continue
        expected = o2_converted(m.value, o2.value, profile.reference_o2_pct)
        bad = abs(m.zs - expected) > max(fs.zs_tolerance_abs, fs.zs_tolerance_ratio * expected)
        run = state.zs_runs[name] = state.zs_runs.get(name, 0) + 1 if bad else 0
        if run >= fs.zs_minutes:
            events += activate(
                state, profile, AlertKind.ZS_MISMATCH, name, at=at, start=minute - (run - 1) * MINUTE,
                severity=Severity.WARNING,
                reason=f"{name} reported converted {m.zs:.2f} but raw {m.value:.2f} at O2 {o2.value:.2f} % "
                f"gives {expected:.2f}",
                evidence={"reported_zs": round(m.zs, 3), "recomputed": round(expected, 3), "raw": round(m.value, 3),
                          "o2_pct": round(o2.value, 3), "reference_o2_pct": profile.reference_o2_pct,
                          "minutes": run},
                update_every_s=HOUR,
            )  # fmt: skip
        elif not bad and (_ZS_MISMATCH, name) in state.alerts:
            events += deactivate(state, profile, AlertKind.ZS_MISMATCH, name, at=at, end=minute)
    return events


def on_hour_closed(
    state: StackState, profile: StackProfile, settings: RuleSettings, hour: int, averages: dict[str, HourlyAverage]
) -> list[AlertEvent]:
    """Limit hugging: over the last day, most valid hours sit just below the limit."""
    fs = settings.falsification
    events: list[AlertEvent] = []
    at = hour + HOUR
    for name, avg in averages.items():
        if avg.limit is None:
            continue
        history = state.hourly_history.setdefault(name, [])
        judged = avg.converted if avg.status is HourlyStatus.VALID else None
        history.append((hour, judged, avg.limit))
        del history[: -fs.hugging_window_hours]
        values = [v for _, v, _ in history if v is not None]
        if len(values) < fs.hugging_min_hours:
            continue
        low = fs.hugging_band_low * avg.limit
        in_band = [v for v in values if low <= v <= avg.limit]
        if len(in_band) / len(values) >= fs.hugging_fraction:
            events += activate(
                state, profile, AlertKind.LIMIT_HUGGING, name, at=at, start=history[0][0],
                severity=Severity.WARNING,
                reason=f"{name}: {len(in_band)} of {len(values)} hours between {low:.2f} and the limit {avg.limit:g}",
                evidence={"hours": len(values), "hours_in_band": len(in_band), "band_mg_m3": [round(low, 3), avg.limit],
                          "mean_ratio": round(sum(values) / len(values) / avg.limit, 4)},
                update_every_s=6 * HOUR,
            )  # fmt: skip
        else:
            events += deactivate(state, profile, AlertKind.LIMIT_HUGGING, name, at=at)
    return events
