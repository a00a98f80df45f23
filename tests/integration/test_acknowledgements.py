"""An officer's acknowledgement goes back into the engine: `cems alerts ack` puts it on the
acknowledgements topic (keyed by the alert's stack), the real Faust worker applies it in its
exactly-once transaction, and the `acknowledged` event appears once, however often it is sent."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from cems.cli import app
from cems.infra.settings import InfraSettings
from cems.topics import ensure_topics
from contracts.registry import load_registry
from contracts.topics import topics
from tests.rulekit import minutes

from .helpers import CemsProcess, consume_all, infra_env

pytestmark = pytest.mark.integration

STACKS = [s.id for _, s in load_registry().stacks()]
SILENT = STACKS[0]


def _acknowledged(bootstrap: str, topic: str, alert_id: str) -> list[dict[str, object]]:
    events = consume_all(bootstrap, topic, expect=1, timeout_s=5, settle_s=1)
    return [e for e in events if e["alert_id"] == alert_id and e["event"] == "acknowledged"]


def test_an_acknowledgement_reaches_the_engine_once(infra: InfraSettings, unique: str, tmp_path: Path) -> None:
    ns = f"k{unique}"
    topic_set = topics(ns)
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("version: 1\ngrace_s: 60\n")
    env = {**infra_env(infra), "CEMS_RULES_FILE": str(rules_file), "CEMS_TICK_INTERVAL_S": "1"}
    worker = CemsProcess(
        ["worker", "--namespace", ns, "--app-id", f"ack-{unique}", "--watermark", "event"],
        tmp_path / "worker.log", b"[^Worker]: Ready", env,
    )  # fmt: skip
    worker.start()
    try:
        # every stack reports for 20 minutes of event time, but one is silent after the first 2
        t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
        producer = Producer({"bootstrap.servers": infra.kafka_bootstrap, "partitioner": "murmur2_random"})
        for stack in STACKS:
            for reading in minutes(t0, 2 if stack == SILENT else 20, stack):
                producer.produce(topic_set.readings.name, key=stack.encode(), value=reading.model_dump_json().encode())
        assert producer.flush(30) == 0
        deadline = time.monotonic() + 90
        gap = None
        while gap is None:
            assert time.monotonic() < deadline, worker.tail()
            events = consume_all(infra.kafka_bootstrap, topic_set.alerts.name, expect=1, timeout_s=5, settle_s=1)
            gap = next((e for e in events if e["stack"] == SILENT and e["kind"] == "data_gap"), None)
        alert_id = str(gap["alert_id"])

        runner = CliRunner()
        args = ["alerts", "ack", alert_id, "--officer", "li", "--note", "on it", "--namespace", ns]
        for _ in range(2):  # twice: applied once
            result = runner.invoke(app, args, env={"COLUMNS": "200"})
            assert result.exit_code == 0, result.output
            assert f"acknowledged {alert_id}" in result.output
        deadline = time.monotonic() + 60
        while not (acked := _acknowledged(infra.kafka_bootstrap, topic_set.alerts.name, alert_id)):
            assert time.monotonic() < deadline, worker.tail()
        time.sleep(3)  # the second one has had time to come through too
        acked = _acknowledged(infra.kafka_bootstrap, topic_set.alerts.name, alert_id)
        assert len(acked) == 1, acked
        evidence = acked[0]["evidence"]
        assert isinstance(evidence, dict)
        assert (evidence["acknowledged_by"], evidence["acknowledgement_note"]) == ("li", "on it")
        missing = runner.invoke(app, ["alerts", "ack", "no-such-alert", "--officer", "li", "--namespace", ns])
        assert missing.exit_code != 0 and "no alert 'no-such-alert'" in missing.output
    finally:
        worker.stop()
