"""HJ 212-2017 packet codec: framing, length, CRC, data segment and CP items. Pure.

A packet on the wire::

    ##0101QN=20160801085857223;ST=32;CN=2011;PW=123456;MN=...;Flag=5;CP=&&DataTime=...;a21026-Rtd=12.5,a21026-Flag=N&&1C80\\r\\n

``##``, a 4-digit decimal length of the data segment, the data segment, the CRC of the data
segment as 4 hex digits, CR LF. The CRC is the standard's variant (not CRC-16/MODBUS).

``parse_packet`` turns bytes into an ``Hj212Packet`` or raises ``Hj212Error`` with a
``Hj212Reason``; nothing else ever escapes it. ``encode_packet`` is its inverse:
``parse_packet(encode_packet(p)) == p``. ``PROTOCOL_VERSION`` names the edition; HJ 212-2025
will get its own codec version next to this one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum

from .errors import CemsError

PROTOCOL_VERSION = "HJ212-2017"
MAX_DATA_LENGTH = 9999  # four decimal digits
CHINA_TZ = timezone(timedelta(hours=8), "CST")

# Commands (CN)
CN_REALTIME = "2011"
CN_MINUTE = "2051"
CN_HOURLY = "2061"
CN_DAILY = "2031"
CN_DATA_ANSWER = "9014"
DATA_COMMANDS = frozenset({CN_REALTIME, CN_MINUTE, CN_HOURLY, CN_DAILY})

FLAG_ACK_REQUESTED = 0b01
FLAG_SPLIT = 0b10

_HEADER_KEYS = ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO")
_ITEM_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
_VALUE_FORBIDDEN = re.compile(r"[;,&=\r\n]")


class Hj212Reason(StrEnum):
    """Why a packet was refused. The values double as dead-letter reason codes."""

    FRAMING = "hj212_framing"  # missing ##, CR LF, or too short
    ENCODING = "hj212_encoding"  # not ASCII
    LENGTH = "hj212_length"  # the length field does not match the data segment
    CRC = "hj212_crc"  # the CRC does not match the data segment
    FIELD = "hj212_field"  # a malformed or missing field in the data segment


class Hj212Error(CemsError):
    def __init__(self, reason: Hj212Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def _eight_rounds(value: int) -> int:
    for _ in range(8):
        carry = value & 1
        value >>= 1
        if carry:
            value ^= 0xA001
    return value


_ROUNDS = tuple(_eight_rounds(v) for v in range(256))
CRC_START = 0xFFFF


def crc_feed(crc: int, data: bytes) -> int:
    """The CRC after ``data``, from ``crc``: per byte ``crc = rounds[(crc >> 8) ^ byte]``, the
    8 shift/xor rounds of a byte looked up in a table. ``crc_feed(CRC_START, packet)`` is the
    packet's CRC; feeding in pieces gives the same result."""
    rounds = _ROUNDS
    for byte in data:
        crc = rounds[(crc >> 8) ^ byte]
    return crc


def crc16(data: bytes) -> int:
    """The HJ 212 CRC: per byte ``crc = (crc >> 8) ^ byte``, then 8 shift-right rounds
    xoring 0xA001 when the shifted-out bit was 1. Check value for the reference segment: 0x1C80."""
    return crc_feed(CRC_START, data)


def crc16_bitwise(data: bytes) -> int:
    """The same CRC, bit by bit as the standard describes it (the reference for tests)."""
    crc = CRC_START
    for byte in data:
        crc = _eight_rounds((crc >> 8) ^ byte)
    return crc


@dataclass(frozen=True)
class Hj212Packet:
    """A data segment, structurally: header fields in order, then CP groups of items.

    ``cp`` is a tuple of groups (``;``-separated in the packet); each group is a tuple of
    ``(key, value)`` items (``,``-separated), e.g. ``(("a21026-Rtd", "12.5"), ("a21026-Flag", "N"))``.
    """

    cn: str
    mn: str
    qn: str | None = None
    st: str | None = None
    pw: str | None = None
    flag: int | None = None
    pnum: int | None = None
    pno: int | None = None
    cp: tuple[tuple[tuple[str, str], ...], ...] = field(default_factory=tuple)

    @property
    def ack_requested(self) -> bool:
        return self.flag is not None and bool(self.flag & FLAG_ACK_REQUESTED)

    @property
    def is_split(self) -> bool:
        return self.flag is not None and bool(self.flag & FLAG_SPLIT)

    def cp_items(self) -> dict[str, str]:
        """All CP items flattened (the last wins if a key repeats)."""
        return {k: v for group in self.cp for k, v in group}

    def qn_time(self) -> datetime | None:
        """The request time encoded in QN (YYYYMMDDhhmmsszzz, China time)."""
        if self.qn is None:
            return None
        return _parse_time(self.qn, "QN", with_millis=True)

    def data_time(self) -> datetime:
        """``DataTime`` from CP (YYYYMMDDhhmmss, China time, UTC+8)."""
        raw = self.cp_items().get("DataTime")
        if raw is None:
            raise Hj212Error(Hj212Reason.FIELD, "CP has no DataTime")
        return _parse_time(raw, "DataTime", with_millis=False)


