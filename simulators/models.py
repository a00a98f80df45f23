"""Stack models by industry: physically consistent signals with daily load cycles. Pure.

A ``StackModel`` computes, for an event time, what a healthy stack's analysers read:

- load follows the industry's day (power: night trough, morning and evening peaks; kilns,
  sinter and coke ovens: near constant; coating lines: day shifts);
- flow follows load; O2 falls as load rises (less excess air); temperature and humidity follow
  the flue-gas treatment (after wet desulphurisation: ~50 C and humid);
- concentrations sit at a stack-specific share of the limit at reference O2, converted back
  to raw with the actual O2 (``raw = Cz * (21 - O2) / (21 - O2ref)``);
- NH3 slip rises and NOx falls together when the SCR over-injects (a fault sets ``nh3_boost``);
- a stack whose production facilities all stopped stops too: flow collapses to a draught, O2
  rises to ambient air, concentrations fall to nearly nothing, the flue cools (the device keeps
  reporting); production limited to a share of normal runs the stack at that load;
- every value gets sensor noise.

A ``MeterModel`` computes what a facility's electricity meter reads (分表计电): a production
facility draws ``normal_kw`` x its production level (the stack model's load, the same draw, or
the level a fault sets), a pollution-control facility a type-specific base share of its
``normal_kw`` plus a part proportional to what it treats (SCR/SNCR injection follows the
load, FGD pumps and fans hardly do), a stopped or switched-off facility a standby trickle far
under its ``running_kw``. Current follows power (three-phase, at a supply voltage chosen by
size); energy counts up from a per-meter start, the integral of the noise-free power.

Noise is read from a table of standard normal draws made from the seed, at an offset hashed
from (seed, stack, second), so the same seed gives the same stream whatever order stacks are
generated in, and a sample costs one table slice instead of seeding a generator.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from contracts.registry import FacilityRole, FacilityType, Industry
from rules.config import FacilityProfile, StackProfile


@dataclass(frozen=True)
class IndustryShape:
    rated_flow_m3_s: float
    o2_full_load: float
    o2_per_unloaded: float  # O2 points added as load falls from 100 % to 0
    temperature_c: float
    humidity_pct: float
    daily: str  # "power", "flat", "shift"
    #: share of each limit the stack emits at (converted), before faults
    emission_share: float = 0.5
    nmhc_mg_m3: float = 20.0


SHAPES: dict[Industry, IndustryShape] = {
    Industry.COAL_POWER: IndustryShape(420.0, 5.5, 3.0, 120.0, 7.0, "power", 0.45),
    Industry.GAS_TURBINE: IndustryShape(600.0, 14.5, 2.0, 95.0, 8.0, "power", 0.4),
    Industry.CEMENT: IndustryShape(150.0, 9.5, 1.5, 120.0, 6.0, "flat", 0.5),
    Industry.STEEL_SINTER: IndustryShape(250.0, 15.5, 1.0, 130.0, 9.0, "flat", 0.5),
    Industry.STEEL_OTHER: IndustryShape(60.0, 7.5, 2.0, 160.0, 6.0, "flat", 0.4),
    Industry.COKING: IndustryShape(90.0, 7.5, 1.5, 180.0, 10.0, "flat", 0.45),
    Industry.CHEMICAL: IndustryShape(20.0, 3.0, 2.0, 80.0, 4.0, "shift", 0.4, 22.0),
    Industry.COATING: IndustryShape(30.0, 18.0, 1.0, 45.0, 3.0, "shift", 0.4, 18.0),
}

WET_FGD_TEMPERATURE_C = 50.0
WET_FGD_HUMIDITY_PCT = 13.0
NOISE = 0.02

NOISE_TABLE_BITS = 16
#: room after the last offset for the longest sample (load, then one draw per parameter)
NOISE_TABLE_SLACK = 64
_GOLDEN = 0x9E3779B97F4A7C15  # Fibonacci hashing: consecutive keys land far apart
_MASK64 = (1 << 64) - 1


@lru_cache(maxsize=8)
def noise_table(seed: int) -> tuple[float, ...]:
    """Standard normal draws for one seed, shared by all stacks."""
    rng = random.Random(f"{seed}:noise")
    return tuple(rng.gauss(0, 1) for _ in range((1 << NOISE_TABLE_BITS) + NOISE_TABLE_SLACK))


def curve_load(shape: IndustryShape, t: datetime, draw: float = 0.0) -> float:
    """The stack's load (share of normal production) at ``t`` as its industry's day has it,
    with ``draw`` the stack's load noise (0: the noise-free curve)."""
    return min(1.05, max(0.2, _load(shape, t) + 0.01 * draw))


