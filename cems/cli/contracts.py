"""`cems contracts`: the wire contracts as JSON Schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console

app = typer.Typer(help="Wire contracts: JSON Schemas for device vendors and consumers.")


@app.command("schema")
def contracts_schema(
    out: Annotated[Path, typer.Option(help="folder to write the schemas into")] = Path("docs/schema"),
) -> None:
    """Write the JSON Schemas of the device reading, the reading and the dead letter."""
    from contracts.schema import schema_documents

    out.mkdir(parents=True, exist_ok=True)
    for name, text in schema_documents().items():
        (out / name).write_text(text, encoding="utf-8")
        console.print(f"wrote {out / name}")
