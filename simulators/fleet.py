"""A simulated fleet: every registry stack's device, producing what it would send. Pure.

``Fleet.messages(minute)`` gives, for one reporting step, the messages all devices send at
that step: JSON readings or HJ 212 packets (as the registry says each device speaks), with
the scenario's faults applied: silence, clock skew, duplicates, malformed packets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.hj212 import encode_packet
from contracts.hj212_data import PacketValue, data_packet
from contracts.parameters import PARAMETERS, Unit
from contracts.reading import DataKind
from contracts.registry import Device, Enterprise, Registry, Stack
from rules.config import StackProfile

from .models import Sample, StackModel
from .scenarios import Scenario


@dataclass(frozen=True)
class Message:
    enterprise: str
    stack: str
    mn: str
    protocol: str  # "json" or "hj212"
    payload: bytes
    event_time: datetime
    #: what the system should do with it: "reading", or the dead-letter reason expected
    expect: str = "reading"

    @property
    def topic(self) -> str:
        channel = "reading" if self.protocol == "json" else "hj212"
        return f"cems/v1/{self.enterprise}/{self.stack}/{channel}"


def from_canonical(name: str, value: float, unit: Unit) -> float:
    """The inverse of the gateway's normalisation: what a device in ``unit`` reports."""
    param = PARAMETERS[name]
    if unit == param.unit:
        return value
    if unit == Unit.PPM and param.molar_mass_g_mol:
        return value * 22.4 / param.molar_mass_g_mol
    if unit == Unit.M3_H:
        return value * 3600
    if unit == Unit.PA:
        return value * 1000
    raise ValueError(f"cannot express {name} in {unit.value}")


class Fleet:
    def __init__(
        self,
        registry: Registry,
        profiles: dict[str, StackProfile],
        scenario: Scenario,
        start: datetime,
        seed: int = 7,
        protocol: str | None = None,
        count: int | None = None,
    ) -> None:
        self.scenario = scenario
        self.start = start
        self.protocol = protocol  # force "json"/"hj212" for all devices, else per registry
        self.devices: list[tuple[Enterprise, Stack, Device]] = [(e, s, s.devices[0]) for e, s in registry.stacks()]
        profiles = dict(profiles)
        if count is not None:
            self.devices, profiles = _resize(self.devices, profiles, count)
        self.models = {s.id: StackModel(profiles[s.id], seed) for _, s, _ in self.devices}
        self._flat: dict[tuple[str, str], float] = {}

    def sample(self, stack: str, minute: int, t: datetime | None = None) -> Sample:
        t = t or self.start + timedelta(minutes=minute, seconds=30)
        sample = self.models[stack].sample(t, self.scenario.overrides(stack, minute))
        for fault in self.scenario.flatline(stack, minute):
            if fault.parameter in sample.values:
                key = (stack, fault.parameter)
                held = self._flat.setdefault(key, round(sample.values[fault.parameter], 3))
                sample.values[fault.parameter] = held
        return sample

    def messages(self, minute: int, t: datetime | None = None) -> Iterator[Message]:
        """What every device sends at event time ``t`` (default: half past ``minute``);
        ``minute`` (from the scenario start) decides which faults are active."""
        t = t or self.start + timedelta(minutes=minute, seconds=30)
        for ent, stack, device in self.devices:
            if self.scenario.silent(stack.id, minute):
                continue
            sent_at = t + timedelta(seconds=self.scenario.skew_s(stack.id, minute))
            sample = self.sample(stack.id, minute, t)
            protocol = self.protocol or device.protocol
            payload = self._encode(protocol, stack, device, sample, sent_at)
            expect = "future_timestamp" if self.scenario.skew_s(stack.id, minute) > 300 else "reading"
            msg = Message(ent.id, stack.id, device.mn, protocol, payload, sent_at, expect)
            yield msg
            if self.scenario.duplicated(stack.id, minute) and expect == "reading":
                yield Message(ent.id, stack.id, device.mn, protocol, payload, sent_at, "duplicate")
        for fault in self.scenario.malformed():
            if fault.active(minute) and minute - fault.from_min < fault.count:
                ent, stack, device = next(d for d in self.devices if d[1].id == fault.stack)
                good = self._encode("hj212", stack, device, self.sample(stack.id, minute), t)
                broken = good[:-6] + (b"0000" if good[-6:-2] != b"0000" else b"FFFF") + b"\r\n"
                yield Message(ent.id, stack.id, device.mn, "hj212", broken, t, "hj212_crc")

    @staticmethod
    def _encode(protocol: str, stack: Stack, device: Device, sample: Sample, t: datetime) -> bytes:
        declared = stack.parameters
        if protocol == "json":
            values: dict[str, dict[str, object]] = {}
            for name, value in sample.values.items():
                unit = declared.get(name, PARAMETERS[name].unit)
                item: dict[str, object] = {"value": round(from_canonical(name, value, unit), 4), "unit": unit.value}
                if name in sample.flags:
                    item["flag"] = sample.flags[name]
                if name in sample.zs:
                    item["zs"] = round(from_canonical(name, sample.zs[name], unit), 4)
                values[name] = item
            doc = {"mn": device.mn, "time": t.isoformat(), "kind": "realtime", "values": values}
            return json.dumps(doc, separators=(",", ":")).encode()
        packet_values = {
            name: PacketValue(
                round(from_canonical(name, value, declared.get(name, PARAMETERS[name].unit)), 4),
                flag=sample.flags.get(name, "N"),
                zs=None
                if name not in sample.zs
                else round(from_canonical(name, sample.zs[name], declared.get(name, PARAMETERS[name].unit)), 4),
            )
            for name, value in sample.values.items()
        }
        packet = data_packet(
            mn=device.mn, kind=DataKind.REALTIME, event_time=t, values=packet_values, pw=device.hj212_pw or "123456"
        )
        return encode_packet(packet)


def _resize(
    devices: list[tuple[Enterprise, Stack, Device]], profiles: dict[str, StackProfile], count: int
) -> tuple[list[tuple[Enterprise, Stack, Device]], dict[str, StackProfile]]:
    """The first ``count`` devices, cloning registry stacks (``<stack>-v<n>``, MN ``<mn>V<n>``)
    when more are asked for than the registry has: for load tests of the publishing side and
    the broker (a gateway quarantines clones it does not know)."""
    if count <= len(devices):
        return devices[:count], profiles
    out = list(devices)
    n = 0
    while len(out) < count:
        ent, stack, device = devices[n % len(devices)]
        k = n // len(devices) + 1
        clone_id = f"{stack.id}-v{k}"
        clone_dev = device.model_copy(update={"mn": f"{device.mn}V{k}"[-24:]})
        clone = stack.model_copy(update={"id": clone_id, "devices": [clone_dev]})
        profiles[clone_id] = profiles[stack.id].model_copy(update={"stack": clone_id})
        out.append((ent, clone, clone_dev))
        n += 1
    return out, profiles
