"""Issue 10, row "gateway restart with 456,336 readings in cems.v1.readings": the gateway
refused to start (reloading the duplicate memory took 73 s, over its 60 s limit).

Now the memory covers the acceptance window only and is loaded by seeking to it. A readings
topic is filled with 500,000 readings as the gateway writes them, produced over about 3.5
days (100 stacks at one a minute), with some readings of a registered device among them:
inside the window (one near its edge), before it, one under the old dedup header, one
without any header. A real `cems gateway` must be running within 15 s of launch; then the
device publishes those readings again and two new ones over MQTT: every repeat inside the
window is a `duplicate` dead letter, the one before the window is `stale_timestamp`, the new
ones are stored once, and no identity is in the topic twice.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from kafka import KafkaAdminClient

from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings
from cems.topics import ensure_topics
from contracts.errors import InfrastructureError
from contracts.parameters import Unit
from contracts.reading import DataKind, Measurement, Reading, Source
from contracts.registry import load_registry
from ingest.dedup_loader import LEGACY_DEDUP_HEADER, load_dedup_memory
from ingest.kafka_sink import reading_record
from ingest.settings import GatewaySettings
from tests.integration.helpers import GatewayProcess, Publisher, consume_all

from .readings_history import Record, history, write

pytestmark = pytest.mark.integration

STACK = "jy-power-1-s1"
MN = load_registry().stack_index()[STACK][1].devices[0].mn  # a JSON device
MQTT_TOPIC = f"cems/v1/jy-power-1/{STACK}/reading"
RECORDS = 500_000
STACKS = 100  # one reading a minute each: 500,000 readings span 3.5 days
START_BOUND_S = 15.0


def _reading(t: datetime, so2: float) -> Reading:
    values = {"so2": Measurement(value=so2, unit=Unit("mg/m3")), "o2": Measurement(value=7.5, unit=Unit("%"))}
    return Reading(
        enterprise="jy-power-1", stack=STACK, mn=MN, event_time=t, kind=DataKind.REALTIME, values=values,
        source=Source.MQTT_JSON, received_at=t + timedelta(seconds=1),
    )  # fmt: skip


def _record(reading: Reading, headers: str = "current") -> Record:
    """The gateway's record of ``reading``, produced a second after its event time."""
    key, value, current = reading_record(reading)
    chosen = {
        "current": current,
        "legacy": [(LEGACY_DEDUP_HEADER, reading.dedup_key.encode())],  # before the header changed
        "none": [],  # another producer
    }[headers]
    return int(reading.received_at.timestamp() * 1000), key, value, chosen


def _payload(t: datetime, so2: float) -> bytes:
    values = {"so2": {"value": so2}, "o2": {"value": 7.5}}
    return json.dumps({"mn": MN, "time": t.isoformat(), "values": values}).encode()


