"""The Faust stream processor around the pure rules.

One agent consumes the readings topic and the co-partitioned ticks topic (both keyed by
stack id), keeps each stack's rule state in a Faust table with a changelog, and produces
alert events and hourly averages keyed by stack. A leader timer sends a tick for every
registry stack each ``tick_interval_s``: ticks travel through Kafka like readings, so hours
close and silence is found from the watermark even when a stack sends nothing at all.

Processing is exactly-once (Kafka transactions): the consumed offsets, the table's
changelog and the produced alerts commit together, so a worker killed at any point and
restarted neither loses nor repeats an alert. Consumers of the output topics read with
``isolation.level=read_committed``.
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from datetime import UTC, datetime
from typing import Any

import faust
from confluent_kafka import Producer

from contracts.alerts import Acknowledgement
from contracts.reading import Reading
from contracts.registry import load_registry
from contracts.topics import topics
from rules.engine import DetectionEngine, Output
from rules.state import StackState

from .engine import load_engine
from .settings import StreamSettings

log = logging.getLogger("cems.worker")


class Watermark:
    """The worker's event-time "now".

    Each readings partition advances at its own pace (a consumer fetches partitions in
    batches), so now is the *minimum* over partitions of the latest event time each has
    delivered, ignoring partitions idle for ``idle_s`` of wall time (a partition holding only
    a silent stack must not stop the clock). When every partition is idle, live mode takes
    the wall clock, so total silence is noticed; while data flows its event time rules, so a
    backfill of the recent past is judged as it happened.
    """

    def __init__(self, live: bool, idle_s: float) -> None:
        self.live = live
        self.idle_s = idle_s
        self.latest: dict[int, datetime] = {}
        self.arrived: dict[int, float] = {}

    def observe(self, partition: int, event_time: datetime, arrival_s: float) -> None:
        current = self.latest.get(partition)
        if current is None or event_time > current:
            self.latest[partition] = event_time
        self.arrived[partition] = arrival_s

    def now(self, arrival_s: float, wall: datetime | None = None) -> datetime | None:
        active = [t for p, t in self.latest.items() if arrival_s - self.arrived[p] <= self.idle_s]
        if active:
            return min(active)  # data is flowing: its event time is the clock (also for backfills)
        latest = max(self.latest.values(), default=None)
        if self.live and wall is not None:
            return wall if latest is None else max(latest, wall)  # total silence: the wall clock
        return latest


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
    )
    source = app.topic(
        topic_set.readings.name,
        topic_set.ticks.name,
        topic_set.acknowledgements.name,
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
    stats: dict[str, int] = {"readings": 0, "ticks": 0, "acknowledgements": 0, "alerts": 0, "hourly": 0}

    def load(stack: str) -> StackState:
        raw = states.get(stack.encode())
        state: StackState = pickle.loads(raw) if raw else engine.new_state(stack)
        return state

    async def publish(stack: str, out: Output) -> None:
        key = stack.encode()
        for event in out.events:
            await alerts.send(key=key, value=event.model_dump_json().encode())
        for avg in out.hourly:
            await hourly.send(key=key, value=avg.model_dump_json().encode())
        stats["alerts"] += len(out.events)
        stats["hourly"] += len(out.hourly)

    @app.agent(source, name="detect")
    async def detect(stream: Any) -> None:
        # Batches: each stack's state is loaded and written back once per batch, not once per
        # reading (the table's changelog carries whole states). The table places each key's
        # changelog record by its own partition (use_partitioner), since a batch spans them.
        async for events in stream.take_events(settings.worker_batch_size, within=settings.worker_batch_wait_s):
            batch: dict[str, StackState] = {}
            outputs: list[tuple[str, Output]] = []
            for event in events:
                stack = event.key.decode()
                if stack not in engine.profiles:
                    continue
                if event.message.topic == topic_set.acknowledgements.name:
                    ack = Acknowledgement.model_validate_json(event.value)
                    state = batch.get(stack) or load(stack)
                    at = watermark.now(time.monotonic()) or ack.at
                    out = Output(events=engine.acknowledge(state, ack.alert_id, ack.officer, at, ack.note))
                    stats["acknowledgements"] += 1
                elif event.message.topic == topic_set.ticks.name:
                    tick = json.loads(event.value)
                    now = watermark.now(time.monotonic(), datetime.fromisoformat(tick["wall_time"]))
                    if now is None:
                        continue
                    state = batch.get(stack) or load(stack)
                    _, out = engine.tick(state, now)
                    stats["ticks"] += 1
                else:
                    reading = Reading.model_validate_json(event.value)
                    arrival = time.monotonic()
                    watermark.observe(event.message.partition, reading.event_time, arrival)
                    state = batch.get(stack) or load(stack)
                    _, out = engine.evaluate(state, reading, watermark.now(arrival) or reading.event_time)
                    stats["readings"] += 1
                batch[stack] = state
                outputs.append((stack, out))
            for stack, state in batch.items():
                states[stack.encode()] = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
            for stack, out in outputs:
                await publish(stack, out)

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
        value = json.dumps({"wall_time": datetime.now(UTC).isoformat()}).encode()
        for stack in engine.profiles:
            tick_producer.produce(topic_set.ticks.name, key=stack.encode(), value=value)
        tick_producer.poll(0)
        remaining = tick_producer.flush(5)
        if remaining:
            log.warning("%d ticks not yet confirmed by Kafka", remaining)

    @app.timer(interval=30.0)
    async def report() -> None:
        log.info("worker progress: %s, watermark %s", stats, watermark.now(time.monotonic()))

    return app
