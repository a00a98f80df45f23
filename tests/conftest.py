"""Shared fixtures. Integration tests use the real servers started by ``cems infra up``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from cems.accounts import mqtt_accounts
from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings
from cems.infra.stack import servers, up
from contracts.errors import CemsError


@pytest.fixture(scope="session")
def infra() -> Iterator[InfraSettings]:
    """Bring the real Mosquitto, Kafka and InfluxDB up, or reuse running ones.

    A server that cannot be started fails the test with what to do; nothing is skipped.
    The servers are left running for the next run; `cems infra down` stops them.
    """
    settings = InfraSettings()
    try:
        up(servers(settings, mqtt_accounts()), say=lambda _msg: None)
    except CemsError as exc:
        pytest.fail(
            f"local infrastructure is not available: {exc}\n"
            "Start it with `.venv/bin/cems infra up` (or run ./scripts/test.sh, which does it).",
            pytrace=False,
        )
    yield settings


@pytest.fixture(scope="session")
def secrets(infra: InfraSettings) -> SecretStore:
    return SecretStore(infra.secrets_dir)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, group and client names, so runs never collide."""
    return uuid.uuid4().hex[:10]