def _identities(bootstrap: str, topic: str) -> Counter[tuple[str, str, datetime]]:
    """(mn, kind, instant) of every record of the device's stack (one partition: read it all)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "check", "enable.partition.eof": True})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        found: Counter[tuple[str, str, datetime]] = Counter()
        open_parts, deadline = set(parts), time.monotonic() + 60
        while open_parts and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, err
                    open_parts.discard(msg.partition())
                elif msg.key() == STACK.encode():
                    doc = json.loads(msg.value())
                    found[(doc["mn"], doc["kind"], datetime.fromisoformat(doc["event_time"]))] += 1
        assert not open_parts, f"partitions {open_parts} not read to the end"
        return found
    finally:
        consumer.close()


@pytest.fixture
def namespace(infra: InfraSettings, unique: str) -> Iterator[str]:
    """A namespace whose topics are deleted afterwards (the readings topic holds ~400 MB)."""
    ns = f"r{unique}"
    yield ns
    admin = KafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    try:
        existing = set(admin.list_topics())
        admin.delete_topics([t for t in existing if t.startswith(f"{ns}.")])
    finally:
        admin.close()


def test_gateway_restarts_fast_over_a_large_topic_and_still_refuses_duplicates(
    infra: InfraSettings, secrets: SecretStore, namespace: str, unique: str, tmp_path: Path
) -> None:
    window = timedelta(seconds=GatewaySettings().max_age_s)
    now = datetime.now(UTC).replace(microsecond=0)
    stored = {
        "inside": _reading(now - window + timedelta(hours=6), 11.0),
        "near the edge": _reading(now - window + timedelta(minutes=20), 12.0),
        "old header": _reading(now - timedelta(hours=10), 13.0),
        "no header": _reading(now - timedelta(hours=5), 14.0),
        "before the window": _reading(now - window - timedelta(hours=4), 15.0),
    }
    extra = [_record(r, "current") for r in stored.values()]
    extra[2] = _record(stored["old header"], "legacy")
    extra[3] = _record(stored["no header"], "none")

    gw = GatewayProcess(infra, namespace, tmp_path / "gateway.log", client_id=f"gw-{unique}")
    ensure_topics(infra.kafka_bootstrap, gw.topics.all())
    written = write(infra.kafka_bootstrap, gw.topics.readings.name, history(STACKS, RECORDS, now), extra)
    assert written.records == RECORDS + len(extra)
    assert (written.last_ms - written.first_ms) / 86_400_000 > 3  # days of production

    launched = time.monotonic()
    gw.start(timeout_s=60)
    startup_s = time.monotonic() - launched
    try:
        loaded = _load_line(gw.tail(20_000))
        print(f"gateway running {startup_s:.1f}s after launch; memory: {loaded}")
        assert startup_s < START_BOUND_S, gw.tail()
        # it sought to the window: about 26 h of 84 h read, not the whole topic
        assert 0 < loaded["records"] < 0.5 * written.records, loaded

        fresh = [now - timedelta(hours=1), now - window + timedelta(hours=6, seconds=30)]
        sends = [(r.event_time, r.values["so2"].value) for r in stored.values()]
        sends += [(fresh[0], 21.0), (fresh[1], 22.0), (fresh[0], 21.0)]  # the last one: a repeat
        device = Publisher(infra, secrets, "jy-power-1", f"dev-{unique}")
        try:
            device.publish_all([(MQTT_TOPIC, _payload(t, so2)) for t, so2 in sends])
        finally:
            device.close()

        letters = consume_all(infra.kafka_bootstrap, gw.topics.dead_letters.name, expect=6, timeout_s=30)
        by_time = sorted((_letter_time(d), d["reason"]) for d in letters)
        want = sorted(
            [(r.event_time, "duplicate") for name, r in stored.items() if name != "before the window"]
            + [(stored["before the window"].event_time, "stale_timestamp"), (fresh[0], "duplicate")]
        )
        assert by_time == want, gw.tail()

        identities = _identities(infra.kafka_bootstrap, gw.topics.readings.name)
        ours = {k: c for k, c in identities.items() if k[0] == MN}
        assert ours == {(MN, "realtime", t): 1 for t in [*(r.event_time for r in stored.values()), *fresh]}
    finally:
        gw.stop()
        gw.end_session(secrets)


def _load_line(log: str) -> dict[str, Any]:
    for line in reversed(log.splitlines()):
        if '"duplicate memory loaded from kafka"' in line:
            return dict(json.loads(line))
    raise AssertionError(f"no load line in the gateway's log:\n{log[-3000:]}")


def _letter_time(letter: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(json.loads(letter["payload_text"])["time"])


def test_unreachable_kafka_is_a_clear_error_naming_the_topic() -> None:
    started = time.monotonic()
    with pytest.raises(InfrastructureError, match=r"kafka at 127\.0\.0\.1:9: loading the duplicate memory from x\.v1"):
        load_dedup_memory(
            "127.0.0.1:9", "x.v1.readings", window_s=3600, max_future_s=300, now=datetime.now(UTC),
            request_timeout_s=2,
        )  # fmt: skip
    assert time.monotonic() - started < 10
