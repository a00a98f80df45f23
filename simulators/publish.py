"""Sending the simulated fleet's messages: MQTT (each enterprise with its own account, QoS 1),
HJ 212 over TCP, and a file for `cems replay`; real time or accelerated, with progress."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

import gmqtt
from gmqtt.mqtt.constants import MQTTv311
from gmqtt.mqtt.handler import MQTTConnectError
from gmqtt.storage import PersistentStorage

from contracts.commands import CommandError, HistoryRequest, decode_history
from contracts.errors import InfrastructureError
from contracts.mqtt_topics import CMD_CHANNEL, topic

from .fleet import Fleet, Message, step_offset


class Sink(Protocol):
    def send(self, msg: Message) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncSink(Protocol):
    """A sink on the event loop: opened for the fleet's accounts, flushed between batches."""

    async def open(self, accounts: Iterable[str]) -> None: ...

    def send(self, msg: Message) -> None: ...

    async def flush(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass
class Counters:
    sent: int = 0
    acked: int = 0  # every acknowledged publish, answers to history requests included
    #: readings sent again in answer to the platform's history requests (backfill)
    resent: int = 0
    history_requests: int = 0
    errors: int = 0  # messages refused or lost
    reconnects: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


class _AckCounter(PersistentStorage):  # type: ignore[misc]  # gmqtt has no type information
    """gmqtt's store of unacknowledged QoS 1 packets, counting what leaves it: a PUBACK
    removes a packet (``acked``); a reconnect with a clean session drops the rest (``errors``)."""

    def __init__(self, counters: Counters) -> None:
        super().__init__()
        self.counters = counters
        self.done = 0

    def remove_message_by_mid(self, mid: int) -> None:
        if mid in self._messages:  # a PUBACK for a packet still waiting for it
            self.done += 1
            self.counters.acked += 1
        super().remove_message_by_mid(mid)

    def clear(self) -> None:
        lost = len(self.get_all())
        super().clear()
        self.done += lost
        self.counters.errors += lost


class _Batch:
    """Stands in for a connection's asyncio transport: collects the PUBLISH packets of a batch
    and writes them with one ``write`` (one system call for hundreds of packets, not one each)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def flush(self) -> int:
        """Write the collected packets at once; how many there were."""
        n = len(self.parts)
        if self.parts:
            data = b"".join(self.parts)
            self.parts.clear()
            if not self.transport.is_closing():
                self.transport.write(data)
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


@dataclass
class _Connection:
    client: gmqtt.Client
    acks: _AckCounter
    sent: int = 0
    batch: _Batch | None = None
    #: packets written through batches and the writes that took them (packets / writes > 1)
    batched_packets: int = 0
    batch_writes: int = 0

    @property
    def pending(self) -> int:
        return self.sent - self.acks.done

    def _protocol(self) -> Any:
        return getattr(getattr(self.client, "_connection", None), "_protocol", None)

    def flush(self) -> None:
        """Write the batch, and batch the next one: gmqtt 0.8 writes each PUBLISH through its
        protocol's ``_transport``, which a reconnect replaces; without it, packets go one by one."""
        self._write_batch()
        protocol = self._protocol()
        transport = getattr(protocol, "_transport", None)
        if isinstance(transport, asyncio.Transport):
            self.batch = _Batch(transport)
            protocol._transport = self.batch

    def _write_batch(self) -> None:
        if self.batch is not None and (n := self.batch.flush()):
            self.batched_packets += n
            self.batch_writes += 1

    def unbatch(self) -> None:
        """Write what is batched and give the protocol its transport back (for DISCONNECT)."""
        batch: _Batch | None = self.batch
        if batch is None:
            return
        real: asyncio.Transport = batch.transport
        self._write_batch()
        protocol: Any = self._protocol()
        if protocol is not None and getattr(protocol, "_transport", None) is batch:
            protocol._transport = real
        self.batch = None


class MqttSink:
    """One asyncio MQTT client (gmqtt, MQTT 3.1.1) per enterprise account; QoS 1; PUBACKs
    counted as ``acked``.

    ``send`` adds the PUBLISH to its connection's batch and returns: nothing waits for an
    acknowledgement. ``flush`` (between batches) writes each connection's batch at once, lets
    the event loop read acknowledgements, and holds the sender while a connection has more
    than ``window`` unacknowledged messages (MQTT packet identifiers run out at 65,535).
    """

    def __init__(
        self,
        host: str,
        port: int,
        passwords: Callable[[str], str],
        counters: Counters,
        client_prefix: str = "sim",
        window: int = 20_000,
        stall_s: float = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self.passwords = passwords
        self.counters = counters
        self.prefix = client_prefix
        self.window = window
        self.stall_s = stall_s
        self.connections: dict[str, _Connection] = {}
        self._closing = False
        #: a device's stored history: (stack, request) -> the messages it sent in that period;
        #: set by ``run``. Without it, history requests are counted and not answered.
        self.history: History | None = None

    async def open(self, accounts: Iterable[str]) -> None:
        """Connect every account's client (at once)."""
        await asyncio.gather(*(self._connect(a) for a in dict.fromkeys(accounts) if a not in self.connections))

    async def _connect(self, account: str) -> None:
        acks = _AckCounter(self.counters)
        # a persistent session: after a reconnect the broker still knows the session and gmqtt
        # resends what was not acknowledged (QoS 1 is at least once across reconnects too)
        client = gmqtt.Client(f"{self.prefix}-{account}", clean_session=False, persistent_storage=acks)
        client.set_auth_credentials(account, self.passwords(account))
        client.on_disconnect = self._disconnected
        client.reconnect_delay = RECONNECT_DELAY_S
        # on every connection: a broker that lost the session (a crash before it saved) forgot it
        client.on_connect = lambda c, flags, rc, props: c.subscribe(topic(account, "+", CMD_CHANNEL), qos=1)
        client.on_message = self._command
        try:
            await client.connect(self.host, self.port, keepalive=60, version=MQTTv311)
        except (MQTTConnectError, OSError) as exc:
            raise InfrastructureError(
                f"MQTT broker mqtt://{self.host}:{self.port} did not accept account {account!r}: {exc} "
                "(is it running? `cems infra status`; is the password the registry's? .cems/secrets/mqtt.json)"
            ) from exc
        conn = self.connections[account] = _Connection(client, acks)
        conn.flush()

    def _command(self, client: gmqtt.Client, topic_: str, payload: bytes, qos: int, properties: object) -> int:
        """A command from the platform on ``.../cmd``: a history request is answered with what
        the device sent in that period, on its usual topic."""
        parts = topic_.split("/")
        try:
            request = decode_history(payload)
        except CommandError:
            return 0
        self.counters.history_requests += 1
        if self.history is None or len(parts) != 5:
            return 0
        for msg in self.history(parts[3], request):
            if msg.mn == request.mn and self._publish(msg):
                self.counters.resent += 1  # an answer, not a new reading
        return 0

    def _disconnected(self, client: gmqtt.Client, packet: object, exc: BaseException | None = None) -> None:
        if not self._closing:
            self.counters.reconnects += 1  # gmqtt reconnects by itself and resends

    def send(self, msg: Message) -> None:
        if self._publish(msg):
            self.counters.sent += 1

    def _publish(self, msg: Message) -> bool:
        conn = self.connections.get(msg.enterprise)
        if conn is None:
            raise RuntimeError(f"no MQTT connection for account {msg.enterprise!r}: open() it first")
        try:
            conn.client.publish(msg.topic, msg.payload, qos=1)
        except (OSError, OverflowError):
            self.counters.errors += 1
            return False
        conn.sent += 1
        return True

    async def flush(self) -> None:
        """Write every batch; hold while a connection has more than ``window`` messages without
        acknowledgement, and give up (naming them) if no acknowledgement comes for ``stall_s``."""
        for conn in self.connections.values():
            conn.flush()
        await asyncio.sleep(0)
        acked, since = self.counters.acked, time.monotonic()
        while waiting := [a for a, c in self.connections.items() if c.pending > self.window]:
            if self.counters.acked != acked:
                acked, since = self.counters.acked, time.monotonic()
            elif time.monotonic() - since > self.stall_s:
                pending = sum(self.connections[a].pending for a in waiting)
                raise InfrastructureError(
                    f"MQTT broker mqtt://{self.host}:{self.port} acknowledged nothing for {self.stall_s:g}s; "
                    f"waiting: {', '.join(waiting[:5])} ({pending:,} messages)"
                )
            await asyncio.sleep(0.001)

    async def aclose(self, timeout_s: float = 60) -> None:
        """Wait up to ``timeout_s`` for the last acknowledgements (what never comes counts as
        errors), then disconnect cleanly."""
        for conn in self.connections.values():
            conn.flush()
        deadline = time.monotonic() + timeout_s
        while any(c.pending for c in self.connections.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.counters.errors += sum(c.pending for c in self.connections.values())
        self._closing = True
        for conn in self.connections.values():
            conn.unbatch()
        await asyncio.gather(*(c.client.disconnect() for c in self.connections.values()))


History = Callable[[str, HistoryRequest], list[Message]]
#: a device tries again this long after losing its broker
RECONNECT_DELAY_S = 1


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
                line, buffer = buffer.split(b"\r\n", 1)
                if b"CN=9014" in line:  # a data answer; a history request is counted, not answered
                    self.counters.add("acked")
                else:
                    self.counters.add("history_requests")

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
    sinks: Iterable[Sink | AsyncSink],
    *,
    steps: int,
    pacing: Pacing | None,
    counters: Counters,
    progress: Callable[[str], None] | None = None,
    progress_every_s: float = 2.0,
    stop: threading.Event | None = None,
    batch: int = 500,
) -> None:
    """Send ``steps`` reporting steps of the whole fleet; ``pacing`` None means as fast as possible.

    One thread, one event loop: messages are generated and handed to the sinks in batches of
    ``batch``, and between batches the loop reads acknowledgements (and writes what the
    sockets did not take at once)."""
    asyncio.run(
        _run(fleet, list(sinks), steps, pacing, counters, progress, progress_every_s, stop or threading.Event(), batch)
    )


async def _run(
    fleet: Fleet,
    sinks: list[Sink | AsyncSink],
    steps: int,
    pacing: Pacing | None,
    counters: Counters,
    progress: Callable[[str], None] | None,
    progress_every_s: float,
    stop: threading.Event,
    batch: int,
) -> None:
    async_sinks = [s for s in sinks if isinstance(s, AsyncSink)]

    async def flush() -> None:
        for a in async_sinks:
            await a.flush()
        if not async_sinks:
            await asyncio.sleep(0)

    step = pacing.step if pacing else timedelta(minutes=1)
    sent_until = [fleet.start]  # event time of the last step sent: a device has nothing later

    def history(stack: str, request: HistoryRequest) -> list[Message]:
        return fleet.history(stack, request.begin, min(request.end, sent_until[0]), step)

    for mqtt_sink in async_sinks:
        if isinstance(mqtt_sink, MqttSink):
            mqtt_sink.history = history
    await asyncio.gather(*(s.open(e.id for e, _, _ in fleet.devices) for s in async_sinks))
    wall_start = time.time()
    last_report, last_sent = time.monotonic(), counters.sent
    n = 0
    try:
        for index in range(steps):
            t = fleet.start + index * step + step_offset(step)
            if pacing is not None:
                while (wait := pacing.due(wall_start, index, t) - time.time()) > 0 and not stop.is_set():
                    await asyncio.sleep(min(wait, 0.05))
            if stop.is_set():
                break
            minute = int((t - fleet.start).total_seconds() // 60)
            for msg in fleet.messages(minute, t):
                for sink in sinks:
                    sink.send(msg)
                n += 1
                if n % batch == 0:
                    await flush()
            await flush()  # the step's last, partial batch
            sent_until[0] = t
            now = time.monotonic()
            if progress is not None and now - last_report >= progress_every_s:
                rate = (counters.sent - last_sent) / (now - last_report)
                progress(
                    f"event time {t.isoformat()}  stacks {len(fleet.devices):,}  sent {counters.sent:,} "
                    f"({rate:,.0f}/s)  acked {counters.acked:,}  errors {counters.errors:,}"
                    + (f"  reconnects {counters.reconnects:,}" if counters.reconnects else "")
                )
                last_report, last_sent = now, counters.sent
    finally:
        for sink in sinks:
            if isinstance(sink, AsyncSink):
                await sink.aclose()
            else:
                sink.close()
