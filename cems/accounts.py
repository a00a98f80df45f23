"""MQTT accounts derived from the device registry (one per enterprise, plus the platform)."""

from __future__ import annotations

import os
from pathlib import Path

from cems.infra.mosquitto import MqttAccount
from contracts.registry import SAMPLE_REGISTRY, load_registry


def registry_path() -> Path:
    return Path(os.environ.get("CEMS_REGISTRY", str(SAMPLE_REGISTRY)))


def mqtt_accounts(path: Path | None = None) -> list[MqttAccount]:
    registry = load_registry(path or registry_path())
    # every stream the account publishes: each stack's, and each facility's electricity meter's
    return [
        MqttAccount(
            e.id,
            "enterprise",
            (*(s.reporting_interval_s for s in e.stacks), *(f.meter.reporting_interval_s for f in e.facilities)),
        )
        for e in registry.enterprises
    ]
