"""Electricity meters through the real Mosquitto, a real `cems gateway` and real Kafka.

Meters of jy-power-1 (sample registry) publish under their enterprise's account on their
facilities' topics, JSON and HJ 212, and one sends over TCP: the readings reach Kafka keyed
by the stack their facility exhausts to, with the facility named. A meter's MN on another
facility's topic, a meter packet with a wrong PW and a stack parameter from a meter are dead
letters with their reasons; another enterprise's account cannot publish on the facility's
topic at all (the broker answers 0x87 and the gateway never sees it).

The MQTT topics are shared with whatever else runs against the broker (only the Kafka topics
are this test's own), so the test counts only what it sent: its own event times and payloads.
"""

from __future__ import annotations

import json
import queue
import random
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings
from contracts.hj212 import encode_packet, parse_packet
from contracts.hj212_data import PacketValue, data_packet
from contracts.reading import DataKind
from contracts.registry import load_registry

from .helpers import GatewayProcess, Publisher, consume_all, consume_keyed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

METERS = load_registry().meter_index()
FGD_MN, BOILER_MN = "41900100019103JYE", "41900100019101JYE"  # JSON meter; HJ 212 meter with PW 123456
FGD_TOPIC = "cems/v1/jy-power-1/jy-power-1-fgd1/reading"
BOILER_TOPIC = "cems/v1/jy-power-1/jy-power-1-boiler1/hj212"
ESP_TOPIC = "cems/v1/jy-power-1/jy-power-1-esp1/reading"
#: MQTT 5 PUBACK reason code of a publish the broker's rights refuse
NOT_AUTHORIZED = 0x87


def fgd_json(t: datetime, power_kw: float, **values: dict[str, object]) -> bytes:
    doc = {
        "mn": FGD_MN,
        "time": t.isoformat(),
        "values": {"power": {"value": power_kw}, "current": {"value": 95.5}, "energy": {"value": 1e6}, **values},
    }
    return json.dumps(doc).encode()


def boiler_packet(t: datetime, power_kw: float, *, pw: str = "123456", ack: bool = False) -> bytes:
    values = {"power": PacketValue(power_kw), "current": PacketValue(250.0), "energy": PacketValue(123456.5)}
    return encode_packet(data_packet(mn=BOILER_MN, kind=DataKind.REALTIME, event_time=t, values=values, pw=pw, ack=ack))


