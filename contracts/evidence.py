"""The evidence each kind of alert carries, as typed models.

On the wire ``AlertEvent.evidence`` stays a JSON object (so consumers written against it keep
working); these models say which fields each kind must have, with their types and units.
The engine checks every event it emits against its kind's model (``rules.alerts``), and
readers can get a typed view with ``evidence_of(event)``. Lifecycle fields added later
(``acknowledged_by``, a resolution's ``duration_s``, an early warning's ``outcome``) are
allowed beside the required ones.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from .alerts import AlertEvent, AlertKind


class Evidence(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ExceedanceEvidence(Evidence):
    hour_start: AwareDatetime
    average_mg_m3: float
    converted_mg_m3: float
    limit_mg_m3: float
    ratio: float
    valid_minutes: int
    o2_pct: float | None
    reference_o2_pct: float | None
    o2_converted: bool
    exceeding_hours: int


class EarlyWarningEvidence(Evidence):
    hour_start: AwareDatetime
    running_mg_m3: float
    limit_mg_m3: float
    valid_minutes: int
    minutes_left: int
    certain: bool


class SpikeEvidence(Evidence):
    peak_mg_m3: float
    limit_mg_m3: float
    minute: AwareDatetime


class BypassEvidence(Evidence):
    confidence: float
    signals: list[str]
    details: dict[str, Any]


class DataGapEvidence(Evidence):
    never_reported: bool
    threshold_s: int
    last_seen: AwareDatetime | None = None
    expected_interval_s: int | None = None


class InvalidMarkEvidence(Evidence):
    flag: str
    since: AwareDatetime
    cap_s: int


class FlatlineEvidence(Evidence):
    value: float
    since: AwareDatetime
    minutes: int


class LimitHuggingEvidence(Evidence):
    hours: int
    hours_in_band: int
    band_mg_m3: tuple[float, float]
    mean_ratio: float


class ZsMismatchEvidence(Evidence):
    reported_zs: float
    recomputed: float
    raw: float
    o2_pct: float
    reference_o2_pct: float
    minutes: int


class TreatmentOffEvidence(Evidence):
    control: str
    #: the production facilities it treats that were running, with their power (kW)
    production_kw: dict[str, float]
    #: the control facility's power (kW) in the last minute its meter reported, if it did
    control_kw: float | None
    running_kw: float
    since: AwareDatetime
    minutes: int


class ControlTimingEvidence(Evidence):
    """A control facility started after (late start) or stopped before (early stop) production."""

    control: str
    production: str
    production_at: AwareDatetime
    control_at: AwareDatetime
    minutes: int
    grace_minutes: int


class ControlUnderpoweredEvidence(Evidence):
    control: str
    control_kw: float
    normal_kw: float
    ratio: float
    production_kw: dict[str, float]
    since: AwareDatetime
    minutes: int


class ProductionOffEmittingEvidence(Evidence):
    #: every metered producer on the stack, with its power (kW)
    production_kw: dict[str, float]
    flow_m3_s: float
    baseline_flow_m3_s: float | None
    since: AwareDatetime
    minutes: int


class EmergencyBreach(BaseModel):
    """One requirement of a measure not met in one hour: required vs measured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``power_stopped``, ``stack_stopped``, ``power_limit``, ``emission_cut``
    check: str
    pollutant: str | None = None
    required: float
    measured: float
    unit: str
    #: the baseline the requirement was worked out from (emission_cut: kg/h; power_limit: normal kW)
    baseline: float | None = None


class EmergencyNoncomplianceEvidence(Evidence):
    response_id: str
    level: str
    facility: str
    action: str
    hour_start: AwareDatetime
    breaches: list[EmergencyBreach]
    #: hours of this response in which the measure was not met so far
    noncompliant_hours: int


EVIDENCE: dict[AlertKind, type[Evidence]] = {
    AlertKind.EXCEEDANCE: ExceedanceEvidence,
    AlertKind.EARLY_WARNING: EarlyWarningEvidence,
    AlertKind.SPIKE: SpikeEvidence,
    AlertKind.BYPASS: BypassEvidence,
    AlertKind.DATA_GAP: DataGapEvidence,
    AlertKind.INVALID_MARK: InvalidMarkEvidence,
    AlertKind.FLATLINE: FlatlineEvidence,
    AlertKind.LIMIT_HUGGING: LimitHuggingEvidence,
    AlertKind.ZS_MISMATCH: ZsMismatchEvidence,
    AlertKind.TREATMENT_OFF: TreatmentOffEvidence,
    AlertKind.CONTROL_LATE_START: ControlTimingEvidence,
    AlertKind.CONTROL_EARLY_STOP: ControlTimingEvidence,
    AlertKind.CONTROL_UNDERPOWERED: ControlUnderpoweredEvidence,
    AlertKind.PRODUCTION_OFF_EMITTING: ProductionOffEmittingEvidence,
    AlertKind.EMERGENCY_NONCOMPLIANCE: EmergencyNoncomplianceEvidence,
}


def check_evidence(kind: AlertKind, evidence: dict[str, Any]) -> Evidence:
    """The evidence as its kind's model; a ``pydantic.ValidationError`` names what is wrong."""
    return EVIDENCE[kind].model_validate(evidence)


def evidence_of(event: AlertEvent) -> Evidence:
    return check_evidence(event.kind, event.evidence)
