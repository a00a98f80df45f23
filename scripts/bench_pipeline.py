"""The detection stage side by side: each layer of the worker measured on the same records.

    .venv/bin/python scripts/bench_pipeline.py [--hours 12] [--stacks N] [--workers 1,2] [--profile]

Produces --hours of one-minute readings for every stack (the sample registry's 24, or a
generated fleet of --stacks) into a fresh topic namespace, then measures on those records:

1. raw consume: a confluent-kafka consumer reading the bytes, nothing else (the raw limit);
2. + decode: the worker's decoder (``streams.codec.decode_reading``);
3. + engine: decode, the event-time watermark and ``DetectionEngine.evaluate`` in a plain
   loop, states in a dict (no Faust, no state I/O, no output);
4. pure rules: ``ReplayDriver`` over the decoded readings in memory (what ``cems replay`` does);
5. ``cems worker`` with 1 (and 2, ...) processes, each run a fresh consumer group: from the
   start of the processes until their committed offsets cover every reading (exactly once);
   the steady rate counts from the first commit on.

Needs `cems infra up`. Prints each figure and its ratio to the plain loop and to raw consume.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from kafka import KafkaAdminClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_rules import readings  # noqa: E402

from cems.infra.settings import InfraSettings  # noqa: E402
from cems.pyspy import top_frames  # noqa: E402
from cems.topics import ensure_topics  # noqa: E402
from contracts.reading import Reading  # noqa: E402
from contracts.registry import SAMPLE_REGISTRY, Registry, load_registry  # noqa: E402
from contracts.topics import topics  # noqa: E402
from rules.engine import DetectionEngine  # noqa: E402
from rules.replay import ReplayDriver  # noqa: E402
from rules.watermark import Watermark  # noqa: E402
from streams.codec import decode_reading  # noqa: E402
from streams.engine import load_engine  # noqa: E402


@dataclass
class Figure:
    stage: str
    readings: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.readings / self.seconds if self.seconds else 0.0


def consume_all(bootstrap: str, topic: str, expected: int, handle: Callable[[bytes, int], None]) -> float:
    """Read ``expected`` records of ``topic`` from the start, calling ``handle(value, partition)``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.min.bytes": 1,
        }
    )
    consumer.subscribe([topic])
    # wait for the assignment and first fetch outside the timing
    first: list[Message] = []
    while not first:
        first = [m for m in consumer.consume(1, timeout=1.0) if m.error() is None]
    started = time.perf_counter()
    count = 0
    for m in first:
        handle(m.value() or b"", m.partition())
        count += 1
    while count < expected:
        for m in consumer.consume(min(1000, expected - count), timeout=1.0):  # never wait out a short batch
            if m.error() is not None:
                continue
            handle(m.value() or b"", m.partition())
            count += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def plain_loop(engine: DetectionEngine) -> tuple[Callable[[bytes, int], None], list[int]]:
    states = {stack: engine.new_state(stack) for stack in engine.profiles}
    watermark = Watermark(live=False, idle_s=10.0)
    counts = [0, 0]  # alert events, hourly averages

    def handle(value: bytes, partition: int) -> None:
        reading = decode_reading(value)
        arrival = time.monotonic()
        watermark.observe(partition, reading.event_time, arrival)
        _, out = engine.evaluate(
            states[reading.stack], reading, watermark.now_for(partition, arrival) or reading.event_time
        )
        counts[0] += len(out.events)
        counts[1] += len(out.hourly)

    return handle, counts


def committed(admin: KafkaAdminClient, group: str, topic: str) -> int:
    offsets = admin.list_group_offsets(group).get(group, {})
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


