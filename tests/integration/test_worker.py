"""The detection worker against real Kafka: where ticks go, and bad records that never stop it.

A real `cems worker` (Faust, exactly once) reads readings one stack sends for 70 minutes, with
a cut-short record, a record keyed as another stack, and a reading that comes after its
minute was judged mixed in. It must dead-letter exactly those three with their reasons, keep
running, close the stack's hour, and count all of it on its /metrics endpoint.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer

from cems.infra.settings import InfraSettings
from cems.topics import ensure_topics
from contracts.parameters import PARAMETERS
from contracts.reading import DataKind, Measurement, Reading, Source
from contracts.registry import load_registry
from contracts.topics import topics
from rules.replay import ReplayDriver
from streams.engine import load_engine
from streams.processor import stacks_by_partition

from .helpers import CemsProcess, consume_all, free_port, infra_env, prometheus_samples

pytestmark = pytest.mark.integration

STACK = "jy-power-1-s1"
VALUES = {"flow": 100.0, "temperature": 50.0, "pressure": 0.3, "humidity": 10.0, "o2": 6.0, "so2": 20.0,
          "nox": 30.0, "pm": 4.0, "nh3": 1.0, "load": 90.0, "bypass_damper": 0.0}  # fmt: skip


def test_ticks_reach_the_partition_kafka_puts_each_stack_on(infra: InfraSettings, unique: str) -> None:
    topic = topics(f"tp{unique}").readings
    ensure_topics(infra.kafka_bootstrap, [topic])
    stacks = [s.id for _, s in load_registry().stacks()]
    placed: dict[str, int] = {}
    producer = Producer({"bootstrap.servers": infra.kafka_bootstrap, "partitioner": "murmur2_random"})

    def delivered(err: object, msg: object) -> None:
        assert err is None
        placed[msg.key().decode()] = msg.partition()  # type: ignore[attr-defined]

    for stack in stacks:
        producer.produce(topic.name, key=stack.encode(), value=b"{}", on_delivery=delivered)
    producer.flush(30)
    expected = {s: p for p, ss in stacks_by_partition(stacks, topic.partitions).items() for s in ss}
    assert placed == expected
    assert len(set(placed.values())) > 1  # the sample fleet spreads over several partitions


def reading(t: datetime) -> Reading:
    registry = load_registry()
    ent, stack = registry.stack_index()[STACK]
    return Reading(
        enterprise=ent.id, stack=STACK, mn=stack.devices[0].mn, event_time=t, kind=DataKind.REALTIME,
        values={p: Measurement(value=v, unit=PARAMETERS[p].unit) for p, v in VALUES.items()},
        source=Source.MQTT_JSON, received_at=t,
    )  # fmt: skip


def metric(samples: dict[str, float], prefix: str) -> float:
    """The sum of the samples whose ``name{labels}`` starts with ``prefix``."""
    values = [v for k, v in samples.items() if k.startswith(prefix)]
    assert values, f"{prefix} not in the metrics"
    return sum(values)


def test_bad_records_go_to_dead_letters_and_the_worker_carries_on(
    infra: InfraSettings, unique: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    ns = f"wk{unique}"
    topic_set = topics(ns)
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    port = free_port()
    worker = CemsProcess(
        ["worker", "--namespace", ns, "--app-id", f"detect-{unique}", "--watermark", "event",
         "--metrics-port", str(port)],
        tmp_path / "worker.log", b"[^Worker]: Ready", {**infra_env(infra), "CEMS_TICK_INTERVAL_S": "1"},
    )  # fmt: skip
    request.addfinalizer(worker.stop)
    worker.start()
    producer = Producer({"bootstrap.servers": infra.kafka_bootstrap, "partitioner": "murmur2_random"})
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    key = STACK.encode()

    def send(value: bytes, k: bytes = key) -> None:
        producer.produce(topic_set.readings.name, key=k, value=value)

    for minute in range(75):
        send(reading(t0 + timedelta(minutes=minute, seconds=30)).model_dump_json().encode())
        if minute == 20:
            send(b'{"schema_version": 1, "stack": "jy-power-1-s1", "val')  # cut short
            send(reading(t0 + timedelta(minutes=20, seconds=40)).model_dump_json().encode(), b"jy-power-2-s1")
        if minute == 40:  # minute 2 was judged half an hour of event time ago
            send(reading(t0 + timedelta(minutes=2, seconds=10)).model_dump_json().encode())
    producer.flush(30)

    hourly = consume_all(infra.kafka_bootstrap, topic_set.hourly_averages.name, expect=len(VALUES), timeout_s=60)
    assert {h["parameter"] for h in hourly} == set(VALUES)
    assert {h["hour_start"] for h in hourly} == {t0.isoformat().replace("+00:00", "Z")}
    letters = consume_all(infra.kafka_bootstrap, topic_set.dead_letters.name, expect=3, timeout_s=30)
    assert sorted(d["reason"] for d in letters) == ["key_mismatch", "late", "malformed_json"], worker.tail()
    assert all(d["origin"].startswith(f"kafka:{topic_set.readings.name}/") for d in letters)
    assert worker.proc is not None and worker.proc.poll() is None  # still running

    deadline = time.monotonic() + 30
    while True:  # the counters follow the batches
        text = prometheus_samples(port)
        if metric(text, 'cems_worker_records_total{kind="reading"}') >= 76 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert metric(text, 'cems_worker_records_total{kind="reading"}') == 76  # 75 + the late one
    assert metric(text, "cems_worker_late_readings_total") == 1
    assert metric(text, 'cems_worker_dead_letters_total{reason="malformed_json"}') == 1
    assert metric(text, 'cems_worker_dead_letters_total{reason="key_mismatch"}') == 1
    assert metric(text, "cems_worker_hourly_averages_total") == len(VALUES)
    assert metric(text, "cems_worker_watermark_seconds") >= (t0 + timedelta(minutes=74)).timestamp()
    assert metric(text, "cems_worker_consumer_lag{") == 0


def test_a_second_worker_takes_half_the_partitions_with_their_state(
    infra: InfraSettings, unique: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Scale-out: worker B joins while A is mid-stream; the partitions B takes come with their
    stacks' states (from the table's changelog), so every hour of every stack is averaged once,
    from all its minutes, exactly as the pure rules compute it."""
    ns = f"wk2{unique}"
    topic_set = topics(ns)
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    registry = load_registry()
    env = {**infra_env(infra), "CEMS_TICK_INTERVAL_S": "1"}
    args = ["worker", "--namespace", ns, "--app-id", f"detect-{unique}", "--watermark", "event"]
    workers = [CemsProcess(args, tmp_path / f"worker-{name}.log", b"[^Worker]: Ready", env) for name in "ab"]
    for w in workers:
        request.addfinalizer(w.stop)
    producer = Producer({"bootstrap.servers": infra.kafka_bootstrap, "partitioner": "murmur2_random", "linger.ms": 5})
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
    sent: list[Reading] = []

    def publish(minutes: range) -> None:
        for minute in minutes:
            t = t0 + timedelta(minutes=minute, seconds=30)
            for ent, stack in registry.stacks():
                r = Reading(
                    enterprise=ent.id, stack=stack.id, mn=stack.devices[0].mn, event_time=t, kind=DataKind.REALTIME,
                    values={p: Measurement(value=10.0 + minute % 7, unit=PARAMETERS[p].unit) for p in stack.parameters},
                    source=Source.MQTT_JSON, received_at=t,
                )  # fmt: skip
                sent.append(r)
                producer.produce(topic_set.readings.name, key=stack.id.encode(), value=r.model_dump_json().encode())
        producer.flush(30)

    workers[0].start()
    publish(range(0, 90))
    deadline = time.monotonic() + 60
    while not consume_all(infra.kafka_bootstrap, topic_set.hourly_averages.name, expect=0, timeout_s=5, settle_s=0.2):
        assert time.monotonic() < deadline, workers[0].tail()
    workers[1].start()  # a rebalance, with hour 1 half done on every stack
    publish(range(90, 130))
    expected = ReplayDriver(load_engine(registry)).feed_all(sent).result.hourly
    assert len(expected) > 2 * 24  # hours 0 and 1 closed for every stack
    got = consume_all(infra.kafka_bootstrap, topic_set.hourly_averages.name, expect=len(expected), timeout_s=90)
    for w in workers:
        assert w.proc is not None and w.proc.poll() is None, w.tail()
    as_key = lambda h: (h["stack"], h["parameter"], h["hour_start"], h["valid_minutes"], round(h["mean"], 6))  # noqa: E731
    assert Counter(as_key(h) for h in got) == Counter(as_key(json.loads(h.model_dump_json())) for h in expected)