#: a stopped stack: what is left of the flow (natural draught), ambient O2 and temperature
STOPPED_FLOW_SHARE = 0.01
STOPPED_O2_PCT = 20.5
STOPPED_TEMPERATURE_C = 25.0
STOPPED_HUMIDITY_PCT = 2.5
#: a stopped stack's concentrations, as a share of its running ones (converted)
STOPPED_CONCENTRATION_SHARE = 0.02


def stack_load(curve: float, production: tuple[tuple[float, float | None], ...]) -> float:
    """The stack's load from its producers ``(weight, level)``: a level is a share of normal
    production (0: stopped), ``None`` the industry's curve; no producers: the curve."""
    if not production:
        return curve
    total = sum(w for w, _ in production)
    return sum(w * (curve if level is None else level) for w, level in production) / total


def _load(shape: IndustryShape, t: datetime) -> float:
    hour = (t.hour + 8) % 24 + t.minute / 60  # China local time drives production
    if shape.daily == "power":
        # trough around 04:00, peaks around 10:00 and 19:00
        return 0.75 + 0.15 * math.sin((hour - 7) / 24 * 2 * math.pi) + 0.08 * math.sin((hour - 4) / 12 * 2 * math.pi)
    if shape.daily == "shift":
        return 0.9 if 8 <= hour < 20 else 0.35
    return 0.9 + 0.03 * math.sin(hour / 24 * 2 * math.pi)


@dataclass
class Overrides:
    """What faults change for one stack at one time (``None``: leave as modelled)."""

    level_share: dict[str, float] = field(default_factory=dict)  # converted, as share of limit
    level_mg_m3: dict[str, float] = field(default_factory=dict)  # converted, absolute
    constant: dict[str, float] = field(default_factory=dict)  # exact raw value, no noise
    flags: dict[str, str] = field(default_factory=dict)
    nh3_boost_mg_m3: float = 0.0
    damper_pct: float | None = None
    bypass_fraction: float = 0.0  # share of flue gas going round the stack's treatment
    #: parameter -> share of the true converted value the device reports as Zs
    wrong_zs: dict[str, float] = field(default_factory=dict)
    #: the stack's production facilities as ``(weight, level)`` (``stack_load``); empty: as modelled
    production: tuple[tuple[float, float | None], ...] = ()
    #: the load the device reports, % (an enterprise cutting production on paper); None: the real one
    reported_load_pct: float | None = None
    #: concentrations scaled by this (abatement better or worse than modelled)
    emission_factor: float = 1.0


@dataclass(frozen=True)
class Sample:
    values: dict[str, float]
    flags: dict[str, str]
    zs: dict[str, float]


