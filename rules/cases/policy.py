"""Which alerts open a case, and the data-driven verification window per kind. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts.alerts import AlertEvent, AlertEventType, AlertKind
from contracts.errors import ConfigError, config_error


class KindPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: an alert of this kind opens a case only once its condition has lasted this long
    #: (a long data gap); 0 = at once
    min_duration_h: float = Field(default=0, ge=0)
    #: a case is closed as verified only after this many days without recurrence
    verify_days: int = Field(default=7, ge=0, le=365)
    #: days the enterprise has to respond, when an officer orders rectification without a date
    response_days: int = Field(default=7, ge=1, le=365)


_DEFAULT_KINDS: dict[AlertKind, KindPolicy] = {
    AlertKind.EXCEEDANCE: KindPolicy(verify_days=7, response_days=5),
    AlertKind.BYPASS: KindPolicy(verify_days=30, response_days=3),
    AlertKind.FLATLINE: KindPolicy(verify_days=14),
    AlertKind.ZS_MISMATCH: KindPolicy(verify_days=14),
    AlertKind.LIMIT_HUGGING: KindPolicy(verify_days=30),
    AlertKind.DATA_GAP: KindPolicy(min_duration_h=4, verify_days=7),
    AlertKind.INVALID_MARK: KindPolicy(verify_days=7),
    AlertKind.TREATMENT_OFF: KindPolicy(verify_days=30, response_days=3),
    AlertKind.CONTROL_LATE_START: KindPolicy(verify_days=14),
    AlertKind.CONTROL_EARLY_STOP: KindPolicy(verify_days=14),
    AlertKind.CONTROL_UNDERPOWERED: KindPolicy(verify_days=14),
    AlertKind.PRODUCTION_OFF_EMITTING: KindPolicy(verify_days=14),
    AlertKind.EMERGENCY_NONCOMPLIANCE: KindPolicy(verify_days=0, response_days=3),
}


class CasePolicy(BaseModel):
    """Per alert kind: whether it opens a case (kinds absent here never do) and its windows.

    Early warnings and spikes are for the officer's attention only: they open no case."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(default=1, ge=1, le=1)
    kinds: dict[AlertKind, KindPolicy] = Field(default_factory=lambda: dict(_DEFAULT_KINDS))

    @model_validator(mode="after")
    def _some_kind(self) -> CasePolicy:
        if not self.kinds:
            raise ValueError("kinds: at least one alert kind must open cases")
        return self

    def for_kind(self, kind: AlertKind) -> KindPolicy | None:
        return self.kinds.get(kind)

    def windows(self, kind: AlertKind) -> KindPolicy:
        """The kind's verification and response windows (the defaults for a kind not listed,
        whose cases were opened under an earlier policy)."""
        return self.kinds.get(kind) or KindPolicy()

    def opens_case(self, event: AlertEvent) -> bool:
        """Whether this event opens a case (or joins the open one): the kind opens cases and its
        condition has lasted long enough by the event's own time."""
        policy = self.kinds.get(event.kind)
        if policy is None or event.event is AlertEventType.ACKNOWLEDGED:
            return False
        return lasted(event.start, event.end or event.at, policy.min_duration_h)

    def due_to_open(self, kind: AlertKind, start: datetime, now: datetime) -> bool:
        """An alert still open with no new event: has it lasted long enough by ``now``?"""
        policy = self.kinds.get(kind)
        return policy is not None and lasted(start, now, policy.min_duration_h)


def lasted(start: datetime, until: datetime, hours: float) -> bool:
    return until - start >= timedelta(hours=hours)


def load_case_policy(data: dict[str, Any], source: str) -> CasePolicy:
    try:
        return CasePolicy.model_validate(data)
    except ValidationError as exc:
        raise config_error(source, exc) from exc


__all__ = ["CasePolicy", "ConfigError", "KindPolicy", "lasted", "load_case_policy"]
