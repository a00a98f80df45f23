"""HJ 212 over TCP in: legacy devices push CR LF-terminated packets over a socket and may
ask for an answer (Flag bit 0), which is written back on the same connection.

One asyncio event loop, in one thread, holds every connection: a few kilobytes each, no
thread each. Its limits (``TcpLimits``; the decisions, pure, in ``ingest/tcp_limits.py``), so
that whoever reaches the port cannot exhaust the gateway: connections in all and per source
network (/24, /64), where a newcomer at the total cap evicts the oldest connection that has
not authenticated; a time to authenticate and an idle time, counted from packets the handler
says authenticated (it returns ``True``) and from nothing else; a budget of refused packets
per connection; blank lines ignored; bounded buffers for bytes without CR LF (beyond it they
go on as one bad packet) and for answers a device does not read (beyond it: closed).
Refusals and closures are counted by cause (``cems_gateway_tcp_refused_total``,
``cems_gateway_tcp_closed_total``).

Packets go to ``handler(peer, packet, answer)`` on the loop's thread, in the order they
came; ``peer`` is ``host:port`` (``[v6 host]:port``). ``answer`` may be called from any
thread (Kafka's delivery thread calls it). An exception from the handler, or anywhere in a
connection's handling, is logged and counted (the packet counts as refused), and the
listener goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from contracts.hj212 import split_stream

from . import metrics
from .tcp_limits import (
    MAX_BUFFER,
    Admission,
    Closure,
    ConnectionBook,
    Refusal,
    RefusalBudget,
    TcpLimits,
    expiry,
    is_blank,
)

__all__ = ["MAX_BUFFER", "Answer", "Closure", "Handler", "Refusal", "TcpLimits", "TcpSource", "raise_open_files_limit"]

log = logging.getLogger("cems.gateway.tcp")

Answer = Callable[[bytes], None]
#: ``True``: the packet authenticated its connection; ``False`` or ``None``: it did not
Handler = Callable[[str, bytes, Answer], bool | None]
#: pending connections the kernel keeps for the accept loop (capped by net.core.somaxconn)
LISTEN_BACKLOG = 4096
#: connections accepted per readiness event, and the pause when accepting fails (no descriptors)
ACCEPT_BATCH = 256
ACCEPT_PAUSE_S = 0.1


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit (thousands of sockets
    need thousands of descriptors); return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open files limit", extra={"soft": soft, "hard": hard, "error": str(exc)})
    return soft


def _peer_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Connection(asyncio.Protocol):
    """One admitted device's socket: cuts packets off the byte stream and hands them on."""

    def __init__(self, listener: _Listener, address: str, peer: str) -> None:
        self.listener = listener
        self.address = address
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.opened_s = listener.loop.time()
        #: when a packet on this connection last authenticated (None: never)
        self.authenticated_s: float | None = None
        self.refusals = RefusalBudget()
        self.closing_as: Closure | None = None

    # -- asyncio callbacks (loop thread) ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.closing_as is not None:  # evicted while it was being set up
            transport.close()
            return
        self.listener.connections.add(self)
        if self.listener.stopping:
            self.close(Closure.STOPPING)

    def data_received(self, data: bytes) -> None:
        if self.closing_as is not None:
            return
        try:
            packets, self.buffer = split_stream(self.buffer + data)
            if len(self.buffer) > self.listener.limits.max_buffer_bytes:
                packets.append(self.buffer)  # no CR LF in sight: refuse what came as one bad packet
                self.buffer = b""
            self._handle(packets)
        except Exception:  # a bug here must not take the listener down: count it, drop this connection
            self.listener.count_error("receive", self.peer)
            self.close(Closure.ERROR)

    def _handle(self, packets: list[bytes]) -> None:
        blank = 0
        try:
            for packet in packets:
                if is_blank(packet):
                    blank += 1
                    authenticated = False
                else:
                    authenticated = self.listener.dispatch(self, packet)
                now_s = self.listener.loop.time()
                if authenticated:
                    self.authenticated_s = now_s
                    self.listener.book.authenticated(self)
                elif self.refusals.spend(now_s, self.listener.limits):
                    log.warning("too many refused packets: closing", extra={"peer": self.peer})
                    self.buffer = b""  # nothing more from this connection is handled
                    self.close(Closure.REFUSALS)
                    return
        finally:
            if blank:
                metrics.TCP_BLANK_LINES.inc(blank)

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.release(self)
        if self.buffer:  # the rest of the stream, unfinished: kept as one bad packet
            rest, self.buffer = self.buffer, b""
            if is_blank(rest):
                metrics.TCP_BLANK_LINES.inc()
            else:
                self.listener.dispatch(self, rest)

    # -- our side -----------------------------------------------------------------------------
    def answer(self, data: bytes) -> None:
        """Write ``data`` to the device; callable from any thread."""
        try:
            self.listener.loop.call_soon_threadsafe(self._write, data)
        except RuntimeError:  # the loop is closed: the gateway is stopping
            log.warning("could not answer device: listener stopped", extra={"peer": self.peer})

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            log.warning("could not answer device: connection closed", extra={"peer": self.peer})
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self.listener.limits.max_unread_answer_bytes:
            log.warning("device reads no answers: closing", extra={"peer": self.peer})
            self.close(Closure.UNREAD_ANSWERS)

    def close(self, why: Closure) -> None:
        """Close (once) and count why; a connection still being set up closes when it is made."""
        if self.closing_as is not None:
            return
        self.closing_as = why
        metrics.TCP_CLOSED.labels(why.value).inc()
        if self.transport is None:
            return
        if why is Closure.UNREAD_ANSWERS or why is Closure.ERROR:
            self.transport.abort()
        else:
            self.transport.close()


