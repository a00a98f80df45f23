"""Exceedances of hourly limits (SO2, NOx, PM, NH3 slip, NMHC, ...), early warnings while the
hour is open, and optional instantaneous spike notices. Pure."""

from __future__ import annotations

from contracts.alerts import AlertEvent, AlertKind, HourlyAverage, HourlyStatus, Severity

from .aggregation import HOUR, MINUTE
from .alerts import activate, deactivate, ts
from .config import RuleSettings, StackProfile
from .conversion import o2_converted
from .state import Minute, StackState

# how these alerts are keyed in ``StackState.alerts``
_EXCEEDANCE, _EARLY_WARNING, _SPIKE = AlertKind.EXCEEDANCE.value, AlertKind.EARLY_WARNING.value, AlertKind.SPIKE.value


def on_hour_closed(
    state: StackState, profile: StackProfile, settings: RuleSettings, hour: int, averages: dict[str, HourlyAverage]
) -> list[AlertEvent]:
    events: list[AlertEvent] = []
    at = hour + HOUR
    for name, avg in averages.items():
        if avg.limit is None:
            continue
        exceeded = avg.exceeds
        if exceeded:
            assert avg.converted is not None and avg.mean is not None
            open_alert = state.alerts.get((_EXCEEDANCE, name))
            hours = (open_alert.evidence.get("exceeding_hours", 1) + 1) if open_alert else 1
            evidence = {
                "hour_start": ts(hour).isoformat(),
                "average_mg_m3": round(avg.mean, 4),
                "converted_mg_m3": round(avg.converted, 4),
                "limit_mg_m3": avg.limit,
                "ratio": round(avg.converted / avg.limit, 4),
                "valid_minutes": avg.valid_minutes,
                "o2_pct": None if avg.o2_mean is None else round(avg.o2_mean, 3),
                "reference_o2_pct": avg.reference_o2_pct,
                "o2_converted": avg.o2_converted,
                "exceeding_hours": hours,
            }
            reason = (
                f"{name} hourly average {avg.converted:.2f} mg/m3"
                f"{' at reference O2' if avg.o2_converted else ''} exceeds the limit {avg.limit:g}"
            )
            events += activate(
                state, profile, AlertKind.EXCEEDANCE, name, at=at, start=hour,
                severity=Severity.CRITICAL, reason=reason, evidence=evidence,
            )  # fmt: skip
        elif avg.status is HourlyStatus.VALID:
            events += deactivate(state, profile, AlertKind.EXCEEDANCE, name, at=at, end=hour)
        outcome = "exceeded" if exceeded else avg.status.value if avg.status is not HourlyStatus.VALID else "within"
        events += deactivate(
            state, profile, AlertKind.EARLY_WARNING, name, at=at, end=at, evidence={"outcome": outcome}
        )
    return events


def _factor(profile: StackProfile, settings: RuleSettings, name: str, o2: float | None) -> float | None:
    """What multiplies ``name``'s concentration to judge it (at ``o2``), None when it cannot be judged."""
    return _o2_factor(profile, settings, o2) if name in profile.o2_converted else 1.0


def _o2_factor(profile: StackProfile, settings: RuleSettings, o2: float | None) -> float | None:
    """The factor to reference O2 at ``o2``; None when O2 is missing or near ambient."""
    if o2 is None or o2 >= settings.o2_not_convertible_pct:
        return None
    return o2_converted(1.0, o2, profile.reference_o2_pct)


def on_minute_closed(
    state: StackState, profile: StackProfile, settings: RuleSettings, minute: int, minutes: dict[str, Minute]
) -> list[AlertEvent]:
    """Early warning from the open hour's running average; spikes from the minute's maximum."""
    events: list[AlertEvent] = []
    hour = minute - minute % HOUR
    accs = state.hours.get(hour, {})
    o2_acc = accs.get("o2")
    o2_run = o2_acc.total / o2_acc.n_valid if o2_acc and o2_acc.n_valid else None
    o2_factor = _o2_factor(profile, settings, o2_run)  # the same for each parameter judged at reference O2
    remaining = (hour + HOUR - (minute + MINUTE)) // MINUTE
    at = minute + MINUTE
    min_valid, min_warning = settings.min_valid_minutes, settings.early_warning_min_minutes
    spike_ratio, converted = settings.spike_ratio, profile.o2_converted
    for name, limit in profile.limits_mg_m3.items():
        acc = accs.get(name)
        factor = o2_factor if name in converted else 1.0
        if acc is None or acc.n_valid == 0 or factor is None:
            continue
        k = acc.n_valid
        can_be_judged = k + remaining >= min_valid
        running = acc.total / k * factor
        certain = can_be_judged and acc.total * factor / (k + remaining) > limit
        likely = can_be_judged and k >= min_warning and running > limit
        if certain or likely:
            open_warning = state.alerts.get((_EARLY_WARNING, name))
            if open_warning is not None and (open_warning.evidence["certain"] or not certain):
                pass  # already warned; only the step from likely to certain is news
            else:
                evidence = {
                    "hour_start": ts(hour).isoformat(),
                    "running_mg_m3": round(running, 4),
                    "limit_mg_m3": limit,
                    "valid_minutes": k,
                    "minutes_left": remaining,
                    "certain": certain,
                }
                word = "certain" if certain else "likely"
                reason = f"{name} exceedance {word} this hour: running average {running:.2f} vs limit {limit:g}"
                events += activate(
                    state, profile, AlertKind.EARLY_WARNING, name, at=at, start=hour,
                    severity=Severity.WARNING, reason=reason, evidence=evidence,
                )  # fmt: skip
        if spike_ratio is None:
            continue  # spike notices are off
        m = minutes.get(name)
        if m is not None and m.vmax is not None:
            o2_minute = minutes.get("o2")
            spike_factor = _factor(profile, settings, name, o2_minute.value if o2_minute else None)
            peak = m.vmax * spike_factor if spike_factor is not None else None
            if peak is not None and peak > spike_ratio * limit:
                events += activate(
                    state, profile, AlertKind.SPIKE, name, at=at, start=minute, severity=Severity.INFO,
                    reason=f"{name} instantaneous {peak:.1f} above {spike_ratio:g} x limit {limit:g}",
                    evidence={"peak_mg_m3": round(peak, 3), "limit_mg_m3": limit, "minute": ts(minute).isoformat()},
                    update_every_s=settings.spike_hold_down_s,
                )  # fmt: skip
            elif (_SPIKE, name) in state.alerts:
                events += deactivate(
                    state, profile, AlertKind.SPIKE, name, at=at, hold_down_s=settings.spike_hold_down_s
                )
    return events
