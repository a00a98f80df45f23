"""The MQTT topic grammar, owned in one place.

Devices publish under ``cems/v1/{enterprise}/{stack}/{channel}``:

- ``reading``: a JSON reading (``DeviceReading``);
- ``hj212``: an HJ 212-2017 packet;

and the platform publishes to the device:

- ``ack``: HJ 212 answers (9014) to packets that asked for one;
- ``cmd``: commands, such as a request for the history of a period (backfill).

An enterprise account (named after its enterprise id) may publish only the two device
channels under its own prefix and subscribe only to ``ack`` and ``cmd`` under it; only the
platform account reads readings (``cems.infra.mosquitto`` turns this into broker roles).
"""

from __future__ import annotations

ROOT = "cems/v1"
JSON_CHANNEL = "reading"
HJ212_CHANNEL = "hj212"
ACK_CHANNEL = "ack"
CMD_CHANNEL = "cmd"
#: what devices publish
DEVICE_CHANNELS = (JSON_CHANNEL, HJ212_CHANNEL)
#: what devices may subscribe to
PLATFORM_CHANNELS = (ACK_CHANNEL, CMD_CHANNEL)


def topic(enterprise: str, stack: str, channel: str) -> str:
    return f"{ROOT}/{enterprise}/{stack}/{channel}"


def device_filters(enterprise: str = "+") -> list[str]:
    """Filters for everything devices publish (of one enterprise, or of all with ``+``)."""
    return [topic(enterprise, "+", channel) for channel in DEVICE_CHANNELS]


def platform_filters(enterprise: str) -> list[str]:
    """Filters for what the platform sends one enterprise's devices (answers, commands)."""
    return [topic(enterprise, "+", channel) for channel in PLATFORM_CHANNELS]


def sibling(device_topic: str, channel: str) -> str:
    """``cems/v1/{enterprise}/{stack}/hj212`` -> ``cems/v1/{enterprise}/{stack}/{channel}``."""
    return device_topic.rsplit("/", 1)[0] + "/" + channel