def _parse_time(raw: str, name: str, *, with_millis: bool) -> datetime:
    digits = 17 if with_millis else 14
    if len(raw) != digits or not raw.isdigit():
        raise Hj212Error(Hj212Reason.FIELD, f"{name} must be {digits} digits, got {raw!r}")
    try:
        t = datetime.strptime(raw[:14], "%Y%m%d%H%M%S").replace(tzinfo=CHINA_TZ)
    except ValueError as exc:
        raise Hj212Error(Hj212Reason.FIELD, f"{name} is not a valid time: {raw!r}") from exc
    if with_millis:
        t += timedelta(milliseconds=int(raw[14:]))
    return t


def format_time(t: datetime, *, with_millis: bool = False) -> str:
    local = t.astimezone(CHINA_TZ)
    text = local.strftime("%Y%m%d%H%M%S")
    return text + f"{local.microsecond // 1000:03d}" if with_millis else text


# -- encoding -------------------------------------------------------------------------------
def encode_data_segment(packet: Hj212Packet) -> str:
    header: list[tuple[str, str | None]] = [
        ("QN", packet.qn),
        ("ST", packet.st),
        ("CN", packet.cn),
        ("PW", packet.pw),
        ("MN", packet.mn),
        ("Flag", None if packet.flag is None else str(packet.flag)),
        ("PNUM", None if packet.pnum is None else str(packet.pnum)),
        ("PNO", None if packet.pno is None else str(packet.pno)),
    ]
    parts = [f"{k}={v}" for k, v in header if v is not None]
    cp = ";".join(",".join(f"{k}={v}" for k, v in group) for group in packet.cp)
    parts.append(f"CP=&&{cp}&&")
    return ";".join(parts)


def encode_packet(packet: Hj212Packet) -> bytes:
    data = encode_data_segment(packet).encode("ascii")
    if len(data) > MAX_DATA_LENGTH:
        raise Hj212Error(Hj212Reason.LENGTH, f"data segment of {len(data)} bytes exceeds {MAX_DATA_LENGTH}")
    return b"##%04d" % len(data) + data + b"%04X\r\n" % crc16(data)


def data_answer(request: Hj212Packet, qn_fallback: str = "") -> Hj212Packet:
    """The 9014 data answer a device asked for with Flag bit 0 (same QN, ST=91)."""
    return Hj212Packet(cn=CN_DATA_ANSWER, mn=request.mn, qn=request.qn or qn_fallback, st="91", pw=request.pw, flag=4)


# -- parsing --------------------------------------------------------------------------------
def parse_packet(raw: bytes) -> Hj212Packet:
    """Parse one framed packet; raise ``Hj212Error`` (and only that) when it is not valid."""
    if not isinstance(raw, bytes | bytearray):
        raise Hj212Error(Hj212Reason.FRAMING, f"expected bytes, got {type(raw).__name__}")
    if not raw.startswith(b"##"):
        raise Hj212Error(Hj212Reason.FRAMING, "packet does not start with '##'")
    if not raw.endswith(b"\r\n"):
        raise Hj212Error(Hj212Reason.FRAMING, "packet does not end with CR LF")
    if len(raw) < 2 + 4 + 4 + 2:
        raise Hj212Error(Hj212Reason.FRAMING, f"packet of {len(raw)} bytes is too short")
    length_field = raw[2:6]
    if not length_field.isdigit():
        raise Hj212Error(Hj212Reason.FRAMING, f"length field {length_field!r} is not 4 decimal digits")
    declared = int(length_field)
    data = raw[6:-6]
    crc_field = raw[-6:-2]
    if declared != len(data):
        raise Hj212Error(Hj212Reason.LENGTH, f"length field says {declared}, data segment has {len(data)} bytes")
    try:
        crc_text = crc_field.decode("ascii")
        declared_crc = int(crc_text, 16)
        if len(crc_text) != 4 or not all(c in "0123456789abcdefABCDEF" for c in crc_text):
            raise ValueError(crc_text)
    except ValueError as exc:
        raise Hj212Error(Hj212Reason.FRAMING, f"CRC field {crc_field!r} is not 4 hex digits") from exc
    actual_crc = crc16(data)
    if declared_crc != actual_crc:
        raise Hj212Error(Hj212Reason.CRC, f"CRC field says {declared_crc:04X}, data segment gives {actual_crc:04X}")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise Hj212Error(Hj212Reason.ENCODING, f"data segment is not ASCII at byte {exc.start}") from exc
    return parse_data_segment(text)


