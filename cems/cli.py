"""The ``cems`` command."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from contracts.errors import CemsError

app = typer.Typer(help="CEMS alerting: ingest, detection, storage and local infrastructure.", no_args_is_help=True)
infra_app = typer.Typer(help="Real Mosquitto, Kafka (KRaft) and InfluxDB 2 on loopback, for development and tests.")
app.add_typer(infra_app, name="infra")
topics_app = typer.Typer(help="The project's Kafka topics (the broker does not create topics by itself).")
app.add_typer(topics_app, name="topics")

console = Console()
err = Console(stderr=True)

ServerNames = Annotated[
    list[str] | None, typer.Argument(help="mosquitto, kafka, influxdb (default: all)", show_default=False)
]


def _servers(names: list[str] | None):  # type: ignore[no-untyped-def]
    from cems.infra.settings import InfraSettings
    from cems.infra.stack import select, servers

    from .accounts import mqtt_accounts

    settings = InfraSettings()
    return select(servers(settings, mqtt_accounts()), names or [])


def _fail(exc: CemsError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(code=1)


@infra_app.command("up")
def infra_up(names: ServerNames = None) -> None:
    """Install (first time), configure and start the servers; wait until each is healthy."""
    from cems.infra.stack import status, up

    try:
        chosen = _servers(names)
        up(chosen, say=console.print)
    except CemsError as exc:
        raise _fail(exc) from exc
    _print_status(status(chosen))


@infra_app.command("down")
def infra_down(names: ServerNames = None) -> None:
    """Stop the servers (their data stays under the state folder)."""
    from cems.infra.stack import down

    try:
        down(_servers(names), say=console.print)
    except CemsError as exc:
        raise _fail(exc) from exc


@infra_app.command("status")
def infra_status(names: ServerNames = None) -> None:
    """Show each server's pid, endpoint and health; exit 1 if any is not healthy."""
    from cems.infra.stack import status

    try:
        rows = status(_servers(names))
    except CemsError as exc:
        raise _fail(exc) from exc
    _print_status(rows)
    if not all(r.healthy for r in rows):
        raise typer.Exit(code=1)


@topics_app.command("ensure")
def topics_ensure() -> None:
    """Create every missing project topic with its partitions and retention."""
    from cems.infra.settings import InfraSettings
    from contracts.topics import ALL_TOPICS
    from streams.topics import ensure_topics

    settings = InfraSettings()
    try:
        created = ensure_topics(settings.kafka_bootstrap)
    except CemsError as exc:
        raise _fail(exc) from exc
    table = Table(title=f"Kafka topics at {settings.kafka_bootstrap}")
    for col in ("topic", "partitions", "state", "content"):
        table.add_column(col)
    for spec in ALL_TOPICS:
        table.add_row(
            spec.name, str(spec.partitions), "created" if spec.name in created else "exists", spec.description
        )
    console.print(table)


def _print_status(rows) -> None:  # type: ignore[no-untyped-def]
    table = Table(title="CEMS local infrastructure")
    for col in ("server", "endpoint", "pid", "health", "log"):
        table.add_column(col)
    for r in rows:
        health = "[green]healthy[/]" if r.healthy else f"[red]{r.detail}[/]"
        table.add_row(r.name, r.endpoint, str(r.pid or "-"), health, str(r.log))
    console.print(table)


if __name__ == "__main__":
    app()
