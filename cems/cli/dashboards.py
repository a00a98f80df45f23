"""`cems dashboards`: the Grafana dashboards generated from code, and their queries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from .common import NamespaceOption, aware_time, console, err, given, influx_token

app = typer.Typer(help="Grafana dashboards generated from code (dashboards/), and their queries.")


@app.command("generate")
def dashboards_generate(
    check: Annotated[
        bool, typer.Option(help="only check that dashboards/json matches the code; exit 1 if not")
    ] = False,
) -> None:
    """Write the dashboards' JSON into dashboards/json/ (Grafana provisions that folder)."""
    from dashboards.generate import JSON_DIR, stale, write

    if check:
        problems = stale()
        for name in problems:
            err.print(f"{JSON_DIR / name}: differs from the generated dashboard; run cems dashboards generate")
        raise typer.Exit(1 if problems else 0)
    for path in write():
        console.print(f"wrote {path}")


@app.command("verify")
def dashboards_verify(
    hours: Annotated[float, typer.Option(help="time range: the last HOURS (ignored with --start)")] = 6.0,
    start: Annotated[str | None, typer.Option(help="range start, ISO 8601 with time zone")] = None,
    stop: Annotated[str | None, typer.Option(help="range end, ISO 8601 with time zone (default now)")] = None,
    stack: Annotated[str, typer.Option(help="the Stack variable of the stack detail board")] = "jy-power-1-s1",
    namespace: NamespaceOption = None,
) -> None:
    """Run every panel, variable and annotation query of every dashboard against InfluxDB, as
    Grafana would send it (variables "All", a one-minute interval), and show the rows each
    returns. Exit 1 if any query fails.

    Example: cems dashboards verify --start 2026-01-05T00:00:00+00:00 --stop 2026-01-05T04:00:00+00:00
    """
    from datetime import UTC, timedelta

    from influxdb_client import InfluxDBClient

    from dashboards.grafana import Range
    from dashboards.verify import default_values, run_all
    from streams.settings import StreamSettings

    settings = StreamSettings(**given(topic_namespace=namespace))
    end = aware_time(stop, "--stop") if stop else datetime.now(UTC)
    begin = aware_time(start, "--start") if start else end - timedelta(hours=hours)
    with InfluxDBClient(url=settings.influx_url, token=influx_token(settings), org=settings.influxdb_org) as client:
        results = run_all(
            client, Range(begin, end), default_values(settings.topic_namespace, stack),
            bucket=settings.influxdb_bucket, org=settings.influxdb_org,
        )  # fmt: skip
    table = Table(title=f"dashboard queries, {begin.isoformat()} to {end.isoformat()}, ns={settings.topic_namespace}")
    for col in ("board", "query", "rows", "error"):
        table.add_column(col)
    for r in results:
        table.add_row(r.board, r.item, str(r.rows), f"[red]{r.error}[/]" if r.error else "")
    console.print(table)
    failed = [r for r in results if r.error]
    if failed:
        err.print(f"{len(failed)} of {len(results)} queries failed")
        raise typer.Exit(1)
