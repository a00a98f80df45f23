"""Each alert kind's evidence is typed: the engine's events carry their kind's fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.alerts import AlertKind
from contracts.evidence import EVIDENCE, ExceedanceEvidence, check_evidence, evidence_of
from tests.integration.notify_rig import alert


def test_every_kind_has_a_model() -> None:
    assert set(EVIDENCE) == set(AlertKind)


def test_a_typed_view_of_an_exceedance() -> None:
    event = alert("jy-power-1-s1").model_copy(update={"evidence": {
        "hour_start": "2026-11-29T06:00:00+00:00", "average_mg_m3": 50.0, "converted_mg_m3": 61.5,
        "limit_mg_m3": 35, "ratio": 1.757, "valid_minutes": 58, "o2_pct": 8.1, "reference_o2_pct": 6,
        "o2_converted": True, "exceeding_hours": 2, "acknowledged_by": "wang"}})  # fmt: skip
    typed = evidence_of(event)
    assert isinstance(typed, ExceedanceEvidence)
    assert typed.converted_mg_m3 == 61.5 and typed.limit_mg_m3 == 35.0 and typed.hour_start.hour == 6


@pytest.mark.parametrize(
    ("kind", "evidence", "wrong"),
    [
        (AlertKind.SPIKE, {"peak_mg_m3": 300, "limit_mg_m3": 35}, "minute"),
        (AlertKind.BYPASS, {"confidence": "high", "signals": [], "details": {}}, "confidence"),
        (AlertKind.FLATLINE, {"value": 1.0, "since": "yesterday", "minutes": 60}, "since"),
    ],
)
def test_evidence_without_its_fields_is_refused(kind: AlertKind, evidence: dict[str, object], wrong: str) -> None:
    with pytest.raises(ValidationError, match=wrong):
        check_evidence(kind, evidence)
