"""Real Mosquitto -> `cems gateway` -> real Kafka: exactly once, dead letters, crash safety."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings
from contracts.hj212 import encode_packet, parse_packet
from contracts.hj212_data import PacketValue, data_packet
from contracts.reading import DataKind
from contracts.registry import load_registry

from .helpers import GatewayProcess, Publisher, consume_all, count_records

pytestmark = pytest.mark.integration

REG = load_registry()
POWER = REG.stack_index()["jy-power-1-s1"][1]  # JSON device
KILN = REG.stack_index()["jy-cement-1-s1"][1]  # HJ 212 device, PW in the registry
POWER_TOPIC = "cems/v1/jy-power-1/jy-power-1-s1/reading"
KILN_TOPIC = "cems/v1/jy-cement-1/jy-cement-1-s1/hj212"


def json_reading(t: datetime, so2: float, mn: str = POWER.devices[0].mn, **extra: object) -> bytes:
    doc: dict[str, object] = {
        "mn": mn,
        "time": t.isoformat(),
        "values": {"so2": {"value": so2}, "o2": {"value": 7.5}, "flow": {"value": 120.0}},
    }
    doc.update(extra)
    return json.dumps(doc).encode()


def kiln_packet(t: datetime, so2: float, *, ack: bool = False) -> bytes:
    pw = KILN.devices[0].hj212_pw or ""
    values = {"so2": PacketValue(so2), "nh3": PacketValue(2.0), "o2": PacketValue(10.5)}
    return encode_packet(
        data_packet(mn=KILN.devices[0].mn, kind=DataKind.REALTIME, event_time=t, values=values, pw=pw, ack=ack)
    )


def _base_time() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def test_every_accepted_reading_arrives_exactly_once(
    infra: InfraSettings, secrets: SecretStore, gateway: GatewayProcess, unique: str
) -> None:
    t0 = _base_time()
    power = Publisher(infra, secrets, "jy-power-1", f"dev-p-{unique}")
    kiln = Publisher(infra, secrets, "jy-cement-1", f"dev-k-{unique}")
    n = 60
    try:
        power.publish_all([(POWER_TOPIC, json_reading(t0 + timedelta(seconds=i), 20 + i)) for i in range(n)])
        kiln.publish_all([(KILN_TOPIC, kiln_packet(t0 + timedelta(seconds=i), 10 + i)) for i in range(n)])
    finally:
        power.close()
        kiln.close()
    readings = consume_all(infra.kafka_bootstrap, gateway.topics.readings.name, expect=2 * n)
    letters = consume_all(infra.kafka_bootstrap, gateway.topics.dead_letters.name, expect=0, settle_s=0.5)
    assert letters == [], letters[:3]
    keys = Counter((r["stack"], r["event_time"]) for r in readings)
    assert len(readings) == 2 * n, gateway.tail()
    assert all(c == 1 for c in keys.values())
    power_so2 = sorted(r["values"]["so2"]["value"] for r in readings if r["stack"] == "jy-power-1-s1")
    assert power_so2 == [20.0 + i for i in range(n)]
    kiln_reading = next(r for r in readings if r["stack"] == "jy-cement-1-s1")
    assert kiln_reading["source"] == "mqtt-hj212"
    assert kiln_reading["values"]["nh3"]["value"] == pytest.approx(2.0 * 17 / 22.4)  # ppm -> mg/m3


def test_bad_input_lands_in_dead_letters_with_its_reason(
    infra: InfraSettings, secrets: SecretStore, gateway: GatewayProcess, unique: str
) -> None:
    t0 = _base_time()
    good_packet = kiln_packet(t0, 12.0)
    bad_crc = good_packet[:-6] + (b"0000" if good_packet[-6:-2] != b"0000" else b"FFFF") + b"\r\n"
    wrong_length = b"##9999" + good_packet[6:]
    kiln_mn = KILN.devices[0].mn
    cases = [
        (POWER_TOPIC, b'{"mn": "x", "time": ', "malformed_json"),
        (KILN_TOPIC, bad_crc, "hj212_crc"),
        (KILN_TOPIC, wrong_length, "hj212_length"),
        (POWER_TOPIC, json_reading(t0, 1, mn="UNREGISTERED00001"), "unknown_device"),
        (POWER_TOPIC, json_reading(t0, 1, mn=kiln_mn), "mn_topic_mismatch"),
        (POWER_TOPIC, json_reading(datetime.now(UTC) + timedelta(hours=1), 1), "future_timestamp"),
        (POWER_TOPIC, json_reading(t0 + timedelta(seconds=1), float("nan")), "non_finite"),
        (POWER_TOPIC, json_reading(t0 + timedelta(seconds=2), 5), None),  # accepted ...
        (POWER_TOPIC, json_reading(t0 + timedelta(seconds=2), 5), "duplicate"),  # ... then redelivered
    ]
    power = Publisher(infra, secrets, "jy-power-1", f"dev-p-{unique}")
    kiln = Publisher(infra, secrets, "jy-cement-1", f"dev-k-{unique}")
    try:
        for topic, payload, _ in cases:
            (kiln if topic == KILN_TOPIC else power).publish_all([(topic, payload)])
    finally:
        power.close()
        kiln.close()
    expected = [reason for _, _, reason in cases if reason]
    letters = consume_all(infra.kafka_bootstrap, gateway.topics.dead_letters.name, expect=len(expected))
    assert sorted(d["reason"] for d in letters) == sorted(expected), gateway.tail()
    by_reason = {d["reason"]: d for d in letters}
    assert by_reason["mn_topic_mismatch"]["origin"] == f"mqtt:{POWER_TOPIC}"
    assert by_reason["mn_topic_mismatch"]["mn"] == kiln_mn
    assert "jy-cement-1/jy-cement-1-s1" in by_reason["mn_topic_mismatch"]["detail"]
    assert by_reason["hj212_crc"]["payload_text"] == bad_crc.decode()
    assert by_reason["unknown_device"]["detail"].endswith("(quarantined)")
    readings = consume_all(infra.kafka_bootstrap, gateway.topics.readings.name, expect=1, settle_s=0.5)
    assert len(readings) == 1

    with urllib.request.urlopen(f"http://{infra.host}:{gateway.metrics_port}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    for reason in expected:
        assert f'cems_gateway_rejected_total{{reason="{reason}"}} 1.0' in metrics, reason
    assert 'cems_gateway_accepted_total{source="mqtt-json"} 1.0' in metrics
    assert 'cems_gateway_duplicates_total{source="mqtt-json"} 1.0' in metrics
    assert "cems_gateway_kafka_produce_seconds_count 1.0" in metrics


def test_hj212_over_tcp_is_answered_after_kafka_has_it(infra: InfraSettings, gateway: GatewayProcess) -> None:
    t0 = _base_time()
    with socket.create_connection((infra.host, gateway.tcp_port), timeout=10) as sock:
        # two packets in one write, the second asking for an answer
        sock.sendall(kiln_packet(t0, 7.0) + kiln_packet(t0 + timedelta(seconds=1), 8.0, ack=True))
        buffer = b""
        while not buffer.endswith(b"\r\n"):
            buffer += sock.recv(4096)
    answer = parse_packet(buffer)
    assert (answer.cn, answer.st, answer.mn) == ("9014", "91", KILN.devices[0].mn)
    readings = consume_all(infra.kafka_bootstrap, gateway.topics.readings.name, expect=2)
    assert sorted(r["values"]["so2"]["value"] for r in readings) == [7.0, 8.0]
    assert {r["source"] for r in readings} == {"tcp-hj212"}


def test_sigkill_mid_stream_loses_nothing_and_doubles_nothing(
    infra: InfraSettings, secrets: SecretStore, gateway: GatewayProcess, unique: str
) -> None:
    t0 = _base_time()
    n = 5000
    items = [(POWER_TOPIC, json_reading(t0 + timedelta(seconds=i), float(i))) for i in range(n)]
    power = Publisher(infra, secrets, "jy-power-1", f"dev-p-{unique}")
    try:
        infos = [power.publish(topic, payload) for topic, payload in items]  # queued, sent as acks come
        count_topic = gateway.topics.readings.name
        deadline = time.monotonic() + 30
        while count_records(infra.kafka_bootstrap, count_topic) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        gateway.kill()  # mid-stream: some readings in Kafka, some in flight, the rest still to come
        at_kill = count_records(infra.kafka_bootstrap, count_topic)
        assert 300 <= at_kill < n, at_kill
        time.sleep(1)  # the devices go on publishing; the broker keeps it all for the gateway's session
        gateway.start()
        for info in infos:
            info.wait_for_publish(60)
    finally:
        power.close()
    readings = consume_all(infra.kafka_bootstrap, gateway.topics.readings.name, expect=n, timeout_s=120)
    values = Counter(r["values"]["so2"]["value"] for r in readings)
    missing = [i for i in range(n) if values[float(i)] == 0]
    doubled = [v for v, c in values.items() if c > 1]
    assert missing == [], f"{len(missing)} lost, e.g. {missing[:5]}\n{gateway.tail()}"
    assert doubled == [], f"{len(doubled)} doubled, e.g. {doubled[:5]}"
    assert len(readings) == n
