"""Kafka 4 in KRaft mode: explicit topic creation, kafka-python and aiokafka, resumed offsets."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import UnknownTopicOrPartitionError

from cems.infra.settings import InfraSettings
from cems.topics import ensure_topics
from contracts.topics import ALL_TOPICS, TopicSpec

pytestmark = pytest.mark.integration


def _topic(unique: str, partitions: int = 3) -> TopicSpec:
    return TopicSpec(name=f"test.{unique}", partitions=partitions, config={"retention.ms": "3600000"})


def test_project_topics_are_created_with_their_partitions(infra: InfraSettings) -> None:
    ensure_topics(infra.kafka_bootstrap)
    assert ensure_topics(infra.kafka_bootstrap) == []  # idempotent
    admin = KafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    try:
        described = {t["name"]: t for t in admin.describe_topics([s.name for s in ALL_TOPICS])}
    finally:
        admin.close()
    for spec in ALL_TOPICS:
        assert len(described[spec.name]["partitions"]) == spec.partitions, spec.name


def test_automatic_topic_creation_is_off(infra: InfraSettings, unique: str) -> None:
    producer = KafkaProducer(bootstrap_servers=infra.kafka_bootstrap, max_block_ms=3000)
    try:
        with pytest.raises(Exception) as info:
            producer.send(f"never-created.{unique}", b"x").get(timeout=5)
        assert "never-created" in str(info.value) or "Timeout" in type(info.value).__name__
    finally:
        producer.close()
    admin = KafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    try:
        assert f"never-created.{unique}" not in admin.list_topics()
        (described,) = admin.describe_topics([f"never-created.{unique}"])
        assert described["error_code"] == UnknownTopicOrPartitionError.errno
    finally:
        admin.close()


def test_kafka_python_produce_consume_and_resume_committed_offsets(infra: InfraSettings, unique: str) -> None:
    spec = _topic(unique, partitions=1)
    assert ensure_topics(infra.kafka_bootstrap, [spec]) == [spec.name]
    producer = KafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all", enable_idempotence=True)
    for i in range(10):
        producer.send(spec.name, key=b"stack-1", value=f"m{i}".encode())
    producer.flush()
    producer.close()

    def consumer() -> KafkaConsumer:
        return KafkaConsumer(
            spec.name,
            bootstrap_servers=infra.kafka_bootstrap,
            group_id=f"g-{unique}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=10000,
        )

    first = consumer()
    got: list[bytes] = []
    for msg in first:
        got.append(msg.value)
        if len(got) == 4:
            break
    first.commit()
    first.close()
    assert got == [f"m{i}".encode() for i in range(4)]

    second = consumer()  # a restarted consumer in the same group resumes after the commit
    rest: list[bytes] = []
    for msg in second:
        rest.append(msg.value)
        if len(rest) == 6:
            break
    committed = second.committed(TopicPartition(spec.name, 0))
    second.close()
    assert rest == [f"m{i}".encode() for i in range(4, 10)]
    assert committed == 4


def test_aiokafka_round_trip_keyed_by_stack(infra: InfraSettings, unique: str) -> None:
    spec = _topic(unique, partitions=3)
    ensure_topics(infra.kafka_bootstrap, [spec])

    async def run() -> dict[bytes, set[int]]:
        producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for i in range(30):
                await producer.send_and_wait(spec.name, key=f"stack-{i % 5}".encode(), value=str(i).encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            spec.name,
            bootstrap_servers=infra.kafka_bootstrap,
            group_id=f"a-{unique}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        partitions_by_key: dict[bytes, set[int]] = {}
        values: list[int] = []
        try:
            while len(values) < 30:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), timeout=20)
                for tp, msgs in batch.items():
                    for m in msgs:
                        partitions_by_key.setdefault(m.key, set()).add(tp.partition)
                        values.append(int(m.value))
        finally:
            await consumer.stop()
        assert sorted(values) == list(range(30))
        return partitions_by_key

    by_key = asyncio.run(run())
    assert len(by_key) == 5
    # keyed by stack: every record of one stack lands in one partition, so its order holds
    assert all(len(parts) == 1 for parts in by_key.values())
