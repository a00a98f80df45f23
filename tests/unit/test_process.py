"""Process supervision: failures name the server and the log to read; stop is clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from cems.infra.process import ManagedServer
from cems.infra.settings import InfraSettings
from contracts.errors import InfrastructureError


class ShellServer(ManagedServer):
    """A stand-in server: a shell command, healthy when a file exists."""

    name = "shell"
    process_marker = "sleep"

    def __init__(self, settings: InfraSettings, script: str) -> None:
        super().__init__(settings)
        self.script = script

    @property
    def endpoint(self) -> str:
        return "shell://"

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return ["sh", "-c", self.script]

    def check(self) -> str | None:
        return None if (self.home / "ready").exists() else "ready file missing"


def _settings(tmp_path: Path, timeout_s: float = 3.0) -> InfraSettings:
    return InfraSettings(state_dir=tmp_path, start_timeout_s=timeout_s)


def test_process_exiting_at_start_names_server_and_log(tmp_path: Path) -> None:
    server = ShellServer(_settings(tmp_path), "echo boom; exit 3")
    with pytest.raises(InfrastructureError) as info:
        server.start()
    assert "shell exited with code 3 while starting" in str(info.value)
    assert str(tmp_path / "shell" / "shell.log") in str(info.value)
    assert "boom" in (tmp_path / "shell" / "shell.log").read_text()


def test_never_healthy_times_out_with_reason(tmp_path: Path) -> None:
    server = ShellServer(_settings(tmp_path, timeout_s=1.5), "exec sleep 30")
    with pytest.raises(InfrastructureError) as info:
        server.start()
    assert "did not become healthy within 2s (ready file missing)" in str(info.value)
    assert info.value.retryable
    assert server.stop().startswith("shell: stopped")


def test_start_status_stop_cycle_and_idempotence(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    server = ShellServer(settings, f"touch {tmp_path / 'shell' / 'ready'}; exec sleep 30")
    first = server.start()
    assert first.startswith("shell: started (pid ")
    pid = server.pid()
    assert pid is not None
    assert server.start() == f"shell: already running (pid {pid}) at shell://"
    assert server.status().healthy
    assert server.stop() == f"shell: stopped (pid {pid})"
    assert server.pid() is None
    assert not server.status().healthy
    assert server.stop() == "shell: not running"


def test_stale_pid_file_is_not_mistaken_for_the_server(tmp_path: Path) -> None:
    server = ShellServer(_settings(tmp_path), "true")
    server.home.mkdir(parents=True)
    server.pid_path.write_text("1\n")  # pid 1 exists but is not our server
    assert server.pid() is None