class StackModel:
    def __init__(self, profile: StackProfile, seed: int) -> None:
        self.profile = profile
        self.seed = seed
        self.shape = SHAPES[profile.industry]
        stack_rng = random.Random(f"{seed}:{profile.stack}:character")
        self._noise_seed = zlib.crc32(f"{seed}:{profile.stack}".encode()) * 1_000_003
        self._noise = noise_table(seed)
        self._draws = 1 + len(profile.parameters)
        if self._draws > NOISE_TABLE_SLACK:
            raise ValueError(f"{profile.stack}: more parameters than the noise table allows")
        # each stack is its own: size and how clean it runs
        self.size = stack_rng.uniform(0.6, 1.4)
        self.share = {p: self.shape.emission_share * stack_rng.uniform(0.7, 1.2) for p in profile.limits_mg_m3}

    def _offset(self, t: datetime) -> int:
        key = ((self._noise_seed + int(t.timestamp())) * _GOLDEN) & _MASK64
        return key >> (64 - NOISE_TABLE_BITS)

    def curve(self, t: datetime) -> float:
        """The load the industry's day gives at ``t``, with the noise ``sample`` gives it (a
        production meter on this stack follows it)."""
        return curve_load(self.shape, t, self._noise[self._offset(t)])

    def sample(self, t: datetime, faults: Overrides | None = None) -> Sample:
        f = faults or Overrides()
        p, shape = self.profile, self.shape
        offset = self._offset(t)
        draws = iter(self._noise[offset : offset + self._draws])

        def noisy(x: float, rel: float = NOISE) -> float:
            return x * (1 + rel * next(draws))

        load = curve_load(shape, t, next(draws))
        if f.production:
            load = stack_load(load, f.production)
            if load <= 0:
                return self._stopped(f, noisy)
        o2 = shape.o2_full_load + (1 - load) * shape.o2_per_unloaded
        flow = shape.rated_flow_m3_s * self.size * (0.3 + 0.7 * load)
        wet = p.wet_desulphurisation
        temperature = WET_FGD_TEMPERATURE_C if wet else shape.temperature_c
        humidity = WET_FGD_HUMIDITY_PCT if wet else shape.humidity_pct
        scrubber_bypass = f.bypass_fraction if f.damper_pct is None else 0.0
        if scrubber_bypass:
            # flue gas round the scrubber but out of the same stack: hotter, drier, dirtier
            temperature += scrubber_bypass * (shape.temperature_c + 20 - temperature)
            humidity -= scrubber_bypass * (humidity - 3.0)
        values: dict[str, float] = {}
        zs: dict[str, float] = {}
        for name in sorted(p.parameters):
            if name == "load":
                reported = load * 100 if f.reported_load_pct is None else f.reported_load_pct
                values[name] = noisy(reported, 0.005)
            elif name == "flow":
                # through an open damper, part of the gas leaves by the bypass chimney instead
                main_share = 1 - (f.bypass_fraction if f.damper_pct is not None else 0.0)
                values[name] = noisy(flow * main_share)
            elif name == "velocity":
                values[name] = noisy(flow / 10)
            elif name == "o2":
                values[name] = noisy(o2, 0.01)
            elif name == "temperature":
                values[name] = noisy(temperature, 0.005)
            elif name == "humidity":
                values[name] = noisy(humidity, 0.02)
            elif name == "pressure":
                values[name] = noisy(0.3, 0.05)
            elif name == "bypass_damper":
                values[name] = f.damper_pct or 0.0
            elif name == "bypass_flow":
                values[name] = noisy(flow * f.bypass_fraction) if f.bypass_fraction else 0.0
            elif name == "bypass_temperature":
                values[name] = noisy(shape.temperature_c if f.bypass_fraction else 28.0, 0.01)
            else:
                converted = self._converted_level(name, f)
                if f.emission_factor != 1.0:
                    converted *= f.emission_factor
                if name == "nh3":
                    converted += f.nh3_boost_mg_m3
                if name == "nox" and f.nh3_boost_mg_m3:
                    converted *= 0.6  # over-injection: NOx down while NH3 slips
                if scrubber_bypass and name in ("so2", "pm"):
                    converted *= 1 + 9 * scrubber_bypass  # unscrubbed gas
                factor = (21 - p.reference_o2_pct) / (21 - o2) if name in p.o2_converted else 1.0
                raw = noisy(converted / factor)
                values[name] = max(0.0, raw)
                if name in p.o2_converted and p.reference_o2_pct:
                    zs[name] = values[name] * factor * f.wrong_zs.get(name, 1.0)
        for name, value in f.constant.items():
            if name in values:
                values[name] = value
        return Sample(values, dict(f.flags), zs)

    def _stopped(self, f: Overrides, noisy: Callable[..., float]) -> Sample:
        """Every producer stopped: the device goes on reporting a cold, empty flue."""
        p = self.profile
        flow = self.shape.rated_flow_m3_s * self.size * STOPPED_FLOW_SHARE
        values: dict[str, float] = {}
        zs: dict[str, float] = {}
        for name in sorted(p.parameters):
            if name == "load":
                values[name] = noisy(f.reported_load_pct or 0.0, 0.005)
            elif name == "flow":
                values[name] = noisy(flow, 0.3)
            elif name == "velocity":
                values[name] = noisy(flow / 10, 0.3)
            elif name == "o2":
                values[name] = noisy(STOPPED_O2_PCT, 0.003)
            elif name == "temperature":
                values[name] = noisy(STOPPED_TEMPERATURE_C, 0.02)
            elif name == "humidity":  # a wet scrubber stays wet
                values[name] = noisy(WET_FGD_HUMIDITY_PCT if p.wet_desulphurisation else STOPPED_HUMIDITY_PCT, 0.05)
            elif name == "pressure":
                values[name] = noisy(0.02, 0.05)
            elif name == "bypass_damper":
                values[name] = f.damper_pct or 0.0
            elif name == "bypass_flow":
                values[name] = noisy(0.0)
            elif name == "bypass_temperature":
                values[name] = noisy(28.0, 0.01)
            else:
                level = self._converted_level(name, f) * STOPPED_CONCENTRATION_SHARE * f.emission_factor
                values[name] = max(0.0, noisy(level))
                if name in p.o2_converted and p.reference_o2_pct:
                    zs[name] = values[name] * (21 - p.reference_o2_pct) / (21 - STOPPED_O2_PCT)
        for name, value in f.constant.items():
            if name in values:
                values[name] = value
        return Sample(values, dict(f.flags), zs)

    def _converted_level(self, name: str, f: Overrides) -> float:
        limit = self.profile.limits_mg_m3.get(name)
        if name in f.level_mg_m3:
            return f.level_mg_m3[name]
        if limit is not None:
            return limit * f.level_share.get(name, self.share[name])
        if name == "nmhc":
            return self.shape.nmhc_mg_m3
        return {"nh3": 1.0, "co": 40.0, "hcl": 4.0, "thc": 25.0, "ch4": 3.0, "no": 20.0, "no2": 3.0}.get(name, 5.0)


