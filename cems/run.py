"""``cems run``: the live pipeline as a few supervised processes.

Starts the gateway, the detection worker and the InfluxDB sink (and, when asked, the
simulated fleet), each logging to ``<state>/logs/<name>.log``; prints a progress line with
what Kafka holds; stops everything on Ctrl-C/SIGTERM, or when any process exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from contracts.topics import Topics


@dataclass
class Service:
    name: str
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None


def topic_size(consumer: Consumer, topic: str) -> int:
    meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
    if meta is None or meta.error is not None:
        return 0
    total = 0
    for p in meta.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
        total += high - low
    return total


def supervise(
    services: list[Service],
    log_dir: Path,
    bootstrap: str,
    topic_set: Topics,
    say: Callable[[str], None] = print,
    report_every_s: float = 10.0,
    env: dict[str, str] | None = None,
) -> int:
    log_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    for svc in services:
        svc.log = log_dir / f"{svc.name}.log"
        handle = svc.log.open("ab")
        svc.proc = subprocess.Popen(
            [sys.executable, "-m", "cems.cli", *svc.args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        handle.close()
        say(f"started {svc.name} (pid {svc.proc.pid}), log: {svc.log}")
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "cems-run-progress", "enable.auto.commit": False})
    code = 0
    next_report = time.monotonic() + report_every_s
    try:
        while not stop.is_set():
            for svc in services:
                assert svc.proc is not None
                if svc.proc.poll() is not None:
                    say(f"{svc.name} exited with code {svc.proc.returncode}; read {svc.log}")
                    code = 1
                    stop.set()
            if time.monotonic() >= next_report and not stop.is_set():
                sizes = {
                    "readings": topic_size(probe, topic_set.readings.name),
                    "dead letters": topic_size(probe, topic_set.dead_letters.name),
                    "hourly": topic_size(probe, topic_set.hourly_averages.name),
                    "alert events": topic_size(probe, topic_set.alerts.name),
                }
                say("in Kafka: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
                next_report = time.monotonic() + report_every_s
            stop.wait(1.0)
    finally:
        probe.close()
        for svc in reversed(services):
            if svc.proc is not None and svc.proc.poll() is None:
                svc.proc.send_signal(signal.SIGTERM)
        for svc in reversed(services):
            if svc.proc is None:
                continue
            try:
                svc.proc.wait(30)
            except subprocess.TimeoutExpired:
                svc.proc.kill()
            say(f"stopped {svc.name}")
    return code
