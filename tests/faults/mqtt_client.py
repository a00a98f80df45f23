"""A paho-mqtt client for fault tests, with its SUBACKs, PUBACKs and messages collected."""

from __future__ import annotations

import queue
import threading
import uuid
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .conftest import PrivateMosquitto


@dataclass
class Client:
    """A paho client with its SUBACKs, PUBACKs and messages collected."""

    mqttc: mqtt.Client
    protocol: MQTTProtocolVersion
    subacks: dict[int, list[ReasonCode]] = field(default_factory=dict)
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    messages: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)
    event: threading.Condition = field(default_factory=threading.Condition)

    def subscribe(self, topic_filter: str, timeout_s: float = 10) -> int:
        """SUBSCRIBE at QoS 1; the code the broker answered in its SUBACK."""
        _rc, mid = self.mqttc.subscribe(topic_filter, qos=1)
        assert mid is not None, f"SUBSCRIBE {topic_filter} not sent"
        with self.event:
            assert self.event.wait_for(lambda: mid in self.subacks, timeout_s), f"no SUBACK for {topic_filter}"
            (code,) = self.subacks[mid]
        return int(code.value)

    def publish(self, topic: str, payload: bytes) -> int:
        return int(self.mqttc.publish(topic, payload, qos=1).mid)

    def wait_acked(self, mids: list[int], timeout_s: float = 30) -> None:
        with self.event:
            assert self.event.wait_for(lambda: all(m in self.pubacks for m in mids), timeout_s), (
                f"{sum(m not in self.pubacks for m in mids)} of {len(mids)} PUBLISHes not acknowledged"
            )

    def drain(self) -> list[tuple[str, bytes]]:
        got = []
        while not self.messages.empty():
            got.append(self.messages.get_nowait())
        return got

    def close(self) -> None:
        self.mqttc.disconnect()
        self.mqttc.loop_stop()


def connect(
    broker: PrivateMosquitto,
    user: str,
    protocol: MQTTProtocolVersion = mqtt.MQTTv5,
    *,
    client_id: str = "",
    persistent: bool = False,
) -> Client:
    client_id = client_id or f"{user}-{uuid.uuid4().hex[:8]}"
    kwargs: dict[str, object] = {}
    if protocol == mqtt.MQTTv311:
        kwargs["clean_session"] = not persistent
    mqttc = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, **kwargs)  # type: ignore[arg-type]
    mqttc.max_inflight_messages_set(1000)
    mqttc.username_pw_set(user, broker.password(user))
    client = Client(mqttc, protocol)
    connected: queue.Queue[ReasonCode] = queue.Queue()

    def on_subscribe(_c, _u, mid, codes, _p):  # type: ignore[no-untyped-def]
        with client.event:
            client.subacks[mid] = list(codes)
            client.event.notify_all()

    def on_publish(_c, _u, mid, code, _p):  # type: ignore[no-untyped-def]
        with client.event:
            client.pubacks[mid] = code
            client.event.notify_all()

    mqttc.on_connect = lambda _c, _u, _f, rc, _p: connected.put(rc)
    mqttc.on_subscribe = on_subscribe
    mqttc.on_publish = on_publish
    mqttc.on_message = lambda _c, _u, m: client.messages.put((m.topic, bytes(m.payload)))
    connect_kwargs: dict[str, object] = {}
    if protocol == mqtt.MQTTv5:
        props = Properties(PacketTypes.CONNECT)
        if persistent:
            props.SessionExpiryInterval = 3600
        connect_kwargs = {"clean_start": not persistent, "properties": props}
    mqttc.connect(broker.host, broker.port, keepalive=30, **connect_kwargs)  # type: ignore[arg-type]
    mqttc.loop_start()
    rc = connected.get(timeout=10)
    assert not rc.is_failure, f"{user}: CONNECT refused: {rc}"
    return client
