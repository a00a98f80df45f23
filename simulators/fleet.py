"""A simulated fleet: every registry stack's device, producing what it would send. Pure.

``Fleet.messages(minute)`` gives, for one reporting step, the messages all devices send at
that step: JSON readings or HJ 212 packets (as the registry says each device speaks), with
the scenario's faults applied: silence, clock skew, duplicates, malformed packets.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.mqtt_topics import HJ212_CHANNEL, JSON_CHANNEL, topic
from contracts.reading import MAX_FUTURE_S
from contracts.registry import Device, Enterprise, Registry, Stack
from rules.config import StackProfile

from .models import Overrides, Sample, StackModel
from .scenarios import Scenario
from .wire import EventTime, Hj212Encoder, JsonEncoder


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
        return topic(self.enterprise, self.stack, JSON_CHANNEL if self.protocol == "json" else HJ212_CHANNEL)


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
        #: stacks some fault of the scenario names; the others take the short way
        self._faulty = {f.stack for f in scenario.faults}
        self._encoders: dict[tuple[str, str], JsonEncoder | Hj212Encoder] = {}

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
        times = EventTime.of(t)
        faulty, models, forced = self._faulty, self.models, self.protocol
        no_faults = Overrides()
        for ent, stack, device in self.devices:
            if stack.id not in faulty:
                sample = models[stack.id].sample(t, no_faults)
                protocol = forced or device.protocol
                payload = self._encode(protocol, stack, device, sample, times)
                yield Message(ent.id, stack.id, device.mn, protocol, payload, t)
                continue
            yield from self._faulty_messages(ent, stack, device, minute, t, times)
        for fault in self.scenario.malformed():
            if fault.active(minute) and minute - fault.from_min < fault.count:
                ent, stack, device = next(d for d in self.devices if d[1].id == fault.stack)
                good = self._encode("hj212", stack, device, self.sample(stack.id, minute), times)
                broken = good[:-6] + (b"0000" if good[-6:-2] != b"0000" else b"FFFF") + b"\r\n"
                yield Message(ent.id, stack.id, device.mn, "hj212", broken, t, "hj212_crc")

    def _faulty_messages(
        self, ent: Enterprise, stack: Stack, device: Device, minute: int, t: datetime, times: EventTime
    ) -> Iterator[Message]:
        if self.scenario.silent(stack.id, minute):
            return
        skew = self.scenario.skew_s(stack.id, minute)
        sent_at = t + timedelta(seconds=skew)
        sample = self.sample(stack.id, minute, t)
        protocol = self.protocol or device.protocol
        payload = self._encode(protocol, stack, device, sample, EventTime.of(sent_at) if skew else times)
        expect = "future_timestamp" if skew > MAX_FUTURE_S else "reading"
        yield Message(ent.id, stack.id, device.mn, protocol, payload, sent_at, expect)
        if self.scenario.duplicated(stack.id, minute) and expect == "reading":
            yield Message(ent.id, stack.id, device.mn, protocol, payload, sent_at, "duplicate")

    def history(self, stack_id: str, begin: datetime, end: datetime, step: timedelta) -> list[Message]:
        """What one stack's device sent with event times from ``begin`` to ``end`` (both
        included) when it reports every ``step``: the same bytes again, as a device keeping
        its history answers a request for a period (its silent minutes stay silent)."""
        found = next(((e, s, d) for e, s, d in self.devices if s.id == stack_id), None)
        if found is None:
            return []
        ent, stack, device = found
        offset = step_offset(step)
        first = max(0, math.ceil((begin - self.start - offset) / step))
        last = math.floor((end - self.start - offset) / step)
        out: list[Message] = []
        for index in range(first, last + 1):
            t = self.start + index * step + offset
            minute = int((t - self.start).total_seconds() // 60)
            for msg in self._faulty_messages(ent, stack, device, minute, t, EventTime.of(t)):
                if msg.expect == "reading":
                    out.append(msg)
        return out

    def _encode(self, protocol: str, stack: Stack, device: Device, sample: Sample, times: EventTime) -> bytes:
        key = (stack.id, protocol)
        encoder = self._encoders.get(key)
        if encoder is None:
            kind = JsonEncoder if protocol == "json" else Hj212Encoder
            encoder = self._encoders[key] = kind(stack, device)
        if isinstance(encoder, JsonEncoder):
            return encoder.encode(sample, times.iso)
        return encoder.encode(sample, times.qn, times.data_time)


def step_offset(step: timedelta) -> timedelta:
    """Readings every minute or more are stamped half past the minute, faster ones on the second."""
    return timedelta(seconds=30) if step >= timedelta(minutes=1) else timedelta(0)


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
