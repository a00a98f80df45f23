"""Stream worker and sink settings (environment prefix ``CEMS_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.registry import SAMPLE_REGISTRY


class StreamSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEMS_", extra="ignore")

    registry: Path = SAMPLE_REGISTRY
    rules_file: Path | None = None
    catalogue_file: Path | None = None
    topic_namespace: str = "cems"

    host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_bootstrap: str | None = None

    #: Faust application id (consumer group, table changelog names); default "<namespace>-detect"
    worker_app_id: str | None = None
    worker_data_dir: Path = Path(".cems/worker")
    #: readings (and ticks) processed together; each stack's state is written once per batch, so
    #: with many stacks a large batch writes each state for several readings (scripts/bench_pipeline.py:
    #: 1,000 stacks caught up at 3,270 readings/s with 500, 4,685/s with 5,000). Not 5,000 by
    #: default: with it, the worker-kill test (tests/integration/test_pipeline.py) found late
    #: readings after the restart in 2 runs of 3 (a partition judged at a time it had not reached);
    #: with 500, none in 3 runs. Not understood yet.
    worker_batch_size: int = 500
    worker_batch_wait_s: float = 0.5
    #: wall-clock seconds between watermark ticks for every stack
    tick_interval_s: float = 5.0
    #: "live": now = max(latest event time, wall clock) so total silence is noticed;
    #: "event": now = latest event time only (replaying history through Kafka)
    watermark: Literal["live", "event"] = "live"
    #: a readings partition silent this long (wall time) stops holding the watermark back
    watermark_idle_s: float = 10.0
    #: Prometheus /metrics port of the worker, 0 = off
    worker_metrics_port: int = 0

    influxdb_port: int = 8086
    influxdb_url: str | None = None
    influxdb_org: str = "cems"
    influxdb_bucket: str = "cems"
    influxdb_token: SecretStr | None = None
    sink_group: str = "cems-influx-sink"
    sink_batch_size: int = 5000
    sink_max_wait_s: float = 1.0
    #: Prometheus metrics of `cems sink` on http://host:port/metrics (0 = off)
    sink_metrics_port: int = 0
    #: back-off between tries of a write InfluxDB may take later: doubles from the first to the cap
    sink_retry_initial_s: float = 0.5
    sink_retry_max_s: float = 10.0

    @property
    def app_id(self) -> str:
        return self.worker_app_id or f"{self.topic_namespace}-detect"

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"{self.host}:{self.kafka_port}"

    @property
    def influx_url(self) -> str:
        return self.influxdb_url or f"http://{self.host}:{self.influxdb_port}"