def run_workers(
    bootstrap: str, ns: str, registry: Path, processes: int, expected: int, profile: Path | None
) -> tuple[Figure, Figure]:
    app_id = f"{ns}-w{processes}-{uuid.uuid4().hex[:4]}"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CEMS_TICK_INTERVAL_S": "5",
        "CEMS_REGISTRY": str(registry),
        "CEMS_WORKER_DATA_DIR": tempfile.mkdtemp(prefix="bench-worker-"),
    }
    cmd = [sys.executable, "-m", "cems.cli", "worker", "--namespace", ns, "--app-id", app_id]
    cmd += ["--watermark", "event", "--log-level", "warning"]
    logs, procs = [], []
    started = time.perf_counter()
    for i in range(processes):
        log = Path(tempfile.mkstemp(prefix=f"bench-worker-{i}-", suffix=".log")[1])
        logs.append(log)
        argv = cmd
        if profile is not None and i == 0:
            argv = [str(ROOT / ".venv/bin/py-spy"), "record", "-r", "200", "-f", "raw", "-o", str(profile), "--", *cmd]
        procs.append(subprocess.Popen(argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT))
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    first_at: float | None = None
    first_count = 0
    done, last_report = 0, started
    try:
        while done < expected:
            for proc, log in zip(procs, logs, strict=True):
                if proc.poll() is not None:
                    raise SystemExit(f"worker exited {proc.returncode}; log: {log}")
            if time.perf_counter() - started > 1800:
                raise SystemExit(f"timed out at {done} of {expected}; logs: {logs}")
            time.sleep(0.25)
            done = committed(admin, app_id, topics(ns).readings.name)
            if done and first_at is None:
                first_at, first_count = time.perf_counter(), done
            if time.perf_counter() - last_report > 10:
                print(f"  {processes} worker(s): {done:,}/{expected:,} committed", flush=True)
                last_report = time.perf_counter()
        ended = time.perf_counter()
    finally:
        for proc in procs:
            proc.send_signal(2)  # SIGINT: py-spy writes its profile, Faust stops cleanly
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        admin.close()
    assert first_at is not None
    whole = Figure(f"cems worker x{processes}, from start", expected, ended - started, "incl. start-up")
    steady = Figure(
        f"cems worker x{processes}, steady",
        expected - first_count,
        ended - first_at,
        f"start-up {first_at - started:.1f}s",
    )
    return whole, steady


