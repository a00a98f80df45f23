"""`cems topics`: the project's Kafka topics."""

from __future__ import annotations

import typer
from rich.table import Table

from .common import console

app = typer.Typer(help="The project's Kafka topics (the broker does not create topics by itself).")


@app.command("ensure")
def topics_ensure() -> None:
    """Create every missing project topic with its partitions and retention."""
    from cems.infra.settings import InfraSettings
    from cems.topics import ensure_topics
    from contracts.topics import ALL_TOPICS

    settings = InfraSettings()
    created = ensure_topics(settings.kafka_bootstrap)
    table = Table(title=f"Kafka topics at {settings.kafka_bootstrap}")
    for col in ("topic", "partitions", "state", "content"):
        table.add_column(col)
    for spec in ALL_TOPICS:
        table.add_row(
            spec.name, str(spec.partitions), "created" if spec.name in created else "exists", spec.description
        )
    console.print(table)
