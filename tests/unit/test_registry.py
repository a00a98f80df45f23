"""The device registry loads strictly and names the file, enterprise, stack and key of every problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.errors import ConfigError
from contracts.parameters import METER_PARAMETERS, PARAMETERS, Unit
from contracts.registry import SAMPLE_REGISTRY, Industry, load_registry

Data = dict[str, Any]

POWER_1 = "enterprises[jy-power-1]"
S1 = f"{POWER_1}.stacks[jy-power-1-s1]"
S2 = f"{POWER_1}.stacks[jy-power-1-s2]"
S1_MN = "41900100010101JYC"
KNOWN = ", ".join(sorted(set(PARAMETERS) - METER_PARAMETERS))


def _sample() -> Data:
    return yaml.safe_load(SAMPLE_REGISTRY.read_text())


def _write(tmp_path: Path, data: Data) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def _stack(data: Data, enterprise: int = 0, stack: int = 0) -> Data:
    s: Data = data["enterprises"][enterprise]["stacks"][stack]
    return s


def _set(stack: tuple[int, int], *path: str | int, value: Any) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        node: Any = _stack(data, *stack)
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _problems(tmp_path: Path, change: Callable[[Data], None]) -> list[str]:
    data = _sample()
    change(data)
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    lines = str(info.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    return [line.removeprefix(f"{path}: ") for line in lines]


def _both(first: Callable[[Data], None], second: Callable[[Data], None]) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        first(data)
        second(data)

    return change


def _duplicate_mn(data: Data) -> None:
    _stack(data, 3)["devices"][0]["mn"] = _stack(data)["devices"][0]["mn"]


def _duplicate_stack(data: Data) -> None:
    _stack(data, 1, 1)["id"] = "jy-power-1-s2"


# every problem, the exact line that reports it (after "<file>: ")
CASES: list[tuple[str, Callable[[Data], None], list[str]]] = [
    (
        "unit the parameter cannot be given in",
        _set((0, 0), "parameters", "pm", value="ppm"),
        [f"{S1}.parameters.pm: cannot be reported in 'ppm' (allowed: mg/m3)"],
    ),
    (
        "NO in a unit that does not exist",
        _set((0, 1), "parameters", "no", value="ppb"),
        [
            f"{S2}.parameters.no: Input should be 'mg/m3', 'ppm', 'm3/s', 'm3/h', 'm/s', 'C', 'kPa', 'Pa', '%', 'MW', "
            "'t/h', 'kW', 'A' or 'kWh'"
        ],
    ),
    (
        "unknown parameter",
        _set((1, 0), "parameters", "mercury", value="mg/m3"),
        [f"enterprises[jy-power-2].stacks[jy-power-2-s1].parameters.mercury: unknown parameter; known: {KNOWN}"],
    ),
    (
        "a parameter name that YAML reads as a boolean (written true)",
        _set((0, 1), "parameters", True, value="mg/m3"),
        [f"{S2}.parameters.true (key): Input should be a valid string"],
    ),
    (
        "unknown key in a stack",
        _set((0, 1), "refernce_o2", value=6),
        [f"{S2}.refernce_o2: unknown key"],
    ),
    (
        "non-positive limit",
        _set((0, 0), "limits_mg_m3", value={"so2": -5}),
        [f"{S1}.limits_mg_m3.so2: a limit must be positive, got -5"],
    ),
    (
        "limit that is not a number",
        _set((0, 0), "limits_mg_m3", value={"so2": "high"}),
        [f"{S1}.limits_mg_m3.so2: Input should be a valid number, unable to parse string as a number"],
    ),
    (
        "limit for an unknown parameter",
        _set((0, 0), "limits_mg_m3", value={"mercury": 0.03}),
        [f"{S1}.limits_mg_m3.mercury: limit for an unknown parameter"],
    ),
    (  # (the test writes keys sorted)
        "limit for a parameter the stack does not report",
        _set((2, 1), "limits_mg_m3", value={"nox": 100, "co": 50}),
        [
            "enterprises[jy-cement-1].stacks[jy-cement-1-s2].limits_mg_m3.co: a limit that could never be judged: "
            "co is not in the stack's parameters",
            "enterprises[jy-cement-1].stacks[jy-cement-1-s2].limits_mg_m3.nox: a limit that could never be judged: "
            "nox is not reported: declare nox, or no and no2 (nox is then derived from them)",
        ],
    ),
    (
        "duplicate MN",
        _duplicate_mn,
        [
            f"enterprises[jy-cement-2].stacks[jy-cement-2-s1].devices[{S1_MN}].mn: duplicate MN '{S1_MN}' "
            "(also on 'jy-power-1-s1')"
        ],
    ),
    (
        "duplicate stack id",
        _duplicate_stack,
        ["enterprises[jy-power-2].stacks[jy-power-1-s2].id: duplicate stack id 'jy-power-1-s2' (also in 'jy-power-1')"],
    ),
    (
        "unknown device protocol",
        _set((0, 0), "devices", 0, "protocol", value="mqtt"),
        [f"{S1}.devices[{S1_MN}].protocol: Input should be 'json' or 'hj212'"],
    ),
    (
        "MN with characters HJ 212 does not allow",
        _set((0, 0), "devices", 0, "mn", value="4190-0100"),
        [f"{S1}.devices[4190-0100].mn: String should match pattern '^[0-9A-Za-z]+$'"],
    ),
    (
        "unknown key in a device",
        _set((0, 0), "devices", 0, "password", value="x"),
        [f"{S1}.devices[{S1_MN}].password: unknown key"],
    ),
    (
        "several problems at once are all reported",
        _both(_set((0, 0), "parameters", "pm", value="ppm"), _set((0, 1), "wet", value=True)),
        [f"{S1}.parameters.pm: cannot be reported in 'ppm' (allowed: mg/m3)", f"{S2}.wet: unknown key"],
    ),
]


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_problem_names_the_enterprise_stack_and_key(
    tmp_path: Path, change: Callable[[Data], None], expected: list[str]
) -> None:
    assert _problems(tmp_path, change) == expected


def test_sample_fleet_loads_and_covers_the_zone_industries() -> None:
    reg = load_registry()
    stacks = reg.stacks()
    assert len(stacks) >= 24
    industries = {e.industry for e in reg.enterprises}
    assert {
        Industry.COAL_POWER,
        Industry.CEMENT,
        Industry.STEEL_SINTER,
        Industry.COKING,
        Industry.CHEMICAL,
    } <= industries
    assert len(reg.device_index()) == sum(len(s.devices) for _, s in stacks)
    # NH3 in ppm on cement kiln tails is accepted (converted by the gateway)
    _, kiln = reg.stack_index()["jy-cement-1-s1"]
    assert kiln.parameters["nh3"] == Unit.PPM
    assert kiln.reference_o2_pct == 10
    assert reg.source == str(SAMPLE_REGISTRY)


def test_parameters_named_like_yaml_1_1_booleans_stay_strings(tmp_path: Path) -> None:
    # written by hand, unquoted, as an operator would: NO and NO2 instead of NOx, a damper
    # setting "on" in a stack name, booleans written yes/no
    text = SAMPLE_REGISTRY.read_text()
    s2 = text.index("  - id: jy-power-1-s2")
    head, tail = text[:s2], text[s2:]
    tail = tail.replace("      nox: mg/m3\n", "      no: mg/m3\n      no2: ppm\n", 1)
    tail = tail.replace("name: '#2 boiler stack'", "name: on", 1)
    tail = tail.replace("wet_desulphurisation: true", "wet_desulphurisation: yes", 1)
    path = tmp_path / "registry.yaml"
    path.write_text(head + tail)
    _, stack = load_registry(path).stack_index()["jy-power-1-s2"]
    assert stack.parameters["no"] is Unit.MG_M3
    assert stack.parameters["no2"] is Unit.PPM
    assert "nox" not in stack.parameters
    assert stack.name == "on"
    assert stack.wet_desulphurisation is True  # a boolean setting still takes yes/no


def test_wrong_version_and_missing_file(tmp_path: Path) -> None:
    data = _sample()
    data["version"] = 3
    with pytest.raises(ConfigError, match="key 'version' must be 1 or 2"):
        load_registry(_write(tmp_path, data))
    with pytest.raises(ConfigError, match="registry file not found"):
        load_registry(tmp_path / "absent.yaml")


# -- facilities, meters and reduction lists (format 2) ----------------------------------------------------
P1 = "enterprises[jy-power-1]"


def _facility(i: int, key: str, value: Any) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        data["enterprises"][0]["facilities"][i][key] = value

    return change


def _measure(level: str, i: int, **values: Any) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        data["enterprises"][0]["emergency"]["levels"][level][i] = {
            "facility": "jy-power-1-boiler1", "action": "cut", "cut_pct": 10, **values
        }  # fmt: skip

    return change


def _meter_mn_of_a_stack_device(data: Data) -> None:
    data["enterprises"][0]["facilities"][1]["meter"]["mn"] = S1_MN


def _version_1(data: Data) -> None:
    data["version"] = 1


FACILITY_CASES: list[tuple[str, Callable[[Data], None], list[str]]] = [
    (
        "a facility on a stack of another enterprise",
        _facility(0, "stack", "jy-power-2-s1"),
        [f"{P1}.facilities[jy-power-1-boiler1].stack: no stack 'jy-power-2-s1' in enterprise 'jy-power-1'"],
    ),
    (
        "a control facility treating a control facility",
        _facility(1, "treats", ["jy-power-1-fgd1"]),
        [f"{P1}.facilities[jy-power-1-scr1].treats[0]: 'jy-power-1-fgd1' is not a production facility"],
    ),
    (
        "a control facility treating production on another stack",
        _facility(0, "stack", "jy-power-1-s2"),
        [
            f"{P1}.facilities[jy-power-1-{c}].treats[0]: 'jy-power-1-boiler1' exhausts to 'jy-power-1-s2', not to "
            f"'jy-power-1-s1' where 'jy-power-1-{c}' treats"
            for c in ("scr1", "fgd1", "esp1")
        ],
    ),
    (
        "a control type said to be production",
        _facility(1, "role", "production"),
        [
            f"{P1}.facilities[jy-power-1-scr1].type: a scr is not a production facility",
            f"{P1}.facilities[jy-power-1-scr1].treats: only a control facility treats others",
        ],
    ),
    (
        "normal power not above the running threshold",
        _facility(0, "normal_kw", 200),
        [f"{P1}.facilities[jy-power-1-boiler1].normal_kw: normal_kw 200 must be above running_kw 200"],
    ),
    (
        "a facility with a stack's id",
        _facility(3, "id", "jy-power-1-s2"),
        [
            f"{P1}.facilities[jy-power-1-s2].id: duplicate id 'jy-power-1-s2' (facility and stack ids are one "
            "namespace)",
        ],
    ),
    (
        "a meter with a stack device's MN",
        _meter_mn_of_a_stack_device,
        [f"{P1}.facilities[jy-power-1-scr1].meter.mn: duplicate MN '{S1_MN}' (also on 'jy-power-1-s1')"],
    ),
    (
        "a meter reporting a stack parameter",
        _facility(0, "meter", {"mn": "M1", "parameters": {"power": "kW", "so2": "mg/m3"}}),
        [
            f"{P1}.facilities[jy-power-1-boiler1].meter.parameters.so2: not a meter parameter; a meter reports "
            "current, energy, power"
        ],
    ),
    (
        "a limit on a control facility",
        _measure("red", 0, facility="jy-power-1-fgd1", action="limit", limit_pct=50, cut_pct=None),
        [f"{P1}.emergency.levels.red[0].action: a limit measure applies to production, 'jy-power-1-fgd1' is control"],
    ),
    (
        "a cut without its percentage, with a limit's",
        _measure("orange", 0, cut_pct=None, limit_pct=50),
        [
            f"{P1}.emergency.levels.orange[0].limit_pct: limit_pct belongs to a limit measure, not cut",
            f"{P1}.emergency.levels.orange[0].cut_pct: a cut measure needs cut_pct",
        ],
    ),
    (
        "a cut of a pollutant the stack does not measure",
        _measure("orange", 0, pollutants=["nmhc"]),
        [
            f"{P1}.emergency.levels.orange[0].pollutants[0]: 'nmhc' is not measured on stack 'jy-power-1-s1': its "
            "emission cannot be judged"
        ],
    ),
    (
        "a measure for a facility the enterprise does not have",
        _measure("yellow", 0, facility="jy-coke-1-oven1"),
        [f"{P1}.emergency.levels.yellow[0].facility: no facility 'jy-coke-1-oven1' in enterprise 'jy-power-1'"],
    ),
]


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in FACILITY_CASES], ids=[c[0] for c in FACILITY_CASES])
def test_every_facility_problem_names_the_enterprise_facility_and_key(
    tmp_path: Path, change: Callable[[Data], None], expected: list[str]
) -> None:
    assert _problems(tmp_path, change) == expected


def test_facilities_need_format_2_and_a_format_1_file_without_them_still_loads(tmp_path: Path) -> None:
    problems = _problems(tmp_path, _version_1)
    assert f"{P1}.facilities[jy-power-1-boiler1]: facilities need registry version 2" in problems
    assert f"{P1}.emergency: a reduction list needs registry version 2" in problems
    data = _sample()
    data["version"] = 1
    for ent in data["enterprises"]:
        ent.pop("facilities", None)
        ent.pop("emergency", None)
    reg = load_registry(_write(tmp_path, data))
    assert reg.version == 1 and reg.facilities() == [] and len(reg.stacks()) == len(load_registry().stacks())


def test_meter_index_names_each_meter_its_facility_and_stack() -> None:
    reg = load_registry()
    index = reg.meter_index()
    assert len(index) == len(reg.facilities()) == 14
    ent, fac, stack = index["41900100019103JYE"]
    assert (ent.id, fac.id, stack.id) == ("jy-power-1", "jy-power-1-fgd1", "jy-power-1-s1")
    assert not set(index) & set(reg.device_index())


def test_a_cut_that_could_never_be_judged_is_refused_naming_the_measure(tmp_path: Path) -> None:
    """Emission rates are computed for pollutants with a limit, from flow and temperature: a cut of
    a pollutant without a limit, or on a stack without temperature, could never be judged."""
    from contracts.yamlfile import load_yaml_mapping
    from rules.config import CATALOGUE_PATH, parse_catalogue, profiles

    catalogue = parse_catalogue(load_yaml_mapping(CATALOGUE_PATH))
    data = _sample()
    data["enterprises"][0]["emergency"]["levels"]["orange"][0]["pollutants"] = ["so2", "o2"]
    del _stack(data)["parameters"]["temperature"]
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        profiles(load_registry(path), catalogue)
    no_temperature = (
        "stack 'jy-power-1-s1' reports no temperature: its emission rate (standard dry flow) cannot be computed"
    )
    assert str(info.value).splitlines() == [
        f"{path}: {P1}.emergency.levels.orange[0].pollutants: 'o2' has no limit on stack 'jy-power-1-s1': its "
        "emission rate is not computed, so the cut could never be judged",
        f"{path}: {P1}.emergency.levels.orange[0]: {no_temperature}",
        f"{path}: {P1}.emergency.levels.yellow[0]: {no_temperature}",  # (the file's keys are sorted)
    ]
    profiles(load_registry(), catalogue)  # the sample's cuts can all be judged
