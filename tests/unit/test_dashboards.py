"""The dashboards as code: committed JSON is what the code generates, the layout is sound,
every query uses only variables its board defines, and Grafana's interpolation is reproduced."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from dashboards.boards import all_dashboards
from dashboards.generate import JSON_DIR, render_all, stale
from dashboards.grafana import ALL, Range, go_duration, interpolate_variables, render
from dashboards.model import DATASOURCE, GRID_WIDTH

REPO = Path(__file__).resolve().parents[2]
BOARDS = {f"{b.uid}.json": json.loads(text) for b, text in zip(all_dashboards(), render_all().values(), strict=True)}


def test_committed_json_is_what_the_code_generates() -> None:
    assert stale() == [], "run: cems dashboards generate"


def test_stale_names_a_changed_file(tmp_path: Path) -> None:
    for name, text in render_all().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert stale(tmp_path) == []
    first = sorted(render_all())[0]
    (tmp_path / first).write_text("{}", encoding="utf-8")
    (tmp_path / "old-board.json").write_text("{}", encoding="utf-8")
    assert stale(tmp_path) == [first, "old-board.json"]


def test_the_six_boards() -> None:
    titles = {doc["title"] for doc in BOARDS.values()}
    assert titles == {"Monitoring centre overview", "Stack detail", "Compliance", "Data quality", "Bypass watch",
                      "Electricity use and emergency response"}  # fmt: skip
    assert len({doc["uid"] for doc in BOARDS.values()}) == 6


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_layout_and_datasource(name: str) -> None:
    doc = BOARDS[name]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in doc["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= GRID_WIDTH, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not (mine & cells), f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] != "row":
            assert p["datasource"] == DATASOURCE
            assert p["description"]
            (target,) = p["targets"]
            assert target["datasource"] == DATASOURCE and target["query"].strip()


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_queries_use_only_the_boards_variables(name: str) -> None:
    doc = BOARDS[name]
    defined = {v["name"] for v in doc["templating"]["list"]}
    texts = [t["query"] for p in doc["panels"] for t in p.get("targets", [])]
    texts += [v["query"] for v in doc["templating"]["list"] if v["type"] == "query"]
    texts += [a["target"]["query"] for a in doc["annotations"]["list"] if "target" in a]
    used = {m for text in texts for m in re.findall(r"\$\{(\w+)", text)}
    assert used <= defined, used - defined
    for text in texts:
        assert 'from(bucket: "' not in text, "the bucket comes from the datasource (v.defaultBucket)"


def test_provisioned_datasource_is_the_one_panels_use() -> None:
    doc = yaml.safe_load((REPO / "dashboards/provisioning/datasources/influxdb.yaml").read_text(encoding="utf-8"))
    (ds,) = doc["datasources"]
    assert (ds["uid"], ds["type"], ds["jsonData"]["version"]) == (DATASOURCE["uid"], DATASOURCE["type"], "Flux")
    provider = yaml.safe_load((REPO / "dashboards/provisioning/dashboards/cems.yaml").read_text(encoding="utf-8"))
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/cems"
    assert JSON_DIR == REPO / "dashboards/json"


def test_variable_interpolation_like_grafana() -> None:
    values = {"ns": "cems", "district": ["济水街道", "a.b"], "industry": ALL, "stack": "jy-1"}
    text = 'r.ns == "${ns}" and r.d =~ /^${district:regex}$/ and r.i =~ /^${industry:regex}$/ and r.s == "$stack"'
    out = interpolate_variables(text, values, {"industry": ".*"})
    assert out == 'r.ns == "cems" and r.d =~ /^(济水街道|a\\.b)$/ and r.i =~ /^.*$/ and r.s == "jy-1"'
    assert interpolate_variables("${stack:regex}", {"stack": "a/b"}) == "a\\/b"
    with pytest.raises(KeyError, match="enterprise"):
        interpolate_variables("${enterprise}", values)


def test_macros_like_grafana() -> None:
    rng = Range(datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 5, 6, 30, tzinfo=UTC), timedelta(minutes=1))
    out = render(
        "range(start: v.timeRangeStart, stop: v.timeRangeStop) every: v.windowPeriod from(bucket: v.defaultBucket)",
        rng,
        {},
        bucket="cems",
        org="cems",
    )
    assert out == 'range(start: 2026-01-05T00:00:00Z, stop: 2026-01-05T06:30:00Z) every: 1m0s from(bucket: "cems")'
    assert [go_duration(timedelta(seconds=s)) for s in (0.5, 20, 60, 90, 3600, 5400)] == [
        "500ms",
        "20s",
        "1m0s",
        "1m30s",
        "1h0m0s",
        "1h30m0s",
    ]


# keys Grafana writes and reads that the schema models leave out
SCHEMA_GAPS = {"definition", "builtIn", "refId", "query"}


def _dropped(ours: object, back: object, path: str = "") -> list[str]:
    if isinstance(ours, dict) and isinstance(back, dict):
        out = []
        for key, value in ours.items():
            if key not in back:
                out.append(f"{path}/{key}")
            else:
                out += _dropped(value, back[key], f"{path}/{key}")
        return out
    if isinstance(ours, list) and isinstance(back, list):
        return [d for i, (a, b) in enumerate(zip(ours, back, strict=False)) for d in _dropped(a, b, f"{path}[{i}]")]
    return []


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_json_follows_grafanas_dashboard_schema(name: str) -> None:
    """Read into Grafana's schema models (dashboard, panels, per-type options and field config)
    and written back, nothing of ours is lost: no misspelt or unknown key."""
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    plugins.register_default_plugins()
    doc = BOARDS[name]
    back = json.loads(json.dumps(Dashboard.from_json(doc), cls=JSONEncoder))
    lost = [path for path in _dropped(doc, back) if path.rsplit("/", 1)[-1] not in SCHEMA_GAPS]
    assert lost == []
    assert len(back["panels"]) == len(doc["panels"])


# -- the stack status: defined in rules/fleet_status.py, rendered here ------------------------------------------
def test_status_names_are_not_written_in_the_dashboards_code() -> None:
    from rules.fleet_status import STATUSES, Status

    flux_source = (REPO / "dashboards/flux.py").read_text(encoding="utf-8")
    boards_source = (REPO / "dashboards/boards.py").read_text(encoding="utf-8")
    assert [s.value for s in STATUSES if f'"{s.value}"' in flux_source] == []
    # the order is not spelt out in prose either (the descriptions take it from rules/)
    pairs = [f"{a.value} > {b.value}" for a, b in itertools.pairwise(STATUSES)]
    assert [p for p in pairs if p in boards_source or p in flux_source] == []
    overview = json.dumps(BOARDS["cems-overview.json"], ensure_ascii=False)
    assert " > ".join(s.value for s in STATUSES if s is not Status.NORMAL) in overview


def _flux_branches(expr: str) -> list[tuple[str, int]]:
    """``if A then 7 else if B then 6 else 0`` -> [(A, 7), (B, 6), ("true", 0)]."""
    branches = [(cond, int(rank)) for cond, rank in re.findall(r"if (.+?) then (\d+) else ", expr)]
    return [*branches, ("true", int(expr.rsplit("else ", 1)[1]))]


def _flux_condition(cond: str, kind: str, parameter: str) -> bool:
    python = cond.replace("r.kind", repr(kind)).replace("r.parameter", repr(parameter)).replace("true", "True")
    assert re.fullmatch(r"[\w'\"\- ()=!]+", python), python
    return bool(eval(python))  # a comparison of string literals, nothing else


def test_the_overviews_rank_of_every_alert_kind_is_the_rules() -> None:
    """The rank the overview's Flux gives an open alert, evaluated branch by branch, is the rank of
    ``alert_status`` for every kind, on the whole stack (parameter tag ``-``) and on a parameter."""
    from contracts.alerts import AlertKind
    from dashboards import flux
    from rules.fleet_status import alert_status

    branches = _flux_branches(flux._rank_expr())
    assert len(branches) == 8
    for kind in AlertKind:
        for tag, parameter in (("-", None), ("so2", "so2")):
            rank = next(rank for cond, rank in branches if _flux_condition(cond, kind.value, tag))
            assert rank == alert_status(kind, parameter).rank, (kind, parameter)
    assert next(rank for cond, rank in branches if _flux_condition(cond, "a_new_kind", "so2")) == 0


def test_the_overview_names_each_rank_as_the_rules_do() -> None:
    from rules.fleet_status import STATUSES

    table = next(p for p in BOARDS["cems-overview.json"]["panels"] if p["title"] == "Stack status")
    query = table["targets"][0]["query"]
    for status in STATUSES[:-1]:
        assert f'if r.rank == {status.rank} then "{status.value}"' in query
    counts = next(p for p in BOARDS["cems-overview.json"]["panels"] if p["title"] == "Stacks by status")
    colours = {
        o["matcher"]["options"]: o["properties"][0]["value"]["fixedColor"] for o in counts["fieldConfig"]["overrides"]
    }
    assert colours == {s.value: s.colour for s in STATUSES}
