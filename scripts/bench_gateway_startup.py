"""Gateway start-up time against the size of the readings topic (real Kafka, `cems infra up`).

    .venv/bin/python scripts/bench_gateway_startup.py [--sizes 500000,1000000,2000000,5000000]
        [--stacks 1000] [--window-h H] [--repeat 3] [--no-gateway]

Per size, a fresh topic in its own namespace is filled as the gateway would have written it
over days (``tests/faults/readings_history.py``: the gateway's key, value, dedup header and
CreateTime; ``--stacks`` stacks at one reading a minute, the newest now, 0.5 % late backlog
readings). Then, each in a fresh process:

- **load**: the gateway's duplicate-memory loader (``ingest/dedup_loader.py``) with the
  gateway's window: records read (from the sought offsets), keys kept, seconds, keys/s, RSS;
- **raw**: a bare confluent-kafka consumer over the same offsets, counting bytes only: the
  limit of the client and broker on this machine;
- **gateway**: `cems gateway` from launch to its "gateway running" log line (imports, topic
  check, load, MQTT connect), unless ``--no-gateway``.

The topics are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def child_load(bootstrap: str, topic: str, window_s: float, max_future_s: float) -> None:
    from ingest.dedup_loader import load_dedup_memory

    before, _ = rss_mb()
    memory, report = load_dedup_memory(
        bootstrap, topic, window_s=window_s, max_future_s=max_future_s, now=datetime.now(UTC)
    )
    after, peak = rss_mb()
    doc = {
        "records": report.records,
        "keys": report.keys,
        "unreadable": report.unreadable,
        "seconds": report.seconds,
        "seek_ms": report.seek_ms,
        "rss_before_mb": before,
        "rss_mb": after,
        "peak_mb": peak,
        "arrays_mb": memory.nbytes / 2**20,
    }
    print(json.dumps(doc))


def child_raw(bootstrap: str, topic: str, seek_ms: int) -> None:
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from ingest.dedup_loader import consumer_config

    consumer = Consumer(consumer_config(bootstrap, f"raw-{uuid.uuid4().hex[:8]}"))  # the loader's settings
    started = time.monotonic()
    parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    starts = consumer.offsets_for_times([TopicPartition(topic, p, seek_ms) for p in parts], timeout=10)
    todo = {}
    for tp in starts:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10, cached=False)
        start = high if tp.offset < 0 else tp.offset
        if start < high:
            todo[tp.partition] = (start, high)
    consumer.assign([TopicPartition(topic, p, s) for p, (s, _) in todo.items()])
    records = nbytes = 0
    while todo:
        for msg in consumer.consume(num_messages=10_000, timeout=0.5):
            err = msg.error()
            if err is None:
                records += 1
                nbytes += len(msg)
            elif err.code() == KafkaError._PARTITION_EOF and msg.offset() >= todo.get(msg.partition(), (0, 0))[1]:
                todo.pop(msg.partition(), None)
    seconds = time.monotonic() - started
    consumer.close()
    print(json.dumps({"records": records, "bytes": nbytes, "seconds": seconds}))


def in_child(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def end_session(infra: object, client_id: str) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from cems.infra.secrets import SecretStore
    from cems.infra.settings import InfraSettings

    assert isinstance(infra, InfraSettings)
    user = infra.mqtt_platform_user
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, SecretStore(infra.secrets_dir).mqtt_password(user))
    client.connect(infra.host, infra.mqtt_port, clean_start=True)
    client.loop_start()
    time.sleep(0.5)
    client.disconnect()
    client.loop_stop()


def gateway_startup(infra: object, namespace: str, window_s: float) -> float:
    """Seconds from launching `cems gateway` to its "gateway running" line."""
    from cems.infra.settings import InfraSettings

    assert isinstance(infra, InfraSettings)
    client_id = f"bench-start-{namespace}"
    log = Path(tempfile.mkdtemp()) / "gateway.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CEMS_HOST": infra.host,
        "CEMS_MQTT_PORT": str(infra.mqtt_port),
        "CEMS_KAFKA_PORT": str(infra.kafka_port),
        "CEMS_STATE_DIR": str(infra.state_dir),
        "CEMS_MAX_AGE_S": str(window_s),
    }
    cmd = [
        sys.executable, "-m", "cems.cli", "gateway", "--namespace", namespace, "--client-id", client_id,
        "--tcp-port", "0", "--metrics-port", "0",
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        while b'"gateway running"' not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() - started > 300:
                raise SystemExit(f"gateway did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        return time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(30)
        end_session(infra, client_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="500000,1000000,2000000,5000000")
    parser.add_argument("--stacks", type=int, default=1000, help="stacks reporting once a minute")
    parser.add_argument("--window-h", type=float, default=None, help="default: the gateway's max_age_s")
    parser.add_argument("--no-gateway", action="store_true", help="skip timing a real `cems gateway`")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (the median is printed)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, bootstrap, topic, *rest = args.child
        if kind == "load":
            child_load(bootstrap, topic, float(rest[0]), float(rest[1]))
        else:
            child_raw(bootstrap, topic, int(rest[0]))
        return

    from kafka import KafkaAdminClient

    from cems.infra.settings import InfraSettings
    from cems.topics import ensure_topics
    from contracts.topics import topics
    from ingest.settings import GatewaySettings
    from tests.faults.readings_history import history, write

    infra = InfraSettings()
    bootstrap = infra.kafka_bootstrap
    gateway_settings = GatewaySettings()
    window_s = args.window_h * 3600 if args.window_h else gateway_settings.max_age_s
    max_future_s = gateway_settings.max_future_s
    sizes = [int(s) for s in args.sizes.split(",")]
    run = uuid.uuid4().hex[:6]
    print(
        f"{args.stacks:,} stacks at one reading a minute ({args.stacks * 1440:,} a day); "
        f"window {window_s / 3600:g} h; Kafka {bootstrap}; 2 cores shared with the servers",
        flush=True,
    )
    rows = []
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        for size in sizes:
            namespace = f"bench{run}n{size}"
            topic_set = topics(namespace)
            ensure_topics(bootstrap, [topic_set.readings])
            try:
                written = write(bootstrap, topic_set.readings.name, history(args.stacks, size, datetime.now(UTC),
                                late_every=200))  # fmt: skip
                days = (written.last_ms - written.first_ms) / 86_400_000
                print(f"filled {topic_set.readings.name}: {written.records:,} records over {days:.1f} days "
                      f"in {written.seconds:.0f}s", flush=True)  # fmt: skip
                loads, raws, gws = [], [], []
                for _ in range(args.repeat):  # the machine is shared: the median of a few runs
                    loads.append(in_child("--child", "load", bootstrap, topic_set.readings.name, str(window_s),
                                          str(max_future_s)))  # fmt: skip
                    raws.append(in_child("--child", "raw", bootstrap, topic_set.readings.name,
                                         str(int(loads[-1]["seek_ms"]))))  # fmt: skip
                    if not args.no_gateway:
                        gws.append(gateway_startup(infra, namespace, window_s))
                    print(f"  load {loads[-1]['seconds']:.2f}s, raw {raws[-1]['seconds']:.2f}s, "
                          f"gateway {gws[-1] if gws else 0:.2f}s", flush=True)  # fmt: skip
                rows.append((size, days, loads, raws, gws))
            finally:
                existing = set(admin.list_topics())
                admin.delete_topics([t.name for t in topic_set.all() if t.name in existing])
    finally:
        admin.close()

    print()
    head = (
        f"{'topic':>10} {'days':>5} {'in window':>10} {'keys':>10} {'load s':>7} {'max s':>6} {'keys/s':>9} "
        f"{'RSS MB':>7} {'peak MB':>8} {'arrays MB':>9} {'raw s':>6} {'raw rec/s':>10} {'raw MB/s':>8} "
        f"{'gateway s':>9} {'max s':>6}"
    )
    print(head)
    for size, days, loads, raws, gws in rows:
        load = sorted(loads, key=lambda d: d["seconds"])[len(loads) // 2]
        raw = sorted(raws, key=lambda d: d["seconds"])[len(raws) // 2]
        gw = f"{statistics.median(gws):.2f}" if gws else "-"
        gw_max = f"{max(gws):.2f}" if gws else "-"
        print(
            f"{size:>10,} {days:>5.1f} {int(load['records']):>10,} {int(load['keys']):>10,} {load['seconds']:>7.2f} "
            f"{max(d['seconds'] for d in loads):>6.2f} {load['keys'] / load['seconds']:>9,.0f} "
            f"{load['rss_mb']:>7.0f} {load['peak_mb']:>8.0f} {load['arrays_mb']:>9.1f} {raw['seconds']:>6.2f} "
            f"{raw['records'] / raw['seconds']:>10,.0f} {raw['bytes'] / raw['seconds'] / 2**20:>8.0f} "
            f"{gw:>9} {gw_max:>6}"
        )
    print(
        f"\nmedian of {args.repeat} runs (max s: the slowest); RSS: the loading process after the load (Python, "
        "clients and the memory); raw: a bare consumer over the same offsets, bytes only; gateway: launch to "
        '"gateway running"'
    )


if __name__ == "__main__":
    main()
