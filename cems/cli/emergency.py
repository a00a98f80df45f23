"""`cems emergency`: declare, end and list heavy-pollution emergency responses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from contracts.emergency import Level

from .common import RegistryOption, aware_time, console, err

app = typer.Typer(help="Heavy-pollution emergency responses: declare, end, list, report.", no_args_is_help=True)

_Namespace = Annotated[str | None, typer.Option(help="Kafka topic namespace (default: CEMS_TOPIC_NAMESPACE or cems)")]


def _kafka(namespace: str | None) -> tuple[str, Any]:
    from contracts.topics import topics
    from streams.settings import StreamSettings

    settings = StreamSettings()
    ns = namespace or settings.topic_namespace
    return settings.bootstrap, topics(ns).emergency


@app.command("declare")
def declare(
    level: Annotated[Level, typer.Option(help="warning level")],
    start: Annotated[str, typer.Option(help="start, ISO 8601 with time zone, e.g. 2026-12-01T08:00:00+08:00")],
    declared_by: Annotated[str, typer.Option("--by", help="who declares it (name or office)")],
    end: Annotated[str | None, typer.Option(help="end (exclusive), ISO 8601; default: until ended")] = None,
    district: Annotated[
        list[str] | None, typer.Option(help="a district it covers (repeat); default: the whole zone")
    ] = None,
    response_id: Annotated[str | None, typer.Option("--id", help="response id (default: <start>-<level>)")] = None,
    note: Annotated[str | None, typer.Option(help="free text, e.g. the notice's number")] = None,
    registry: RegistryOption = None,
    namespace: _Namespace = None,
) -> None:
    """Declare a response: every worker applies it to the stacks of the districts it covers."""
    from cems.accounts import registry_path
    from cems.emergency import declare as do_declare
    from contracts.registry import load_registry

    reg = load_registry(registry or registry_path())
    bootstrap, topic = _kafka(namespace)
    response = do_declare(
        bootstrap, topic, level=level, start=aware_time(start, "--start"),
        end=aware_time(end, "--end") if end else None, districts=tuple(district or ()), declared_by=declared_by,
        response_id=response_id, note=note, known_districts={e.district for e in reg.enterprises},
    )  # fmt: skip
    console.print(f"declared {response.id}: {response.level.value}, {_scope(response.districts)}, {_span(response)}")


@app.command("end")
def end_response(
    response_id: Annotated[str, typer.Argument(help="the response id")],
    declared_by: Annotated[str, typer.Option("--by", help="who ends it")],
    at: Annotated[str | None, typer.Option(help="when it ends, ISO 8601 (default: now)")] = None,
    namespace: _Namespace = None,
) -> None:
    """End a response (a new revision of it: the workers stop judging hours from then on)."""
    from cems.emergency import end as do_end

    bootstrap, topic = _kafka(namespace)
    when = aware_time(at, "--at") if at else datetime.now(UTC)
    revised = do_end(bootstrap, topic, response_id, when, declared_by)
    console.print(f"ended {revised.id} at {when.isoformat()} (revision {revised.revision})")


@app.command("list")
def list_responses(
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table")] = False,
    namespace: _Namespace = None,
) -> None:
    """Every response declared, with its latest revision."""
    from cems.emergency import current

    bootstrap, topic = _kafka(namespace)
    responses = sorted(current(bootstrap, topic).values(), key=lambda r: r.start)
    if as_json:
        for r in responses:
            typer.echo(r.model_dump_json())
        return
    table = Table(title=f"{len(responses)} emergency responses in {topic.name}")
    for col in ("id", "level", "districts", "start", "end", "revision", "declared by", "note"):
        table.add_column(col)
    for r in responses:
        end = r.end.isoformat() if r.end else "until ended"
        table.add_row(
            r.id, r.level.value, _scope(r.districts), r.start.isoformat(), end, str(r.revision), r.declared_by,
            r.note or "",
        )  # fmt: skip
    console.print(table)


def _scope(districts: tuple[str, ...]) -> str:
    return ", ".join(districts) if districts else "whole zone"


def _span(response: Any) -> str:
    end = response.end.isoformat() if response.end else "until ended"
    return f"{response.start.isoformat()} to {end}"


def _write_json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    err.print(f"wrote {path}")
