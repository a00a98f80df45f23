"""Real receivers for notifier tests: an HTTP server that answers as DingTalk's and WeCom's
robot APIs, a webhook and an SMS gateway do (and records every request), and an SMTP server
(aiosmtpd) that takes or refuses mail; plus helpers to write alert events to Kafka."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml
from aiosmtpd.controller import Controller
from confluent_kafka import Producer

from contracts.alerts import AlertEvent, AlertEventType, AlertKind, Severity, alert_id, fingerprint

from .helpers import free_port


@dataclass
class Request:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the notifier has up to one request per receiver and enterprise open
    daemon_threads = True


@dataclass
class HookServer:
    """Records each POST when it arrives; answers after ``delay_s``; ``fail(path)`` says
    whether to answer 500 instead."""

    delay_s: float = 0.0
    fail: Callable[[str], bool] = lambda _path: False
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        rig = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                url = urlparse(self.path)
                rig.requests.append(Request(url.path, parse_qs(url.query), dict(self.headers), body, time.time()))
                time.sleep(rig.delay_s)
                failing = rig.fail(url.path)
                answer = {"errcode": 0, "errmsg": "ok"} if not failing else {"errcode": 500, "errmsg": "down"}
                data = json.dumps(answer).encode()
                self.send_response(500 if failing else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: object) -> None:
                pass

        self.port = free_port()
        self.server = _Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def on(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpServer:
    """A real SMTP server; with ``refuse`` set it answers every message with 554."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refused = 0
        self.refuse = False
        rig = self

        class Handler:
            async def handle_DATA(self, _server: object, _session: object, envelope: Any) -> str:  # noqa: N802 (aiosmtpd names it)
                if rig.refuse:
                    rig.refused += 1
                    return "554 5.7.1 refused by the test"
                rig.messages.append(message_from_bytes(envelope.content, policy=policy.default))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


def write_routing(path: Path, receivers: dict[str, list[dict[str, Any]]], routes: list[dict[str, Any]],
                  **top: Any) -> Path:  # fmt: skip
    doc = {
        "version": 1,
        "timezone": "Asia/Shanghai",
        "grafana_url": "http://grafana.test:3000",
        "receivers": {name: {"name": name, "channels": channels} for name, channels in receivers.items()},
        "routes": routes,
        **top,
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


def alert(stack: str, parameter: str | None = "so2", *, what: AlertEventType = AlertEventType.OPENED,
          kind: AlertKind = AlertKind.EXCEEDANCE, start: datetime | None = None) -> AlertEvent:  # fmt: skip
    start = start or datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
    fp = fingerprint(stack, parameter, kind)
    evidence = {"hour_start": start.isoformat(), "converted_mg_m3": 61.5, "limit_mg_m3": 35.0, "valid_minutes": 58}
    return AlertEvent(
        event=what, kind=kind, severity=Severity.CRITICAL, alert_id=alert_id(fp, start), fingerprint=fp,
        enterprise=stack.rsplit("-", 1)[0], stack=stack, parameter=parameter, start=start,
        end=start if what is AlertEventType.RESOLVED else None, at=start,
        reason=f"{parameter} hourly average 61.50 mg/m3 at reference O2 exceeds the limit 35", evidence=evidence,
    )  # fmt: skip


def publish(bootstrap: str, topic: str, events: list[AlertEvent]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for event in events:
        producer.produce(topic, key=event.stack.encode(), value=event.model_dump_json().encode())
    assert producer.flush(30) == 0


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, tail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s}s\n{tail()}")
        time.sleep(0.1)
