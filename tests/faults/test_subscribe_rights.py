"""Subscribe rights (issue 10, item 2), on a private Mosquitto configured by the project's code.

An enterprise account may publish only its devices' channels under its own prefix and
subscribe only to its own ``ack`` and ``cmd``: any other SUBSCRIBE gets a failure code in
its SUBACK (0x80 in MQTT 3.1.1, 0x87 in MQTT 5), and the hijack of the issue (enterprise
connections joining a shared group on the readings, as the gateway once read them) leaves
the platform with every reading. No account, the platform's included, may join a shared group.
"""

from __future__ import annotations

import queue
import time
import uuid
from collections import Counter

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from contracts import mqtt_topics

from .conftest import PrivateMosquitto
from .mqtt_client import Client, connect

pytestmark = pytest.mark.timeout(120)

PROTOCOLS = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}
#: the SUBACK code of a refused subscription
REFUSED = {mqtt.MQTTv311: 0x80, mqtt.MQTTv5: 0x87}


def _stack(enterprise: str) -> str:
    return f"{enterprise}-s1"


def forbidden_filters(own: str, other: str) -> list[str]:
    return [
        "#",
        "+/#",
        f"{mqtt_topics.ROOT}/#",
        "$SYS/#",
        "$SYS/broker/store/messages/count",
        mqtt_topics.topic(other, "+", mqtt_topics.ACK_CHANNEL),
        mqtt_topics.topic(other, _stack(other), mqtt_topics.CMD_CHANNEL),
        "$share/cems-gateway/cems/v1/+/+/reading",
        f"$share/cems-gateway/{mqtt_topics.topic(own, '+', mqtt_topics.ACK_CHANNEL)}",
        mqtt_topics.topic("+", "+", mqtt_topics.JSON_CHANNEL),
        mqtt_topics.topic("+", "+", mqtt_topics.HJ212_CHANNEL),
        mqtt_topics.topic(own, "+", mqtt_topics.JSON_CHANNEL),  # not even its own readings
        f"{mqtt_topics.ROOT}/{own}/#",
        "$CONTROL/dynamic-security/#",
    ]


@pytest.mark.parametrize("version", PROTOCOLS)
def test_enterprise_subscribes_only_to_its_own_ack_and_cmd(private_mosquitto: PrivateMosquitto, version: str) -> None:
    protocol = PROTOCOLS[version]
    own, other = private_mosquitto.enterprises[:2]
    ent = connect(private_mosquitto, own, protocol)
    platform = connect(private_mosquitto, private_mosquitto.platform_user)
    try:
        refused = {f: ent.subscribe(f) for f in forbidden_filters(own, other)}
        assert refused == dict.fromkeys(refused, REFUSED[protocol]), refused
        granted = {
            f: ent.subscribe(f)
            for f in (
                *mqtt_topics.platform_filters(own),
                mqtt_topics.topic(own, _stack(own), mqtt_topics.ACK_CHANNEL),
            )
        }
        assert granted == dict.fromkeys(granted, 1), granted

        # what the platform publishes: only the enterprise's own ack and cmd reach it
        others = [
            mqtt_topics.topic(other, _stack(other), mqtt_topics.ACK_CHANNEL),
            mqtt_topics.topic(other, _stack(other), mqtt_topics.CMD_CHANNEL),
            mqtt_topics.topic(own, _stack(own), mqtt_topics.JSON_CHANNEL),
        ]
        mine = [
            mqtt_topics.topic(own, _stack(own), mqtt_topics.CMD_CHANNEL),
            mqtt_topics.topic(own, _stack(own), mqtt_topics.ACK_CHANNEL),
        ]
        mids = [platform.publish(t, t.encode()) for t in [*others, *mine]]
        platform.wait_acked(mids)
        deadline = time.monotonic() + 10
        seen: list[tuple[str, bytes]] = []
        # the broker keeps the platform's order: once the last message arrived, any earlier one
        # that was let through would have arrived before it
        while time.monotonic() < deadline and (mine[-1], mine[-1].encode()) not in seen:
            try:
                seen.append(ent.messages.get(timeout=0.2))
            except queue.Empty:
                continue
        time.sleep(0.3)
        seen += ent.drain()
        # the ack topic is matched by two granted subscriptions (``+`` and the stack): MQTT
        # delivers it once per matching subscription
        assert {t for t, _ in seen} == set(mine), seen
    finally:
        ent.close()
        platform.close()


