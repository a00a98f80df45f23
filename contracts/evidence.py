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
}


def check_evidence(kind: AlertKind, evidence: dict[str, Any]) -> Evidence:
    """The evidence as its kind's model; a ``pydantic.ValidationError`` names what is wrong."""
    return EVIDENCE[kind].model_validate(evidence)


def evidence_of(event: AlertEvent) -> Evidence:
    return check_evidence(event.kind, event.evidence)
