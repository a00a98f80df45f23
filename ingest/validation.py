"""Decide what is a valid reading, from whom, and normalise it. Pure: no I/O, no clock.

``ReadingValidator`` turns a JSON payload or an HJ 212 packet into a ``Reading`` or raises
``Rejected`` with a ``RejectReason``. The sender is a stack's device or a facility's
electricity meter (``ingest.senders``); the checks are the same for both, in order:

1. topic grammar ``cems/v1/{enterprise}/{stack or facility}/{reading|hj212}`` (MQTT only);
2. payload: JSON against the device schema, or HJ 212 framing, length, CRC, fields, command;
3. the device (MN) is in the registry (else quarantined as ``unknown_device``) and belongs to
   the enterprise and the stack (a meter: the facility) of the topic (``mn_topic_mismatch``);
   the HJ 212 ``PW`` matches; over TCP (no account authenticates the sender) the device must
   have a ``PW`` in the registry, and the sender's address must be in its
   ``tcp_allowed_networks`` if it has any;
4. event time neither too far in the future nor too old (configurable);
5. each value: a known parameter that this sender may report (a meter only power, current and
   energy, a stack's device none of them: ``unknown_parameter``), a unit it can be given in,
   numeric, finite, physically possible.

Normalisation: concentrations to mg/m3 (``ppm_to_mg_m3``), flow to m3/s, pressure to
kPa, power to kW; NOx expressed as NO2 (``NO * 46/30 + NO2``) when only NO and NO2 arrive;
original flags kept. A meter's reading is keyed by the stack its facility exhausts to and
names the facility (``Reading.facility``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address, ip_address

from pydantic import ValidationError

from contracts.hj212 import Hj212Error, Hj212Packet, parse_packet
from contracts.hj212_data import KIND_BY_CN, VALUE_SUFFIX, packet_fields
from contracts.mqtt_topics import HJ212_CHANNEL, JSON_CHANNEL, ROOT
from contracts.parameters import PARAMETERS, Unit, nox_as_no2, ppm_to_mg_m3
from contracts.reading import (
    MAX_AGE_S,
    MAX_FUTURE_S,
    DataFlag,
    DeviceMeasurement,
    DeviceReading,
    Measurement,
    Reading,
    RejectReason,
    Source,
)
from contracts.registry import Device, Registry

from .json_limits import loads_bounded
from .senders import Sender, sender_index, topic_stacks


class Rejected(Exception):  # noqa: N818 - a verdict, not a failure of the program
    """Input refused, with a stable reason code and a human-readable detail."""

    def __init__(
        self,
        reason: RejectReason,
        detail: str,
        *,
        enterprise: str | None = None,
        stack: str | None = None,
        mn: str | None = None,
    ) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.enterprise = enterprise
        self.stack = stack
        self.mn = mn


@dataclass(frozen=True)
class ValidationSettings:
    max_future_s: float = MAX_FUTURE_S
    max_age_s: float = MAX_AGE_S


@dataclass(frozen=True)
class TopicAddress:
    enterprise: str
    #: the topic's level after the enterprise: a stack id, or a facility id (its meter's topic)
    stack: str
    channel: str


def peer_address(peer: str) -> IPv4Address | IPv6Address | None:
    """The address in a TCP peer written ``host:port`` or ``[v6 host]:port``; None if none."""
    host = peer.rpartition(":")[0].removeprefix("[").removesuffix("]")
    try:
        address = ip_address(host)
    except ValueError:
        return None
    return address.ipv4_mapped or address if isinstance(address, IPv6Address) else address


def check_tcp_sender(device: Device, peer: IPv4Address | IPv6Address | None, where: dict[str, str]) -> None:
    """HJ 212 over TCP has no account: the PW authenticates the device, so a device without
    one in the registry may not send that way (``hj212_password``); a device with allowed
    networks may send only from them (``source_not_allowed``)."""
    if device.hj212_pw is None:
        raise Rejected(
            RejectReason.HJ212_PASSWORD,
            f"MN {device.mn} has no HJ 212 PW in the registry: it may not send over TCP",
            **where,
        )
    if device.tcp_allowed_networks and (peer is None or not any(peer in n for n in device.tcp_allowed_networks)):
        allowed = ", ".join(str(n) for n in device.tcp_allowed_networks)
        raise Rejected(
            RejectReason.SOURCE_NOT_ALLOWED,
            f"MN {device.mn} may send over TCP only from {allowed}, not from {peer or 'an unknown address'}",
            **where,
        )


def parse_topic(topic: str) -> TopicAddress:
    parts = topic.removeprefix(f"{ROOT}/").split("/") if topic.startswith(f"{ROOT}/") else []
    if len(parts) != 3 or parts[2] not in (JSON_CHANNEL, HJ212_CHANNEL):
        raise Rejected(
            RejectReason.TOPIC,
            f"topic {topic!r} is not {ROOT}/{{enterprise}}/{{stack or facility}}/{JSON_CHANNEL} or .../{HJ212_CHANNEL}",
        )
    return TopicAddress(parts[0], parts[1], parts[2])


_TO_CANONICAL = {
    (Unit.M3_H, Unit.M3_S): 1 / 3600,
    (Unit.PA, Unit.KPA): 1 / 1000,
    (Unit.MW, Unit.KW): 1000.0,
}


def to_canonical(name: str, value: float, unit: Unit) -> float:
    param = PARAMETERS[name]
    if unit == param.unit:
        return value
    if unit == Unit.PPM and param.unit == Unit.MG_M3 and param.molar_mass_g_mol:
        return ppm_to_mg_m3(value, param.molar_mass_g_mol)
    factor = _TO_CANONICAL.get((unit, param.unit))
    if factor is None:
        raise ValueError(f"no conversion from {unit.value} to {param.unit.value} for {name}")
    return value * factor


class ReadingValidator:
    def __init__(self, registry: Registry, settings: ValidationSettings | None = None) -> None:
        self.registry = registry
        self.settings = settings or ValidationSettings()
        #: every registered MN: stack devices and facilities' meters
        self.senders = sender_index(registry)
        self._topic_stacks = topic_stacks(registry)

    # -- entry points ------------------------------------------------------------------------
    def from_mqtt(self, topic: str, payload: bytes, received_at: datetime) -> tuple[Reading, Hj212Packet | None]:
        address = parse_topic(topic)
        if address.channel == JSON_CHANNEL:
            return self.from_json(address, payload, received_at), None
        packet = self.parse_hj212(payload, address)
        return self.from_packet(packet, received_at, Source.MQTT_HJ212, address), packet

    def from_json(self, address: TopicAddress, payload: bytes, received_at: datetime) -> Reading:
        where = self._address_where(address)
        try:
            doc = loads_bounded(payload)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise Rejected(RejectReason.MALFORMED_JSON, f"not JSON: {exc}", **where) from exc
        mn = doc.get("mn") if isinstance(doc, dict) and isinstance(doc.get("mn"), str) else None
        if isinstance(doc, dict):
            self._precheck_json_values(doc, address, mn)
        try:
            device_reading = DeviceReading.model_validate(doc)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise Rejected(RejectReason.SCHEMA, f"{loc}: {first['msg']}", mn=mn, **where) from exc
        sender = self._sender(device_reading.mn, address)
        self._check_time(device_reading.time, received_at, sender)
        values = {name: self._measurement(name, m, sender) for name, m in device_reading.values.items()}
        return Reading(
            enterprise=sender.enterprise.id,
            stack=sender.stack.id,
            mn=device_reading.mn,
            event_time=device_reading.time,
            kind=device_reading.kind,
            values=_with_nox(values),
            source=Source.MQTT_JSON,
            received_at=received_at,
            facility=sender.facility_id,
        )

    def from_device_json(self, payload: bytes, received_at: datetime) -> Reading:
        """A device's JSON reading without its MQTT topic (files): the MN says whose it is."""
        try:
            mn = loads_bounded(payload).get("mn")
        except (ValueError, AttributeError) as exc:
            raise Rejected(RejectReason.MALFORMED_JSON, f"not a JSON object: {exc}") from exc
        sender = self.senders.get(mn) if isinstance(mn, str) else None
        if sender is None:
            raise Rejected(
                RejectReason.UNKNOWN_DEVICE, f"MN {mn!r} is not in the registry", mn=mn if isinstance(mn, str) else None
            )
        address = TopicAddress(sender.enterprise.id, sender.topic_level, JSON_CHANNEL)
        return self.from_json(address, payload, received_at)

    def from_packet(
        self,
        packet: Hj212Packet,
        received_at: datetime,
        source: Source,
        address: TopicAddress | None = None,
        peer: IPv4Address | IPv6Address | None = None,
    ) -> Reading:
        """A data packet (already parsed and, if split, reassembled) to a reading; ``peer``:
        the sender's address, for packets that came over TCP."""
        sender = self.authenticate(packet, source, address, peer)
        where = sender.where()
        kind = KIND_BY_CN.get(packet.cn)
        if kind is None:
            raise Rejected(RejectReason.HJ212_COMMAND, f"CN {packet.cn} carries no monitoring data", **where)
        try:
            event_time = packet.data_time()
        except Hj212Error as exc:
            raise Rejected(RejectReason.HJ212_FIELD, exc.detail, **where) from exc
        self._check_time(event_time, received_at, sender)
        fields = packet_fields(packet)
        if fields.unknown_codes:
            raise Rejected(
                RejectReason.UNKNOWN_PARAMETER, f"unknown pollutant codes {', '.join(fields.unknown_codes)}", **where
            )
        if not fields.by_parameter:
            raise Rejected(RejectReason.HJ212_FIELD, "packet carries no parameter values", **where)
        suffix = VALUE_SUFFIX[kind]
        values: dict[str, Measurement] = {}
        for name, items in fields.by_parameter.items():
            if suffix not in items:
                raise Rejected(RejectReason.HJ212_FIELD, f"{name} has no -{suffix} value for CN {packet.cn}", **where)
            flag = items.get("Flag", "N")
            if flag not in DataFlag._value2member_map_:
                raise Rejected(RejectReason.HJ212_FIELD, f"{name} has unknown data flag {flag!r}", **where)
            device_m = DeviceMeasurement(
                value=self._number(items[suffix], name, where),
                flag=DataFlag(flag),
                min=self._optional_number(items.get("Min"), name, where),
                max=self._optional_number(items.get("Max"), name, where),
                cou=self._optional_number(items.get("Cou"), name, where),
                zs=self._optional_number(items.get("Zs" + suffix), name, where),
            )
            values[name] = self._measurement(name, device_m, sender)
        return Reading(
            enterprise=sender.enterprise.id,
            stack=sender.stack.id,
            mn=packet.mn,
            event_time=event_time,
            kind=kind,
            values=_with_nox(values),
            source=source,
            received_at=received_at,
            qn=packet.qn,
            facility=sender.facility_id,
        )

    def authenticate(
        self,
        packet: Hj212Packet,
        source: Source,
        address: TopicAddress | None = None,
        peer: IPv4Address | IPv6Address | None = None,
    ) -> Sender:
        """Who sent this packet, or ``Rejected``: the MN is registered, belongs to the topic's
        enterprise and stack or facility (MQTT), its PW matches, and over TCP it has a PW and an
        allowed source. Every part of a split packet passes this before it is held."""
        sender = self._sender(packet.mn, address)
        where = sender.where()
        if source is Source.TCP_HJ212:
            check_tcp_sender(sender.device, peer, where)
        if sender.device.hj212_pw is not None and packet.pw != sender.device.hj212_pw:
            raise Rejected(RejectReason.HJ212_PASSWORD, f"PW does not match the registry for MN {packet.mn}", **where)
        return sender

    # -- checks -------------------------------------------------------------------------------
    def parse_hj212(self, payload: bytes, address: TopicAddress | None = None) -> Hj212Packet:
        try:
            packet = parse_packet(payload)
        except Hj212Error as exc:
            where = self._address_where(address) if address else {}
            raise Rejected(RejectReason(exc.reason.value), exc.detail, **where) from exc
        return packet

    def _address_where(self, address: TopicAddress) -> dict[str, str]:
        """What a refusal of input on this topic carries before its sender is known: the
        enterprise, and the stack its readings would be keyed by (a facility's topic: the
        stack the facility exhausts to; a level the registry does not know: as written)."""
        stack = self._topic_stacks.get((address.enterprise, address.stack), address.stack)
        return {"enterprise": address.enterprise, "stack": stack}

    def _sender(self, mn: str, address: TopicAddress | None) -> Sender:
        sender = self.senders.get(mn)
        where = self._address_where(address) if address else {}
        if sender is None:
            detail = f"MN {mn!r} is not in the registry (quarantined)"
            raise Rejected(RejectReason.UNKNOWN_DEVICE, detail, mn=mn, **where)
        owner = (sender.enterprise.id, sender.topic_level)
        if address is not None and (address.enterprise, address.stack) != owner:
            meter = "" if sender.facility is None else f" ({sender.describe()})"
            raise Rejected(
                RejectReason.MN_TOPIC_MISMATCH,
                f"MN {mn} belongs to {owner[0]}/{owner[1]}{meter}, not {address.enterprise}/{address.stack}",
                mn=mn,
                **where,
            )
        return sender

    def _check_time(self, event_time: datetime, received_at: datetime, sender: Sender) -> None:
        where = sender.where()
        ahead = (event_time - received_at).total_seconds()
        if ahead > self.settings.max_future_s:
            raise Rejected(
                RejectReason.FUTURE_TIMESTAMP,
                f"event time {event_time.isoformat()} is {ahead:.0f}s ahead of arrival "
                f"(allowed {self.settings.max_future_s:.0f}s)",
                **where,
            )
        if -ahead > self.settings.max_age_s:
            raise Rejected(
                RejectReason.STALE_TIMESTAMP,
                f"event time {event_time.isoformat()} is {-ahead / 3600:.1f}h before arrival "
                f"(allowed {self.settings.max_age_s / 3600:.1f}h)",
                **where,
            )

    def _precheck_json_values(self, doc: dict[str, object], address: TopicAddress, mn: str | None) -> None:
        """Name non-numeric and non-finite values precisely before schema validation."""
        values = doc.get("values")
        if not isinstance(values, dict):
            return
        where = {**self._address_where(address), "mn": mn}
        for name, m in values.items():
            raw = m.get("value") if isinstance(m, dict) else m
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise Rejected(RejectReason.NON_NUMERIC, f"{name}: value {raw!r} is not a number", **where)
            if not math.isfinite(raw):
                raise Rejected(RejectReason.NON_FINITE, f"{name}: value {raw!r} is not finite", **where)

    @staticmethod
    def _number(text: str, name: str, where: dict[str, str]) -> float:
        try:
            value = float(text)
        except ValueError as exc:
            raise Rejected(RejectReason.NON_NUMERIC, f"{name}: {text!r} is not a number", **where) from exc
        if not math.isfinite(value):
            raise Rejected(RejectReason.NON_FINITE, f"{name}: {text!r} is not finite", **where)
        return value

    def _optional_number(self, text: str | None, name: str, where: dict[str, str]) -> float | None:
        return None if text is None else self._number(text, name, where)

    def _measurement(self, name: str, m: DeviceMeasurement, sender: Sender) -> Measurement:
        where = sender.where()
        param = PARAMETERS.get(name)
        if param is None:
            raise Rejected(RejectReason.UNKNOWN_PARAMETER, f"unknown parameter {name!r}", **where)
        refused = sender.refuses_parameter(name)
        if refused is not None:
            raise Rejected(RejectReason.UNKNOWN_PARAMETER, refused, **where)
        unit = m.unit or sender.parameters.get(name, param.unit)
        if unit not in param.accepted_units:
            allowed = ", ".join(sorted(u.value for u in param.accepted_units))
            detail = f"{name} cannot be given in {unit.value} (allowed: {allowed})"
            raise Rejected(RejectReason.BAD_UNIT, detail, **where)

        def conv(v: float | None) -> float | None:
            return None if v is None else to_canonical(name, float(v), unit)

        value = to_canonical(name, float(m.value), unit)
        for label, v in (("value", value), ("min", conv(m.min)), ("max", conv(m.max)), ("zs", conv(m.zs))):
            if v is not None and not param.min_value <= v <= param.max_value:
                raise Rejected(
                    RejectReason.OUT_OF_RANGE,
                    f"{name} {label} {v:g} {param.unit.value} is outside the possible "
                    f"{param.min_value:g}..{param.max_value:g}",
                    **where,
                )
        return Measurement(
            value=value,
            unit=param.unit,
            flag=m.flag,
            minimum=conv(m.min),
            maximum=conv(m.max),
            cumulative=None if m.cou is None else float(m.cou),
            zs=conv(m.zs),
        )


def _worst_flag(*flags: DataFlag) -> DataFlag:
    return next((f for f in flags if f is not DataFlag.NORMAL), DataFlag.NORMAL)


def _with_nox(values: dict[str, Measurement]) -> dict[str, Measurement]:
    """Add NOx as NO2 (NO * 46/30 + NO2) when NO and NO2 arrive without NOx."""
    if "nox" in values or "no" not in values or "no2" not in values:
        return values
    no, no2 = values["no"], values["no2"]
    zs = nox_as_no2(no.zs, no2.zs) if no.zs is not None and no2.zs is not None else None
    nox = Measurement(
        value=nox_as_no2(no.value, no2.value),
        unit=Unit.MG_M3,
        flag=_worst_flag(no.flag, no2.flag),
        zs=zs,
    )
    return {**values, "nox": nox}
