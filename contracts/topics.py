"""Kafka topic names and their specifications, owned in one place.

Automatic topic creation is off on the broker: every topic the system uses is listed here
and created explicitly (``cems topics create`` / ``streams.topics.ensure_topics``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CONTRACT_VERSION = "v1"


@dataclass(frozen=True)
class TopicSpec:
    """A topic's name and the settings it is created with."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    description: str = ""


DAY_MS = 24 * 3600 * 1000

READINGS = TopicSpec(
    name=f"cems.{CONTRACT_VERSION}.readings",
    partitions=6,
    config={"retention.ms": str(14 * DAY_MS), "min.insync.replicas": "1"},
    description="Validated, normalised stack readings keyed by stack id",
)
DEAD_LETTERS = TopicSpec(
    name=f"cems.{CONTRACT_VERSION}.dead-letters",
    partitions=1,
    config={"retention.ms": str(90 * DAY_MS)},
    description="Refused input with its reason code, kept for audit",
)
HOURLY_AVERAGES = TopicSpec(
    name=f"cems.{CONTRACT_VERSION}.hourly-averages",
    partitions=6,
    config={"retention.ms": str(400 * DAY_MS)},
    description="Closed hourly averages per stack and parameter, with validity",
)
ALERTS = TopicSpec(
    name=f"cems.{CONTRACT_VERSION}.alerts",
    partitions=6,
    config={"retention.ms": str(400 * DAY_MS)},
    description="Alert lifecycle events (opened, updated, resolved) keyed by stack id",
)

ALL_TOPICS: tuple[TopicSpec, ...] = (READINGS, DEAD_LETTERS, HOURLY_AVERAGES, ALERTS)
