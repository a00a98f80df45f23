"""Which routes an alert takes, and the labels it is matched on. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.alerts import AlertEvent
from contracts.registry import Registry

from .config import Route, RoutingConfig


@dataclass(frozen=True)
class StackInfo:
    """What a message says about where an alert is, from the registry."""

    enterprise_name: str
    stack_name: str
    district: str
    industry: str


Directory = dict[str, StackInfo]


def directory(registry: Registry) -> Directory:
    return {
        stack.id: StackInfo(enterprise.name, stack.name, enterprise.district, enterprise.industry.value)
        for enterprise, stack in registry.stacks()
    }


def labels(event: AlertEvent, places: Directory) -> dict[str, str]:
    """The labels routes and silences match: kind, severity, district, industry, enterprise,
    stack, parameter (empty when the alert has none or the stack is not in the registry)."""
    info = places.get(event.stack)
    return {
        "kind": event.kind.value,
        "severity": event.severity.value,
        "district": info.district if info else "",
        "industry": info.industry if info else "",
        "enterprise": event.enterprise,
        "stack": event.stack,
        "parameter": event.parameter or "",
    }


def routes_for(config: RoutingConfig, alert_labels: dict[str, str]) -> tuple[Route, ...]:
    """The routes that take an alert: the first that matches, and the ones after it while
    the matching routes say ``continue``."""
    taken: list[Route] = []
    for route in config.routes:
        if route.matches(alert_labels):
            taken.append(route)
            if not route.continue_:
                break
    return tuple(taken)
