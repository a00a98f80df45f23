"""MQTT in: one persistent session per gateway shard, manual acknowledgement (paho-mqtt 2.x).

Why not a shared subscription: Mosquitto 2.0 does not restore shared subscriptions from its
persistence file, so after a broker restart nothing is queued for a ``$share`` group until
the gateway reconnects, and what devices publish meanwhile is dropped. A plain subscription
of a persistent session (``clean_start=False``, session expiry a week) is restored with the
session, so the broker queues for the gateway from the moment it is back.

Shards: with ``shards`` > 1 each gateway instance (its own stable client id) subscribes to
the enterprises whose CRC-32 of the id, modulo ``shards``, is its ``shard``; every enterprise
belongs to exactly one shard. With one shard the gateway subscribes to everything.

The broker's own counters (``$SYS``: messages stored and their bytes, messages dropped) are
exported as metrics; the gateway warns when the stored bytes pass half of the queue limit
and logs an error whenever the broker's dropped count grows.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import zlib
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from contracts.errors import InfrastructureError
from contracts.mqtt_topics import ACK_CHANNEL, device_filters, sibling

from . import metrics

log = logging.getLogger("cems.gateway.mqtt")

Handler = Callable[[str, bytes, Callable[[], None], Callable[[bytes], None]], None]
SESSION_EXPIRY_S = 7 * 24 * 3600
#: reconnect after a lost connection within this many seconds (first try after a fifth of it)
RECONNECT_MAX_DELAY_S = 1.0

SYS_STORE_MESSAGES = "$SYS/broker/store/messages/count"
SYS_STORE_BYTES = "$SYS/broker/store/messages/bytes"
SYS_DROPPED = "$SYS/broker/publish/messages/dropped"


def shard_of(enterprise: str, shards: int) -> int:
    return zlib.crc32(enterprise.encode()) % shards


def subscriptions(enterprises: Iterable[str], shard: int = 0, shards: int = 1) -> list[tuple[str, int]]:
    """The topic filters (QoS 1) of one gateway shard."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
    if shards == 1:
        return [(f, 1) for f in device_filters()]
    return [(f, 1) for ent in sorted(enterprises) if shard_of(ent, shards) == shard for f in device_filters(ent)]


def stale_filters(enterprises: Iterable[str], shard: int = 0, shards: int = 1) -> list[str]:
    """Every filter a gateway session could hold from an earlier sharding and this shard must
    not: unsubscribed when the broker resumes a session, so that after resharding no two
    shards receive the same enterprise."""
    ours = {f for f, _ in subscriptions(enterprises, shard, shards)}
    every = [*device_filters(), *(f for ent in sorted(enterprises) for f in device_filters(ent))]
    return [f for f in every if f not in ours]


def default_client_id(shard: int, shards: int, password: str) -> str:
    """The gateway's MQTT client id when none is configured: stable across restarts (the
    broker keeps its session under it) and not guessable without the platform's password,
    because Mosquitto lets any authenticated account connect under any client id and so take
    over that session."""
    suffix = hashlib.sha256(f"cems-gateway-client-id|{password}".encode()).hexdigest()[:16]
    return f"cems-gateway-{shard}-of-{shards}-{suffix}"


def ack_topic(topic: str) -> str:
    """``cems/v1/{enterprise}/{stack}/hj212`` -> ``cems/v1/{enterprise}/{stack}/ack``."""
    return sibling(topic, ACK_CHANNEL)


