"""Electricity use of production and pollution-control facilities (分表计电). Pure.

Each metered facility's power arrives in its stack's minutes as ``<facility>/power``
(``rules.config.meter_key``). In each closed minute a facility is *running* (its mean valid
power at or above its ``running_kw``), *off* (below), or *unknown*: its meter gave no valid
power in that minute (silent, or every sample flagged invalid; a minute with no data at all
does not close). Unknown minutes are not guessed:

- a rule whose answer in a minute depends on an unknown facility (or, for
  ``production_off_emitting``, on an invalid stack flow) neither advances nor breaks its run
  of minutes, nor resolves its alert; a run goes on across them, and its ``minutes`` count
  the minutes the condition was seen;
- a facility's state (``FacilityRun``) is the one of its last known minute; a start or stop is
  seen at its first known minute in the new state, and the late-start and early-stop lags
  count only what known minutes prove (``_timing``);
- a meter silent for long is its own alert (``check_meters``).

Rules (settings in ``ElectricitySettings``; ``parameter`` is the control facility's id, or
none for the stack-wide rule):

- ``treatment_off`` (critical): a control facility off while a production facility it treats
  runs, ``treatment_off_minutes`` in a row; starts at the first such minute; resolved
  ``hold_down_s`` after the control runs again or nothing it treats runs. While it is open,
  every minute of the condition keeps it open.
- ``control_late_start`` (warning): a production facility started while a control treating it
  was off, and the control started more than ``start_grace_minutes`` later. Decided when the
  control starts (opened and resolved at once: a recorded instance from the production's start
  to the control's); one per control start, for the production that started first.
- ``control_early_stop`` (warning): a control stopped while a production facility it treats ran,
  and the production stopped more than ``stop_grace_minutes`` later. Decided when the
  production stops (opened and resolved at once, from the control's stop to the production's).
- ``control_underpowered`` (warning): a running control under ``underpowered_ratio`` x its
  ``normal_kw`` while every production facility it treats is at normal load
  (``normal_load_ratio`` x its ``normal_kw``), ``underpowered_minutes`` in a row.
- ``production_off_emitting`` (warning; suspect data or unmetered production): every production
  facility on the stack off while the stack's own minute shows it running
  (``rules.bypass.unit_running``; before a flow baseline is learnt, a flow above
  ``zero_flow_m3_s``), ``production_off_minutes`` in a row.

Production at normal load with next to no stack flow is a bypass signal
(``production_without_flow`` in ``rules.bypass``).
"""

from __future__ import annotations

from contracts.alerts import AlertEvent, AlertKind, Severity
from contracts.registry import FacilityRole

from .aggregation import MINUTE
from .alerts import activate, deactivate, ts
from .bypass import learnt_baselines, unit_running
from .config import ElectricitySettings, FacilityProfile, RuleSettings, StackProfile, meter_key
from .gaps import QUIET_UPDATES_S, gap_threshold_s
from .state import FacilityRun, Minute, StackState

_CONTROL = FacilityRole.CONTROL
_TREATMENT_OFF = AlertKind.TREATMENT_OFF.value  # how alerts are keyed in ``StackState.alerts``
_UNDERPOWERED = AlertKind.CONTROL_UNDERPOWERED.value
_PRODUCTION_OFF = AlertKind.PRODUCTION_OFF_EMITTING.value
_DATA_GAP = AlertKind.DATA_GAP.value
#: a facility whose state changed in a minute: the first and last minute known in the state before
_Change = tuple[FacilityProfile, int | None, int | None]


