"""Notifier settings (environment prefix ``CEMS_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from contracts.registry import SAMPLE_REGISTRY
from contracts.settings import KafkaSettings

SAMPLE_ROUTING = Path(__file__).with_name("samples") / "jiyuan-routing.yaml"


class NotifySettings(KafkaSettings):
    registry: Path = SAMPLE_REGISTRY
    #: the routing YAML (receivers, channels, routes)
    routing: Path = SAMPLE_ROUTING
    #: Prometheus metrics on http://host:port/metrics (0 = off)
    notify_metrics_port: int = 0
    #: items ready longer ago than this (an outage of the notifier) are logged as expired
    notify_max_delay_s: int = 24 * 3600
    #: the longest the notifier sleeps between looks at its topics
    notify_poll_s: float = 0.2
    #: the HTTP API (acknowledgements for the case console) on host:port (0 = off); it needs
    #: a bearer token
    notify_api_port: int = 0
    notify_api_token: SecretStr | None = None
