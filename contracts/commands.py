"""Commands the platform sends a device on ``cems/v1/{enterprise}/{stack}/cmd``. Pure.

One command so far: **history** (backfill). When a stack that went quiet reports again, the
gateway asks its device for the readings of the missing period; the device publishes them
on its usual channel (``reading`` or ``hj212``), exactly as it first sent them (the same
event times; a reading the platform already has is recognised and stored once).

Two forms, one per device protocol:

- HJ 212 devices: an HJ 212 request packet, ``ST=91``, ``CN`` the data command of the kind
  wanted (2011 real-time, 2051 minute, 2061 hourly, 2031 daily), the device's ``PW`` and
  ``MN``, ``Flag=4``, ``CP=&&BeginTime=YYYYMMDDhhmmss;EndTime=YYYYMMDDhhmmss&&`` (China time,
  both ends included). HJ 212-2017 defines the period for 2031/2051/2061; for real-time
  data (2011) the same form asks for the stored real-time values of the period.
- JSON devices: ``{"command": "history", "request_id": ..., "mn": ..., "kind": "realtime",
  "begin": "<ISO 8601>", "end": "<ISO 8601>"}`` (both ends included, each with its time zone).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from .hj212 import Hj212Error, Hj212Packet, encode_packet, format_time, parse_packet
from .hj212_data import CN_BY_KIND, KIND_BY_CN
from .reading import DataKind

HISTORY = "history"


class CommandError(ValueError):
    """A command payload that is not a command this contract defines."""


@dataclass(frozen=True)
class HistoryRequest:
    mn: str
    kind: DataKind
    #: the first and the last event time wanted, both included
    begin: datetime
    end: datetime
    request_id: str

    def covers(self, t: datetime) -> bool:
        return self.begin <= t <= self.end


def encode_history(request: HistoryRequest, protocol: str, pw: str | None = None) -> bytes:
    """The request as the device speaks it: ``hj212`` (an HJ 212 packet) or ``json``."""
    if protocol == "hj212":
        packet = Hj212Packet(
            cn=CN_BY_KIND[request.kind],
            mn=request.mn,
            qn=request.request_id,
            st="91",
            pw=pw,
            flag=4,
            cp=((("BeginTime", format_time(request.begin)),), (("EndTime", format_time(request.end)),)),
        )
        return encode_packet(packet)
    doc = {
        "command": HISTORY,
        "request_id": request.request_id,
        "mn": request.mn,
        "kind": request.kind.value,
        "begin": request.begin.isoformat(),
        "end": request.end.isoformat(),
    }
    return json.dumps(doc).encode()


def _aware_time(doc: dict[str, object], key: str) -> datetime:
    text = doc[key]
    if not isinstance(text, str):
        raise CommandError(f"{key} is not an ISO 8601 time: {text!r}")
    t = datetime.fromisoformat(text)
    if t.utcoffset() is None:
        raise CommandError(f"{key} {text!r} has no time zone")
    return t


def decode_history(payload: bytes) -> HistoryRequest:
    """Either form back into a request; ``CommandError`` if it is neither."""
    if payload.startswith(b"##"):
        try:
            packet = parse_packet(payload)
            items = packet.cp_items()
            begin, end = (
                Hj212Packet(cn=packet.cn, mn=packet.mn, cp=((("DataTime", items[key]),),)).data_time()
                for key in ("BeginTime", "EndTime")
            )
        except (Hj212Error, KeyError) as exc:
            raise CommandError(f"not an HJ 212 history request: {exc}") from exc
        kind = KIND_BY_CN.get(packet.cn)
        if kind is None:
            raise CommandError(f"CN {packet.cn} asks for no data")
        return HistoryRequest(packet.mn, kind, begin, end, packet.qn or "")
    try:
        doc = json.loads(payload)
        if doc.get("command") != HISTORY:
            raise CommandError(f"unknown command {doc.get('command')!r}")
        return HistoryRequest(
            mn=str(doc["mn"]),
            kind=DataKind(doc["kind"]),
            begin=_aware_time(doc, "begin"),
            end=_aware_time(doc, "end"),
            request_id=str(doc.get("request_id", "")),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CommandError(f"not a history command: {exc}") from exc
