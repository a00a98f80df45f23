"""Mosquitto with the project's config and ACL, over real connections."""

from __future__ import annotations

import queue
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings

pytestmark = pytest.mark.integration


def _client(infra: InfraSettings, user: str, password: str, name: str) -> tuple[mqtt.Client, ReasonCode]:
    connected: queue.Queue[ReasonCode] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    client.on_connect = lambda c, u, f, rc, p: connected.put(rc)
    client.connect(infra.host, infra.mqtt_port, keepalive=30)
    client.loop_start()
    rc = connected.get(timeout=10)
    return client, rc


def test_enterprise_cannot_publish_into_another_enterprises_prefix(
    infra: InfraSettings, secrets: SecretStore, unique: str
) -> None:
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    subscribed = threading.Event()
    platform, rc = _client(
        infra, infra.mqtt_platform_user, secrets.mqtt_password(infra.mqtt_platform_user), f"platform-{unique}"
    )
    assert not rc.is_failure
    platform.on_message = lambda c, u, m: received.put((m.topic, bytes(m.payload)))
    platform.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    platform.subscribe("cems/v1/#", qos=1)
    assert subscribed.wait(10)

    ent, rc = _client(infra, "jy-power-1", secrets.mqtt_password("jy-power-1"), f"ent-{unique}")
    assert not rc.is_failure
    try:
        foreign = ent.publish("cems/v1/jy-cement-1/jy-cement-1-s1/reading", f"spoof-{unique}", qos=1)
        own = ent.publish("cems/v1/jy-power-1/jy-power-1-s1/reading", f"own-{unique}", qos=1)
        own.wait_for_publish(10)
        foreign.wait_for_publish(10)
        # the broker keeps per-client order: once the later, allowed message arrived, the
        # earlier, foreign one would have arrived before it if it had been let through
        deadline = time.monotonic() + 10
        seen: list[tuple[str, bytes]] = []
        while time.monotonic() < deadline:
            try:
                seen.append(received.get(timeout=0.5))
            except queue.Empty:
                continue
            if any(p == f"own-{unique}".encode() for _, p in seen):
                break
        time.sleep(0.5)
        while not received.empty():
            seen.append(received.get_nowait())
        assert ("cems/v1/jy-power-1/jy-power-1-s1/reading", f"own-{unique}".encode()) in seen
        assert all(p != f"spoof-{unique}".encode() for _, p in seen), seen
    finally:
        for c in (ent, platform):
            c.disconnect()
            c.loop_stop()


def test_wrong_password_is_refused(infra: InfraSettings, unique: str) -> None:
    client, rc = _client(infra, "jy-power-1", "not-the-password", f"bad-{unique}")
    client.loop_stop()
    assert rc.is_failure
    assert rc.getName() in {"Bad user name or password", "Not authorized"}


def test_anonymous_access_is_refused(infra: InfraSettings, unique: str) -> None:
    connected: queue.Queue[ReasonCode] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"anon-{unique}", protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, u, f, rc, p: connected.put(rc)
    client.connect(infra.host, infra.mqtt_port, keepalive=30)
    client.loop_start()
    try:
        assert connected.get(timeout=10).is_failure
    finally:
        client.loop_stop()


def test_persistent_session_keeps_qos1_messages_while_subscriber_is_away(
    infra: InfraSettings, secrets: SecretStore, unique: str
) -> None:
    """Persistence on: a durable subscriber that disconnects gets its QoS 1 backlog on return."""
    pw = secrets.mqtt_password(infra.mqtt_platform_user)
    topic = "cems/v1/jy-power-2/jy-power-2-s1/reading"

    def durable() -> tuple[mqtt.Client, queue.Queue[bytes]]:
        got: queue.Queue[bytes] = queue.Queue()
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"durable-{unique}", protocol=mqtt.MQTTv311, clean_session=False
        )
        c.username_pw_set(infra.mqtt_platform_user, pw)
        c.on_message = lambda _c, _u, m: got.put(bytes(m.payload))
        c.connect(infra.host, infra.mqtt_port, keepalive=30)
        c.loop_start()
        return c, got

    sub, _ = durable()
    sub.subscribe(topic, qos=1)[1]
    time.sleep(0.5)
    sub.disconnect()
    sub.loop_stop()

    pub, rc = _client(infra, "jy-power-2", secrets.mqtt_password("jy-power-2"), f"pub-{unique}")
    assert not rc.is_failure
    payloads = [f"{unique}-{i}".encode() for i in range(5)]
    for p in payloads:
        pub.publish(topic, p, qos=1).wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()

    sub, got = durable()
    try:
        seen = [got.get(timeout=10) for _ in payloads]
        assert seen == payloads
    finally:
        sub.disconnect()
        sub.loop_stop()
