"""`cems infra`: the local Mosquitto, Kafka, InfluxDB and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import RegistryOption, console

app = typer.Typer(
    help="Real Mosquitto, Kafka (KRaft), InfluxDB 2 and PostgreSQL on loopback, for development and tests."
)

ServerNames = Annotated[
    list[str] | None, typer.Argument(help="mosquitto, kafka, influxdb, postgres (default: all)", show_default=False)
]


def _servers(names: list[str] | None):  # type: ignore[no-untyped-def]
    from cems.accounts import mqtt_accounts
    from cems.infra.settings import InfraSettings
    from cems.infra.stack import select, servers

    settings = InfraSettings()
    return select(servers(settings, mqtt_accounts()), names or [])


@app.command("up")
def infra_up(names: ServerNames = None) -> None:
    """Install (first time), configure and start the servers; wait until each is healthy."""
    from cems.infra.stack import status, up

    chosen = _servers(names)
    up(chosen, say=console.print)
    _print_status(status(chosen))


@app.command("down")
def infra_down(names: ServerNames = None) -> None:
    """Stop the servers (their data stays under the state folder)."""
    from cems.infra.stack import down

    down(_servers(names), say=console.print)


@app.command("status")
def infra_status(names: ServerNames = None) -> None:
    """Show each server's pid, endpoint and health; exit 1 if any is not healthy."""
    from cems.infra.stack import status

    rows = status(_servers(names))
    _print_status(rows)
    if not all(r.healthy for r in rows):
        raise typer.Exit(code=1)


@app.command("mosquitto-config")
def infra_mosquitto_config(
    out: Annotated[Path, typer.Option(help="folder the broker reads, same path (docker-compose: /mosquitto/auth)")],
    registry: RegistryOption = None,
) -> None:
    """Write mosquitto.conf and the dynamic security file for the eclipse-mosquitto image."""
    from cems.accounts import mqtt_accounts
    from cems.infra.mosquitto import write_docker_config
    from cems.infra.settings import InfraSettings

    budget = write_docker_config(InfraSettings(), mqtt_accounts(registry), out)
    console.print(f"mosquitto: wrote {out}/mosquitto.conf and {out}/dynamic-security.json; {budget.describe()}")


def _print_status(rows) -> None:  # type: ignore[no-untyped-def]
    table = Table(title="CEMS local infrastructure")
    for col in ("server", "endpoint", "pid", "health", "log"):
        table.add_column(col)
    for r in rows:
        health = "[green]healthy[/]" if r.healthy else f"[red]{r.detail}[/]"
        table.add_row(r.name, r.endpoint, str(r.pid or "-"), health, str(r.log))
    console.print(table)
