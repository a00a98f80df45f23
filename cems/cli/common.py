"""What the command groups share: the consoles, option types and settings helpers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer
from rich.console import Console

if TYPE_CHECKING:
    from pydantic import SecretStr


class _InfluxConfigured(Protocol):
    @property
    def influxdb_token(self) -> SecretStr | None: ...


console = Console()
err = Console(stderr=True)

RegistryOption = Annotated[
    Path | None, typer.Option(help="device registry YAML (default: CEMS_REGISTRY or the sample)")
]
NamespaceOption = Annotated[
    str | None,
    typer.Option(help="Kafka topic namespace, also the `ns` tag in InfluxDB (default: CEMS_TOPIC_NAMESPACE or cems)"),
]


def given(**options: Any) -> dict[str, Any]:
    """The command's options that were given, as settings overrides (the rest come from the
    environment and the defaults)."""
    return {k: v for k, v in options.items() if v is not None}


def aware_time(text: str, option: str) -> datetime:
    """An ISO 8601 time option, which must say its time zone."""
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise typer.BadParameter("give a time zone, e.g. 2026-03-02T08:00:00+08:00", param_hint=option)
    return t


def influx_token(settings: _InfluxConfigured) -> str:
    """The InfluxDB token: CEMS_INFLUXDB_TOKEN, else the one `cems infra up` generated."""
    from cems.infra.secrets import SecretStore
    from cems.infra.settings import InfraSettings

    if settings.influxdb_token:
        return str(settings.influxdb_token.get_secret_value())
    return SecretStore(InfraSettings().secrets_dir).influxdb_token()
