"""A Faust worker against the real Kafka: agent consumes, table updated, record produced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from cems.infra.settings import REPO_ROOT, InfraSettings
from cems.topics import ensure_topics
from contracts.topics import TopicSpec

pytestmark = pytest.mark.integration


def test_faust_agent_table_and_output_topic_round_trip(infra: InfraSettings, unique: str, tmp_path: Path) -> None:
    ensure_topics(
        infra.kafka_bootstrap,
        [TopicSpec(f"roundtrip-in.{unique}", 2), TopicSpec(f"roundtrip-out.{unique}", 2)],
    )
    env = {
        **os.environ,
        "ROUNDTRIP_SUFFIX": unique,
        "ROUNDTRIP_BROKER": infra.kafka_bootstrap,
        "PYTHONPATH": str(REPO_ROOT),
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faust",
            "-A",
            "tests.integration.faust_roundtrip_app",
            "--datadir",
            str(tmp_path / "data"),
            "worker",
            "-l",
            "info",
            "--without-web",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
    try:
        producer = KafkaProducer(
            bootstrap_servers=infra.kafka_bootstrap,
            key_serializer=lambda k: json.dumps(k).encode(),
            value_serializer=lambda v: json.dumps(v).encode(),
            acks="all",
        )
        sent = [("stack-a", 1.5), ("stack-b", 10.0), ("stack-a", 2.5), ("stack-a", 4.0), ("stack-b", 5.0)]
        for stack, value in sent:
            producer.send(f"roundtrip-in.{unique}", key=stack, value={"stack": stack, "value": value})
        producer.flush()
        producer.close()

        consumer = KafkaConsumer(
            f"roundtrip-out.{unique}",
            bootstrap_servers=infra.kafka_bootstrap,
            auto_offset_reset="earliest",
            group_id=f"check-{unique}",
            consumer_timeout_ms=1000,
        )
        out: list[dict[str, object]] = []
        deadline = time.monotonic() + 90
        while len(out) < len(sent) and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            for msg in consumer:
                out.append(json.loads(msg.value))
        consumer.close()
        assert len(out) == len(sent), (tmp_path / "worker.log").read_text()[-3000:]
        last = {}
        for rec in out:
            last[rec["stack"]] = (rec["count"], rec["total"])
        assert last == {"stack-a": (3, 8.0), "stack-b": (2, 15.0)}

        # the table's changelog topic holds the same state, so a restarted worker recovers it
        changelog = KafkaConsumer(
            f"roundtrip-{unique}-counts-changelog",
            bootstrap_servers=infra.kafka_bootstrap,
            auto_offset_reset="earliest",
            group_id=f"changelog-{unique}",
            consumer_timeout_ms=3000,
        )
        state: dict[str, int] = {}
        for msg in changelog:
            state[json.loads(msg.key)] = json.loads(msg.value)
        changelog.close()
        assert state == {"stack-a": 3, "stack-b": 2}
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
