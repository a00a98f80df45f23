"""The `cems` command tree: every group mounted once at the root, and the root's one error handler."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cems.cli import app
from contracts.errors import ConfigError

ROOT_COMMANDS = [
    "gateway", "worker", "sink", "run", "simulate", "replay",
    "infra", "contracts", "topics", "dashboards", "alerts", "notify", "silence", "console",
    "emergency",
]  # fmt: skip
GROUP_COMMANDS = {
    "infra": ["up", "down", "status", "mosquitto-config"],
    "contracts": ["schema"],
    "topics": ["ensure"],
    "dashboards": ["generate", "verify"],
    "alerts": ["list", "tail", "ack"],
    "silence": ["add", "expire", "list"],
    "console": ["serve", "users", "db"],
    "emergency": ["declare", "end", "list", "report"],
}


def test_the_root_lists_every_command_and_group_in_order() -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, typer.core.TyperGroup)
    ctx = typer.Context(root)
    assert root.list_commands(ctx) == ROOT_COMMANDS
    for name, commands in GROUP_COMMANDS.items():
        group = root.get_command(ctx, name)
        assert isinstance(group, typer.core.TyperGroup), name
        assert group.list_commands(ctx) == commands, name


@pytest.mark.parametrize(
    "args",
    [
        ["replay", "--registry", "/nonexistent/registry.yaml", "x.txt"],  # a command at the root
        ["infra", "mosquitto-config", "--out", "{out}", "--registry", "/nonexistent/registry.yaml"],  # in a group
    ],
)
def test_a_cems_error_from_any_command_is_one_red_line_on_stderr_and_exit_1(args: list[str], tmp_path: Path) -> None:
    out = tmp_path / "auth"
    result = CliRunner().invoke(app, [a.format(out=out) for a in args])
    assert result.exit_code == 1, result.output
    assert result.stderr == "error: /nonexistent/registry.yaml: registry file not found\n"
    assert result.stdout == ""
    assert not out.exists()


def test_the_root_handles_cems_errors_only(tmp_path: Path) -> None:
    """Anything else is a bug and keeps its traceback (exit code 1 from the exception, not a message)."""
    extra = typer.Typer()

    @extra.command("boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    @extra.command("config")
    def config() -> None:
        raise ConfigError("x.yaml: entry 1: unknown key 'y'")

    app.add_typer(extra, name="test-extra")
    try:
        bug = CliRunner().invoke(app, ["test-extra", "boom"])
        assert isinstance(bug.exception, RuntimeError)
        handled = CliRunner().invoke(app, ["test-extra", "config"])
        assert handled.exit_code == 1
        assert handled.stderr == "error: x.yaml: entry 1: unknown key 'y'\n"
    finally:
        app.registered_groups.pop()


def test_python_dash_m_cems_cli_runs_the_command() -> None:
    """The services supervisor (cems run) and the benchmarks start their children as `python -m cems.cli`."""
    result = subprocess.run(
        [sys.executable, "-m", "cems.cli", "alerts", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "ack" in result.stdout and "tail" in result.stdout
