"""Alert lifecycle events and hourly averages: what the detection engine publishes.

Alert identity follows Alertmanager: a ``fingerprint`` of (stack, parameter, kind) names the
condition; each episode of it gets an ``alert_id`` (fingerprint and start). Events:
``opened`` (first evidence), ``updated`` (new evidence while open), ``resolved`` (the
condition is gone, ``end`` set), ``acknowledged`` (an officer took the case).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class AlertKind(StrEnum):
    EXCEEDANCE = "exceedance"  # hourly converted average above its limit (incl. NH3 slip, NMHC)
    EARLY_WARNING = "early_warning"  # the open hour's running average makes an exceedance likely
    SPIKE = "spike"  # an instantaneous value far above the limit (optional)
    BYPASS = "bypass"  # flue gas or VOC bypass in use, measured or inferred
    DATA_GAP = "data_gap"  # a stack, or one of its parameters, stopped reporting
    INVALID_MARK = "invalid_mark"  # a data flag (C, M, D, ...) held longer than its cap
    FLATLINE = "flatline"  # a value that does not move while the unit runs
    LIMIT_HUGGING = "limit_hugging"  # hourly values held just under the limit for a day
    ZS_MISMATCH = "zs_mismatch"  # reported converted values disagree with recomputation
    # electricity use (分表计电): production vs pollution-control facilities (rules.electricity)
    TREATMENT_OFF = "treatment_off"  # production runs while a control facility treating it is off
    CONTROL_LATE_START = "control_late_start"  # control started well after its production
    CONTROL_EARLY_STOP = "control_early_stop"  # control stopped well before its production
    CONTROL_UNDERPOWERED = "control_underpowered"  # control far below its normal power at normal load
    PRODUCTION_OFF_EMITTING = "production_off_emitting"  # every producer off, the stack still emitting
    # heavy-pollution emergency response (rules.emergency)
    EMERGENCY_NONCOMPLIANCE = "emergency_noncompliance"  # a reduction measure not met in an hour


#: the kinds the electricity rules raise (rules/electricity.py)
ELECTRICITY_KINDS = (
    AlertKind.TREATMENT_OFF,
    AlertKind.CONTROL_LATE_START,
    AlertKind.CONTROL_EARLY_STOP,
    AlertKind.CONTROL_UNDERPOWERED,
    AlertKind.PRODUCTION_OFF_EMITTING,
)


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertEventType(StrEnum):
    OPENED = "opened"
    UPDATED = "updated"
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"


class AlertState(StrEnum):
    """Where an alert is in its life: open (its condition holds, nobody took it yet),
    acknowledged (an officer took it; still open until the condition clears), resolved."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


def fingerprint(stack: str, parameter: str | None, kind: AlertKind) -> str:
    return hashlib.sha1(f"{stack}|{parameter or '-'}|{kind.value}".encode()).hexdigest()[:16]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertEvent(_Frozen):
    schema_version: Literal[1] = 1
    event: AlertEventType
    kind: AlertKind
    severity: Severity
    alert_id: str
    fingerprint: str
    enterprise: str
    stack: str
    parameter: str | None
    #: when the condition started (event time), when it ended (resolved only)
    start: AwareDatetime
    end: AwareDatetime | None = None
    #: the event time this event was decided at
    at: AwareDatetime
    reason: str
    evidence: dict[str, Any]


class Acknowledgement(_Frozen):
    """An officer took an alert (on ``cems.v1.acknowledgements``, keyed by the alert's stack);
    the worker applies it once and publishes the ``acknowledged`` event."""

    schema_version: Literal[1] = 1
    alert_id: str
    stack: str
    officer: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=2000)
    at: AwareDatetime


class HourlyStatus(StrEnum):
    VALID = "valid"
    INSUFFICIENT = "insufficient"  # fewer valid minutes than required (HJ 75: 45)
    NOT_CONVERTIBLE = "not_convertible"  # O2 near ambient: the unit is not running


class HourlyAverage(_Frozen):
    schema_version: Literal[1] = 1
    enterprise: str
    stack: str
    parameter: str
    hour_start: AwareDatetime
    status: HourlyStatus
    valid_minutes: int
    mean: float | None
    #: the value judged against the limit: converted to reference O2 where the catalogue says so
    converted: float | None
    o2_converted: bool
    limit: float | None
    o2_mean: float | None
    reference_o2_pct: float | None
    #: minutes per invalid data flag, e.g. {"C": 12}
    flag_minutes: dict[str, int]
    emission_kg_h: float | None = None

    @property
    def exceeds(self) -> bool:
        return (
            self.status is HourlyStatus.VALID
            and self.converted is not None
            and self.limit is not None
            and self.converted > self.limit
        )


def alert_id(fp: str, start: datetime) -> str:
    return f"{fp}-{start.astimezone(UTC):%Y%m%dT%H%M%SZ}"
