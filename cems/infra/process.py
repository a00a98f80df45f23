"""Start, health-check and stop one local server process.

Each server runs in its own session (so ``cems infra up`` can exit while the servers keep
running), writes its output to ``<state>/<name>/<name>.log`` and records its pid next to it.
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from contracts.errors import InfrastructureError

from .settings import InfraSettings


@dataclass(frozen=True)
class ServerStatus:
    name: str
    endpoint: str
    pid: int | None
    healthy: bool
    detail: str
    log: Path


class ManagedServer(ABC):
    """A server process the project installs, configures, starts and stops itself."""

    name: str
    #: a word that must appear in the process's command line (guards against reused pids)
    process_marker: str
    #: what ``stop`` sends to the server's process group to ask it to shut down
    stop_signal: signal.Signals = signal.SIGTERM

    def __init__(self, settings: InfraSettings) -> None:
        self.settings = settings

    # -- what each server defines -------------------------------------------------------
    @property
    @abstractmethod
    def endpoint(self) -> str: ...

    @abstractmethod
    def prepare(self) -> None:
        """Install and configure, idempotently (may take long the first time)."""

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def check(self) -> str | None:
        """``None`` when the server answers as it should, otherwise why not."""

    def after_start(self) -> None:  # noqa: B027 - optional hook
        """Idempotent set-up that needs the server running (users, buckets, ...)."""

    def env(self) -> dict[str, str] | None:
        return None

    # -- shared machinery ---------------------------------------------------------------
    @property
    def home(self) -> Path:
        return self.settings.state_dir / self.name

    @property
    def log_path(self) -> Path:
        return self.home / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.home / f"{self.name}.pid"

    def pid(self) -> int | None:
        """The pid of our running server process, or ``None``."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        return pid if self.process_marker in cmdline else None

    def start(self) -> str:
        """Start the server unless it already runs healthy; wait until it answers."""
        pid = self.pid()
        if pid is not None and self.check() is None:
            self.after_start()
            return f"{self.name}: already running (pid {pid}) at {self.endpoint}"
        if pid is not None:
            self.stop()
        self.prepare()
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=self.env(),
                cwd=self.home,
            )
        except OSError as exc:
            raise InfrastructureError(f"{self.name}: could not start {self.command()[0]}: {exc}") from exc
        finally:
            log.close()
        self.pid_path.write_text(f"{proc.pid}\n")
        started = time.monotonic()
        deadline = started + self.settings.start_timeout_s
        reason: str | None = "not checked yet"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise InfrastructureError(
                    f"{self.name} exited with code {proc.returncode} while starting; read {self.log_path}"
                )
            reason = self.check()
            if reason is None:
                break
            time.sleep(0.5)
        else:
            raise InfrastructureError(
                f"{self.name} did not become healthy within {self.settings.start_timeout_s:.0f}s "
                f"({reason}); read {self.log_path}",
                retryable=True,
            )
        self.after_start()
        return f"{self.name}: started (pid {proc.pid}) at {self.endpoint} in {time.monotonic() - started:.1f}s"

    def stop(self, timeout_s: float = 30.0) -> str:
        pid = self.pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return f"{self.name}: not running"
        os.killpg(pid, self.stop_signal)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        forced = _alive(pid)
        if forced:
            os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self.pid_path.unlink(missing_ok=True)
        return f"{self.name}: stopped (pid {pid}{', killed after timeout' if forced else ''})"

    def status(self) -> ServerStatus:
        pid = self.pid()
        if pid is None:
            return ServerStatus(self.name, self.endpoint, None, False, "not running", self.log_path)
        reason = self.check()
        return ServerStatus(self.name, self.endpoint, pid, reason is None, reason or "healthy", self.log_path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of ours counts as gone
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def run_checked(cmd: list[str], what: str, *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a set-up command; on failure raise with its output and what it was for."""
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise InfrastructureError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    if done.returncode != 0:
        raise InfrastructureError(
            f"{what} failed (exit {done.returncode}): {' '.join(cmd)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return done.stdout


def check_reachable(home: Path, account: pwd.struct_passwd, server: str) -> None:
    """A server that drops to ``account`` must be able to enter every folder above its home."""
    for parent in home.resolve().parents:
        mode = parent.stat()
        reachable = (
            mode.st_uid == account.pw_uid
            or mode.st_mode & stat.S_IXOTH
            or (mode.st_gid == account.pw_gid and mode.st_mode & stat.S_IXGRP)
        )
        if not reachable:
            raise InfrastructureError(
                f"{server} runs as user {account.pw_name}, which cannot enter {parent} "
                f"(mode {stat.filemode(mode.st_mode)}); choose a state folder it can reach"
            )
