"""The `cems` command against the running servers."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cems.cli import app
from cems.infra.settings import InfraSettings

pytestmark = pytest.mark.integration
runner = CliRunner()


def test_infra_status_reports_every_server_healthy(infra: InfraSettings) -> None:
    result = runner.invoke(app, ["infra", "status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("mosquitto", "kafka", "influxdb", "postgres"):
        assert name in result.output
    assert result.output.count("healthy") == 4


def test_infra_up_is_idempotent(infra: InfraSettings) -> None:
    result = runner.invoke(app, ["infra", "up"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.output.count("already running") == 4


def test_unknown_server_name_is_a_clear_error(infra: InfraSettings) -> None:
    result = runner.invoke(app, ["infra", "status", "grafana"])
    assert result.exit_code == 1
    assert "unknown server(s) ['grafana']" in result.output


def test_topics_ensure_lists_every_project_topic(infra: InfraSettings) -> None:
    result = runner.invoke(app, ["topics", "ensure"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("cems.v1.readings", "cems.v1.dead-letters", "cems.v1.alerts", "cems.v1.hourly-averages"):
        assert name in result.output
