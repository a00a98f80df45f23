"""Kafka topic names and their specifications, owned in one place.

Automatic topic creation is off on the broker: every topic the system uses is listed here
and created explicitly (``cems topics ensure`` / ``streams.topics.ensure_topics``).
Topic names carry a namespace (``CEMS_TOPIC_NAMESPACE``, default ``cems``) and the contract
version, e.g. ``cems.v1.readings``, so several environments or test runs can share a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CONTRACT_VERSION = "v1"
DEFAULT_NAMESPACE = "cems"
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """A topic's name and the settings it is created with."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Topics:
    readings: TopicSpec
    dead_letters: TopicSpec
    hourly_averages: TopicSpec
    alerts: TopicSpec
    ticks: TopicSpec
    acknowledgements: TopicSpec
    notifications: TopicSpec
    silences: TopicSpec
    emergency: TopicSpec

    def all(self) -> tuple[TopicSpec, ...]:
        return (
            self.readings,
            self.dead_letters,
            self.hourly_averages,
            self.alerts,
            self.ticks,
            self.acknowledgements,
            self.notifications,
            self.silences,
            self.emergency,
        )


def topics(namespace: str = DEFAULT_NAMESPACE) -> Topics:
    prefix = f"{namespace}.{CONTRACT_VERSION}"
    return Topics(
        readings=TopicSpec(
            f"{prefix}.readings",
            6,
            {"retention.ms": str(14 * DAY_MS)},
            "Validated, normalised stack readings keyed by stack id",
        ),
        dead_letters=TopicSpec(
            f"{prefix}.dead-letters",
            1,
            {"retention.ms": str(90 * DAY_MS)},
            "Refused input with its reason code, kept for audit",
        ),
        hourly_averages=TopicSpec(
            f"{prefix}.hourly-averages",
            6,
            {"retention.ms": str(400 * DAY_MS)},
            "Closed hourly averages per stack and parameter, with validity",
        ),
        alerts=TopicSpec(
            f"{prefix}.alerts",
            6,
            {"retention.ms": str(400 * DAY_MS)},
            "Alert lifecycle events (opened, updated, resolved) keyed by stack id",
        ),
        ticks=TopicSpec(
            f"{prefix}.ticks",
            6,
            {"retention.ms": str(DAY_MS)},
            "Watermark ticks per stack, co-partitioned with readings: close hours, find silence",
        ),
        acknowledgements=TopicSpec(
            f"{prefix}.acknowledgements",
            6,
            {"retention.ms": str(400 * DAY_MS)},
            "Officers' acknowledgements of alerts keyed by stack id, co-partitioned with readings",
        ),
        notifications=TopicSpec(
            f"{prefix}.notifications",
            1,
            {"retention.ms": str(400 * DAY_MS)},
            "The notifier's delivery log: each notice sent, failed or held back, to whom, when; its memory",
        ),
        silences=TopicSpec(
            f"{prefix}.silences",
            1,
            {"cleanup.policy": "compact"},
            "Silences for planned work keyed by silence id (latest version of each)",
        ),
        emergency=TopicSpec(
            f"{prefix}.emergency",
            6,
            {"cleanup.policy": "compact"},
            "Declared emergency responses keyed by response id, each revision on every partition "
            "(co-partitioned with readings: every worker applies it to its stacks)",
        ),
    )


DEFAULT_TOPICS = topics()
ALL_TOPICS: tuple[TopicSpec, ...] = DEFAULT_TOPICS.all()