# -- electricity meters -----------------------------------------------------------------------------

#: a control facility's power as (base, slope): ``normal_kw x (base + slope x level)``, where
#: level is the production level of what it treats
CONTROL_DRAW: dict[FacilityType, tuple[float, float]] = {
    FacilityType.SCR: (0.5, 0.5),  # ammonia injection and heating follow the NOx load
    FacilityType.SNCR: (0.5, 0.5),
    FacilityType.FGD: (0.8, 0.2),  # slurry pumps and oxidation blowers run on
    FacilityType.DUST_COLLECTOR: (0.7, 0.3),
    FacilityType.RTO: (0.8, 0.2),
    FacilityType.ACTIVATED_CARBON: (0.9, 0.1),
    FacilityType.OTHER_CONTROL: (0.8, 0.2),
}
#: a stopped or switched-off facility's power, share of its normal (lighting, controls)
STANDBY_SHARE = 0.004
POWER_NOISE = 0.02
POWER_FACTOR = 0.9
SQRT3 = math.sqrt(3)


def power_share(facility: FacilityProfile, level: float, control: float | None = None) -> float:
    """A facility's noise-free power as a share of its ``normal_kw``.

    ``level``: for a production facility its own production level (share of normal, 0 when
    stopped), for a control facility the production level of what it treats. ``control`` (a
    control facility only): None runs as modelled, 0 is switched off, another value is a
    fixed share of its normal power (running weak)."""
    if facility.role is FacilityRole.PRODUCTION:
        return level if level > 0 else STANDBY_SHARE
    if control is not None:
        return control if control > 0 else STANDBY_SHARE
    base, slope = CONTROL_DRAW.get(facility.type, CONTROL_DRAW[FacilityType.OTHER_CONTROL])
    return base + slope * level


class MeterModel:
    """One facility's electricity meter: power (kW), current (A), energy (kWh, cumulative)."""

    def __init__(self, facility: FacilityProfile, parameters: Iterable[str], seed: int) -> None:
        self.facility = facility
        self.parameters = tuple(sorted(parameters))
        rng = random.Random(f"{seed}:{facility.id}:meter")
        self._noise_seed = zlib.crc32(f"{seed}:{facility.id}:meter".encode()) * 1_000_003
        self._noise = noise_table(seed)
        #: the meter's reading when the simulation starts
        self.energy_start_kwh = round(rng.uniform(1e5, 5e6), 1)
        #: large drives on 10 kV, the rest on 400 V
        self.voltage_kv = 10.0 if facility.normal_kw >= 1000 else 0.4

    def sample(self, t: datetime, share: float, energy_kwh: float) -> Sample:
        """The meter's reading at ``t`` with the facility at ``share`` of its normal power
        (``power_share``) and its energy counter at ``energy_kwh``."""
        key = ((self._noise_seed + int(t.timestamp())) * _GOLDEN) & _MASK64
        offset = key >> (64 - NOISE_TABLE_BITS)
        power_draw, current_draw = self._noise[offset : offset + 2]
        power = max(0.0, self.facility.normal_kw * share * (1 + POWER_NOISE * power_draw))
        values: dict[str, float] = {}
        for name in self.parameters:
            if name == "power":
                values[name] = power
            elif name == "current":
                amps = power / (SQRT3 * self.voltage_kv * POWER_FACTOR)
                values[name] = max(0.0, amps * (1 + 0.005 * current_draw))
            elif name == "energy":
                values[name] = energy_kwh
        return Sample(values, {}, {})
