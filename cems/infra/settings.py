"""Where the local servers live, which ports they use, which versions they run.

Every field can be set from the environment with the ``CEMS_`` prefix, for example
``CEMS_KAFKA_PORT=19092`` or ``CEMS_STATE_DIR=/srv/cems``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


def _default_cache_dir() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cems"


class InfraSettings(BaseSettings):
    """Local infrastructure settings (loopback only)."""

    model_config = SettingsConfigDict(env_prefix="CEMS_", extra="ignore")

    host: str = "127.0.0.1"
    mqtt_port: int = 1883
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    influxdb_port: int = 8086
    postgres_port: int = 5432

    state_dir: Path = Field(default=REPO_ROOT / ".cems", description="data, logs, secrets, pid files")
    cache_dir: Path = Field(default_factory=_default_cache_dir, description="built binaries and jars")

    kafka_version: str = "4.1.1"
    kafka_heap: str = "-Xms256m -Xmx1g"
    influxdb_version: str = "v2.7.12"

    influxdb_org: str = "cems"
    influxdb_bucket: str = "cems"
    influxdb_user: str = "cems-admin"

    postgres_user: str = Field(default="cems", description="login role the project's code uses (CREATEDB)")
    postgres_db: str = Field(default="cems", description="database owned by postgres_user")
    postgres_bindir: Path | None = Field(
        default=None,
        description="folder with initdb and postgres (default: pg_config --bindir, /usr/lib/postgresql/*/bin)",
    )

    mqtt_platform_user: str = "cems-platform"
    # -- Mosquitto limits (cems.infra.mosquitto.render_config) ------------------------------
    mqtt_message_size_limit_bytes: int = Field(
        default=262_144, gt=0, description="largest PUBLISH payload the broker accepts; a reading is under 2 KB"
    )
    mqtt_outage_budget_s: int = Field(
        default=3600, gt=0, description="how long the gateway may be away before the broker's queue for it is full"
    )
    mqtt_bytes_per_reading: int = Field(default=1024, gt=0, description="payload bytes a queued reading is sized at")
    mqtt_queue_safety_factor: float = Field(default=2.0, ge=1.0)
    mqtt_queue_floor_bytes: int = Field(default=256 * 1024 * 1024, ge=0, description="max_queued_bytes never below")
    mqtt_autosave_interval_s: int = Field(default=5, gt=0, description="seconds between persistence saves")
    mqtt_max_inflight_messages: int = Field(
        default=1000, gt=0, description="unacknowledged QoS 1 messages per client (the gateway acks after Kafka)"
    )
    mqtt_sys_interval_s: int = Field(default=1, gt=0, description="seconds between $SYS updates")
    mqtt_persistent_client_expiration: str = Field(
        default="7d",
        pattern=r"^[1-9][0-9]*[hdwmy]$",
        description="offline sessions dropped after this (Mosquitto units)",
    )

    start_timeout_s: float = 90.0

    @property
    def mqtt_dir(self) -> Path:
        return self.state_dir / "mosquitto"

    @property
    def kafka_dir(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def influxdb_dir(self) -> Path:
        return self.state_dir / "influxdb"

    @property
    def postgres_dir(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def influxdb_url(self) -> str:
        return f"http://{self.host}:{self.influxdb_port}"

    @property
    def kafka_libs_dir(self) -> Path:
        return self.cache_dir / "kafka" / self.kafka_version / "libs"

    @property
    def influxd_binary(self) -> Path:
        return self.cache_dir / "influxdb" / self.influxdb_version / "influxd"
