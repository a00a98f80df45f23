"""The shared Mosquitto with the project's config (dynamic security from the registry), over real connections."""

from __future__ import annotations

import queue
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from cems.accounts import mqtt_accounts
from cems.infra.mosquitto import MosquittoServer
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


def test_the_running_broker_runs_the_configuration_generated_now(infra: InfraSettings) -> None:
    """``cems infra up`` restarts a broker whose generated configuration changed."""
    server = MosquittoServer(infra, mqtt_accounts())
    assert server.pid() is not None
    assert server.applied_fingerprint() == server.fingerprint(server.render())


def test_enterprise_subscription_outside_its_own_commands_is_refused(
    infra: InfraSettings, secrets: SecretStore, unique: str
) -> None:
    granted: queue.Queue[list[ReasonCode]] = queue.Queue()
    ent, rc = _client(infra, "jy-power-1", secrets.mqtt_password("jy-power-1"), f"ent-sub-{unique}")
    assert not rc.is_failure
    ent.on_subscribe = lambda c, u, mid, rcs, p: granted.put(list(rcs))
    try:
        codes = {}
        for topic_filter in ("#", "cems/v1/#", "$SYS/#", "$share/g/cems/v1/+/+/reading", "cems/v1/jy-power-1/+/ack"):
            ent.subscribe(topic_filter, qos=1)
            (code,) = granted.get(timeout=10)
            codes[topic_filter] = code.value
        assert codes == {
            "#": 0x87,
            "cems/v1/#": 0x87,
            "$SYS/#": 0x87,
            "$share/g/cems/v1/+/+/reading": 0x87,
            "cems/v1/jy-power-1/+/ack": 1,
        }
    finally:
        ent.disconnect()
        ent.loop_stop()


def test_platform_reads_the_broker_queue_counters_within_a_second_or_two(
    infra: InfraSettings, secrets: SecretStore, unique: str
) -> None:
    """The gateway exports the broker's queue depth and drops from ``$SYS``; with
    ``sys_interval 1`` a change shows within about a second (Mosquitto publishes a counter
    when it changed, retained)."""
    got: queue.Queue[tuple[str, bytes, float]] = queue.Queue()
    platform, rc = _client(
        infra, infra.mqtt_platform_user, secrets.mqtt_password(infra.mqtt_platform_user), f"sys-{unique}"
    )
    assert not rc.is_failure
    platform.on_message = lambda c, u, m: got.put((m.topic, bytes(m.payload), time.monotonic()))
    count = "$SYS/broker/store/messages/count"
    wanted = {count, "$SYS/broker/store/messages/bytes"}
    # ``$SYS/broker/publish/messages/dropped`` appears only once something was dropped: no
    # message under it means none was
    retained = f"cems/v1/jy-power-1/{unique}/ack"
    try:
        for topic in (*wanted, "$SYS/broker/publish/messages/dropped"):
            platform.subscribe(topic, qos=0)
        seen: dict[str, bytes] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not wanted <= set(seen):
            try:
                topic, payload, _ = got.get(timeout=0.5)
            except queue.Empty:
                continue
            seen[topic] = payload
        assert wanted <= set(seen)
        assert all(v.decode().isdigit() for v in seen.values()), seen
        # a retained message adds one to the store: the count follows within sys_interval
        published = time.monotonic()
        platform.publish(retained, b"x", qos=1, retain=True).wait_for_publish(10)
        updated_after_s = None
        while updated_after_s is None and time.monotonic() < published + 5:
            try:
                topic, _payload, at = got.get(timeout=0.2)
            except queue.Empty:
                continue
            if topic == count and at > published:
                updated_after_s = at - published
        assert updated_after_s is not None and updated_after_s < 2.5, f"count updated after {updated_after_s} s"
    finally:
        platform.publish(retained, b"", qos=1, retain=True).wait_for_publish(10)
        platform.disconnect()
        platform.loop_stop()


def test_payloads_above_the_message_size_limit_are_not_delivered(
    infra: InfraSettings, secrets: SecretStore, unique: str
) -> None:
    """``message_size_limit``: the broker drops a larger PUBLISH (MQTT 3.1.1: it still sends
    PUBACK, then closes the connection), and delivers one of exactly the limit."""
    limit = infra.mqtt_message_size_limit_bytes
    topic = f"cems/v1/jy-power-1/{unique}/reading"
    got: queue.Queue[int] = queue.Queue()
    platform, rc = _client(
        infra, infra.mqtt_platform_user, secrets.mqtt_password(infra.mqtt_platform_user), f"big-sub-{unique}"
    )
    assert not rc.is_failure
    subscribed = threading.Event()
    platform.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    platform.on_message = lambda c, u, m: got.put(len(m.payload))
    platform.subscribe(topic, qos=1)
    assert subscribed.wait(10)

    def device(name: str) -> tuple[mqtt.Client, threading.Event]:
        """An MQTT 3.1.1 device; its event is set at a PUBACK or when the broker drops it."""
        connected, answered = threading.Event(), threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{unique}", protocol=mqtt.MQTTv311)
        client.username_pw_set("jy-power-1", secrets.mqtt_password("jy-power-1"))
        client.on_connect = lambda c, u, f, rc, p: connected.set()
        client.on_publish = lambda c, u, mid, rc, p: answered.set()
        client.on_disconnect = lambda c, u, f, rc, p: answered.set()
        client.connect(infra.host, infra.mqtt_port, keepalive=30)
        client.loop_start()
        assert connected.wait(10)
        return client, answered

    too_big, too_big_answered = device("big")
    exact, exact_answered = device("exact")
    try:
        too_big.publish(topic, b"x" * (limit + 1), qos=1)
        assert too_big_answered.wait(20)
        exact.publish(topic, b"y" * limit, qos=1)
        assert exact_answered.wait(20)
        sizes = [got.get(timeout=10)]
        time.sleep(0.5)
        while not got.empty():
            sizes.append(got.get_nowait())
        assert sizes == [limit]
    finally:
        for client in (too_big, exact, platform):
            client.disconnect()
            client.loop_stop()
