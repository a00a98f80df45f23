"""Build the detection engine from its files: registry, limits catalogue, rule settings."""

from __future__ import annotations

from pathlib import Path

from contracts.registry import Registry
from contracts.yamlfile import load_yaml_mapping
from rules.config import CATALOGUE_PATH, RuleSettings, parse_catalogue, parse_settings, profiles
from rules.engine import DetectionEngine


def load_engine(
    registry: Registry, rules_file: Path | None = None, catalogue_file: Path | None = None
) -> DetectionEngine:
    catalogue_path = catalogue_file or CATALOGUE_PATH
    catalogue = parse_catalogue(load_yaml_mapping(catalogue_path), str(catalogue_path))
    settings = parse_settings(load_yaml_mapping(rules_file), str(rules_file)) if rules_file else RuleSettings()
    return DetectionEngine(profiles(registry, catalogue), settings)
