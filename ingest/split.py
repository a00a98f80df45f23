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


class SplitAssembler(Generic[T]):
    """Collects the parts of a split packet, keyed by (MN, QN, CN), until all PNO arrived."""

    def __init__(self, timeout: timedelta = timedelta(seconds=120)) -> None:
        self.timeout = timeout
        self._pending: dict[tuple[str, str | None, str], _Pending[T]] = {}

    def add(self, packet: Hj212Packet, token: T, now: datetime) -> Assembled[T] | None:
        assert packet.pnum is not None and packet.pno is not None
        key = (packet.mn, packet.qn, packet.cn)
        pending = self._pending.setdefault(key, _Pending(now, packet.pnum))
        pending.parts[packet.pno] = packet
        pending.tokens.append(token)
        if len(pending.parts) < pending.pnum:
            return None
        del self._pending[key]
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
                del self._pending[key]
                gone.append(Expired(key[0], key[1], sorted(pending.parts), pending.pnum, pending.tokens))
        return gone

    def __len__(self) -> int:
        return len(self._pending)
