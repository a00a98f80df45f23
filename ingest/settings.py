"""Gateway settings, from the environment (prefix ``CEMS_``) or the command line."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.reading import MAX_AGE_S, MAX_FUTURE_S
from contracts.registry import SAMPLE_REGISTRY

from .gateway import MAX_PAYLOAD_BYTES


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEMS_", extra="ignore")

    registry: Path = SAMPLE_REGISTRY
    topic_namespace: str = "cems"

    host: str = "127.0.0.1"
    #: where the broker is (default: host) and where the TCP listener and metrics bind (default: host)
    mqtt_host: str | None = None
    bind_host: str | None = None
    mqtt_port: int = 1883
    mqtt_user: str = "cems-platform"
    mqtt_password: SecretStr | None = None  # default: the local secrets store
    #: MQTT client id; stable across restarts so the broker redelivers unacknowledged messages,
    #: one per shard (each shard is its own persistent session), and secret: an account that
    #: knows it can take the session over. Default: derived from the shard and the platform's
    #: password (``ingest.mqtt_source.default_client_id``)
    gateway_client_id: str | None = None
    #: instances split the enterprises: this one takes those with crc32(id) % shards == shard
    gateway_shard: int = 0
    gateway_shards: int = 1
    #: the broker's queue limit for the gateway (max_queued_bytes): a warning at half of it
    mqtt_queue_limit_bytes: int | None = None
    #: payloads over this are refused unread (dead letter ``payload_too_large``)
    max_payload_bytes: int = Field(default=MAX_PAYLOAD_BYTES, gt=0, le=256 * 1024)  # the broker's limit

    kafka_port: int = 9092
    kafka_bootstrap: str | None = None

    #: HJ 212 over TCP listener (0 = off)
    gateway_tcp_port: int = 9212
    #: close a TCP connection with no authenticated packet for this long (a few reporting intervals)
    gateway_tcp_idle_timeout_s: float = Field(default=600.0, gt=0)
    #: close a TCP connection on which no packet has authenticated this long after it opened
    gateway_tcp_auth_timeout_s: float = Field(default=30.0, gt=0)
    #: TCP connections held at once, in all (at the cap the oldest never authenticated one makes
    #: room) and per source network (the address's first 24 bits, IPv4, or 64 bits, IPv6)
    gateway_tcp_max_connections: int = Field(default=10_000, gt=0)
    gateway_tcp_max_per_address: int = Field(default=64, gt=0)
    gateway_tcp_ipv4_prefix: int = Field(default=24, ge=0, le=32)
    gateway_tcp_ipv6_prefix: int = Field(default=64, ge=0, le=128)
    #: packets that do not authenticate (blank lines too): this many in a burst, this many per
    #: window after; one more closes the connection
    gateway_tcp_max_refusals: int = Field(default=100, gt=0)
    gateway_tcp_refusal_window_s: float = Field(default=10.0, gt=0)
    #: Prometheus metrics on http://host:port/metrics (0 = off)
    gateway_metrics_port: int = 9464

    #: readings may be this far ahead of arrival (``future_timestamp`` beyond)
    max_future_s: float = MAX_FUTURE_S
    #: the oldest event time accepted (``stale_timestamp`` beyond), and so the window of the
    #: duplicate memory, which start-up fills from Kafka: start-up time follows the readings
    #: produced in this window (``ingest/dedup.py``, ``ingest/dedup_loader.py``)
    max_age_s: float = Field(default=MAX_AGE_S, gt=0)
    #: start-up fails if loading the duplicate memory gets no record from Kafka for this long
    dedup_load_stall_s: float = Field(default=30.0, gt=0)

    @property
    def broker_host(self) -> str:
        return self.mqtt_host or self.host

    @property
    def listen_host(self) -> str:
        return self.bind_host or self.host

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"{self.host}:{self.kafka_port}"
