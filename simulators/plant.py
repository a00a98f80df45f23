"""The fleet's facilities under a scenario's faults, minute by minute. Pure.

Shared by the fleet (what the meters and the stacks send) and the ground truth (what the rules
must conclude from it), so both read one account of who runs when:

- a production facility's **level**: its production as a share of normal; 0 when stopped;
  ``None`` when it runs as its stack's industry has it (the stack model's daily curve);
- a control facility's **state**: ``None`` running as modelled (its power follows what it
  treats, ``models.power_share``), 0 switched off, another value a fixed share of its normal
  power (running weak).

A stack's load is its producers' levels weighted by their normal power (``models.stack_load``):
every producer stopped stops the stack. Control facilities do not change what the stack's
analysers read: the point of metering them is that the stack's data may not show it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contracts.errors import ConfigError
from contracts.registry import FacilityRole
from rules.config import FacilityProfile, StackProfile

from .models import power_share

if TYPE_CHECKING:
    from .scenarios import Fault

#: faults naming a facility (``facility:``), and the role it must have
FACILITY_FAULTS: dict[str, FacilityRole] = {
    "production_stop": FacilityRole.PRODUCTION,
    "production_limit": FacilityRole.PRODUCTION,
    "control_off": FacilityRole.CONTROL,
    "late_start": FacilityRole.CONTROL,
    "underpowered": FacilityRole.CONTROL,
}

Key = tuple[str, str]  # (stack, facility): facility ids are unique within an enterprise only


@dataclass(frozen=True)
class _Window:
    start: int
    end: int | None  # exclusive; None: to the end
    value: float

    def active(self, minute: int) -> bool:
        return self.start <= minute and (self.end is None or minute < self.end)


class Plant:
    """Every metered facility of ``profiles`` and what ``faults`` do to it."""

    def __init__(self, faults: Sequence[Fault], profiles: Mapping[str, StackProfile], source: str = "scenario") -> None:
        self.profiles = profiles
        self.facilities: dict[Key, FacilityProfile] = {}
        stacks_of: dict[str, list[str]] = {}
        for stack_id, profile in profiles.items():
            for fac in profile.facilities:
                self.facilities[(stack_id, fac.id)] = fac
                stacks_of.setdefault(fac.id, []).append(stack_id)
        self._levels: dict[Key, list[_Window]] = {}
        self._controls: dict[Key, list[_Window]] = {}
        problems: list[str] = []
        for i, f in enumerate(faults):
            where = f"{source}: faults.{i} ({f.type})"
            if f.type not in FACILITY_FAULTS:
                if f.stack is not None and f.stack not in profiles:
                    problems.append(f"{where}: no stack {f.stack!r} in the registry")
                continue
            assert f.facility is not None  # the scenario's schema requires it
            found = [s for s in stacks_of.get(f.facility, []) if f.stack in (None, s)]
            if not found:
                on = f" on stack {f.stack!r}" if f.stack else ""
                problems.append(f"{where}: no facility {f.facility!r}{on} in the registry")
                continue
            if len(found) > 1:
                problems.append(f"{where}: facility {f.facility!r} is on stacks {found}: name its stack")
                continue
            key = (found[0], f.facility)
            fac = self.facilities[key]
            role = FACILITY_FAULTS[f.type]
            if fac.role is not role:
                problems.append(f"{where}: {f.facility!r} is a {fac.role.value} facility, not {role.value}")
                continue
            if f.type == "production_stop":
                self._level(key, f.from_min, f.to_min, 0.0)
            elif f.type == "production_limit":
                self._level(key, f.from_min, f.to_min, (f.pct or 0.0) / 100)
            elif f.type == "control_off":
                self._control(key, f.from_min, f.to_min, 0.0)
            elif f.type == "underpowered":
                self._control(key, f.from_min, f.to_min, f.power_share or 0.0)
            elif f.type == "late_start":
                # down from ``down_from``: what it treats starts at ``from``, the control ``lag_min`` later
                self._control(key, f.down_from, f.from_min + f.lag_min, 0.0)
                for treated in fac.treats:
                    self._level((key[0], treated), f.down_from, f.from_min, 0.0)
        if problems:
            raise ConfigError("\n".join(problems))
        #: stacks whose load a fault changes, and facilities whose power one does
        self.faulty_stacks = frozenset(s for s, _ in self._levels)
        self.faulty_facilities = frozenset(
            k for k, fac in self.facilities.items() if k in self._controls or k[0] in self.faulty_stacks
        )

    def _level(self, key: Key, start: int, end: int | None, value: float) -> None:
        self._levels.setdefault(key, []).append(_Window(start, end, value))

    def _control(self, key: Key, start: int, end: int | None, value: float) -> None:
        self._controls.setdefault(key, []).append(_Window(start, end, value))

    # -- minute by minute ------------------------------------------------------------------------
    def level(self, key: Key, minute: int) -> float | None:
        """A production facility's level (share of normal; 0: stopped; None: as modelled)."""
        windows = self._levels.get(key)
        if not windows:
            return None
        active = [w.value for w in windows if w.active(minute)]
        return min(active) if active else None

    def control(self, key: Key, minute: int) -> float | None:
        """A control facility's state (None: as modelled; 0: off; else a fixed power share)."""
        windows = self._controls.get(key)
        if not windows:
            return None
        active = [w.value for w in windows if w.active(minute)]
        return min(active) if active else None

    def producers(self, stack: str) -> list[FacilityProfile]:
        profile = self.profiles.get(stack)
        if profile is None:
            return []
        return [f for f in profile.facilities if f.role is FacilityRole.PRODUCTION]

    def stack_production(self, stack: str, minute: int) -> tuple[tuple[float, float | None], ...]:
        """The stack's producers as ``(normal_kw, level)`` for ``models.stack_load``; empty
        when none of them is changed by a fault (the stack runs as modelled)."""
        if stack not in self.faulty_stacks:
            return ()
        out = tuple((p.normal_kw, self.level((stack, p.id), minute)) for p in self.producers(stack))
        return out if any(level is not None for _, level in out) else ()

    def treated_level(self, stack: str, control: FacilityProfile, minute: int, curve: float) -> float:
        """The production level of what a control facility treats (weighted by normal power)."""
        treated = [self.facilities.get((stack, p)) for p in control.treats]
        weighted = [(p.normal_kw, self.level((stack, p.id), minute)) for p in treated if p is not None]
        if not weighted:
            return curve
        total = sum(w for w, _ in weighted)
        return sum(w * (curve if level is None else level) for w, level in weighted) / total

    def share(self, key: Key, minute: int, curve: float) -> float:
        """The facility's power as a share of its normal (noise-free), with its stack's
        industry curve at ``curve``."""
        fac = self.facilities[key]
        if fac.role is FacilityRole.PRODUCTION:
            level = self.level(key, minute)
            return power_share(fac, curve if level is None else level)
        return power_share(fac, self.treated_level(key[0], fac, minute, curve), self.control(key, minute))
