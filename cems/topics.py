"""Create the project's Kafka topics explicitly (the broker's auto-creation is off)."""

from __future__ import annotations

from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from contracts.errors import InfrastructureError
from contracts.topics import ALL_TOPICS, TopicSpec


def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec] = ALL_TOPICS) -> list[str]:
    """Create each missing topic with its partitions and config; return the names created.

    Existing topics are left as they are (partition counts are never changed silently).
    """
    specs = list(specs)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="cems-topics", request_timeout_ms=15000)
    except KafkaError as exc:
        raise InfrastructureError(f"kafka at {bootstrap} not reachable: {exc}", retryable=True) from exc
    try:
        existing = set(admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        created: list[str] = []
        for spec in missing:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            spec.name, num_partitions=spec.partitions, replication_factor=1, topic_configs=spec.config
                        )
                    ]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another process
        return created
    except KafkaError as exc:
        raise InfrastructureError(f"kafka at {bootstrap}: creating topics failed: {exc}", retryable=True) from exc
    finally:
        admin.close()