def _reset(conn: socket.socket) -> None:
    """Close at once with a reset: no lingering, nothing read."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


class _Listener:
    """Accepts, admits and sweeps connections; everything here runs on the loop's thread.

    Accepting is done here rather than by ``loop.create_server`` so that a connection over a
    cap is refused before any transport is made for it, and so that stopping can wait for
    every accepted socket to be either served or closed."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, handler: Handler, limits: TcpLimits
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.handler = handler
        self.limits = limits
        self.book: ConnectionBook[_Connection] = ConnectionBook(limits)
        self.connections: set[_Connection] = set()
        self.starting: set[asyncio.Task[Any]] = set()
        self.stopping = False

    # -- accepting ----------------------------------------------------------------------------
    def start_accepting(self) -> None:
        if not self.stopping:
            self.loop.add_reader(self.sock.fileno(), self._accept_ready)

    def stop_accepting(self) -> None:
        self.loop.remove_reader(self.sock.fileno())

    def _accept_ready(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, peername = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:  # out of descriptors or memory: wait a little, then accept again
                metrics.TCP_ERRORS.labels("accept").inc()
                log.warning("cannot accept connections: pausing", extra={"error": str(exc), "open": self.book.total})
                self.stop_accepting()
                self.loop.call_later(ACCEPT_PAUSE_S, self.start_accepting)
                return
            try:
                self._admit(conn, peername)
            except Exception:
                self.count_error("accept", str(peername))
                _reset(conn)

    def _admit(self, conn: socket.socket, peername: tuple[Any, ...]) -> None:
        address = str(peername[0])
        connection = _Connection(self, address, _peer_text(address, int(peername[1])))
        admission = (
            Admission[_Connection](refusal=Refusal.STOPPING) if self.stopping else self.book.admit(connection, address)
        )
        if admission.refusal is not None:
            metrics.TCP_REFUSED.labels(admission.refusal.value).inc()
            _reset(conn)
            return
        if admission.evicted is not None:  # released from the book already: the newcomer has its slot
            self._forget(admission.evicted)
            admission.evicted.close(Closure.EVICTED)
        metrics.TCP_OPEN.inc()
        conn.setblocking(False)
        task = self.loop.create_task(self.loop.connect_accepted_socket(lambda: connection, conn))
        self.starting.add(task)
        task.add_done_callback(lambda t: self._started(t, connection, conn))

    def _started(self, task: asyncio.Task[Any], connection: _Connection, conn: socket.socket) -> None:
        self.starting.discard(task)
        if task.cancelled() or task.exception() is not None:
            if not task.cancelled():
                metrics.TCP_ERRORS.labels("accept").inc()
                log.warning(
                    "could not set up a connection", extra={"peer": connection.peer, "error": repr(task.exception())}
                )
            connection.transport = None
            self.release(connection)
            _reset(conn)

    def release(self, conn: _Connection) -> None:
        if self.book.release(conn):
            metrics.TCP_OPEN.dec()
        self.connections.discard(conn)

    def _forget(self, conn: _Connection) -> None:
        """A connection the book has released (evicted): no longer open, whenever its socket closes."""
        metrics.TCP_OPEN.dec()
        self.connections.discard(conn)

    # -- serving ------------------------------------------------------------------------------
    def dispatch(self, conn: _Connection, packet: bytes) -> bool:
        """Hand a packet to the handler; True if it authenticated the connection."""
        try:
            return self.handler(conn.peer, packet, conn.answer) is True
        except Exception:  # the gateway core turns its own failures into dead letters; anything else: count, go on
            self.count_error("handler", conn.peer)
            return False

    def count_error(self, stage: str, peer: str) -> None:
        metrics.TCP_ERRORS.labels(stage).inc()
        log.exception("error in a TCP connection's handling", extra={"stage": stage, "peer": peer})

    def close_expired(self) -> Counter[Closure]:
        """Close connections quiet for too long (``tcp_limits.expiry``); how many, by cause."""
        now_s = self.loop.time()
        closed: Counter[Closure] = Counter()
        for conn in list(self.connections):
            why = expiry(conn.opened_s, conn.authenticated_s, now_s, self.limits)
            if why is not None and conn.closing_as is None:
                conn.close(why)
                closed[why] += 1
        return closed

    async def sweep(self) -> None:
        while True:
            await asyncio.sleep(self.limits.sweep_interval_s)
            try:
                closed = self.close_expired()
            except Exception:
                self.count_error("sweep", "-")
                continue
            if closed:
                log.info(
                    "quiet connections closed",
                    extra={**{f"closed_{why.value}": n for why, n in closed.items()}, "open": self.book.total},
                )

    async def shut_down(self) -> None:
        """Refuse what comes, close what is open, and wait until every socket is closed."""
        self.stopping = True
        self.stop_accepting()
        if self.starting:
            await asyncio.wait(set(self.starting), timeout=2)
        for conn in list(self.connections):
            conn.close(Closure.STOPPING)
        deadline = self.loop.time() + 2
        while self.book.total and self.loop.time() < deadline:
            await asyncio.sleep(0.01)  # connection_lost runs: unfinished bytes are dead-lettered

    def exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Errors asyncio reports itself (a transport's failure): counted and logged; the loop goes on."""
        metrics.TCP_ERRORS.labels("loop").inc()
        exc = context.get("exception")
        log.warning("tcp listener: %s", context.get("message", "error"), extra={"error": repr(exc) if exc else None})


class TcpSource:
    """The HJ 212 TCP listener: bound when made (``port`` is known), serving after ``start``."""

    def __init__(self, host: str, port: int, handler: Handler, limits: TcpLimits | None = None) -> None:
        self.limits = limits or TcpLimits()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
        self._sock.setblocking(False)
        self._port = int(self._sock.getsockname()[1])
        self._loop = asyncio.new_event_loop()
        self._listener = _Listener(self._loop, self._sock, handler, self.limits)
        self._loop.set_exception_handler(self._listener.exception_handler)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="hj212-tcp", daemon=True)

    @property
    def port(self) -> int:
        return self._port

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    @property
    def open_connections(self) -> int:
        return self._listener.book.total

    @property
    def unauthenticated_connections(self) -> int:
        return self._listener.book.unauthenticated

    def start(self, timeout_s: float = 10) -> None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if nofile < self.limits.max_connections + 256:
            log.warning(
                "open files limit below the TCP connection cap: accepts will fail before the cap",
                extra={"nofile": nofile, "max_connections": self.limits.max_connections},
            )
        self.thread.start()
        if not self._ready.wait(timeout_s) or self.failure is not None:
            raise RuntimeError(f"HJ 212 TCP listener did not start: {self.failure!r}")

    def stop(self, timeout_s: float = 10) -> None:
        if self.thread.is_alive() and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
            self.thread.join(timeout_s)
        if not self.thread.is_alive() and not self._loop.is_closed():
            self._loop.close()
        self._sock.close()

    # -- the loop's thread --------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # the listener itself failed: the gateway sees it by ``alive``
            self.failure = exc
            log.critical("HJ 212 TCP listener stopped by an error", exc_info=True)
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        listener = self._listener
        listener.start_accepting()
        sweeper = asyncio.create_task(listener.sweep())
        self._ready.set()
        log.info(
            "hj212 tcp listening",
            extra={
                "port": self.port,
                "idle_timeout_s": self.limits.idle_timeout_s,
                "auth_timeout_s": self.limits.auth_timeout_s,
                "max_connections": self.limits.max_connections,
                "max_per_address": self.limits.max_per_address,
                "per_address_networks": f"/{self.limits.ipv4_prefix}, /{self.limits.ipv6_prefix}",
                "max_refusals": self.limits.max_refusals,
                "refusal_window_s": self.limits.refusal_window_s,
            },
        )
        try:
            await self._stop.wait()
        finally:
            sweeper.cancel()
            await listener.shut_down()
