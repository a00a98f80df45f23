"""A simulated fleet: every registry stack's device and every facility's electricity meter,
producing what it would send. Pure.

``Fleet.messages(minute)`` gives, for one reporting step, the messages all devices send at
that step: JSON readings or HJ 212 packets (as the registry says each device speaks), with
the scenario's faults applied: silence, clock skew, duplicates, malformed packets, and what
the facility faults do to the stacks' data and to the meters (``plant.Plant``).

A meter publishes on its facility's topic (``cems/v1/<enterprise>/<facility>/reading|hj212``),
power (kW or MW, as its registry entry says), current and energy; its energy counter is the
integral of the facility's noise-free power from the run's start, so it is the same whatever
order and step the readings are asked for in (a history request gets the bytes sent before).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts.mqtt_topics import HJ212_CHANNEL, JSON_CHANNEL, topic
from contracts.reading import MAX_FUTURE_S
from contracts.registry import Device, Enterprise, Facility, Meter, Registry, Stack
from rules.config import FacilityProfile, StackProfile

from .models import SHAPES, MeterModel, Overrides, Sample, StackModel, curve_load, power_share
from .plant import Key, Plant
from .scenarios import Scenario
from .wire import EventTime, Hj212Encoder, JsonEncoder


@dataclass(frozen=True)
class Message:
    enterprise: str
    #: the stack the device reports (a meter: the stack its facility exhausts to or treats)
    stack: str
    mn: str
    protocol: str  # "json" or "hj212"
    payload: bytes
    event_time: datetime
    #: what the system should do with it: "reading", or the dead-letter reason expected
    expect: str = "reading"
    #: a meter's message: the facility it meters (its topic level); None for a stack's device
    facility: str | None = None

    @property
    def topic(self) -> str:
        level = self.facility or self.stack
        return topic(self.enterprise, level, JSON_CHANNEL if self.protocol == "json" else HJ212_CHANNEL)


@dataclass
class MeterDevice:
    """One facility's meter in the fleet, with its energy counter: ``energy[m]`` is the reading
    at the start of minute ``m`` of the run, grown as later minutes are asked for."""

    enterprise: Enterprise
    facility: Facility
    profile: FacilityProfile
    model: MeterModel
    energy: array[float] = field(default_factory=lambda: array("d"))

    @property
    def key(self) -> Key:
        return (self.facility.stack, self.facility.id)

    @property
    def meter(self) -> Meter:
        return self.facility.meter


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
        meters: bool = True,
    ) -> None:
        """``scenario`` laid out for the registry (its lead-in, ``Scenario.resolved``) becomes
        ``self.scenario``. ``count`` (load tests): that many stacks, cloning the registry's,
        and no meters; ``meters`` False: no meters either."""
        self.scenario = scenario = scenario.resolved(registry.emergency_plan.baseline_days)
        self.start = start
        self.protocol = protocol  # force "json"/"hj212" for all devices, else per registry
        self.devices: list[tuple[Enterprise, Stack, Device]] = [(e, s, s.devices[0]) for e, s in registry.stacks()]
        profiles = dict(profiles)
        self.plant: Plant = scenario.plant(profiles)
        if count is not None:
            self.devices, profiles = _resize(self.devices, profiles, count)
        self.models = {s.id: StackModel(profiles[s.id], seed) for _, s, _ in self.devices}
        self.meters: list[MeterDevice] = []
        if meters and count is None:
            facility_profiles = {(s, f.id): f for s, p in profiles.items() for f in p.facilities}
            for ent, fac in registry.facilities():
                profile = facility_profiles[(fac.stack, fac.id)]
                model = MeterModel(profile, fac.meter.parameters, seed)
                self.meters.append(MeterDevice(ent, fac, profile, model, array("d", [model.energy_start_kwh])))
        self._flat: dict[tuple[str, str], float] = {}
        #: stacks some fault of the scenario changes; the others take the short way
        self._faulty = {f.stack for f in scenario.faults if f.stack is not None} | self.plant.faulty_stacks
        self._encoders: dict[tuple[str, str], JsonEncoder | Hj212Encoder] = {}

    def sample(self, stack: str, minute: int, t: datetime | None = None) -> Sample:
        t = t or self.start + timedelta(minutes=minute, seconds=30)
        overrides = self.scenario.overrides(stack, minute)
        overrides.production = self.plant.stack_production(stack, minute)
        sample = self.models[stack].sample(t, overrides)
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
                payload = self._encode(protocol, stack.id, stack, device, sample, times)
                yield Message(ent.id, stack.id, device.mn, protocol, payload, t)
                continue
            yield from self._faulty_messages(ent, stack, device, minute, t, times)
        for meter in self.meters:
            yield self._meter_message(meter, minute, t, times)
        for fault in self.scenario.malformed():
            if fault.active(minute) and minute - fault.from_min < fault.count:
                ent, stack, device = next(d for d in self.devices if d[1].id == fault.stack)
                good = self._encode("hj212", stack.id, stack, device, self.sample(stack.id, minute), times)
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
        payload = self._encode(protocol, stack.id, stack, device, sample, EventTime.of(sent_at) if skew else times)
        expect = "future_timestamp" if skew > MAX_FUTURE_S else "reading"
        yield Message(ent.id, stack.id, device.mn, protocol, payload, sent_at, expect)
        if self.scenario.duplicated(stack.id, minute) and expect == "reading":
            yield Message(ent.id, stack.id, device.mn, protocol, payload, sent_at, "duplicate")

    # -- meters ------------------------------------------------------------------------------------
    def _meter_message(self, meter: MeterDevice, minute: int, t: datetime, times: EventTime) -> Message:
        key = meter.key
        curve = self.models[key[0]].curve(t)
        if key in self.plant.faulty_facilities:
            share = self.plant.share(key, minute, curve)
        else:  # no fault touches it: a producer at its stack's load, a control treating it
            share = power_share(meter.profile, curve)
        sample = meter.model.sample(t, share, self.energy_kwh(meter, t))
        protocol = self.protocol or meter.meter.protocol
        payload = self._encode(protocol, f"{key[0]}/{key[1]}", meter.meter, meter.meter, sample, times)
        return Message(meter.enterprise.id, key[0], meter.meter.mn, protocol, payload, t, facility=key[1])

    def energy_kwh(self, meter: MeterDevice, t: datetime) -> float:
        """The meter's energy counter at ``t``: its start plus the integral of the facility's
        noise-free power (minute by minute) since the run's start."""
        seconds = (t - self.start).total_seconds()
        if seconds <= 0:
            return meter.energy[0]
        minute = int(seconds // 60)
        kw = meter.profile.normal_kw
        shape = SHAPES[self.models[meter.key[0]].profile.industry]
        energy = meter.energy
        while len(energy) <= minute + 1:
            m = len(energy) - 1
            curve = curve_load(shape, self.start + timedelta(minutes=m, seconds=30))
            energy.append(energy[m] + kw * self.plant.share(meter.key, m, curve) / 60)
        return energy[minute] + (energy[minute + 1] - energy[minute]) * (seconds - 60 * minute) / 60

    # -- history ------------------------------------------------------------------------------------
    def history(self, level: str, begin: datetime, end: datetime, step: timedelta) -> list[Message]:
        """What one stack's device (or one facility's meter: ``level`` is the topic level) sent
        with event times from ``begin`` to ``end`` (both included) when it reports every
        ``step``: the same bytes again, as a device keeping its history answers a request for a
        period (its silent minutes stay silent)."""
        found = next(((e, s, d) for e, s, d in self.devices if s.id == level), None)
        meters = [m for m in self.meters if m.facility.id == level]
        if found is None and not meters:
            return []
        offset = step_offset(step)
        first = max(0, math.ceil((begin - self.start - offset) / step))
        last = math.floor((end - self.start - offset) / step)
        out: list[Message] = []
        for index in range(first, last + 1):
            t = self.start + index * step + offset
            minute = int((t - self.start).total_seconds() // 60)
            times = EventTime.of(t)
            if found is not None:
                ent, stack, device = found
                out += [m for m in self._faulty_messages(ent, stack, device, minute, t, times) if m.expect == "reading"]
            out += [self._meter_message(meter, minute, t, times) for meter in meters]
        return out

    def _encode(
        self, protocol: str, key: str, units: Stack | Meter, device: Device, sample: Sample, times: EventTime
    ) -> bytes:
        """``key``: the device's stack id, or ``<stack>/<facility>`` for a meter."""
        found = self._encoders.get((key, protocol))
        if found is None:
            kind = JsonEncoder if protocol == "json" else Hj212Encoder
            found = self._encoders[(key, protocol)] = kind(units, device)
        if isinstance(found, JsonEncoder):
            return found.encode(sample, times.iso)
        return found.encode(sample, times.qn, times.data_time)


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