def test_meters_publish_through_the_gateway_keyed_by_their_stack(
    infra: InfraSettings, secrets: SecretStore, gateway: GatewayProcess, unique: str
) -> None:
    assert METERS[FGD_MN][1].id == "jy-power-1-fgd1" and METERS[BOILER_MN][1].meter.hj212_pw == "123456"
    # a second of its own, hours back: nobody else's reading of these meters has this event time
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3, seconds=random.randrange(3600))
    n = 5
    good = [(FGD_TOPIC, fgd_json(t0 + timedelta(seconds=i), 1000.0 + i)) for i in range(n)]
    good += [(BOILER_TOPIC, boiler_packet(t0 + timedelta(seconds=i), 3800.0 + i, ack=i == 0)) for i in range(n)]
    bad = {
        (ESP_TOPIC, fgd_json(t0 + timedelta(seconds=100), 1.0)): "mn_topic_mismatch",
        (BOILER_TOPIC, boiler_packet(t0 + timedelta(seconds=101), 1.0, pw="000000")): "hj212_password",
        (FGD_TOPIC, fgd_json(t0 + timedelta(seconds=102), 1.0, so2={"value": 30.0})): "unknown_parameter",
    }
    spoof = fgd_json(t0 + timedelta(seconds=103), 7.0)

    answers: queue.Queue[bytes] = queue.Queue()
    power = Publisher(infra, secrets, "jy-power-1", f"meter-p-{unique}")
    cement = Publisher(infra, secrets, "jy-cement-1", f"meter-c-{unique}")
    codes: dict[int, Any] = {}
    cement.client.on_publish = lambda c, u, mid, rc, p: codes.__setitem__(mid, rc)
    subscribed: queue.Queue[Any] = queue.Queue()
    power.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.put(rcs)
    power.client.on_message = lambda c, u, m: answers.put(bytes(m.payload))
    try:
        power.client.subscribe(BOILER_TOPIC.rsplit("/", 1)[0] + "/ack", qos=0)
        assert [int(rc.value) for rc in subscribed.get(timeout=10)] == [0]
        spoofed = cement.publish(FGD_TOPIC, spoof)  # another enterprise's account, the facility's topic
        spoofed.wait_for_publish(10)
        power.publish_all([*good, *bad])
        answer = parse_packet(answers.get(timeout=30))  # the 9014 answer on the facility's ack topic
        with socket.create_connection((infra.host, gateway.tcp_port), timeout=10) as sock:
            sock.sendall(boiler_packet(t0 + timedelta(seconds=n), 3900.0, ack=True))
            buffer = b""
            while not buffer.endswith(b"\r\n"):
                buffer += sock.recv(4096)
        tcp_answer = parse_packet(buffer)
    finally:
        power.close()
        cement.close()
    assert int(codes[spoofed.mid].value) == NOT_AUTHORIZED
    assert (answer.cn, answer.mn) == ("9014", BOILER_MN)
    assert (tcp_answer.cn, tcp_answer.mn) == ("9014", BOILER_MN)

    mine = {(FGD_MN, t0 + timedelta(seconds=i)) for i in range(n)} | {
        (BOILER_MN, t0 + timedelta(seconds=i)) for i in range(n + 1)
    }
    records = consume_keyed(infra.kafka_bootstrap, gateway.topics.readings.name, expect=len(mine))
    readings = [(k, r) for k, r in records if (r["mn"], datetime.fromisoformat(r["event_time"])) in mine]
    assert len(readings) == len(mine), gateway.tail()
    assert {k for k, _ in readings} == {b"jy-power-1-s1"}
    assert {(r["stack"], r["enterprise"]) for _, r in readings} == {("jy-power-1-s1", "jy-power-1")}
    facility = {FGD_MN: "jy-power-1-fgd1", BOILER_MN: "jy-power-1-boiler1"}
    assert all(r["facility"] == facility[r["mn"]] for _, r in readings)
    power_kw = sorted((r["mn"], r["source"], r["values"]["power"]["value"]) for _, r in readings)
    assert power_kw == sorted(
        [(FGD_MN, "mqtt-json", 1000.0 + i) for i in range(n)]
        + [(BOILER_MN, "mqtt-hj212", 3800.0 + i) for i in range(n)]
        + [(BOILER_MN, "tcp-hj212", 3900.0)]
    )
    assert {r["values"]["power"]["unit"] for _, r in readings} == {"kW"}
    assert {r["values"]["energy"]["unit"] for _, r in readings} == {"kWh"}

    letters = consume_all(infra.kafka_bootstrap, gateway.topics.dead_letters.name, expect=len(bad), settle_s=1.0)
    sent = {(f"mqtt:{topic}", payload.decode()): reason for (topic, payload), reason in bad.items()}
    got = {(d["origin"], d["payload_text"]): d for d in letters}
    assert {key: got[key]["reason"] for key in sent if key in got} == sent, gateway.tail()
    mismatch = got[(f"mqtt:{ESP_TOPIC}", fgd_json(t0 + timedelta(seconds=100), 1.0).decode())]
    assert "belongs to jy-power-1/jy-power-1-fgd1" in mismatch["detail"]
    assert (mismatch["stack"], mismatch["mn"]) == ("jy-power-1-s1", FGD_MN)
    # the gateway never saw the other enterprise's publish, nor took any of the good ones twice
    theirs = [d for d in letters if d["payload_text"] in {spoof.decode(), *(p.decode() for _, p in good)}]
    assert theirs == []
    assert (FGD_MN, t0 + timedelta(seconds=103)) not in {
        (r["mn"], datetime.fromisoformat(r["event_time"])) for _, r in records
    }
