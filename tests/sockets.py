"""Socket helpers shared by the TCP tests."""

from __future__ import annotations

import socket


def closed_by_peer(sock: socket.socket, within_s: float) -> bool:
    """True if the other side closed the connection (EOF or reset) within ``within_s``."""
    sock.settimeout(within_s)
    try:
        while True:
            if sock.recv(65536) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
