"""NOx as NO2 is judged whenever a NOx limit applies, whether the stack reports NOx itself or NO
and NO2; a limit that could never be judged is refused when the profiles are built."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from contracts.alerts import AlertEventType, AlertKind, HourlyStatus
from contracts.errors import ConfigError
from contracts.parameters import nox_as_no2
from contracts.registry import Registry
from contracts.yamlfile import load_yaml_mapping
from rules.config import CATALOGUE_PATH, parse_catalogue, profiles
from tests.rulekit import T0, reading_of, run

CATALOGUE = parse_catalogue(load_yaml_mapping(CATALOGUE_PATH))
H = timedelta(hours=1)
M = timedelta(minutes=1)
WHERE = "registry: enterprises[e1].stacks[e1-s1]"


def registry(parameters: list[str], industry: str = "coal_power", limits: dict[str, float] | None = None) -> Registry:
    stack: dict[str, Any] = {
        "id": "e1-s1",
        "name": "stack",
        "reference_o2_pct": 6,
        "parameters": {p: "%" if p == "o2" else "mg/m3" for p in parameters},
        "limits_mg_m3": limits or {},
        "devices": [{"mn": "MN1"}],
    }
    ent = {"id": "e1", "name": "e", "district": "d", "industry": industry, "stacks": [stack]}
    return Registry.model_validate({"version": 1, "zone": "z", "enterprises": [ent]})


@pytest.mark.parametrize(
    ("parameters", "industry", "limits", "nox_limit"),
    [
        (["no", "no2", "o2"], "coal_power", None, 50.0),  # catalogue limit, NOx derived
        (["no", "no2", "o2"], "coal_power", {"nox": 25.0}, 25.0),  # the stack's override
        (["no", "no2", "o2"], "chemical", None, 100.0),
        (["nox", "o2"], "coal_power", None, 50.0),
        (["nox", "no", "no2", "o2"], "coal_power", None, 50.0),
        (["o2", "pm"], "cement", None, None),  # measures no nitrogen oxide at all: not judged
        (["no", "no2", "o2"], "coating", None, None),  # no NOx limit in the industry
    ],
)
def test_nox_limit_applies_to_what_the_stack_reports(
    parameters: list[str], industry: str, limits: dict[str, float] | None, nox_limit: float | None
) -> None:
    profile = profiles(registry(parameters, industry, limits), CATALOGUE)["e1-s1"]
    assert profile.limit("nox") == nox_limit
    assert profile.parameters == frozenset(parameters)  # declared ones: NOx is not missing data


@pytest.mark.parametrize(
    ("parameters", "industry", "expected"),
    [
        (
            ["no", "o2"],
            "coal_power",
            f"{WHERE}.parameters.no: a nox limit of 50 mg/m3 applies (the limits catalogue for coal_power) but nox "
            "can never be computed: no2 not declared; declare nox, or no and no2",
        ),
        (
            ["no2", "o2"],
            "coking",
            f"{WHERE}.parameters.no2: a nox limit of 150 mg/m3 applies (the limits catalogue for coking) but nox "
            "can never be computed: no not declared; declare nox, or no and no2",
        ),
        (
            ["so2"],
            "coal_power",
            f"{WHERE}.parameters.so2: the so2 limit of 35 mg/m3 (the limits catalogue for coal_power) is judged at "
            "reference O2 6 %, but o2 is not declared: every hour would be not convertible; declare o2",
        ),
        (
            ["no", "no2"],
            "coal_power",
            f"{WHERE}.parameters.nox: the nox limit of 50 mg/m3 (the limits catalogue for coal_power) is judged at "
            "reference O2 6 %, but o2 is not declared: every hour would be not convertible; declare o2",
        ),
    ],
)
def test_a_limit_that_could_never_be_judged_is_refused(parameters: list[str], industry: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        profiles(registry(parameters, industry), CATALOGUE)
    assert str(info.value) == expected


def test_override_judged_at_reference_o2_without_o2_names_the_override() -> None:
    with pytest.raises(ConfigError) as info:
        profiles(registry(["pm"], "coal_power", {"pm": 5.0}), CATALOGUE)
    assert str(info.value) == (
        f"{WHERE}.limits_mg_m3.pm: the pm limit of 5 mg/m3 (its limits_mg_m3) is judged at reference O2 6 %, "
        "but o2 is not declared: every hour would be not convertible; declare o2"
    )


def test_without_o2_conversion_o2_is_not_needed() -> None:
    profile = profiles(registry(["so2", "no", "no2"], "chemical"), CATALOGUE)["e1-s1"]
    assert profile.limits_mg_m3 == {"so2": 50.0, "nox": 100.0}


def _no_no2_minutes(count: int, no: float, no2: float, o2: float) -> list[Any]:
    """A minute's reading as the gateway emits it for a NO + NO2 analyser: NOx added as NO2."""
    return [
        reading_of(
            T0 + i * M + timedelta(seconds=30), {"no": no, "no2": no2, "nox": nox_as_no2(no, no2), "o2": o2}, "e1-s1"
        )
        for i in range(count)
    ]


@pytest.mark.parametrize(
    ("no", "no2", "o2", "nox_limit", "mean", "converted", "exceeded"),
    [
        (20.0, 0.0, 6.0, 25.0, 30.6667, 30.6667, True),  # NO 20 as NO2 = 20 * 46/30 = 30.67 > 25
        (20.0, 0.0, 6.0, None, 30.6667, 30.6667, False),  # catalogue 50
        (20.0, 0.0, 9.0, 35.0, 30.6667, 38.3333, True),  # 30.67 * (21-6)/(21-9) = 38.33 > 35
        (40.0, 5.0, 6.0, None, 66.3333, 66.3333, True),  # 61.33 + 5 = 66.33 > 50
        (10.0, 2.0, 6.0, None, 17.3333, 17.3333, False),
    ],
)
def test_nox_from_no_and_no2_has_an_hourly_average_and_exceedance(
    no: float, no2: float, o2: float, nox_limit: float | None, mean: float, converted: float, exceeded: bool
) -> None:
    limits = {"nox": nox_limit} if nox_limit is not None else None
    profile = profiles(registry(["no", "no2", "o2"], "coal_power", limits), CATALOGUE)["e1-s1"]
    events, hourly = run([profile], _no_no2_minutes(60, no, no2, o2), until=T0 + H + 6 * M)
    [nox] = [h for h in hourly if h.parameter == "nox"]
    assert nox.status is HourlyStatus.VALID
    assert nox.valid_minutes == 60
    assert nox.mean == pytest.approx(mean, abs=1e-4)
    assert nox.converted == pytest.approx(converted, abs=1e-4)
    assert nox.limit == (nox_limit or 50.0)
    assert nox.o2_converted is True
    opened = [e for e in events if e.kind is AlertKind.EXCEEDANCE and e.event is AlertEventType.OPENED]
    assert [e.parameter for e in opened] == (["nox"] if exceeded else [])
    if exceeded:
        assert opened[0].evidence["converted_mg_m3"] == pytest.approx(converted, abs=1e-4)
        assert opened[0].evidence["limit_mg_m3"] == nox.limit
    # NO and NO2 have no limit of their own: averaged, not judged
    assert {h.parameter: h.limit for h in hourly if h.parameter in ("no", "no2")} == {"no": None, "no2": None}
