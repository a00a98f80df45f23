"""The Faust stream processor around the pure rules.

One agent consumes the readings topic (keyed by stack id), the co-partitioned ticks topic,
the acknowledgements and the declared emergency responses (each written to every partition),
keeps each stack's rule state in a Faust table with a changelog (``streams.codec``'s
versioned format), and produces alert events and hourly averages keyed
by stack, and dead letters for what it cannot use (``streams.processor``, the failure
policy). A leader timer sends one tick to every ticks partition each ``tick_interval_s``; the
worker holding the partition ticks each of the partition's stacks: ticks travel through
Kafka like readings, so hours close and silence is found from the watermark
(``rules.watermark``) even when a stack sends nothing at all.

Processing is exactly-once (Kafka transactions): the consumed offsets, the table's
changelog and the produced alerts commit together, so a worker killed at any point and
restarted neither loses nor repeats an alert. Consumers of the output topics read with
``isolation.level=read_committed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import faust
from confluent_kafka import Producer

from contracts.registry import load_registry
from contracts.topics import topics
from rules.engine import DetectionEngine
from rules.watermark import Watermark

from . import worker_metrics as metrics
from .engine import load_engine
from .processor import BatchProcessor, BatchResult, Kind, Record, stacks_by_partition
from .settings import StreamSettings

log = logging.getLogger("cems.worker")


@contextlib.asynccontextmanager
async def commits_held(consumer: Any) -> AsyncIterator[None]:
    """No offset commit while a batch is written out.

    Faust commits the acknowledged offsets on a timer, together with whatever the transactions
    hold by then. A batch's events are acknowledged only after it is written out, so a commit
    in the middle would store part of its state changes and outputs with offsets from before
    it: after a crash the batch would run again on states that already hold it (its readings
    then late). A commit that comes meanwhile waits for this one's future, as for another
    commit in progress, and the next one takes the whole batch."""
    await consumer.maybe_wait_for_commit_to_finish()
    held = consumer._commit_fut = asyncio.get_running_loop().create_future()
    try:
        yield
    finally:
        consumer._commit_fut = None
        held.set_result(None)


def create_app(settings: StreamSettings, engine: DetectionEngine | None = None) -> faust.App:
    engine = engine or load_engine(load_registry(settings.registry), settings.rules_file, settings.catalogue_file)
    topic_set = topics(settings.topic_namespace)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",
        datadir=str(settings.worker_data_dir),
        processing_guarantee="exactly_once",
        topic_partitions=topic_set.readings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,  # Faust creates its own changelog topic; ours exist already
        web_enabled=False,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        table_cleanup_interval=3600,
        # a killed worker's partitions move to its replacement within seconds, not a minute
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        key_serializer="raw",
        value_serializer="raw",
        # a backlog is read in large fetches and produced in large requests
        consumer_max_fetch_size=4 * 1024 * 1024,
        stream_buffer_maxsize=16384,
        producer_linger=0.005,
        producer_max_batch_size=256 * 1024,
    )
    source = app.topic(
        topic_set.readings.name,
        topic_set.ticks.name,
        topic_set.acknowledgements.name,
        topic_set.emergency.name,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,
    )
    alerts = app.topic(topic_set.alerts.name, key_serializer="raw", value_serializer="raw")
    hourly = app.topic(topic_set.hourly_averages.name, key_serializer="raw", value_serializer="raw")
    states = app.Table(
        "stack-state",
        default=None,
        partitions=topic_set.readings.partitions,
        key_type=bytes,
        value_type=bytes,
        use_partitioner=True,
    )
    watermark = Watermark(settings.watermark == "live", settings.watermark_idle_s)
    held = stacks_by_partition(list(engine.profiles), topic_set.readings.partitions)
    processor = BatchProcessor(engine, watermark, held, arrival=time.monotonic)
    source_topic = topic_set.readings.name
    kinds = {
        topic_set.readings.name: Kind.READING,
        topic_set.ticks.name: Kind.TICK,
        topic_set.acknowledgements.name: Kind.ACKNOWLEDGEMENT,
        topic_set.emergency.name: Kind.RESPONSE,
    }

    def stored(stack: str) -> bytes | None:
        raw: bytes | None = states.get(stack.encode())
        return raw

    @app.on_partitions_assigned.connect
    async def read_again(sender: Any, assigned: Any, **kwargs: Any) -> None:
        # After a rebalance every partition is read again from its committed offset: event
        # times seen beyond it must not make its next records late; states come from the table.
        watermark.forget()
        processor.cache.clear()

    @app.agent(source, name="detect")
    async def detect(stream: Any) -> None:
        # Batches: each stack's state is written back once per batch (and only if it changed),
        # not once per record. The table places each key's changelog record by its own
        # partition (use_partitioner), since a batch spans them.
        async for events in stream.take_events(settings.worker_batch_size, within=settings.worker_batch_wait_s):
            started = time.perf_counter()
            records = [
                Record(kinds[e.message.topic], e.message.topic, e.message.partition, e.message.offset, e.key, e.value)
                for e in events
            ]
            result = processor.process(records, stored)
            async with commits_held(app.consumer):
                await write_out(result)
            metrics.observe_batch(result, time.perf_counter() - started, watermark.now(time.monotonic()))
            last: dict[Any, int] = {}
            for e in events:
                last[e.message.tp] = e.message.offset
            for tp, offset in last.items():
                highwater = app.consumer.highwater(tp)
                if highwater is not None:
                    metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - offset - 1))

    async def write_out(result: BatchResult) -> None:
        """The batch's states, outputs and dead letters, into the open transactions."""
        for stack, raw in result.writes.items():
            states[stack.encode()] = raw
        for stack, outs in result.outputs.items():
            key = stack.encode()
            for out in outs:
                for event in out.events:
                    await alerts.send(key=key, value=event.model_dump_json().encode())
                    metrics.ALERT_EVENTS.labels(event.kind.value, event.event.value).inc()
                for avg in out.hourly:
                    await hourly.send(key=key, value=avg.model_dump_json().encode())
                metrics.HOURLY_AVERAGES.inc(len(out.hourly))
        for partition, letter in result.dead_letters:
            # in the transaction of the partition the record came from, like its offset
            await app.consumer.transactions.producer.send(
                topic_set.dead_letters.name,
                (letter.stack or letter.origin).encode(),
                letter.model_dump_json().encode(),
                0,
                None,
                None,
                transactional_id=f"{app.conf.id}-{app.assignor.group_for_topic(source_topic)}-{partition}",
            )
            metrics.DEAD_LETTERS.labels(letter.reason.value).inc()
        # The table's changelog records wait in Faust's producer buffer: hand them to the
        # transaction now, while this batch's events are unacknowledged, so a rebalance (which
        # waits for the agent, then ends the transactions) never finds one still pending.
        await app.producer.buffer.flush()

    # Ticks go out through a plain (non-transactional) producer: sent from a timer, outside
    # any consumed event, they would otherwise wait in an open transaction unseen.
    tick_producer = Producer(
        {"bootstrap.servers": settings.bootstrap, "partitioner": "murmur2_random", "linger.ms": 5, "acks": "all"}
    )

    # Faust puts a record into the consumed partition's transaction only when its consumer
    # knows the output topic; consuming the outputs (and doing nothing with them) makes the
    # alerts and hourly averages commit atomically with the readings' offsets and the table.
    outputs = app.topic(
        topic_set.alerts.name, topic_set.hourly_averages.name, key_serializer="raw", value_serializer="raw"
    )

    @app.agent(outputs, name="outputs-in-transaction")
    async def follow_outputs(stream: Any) -> None:
        async for _ in stream:
            pass

    @app.timer(interval=settings.tick_interval_s, on_leader=True)
    async def send_ticks() -> None:
        # one tick per partition: the worker holding the partition ticks each of its stacks
        value = json.dumps({"wall_time": datetime.now(UTC).isoformat()}).encode()
        for partition in range(topic_set.ticks.partitions):
            tick_producer.produce(topic_set.ticks.name, partition=partition, value=value)
        tick_producer.poll(0)
        remaining = tick_producer.flush(5)
        if remaining:
            log.warning("%d ticks not yet confirmed by Kafka", remaining)

    @app.timer(interval=30.0)
    async def report() -> None:
        metrics.STATE_BYTES.set(processor.state_bytes())
        metrics.STACKS_HELD.set(len(processor.cache))
        log.info("worker progress: %s, watermark %s", metrics.totals(), watermark.now(time.monotonic()))

    return app
