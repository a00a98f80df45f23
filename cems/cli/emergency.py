"""`cems emergency`: declare, end and list heavy-pollution emergency responses."""

from __future__ import annotations

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


@app.command("report")
def report(
    response_id: Annotated[str, typer.Argument(help="the response id")],
    csv_out: Annotated[Path | None, typer.Option("--csv", help="write the whole report as CSV here")] = None,
    registry: RegistryOption = None,
    namespace: _Namespace = None,
) -> None:
    """The response report from the hourly averages in InfluxDB: per enterprise each measure's
    compliant, non-compliant and unverifiable hours and the reduction achieved; for the region
    the reduction per pollutant against the plan's target."""
    from cems.accounts import registry_path
    from cems.emergency import current, report_window, write_csv
    from console.evidence import InfluxEvidence
    from contracts.errors import ConfigError, InfrastructureError
    from contracts.registry import load_registry
    from rules.emergency_report import ROW_COLUMNS, report_rows, response_report
    from streams.engine import load_engine
    from streams.settings import StreamSettings

    from .common import influx_token

    reg = load_registry(registry or registry_path())
    settings = StreamSettings()
    engine = load_engine(reg, settings.rules_file, settings.catalogue_file)  # the worker's rules
    bootstrap, topic = _kafka(namespace)
    response = current(bootstrap, topic).get(response_id)
    if response is None:
        raise ConfigError(f"no response {response_id!r} in {topic.name}; `cems emergency list` shows them")
    ns = namespace or settings.topic_namespace
    now = datetime.now(UTC)
    start, stop = report_window(response, reg.emergency_plan.baseline_days, now)
    source = InfluxEvidence(
        settings.influx_url, influx_token(settings), settings.influxdb_org, settings.influxdb_bucket, ns
    )
    try:
        hourly = source.hourly_averages(start, stop)
    except Exception as exc:  # the client raises urllib3 and ApiException errors
        raise InfrastructureError(f"reading hourly averages from InfluxDB at {settings.influx_url}: {exc}") from exc
    finally:
        source.close()
    result = response_report(engine.profiles, engine.settings, response, hourly, until=now)
    table = Table(title=f"{response.id}: {response.level.value}, {_scope(response.districts)}, {_span(response)}")
    for col in ("enterprise", "facility", "requirement", "compliant h", "non-compliant h", "unverifiable h"):
        table.add_column(col)
    for ent in result.enterprises:
        for m in ent.measures:
            table.add_row(
                ent.enterprise, m.facility, m.requirement, str(m.compliant_hours), str(m.noncompliant_hours),
                str(m.unverifiable_hours),
            )  # fmt: skip
    console.print(table)
    region = Table(title="Region: reduction against the baseline")
    for col in ("pollutant", "baseline kg", "measured kg", "reduction %", "target %", "met"):
        region.add_column(col)
    for reg_row in result.region:
        red = reg_row.reduction
        pct = red.reduction_pct
        region.add_row(
            red.pollutant, f"{red.baseline_kg:,.1f}", f"{red.measured_kg:,.1f}",
            "-" if pct is None else f"{pct:.1f}", "-" if reg_row.target_pct is None else f"{reg_row.target_pct:g}",
            "-" if reg_row.target_met is None else ("yes" if reg_row.target_met else "no"),
        )  # fmt: skip
    console.print(region)
    if csv_out is not None:
        with csv_out.open("w", encoding="utf-8", newline="") as f:
            write_csv(report_rows(result), ROW_COLUMNS, f)
        err.print(f"wrote {csv_out}")


def _scope(districts: tuple[str, ...]) -> str:
    return ", ".join(districts) if districts else "whole zone"


def _span(response: Any) -> str:
    end = response.end.isoformat() if response.end else "until ended"
    return f"{response.start.isoformat()} to {end}"
