"""Heavy-pollution emergency response, checked from data. Pure."""

from __future__ import annotations

from contracts.alerts import AlertEvent, HourlyAverage
from contracts.emergency import EmergencyResponse

from .config import RuleSettings, StackProfile
from .state import StackState


def on_response(
    state: StackState, profile: StackProfile, settings: RuleSettings, response: EmergencyResponse
) -> list[AlertEvent]:
    return []  # being written


def on_hour_closed(
    state: StackState, profile: StackProfile, settings: RuleSettings, hour: int, averages: dict[str, HourlyAverage]
) -> list[AlertEvent]:
    return []  # being written
