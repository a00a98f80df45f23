"""Who an MN is: a device (数采仪) of a stack, or the electricity meter of a facility. Pure.

Both kinds send through the same topics, validation, duplicate memory and dead letters; a
``Sender`` holds what differs between them, so that the gateway asks it instead of asking
which kind it is:

===================  ===================================  ==========================================
                     a stack's device                     a facility's meter
===================  ===================================  ==========================================
topic level          the stack id                         the facility id
Kafka key (stack)    its stack                            the stack its facility exhausts to
parameters           the stack's (no meter parameters)    ``power``, ``current``, ``energy`` only
default units        the stack's ``parameters``           the meter's ``parameters``
reporting interval   the stack's ``reporting_interval_s`` the meter's own ``reporting_interval_s``
===================  ===================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contracts.parameters import METER_PARAMETERS, Unit
from contracts.registry import Device, Enterprise, Facility, Registry, Stack


@dataclass(frozen=True)
class Sender:
    """A registered MN: its enterprise, the stack its readings are keyed by, its device
    entry (a ``Meter`` is a ``Device``) and, for a meter, its facility."""

    enterprise: Enterprise
    stack: Stack
    device: Device
    facility: Facility | None = None

    @property
    def mn(self) -> str:
        return self.device.mn

    @property
    def topic_level(self) -> str:
        """The level after the enterprise in its topics: ``cems/v1/<enterprise>/<level>/...``."""
        return self.stack.id if self.facility is None else self.facility.id

    @property
    def facility_id(self) -> str | None:
        return None if self.facility is None else self.facility.id

    @property
    def parameters(self) -> Mapping[str, Unit]:
        """Parameter -> the unit it is sent in when a value names none."""
        return self.stack.parameters if self.facility is None else self.facility.meter.parameters

    @property
    def reporting_interval_s(self) -> int:
        return self.stack.reporting_interval_s if self.facility is None else self.facility.meter.reporting_interval_s

    def describe(self) -> str:
        if self.facility is None:
            return f"a device of stack {self.enterprise.id}/{self.stack.id}"
        return f"the electricity meter of facility {self.enterprise.id}/{self.facility.id}"

    def refuses_parameter(self, name: str) -> str | None:
        """Why this sender may not report parameter ``name`` (a known one), or None."""
        meter_parameter = name in METER_PARAMETERS
        if self.facility is None and meter_parameter:
            return (
                f"{name} is an electricity meter's parameter: MN {self.mn} is {self.describe()}, "
                "not a meter (a facility's meter publishes on cems/v1/<enterprise>/<facility>/...)"
            )
        if self.facility is not None and not meter_parameter:
            reports = ", ".join(sorted(METER_PARAMETERS))
            return f"{name} is not a meter parameter: MN {self.mn} is {self.describe()}, which reports {reports}"
        return None

    def where(self) -> dict[str, str]:
        """The fields a refusal of this sender's input carries (its readings' key)."""
        return {"enterprise": self.enterprise.id, "stack": self.stack.id, "mn": self.mn}


def sender_index(registry: Registry) -> dict[str, Sender]:
    """Every registered MN, stack devices and meters (MNs are unique across both)."""
    senders = {mn: Sender(e, s, d) for mn, (e, s, d) in registry.device_index().items()}
    senders.update({mn: Sender(e, s, f.meter, f) for mn, (e, f, s) in registry.meter_index().items()})
    return senders


def topic_stacks(registry: Registry) -> dict[tuple[str, str], str]:
    """(enterprise, topic level) -> the stack input on that topic is keyed by: a stack's own
    id, a facility's the stack it exhausts to."""
    out = {(e.id, s.id): s.id for e, s in registry.stacks()}
    out.update({(e.id, f.id): f.stack for e, f in registry.facilities()})
    return out
