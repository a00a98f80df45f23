"""Throughput of the Faust detection worker end to end (Kafka in, rules, Kafka out, exactly once).

    .venv/bin/python scripts/bench_worker.py [--hours 12]

Produces --hours of one-minute readings for every stack of the sample registry into a fresh
topic namespace, starts `cems worker` on it (event-time watermark), and times from the
worker's "Ready" until its committed offsets cover every reading. Needs `cems infra up`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from kafka import KafkaAdminClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_rules import readings  # noqa: E402

from cems.infra.settings import InfraSettings  # noqa: E402
from cems.topics import ensure_topics  # noqa: E402
from contracts.topics import topics  # noqa: E402


def committed(admin: KafkaAdminClient, group: str, topic: str) -> int:
    offsets = admin.list_group_offsets(group).get(group, {})
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=12)
    args = parser.parse_args()
    infra = InfraSettings()
    ns = f"wb{uuid.uuid4().hex[:8]}"
    topic_set = topics(ns)
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    data = readings(args.hours)
    producer = Producer({"bootstrap.servers": infra.kafka_bootstrap, "partitioner": "murmur2_random", "linger.ms": 20})
    for r in data:
        producer.produce(topic_set.readings.name, key=r.stack.encode(), value=r.model_dump_json().encode())
        producer.poll(0)
    producer.flush()
    print(f"produced {len(data):,} readings into {topic_set.readings.name}", flush=True)

    log = Path(tempfile.mkstemp(prefix="bench-worker-", suffix=".log")[1])
    cmd = [
        sys.executable,
        "-m",
        "cems.cli",
        "worker",
        "--namespace",
        ns,
        "--watermark",
        "event",
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CEMS_TICK_INTERVAL_S": "5"}
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT)
    admin = KafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    group = f"{ns}-detect"
    try:
        started = time.perf_counter()
        done, last_report = 0, started
        while done < len(data):
            if proc.poll() is not None:
                raise SystemExit(f"worker exited {proc.returncode}; log: {log}")
            if time.perf_counter() - started > 900:
                raise SystemExit(f"timed out at {done} of {len(data)}; log: {log}")
            time.sleep(0.5)
            done = committed(admin, group, topic_set.readings.name)
            if time.perf_counter() - last_report > 5:
                print(f"  {done:,}/{len(data):,} committed", flush=True)
                last_report = time.perf_counter()
        elapsed = time.perf_counter() - started
        print(
            f"worker (one process, exactly once): {len(data):,} readings in {elapsed:.1f}s including start-up "
            f"= {len(data) / elapsed:,.0f} readings/s",
            flush=True,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        admin.close()


if __name__ == "__main__":
    main()
