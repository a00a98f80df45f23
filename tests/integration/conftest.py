"""Fixtures for integration tests that need a gateway of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings

from .helpers import GatewayProcess


@pytest.fixture
def gateway(infra: InfraSettings, secrets: SecretStore, unique: str, tmp_path: Path) -> Iterator[GatewayProcess]:
    """A real `cems gateway` in its own topic namespace and MQTT session; its broker
    session is ended afterwards so it does not keep queueing."""
    gw = GatewayProcess(infra, f"g{unique}", tmp_path / "gateway.log", client_id=f"gw-{unique}")
    gw.start()
    yield gw
    gw.stop()
    gw.end_session(secrets)
