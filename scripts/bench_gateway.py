"""Gateway throughput, one process, against the real Mosquitto and Kafka (`cems infra up`).

    .venv/bin/python scripts/bench_gateway.py [--count 20000] [--format json|hj212]

Method: the readings are published (QoS 1) while the gateway is stopped, so Mosquitto holds
them for the gateway's persistent session; then the gateway starts and the clock runs from
its "gateway running" log line until Kafka holds every reading. The number is the gateway's
own rate (validate, deduplicate, produce with acks=all, acknowledge), not the publisher's.
It also times the pure validation core alone, in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from kafka import KafkaConsumer, TopicPartition
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cems.infra.secrets import SecretStore  # noqa: E402
from cems.infra.settings import InfraSettings  # noqa: E402
from cems.topics import ensure_topics  # noqa: E402
from contracts import mqtt_topics  # noqa: E402
from contracts.hj212 import encode_packet  # noqa: E402
from contracts.hj212_data import PacketValue, data_packet  # noqa: E402
from contracts.reading import DataKind  # noqa: E402
from contracts.registry import load_registry  # noqa: E402
from contracts.topics import topics  # noqa: E402
from ingest.mqtt_source import subscriptions  # noqa: E402
from ingest.validation import ReadingValidator  # noqa: E402


def payloads(count: int, fmt: str) -> list[tuple[str, bytes]]:
    registry = load_registry()
    stacks = [(e, s) for e, s in registry.stacks() if "so2" in s.parameters]
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=12)
    out = []
    for i in range(count):
        ent, stack = stacks[i % len(stacks)]
        dev = stack.devices[0]
        t = t0 + timedelta(seconds=i // len(stacks))
        if fmt == "json":
            doc = {
                "mn": dev.mn,
                "time": t.isoformat(),
                "values": {
                    "so2": {"value": 20 + i % 7},
                    "o2": {"value": 8.5},
                    "flow": {"value": 110.0},
                    "temperature": {"value": 52.0},
                    "humidity": {"value": 11.0},
                },
            }
            out.append((mqtt_topics.topic(ent.id, stack.id, mqtt_topics.JSON_CHANNEL), json.dumps(doc).encode()))
        else:
            values = {"so2": PacketValue(20 + i % 7), "o2": PacketValue(8.5), "flow": PacketValue(110.0)}
            packet = data_packet(
                mn=dev.mn, kind=DataKind.REALTIME, event_time=t, values=values, pw=dev.hj212_pw or "123456"
            )
            out.append((mqtt_topics.topic(ent.id, stack.id, mqtt_topics.HJ212_CHANNEL), encode_packet(packet)))
    return out


def bench_core(items: list[tuple[str, bytes]]) -> float:
    validator = ReadingValidator(load_registry())
    now = datetime.now(UTC)
    start = time.perf_counter()
    for topic, payload in items:
        reading, _ = validator.from_mqtt(topic, payload, now)
        reading.model_dump_json()
    return len(items) / (time.perf_counter() - start)


def publish(infra: InfraSettings, secrets: SecretStore, items: list[tuple[str, bytes]]) -> None:
    by_account: dict[str, list[tuple[str, bytes]]] = {}
    for topic, payload in items:
        by_account.setdefault(topic.split("/")[2], []).append((topic, payload))
    for account, msgs in by_account.items():
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{account}", protocol=mqtt.MQTTv5)
        client.username_pw_set(account, secrets.mqtt_password(account))
        client.max_inflight_messages_set(200)
        client.connect(infra.host, infra.mqtt_port)
        client.loop_start()
        infos = [client.publish(t, p, qos=1) for t, p in msgs]
        for info in infos:
            info.wait_for_publish(60)
        client.disconnect()
        client.loop_stop()


def subscribe_session(infra: InfraSettings, secrets: SecretStore, client_id: str, clean: bool) -> None:
    """Create (or remove) the gateway's persistent session so the broker queues for it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(infra.mqtt_platform_user, secrets.mqtt_password(infra.mqtt_platform_user))
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0 if clean else 3600
    client.connect(infra.host, infra.mqtt_port, clean_start=True, properties=props)
    client.loop_start()
    if not clean:
        client.subscribe(subscriptions([]))
        time.sleep(0.5)
    client.disconnect()
    client.loop_stop()


def count(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or set()]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--format", choices=["json", "hj212"], default="json")
    args = parser.parse_args()

    infra = InfraSettings()
    secrets = SecretStore(infra.secrets_dir)
    run = uuid.uuid4().hex[:8]
    namespace, client_id = f"bench{run}", f"bench-gw-{run}"
    topic_set = topics(namespace)
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    items = payloads(args.count, args.format)

    core_rate = bench_core(items[:5000])
    print(f"validation core alone: {core_rate:,.0f} readings/s ({args.format})", flush=True)

    subscribe_session(infra, secrets, client_id, clean=False)
    started = time.perf_counter()
    publish(infra, secrets, items)
    print(f"published {len(items):,} readings in {time.perf_counter() - started:.1f}s (queued by Mosquitto)")

    log = Path(tempfile.mkstemp(prefix="bench-gateway-", suffix=".log")[1])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable, "-m", "cems.cli", "gateway", "--namespace", namespace, "--client-id", client_id,
        "--tcp-port", "0", "--metrics-port", "0", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT)
    t_start = time.perf_counter()
    try:
        last, last_report = 0, t_start
        while True:
            n = count(infra.kafka_bootstrap, topic_set.readings.name)
            now = time.perf_counter()
            if now - last_report >= 2:
                print(f"  {n:,}/{len(items):,} in Kafka, {(n - last) / (now - last_report):,.0f}/s", flush=True)
                last, last_report = n, now
            if n >= len(items):
                break
            if proc.poll() is not None:
                raise SystemExit(f"gateway exited {proc.returncode}; log: {log}")
            if now - t_start > 600:
                raise SystemExit(f"timed out with {n} of {len(items)}; log: {log}")
            time.sleep(0.2)
        elapsed = time.perf_counter() - t_start
    finally:
        proc.terminate()
        proc.wait(30)
        subscribe_session(infra, secrets, client_id, clean=True)
    letters = count(infra.kafka_bootstrap, topic_set.dead_letters.name)
    print(
        f"gateway (one process, {args.format}): {len(items):,} readings in {elapsed:.1f}s "
        f"= {len(items) / elapsed:,.0f} readings/s, including start-up; dead letters: {letters}"
    )


if __name__ == "__main__":
    main()
