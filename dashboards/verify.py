"""Run every dashboard query against an InfluxDB, as Grafana would send it: after an upgrade
of InfluxDB or a change of the schema, this says which panels still work and what they return."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from influxdb_client import InfluxDBClient

from .boards import all_dashboards
from .grafana import ALL, Range, render
from .model import ALL_VALUE


@dataclass(frozen=True)
class QueryResult:
    board: str
    item: str  # panel title, "variable <name>" or "annotation <name>"
    rows: int
    error: str | None = None


def board_queries() -> Iterator[tuple[str, str, str]]:
    for board in all_dashboards():
        for panel in board.panels():
            yield board.uid, panel.title, panel.query
        for variable in board.variables:
            if variable.query is not None:
                yield board.uid, f"variable {variable.name}", variable.query
        for annotation in board.annotations:
            yield board.uid, f"annotation {annotation.name}", annotation.query


def default_values(namespace: str, stack: str) -> dict[str, str | Sequence[str]]:
    return {"ns": namespace, "district": ALL, "industry": ALL, "enterprise": ALL, "stack": stack}


def run_all(
    client: InfluxDBClient,
    time_range: Range,
    values: Mapping[str, str | Sequence[str]],
    *,
    bucket: str,
    org: str,
) -> list[QueryResult]:
    all_values = {v.name: ALL_VALUE for b in all_dashboards() for v in b.variables if v.query and v.include_all}
    results = []
    for board, item, query in board_queries():
        text = render(query, time_range, values, bucket=bucket, org=org, all_values=all_values)
        try:
            tables = client.query_api().query(text, org=org)
            results.append(QueryResult(board, item, sum(len(t.records) for t in tables)))
        except Exception as exc:  # the client raises ApiException and urllib3 errors
            results.append(QueryResult(board, item, 0, str(exc).strip().splitlines()[-1][:300]))
    return results
