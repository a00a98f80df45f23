"""HJ 212 over TCP in: legacy devices push CR LF-terminated packets over a socket and may
ask for an answer (Flag bit 0), which is written back on the same connection."""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Callable

from contracts.hj212 import MAX_DATA_LENGTH, split_stream

log = logging.getLogger("cems.gateway.tcp")

Handler = Callable[[str, bytes, Callable[[bytes], None]], None]
MAX_BUFFER = MAX_DATA_LENGTH + 64


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    handler: Handler


class _Connection(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        peer = "{}:{}".format(*self.client_address[:2])
        send_lock = threading.Lock()

        def answer(data: bytes) -> None:
            with send_lock:
                try:
                    sock.sendall(data)
                except OSError as exc:
                    log.warning("could not answer device", extra={"peer": peer, "error": str(exc)})

        buffer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            packets, buffer = split_stream(buffer + chunk)
            if len(buffer) > MAX_BUFFER:  # no CR LF in sight: refuse what we have as one bad packet
                packets.append(buffer)
                buffer = b""
            for packet in packets:
                self.server.handler(peer, packet, answer)
        if buffer:
            self.server.handler(peer, buffer, answer)


class TcpSource:
    def __init__(self, host: str, port: int, handler: Handler) -> None:
        self.server = _Server((host, port), _Connection)
        self.server.handler = handler
        self.thread = threading.Thread(target=self.server.serve_forever, name="hj212-tcp", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
