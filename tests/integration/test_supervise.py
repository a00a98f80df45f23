"""`cems run` supervises: a service that exits with an error is started again, a bounded
number of times, then everything stops with the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from cems.infra.settings import InfraSettings
from cems.run import MAX_RESTARTS, Service, supervise
from contracts.topics import topics

pytestmark = pytest.mark.integration


def test_a_failing_service_is_restarted_then_the_pipeline_stops(infra: InfraSettings, tmp_path: Path) -> None:
    said: list[str] = []
    failing = Service("gateway", ["gateway", "--registry", str(tmp_path / "missing.yaml")])
    code = supervise([failing], tmp_path / "logs", infra.kafka_bootstrap, topics("unused"), say=said.append)
    assert code == 1
    assert len(failing.restarts) == MAX_RESTARTS
    assert sum("starting it again" in line for line in said) == MAX_RESTARTS
    assert said[-2].startswith("gateway exited with code 1; read ")  # then it gave up
    assert "registry file not found" in (tmp_path / "logs" / "gateway.log").read_text()
