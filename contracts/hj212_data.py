"""Between HJ 212 data packets (CN 2011/2051/2061/2031) and per-parameter fields. Pure.

CP items are ``<code>-<Suffix>=<text>``: the code is a 2017 code (``a21026``) or a legacy
2005 one (``02``); the suffix says which field: ``Rtd`` (real-time), ``Avg``/``Min``/``Max``,
``Cou`` (cumulative), ``ZsRtd``/``ZsAvg``/``ZsMin``/``ZsMax`` (converted to reference O2),
``Flag`` (data flag). Other suffixes (``SampleTime``, ``EFlag``) are kept out of readings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from .hj212 import CN_DAILY, CN_HOURLY, CN_MINUTE, CN_REALTIME, Hj212Packet, format_time
from .parameters import BY_HJ212_CODE, BY_LEGACY_CODE, PARAMETERS, Parameter
from .reading import DataKind

KIND_BY_CN: dict[str, DataKind] = {
    CN_REALTIME: DataKind.REALTIME,
    CN_MINUTE: DataKind.MINUTE,
    CN_HOURLY: DataKind.HOURLY,
    CN_DAILY: DataKind.DAILY,
}
CN_BY_KIND: dict[DataKind, str] = {kind: cn for cn, kind in KIND_BY_CN.items()}

#: the suffix that carries the main value for each kind of data
VALUE_SUFFIX: dict[DataKind, str] = {
    DataKind.REALTIME: "Rtd",
    DataKind.MINUTE: "Avg",
    DataKind.HOURLY: "Avg",
    DataKind.DAILY: "Avg",
}
KNOWN_SUFFIXES = frozenset(
    {"Rtd", "Avg", "Min", "Max", "Cou", "Flag", "ZsRtd", "ZsAvg", "ZsMin", "ZsMax", "SampleTime", "EFlag"}
)


@dataclass(frozen=True)
class PacketFields:
    """CP items grouped by parameter: ``{"so2": {"Rtd": "12.5", "Flag": "N"}}``."""

    by_parameter: dict[str, dict[str, str]]
    unknown_codes: tuple[str, ...]
    unknown_suffixes: tuple[str, ...]


def lookup_code(code: str) -> Parameter | None:
    return BY_HJ212_CODE.get(code) or BY_LEGACY_CODE.get(code)


def packet_fields(packet: Hj212Packet) -> PacketFields:
    by_parameter: dict[str, dict[str, str]] = {}
    unknown_codes: list[str] = []
    unknown_suffixes: list[str] = []
    for key, text in packet.cp_items().items():
        if key == "DataTime" or "-" not in key:
            continue
        code, _, suffix = key.rpartition("-")
        param = lookup_code(code)
        if param is None:
            unknown_codes.append(code)
            continue
        if suffix not in KNOWN_SUFFIXES:
            unknown_suffixes.append(key)
            continue
        by_parameter.setdefault(param.name, {})[suffix] = text
    return PacketFields(by_parameter, tuple(dict.fromkeys(unknown_codes)), tuple(unknown_suffixes))


def format_number(value: float) -> str:
    """A number as HJ 212 packets carry it: at most 4 decimals, no trailing zeros."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text if text not in {"", "-0"} else "0"


@dataclass(frozen=True)
class PacketValue:
    """One parameter to put into a data packet (in the unit the device reports)."""

    value: float
    flag: str = "N"
    zs: float | None = None
    minimum: float | None = None
    maximum: float | None = None


def data_packet(
    *,
    mn: str,
    kind: DataKind,
    event_time: datetime,
    values: Mapping[str, PacketValue],
    qn_time: datetime | None = None,
    pw: str = "123456",
    st: str = "32",
    ack: bool = False,
    legacy_codes: bool = False,
) -> Hj212Packet:
    """Build the packet a device would send for these values (used by simulators and tests)."""
    suffix = VALUE_SUFFIX[kind]
    zs_suffix = "Zs" + suffix
    groups: list[tuple[tuple[str, str], ...]] = [(("DataTime", format_time(event_time)),)]
    for name, pv in values.items():
        param = PARAMETERS[name]
        code = param.legacy_code if legacy_codes and param.legacy_code else param.hj212_code
        items = [(f"{code}-{suffix}", format_number(pv.value))]
        if pv.minimum is not None and kind is not DataKind.REALTIME:
            items.append((f"{code}-Min", format_number(pv.minimum)))
        if pv.maximum is not None and kind is not DataKind.REALTIME:
            items.append((f"{code}-Max", format_number(pv.maximum)))
        if pv.zs is not None:
            items.append((f"{code}-{zs_suffix}", format_number(pv.zs)))
        items.append((f"{code}-Flag", pv.flag))
        groups.append(tuple(items))
    return Hj212Packet(
        cn=CN_BY_KIND[kind],
        mn=mn,
        qn=format_time(qn_time or event_time, with_millis=True),
        st=st,
        pw=pw,
        flag=5 if ack else 4,
        cp=tuple(groups),
    )
