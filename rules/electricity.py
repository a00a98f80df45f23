"""Electricity use of production and pollution-control facilities (分表计电). Pure.

Each metered facility's power arrives in its stack's minutes as ``<facility>/power``
(``rules.config.meter_key``); a facility runs in a minute when its mean power is at or above
its ``running_kw``.
"""

from __future__ import annotations

from contracts.alerts import AlertEvent

from .config import RuleSettings, StackProfile
from .state import Minute, StackState


def on_minute_closed(
    state: StackState, profile: StackProfile, settings: RuleSettings, minute: int, minutes: dict[str, Minute]
) -> list[AlertEvent]:
    return []  # being written


def check_meters(state: StackState, profile: StackProfile, settings: RuleSettings, now: int) -> list[AlertEvent]:
    return []  # being written