def generated_registry(stacks: int) -> Path:
    """A registry of ``stacks`` stacks: the sample registry's enterprises repeated."""
    import yaml

    raw = yaml.safe_load(SAMPLE_REGISTRY.read_text(encoding="utf-8"))
    base = raw["enterprises"]
    out, n, copy = [], 0, 0
    while n < stacks:
        for ent in base:
            if n >= stacks:
                break
            e = dict(ent, id=f"{ent['id']}-{copy}", name=f"{ent['name']} {copy}")
            e_stacks = []
            for s in ent["stacks"]:
                if n >= stacks:
                    break
                devices = [dict(d, mn=f"BENCH{n:08d}D{i}") for i, d in enumerate(s["devices"])]
                e_stacks.append(dict(s, id=f"{s['id']}-{copy}", devices=devices))
                n += 1
            e["stacks"] = e_stacks
            out.append(e)
        copy += 1
    path = Path(tempfile.mkstemp(prefix="bench-registry-", suffix=".yaml")[1])
    path.write_text(yaml.safe_dump({**raw, "enterprises": out}, allow_unicode=True), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=12)
    parser.add_argument("--stacks", type=int, default=0, help="a generated fleet of this many stacks (0: sample)")
    parser.add_argument("--workers", default="1,2", help="worker process counts to run, e.g. 1,2 ('' = none)")
    parser.add_argument("--profile", action="store_true", help="py-spy the first worker of each run")
    parser.add_argument("--workers-only", action="store_true", help="skip stages 1-4 (a catch-up measurement)")
    parser.add_argument("--namespace", help="measure the readings an earlier run left in this namespace")
    args = parser.parse_args()
    infra = InfraSettings()
    registry_path = generated_registry(args.stacks) if args.stacks else SAMPLE_REGISTRY
    registry: Registry = load_registry(registry_path)
    ns = args.namespace or f"pb{uuid.uuid4().hex[:8]}"
    topic_set = topics(ns)
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    n = produce(infra.kafka_bootstrap, topic_set.readings.name, args.hours, registry) if not args.namespace else 0
    if args.namespace:
        n = topic_size(infra.kafka_bootstrap, topic_set.readings.name)
    print(f"{n:,} readings ({len(list(registry.stacks()))} stacks x {args.hours} h) in {ns}", flush=True)

    figures: list[Figure] = []
    if not args.workers_only:
        figures += in_process_stages(infra.kafka_bootstrap, topic_set.readings.name, n, registry)
    for processes in [int(p) for p in args.workers.split(",") if p.strip()]:
        profile = None
        if args.profile:
            profile = Path(tempfile.mkstemp(prefix=f"bench-worker-x{processes}-", suffix=".txt")[1])
        figures += run_workers(infra.kafka_bootstrap, ns, registry_path, processes, n, profile)
        if profile is not None:
            print(f"  profile of worker x{processes}: {profile}")
            for frame, share in top_frames(profile, ("streams/", "rules/", "contracts/"), count=12):
                print(f"    {share:6.1%}  {frame}")

    raw_rate = figures[0].rate
    loop = figures[2].rate if not args.workers_only else 0.0
    print()
    print(f"{'stage':<36} {'readings':>10} {'seconds':>8} {'readings/s':>11} {'x loop':>7} {'x raw':>7}  note")
    for f in figures:
        ratios = f"{f.rate / loop:>7.2f} {f.rate / raw_rate:>7.2f}" if loop else f"{'':>7} {'':>7}"
        print(f"{f.stage:<36} {f.readings:>10,} {f.seconds:>8.2f} {f.rate:>11,.0f} {ratios}  {f.note}")


def produce(bootstrap: str, topic: str, hours: int, registry: Registry) -> int:
    data: list[Reading] = readings(hours, registry=registry)
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 20})
    for i, r in enumerate(data):
        producer.produce(topic, key=r.stack.encode(), value=r.model_dump_json().encode())
        producer.poll(0)
        if i % 200_000 == 199_999:
            print(f"  produced {i + 1:,}", flush=True)
    producer.flush()
    return len(data)


def topic_size(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}"})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    size = 0
    for p in parts:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        size += high - low
    consumer.close()
    return size


def in_process_stages(bootstrap: str, topic: str, n: int, registry: Registry) -> list[Figure]:
    """Stages 1-4: raw consume, + decode, + engine in a plain loop, pure rules in memory."""
    figures: list[Figure] = []
    raw: list[bytes] = []
    figures.append(Figure("raw consume (bytes)", n, consume_all(bootstrap, topic, n,
                                                                lambda v, p: raw.append(v))))  # fmt: skip

    def decode_only(value: bytes, partition: int) -> None:
        decode_reading(value)

    figures.append(Figure("+ decode", n, consume_all(bootstrap, topic, n, decode_only)))
    engine = load_engine(registry)
    handle, counts = plain_loop(engine)
    loop_s = consume_all(bootstrap, topic, n, handle)
    figures.append(Figure("+ engine (plain loop)", n, loop_s, f"{counts[0]} alert events, {counts[1]:,} hourly"))
    decoded = sorted((decode_reading(v) for v in raw), key=lambda r: r.event_time)
    raw.clear()
    started = time.perf_counter()
    result = ReplayDriver(load_engine(registry)).feed_all(decoded).finish()
    figures.append(
        Figure("pure rules (replay, in memory)", n, time.perf_counter() - started,
               f"{len(result.events)} alert events, {len(result.hourly):,} hourly")
    )  # fmt: skip
    decoded.clear()
    return figures


if __name__ == "__main__":
    main()
