"""Run the gateway: wire the sources, the core and the Kafka sink together."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import start_http_server

from contracts.reading import DataKind
from contracts.registry import load_registry
from contracts.topics import topics

from .backfill import BackfillPlanner
from .dedup import from_epoch_us
from .dedup_loader import load_dedup_memory
from .gateway import Gateway
from .kafka_sink import KafkaSink
from .mqtt_source import MqttSource, default_client_id, stale_filters, subscriptions
from .settings import GatewaySettings
from .tcp_source import TcpLimits, TcpSource, raise_open_files_limit
from .validation import ReadingValidator, ValidationSettings

log = logging.getLogger("cems.gateway")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunningGateway:
    gateway: Gateway
    sink: KafkaSink
    mqtt: MqttSource
    tcp: TcpSource | None

    def receiving(self) -> bool:
        """Every receive path still running."""
        return self.mqtt.alive and self.sink.alive and (self.tcp is None or self.tcp.alive)

    def tick(self) -> None:
        """Timed work: ask devices for the periods the platform missed (``ingest.backfill``),
        refuse split packets that did not complete in time (even if no part comes any more)."""
        for topic, payload in self.gateway.backfill_requests():
            self.mqtt.publish(topic, payload)
        self.gateway.expire_splits()

    def stop(self) -> None:
        self.mqtt.stop()
        if self.tcp is not None:
            self.tcp.stop()
        self.sink.flush(30)
        self.sink.close()


def start_gateway(settings: GatewaySettings, mqtt_password: str) -> RunningGateway:
    registry = load_registry(settings.registry)
    topic_set = topics(settings.topic_namespace)
    shard, shards = settings.gateway_shard, settings.gateway_shards
    client_id = settings.gateway_client_id or default_client_id(shard, shards, mqtt_password)
    enterprises = [e.id for e in registry.enterprises]
    validator = ReadingValidator(registry, ValidationSettings(settings.max_future_s, settings.max_age_s))
    dedup, loaded = load_dedup_memory(
        settings.bootstrap,
        topic_set.readings.name,
        window_s=settings.max_age_s,
        max_future_s=settings.max_future_s,
        now=utc_now(),
        client_id=client_id,
        stall_s=settings.dedup_load_stall_s,
    )
    log.info("duplicate memory loaded from kafka", extra=loaded.log_fields())
    sink = KafkaSink(settings.bootstrap, topic_set, client_id=client_id)
    backfill = BackfillPlanner()
    for mn, kind, last_us in dedup.latest():
        backfill.seed(mn, DataKind(kind), from_epoch_us(last_us))
    gateway = Gateway(validator, sink, dedup, utc_now, max_payload_bytes=settings.max_payload_bytes, backfill=backfill)
    if settings.gateway_metrics_port:
        start_http_server(settings.gateway_metrics_port, addr=settings.listen_host)
    tcp = None
    if settings.gateway_tcp_port:
        log.info("open files limit", extra={"nofile": raise_open_files_limit()})
        limits = TcpLimits(
            idle_timeout_s=settings.gateway_tcp_idle_timeout_s,
            auth_timeout_s=settings.gateway_tcp_auth_timeout_s,
            max_connections=settings.gateway_tcp_max_connections,
            max_per_address=settings.gateway_tcp_max_per_address,
            ipv4_prefix=settings.gateway_tcp_ipv4_prefix,
            ipv6_prefix=settings.gateway_tcp_ipv6_prefix,
            max_refusals=settings.gateway_tcp_max_refusals,
            refusal_window_s=settings.gateway_tcp_refusal_window_s,
        )
        tcp = TcpSource(settings.listen_host, settings.gateway_tcp_port, gateway.handle_tcp, limits)
        tcp.start()
    mqtt = MqttSource(
        host=settings.broker_host,
        port=settings.mqtt_port,
        user=settings.mqtt_user,
        password=mqtt_password,
        client_id=client_id,
        filters=subscriptions(enterprises, shard, shards),
        handler=gateway.handle_mqtt,
        queue_limit_bytes=settings.mqtt_queue_limit_bytes,
        stale=stale_filters(enterprises, shard, shards),
    )
    mqtt.start()
    log.info(
        "gateway running",
        extra={
            "mqtt": f"{settings.broker_host}:{settings.mqtt_port}",
            "tcp": tcp.port if tcp else None,
            "kafka": settings.bootstrap,
            "readings_topic": topic_set.readings.name,
            "stacks": len(registry.stacks()),
            "meters": len(registry.facilities()),
        },
    )
    return RunningGateway(gateway, sink, mqtt, tcp)


def run_gateway(settings: GatewaySettings, mqtt_password: str) -> int:
    """Run until SIGTERM/SIGINT (exit 0) or until Kafka refuses a record for good (exit 1)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    running = start_gateway(settings, mqtt_password)
    while not stop.is_set() and not running.gateway.failed.is_set() and running.receiving():
        running.tick()
        stop.wait(0.5)
    if running.gateway.failed.is_set():
        log.error("gateway stopping after a Kafka failure", extra={"error": str(running.gateway.failure)})
        running.mqtt.stop()
        return 1
    if not running.receiving():
        # a receive path died: exit non-zero so the supervisor restarts the gateway
        failure = running.mqtt.failure or running.sink.failure or "a thread ended"
        log.error("gateway stopping: a receive or delivery path died", extra={"error": failure})
        running.mqtt.stop()
        return 1
    running.stop()
    log.info("gateway stopped")
    return 0