def parse_data_segment(text: str) -> Hj212Packet:
    marker = "CP=&&"
    start = text.find(marker)
    if start < 0 or not text.endswith("&&") or len(text) < start + len(marker) + 2:
        raise Hj212Error(Hj212Reason.FIELD, "data segment has no CP=&&...&& section at its end")
    head = text[:start]
    if head and not head.endswith(";"):
        raise Hj212Error(Hj212Reason.FIELD, "CP must follow a ';'")
    header: dict[str, str] = {}
    for part in filter(None, head.split(";")):
        key, sep, value = part.partition("=")
        if not sep:
            raise Hj212Error(Hj212Reason.FIELD, f"header field {part!r} has no '='")
        if key not in _HEADER_KEYS:
            raise Hj212Error(Hj212Reason.FIELD, f"unknown header field {key!r}")
        if key in header:
            raise Hj212Error(Hj212Reason.FIELD, f"header field {key!r} repeated")
        if _VALUE_FORBIDDEN.search(value):
            raise Hj212Error(Hj212Reason.FIELD, f"header field {key!r} has a separator in its value")
        header[key] = value
    for required in ("CN", "MN"):
        if not header.get(required):
            raise Hj212Error(Hj212Reason.FIELD, f"header field {required} is missing")
    mn = header["MN"]
    if len(mn) > 24:
        raise Hj212Error(Hj212Reason.FIELD, f"MN {mn!r} is longer than 24 characters")
    cn = header["CN"]
    if not cn.isdigit() or len(cn) != 4:
        raise Hj212Error(Hj212Reason.FIELD, f"CN {cn!r} is not a 4-digit command")
    qn = header.get("QN")
    if qn is not None:
        _parse_time(qn, "QN", with_millis=True)
    flag = _int_field(header, "Flag")
    pnum = _int_field(header, "PNUM")
    pno = _int_field(header, "PNO")
    if (pnum is None) != (pno is None):
        raise Hj212Error(Hj212Reason.FIELD, "PNUM and PNO must come together")
    if pnum is not None and pno is not None and not 1 <= pno <= pnum:
        raise Hj212Error(Hj212Reason.FIELD, f"PNO {pno} outside 1..PNUM {pnum}")
    body = text[start + len(marker) : -2]
    return Hj212Packet(
        cn=cn,
        mn=mn,
        qn=qn,
        st=header.get("ST"),
        pw=header.get("PW"),
        flag=flag,
        pnum=pnum,
        pno=pno,
        cp=_parse_cp(body),
    )


def _int_field(header: dict[str, str], key: str) -> int | None:
    raw = header.get(key)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 4:
        raise Hj212Error(Hj212Reason.FIELD, f"{key} {raw!r} is not a small non-negative integer")
    return int(raw)


def _parse_cp(body: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    if not body:
        return ()
    groups = []
    for group_text in body.split(";"):
        items = []
        for item in group_text.split(","):
            key, sep, value = item.partition("=")
            if not sep or not _ITEM_KEY.match(key):
                raise Hj212Error(Hj212Reason.FIELD, f"CP item {item!r} is not key=value")
            if "&" in value or "=" in value:
                raise Hj212Error(Hj212Reason.FIELD, f"CP item {item!r} has a reserved character in its value")
            items.append((key, value))
        groups.append(tuple(items))
    return tuple(groups)


# -- splitting a stream -----------------------------------------------------------------------
def split_stream(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Cut complete CR LF-terminated packets off a TCP byte stream; return them and the rest.

    Garbage before a ``##`` is returned as its own chunk so that it can be refused with a
    reason rather than silently skipped: a packet that lost its CR LF does not take the next
    packet down with it (a packet never holds ``##`` but at its start).
    """
    packets: list[bytes] = []
    pos = 0  # scan by position: slicing the rest off for each packet would copy it each time
    while True:
        end = buffer.find(b"\r\n", pos)
        if end < 0:
            return packets, buffer[pos:]
        piece, pos = buffer[pos : end + 2], end + 2
        start = piece.rfind(b"##")
        if start > 0:
            packets.append(piece[:start])
            piece = piece[start:]
        packets.append(piece)
