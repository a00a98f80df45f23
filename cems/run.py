"""``cems run``: the live pipeline as a few supervised processes.

Starts the gateway, the detection worker, the InfluxDB sink and the notifier (and, when
asked, the simulated fleet), each logging to ``<state>/logs/<name>.log``; prints a progress
line with what Kafka holds, a line for each alert event as the worker commits it and one for
each notice the notifier delivered (or held back); stops everything
on Ctrl-C/SIGTERM. A service that exits with an error (the gateway does when a receive path
dies, the worker on a fatal error) is started again, at most ``MAX_RESTARTS`` times in
``RESTART_WINDOW_S``; past that everything stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from contracts.errors import CemsError
from contracts.notifications import DeliveryRecord, DeliveryStatus
from contracts.registry import Registry
from contracts.topics import Topics
from notify.kafka_log import TopicReader

from .alert_view import AlertReader, describe


@dataclass
class Service:
    name: str
    args: list[str]
    #: a service that may finish (the simulator) does not stop the others when it exits 0
    may_finish: bool = False
    #: wait for this in the log before starting the next service (e.g. the gateway's session)
    ready_marker: bytes | None = None
    proc: subprocess.Popen[bytes] | None = None
    finished: bool = False
    log: Path | None = None
    #: monotonic times of its restarts
    restarts: list[float] = field(default_factory=list)


MAX_RESTARTS = 5
RESTART_WINDOW_S = 300.0


def topic_size(consumer: Consumer, topic: str) -> int:
    meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
    if meta is None or meta.error is not None:
        return 0
    total = 0
    for p in meta.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
        total += high - low
    return total


def _wait_ready(svc: Service, stop: threading.Event, timeout_s: float) -> bool:
    assert svc.proc is not None and svc.log is not None and svc.ready_marker is not None
    offset = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        if svc.proc.poll() is not None:
            return False
        with svc.log.open("rb") as f:
            f.seek(offset)
            chunk = f.read()
        if svc.ready_marker in chunk:
            return True
        time.sleep(0.3)
    return False


def _alert_reader(bootstrap: str, topic: str, say: Callable[[str], None]) -> AlertReader | None:
    """Alert events as the worker commits them, from now on; none if the topic is not there."""
    try:
        return AlertReader(bootstrap, topic, from_beginning=False, group="cems-run-alerts")
    except CemsError as exc:
        say(f"alerts will not be shown: {exc}")
        return None


def _notice_reader(bootstrap: str, topic: str, say: Callable[[str], None]) -> TopicReader | None:
    """The notifier's delivery log from now on; none if the topic is not there."""
    try:
        return TopicReader(bootstrap, [topic], group="cems-run-notices", from_end=True)
    except CemsError as exc:
        say(f"notifications will not be shown: {exc}")
        return None


def describe_delivery(record: DeliveryRecord) -> str | None:
    """A line for a notice delivered or undelivered, or held back by a silence (else None)."""
    count = f"{len(record.items)} item{'s' if len(record.items) != 1 else ''}"
    if record.status is DeliveryStatus.DELIVERED:
        return f"[bold blue]    notified[/] {record.receiver} via {record.channel}: {record.title} ({count})"
    if record.status is DeliveryStatus.UNDELIVERED:
        return f"[bold red] undelivered[/] {record.receiver}: {count}, every channel failed; retrying"
    if record.status is DeliveryStatus.SILENCED:
        return f"[dim]   held back[/] {record.receiver}: {count} (silence {record.silence_id})"
    return None


def supervise(
    services: list[Service],
    log_dir: Path,
    bootstrap: str,
    topic_set: Topics,
    say: Callable[[str], None] = print,
    report_every_s: float = 10.0,
    env: dict[str, str] | None = None,
    registry: Registry | None = None,
) -> int:
    log_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}

    def launch(svc: Service) -> None:
        svc.log = log_dir / f"{svc.name}.log"
        handle = svc.log.open("ab")
        svc.proc = subprocess.Popen(
            [sys.executable, "-m", "cems.cli", *svc.args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        handle.close()
        say(f"started {svc.name} (pid {svc.proc.pid}), log: {svc.log}")

    # from the topics' ends now, so what the services do from their start is shown
    alerts = _alert_reader(bootstrap, topic_set.alerts.name, say)
    notices = _notice_reader(bootstrap, topic_set.notifications.name, say)
    for svc in services:
        if stop.is_set():
            break
        launch(svc)
        if svc.ready_marker is not None and not _wait_ready(svc, stop, timeout_s=120):
            say(f"{svc.name} did not get ready; read {svc.log}")
            stop.set()
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "cems-run-progress", "enable.auto.commit": False})
    code = 0
    next_report = time.monotonic() + report_every_s
    try:
        while not stop.is_set():
            for svc in services:
                if svc.proc is None or svc.proc.poll() is None:
                    continue
                if svc.may_finish and svc.proc.returncode == 0:
                    if not svc.finished:
                        say(f"{svc.name} finished; the pipeline keeps running (Ctrl-C stops it)")
                        svc.finished = True
                    continue
                now = time.monotonic()
                svc.restarts = [t for t in svc.restarts if now - t < RESTART_WINDOW_S]
                if svc.may_finish or len(svc.restarts) >= MAX_RESTARTS:
                    say(f"{svc.name} exited with code {svc.proc.returncode}; read {svc.log}")
                    code = 1
                    stop.set()
                    continue
                say(f"{svc.name} exited with code {svc.proc.returncode}; starting it again (read {svc.log})")
                svc.restarts.append(now)
                launch(svc)
            if alerts is not None:
                for event in alerts.poll():
                    say(describe(event, registry))
            if notices is not None:
                for record in notices.poll(0.0):
                    line = describe_delivery(DeliveryRecord.model_validate_json(record.value))
                    if line is not None:
                        say(line)
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
        if alerts is not None:
            alerts.close()
        if notices is not None:
            notices.close()
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
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
