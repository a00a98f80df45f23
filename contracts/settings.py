"""Where Kafka is and which topic namespace to use: the settings every process shares
(environment prefix ``CEMS_``). Each process's settings class extends this one."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEMS_", extra="ignore")

    topic_namespace: str = "cems"
    host: str = "127.0.0.1"
    kafka_port: int = 9092
    #: overrides host:kafka_port, e.g. "kafka:29092" in docker-compose
    kafka_bootstrap: str | None = None

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"{self.host}:{self.kafka_port}"
