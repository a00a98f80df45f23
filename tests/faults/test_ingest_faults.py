"""Ingest under the faults of issue 10, each counted: every reading the fleet produced (and the
broker acknowledged) is in Kafka, none twice.

- hostile payloads from an enterprise account never stop ingest;
- the gateway stopped while devices publish more than the old queue limit (100,000);
- the broker SIGKILLed and restarted mid-stream (what it loses, backfill recovers);
- a clean broker restart while the gateway is down;
- Kafka SIGKILLed and restarted mid-stream.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings
from cems.topics import ensure_topics
from contracts.registry import load_registry
from tests.integration.helpers import GatewayProcess, Publisher, consume_all

from .conftest import kill
from .ingest_rig import ingest_rig

pytestmark = pytest.mark.integration

POWER_MN = load_registry().stack_index()["jy-power-1-s1"][1].devices[0].mn  # a JSON device


@pytest.fixture
def gateway(infra: InfraSettings, secrets: SecretStore, unique: str, tmp_path: Path) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(infra, f"f{unique}", tmp_path / "gateway.log", client_id=f"gw-{unique}")
    ensure_topics(infra.kafka_bootstrap, gw.topics.all())
    gw.start()
    yield gw
    gw.stop()
    gw.end_session(secrets)


def _good(t: datetime) -> bytes:
    return json.dumps(
        {"mn": POWER_MN, "time": t.isoformat(), "values": {"so2": {"value": 20.0}, "o2": {"value": 7.0}}}
    ).encode()


#: what reaches the gateway, and the dead letter each must end as
HOSTILE: dict[str, tuple[bytes, str]] = {
    "400-digit integer": (
        b'{"mn":"' + POWER_MN.encode() + b'","time":"2026-11-29T08:00:00+00:00",'
        b'"values":{"so2":{"value":' + b"9" * 400 + b"}}}",
        "malformed_json",
    ),
    "10,000-deep array": (b"[" * 10_000 + b"]" * 10_000, "malformed_json"),
    "10,000-deep object": (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "malformed_json"),
    "100 KB body": (b'{"mn":"' + b"x" * 100_000 + b'"}', "payload_too_large"),
    "not UTF-8": (b'{"mn":"\xff\xfe"}', "malformed_json"),
    "UTF-16 JSON": (json.dumps({"mn": POWER_MN}).encode("utf-16"), "schema_invalid"),
    "NaN value": (
        b'{"mn":"' + POWER_MN.encode() + b'","time":"2026-11-29T08:00:00+00:00","values":{"so2":NaN}}',
        "non_finite",
    ),
}
#: over the broker's message size limit: it drops them (and the connection) before any subscriber
TOO_LARGE_FOR_THE_BROKER = {"300 KB body": b'{"mn":"' + b"x" * 300_000 + b'"}', "5 MB body": b"\xff" * 5_000_000}


def test_hostile_payloads_never_stop_ingest(
    infra: InfraSettings, secrets: SecretStore, gateway: GatewayProcess, unique: str
) -> None:
    """Each payload of the issue's first row, then a good reading: every good reading is
    stored, every hostile one that reached the gateway is a bounded dead letter with its
    reason, and the gateway runs on."""
    topic = "cems/v1/jy-power-1/jy-power-1-s1/reading"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    good = [_good(t0 + timedelta(seconds=i)) for i in range(len(HOSTILE) + len(TOO_LARGE_FOR_THE_BROKER))]
    device = Publisher(infra, secrets, "jy-power-1", f"dev-{unique}")
    try:
        for i, (payload, _) in enumerate(HOSTILE.values()):
            device.publish_all([(topic, payload), (topic, good[i])])
        for j, payload in enumerate(TOO_LARGE_FOR_THE_BROKER.values()):
            throwaway = Publisher(infra, secrets, "jy-power-1", f"big-{j}-{unique}")
            throwaway.publish(topic, payload)
            time.sleep(0.5)
            throwaway.close()
            device.publish_all([(topic, good[len(HOSTILE) + j])])
    finally:
        device.close()
    readings = consume_all(infra.kafka_bootstrap, gateway.topics.readings.name, expect=len(good), timeout_s=60)
    stored = sorted(datetime.fromisoformat(r["event_time"]) for r in readings)
    assert stored == [t0 + timedelta(seconds=i) for i in range(len(good))], gateway.tail()
    letters = consume_all(infra.kafka_bootstrap, gateway.topics.dead_letters.name, expect=len(HOSTILE), timeout_s=20)
    assert sorted(letter["reason"] for letter in letters) == sorted(reason for _, reason in HOSTILE.values())
    for letter in letters:  # bounded: a payload over the gateway's limit keeps 1 KiB
        assert len(json.dumps(letter)) < 1_000_000
        assert len(letter["payload_b64"]) <= 4 * 64 * 1024 // 3 + 4
        if letter["reason"] == "payload_too_large":
            assert letter["payload_truncated"] and letter["payload_size"] > 64 * 1024
            assert len(base64.b64decode(letter["payload_b64"])) == 1024
    assert gateway.process.proc is not None and gateway.process.proc.poll() is None, gateway.tail()


def test_gateway_down_while_devices_publish_more_than_the_old_queue_limit(tmp_path: Path) -> None:
    """The old broker config dropped everything past 100,000 queued messages, silently."""
    with ingest_rig(tmp_path, "queue", copies=100) as rig:  # 2,400 stacks
        rig.gateway.stop()  # its persistent session stays: the broker queues for it
        fleet = rig.fleet(63, speed=1000.0, start=_past(63)).begin()  # 151,200 readings
        fleet.wait(240)
        assert fleet.counters.acked >= fleet.counters.sent == len(fleet.expected()) > 150_000
        rig.gateway.start()
        count = rig.count(fleet, timeout_s=240)
        print(f"gateway down, {fleet.counters.sent:,} queued: {count}")
        assert (count.missing, count.duplicated, count.unexpected) == (0, 0, 0), str(count)


def test_broker_sigkill_mid_stream_loses_nothing_after_backfill(tmp_path: Path) -> None:
    with ingest_rig(tmp_path, "bkill", copies=40) as rig:  # 960 stacks, 960 readings/s
        fleet = rig.fleet(30).begin()
        time.sleep(12)
        kill(rig.broker)
        killed_at = fleet.counters.acked
        assert 0 < killed_at < len(fleet.expected())  # mid-stream
        time.sleep(1)
        rig.broker.start()
        fleet.wait(120)
        count = rig.count(fleet, timeout_s=90)
        print(f"broker SIGKILL after {killed_at:,} acknowledged: {count}; fleet {fleet.counters}")
        assert (count.missing, count.duplicated, count.unexpected) == (0, 0, 0), str(count)


def test_readings_the_broker_lost_are_backfilled_from_the_devices(tmp_path: Path) -> None:
    """Deterministic: three steps of every stack never reach the gateway (as a crashed broker
    loses what it had acknowledged but not saved); the next readings reveal the holes, the
    gateway asks each device for them, and the devices' answers fill them, marked."""
    with ingest_rig(tmp_path, "backfill", copies=10) as rig:  # 240 stacks, 240 readings/s
        start = datetime.now(UTC).replace(microsecond=0)
        lost_times = {start + timedelta(seconds=s) for s in (5, 6, 7)}
        fleet = rig.fleet(15, start=start, lose=lambda m: m.event_time in lost_times).begin()
        fleet.wait(60)
        count = rig.count(fleet, timeout_s=60)
        lost = 3 * len(fleet.fleet.devices)
        print(f"{lost:,} readings lost before the gateway: {count}; fleet {fleet.counters}")
        assert (count.missing, count.duplicated, count.unexpected) == (0, 0, 0), str(count)
        assert count.backfilled == lost == fleet.counters.resent
        assert fleet.counters.history_requests == len(fleet.fleet.devices)  # one request per hole


