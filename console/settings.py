"""Console settings (environment prefix ``CEMS_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from contracts.registry import SAMPLE_REGISTRY
from contracts.settings import KafkaSettings


class ConsoleSettings(KafkaSettings):
    registry: Path = SAMPLE_REGISTRY
    #: SQLAlchemy URL; default: SQLite in the state folder (``cems console`` fills it in)
    console_database_url: str | None = None
    console_host: str = "127.0.0.1"
    console_port: int = 8600
    #: a YAML with the case policy (which kinds open cases, verification days); default built in
    console_policy: Path | None = None
    console_session_hours: float = 12.0
    #: send the session cookie over HTTPS only (set behind a TLS proxy)
    console_cookie_secure: bool = False
    console_login_max_failures: int = 5
    console_login_window_s: int = 900
    #: the consumer group-like name the console stores its alerts-topic positions under
    console_consumer: str = "console"
    #: acknowledge through the notifier's API at this URL (e.g. http://127.0.0.1:9466); unset:
    #: straight onto the acknowledgements topic
    console_notify_url: str | None = None
    notify_api_token: SecretStr | None = None
    #: Grafana, for links to a stack's detail dashboard
    grafana_url: str = "http://127.0.0.1:3000"

    influxdb_port: int = 8086
    influxdb_url: str | None = None
    influxdb_org: str = "cems"
    influxdb_bucket: str = "cems"
    influxdb_token: SecretStr | None = None

    @property
    def influx_url(self) -> str:
        return self.influxdb_url or f"http://{self.host}:{self.influxdb_port}"
