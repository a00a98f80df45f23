"""Reassembly of split HJ 212 packets (Flag bit 1, PNUM/PNO). Pure: time is passed in."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from contracts.hj212 import FLAG_SPLIT, Hj212Packet

T = TypeVar("T")


@dataclass
class _Pending(Generic[T]):
    first_seen: datetime
    pnum: int
    parts: dict[int, Hj212Packet] = field(default_factory=dict)
    tokens: list[T] = field(default_factory=list)


@dataclass(frozen=True)
class Assembled(Generic[T]):
    packet: Hj212Packet
    #: what the caller attached to each part (e.g. the MQTT message ids to acknowledge)
    tokens: list[T]


@dataclass(frozen=True)
class Expired(Generic[T]):
    mn: str
    qn: str | None
    received: list[int]
    pnum: int
    tokens: list[T]


class SplitRefused(ValueError):  # noqa: N818 - a verdict on one part
    """A part the assembler will not hold (its own limits, or one that does not fit)."""


#: a split packet of more parts than this is refused (a real one has a few)
MAX_PARTS = 64
#: packets held incomplete at once, per device and in all: far below the MQTT window of
#: unacknowledged messages, which parts held here keep open until their packet completes
MAX_PENDING_PER_DEVICE = 8
MAX_PENDING = 256


class SplitAssembler(Generic[T]):
    """Collects the parts of a split packet, keyed by where they came from (MQTT topic or TCP
    connection), MN, QN and CN, until every PNO arrived. The caller authenticates each part
    before it adds it: a part from elsewhere can neither join nor complete another's packet."""

    def __init__(
        self,
        timeout: timedelta = timedelta(seconds=120),
        *,
        max_pending: int = MAX_PENDING,
        max_pending_per_device: int = MAX_PENDING_PER_DEVICE,
    ) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self.max_pending_per_device = max_pending_per_device
        self._pending: dict[tuple[str, str, str | None, str], _Pending[T]] = {}
        self._per_device: dict[str, int] = {}

    def add(self, packet: Hj212Packet, token: T, now: datetime, origin: str = "") -> Assembled[T] | None:
        """Hold a part; the whole packet once the last part came. ``SplitRefused`` for a part
        beyond the limits or at odds with the parts before it."""
        assert packet.pnum is not None and packet.pno is not None
        if not 1 <= packet.pno <= packet.pnum <= MAX_PARTS:
            raise SplitRefused(f"part PNO={packet.pno} of PNUM={packet.pnum} (at most {MAX_PARTS} parts)")
        key = (origin, packet.mn, packet.qn, packet.cn)
        pending = self._pending.get(key)
        if pending is None:
            if self._per_device.get(packet.mn, 0) >= self.max_pending_per_device:
                raise SplitRefused(f"{self.max_pending_per_device} split packets of MN {packet.mn} already incomplete")
            if len(self._pending) >= self.max_pending:
                raise SplitRefused(f"{self.max_pending} split packets already incomplete")
            pending = self._pending[key] = _Pending(now, packet.pnum)
            self._per_device[packet.mn] = self._per_device.get(packet.mn, 0) + 1
        elif pending.pnum != packet.pnum:
            raise SplitRefused(f"part says PNUM={packet.pnum}, earlier parts {pending.pnum}")
        pending.parts[packet.pno] = packet
        pending.tokens.append(token)
        if len(pending.parts) < pending.pnum:
            return None
        self._forget(key)
        ordered = [pending.parts[i] for i in sorted(pending.parts)]
        groups = tuple(g for part in ordered for g in part.cp)
        # DataTime may repeat in each part: keep the first occurrence only
        seen_time = False
        merged = []
        for g in groups:
            if len(g) == 1 and g[0][0] == "DataTime":
                if seen_time:
                    continue
                seen_time = True
            merged.append(g)
        first = ordered[0]
        flag = None if first.flag is None else first.flag & ~FLAG_SPLIT
        return Assembled(replace(first, pnum=None, pno=None, flag=flag, cp=tuple(merged)), pending.tokens)

    def expire(self, now: datetime) -> list[Expired[T]]:
        """Give up on packets whose parts did not all arrive in time."""
        gone = []
        for key, pending in list(self._pending.items()):
            if now - pending.first_seen > self.timeout:
                self._forget(key)
                gone.append(Expired(key[1], key[2], sorted(pending.parts), pending.pnum, pending.tokens))
        return gone

    def _forget(self, key: tuple[str, str, str | None, str]) -> None:
        del self._pending[key]
        mn = key[1]
        left = self._per_device[mn] - 1
        if left:
            self._per_device[mn] = left
        else:
            del self._per_device[mn]

    def __len__(self) -> int:
        return len(self._pending)
