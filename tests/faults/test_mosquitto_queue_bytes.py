"""The broker's queue for an absent subscriber is bounded by bytes, not by a message count,
and whatever it drops is counted in ``$SYS/broker/publish/messages/dropped`` (what the
gateway exports), on a private Mosquitto configured by the project's code."""

from __future__ import annotations

import queue
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from contracts import mqtt_topics

from .conftest import PrivateMosquitto
from .mqtt_client import connect

pytestmark = pytest.mark.timeout(120)

MIB = 1024 * 1024


def test_queue_is_bounded_by_bytes_and_drops_are_counted(private_mosquitto: PrivateMosquitto) -> None:
    broker = private_mosquitto
    # a 1 MiB queue: a budget of one second at the sample registry's load is far below the floor
    said = broker.reconfigure(mqtt_outage_budget_s=1, mqtt_queue_floor_bytes=MIB)
    assert "configuration changed" in said
    assert f"max_queued_bytes {MIB}" in broker.server.config_path.read_text()

    readings = mqtt_topics.topic("+", "+", mqtt_topics.JSON_CHANNEL)
    gateway_id = f"gw-{uuid.uuid4().hex[:6]}"
    away = connect(broker, broker.platform_user, mqtt.MQTTv311, client_id=gateway_id, persistent=True)
    assert away.subscribe(readings) == 1
    away.close()

    enterprise = broker.enterprises[0]
    topic = mqtt_topics.topic(enterprise, f"{enterprise}-s1", mqtt_topics.JSON_CHANNEL)
    sender = connect(broker, enterprise, mqtt.MQTTv311)
    sent = 3000
    payload_bytes = 1000
    mids = [sender.publish(topic, f"{i:06d}".encode().ljust(payload_bytes, b".")) for i in range(sent)]
    sender.wait_acked(mids)
    sender.close()

    watcher = connect(broker, broker.platform_user)
    assert watcher.subscribe("$SYS/broker/publish/messages/dropped") == 1
    dropped = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and dropped == 0:
        try:
            dropped = int(watcher.messages.get(timeout=0.5)[1])
        except queue.Empty:
            continue
    watcher.close()

    back = connect(broker, broker.platform_user, mqtt.MQTTv311, client_id=gateway_id, persistent=True)
    received: list[bytes] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(received) + dropped < sent:
        try:
            received.append(back.messages.get(timeout=0.5)[1])
        except queue.Empty:
            continue
    time.sleep(0.5)
    received += [p for _, p in back.drain()]
    back.close()

    print(f"\nqueue: sent {sent}, kept {len(received)}, dropped {dropped}")
    # about 1 MiB of 1,000-byte payloads was kept (a count limit would not depend on size)
    assert MIB // payload_bytes - 5 <= len(received) <= MIB // payload_bytes + 5, len(received)
    assert len(set(received)) == len(received)
    # the oldest were kept, the rest dropped, and every drop was counted
    assert received == [f"{i:06d}".encode().ljust(payload_bytes, b".") for i in range(len(received))]
    assert dropped == sent - len(received)
