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
    """Bring the real Mosquitto, Kafka, InfluxDB and PostgreSQL up, or reuse running ones.

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


@pytest.fixture(scope="session")
def postgres() -> InfraSettings:
    """Bring the real PostgreSQL of `cems infra` up (only it, not the brokers), or reuse the
    running one; its settings. A server that cannot be started fails the test with what to do."""
    from cems.infra.postgres import PostgresServer

    settings = InfraSettings()
    try:
        up([PostgresServer(settings)], say=lambda _msg: None)
    except CemsError as exc:
        pytest.fail(
            f"PostgreSQL is not available: {exc}\nStart it with `.venv/bin/cems infra up postgres`.", pytrace=False
        )
    return settings


@pytest.fixture
def postgres_url(postgres: InfraSettings) -> Iterator[str]:
    """A fresh, empty database of its own on the shared PostgreSQL, for one test.

    Gives its SQLAlchemy URL, ``postgresql+psycopg://cems:<password>@127.0.0.1:5432/test_<hex>``:
    the database is created by (and owned by) the ``cems`` login role, so the test may create
    tables, run Alembic migrations (``alembic.command.upgrade`` with ``sqlalchemy.url`` set to
    it) or start the console with it; afterwards it is dropped, sessions still connected
    included (``DROP DATABASE ... WITH (FORCE)``). Use::

        def test_cases_are_stored(postgres_url: str) -> None:
            engine = sqlalchemy.create_engine(postgres_url)
            ...
            engine.dispose()
    """
    from cems.infra.postgres import create_database, drop_database

    name = f"test_{uuid.uuid4().hex[:16]}"
    url = create_database(postgres, name)
    yield url
    drop_database(postgres, name)


#: every ``unique`` suffix handed out in this session: its Kafka topics are deleted at the end
_UNIQUES: list[str] = []


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, group and client names, so runs never collide."""
    suffix = uuid.uuid4().hex[:10]
    _UNIQUES.append(suffix)
    return suffix


@pytest.fixture(scope="session", autouse=True)
def _delete_the_sessions_topics() -> Iterator[None]:
    """Delete the Kafka topics this session's tests made (their names carry a ``unique``
    suffix): a broker kept across many runs would otherwise gather thousands of partitions and
    run out of file descriptors. Topics of other sessions and the ``cems`` namespace are left."""
    yield
    if not _UNIQUES:
        return
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=InfraSettings().kafka_bootstrap, client_id="cems-tests-cleanup", request_timeout_ms=30000
        )
    except KafkaError:
        return  # no broker was needed (a unit-test run)
    try:
        names = [t for t in admin.list_topics() if any(u in t for u in _UNIQUES)]
        for i in range(0, len(names), 100):
            admin.delete_topics(names[i : i + 100])
    except KafkaError as exc:  # cleanup only: the tests' results stand
        print(f"\ndeleting the session's Kafka topics failed: {exc}")
    finally:
        admin.close()