class BrokerWatch:
    """The broker's ``$SYS`` counters as metrics, with a warning at half the queue limit and an
    error whenever the broker dropped messages. Pure apart from logging and metrics."""

    def __init__(self, queue_limit_bytes: int | None) -> None:
        self.queue_limit_bytes = queue_limit_bytes
        self.dropped: int | None = None
        self.over_half = False

    def update(self, topic: str, payload: bytes) -> None:
        try:
            value = int(payload.decode().strip())
        except (UnicodeDecodeError, ValueError):
            return
        if topic == SYS_STORE_MESSAGES:
            metrics.BROKER_STORED_MESSAGES.set(value)
        elif topic == SYS_STORE_BYTES:
            metrics.BROKER_STORED_BYTES.set(value)
            self._check_queue(value)
        elif topic == SYS_DROPPED:
            metrics.BROKER_DROPPED.set(value)
            if self.dropped is not None and value > self.dropped:
                log.error("the mqtt broker dropped messages", extra={"dropped": value - self.dropped, "total": value})
            self.dropped = value

    def _check_queue(self, stored_bytes: int) -> None:
        if not self.queue_limit_bytes:
            return
        over = stored_bytes > self.queue_limit_bytes / 2
        if over and not self.over_half:
            log.warning(
                "mqtt broker queue past half of its limit",
                extra={"stored_bytes": stored_bytes, "limit_bytes": self.queue_limit_bytes},
            )
        elif self.over_half and not over:
            log.info("mqtt broker queue back under half of its limit", extra={"stored_bytes": stored_bytes})
        self.over_half = over


class MqttSource:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str,
        password: str,
        client_id: str,
        filters: list[tuple[str, int]],
        handler: Handler,
        queue_limit_bytes: int | None = None,
        stale: list[str] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.filters = filters
        self.stale = stale or []
        self.handler = handler
        self.watch = BrokerWatch(queue_limit_bytes)
        self.connected = threading.Event()
        self.refused: str | None = None
        #: set when the receive thread died or a handler raised: the process must exit non-zero
        self.failure: str | None = None
        self._stopping = False
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        self.client.username_pw_set(user, password)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=RECONNECT_MAX_DELAY_S / 5, max_delay=RECONNECT_MAX_DELAY_S)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 15) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        try:
            self.client.connect(self.host, self.port, keepalive=10, clean_start=False, properties=props)
        except OSError as exc:
            raise InfrastructureError(
                f"mqtt broker {self.host}:{self.port} not reachable: {exc}", retryable=True
            ) from exc
        self.client.loop_start()
        # paho keeps its network thread here; watched so a dead thread stops the process
        self._thread = getattr(self.client, "_thread", None)
        if not self.connected.wait(timeout_s):
            self.client.loop_stop()
            raise InfrastructureError(
                f"mqtt broker {self.host}:{self.port}: {self.refused or 'no CONNACK'}", retryable=self.refused is None
            )

    @property
    def alive(self) -> bool:
        """False once the receive thread is gone or a handler failed (not after ``stop``)."""
        if self.failure is not None:
            return False
        return self._stopping or self._thread is None or self._thread.is_alive()

    def publish(self, topic: str, payload: bytes) -> None:
        """To a device (QoS 1; paho queues it while the connection is down)."""
        self.client.publish(topic, payload, qos=1)

    def stop(self) -> None:
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        if getattr(rc, "is_failure", False):
            self.refused = f"connection refused: {rc}"
            log.error("mqtt connection refused", extra={"reason": str(rc)})
            return
        if getattr(flags, "session_present", False) and self.stale:
            client.unsubscribe(self.stale)  # what an earlier sharding left in the session
        # resubscribe on every connection: a session the broker lost (or never had) gets them back
        client.subscribe(self.filters)
        client.subscribe([(SYS_STORE_MESSAGES, 0), (SYS_STORE_BYTES, 0), (SYS_DROPPED, 0)])
        log.info(
            "mqtt connected",
            extra={"session_present": getattr(flags, "session_present", None), "filters": len(self.filters)},
        )
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        if not self._stopping:
            log.warning("mqtt disconnected; reconnecting", extra={"reason": str(rc)})

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        mid, qos, topic = msg.mid, msg.qos, msg.topic
        if topic.startswith("$SYS/"):
            self.watch.update(topic, bytes(msg.payload))
            return

        def ack() -> None:
            if qos > 0:
                client.ack(mid, qos)

        def answer(data: bytes) -> None:
            # QoS 0: an answer is not kept for an offline session (a device that missed one
            # sends again, HJ 212's rule), so no account can make the broker hoard answers
            client.publish(ack_topic(topic), data, qos=0)

        try:
            self.handler(topic, bytes(msg.payload), ack, answer)
        except BaseException as exc:  # the gateway core turns input errors into dead letters: this is a bug
            self.failure = f"{type(exc).__name__}: {exc}"
            log.exception("mqtt handler failed; the gateway stops", extra={"topic": topic[:200]})
            raise