def test_clean_broker_restart_while_the_gateway_is_down(tmp_path: Path) -> None:
    """The gateway's session (and its subscription) survive a broker restart: what devices
    publish after the restart, before the gateway is back, waits for it."""
    with ingest_rig(tmp_path, "restart", copies=10) as rig:  # 240 stacks
        time.sleep(6)  # past an autosave: the broker has written the session down
        rig.gateway.stop()
        rig.broker.stop()
        rig.broker.start()
        fleet = rig.fleet(10, speed=100.0, start=_past(10)).begin()  # 2,400 readings
        fleet.wait(60)
        rig.gateway.start()
        count = rig.count(fleet, timeout_s=60)
        print(f"clean broker restart, gateway down: {count}")
        assert (count.missing, count.duplicated, count.unexpected) == (0, 0, 0), str(count)
        assert count.backfilled == 0  # the broker kept them: nothing to ask devices for


def test_kafka_sigkill_mid_stream_loses_nothing(tmp_path: Path) -> None:
    with ingest_rig(tmp_path, "kkill", copies=40, kafka=True) as rig:
        assert rig.kafka is not None
        fleet = rig.fleet(25).begin()
        time.sleep(10)
        assert 0 < fleet.counters.acked < len(fleet.expected())  # mid-stream
        kill(rig.kafka)
        time.sleep(2)
        rig.kafka.start()
        fleet.wait(120)
        count = rig.count(fleet, timeout_s=120)
        print(f"kafka SIGKILL mid-stream: {count}")
        assert (count.missing, count.duplicated, count.unexpected) == (0, 0, 0), str(count)


def _past(steps: int) -> datetime:
    """A start far enough back that an accelerated fleet never runs ahead of the clock."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=steps + 5)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the point of the test
def test_a_receive_thread_that_dies_is_seen(infra: InfraSettings, secrets: SecretStore, unique: str) -> None:
    """Should a handler ever raise (the gateway core turns every input error into a dead
    letter, so this is a bug), the source reports itself dead and `cems gateway` exits 1."""
    from ingest.mqtt_source import MqttSource

    def broken(topic: str, payload: bytes, ack: object, answer: object) -> None:
        raise RuntimeError("a bug")

    source = MqttSource(
        host=infra.host,
        port=infra.mqtt_port,
        user=infra.mqtt_platform_user,
        password=secrets.mqtt_password(infra.mqtt_platform_user),
        client_id=f"dying-{unique}",
        filters=[("cems/v1/jy-power-1/jy-power-1-s1/reading", 1)],
        handler=broken,
    )
    source.start()
    device = Publisher(infra, secrets, "jy-power-1", f"dev-{unique}")
    try:
        assert source.alive
        device.publish("cems/v1/jy-power-1/jy-power-1-s1/reading", b"{}").wait_for_publish(10)
        deadline = time.monotonic() + 10
        while source.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not source.alive and source.failure == "RuntimeError: a bug"
    finally:
        device.close()
        source.stop()
        GatewayProcess(infra, "unused", Path("/dev/null"), client_id=f"dying-{unique}").end_session(secrets)
