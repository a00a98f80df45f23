"""Configuration YAML is typed by the YAML 1.2 core schema: `no` (nitric oxide) stays a string."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from contracts.errors import ConfigError
from contracts.registry import SAMPLE_REGISTRY
from contracts.yamlfile import load_yaml_mapping, parse_yaml
from rules.config import CATALOGUE_PATH
from simulators.scenarios import SCENARIO_DIR

YAML_1_1_BOOLEANS = ["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"]


@pytest.mark.parametrize("word", YAML_1_1_BOOLEANS)
def test_yaml_1_1_boolean_words_stay_strings_as_keys_and_values(word: str) -> None:
    assert parse_yaml(f"{word}: {word}\nlist: [{word}]") == {word: word, "list": [word]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
        ("~", None),
        ("null", None),
        ("", None),
        ("42", 42),
        ("-7", -7),
        ("+7", 7),
        ("010", 10),  # YAML 1.1: octal 8
        ("0o17", 15),
        ("0x1F", 31),
        ("1.5", 1.5),
        (".5", 0.5),
        ("1e3", 1000.0),  # YAML 1.1: the string "1e3"
        ("-.inf", -math.inf),
        ("1:30", "1:30"),  # YAML 1.1: sexagesimal 90
        ("1_000", "1_000"),  # YAML 1.1: 1000
        ("2026-03-02", "2026-03-02"),  # YAML 1.1: a date
        ("=", "="),  # PyYAML 1.1: an error
        ("'no'", "no"),
        ("'true'", "true"),
        ("'42'", "42"),
    ],
)
def test_core_schema_scalars(text: str, expected: object) -> None:
    value = parse_yaml(f"v: {text}")["v"]
    assert value == expected
    assert type(value) is type(expected)


def test_nan_and_merge_keys() -> None:
    doc = parse_yaml("n: .NaN\nbase: &b {a: 1}\nother: {<<: *b, c: 2}")
    assert math.isnan(doc["n"])
    assert doc["other"] == {"a": 1, "c": 2}


@pytest.mark.parametrize("text", ["v: !!bool yes", "v: !!int 1_000", "v: !!float abc"])
def test_explicit_tags_on_text_outside_the_core_schema_are_errors_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"^{path}: not valid YAML: "):
        load_yaml_mapping(path)


def test_every_configuration_file_in_the_repository_reads_the_same_as_before() -> None:
    """The shipped files use only true/false, numbers and strings that YAML 1.1 and 1.2 agree on."""
    import yaml

    files = [SAMPLE_REGISTRY, CATALOGUE_PATH, *sorted(SCENARIO_DIR.glob("*.yaml"))]
    assert len(files) >= 6
    for path in files:
        assert load_yaml_mapping(path) == yaml.safe_load(path.read_text()), path