def on_minute_closed(
    state: StackState, profile: StackProfile, settings: RuleSettings, minute: int, minutes: dict[str, Minute]
) -> list[AlertEvent]:
    el = state.electricity
    if not el.meter_last_seen:
        return []  # no meter on the stack has reported yet: every facility unknown
    runs = el.facilities
    changed: list[_Change] | None = None
    producers = producing = unknown = 0
    for f in profile.facilities:
        run = runs.get(f.id)
        if run is None:
            run = runs[f.id] = FacilityRun()
        m = minutes.get(f.key)
        on = None
        if m is not None and m.valid:
            kw = m.value
            assert kw is not None  # a valid minute has a value
            on = kw >= f.running_kw
            if run.running is not on:
                if run.running is not None:
                    changed = changed or []
                    changed.append((f, run.since, run.last_minute))
                run.running, run.since, run.changed = on, minute, run.running is not None
            run.last_minute, run.kw = minute, kw
        if f.role is not _CONTROL:
            producers += 1
            if on is None:
                unknown += 1
            elif on:
                producing += 1
    es = settings.electricity
    at = minute + MINUTE
    alerts = state.alerts
    events: list[AlertEvent] = []
    for f in profile.facilities:
        if f.role is not _CONTROL:
            continue
        run = runs[f.id]
        if run.last_minute != minute:
            continue  # unknown: nothing to decide
        if (
            run.running and not run.off_minutes and not run.low_minutes and not alerts
            and run.kw is not None and run.kw >= es.underpowered_ratio * f.normal_kw
        ):  # fmt: skip
            continue  # the usual minute: running at its power, no run to break, nothing open
        _treatment_off(events, state, profile, es, f, minute, at)
        _underpowered(events, state, profile, es, f, minute, at)
    # the usual minute needs no more: production runs, no run to break, nothing open
    if producers and not (producing and not el.idle_minutes and not alerts):
        _production_off(events, state, profile, settings, minutes, minute, at, producing, unknown)
    if changed:
        _timing(events, state, profile, es, changed, minute, at)
    return events


def _known(runs: dict[str, FacilityRun], facility: str, minute: int) -> FacilityRun | None:
    """The facility's run if its meter gave a valid power in ``minute``."""
    run = runs.get(facility)
    return run if run is not None and run.last_minute == minute else None


def _power(runs: dict[str, FacilityRun], facilities: list[str]) -> dict[str, float]:
    return {p: round(runs[p].kw or 0.0, 3) for p in facilities}


def _treatment_off(
    events: list[AlertEvent],
    state: StackState,
    profile: StackProfile,
    es: ElectricitySettings,
    control: FacilityProfile,
    minute: int,
    at: int,
) -> None:
    runs = state.electricity.facilities
    run = runs[control.id]
    if run.running:
        holds = False
    else:
        known = [(p, _known(runs, p, minute)) for p in control.treats]
        producing = [p for p, r in known if r is not None and r.running]
        if not producing and any(r is None for _, r in known):
            return  # nothing it treats is known to run, something it treats is unknown
        holds = bool(producing)
    key = (_TREATMENT_OFF, control.id)
    if not holds:
        run.off_since, run.off_minutes = None, 0
        if key in state.alerts:
            events += deactivate(state, profile, AlertKind.TREATMENT_OFF, control.id, at=at, hold_down_s=es.hold_down_s)
        return
    if not run.off_minutes:
        run.off_since = minute
    run.off_minutes += 1
    if run.off_minutes < es.treatment_off_minutes and key not in state.alerts:
        return
    assert run.off_since is not None
    events += activate(
        state, profile, AlertKind.TREATMENT_OFF, control.id, at=at, start=run.off_since,
        severity=Severity.CRITICAL,
        reason=f"{control.id} off while {', '.join(producing)} runs",
        evidence={"control": control.id, "production_kw": _power(runs, producing),
                  "control_kw": None if run.kw is None else round(run.kw, 3), "running_kw": control.running_kw,
                  "since": ts(run.off_since).isoformat(), "minutes": run.off_minutes},
        update_every_s=es.hold_down_s,
    )  # fmt: skip


def _underpowered(
    events: list[AlertEvent],
    state: StackState,
    profile: StackProfile,
    es: ElectricitySettings,
    control: FacilityProfile,
    minute: int,
    at: int,
) -> None:
    runs = state.electricity.facilities
    run = runs[control.id]
    kw = run.kw
    assert kw is not None  # known in this minute
    holds = bool(run.running) and kw < es.underpowered_ratio * control.normal_kw
    if holds:
        for p in control.treats:
            prun, pf = _known(runs, p, minute), profile.facility(p)
            if prun is None or pf is None:
                return  # a production facility it treats is unknown: undecided
            if prun.kw is None or not es.at_normal_load(pf, prun.kw):
                holds = False
                break
    key = (_UNDERPOWERED, control.id)
    if not holds:
        run.low_since, run.low_minutes = None, 0
        if key in state.alerts:
            events += deactivate(
                state, profile, AlertKind.CONTROL_UNDERPOWERED, control.id, at=at, hold_down_s=es.hold_down_s
            )
        return
    if not run.low_minutes:
        run.low_since = minute
    run.low_minutes += 1
    if run.low_minutes < es.underpowered_minutes and key not in state.alerts:
        return
    assert run.low_since is not None
    ratio = kw / control.normal_kw
    events += activate(
        state, profile, AlertKind.CONTROL_UNDERPOWERED, control.id, at=at, start=run.low_since,
        severity=Severity.WARNING,
        reason=f"{control.id} at {ratio:.0%} of its normal power while production is at normal load",
        evidence={"control": control.id, "control_kw": round(kw, 3), "normal_kw": control.normal_kw,
                  "ratio": round(ratio, 4), "production_kw": _power(runs, list(control.treats)),
                  "since": ts(run.low_since).isoformat(), "minutes": run.low_minutes},
        update_every_s=es.hold_down_s,
    )  # fmt: skip


