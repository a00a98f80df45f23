"""Minute and hourly aggregation under HJ 75 validity. Pure.

Samples go into open one-minute buckets per parameter. A minute closes once the event-time
watermark has passed its end by the grace period; its value is the mean of its valid samples
(flags in ``invalid_flags`` are not valid). Closed minutes feed the hour; an hour is valid
with at least ``min_valid_minutes`` valid minutes, and a parameter's hourly value is judged
against its limit after O2 conversion with the hour's mean O2 (not converted when O2 is at or
above ``o2_not_convertible_pct``: the unit is not running).
"""

from __future__ import annotations

from contracts.alerts import HourlyAverage, HourlyStatus
from contracts.reading import Reading

from .alerts import ts
from .config import RuleSettings, StackProfile, meter_key
from .conversion import emission_rate_kg_h, o2_converted, standard_dry_flow_m3_h
from .state import HourAcc, Minute, MinuteBucket, StackState

MINUTE = 60
HOUR = 3600


def epoch(reading: Reading) -> int:
    return int(reading.event_time.timestamp())


def add_reading(state: StackState, reading: Reading, settings: RuleSettings) -> bool:
    """Put a reading's values into their minute; ``False`` when that minute already closed."""
    t = epoch(reading)
    minute = t - t % MINUTE
    if (state.closed_until is not None and minute < state.closed_until) or (
        state.hours_closed_until is not None and minute < state.hours_closed_until
    ):
        state.late_readings += 1
        return False
    buckets = state.open_minutes.setdefault(minute, {})
    invalid = settings.invalid_flags
    # a facility meter's values go into the same minute under ``<facility>/<parameter>``; they do
    # not count as the stack reporting (its silence is still a gap)
    meter = reading.facility
    last_seen = state.param_last_seen if meter is None else state.electricity.meter_last_seen
    for name, m in reading.values.items():
        key = name if meter is None else meter_key(meter, name)
        b = buckets.get(key)
        if b is None:
            b = buckets[key] = MinuteBucket()
        if m.flag in invalid:
            b.n_invalid += 1
            b.flags[m.flag.value] = b.flags.get(m.flag.value, 0) + 1
        else:
            value = m.value
            b.total += value
            b.n_valid += 1
            # comparisons, not min() and max(): this is the hottest loop of the rules
            if value < b.vmin:  # noqa: PLR1730
                b.vmin = value
            if value > b.vmax:  # noqa: PLR1730
                b.vmax = value
            if m.zs is not None:
                b.zs_total += m.zs
                b.zs_n += 1
        seen_as = name if meter is None else meter
        prev = last_seen.get(seen_as)
        if prev is None or t > prev:
            last_seen[seen_as] = t
    if meter is not None:
        return True
    if state.last_seen is None or t > state.last_seen:
        state.last_seen = t
    if state.first_seen is None or t < state.first_seen:
        state.first_seen = t
    return True


def close_minute(state: StackState, minute: int) -> dict[str, Minute]:
    """Close a minute: per parameter, the mean of its valid samples, or (none valid) the invalid
    flag that dominated; each also counts in the minute's hour (its valid minutes and their
    values, or a minute of that flag)."""
    buckets = state.open_minutes.pop(minute, {})
    if not buckets:
        return {}
    accs = state.hours.setdefault(minute - minute % HOUR, {})
    out = {}
    for name, b in buckets.items():
        acc = accs.get(name)
        if acc is None:
            acc = accs[name] = HourAcc()
        zs = b.zs_total / b.zs_n if b.zs_n else None
        # Minute's fields in order: start, value, valid, flag, vmin, vmax, zs (made as a tuple: this
        # runs for every parameter of every minute, and NamedTuple's __new__ is a Python function)
        if b.n_valid:
            value = b.total / b.n_valid
            out[name] = _new_minute(Minute, (minute, value, True, None, b.vmin, b.vmax, zs))
            acc.total += value
            acc.n_valid += 1
        else:
            flag = max(b.flags, key=b.flags.__getitem__) if b.flags else None
            out[name] = _new_minute(Minute, (minute, None, False, flag, None, None, zs))
            if flag is not None:
                acc.flag_minutes[flag] = acc.flag_minutes.get(flag, 0) + 1
    return out


_new_minute = tuple.__new__


def hour_mean(acc: HourAcc | None, settings: RuleSettings) -> float | None:
    if acc is None or acc.n_valid < settings.min_valid_minutes:
        return None
    return acc.total / acc.n_valid


def judged_value(
    profile: StackProfile, settings: RuleSettings, parameter: str, mean: float, o2_mean: float | None
) -> tuple[float | None, HourlyStatus]:
    """The value compared with the limit: converted to reference O2 where the catalogue says so."""
    if parameter not in profile.o2_converted:
        return mean, HourlyStatus.VALID
    if o2_mean is None or o2_mean >= settings.o2_not_convertible_pct:
        return None, HourlyStatus.NOT_CONVERTIBLE
    return o2_converted(mean, o2_mean, profile.reference_o2_pct), HourlyStatus.VALID


def hourly_averages(
    profile: StackProfile, settings: RuleSettings, hour: int, accs: dict[str, HourAcc]
) -> dict[str, HourlyAverage]:
    o2 = hour_mean(accs.get("o2"), settings)
    flow, temp = hour_mean(accs.get("flow"), settings), hour_mean(accs.get("temperature"), settings)
    qsn = None
    if flow is not None and temp is not None:
        qsn = standard_dry_flow_m3_h(
            flow,
            temp,
            hour_mean(accs.get("pressure"), settings) or 0.0,
            hour_mean(accs.get("humidity"), settings) or 0.0,
        )
    out = {}
    for name, acc in accs.items():
        mean = hour_mean(acc, settings)
        limit = profile.limit(name)
        if mean is None:
            judged, status = None, HourlyStatus.INSUFFICIENT
        else:
            judged, status = judged_value(profile, settings, name, mean, o2)
        emission = emission_rate_kg_h(mean, qsn) if mean is not None and qsn is not None and limit else None
        out[name] = HourlyAverage(
            enterprise=profile.enterprise,
            stack=profile.stack,
            parameter=name,
            hour_start=ts(hour),
            status=status,
            valid_minutes=acc.n_valid,
            mean=mean,
            converted=judged,
            o2_converted=name in profile.o2_converted,
            limit=limit,
            o2_mean=o2,
            reference_o2_pct=profile.reference_o2_pct if name in profile.o2_converted else None,
            flag_minutes=dict(acc.flag_minutes),
            emission_kg_h=emission,
        )
    return out
