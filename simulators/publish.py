"""Sending the simulated fleet's messages: MQTT (each enterprise with its own account, QoS 1),
HJ 212 over TCP, and a file for `cems replay`; real time or accelerated, with progress."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .fleet import Fleet, Message


class Sink(Protocol):
    def send(self, msg: Message) -> None: ...

    def close(self) -> None: ...


@dataclass
class Counters:
    sent: int = 0
    acked: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


class MqttSink:
    """One paho client per enterprise account; QoS 1; PUBACKs counted as ``acked``.

    The clients run without their own network threads: this thread writes as it publishes
    and reads acknowledgements every ``pump_every`` messages, so generating and sending do
    not fight over the interpreter lock (about twice the rate of threaded clients here).
    """

    def __init__(
        self,
        host: str,
        port: int,
        passwords: Callable[[str], str],
        counters: Counters,
        client_prefix: str = "sim",
        pump_every: int = 500,
    ) -> None:
        self.host, self.port = host, port
        self.passwords = passwords
        self.counters = counters
        self.prefix = client_prefix
        self.pump_every = pump_every
        self.clients: dict[str, mqtt.Client] = {}

    def _client(self, account: str) -> mqtt.Client:
        client = self.clients.get(account)
        if client is None:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=f"{self.prefix}-{account}", protocol=mqtt.MQTTv5
            )
            client.username_pw_set(account, self.passwords(account))
            # paho scans its in-flight messages on every acknowledgement: keep the window modest
            client.max_inflight_messages_set(500)
            client.max_queued_messages_set(0)
            client.on_publish = lambda c, u, mid, rc, props: self.counters.add(
                "acked" if not rc.is_failure else "errors"
            )
            client.connect(self.host, self.port, keepalive=60)
            self.clients[account] = client
        return client

    def pump(self) -> None:
        for client in self.clients.values():
            rc = client.loop(timeout=0)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                self.counters.add("errors")
                client.reconnect()

    def send(self, msg: Message) -> None:
        info = self._client(msg.enterprise).publish(msg.topic, msg.payload, qos=1)
        self.counters.add("sent" if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_QUEUE_SIZE) else "errors")
        if self.counters.sent % self.pump_every == 0:
            self.pump()

    def idle(self) -> None:
        self.pump()

    def close(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while self.counters.acked + self.counters.errors < self.counters.sent and time.monotonic() < deadline:
            for client in self.clients.values():
                client.loop(timeout=0.01)
        for client in self.clients.values():
            client.disconnect()


class TcpSink:
    """HJ 212 over TCP: one connection per device; answers (CN 9014) counted as ``acked``."""

    def __init__(self, host: str, port: int, counters: Counters) -> None:
        self.host, self.port = host, port
        self.counters = counters
        self.sockets: dict[str, socket.socket] = {}

    def _socket(self, mn: str) -> socket.socket:
        sock = self.sockets.get(mn)
        if sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=10)
            self.sockets[mn] = sock
            threading.Thread(target=self._answers, args=(sock,), daemon=True).start()
        return sock

    def _answers(self, sock: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                chunk = sock.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\r\n" in buffer:
                _, buffer = buffer.split(b"\r\n", 1)
                self.counters.add("acked")

    def send(self, msg: Message) -> None:
        try:
            self._socket(msg.mn).sendall(msg.payload)
            self.counters.add("sent")
        except OSError:
            self.counters.add("errors")

    def close(self) -> None:
        time.sleep(0.5)
        for sock in self.sockets.values():
            sock.close()


class FileSink:
    """The same messages, one per line, for `cems replay`."""

    def __init__(self, path: Path) -> None:
        self.handle: IO[bytes] = path.open("wb")

    def send(self, msg: Message) -> None:
        self.handle.write(msg.payload.rstrip(b"\r\n") + b"\n")

    def close(self) -> None:
        self.handle.close()


@dataclass(frozen=True)
class Pacing:
    """Event time runs ``speed`` times faster than the wall clock, but never ahead of it."""

    speed: float
    step: timedelta

    def due(self, wall_start: float, index: int, event_time: datetime) -> float:
        return max(wall_start + index * self.step.total_seconds() / self.speed, event_time.timestamp())


def run(
    fleet: Fleet,
    sinks: Iterable[Sink],
    *,
    steps: int,
    pacing: Pacing | None,
    counters: Counters,
    progress: Callable[[str], None] | None = None,
    progress_every_s: float = 2.0,
    stop: threading.Event | None = None,
) -> None:
    """Send ``steps`` reporting steps of the whole fleet; ``pacing`` None means as fast as possible."""
    sinks = list(sinks)
    stop = stop or threading.Event()
    wall_start = time.time()
    last_report, last_sent = time.monotonic(), 0
    step = pacing.step if pacing else timedelta(minutes=1)
    for index in range(steps):
        t = fleet.start + index * step + timedelta(seconds=30 if step >= timedelta(minutes=1) else 0)
        if pacing is not None:
            while (wait := pacing.due(wall_start, index, t) - time.time()) > 0 and not stop.is_set():
                for sink in sinks:
                    idle = getattr(sink, "idle", None)
                    if idle is not None:
                        idle()
                stop.wait(min(wait, 0.05))
        if stop.is_set():
            break
        minute = int((t - fleet.start).total_seconds() // 60)
        for msg in fleet.messages(minute, t):
            for sink in sinks:
                sink.send(msg)
        now = time.monotonic()
        if progress is not None and now - last_report >= progress_every_s:
            rate = (counters.sent - last_sent) / (now - last_report)
            progress(
                f"event time {t.isoformat()}  stacks {len(fleet.devices):,}  sent {counters.sent:,} "
                f"({rate:,.0f}/s)  acked {counters.acked:,}  errors {counters.errors:,}"
            )
            last_report, last_sent = now, counters.sent
    for sink in sinks:
        sink.close()