def _production_off(
    events: list[AlertEvent],
    state: StackState,
    profile: StackProfile,
    settings: RuleSettings,
    minutes: dict[str, Minute],
    minute: int,
    at: int,
    producing: int,
    unknown: int,
) -> None:
    """Every production facility on the stack off while the stack runs (each facility in the
    registry has a meter: no unmetered producer can explain the emissions)."""
    el = state.electricity
    es = settings.electricity
    flow = None if producing else minutes.get("flow")
    if flow is not None and flow.valid and not unknown:
        # running as the bypass rule judges it; before a flow baseline is learnt, more than the
        # flow taken as none (``zero_flow_m3_s``), not any flow above 0 (noise on a stopped stack)
        learnt = learnt_baselines(state, settings).get("flow")
        holds = unit_running(state, settings, minutes) and (
            learnt is not None or (flow.value or 0.0) > es.zero_flow_m3_s
        )
    elif producing:
        holds = False
    else:
        return  # no producer known to run, and a producer or the stack's flow unknown: undecided
    if not holds:
        el.idle_since, el.idle_minutes = None, 0
        if (_PRODUCTION_OFF, None) in state.alerts:
            events += deactivate(
                state, profile, AlertKind.PRODUCTION_OFF_EMITTING, None, at=at, hold_down_s=es.hold_down_s
            )
        return
    if not el.idle_minutes:
        el.idle_since = minute
    el.idle_minutes += 1
    if el.idle_minutes < es.production_off_minutes and (_PRODUCTION_OFF, None) not in state.alerts:
        return
    assert el.idle_since is not None and flow is not None and flow.value is not None
    base = learnt_baselines(state, settings).get("flow")
    production = [f.id for f in profile.facilities if f.role is not _CONTROL]
    events += activate(
        state, profile, AlertKind.PRODUCTION_OFF_EMITTING, None, at=at, start=el.idle_since,
        severity=Severity.WARNING,
        reason=f"every production facility on {profile.stack} off while the stack runs (flow {flow.value:.1f} m3/s)",
        evidence={"production_kw": _power(el.facilities, production), "flow_m3_s": round(flow.value, 3),
                  "baseline_flow_m3_s": None if base is None else round(base, 3),
                  "since": ts(el.idle_since).isoformat(), "minutes": el.idle_minutes},
        update_every_s=es.hold_down_s,
    )  # fmt: skip


def _timing(
    events: list[AlertEvent],
    state: StackState,
    profile: StackProfile,
    es: ElectricitySettings,
    changed: list[_Change],
    minute: int,
    at: int,
) -> None:
    """Late starts (a control starting in ``minute``) and early stops (a production facility
    stopping in ``minute``), each recorded as an instance opened and resolved at once. A lag
    counts what known minutes prove: from a minute the production was known running to the
    end of the last minute the control was known off (late start), or from the first minute the
    control was known off to the end of the last minute the production was known running
    (early stop); without unknown minutes, from one change to the other."""
    runs = state.electricity.facilities
    for f, since, last in changed:
        if since is None or last is None:
            continue
        if f.role is _CONTROL and runs[f.id].running:
            # known off from ``since`` to ``last``: production that started in that time
            started = [
                (r.since, p)
                for p in f.treats
                if (r := runs.get(p)) is not None and r.running and r.changed and r.since is not None
                and since <= r.since <= last
            ]  # fmt: skip
            if started:
                production_at, production = min(started)
                _instance(
                    events, state, profile, AlertKind.CONTROL_LATE_START, f, production, grace=es.start_grace_minutes,
                    start=production_at, end=last + MINUTE, production_at=production_at, control_at=last + MINUTE,
                    at=at,
                )  # fmt: skip
        elif f.role is not _CONTROL and not runs[f.id].running:
            # known running from ``since`` to ``last``: controls treating it that stopped in that time
            for c in profile.facilities:
                r = runs.get(c.id)
                if (
                    f.id in c.treats and r is not None and r.running is False and r.changed
                    and r.since is not None and since <= r.since <= last
                ):  # fmt: skip
                    _instance(
                        events, state, profile, AlertKind.CONTROL_EARLY_STOP, c, f.id, grace=es.stop_grace_minutes,
                        start=r.since, end=last + MINUTE, production_at=last + MINUTE, control_at=r.since, at=at,
                    )  # fmt: skip


