"""Fault tests: servers of their own, which a test may kill, restart or reconfigure.

The shared servers (``cems infra up``) are never touched here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cems.accounts import mqtt_accounts
from cems.infra.mosquitto import MosquittoServer, MqttAccount
from cems.infra.process import ManagedServer
from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings
from contracts.registry import SAMPLE_REGISTRY
from tests.integration.helpers import free_port


class PrivateMosquitto:
    """A Mosquitto on its own port and state folder, configured by ``cems.infra.mosquitto``
    exactly as ``cems infra up`` configures the shared one (dynamic security from the sample
    registry, persistence, limits).

    ``kill()`` SIGKILLs it (no final save), ``stop()`` stops it cleanly (SIGTERM, saves),
    ``start()`` starts it again on the same port and data folder, so persistence carries over.
    ``reconfigure(...)`` starts it with other settings or accounts (restarting it when the
    generated configuration differs, as ``cems infra up`` does).
    """

    def __init__(self, state_dir: Path, accounts: list[MqttAccount], **settings: object) -> None:
        self.state_dir = state_dir
        self.accounts = accounts
        self.settings = InfraSettings(state_dir=state_dir, mqtt_port=free_port(), **settings)  # type: ignore[arg-type]
        self.server = MosquittoServer(self.settings, accounts)
        self.secrets = SecretStore(self.settings.secrets_dir)

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def port(self) -> int:
        return self.settings.mqtt_port

    @property
    def platform_user(self) -> str:
        return self.settings.mqtt_platform_user

    @property
    def enterprises(self) -> list[str]:
        return [a.username for a in self.accounts if a.role == "enterprise"]

    def password(self, username: str) -> str:
        return self.secrets.mqtt_password(username)

    def pid(self) -> int | None:
        return self.server.pid()

    def start(self) -> str:
        return self.server.start()

    def reconfigure(self, accounts: list[MqttAccount] | None = None, **settings: object) -> str:
        """Start with other settings (same port and folder) or accounts; returns what ``start`` said."""
        if accounts is not None:
            self.accounts = accounts
        self.settings = self.settings.model_copy(update=settings)
        self.server = MosquittoServer(self.settings, self.accounts)
        return self.server.start()

    def stop(self) -> str:
        pid = self.server.pid()
        said = self.server.stop()
        _reap(pid)
        return said

    def kill(self) -> None:
        if self.server.pid() is not None:
            kill(self.server)

    def log(self) -> str:
        return self.server.log_path.read_text(errors="replace")


def kill(server: ManagedServer) -> None:
    """SIGKILL a private server, as a crash (nothing saved, nothing flushed); reap it and
    assert it is gone."""
    pid = server.pid()
    assert pid is not None, f"{server.name} is not running"
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and server.pid() is not None:
        _reap(pid)
        time.sleep(0.05)
    _reap(pid)
    assert server.pid() is None, f"{server.name} pid {pid} survived SIGKILL"


def _reap(pid: int | None) -> None:
    """Collect our exited child, so it does not linger as a zombie."""
    if pid is None:
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@pytest.fixture
def private_mosquitto() -> Iterator[PrivateMosquitto]:
    """A private Mosquitto configured like production, started; stopped and removed after.

    Its state folder is made with ``tempfile`` (mode 0755) rather than under ``tmp_path``:
    run as root, mosquitto drops to user ``mosquitto``, which cannot enter pytest's 0700
    temporary folders.
    """
    state = Path(tempfile.mkdtemp(prefix="cems-faults-mosquitto-"))
    state.chmod(0o755)
    broker = PrivateMosquitto(state, mqtt_accounts(SAMPLE_REGISTRY))
    try:
        broker.start()
        yield broker
    finally:
        try:
            broker.stop()
        finally:
            shutil.rmtree(state, ignore_errors=True)
