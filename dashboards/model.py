"""Small builders for Grafana dashboard JSON (schema version 39, Grafana 10/11).

Plain dictionaries, because Grafana's own builders have no InfluxDB Flux target. Every panel
queries the provisioned datasource ``cems-influxdb`` with Flux; Grafana substitutes
``v.timeRangeStart``, ``v.timeRangeStop``, ``v.windowPeriod`` and ``v.defaultBucket`` and the
dashboard variables (``${stack}``, ``${district:regex}``) before InfluxDB sees the query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DATASOURCE = {"type": "influxdb", "uid": "cems-influxdb"}
SCHEMA_VERSION = 39
GRID_WIDTH = 24
#: what "All" stands for in `=~ /^${x:regex}$/` (Grafana uses a custom all value unescaped)
ALL_VALUE = ".*"

Json = dict[str, Any]


@dataclass
class Panel:
    """One panel; ``query`` is its Flux, ``check`` names what the tests verify it returns."""

    kind: str
    title: str
    query: str
    description: str
    width: int = 12
    height: int = 8
    unit: str | None = None
    options: Json = field(default_factory=dict)
    defaults: Json = field(default_factory=dict)
    overrides: list[Json] = field(default_factory=list)
    transformations: list[Json] = field(default_factory=list)

    def to_json(self, panel_id: int, x: int, y: int) -> Json:
        defaults: Json = {"color": {"mode": "palette-classic"}, **self.defaults}
        if self.unit:
            defaults["unit"] = self.unit
        out: Json = {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": DATASOURCE,
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "targets": [{"refId": "A", "datasource": DATASOURCE, "query": self.query.strip() + "\n"}],
            "fieldConfig": {"defaults": defaults, "overrides": self.overrides},
            "options": self.options,
        }
        if self.transformations:
            out["transformations"] = self.transformations
        return out


@dataclass
class Row:
    title: str


@dataclass
class Variable:
    """A dashboard variable: a hidden constant, or a Flux query over tag values."""

    name: str
    label: str
    query: str | None = None  # None: a constant
    constant: str = ""
    multi: bool = True
    include_all: bool = True

    def to_json(self) -> Json:
        if self.query is None:
            return {
                "name": self.name,
                "label": self.label,
                "type": "constant",
                "hide": 2,
                "query": self.constant,
                "current": {"text": self.constant, "value": self.constant},
            }
        out: Json = {
            "name": self.name,
            "label": self.label,
            "type": "query",
            "datasource": DATASOURCE,
            "definition": self.query.strip(),
            "query": self.query.strip(),
            "refresh": 2,  # on time range change
            "sort": 1,
            "multi": self.multi,
            "includeAll": self.include_all,
            "hide": 0,
        }
        if self.include_all:
            out["allValue"] = ALL_VALUE
            out["current"] = (
                {"text": ["All"], "value": ["$__all"]} if self.multi else {"text": "All", "value": "$__all"}
            )
        return out


@dataclass
class Annotation:
    name: str
    query: str
    color: str = "red"

    def to_json(self) -> Json:
        return {
            "name": self.name,
            "datasource": DATASOURCE,
            "enable": True,
            "iconColor": self.color,
            "target": {"refId": "Anno", "query": self.query.strip() + "\n"},
        }


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    items: list[Panel | Row]
    variables: list[Variable]
    annotations: list[Annotation] = field(default_factory=list)
    time_from: str = "now-24h"
    refresh: str = "1m"
    tags: tuple[str, ...] = ("cems",)
    links: list[Json] = field(default_factory=list)

    def panels(self) -> list[Panel]:
        return [p for p in self.items if isinstance(p, Panel)]

    def to_json(self) -> Json:
        panels: list[Json] = []
        x = y = row_height = 0
        for panel_id, item in enumerate(self.items, start=1):
            if isinstance(item, Row):
                if x:
                    y, x, row_height = y + row_height, 0, 0
                panels.append(
                    {
                        "id": panel_id,
                        "type": "row",
                        "title": item.title,
                        "collapsed": False,
                        "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                        "panels": [],
                    }
                )
                y += 1
                continue
            if x + item.width > GRID_WIDTH:
                y, x, row_height = y + row_height, 0, 0
            panels.append(item.to_json(panel_id, x, y))
            x += item.width
            row_height = max(row_height, item.height)
        builtin: Json = {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "timezone": "browser",
            "editable": False,
            "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "refresh": self.refresh,
            "time": {"from": self.time_from, "to": "now"},
            "links": self.links,
            "templating": {"list": [v.to_json() for v in self.variables]},
            "annotations": {"list": [builtin] + [a.to_json() for a in self.annotations]},
            "panels": panels,
        }


# -- field and panel options ---------------------------------------------------------------------
def mapping(values: dict[str, str]) -> list[Json]:
    """Value -> colour mappings for text cells (status, event, severity)."""
    return [
        {
            "type": "value",
            "options": {
                value: {"color": color, "index": i, "text": value} for i, (value, color) in enumerate(values.items())
            },
        }
    ]


def thresholds(*steps: tuple[float | None, str]) -> Json:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in steps]}


def column_override(column: str, **props: Any) -> Json:
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [{"id": k, "value": v} for k, v in props.items()],
    }


def colored_cells(column: str, values: dict[str, str]) -> Json:
    return column_override(column, **{"mappings": mapping(values), "custom.cellOptions": {"type": "color-background"}})


TABLE = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
TIMESERIES = {
    "legend": {"displayMode": "table", "placement": "right", "calcs": ["mean", "max"]},
    "tooltip": {"mode": "multi"},
}