def _instance(
    events: list[AlertEvent],
    state: StackState,
    profile: StackProfile,
    kind: AlertKind,
    control: FacilityProfile,
    production: str,
    *,
    grace: int,
    start: int,
    end: int,
    production_at: int,
    control_at: int,
    at: int,
) -> None:
    lag = (end - start) // MINUTE
    if lag <= grace:
        return
    late = kind is AlertKind.CONTROL_LATE_START
    what = f"started {lag} min after {production}" if late else f"stopped {lag} min before {production}"
    events += activate(
        state, profile, kind, control.id, at=at, start=start, severity=Severity.WARNING,
        reason=f"{control.id} {what} (grace {grace} min)",
        evidence={"control": control.id, "production": production, "production_at": ts(production_at).isoformat(),
                  "control_at": ts(control_at).isoformat(), "minutes": lag, "grace_minutes": grace},
    )  # fmt: skip
    events += deactivate(state, profile, kind, control.id, at=at, end=end)


def check_meters(state: StackState, profile: StackProfile, settings: RuleSettings, now: int) -> list[AlertEvent]:
    """A facility's meter silent for longer than the stack's gap threshold
    (``rules.gaps.gap_threshold_s``) while the stack or another meter on it reports: a
    ``data_gap`` (warning) with the meter's parameter (``<facility>/power``), from its last
    report, resolved when it reports again (as the next minute closes). A meter never heard
    from is silent from when the stack was first seen, once another meter on the stack has
    reported; while none has, the stack's electricity monitoring is not connected and nothing
    is judged (the rules then know no facility's state either).

    Silence is judged, as minutes close, up to the end of the last minute closed with data
    (``closed_until``): that minute is complete (the grace period has passed) and someone on
    the stack reported in it. So a meter is not called silent for readings still in transit,
    nor, when the whole stack falls silent and comes back, for the moments before its own
    reading of the minute arrives; a stack silent as a whole is the stack's own gap
    (``rules.gaps``), not a meter's."""
    el = state.electricity
    judged_at = state.closed_until
    if judged_at is None or judged_at == el.meters_judged_at:
        return []  # judged as minutes close: none closed since the last time
    el.meters_judged_at = judged_at
    seen = el.meter_last_seen
    if not seen:
        return []  # no meter on the stack has reported yet
    threshold = gap_threshold_s(profile, settings)
    alerts = state.alerts
    if not alerts and len(seen) == len(profile.facilities) and judged_at - min(seen.values()) <= threshold:
        return []  # the usual case: every meter reported in time, no gap open
    first = min(t for t in (state.first_seen, state.first_tick, judged_at) if t is not None)
    events: list[AlertEvent] = []
    for f in profile.facilities:
        last = seen.get(f.id)
        parameter = meter_key(f.id, "power")
        missing_since = last if last is not None else first
        if judged_at - missing_since > threshold:
            if (_DATA_GAP, parameter) in alerts:
                continue  # open, and nothing new to say until it reports
            events += activate(
                state, profile, AlertKind.DATA_GAP, parameter, at=now, start=missing_since,
                severity=Severity.WARNING,
                reason=f"the meter of {f.id} silent while {profile.stack} reports",
                evidence={"never_reported": last is None, "last_seen": None if last is None else ts(last).isoformat(),
                          "threshold_s": threshold},
                update_every_s=QUIET_UPDATES_S,
            )  # fmt: skip
        elif last is not None and alerts and (_DATA_GAP, parameter) in alerts:
            events += deactivate(state, profile, AlertKind.DATA_GAP, parameter, at=now, end=last)
    return events