@pytest.mark.parametrize("version", PROTOCOLS)
def test_enterprise_publishes_only_its_devices_channels(private_mosquitto: PrivateMosquitto, version: str) -> None:
    protocol = PROTOCOLS[version]
    own, other = private_mosquitto.enterprises[:2]
    platform = connect(private_mosquitto, private_mosquitto.platform_user)
    ent = connect(private_mosquitto, own, protocol)
    try:
        assert platform.subscribe(f"{mqtt_topics.ROOT}/#") == 1
        forbidden = [
            mqtt_topics.topic(other, _stack(other), mqtt_topics.JSON_CHANNEL),
            mqtt_topics.topic(other, _stack(other), mqtt_topics.HJ212_CHANNEL),
            mqtt_topics.topic(own, _stack(own), mqtt_topics.ACK_CHANNEL),
            mqtt_topics.topic(own, _stack(own), mqtt_topics.CMD_CHANNEL),
            f"{mqtt_topics.ROOT}/{own}/{_stack(own)}/other",
            f"{mqtt_topics.ROOT}/{own}/x/{_stack(own)}/reading",
        ]
        allowed = [mqtt_topics.topic(own, _stack(own), c) for c in mqtt_topics.DEVICE_CHANNELS]
        tag = uuid.uuid4().hex
        forbidden_mids = [ent.publish(t, f"spoof-{tag}".encode()) for t in forbidden]
        allowed_mids = [ent.publish(t, f"own-{tag}".encode()) for t in allowed]
        ent.wait_acked(forbidden_mids + allowed_mids)
        if protocol == mqtt.MQTTv5:
            assert {int(ent.pubacks[m].value) for m in forbidden_mids} == {0x87}
            assert {int(ent.pubacks[m].value) for m in allowed_mids} == {0}
        deadline = time.monotonic() + 10
        seen: list[tuple[str, bytes]] = []
        while time.monotonic() < deadline and len([p for _, p in seen if p == f"own-{tag}".encode()]) < len(allowed):
            try:
                seen.append(platform.messages.get(timeout=0.2))
            except queue.Empty:
                continue
        time.sleep(0.3)
        seen += platform.drain()
        assert sorted(seen) == sorted((t, f"own-{tag}".encode()) for t in allowed), seen
    finally:
        ent.close()
        platform.close()


def test_enterprises_joining_the_shared_group_leave_the_platform_every_reading(
    private_mosquitto: PrivateMosquitto,
) -> None:
    """The hijack row of issue 10: three enterprise connections try to join a ``$share``
    group on the readings while the platform reads them through a plain persistent
    subscription, as the gateway does. The platform may not join the group either."""
    readings = mqtt_topics.topic("+", "+", mqtt_topics.JSON_CHANNEL)
    group = f"$share/cems-gateway-{uuid.uuid4().hex[:6]}/{readings}"
    broker = private_mosquitto
    plain = connect(broker, broker.platform_user, client_id=f"gw-plain-{uuid.uuid4().hex[:6]}", persistent=True)
    shared = connect(broker, broker.platform_user)
    publishers = broker.enterprises[:5]
    versions = (mqtt.MQTTv5, mqtt.MQTTv311, mqtt.MQTTv5)
    intruders = [connect(broker, e, v) for e, v in zip(broker.enterprises[-3:], versions, strict=True)]
    senders = [connect(broker, e, mqtt.MQTTv311) for e in publishers]
    try:
        assert plain.subscribe(readings) == 1
        assert shared.subscribe(group) == REFUSED[shared.protocol]
        assert [i.subscribe(group) for i in intruders] == [REFUSED[i.protocol] for i in intruders]

        per_sender = 600
        sent = Counter[bytes]()
        started = time.monotonic()
        for sender, enterprise in zip(senders, publishers, strict=True):
            topic = mqtt_topics.topic(enterprise, _stack(enterprise), mqtt_topics.JSON_CHANNEL)
            mids = []
            for i in range(per_sender):
                payload = f'{{"enterprise":"{enterprise}","i":{i}}}'.encode()
                sent[payload] += 1
                mids.append(sender.publish(topic, payload))
            sender.wait_acked(mids)
        total = sum(sent.values())
        assert total == per_sender * len(publishers) == 3000

        def collect(client: Client) -> Counter[bytes]:
            got = Counter[bytes]()
            deadline = time.monotonic() + 30
            while sum(got.values()) < total and time.monotonic() < deadline:
                try:
                    got[client.messages.get(timeout=0.2)[1]] += 1
                except queue.Empty:
                    continue
            time.sleep(0.3)
            got.update(p for _, p in client.drain())
            return got

        assert collect(plain) == sent, "the plain subscription missed or duplicated readings"
        assert [c.drain() for c in [shared, *intruders]] == [[], [], [], []]
        assert time.monotonic() - started < 60
    finally:
        for c in [plain, shared, *intruders, *senders]:
            c.close()


def test_rights_follow_the_registry_and_survive_a_kill(private_mosquitto: PrivateMosquitto) -> None:
    """``start`` with the same registry keeps the broker; without an enterprise it restarts
    it and that account is refused; after SIGKILL and start the rights are the same."""
    broker = private_mosquitto
    pid = broker.pid()
    assert "already running" in broker.start()
    assert broker.pid() == pid

    removed = broker.enterprises[0]
    said = broker.reconfigure(accounts=[a for a in broker.accounts if a.username != removed])
    assert "configuration changed" in said, said
    assert broker.pid() not in (None, pid)
    refused: queue.Queue[ReasonCode] = queue.Queue()
    gone = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gone-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
    gone.username_pw_set(removed, broker.password(removed))
    gone.on_connect = lambda _c, _u, _f, rc, _p: refused.put(rc)
    gone.connect(broker.host, broker.port)
    gone.loop_start()
    try:
        assert refused.get(timeout=10).is_failure
    finally:
        gone.loop_stop()

    broker.kill()
    broker.start()
    ent = connect(broker, broker.enterprises[0], mqtt.MQTTv311)
    try:
        assert ent.subscribe("#") == 0x80
        assert ent.subscribe(mqtt_topics.platform_filters(broker.enterprises[0])[0]) == 1
    finally:
        ent.close()
