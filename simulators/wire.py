"""Per-device payload encoders: JSON readings and HJ 212 packets from a sample. Pure.

Everything that does not change between two readings of one device (its MN, PW, parameter
names, units, HJ 212 codes and unit conversions) is prepared once, so encoding a reading
only formats its numbers. The output is byte for byte what ``json.dumps`` of the reading
document and ``contracts.hj212.encode_packet`` of the data packet give (the unit tests
compare them).

The HJ 212 CRC is computed piecewise: after the first byte, the CRC depends only on the high
byte of the previous CRC and the next byte, so the effect of a constant piece of text (such
as ``,a21026-Flag=``) is a 256-entry table, and only the variable text goes byte by byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from contracts.hj212 import CN_REALTIME, CRC_START, MAX_DATA_LENGTH, Hj212Error, Hj212Reason, crc_feed, format_time
from contracts.hj212_data import format_number
from contracts.parameters import MOLAR_VOLUME_L_MOL, PARAMETERS, Unit
from contracts.registry import Device, Meter, Stack

from .models import Sample


@lru_cache(maxsize=4096)
def crc_table(piece: bytes) -> tuple[int, ...]:
    """The CRC after ``piece`` for each high byte of the CRC before it."""
    if not piece:
        raise ValueError("a constant piece must not be empty")
    return tuple(crc_feed(high << 8, piece) for high in range(256))


@dataclass(frozen=True)
class Conversion:
    """From the canonical unit to the one the device reports: ``value * mul / div``."""

    mul: float | None = None  # None: reported as is
    div: float = 1.0

    def __call__(self, value: float) -> float:
        return value if self.mul is None else value * self.mul / self.div


def conversion(name: str, unit: Unit) -> Conversion:
    """The inverse of the gateway's normalisation: what a device in ``unit`` reports."""
    param = PARAMETERS[name]
    if unit == param.unit:
        return Conversion()
    if unit == Unit.PPM and param.molar_mass_g_mol:
        return Conversion(MOLAR_VOLUME_L_MOL, param.molar_mass_g_mol)
    if unit == Unit.M3_H:
        return Conversion(3600)
    if unit == Unit.PA:
        return Conversion(1000)
    if unit == Unit.MW:
        return Conversion(1, 1000)
    raise ValueError(f"cannot express {name} in {unit.value}")


class _Units:
    def __init__(self, source: Stack | Meter) -> None:
        self.declared = source.parameters
        self._conversions: dict[str, tuple[Unit, Conversion]] = {}

    def get(self, name: str) -> tuple[Unit, Conversion]:
        found = self._conversions.get(name)
        if found is None:
            unit = self.declared.get(name, PARAMETERS[name].unit)
            found = self._conversions[name] = (unit, conversion(name, unit))
        return found


class JsonEncoder:
    """A device's realtime JSON reading, as ``json.dumps(doc, separators=(",", ":"))`` writes it."""

    def __init__(self, units: Stack | Meter, device: Device) -> None:
        """``units``: whose parameters' units it writes (the stack, or the meter itself)."""
        self.units = _Units(units)
        self.head = '{"mn":' + json.dumps(device.mn) + ',"time":"'
        self._items: dict[str, tuple[str, str, Conversion]] = {}

    def _item(self, name: str) -> tuple[str, str, Conversion]:
        found = self._items.get(name)
        if found is None:
            unit, conv = self.units.get(name)
            found = self._items[name] = (json.dumps(name) + ':{"value":', ',"unit":' + json.dumps(unit.value), conv)
        return found

    def encode(self, sample: Sample, iso_time: str) -> bytes:
        flags, zs = sample.flags, sample.zs
        items = []
        for name, value in sample.values.items():
            head, unit, conv = self._item(name)
            text = f"{head}{round(conv(value), 4)!r}{unit}"
            if flags and name in flags:
                text += ',"flag":' + json.dumps(flags[name])
            if name in zs:
                text += f',"zs":{round(conv(zs[name]), 4)!r}'
            items.append(text + "}")
        return f'{self.head}{iso_time}","kind":"realtime","values":{{{",".join(items)}}}}}'.encode()


_HEAD, _CP = f";ST=32;CN={CN_REALTIME};PW=", ";Flag=4;CP=&&DataTime="
_HEAD_CRC, _MN_CRC, _CP_CRC, _END_CRC = (crc_table(p.encode()) for p in (_HEAD, ";MN=", _CP, "&&"))


@dataclass(frozen=True)
class _Hj212Item:
    conv: Conversion
    rtd: str
    rtd_crc: tuple[int, ...]
    zs: str
    zs_crc: tuple[int, ...]
    flag: str
    flag_crc: tuple[int, ...]


class Hj212Encoder:
    """A device's realtime data packet (CN 2011, ST 32, Flag 4), framed with its CRC."""

    def __init__(self, units: Stack | Meter, device: Device) -> None:
        self.units = _Units(units)
        self.mn = device.mn
        self.pw = device.hj212_pw or "123456"
        self._mn, self._pw = self.mn.encode("ascii"), self.pw.encode("ascii")
        self._items: dict[str, _Hj212Item] = {}

    def _item(self, name: str) -> _Hj212Item:
        found = self._items.get(name)
        if found is None:
            code = PARAMETERS[name].hj212_code
            rtd, zs, flag = f";{code}-Rtd=", f",{code}-ZsRtd=", f",{code}-Flag="
            found = self._items[name] = _Hj212Item(
                self.units.get(name)[1],
                rtd, crc_table(rtd.encode()), zs, crc_table(zs.encode()), flag, crc_table(flag.encode()),
            )  # fmt: skip
        return found

    def encode(self, sample: Sample, qn: str, data_time: str) -> bytes:
        """``qn`` and ``data_time``: the event time as ``format_time`` writes them (with and
        without milliseconds)."""
        feed, flags, zs = crc_feed, sample.flags, sample.zs
        crc = feed(CRC_START, b"QN=" + qn.encode())
        crc = feed(_HEAD_CRC[crc >> 8], self._pw)
        crc = feed(_MN_CRC[crc >> 8], self._mn)
        crc = feed(_CP_CRC[crc >> 8], data_time.encode())
        parts = [f"QN={qn}{_HEAD}{self.pw};MN={self.mn}{_CP}{data_time}"]
        for name, value in sample.values.items():
            item = self._item(name)
            text = format_number(round(item.conv(value), 4))
            crc = feed(item.rtd_crc[crc >> 8], text.encode())
            parts += (item.rtd, text)
            if name in zs:
                text = format_number(round(item.conv(zs[name]), 4))
                crc = feed(item.zs_crc[crc >> 8], text.encode())
                parts += (item.zs, text)
            flag = flags.get(name, "N") if flags else "N"
            crc = feed(item.flag_crc[crc >> 8], flag.encode())
            parts += (item.flag, flag)
        crc = _END_CRC[crc >> 8]
        parts.append("&&")
        data = "".join(parts).encode("ascii")
        if len(data) > MAX_DATA_LENGTH:
            raise Hj212Error(Hj212Reason.LENGTH, f"data segment of {len(data)} bytes exceeds {MAX_DATA_LENGTH}")
        return b"##%04d" % len(data) + data + b"%04X\r\n" % crc


@dataclass(frozen=True)
class EventTime:
    """One event time, written the ways the encoders need it."""

    iso: str
    qn: str
    data_time: str

    @classmethod
    def of(cls, t: datetime) -> EventTime:
        return cls(t.isoformat(), format_time(t, with_millis=True), format_time(t))
