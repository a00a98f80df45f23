"""Per-stack rule state: plain dataclasses, picklable, times as epoch seconds (UTC)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from contracts.alerts import AlertState


@dataclass
class MinuteBucket:
    """Samples of one parameter within one open minute."""

    total: float = 0.0
    n_valid: int = 0
    n_invalid: int = 0
    vmin: float = float("inf")
    vmax: float = float("-inf")
    zs_total: float = 0.0
    zs_n: int = 0
    flags: dict[str, int] = field(default_factory=dict)


class Minute(NamedTuple):
    """A closed minute of one parameter (passed to the rules, never stored: a tuple, quick to make)."""

    start: int
    value: float | None  # mean of valid samples
    valid: bool
    flag: str | None  # the invalid flag that dominated, when not valid
    vmin: float | None
    vmax: float | None
    zs: float | None


@dataclass
class HourAcc:
    """Valid minutes of one parameter in one hour (HJ 75: the hour needs >= 45)."""

    total: float = 0.0
    n_valid: int = 0
    flag_minutes: dict[str, int] = field(default_factory=dict)


@dataclass
class OpenAlert:
    kind: str
    parameter: str | None
    fingerprint: str
    alert_id: str
    start: int
    last_active: int
    last_update: int
    severity: str
    reason: str
    evidence: dict[str, Any]
    updates: int = 0
    acknowledged_by: str | None = None

    @property
    def state(self) -> AlertState:
        """Open or acknowledged: a resolved alert is no longer held in the stack state."""
        return AlertState.OPEN if self.acknowledged_by is None else AlertState.ACKNOWLEDGED


@dataclass
class Mark:
    """An invalid-flag period of one parameter (kept for the audit trail)."""

    flag: str
    start: int
    last: int


@dataclass
class FacilityRun:
    """What the electricity rules know of one metered facility (``rules.electricity``): its state
    in the last minute its meter gave a valid power, and (control facilities) the runs of minutes
    its rules count."""

    #: whether it ran in that minute (None: its meter never gave a valid power)
    running: bool | None = None
    #: the first minute known in that state
    since: int | None = None
    #: it entered that state from the other one (a start or stop seen), not first seen in it
    changed: bool = False
    #: the last minute its meter gave a valid power, and that power (kW)
    last_minute: int | None = None
    kw: float | None = None
    #: treatment_off: the first minute of the run and its minutes (0: no run)
    off_since: int | None = None
    off_minutes: int = 0
    #: control_underpowered: the same
    low_since: int | None = None
    low_minutes: int = 0


@dataclass
class ElectricityState:
    """Per stack: its metered facilities, and the counters of the electricity rules."""

    facilities: dict[str, FacilityRun] = field(default_factory=dict)
    #: production_off_emitting: the first minute of the run and its minutes (0: no run)
    idle_since: int | None = None
    idle_minutes: int = 0
    #: facility -> the last time its meter reported (event time, epoch s)
    meter_last_seen: dict[str, int] = field(default_factory=dict)
    #: the stack's ``closed_until`` when the meters' silence was last judged
    meters_judged_at: int | None = None


@dataclass
class ResponseHeld:
    """A declared emergency response that concerns this stack (``rules.emergency``): its latest
    revision, and what the stack's judgement of it has reached."""

    id: str
    level: str
    start: int
    end: int | None
    revision: int
    #: the end of the last hour judged for it (hours before are not judged again, by any revision)
    judged_until: int | None = None
    #: facility -> hours of this response in which its measure was not met, so far
    noncompliant_hours: dict[str, int] = field(default_factory=dict)


@dataclass
class EmergencyState:
    #: hour start -> pollutant -> emission rate (kg/h) of the hours closed with one, kept for
    #: baselines (``EmergencySettings.history_days``, longer while a held response needs them)
    emission_history: dict[int, dict[str, float]] = field(default_factory=dict)
    #: response id -> the response as this stack holds it
    responses: dict[str, ResponseHeld] = field(default_factory=dict)


@dataclass
class StackState:
    stack: str
    #: when the engine first looked at this stack (for devices never heard from)
    first_tick: int | None = None
    first_seen: int | None = None
    last_seen: int | None = None
    param_last_seen: dict[str, int] = field(default_factory=dict)
    #: minute start -> parameter -> bucket; readings for minutes before ``closed_until`` (the
    #: end of the last minute closed with data) or in a closed hour are late
    open_minutes: dict[int, dict[str, MinuteBucket]] = field(default_factory=dict)
    closed_until: int | None = None
    #: hour start -> parameter -> accumulator
    hours: dict[int, dict[str, HourAcc]] = field(default_factory=dict)
    hours_closed_until: int | None = None
    late_readings: int = 0
    baselines: dict[str, float] = field(default_factory=dict)
    baseline_minutes: int = 0
    #: consecutive-minute counters: bypass signals, flat lines, Zs mismatches
    bypass_runs: dict[str, int] = field(default_factory=dict)
    flat_runs: dict[str, tuple[float, int, int]] = field(default_factory=dict)  # value, start, minutes
    zs_runs: dict[str, int] = field(default_factory=dict)
    marks: dict[str, Mark] = field(default_factory=dict)
    mark_log: list[tuple[str, str, int, int]] = field(default_factory=list)  # param, flag, start, end
    #: last hours per parameter: (hour start, judged value or None, limit)
    hourly_history: dict[str, list[tuple[int, float | None, float]]] = field(default_factory=dict)
    alerts: dict[tuple[str, str | None], OpenAlert] = field(default_factory=dict)
    electricity: ElectricityState = field(default_factory=ElectricityState)
    emergency: EmergencyState = field(default_factory=EmergencyState)
