"""MQTT in: a shared subscription, persistent session, manual acknowledgement (paho-mqtt 2.x)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from contracts.errors import InfrastructureError

from .validation import HJ212_CHANNEL, JSON_CHANNEL, TOPIC_ROOT

log = logging.getLogger("cems.gateway.mqtt")

Handler = Callable[[str, bytes, Callable[[], None], Callable[[bytes], None]], None]
SESSION_EXPIRY_S = 7 * 24 * 3600


def subscriptions(share_group: str) -> list[tuple[str, int]]:
    root = "/".join(TOPIC_ROOT)
    return [(f"$share/{share_group}/{root}/+/+/{channel}", 1) for channel in (JSON_CHANNEL, HJ212_CHANNEL)]


def ack_topic(topic: str) -> str:
    """``cems/v1/{enterprise}/{stack}/hj212`` -> ``cems/v1/{enterprise}/{stack}/ack``."""
    return topic.rsplit("/", 1)[0] + "/ack"


class MqttSource:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str,
        password: str,
        client_id: str,
        share_group: str,
        handler: Handler,
    ) -> None:
        self.host, self.port = host, port
        self.share_group = share_group
        self.handler = handler
        self.connected = threading.Event()
        self.refused: str | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        self.client.username_pw_set(user, password)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self, timeout_s: float = 15) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        try:
            self.client.connect(self.host, self.port, keepalive=30, clean_start=False, properties=props)
        except OSError as exc:
            raise InfrastructureError(
                f"mqtt broker {self.host}:{self.port} not reachable: {exc}", retryable=True
            ) from exc
        self.client.loop_start()
        if not self.connected.wait(timeout_s):
            self.client.loop_stop()
            raise InfrastructureError(
                f"mqtt broker {self.host}:{self.port}: {self.refused or 'no CONNACK'}", retryable=self.refused is None
            )

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        if getattr(rc, "is_failure", False):
            self.refused = f"connection refused: {rc}"
            log.error("mqtt connection refused", extra={"reason": str(rc)})
            return
        client.subscribe(subscriptions(self.share_group))
        log.info("mqtt connected", extra={"session_present": getattr(flags, "session_present", None)})
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        log.warning("mqtt disconnected", extra={"reason": str(rc)})

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        mid, qos, topic = msg.mid, msg.qos, msg.topic

        def ack() -> None:
            if qos > 0:
                client.ack(mid, qos)

        def answer(data: bytes) -> None:
            client.publish(ack_topic(topic), data, qos=1)

        self.handler(topic, bytes(msg.payload), ack, answer)
