"""The HJ 212 TCP listener's limits as pure decisions: which connection may be admitted (and
which one makes room for it), when one has been quiet too long, when one has had too many
packets refused, and what is not a packet at all. No I/O, no clock: the listener
(``ingest/tcp_source.py``) passes ``now_s`` in.

A connection is *authenticated* once the gateway core said a packet on it came from a
registered device with the right PW from an allowed network. Before that it is a stranger:
it may stay only ``auth_timeout_s``, and it is the first to go when the total cap is reached.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv6Address, ip_address, ip_network
from typing import Generic, TypeVar

from contracts.hj212 import MAX_DATA_LENGTH

#: the longest packet: ``##``, 4 length digits, the data segment, 4 CRC digits, CR LF; with room
MAX_BUFFER = MAX_DATA_LENGTH + 64

K = TypeVar("K", bound=Hashable)


class Refusal(StrEnum):
    """Why a connection was closed as soon as it was accepted."""

    TOTAL = "total_cap"  # every slot is held by an authenticated connection
    PER_ADDRESS = "per_address_cap"  # the source's network (/24, /64) holds its cap
    STOPPING = "stopping"


class Closure(StrEnum):
    """Why the gateway closed a connection it had admitted."""

    IDLE = "idle"  # no authenticated packet for ``idle_timeout_s``
    AUTH_TIMEOUT = "auth_timeout"  # no authenticated packet at all within ``auth_timeout_s``
    REFUSALS = "refusals"  # too many packets that did not authenticate, too fast
    EVICTED = "evicted"  # made room for a newcomer at the total cap (never authenticated)
    UNREAD_ANSWERS = "unread_answers"
    ERROR = "error"
    STOPPING = "stopping"


@dataclass(frozen=True)
class TcpLimits:
    #: an authenticated connection is closed this long after its last authenticated packet
    idle_timeout_s: float = 600.0
    #: a connection is closed this long after it opened if no packet on it has authenticated
    auth_timeout_s: float = 30.0
    max_connections: int = 10_000
    #: connections per source network: the address's first ``ipv4_prefix`` / ``ipv6_prefix`` bits
    max_per_address: int = 64
    ipv4_prefix: int = 24
    ipv6_prefix: int = 64
    #: packets that do not authenticate (blank lines included): ``max_refusals`` in a burst,
    #: refilled at ``max_refusals`` per ``refusal_window_s``; one more closes the connection
    max_refusals: int = 100
    refusal_window_s: float = 10.0
    max_buffer_bytes: int = MAX_BUFFER
    max_unread_answer_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        durations = (self.idle_timeout_s, self.auth_timeout_s, self.refusal_window_s)
        counts = (self.max_connections, self.max_per_address, self.max_refusals, self.max_buffer_bytes)
        if min(durations) <= 0 or min(counts) < 1:
            raise ValueError(f"TCP limits must be positive: {self}")
        if not (0 <= self.ipv4_prefix <= 32 and 0 <= self.ipv6_prefix <= 128):
            raise ValueError(f"TCP limits: prefix lengths are 0-32 (IPv4) and 0-128 (IPv6): {self}")

    @property
    def sweep_interval_s(self) -> float:
        """How often expired connections are looked for: they are closed within their time + this."""
        return min(max(min(self.idle_timeout_s, self.auth_timeout_s) / 8, 0.05), 5.0)


def is_blank(chunk: bytes) -> bool:
    """A chunk of the stream that is only white space (a bare CR LF): not a packet, no dead letter."""
    return not chunk.strip()


def source_network(address: str, limits: TcpLimits) -> str:
    """The network an address is counted in for the per-source cap: ``/24`` of IPv4 and ``/64``
    of IPv6 by default (an IPv4-mapped IPv6 address counts as its IPv4 address)."""
    try:
        ip = ip_address(address)
    except ValueError:  # not an IP address (a test's or a platform's oddity): counted alone
        return address
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = limits.ipv6_prefix if isinstance(ip, IPv6Address) else limits.ipv4_prefix
    return str(ip_network((ip, prefix), strict=False))


@dataclass(frozen=True)
class Admission(Generic[K]):
    """The answer to a newcomer: refused (and why), or admitted, maybe by evicting ``evicted``
    (already released from the book: the caller closes it)."""

    refusal: Refusal | None = None
    evicted: K | None = None


class ConnectionBook(Generic[K]):
    """Which connections are open, per source network, which of them authenticated, and
    whether one more may be. Keys are the caller's connection objects."""

    def __init__(self, limits: TcpLimits) -> None:
        self.limits = limits
        self._networks: dict[K, str] = {}
        self._by_network: Counter[str] = Counter()
        #: not yet authenticated, oldest first (dicts keep insertion order)
        self._strangers: dict[K, None] = {}

    @property
    def total(self) -> int:
        return len(self._networks)

    @property
    def unauthenticated(self) -> int:
        return len(self._strangers)

    def admit(self, key: K, address: str) -> Admission[K]:
        """Count a new connection from ``address`` in, or say why it may not be. At the total
        cap the oldest connection that has not authenticated makes room; authenticated ones
        are never evicted for a newcomer."""
        network = source_network(address, self.limits)
        if self._by_network[network] >= self.limits.max_per_address:
            return Admission(refusal=Refusal.PER_ADDRESS)
        evicted: K | None = None
        if self.total >= self.limits.max_connections:
            if not self._strangers:
                return Admission(refusal=Refusal.TOTAL)
            evicted = next(iter(self._strangers))
            self.release(evicted)
        self._networks[key] = network
        self._by_network[network] += 1
        self._strangers[key] = None
        return Admission(evicted=evicted)

    def authenticated(self, key: K) -> None:
        self._strangers.pop(key, None)

    def is_authenticated(self, key: K) -> bool:
        return key in self._networks and key not in self._strangers

    def release(self, key: K) -> bool:
        """Count a connection out; False if it was not in (released already)."""
        network = self._networks.pop(key, None)
        if network is None:
            return False
        self._strangers.pop(key, None)
        self._by_network[network] -= 1
        if self._by_network[network] <= 0:
            del self._by_network[network]
        return True

    def from_network_of(self, address: str) -> int:
        return self._by_network[source_network(address, self.limits)]


def expiry(opened_s: float, authenticated_s: float | None, now_s: float, limits: TcpLimits) -> Closure | None:
    """Whether a connection is to be closed for quiet: one that never authenticated after
    ``auth_timeout_s`` (or ``idle_timeout_s``, if shorter) from its opening, one that did after
    ``idle_timeout_s`` from its last authenticated packet. Bytes and refused packets count
    for nothing."""
    if authenticated_s is None:
        waited_s = now_s - opened_s
        if waited_s >= limits.auth_timeout_s and limits.auth_timeout_s <= limits.idle_timeout_s:
            return Closure.AUTH_TIMEOUT
        return Closure.IDLE if waited_s >= limits.idle_timeout_s else None
    return Closure.IDLE if now_s - authenticated_s >= limits.idle_timeout_s else None


@dataclass
class RefusalBudget:
    """A leaky bucket of refused packets: ``max_refusals`` may come at once, and it drains at
    ``max_refusals / refusal_window_s`` a second. A device sends a handful a minute."""

    level: float = 0.0
    at_s: float = 0.0

    def spend(self, now_s: float, limits: TcpLimits) -> bool:
        """Count one refused packet at ``now_s``; True when the connection is over its budget."""
        drained = max(0.0, now_s - self.at_s) * limits.max_refusals / limits.refusal_window_s
        self.level = max(0.0, self.level - drained) + 1
        self.at_s = now_s
        return self.level > limits.max_refusals
