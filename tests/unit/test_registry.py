"""The device registry loads strictly and names the file, entry and key of every problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from contracts.errors import ConfigError
from contracts.parameters import Unit
from contracts.registry import SAMPLE_REGISTRY, Industry, load_registry


def _sample() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(SAMPLE_REGISTRY.read_text())


def _write(tmp_path: Path, data: dict) -> Path:  # type: ignore[type-arg]
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


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


def test_unknown_key_names_file_entry_and_key(tmp_path: Path) -> None:
    data = _sample()
    data["enterprises"][0]["stacks"][1]["refernce_o2"] = 6
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "enterprises[jy-power-1].stacks[jy-power-1-s2].refernce_o2: unknown key" in msg


def test_duplicate_mn_is_an_error(tmp_path: Path) -> None:
    data = _sample()
    first_mn = data["enterprises"][0]["stacks"][0]["devices"][0]["mn"]
    data["enterprises"][3]["stacks"][0]["devices"][0]["mn"] = first_mn
    with pytest.raises(ConfigError, match=f"duplicate MN '{first_mn}'"):
        load_registry(_write(tmp_path, data))


def test_bad_unit_is_an_error_naming_the_parameter(tmp_path: Path) -> None:
    data = _sample()
    data["enterprises"][0]["stacks"][0]["parameters"]["pm"] = "ppm"
    with pytest.raises(ConfigError) as info:
        load_registry(_write(tmp_path, data))
    msg = str(info.value)
    assert "enterprises[jy-power-1].stacks[jy-power-1-s1].parameters" in msg
    assert "'pm' cannot be reported in 'ppm'" in msg


def test_unknown_unit_and_parameter(tmp_path: Path) -> None:
    data = _sample()
    data["enterprises"][0]["stacks"][0]["parameters"]["so2"] = "g/m3"
    data["enterprises"][1]["stacks"][0]["parameters"]["mercury"] = "mg/m3"
    with pytest.raises(ConfigError) as info:
        load_registry(_write(tmp_path, data))
    msg = str(info.value)
    assert "stacks[jy-power-1-s1].parameters.so2" in msg
    assert "unknown parameter 'mercury'" in msg


def test_wrong_version_and_missing_file(tmp_path: Path) -> None:
    data = _sample()
    data["version"] = 2
    with pytest.raises(ConfigError, match="key 'version' must be 1"):
        load_registry(_write(tmp_path, data))
    with pytest.raises(ConfigError, match="registry file not found"):
        load_registry(tmp_path / "absent.yaml")
