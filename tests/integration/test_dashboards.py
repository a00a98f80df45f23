"""Every dashboard panel's Flux query, run against the real InfluxDB after the `faults`
scenario was simulated and replayed into it (`cems simulate --no-publish` then
`cems replay --influx`), must return what the detection engine decided.

Queries are rendered as Grafana would (variables, then the Flux macros; `dashboards.grafana`).
Expected values come from the replay's own output (alert events and hourly averages as JSON
lines) and from the simulated readings, never from InfluxDB.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from typer.testing import CliRunner

from cems.cli import app
from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings
from cems.replay import read_inputs
from contracts.alerts import AlertEvent, AlertEventType, AlertKind, HourlyAverage, Severity, alert_id, fingerprint
from contracts.parameters import Unit
from contracts.reading import DataFlag, DataKind, Measurement, Reading, Source
from contracts.registry import Registry, load_registry
from dashboards.boards import all_dashboards
from dashboards.grafana import ALL, Range, render
from rules import fleet_status as fs
from streams.influx_points import PointBuilder, StackTags, stack_tags

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, tzinfo=UTC)
END = T0 + timedelta(minutes=250)
MID = T0 + timedelta(minutes=150)  # exceedance, early warning, silence and a mark all open
ALL_VALUES = {"district": ".*", "industry": ".*", "enterprise": ".*"}
# the monitoring centre's order of statuses, worst first (the specification the boards follow)
ORDER = ["exceeding", "bypass suspected", "offline", "early warning", "suspect data", "data gap", "marked", "normal"]
RANK = {name: len(ORDER) - 1 - i for i, name in enumerate(ORDER)}


@dataclass
class Scenario:
    ns: str
    registry: Registry
    readings: list[Reading]
    events: list[AlertEvent]
    hourly: list[HourlyAverage]
    client: InfluxDBClient
    bucket: str
    org: str

    def query(
        self,
        query: str,
        *,
        start: datetime = T0 - timedelta(hours=1),
        stop: datetime = END,
        window: timedelta = timedelta(minutes=1),
        **variables: Any,
    ) -> list[dict[str, Any]]:
        values: dict[str, Any] = {
            "ns": self.ns,
            "district": ALL,
            "industry": ALL,
            "enterprise": ALL,
            "stack": "jy-power-1-s1",
            **variables,
        }
        text = render(
            query,
            Range(start, stop, window),
            values,
            bucket=self.bucket,
            org=self.org,
            all_values=ALL_VALUES,
        )
        tables = self.client.query_api().query(text)
        skip = {"result", "table", "_start", "_stop"}
        return [{k: v for k, v in r.values.items() if k not in skip} for t in tables for r in t.records]


@pytest.fixture(scope="module")
def scenario(infra: InfraSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    import uuid

    ns = f"dash{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("dashboards")
    messages, alerts, hourly = folder / "faults.txt", folder / "alerts.jsonl", folder / "hourly.jsonl"
    runner = CliRunner()
    sim = runner.invoke(
        app, ["simulate", "--scenario", "faults", "--no-publish", "--out", str(messages), "--start", T0.isoformat()]
    )
    assert sim.exit_code == 0, sim.output
    rep = runner.invoke(
        app, ["replay", str(messages), "--influx", "--namespace", ns, "--out", str(alerts), "--hourly-out", str(hourly)]
    )
    assert rep.exit_code == 0, rep.output
    assert "influxdb: wrote" in rep.output
    from cems.accounts import registry_path

    registry = load_registry(registry_path())
    data = read_inputs([messages], registry)
    events = [AlertEvent.model_validate_json(line) for line in alerts.read_text().splitlines()]
    hours = [HourlyAverage.model_validate_json(line) for line in hourly.read_text().splitlines()]
    token = SecretStore(infra.secrets_dir).influxdb_token()
    with InfluxDBClient(url=infra.influxdb_url, token=token, org=infra.influxdb_org, timeout=30_000) as client:
        yield Scenario(ns, registry, data.readings, events, hours, client, infra.influxdb_bucket, infra.influxdb_org)
        for namespace in (ns, f"tz{ns}"):
            forget(client, namespace, infra)


def forget(client: InfluxDBClient, namespace: str, infra: InfraSettings) -> None:
    """Delete a test namespace's points, so runs do not pile up in the bucket."""
    client.delete_api().delete(
        datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC), f'ns="{namespace}"',
        bucket=infra.influxdb_bucket, org=infra.influxdb_org,
    )  # fmt: skip


# -- expectations computed from the engine's output ----------------------------------------------------------
def open_at(events: list[AlertEvent], stop: datetime) -> dict[str, AlertEvent]:
    """alert_id -> latest event, for alerts not resolved by ``stop``."""
    latest: dict[str, AlertEvent] = {}
    for e in sorted(events, key=lambda e: (e.at, e.event is AlertEventType.RESOLVED)):
        if e.at < stop:  # Flux ranges end before their stop
            latest[e.alert_id] = e
    return {k: e for k, e in latest.items() if e.event is not AlertEventType.RESOLVED}


def rank_of(e: AlertEvent) -> int:
    if e.kind is AlertKind.EXCEEDANCE:
        return RANK["exceeding"]
    if e.kind is AlertKind.BYPASS:
        return RANK["bypass suspected"]
    if e.kind is AlertKind.DATA_GAP:
        return RANK["offline"] if e.parameter is None else RANK["data gap"]
    if e.kind in (AlertKind.EARLY_WARNING, AlertKind.SPIKE):
        return RANK["early warning"]
    if e.kind in (AlertKind.FLATLINE, AlertKind.ZS_MISMATCH, AlertKind.LIMIT_HUGGING):
        return RANK["suspect data"]
    return RANK["marked"] if e.kind is AlertKind.INVALID_MARK else 0


def expected_status(s: Scenario, stop: datetime) -> dict[str, str]:
    """Every stack with an open alert or a reading in the 30 days before ``stop``: its worst
    open condition, else "marked" if its latest flag of some parameter is not N, else normal."""
    ranks: dict[str, int] = {}
    for e in open_at(s.events, stop).values():
        ranks[e.stack] = max(ranks.get(e.stack, 0), rank_of(e))
    last_flags: dict[tuple[str, str], str] = {}
    for r in sorted(s.readings, key=lambda r: r.event_time):
        if stop - timedelta(days=30) <= r.event_time < stop:
            ranks.setdefault(r.stack, 0)
            for name, m in r.values.items():
                last_flags[(r.stack, name)] = m.flag.value
    for (stack, _), flag in last_flags.items():
        if flag != "N":
            ranks[stack] = max(ranks[stack], RANK["marked"])
    by_rank = {rank: name for name, rank in RANK.items()}
    return {stack: by_rank[rank] for stack, rank in ranks.items()}


@dataclass(frozen=True)
class Episode:
    start: datetime
    end: datetime | None
    minutes: int


def episodes(
    events: list[AlertEvent], kinds: set[AlertKind], start: datetime = T0 - timedelta(hours=1), stop: datetime = END
) -> dict[str, Episode]:
    """Episodes with an event before ``stop`` that were not resolved before ``start``."""
    out: dict[str, Episode] = {}
    for e in sorted(events, key=lambda e: e.at):
        if e.kind in kinds and e.at < stop:
            end = e.end if e.event is AlertEventType.RESOLVED else None
            previous = out.get(e.alert_id)
            end = end or (previous.end if previous else None)
            out[e.alert_id] = Episode(e.start, end, int(((end or stop) - e.start).total_seconds() // 60))
    return {k: ep for k, ep in out.items() if ep.end is None or ep.end >= start}


def panel(title: str) -> str:
    for board in all_dashboards():
        for p in board.panels():
            if p.title == title:
                return p.query
    raise KeyError(title)


CHECKED: set[str] = set()


def checks(*titles: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    CHECKED.update(titles)
    return lambda fn: fn


# -- overview ----------------------------------------------------------------------------------------------------
@checks("Stack status", "Stacks by status")
def test_overview_status_matches_the_engine_mid_scenario(scenario: Scenario) -> None:
    want = expected_status(scenario, MID)
    # the scenario's own story at minute 150
    assert want["jy-power-1-s1"] == "exceeding"
    assert want["jy-cement-2-s1"] == "offline" and want["jy-steel-3-s1"] == "offline"
    assert want["jy-steel-1-s1"] == "early warning"
    assert want["jy-steel-2-s1"] == "marked"
    rows = scenario.query(panel("Stack status"), stop=MID)
    assert {r["stack"]: r["status"] for r in rows} == want
    by_stack = {r["stack"]: r for r in rows}
    assert by_stack["jy-cement-2-s1"]["last_seen"] == max(
        r.event_time for r in scenario.readings if r.stack == "jy-cement-2-s1"
    )
    assert by_stack["jy-steel-3-s1"].get("last_seen") is None
    assert [r["rank"] for r in rows] == sorted((r["rank"] for r in rows), reverse=True)
    (counts,) = scenario.query(panel("Stacks by status"), stop=MID)
    assert counts == {name: Counter(want.values())[name] for name in ORDER}
    assert counts["exceeding"] >= 1


@checks("Stack status", "Stacks by status", "Open alerts")
def test_overview_at_any_time(scenario: Scenario) -> None:
    """Every half hour of the scenario, two days after it (no reading in the last day) and
    40 days after (only the stacks whose alerts are still open remain)."""
    stops = [T0 + timedelta(minutes=m) for m in range(30, 260, 30)]
    for stop in [*stops, END + timedelta(days=2), END + timedelta(days=40)]:
        want = expected_status(scenario, stop)
        rows = scenario.query(panel("Stack status"), stop=stop)
        assert {r["stack"]: r["status"] for r in rows} == want, stop
        (counts,) = scenario.query(panel("Stacks by status"), stop=stop)
        assert counts == {name: Counter(want.values())[name] for name in ORDER}, stop
        open_rows = scenario.query(panel("Open alerts"), stop=stop)
        assert {r["alert_id"] for r in open_rows} == set(open_at(scenario.events, stop)), stop
    assert want == {"jy-cement-2-s1": "offline", "jy-steel-3-s1": "offline"}


# -- the same status in Python: rules/fleet_status.py, as the case console evaluates it ----------------------------
def flag_samples(readings: list[Reading]) -> list[fs.FlagSample]:
    return [fs.FlagSample(r.stack, name, m.flag, r.event_time) for r in readings for name, m in r.values.items()]


def flux_status(s: Scenario, stop: datetime) -> list[tuple[str, str, str, datetime | None, int]]:
    rows = s.query(panel("Stack status"), stop=stop)
    return [(r["stack"], r["status"], r["problem"], r.get("last_seen"), r["rank"]) for r in rows]


def python_status(
    events: list[AlertEvent], readings: list[Reading], stop: datetime
) -> list[tuple[str, str, str, datetime | None, int]]:
    rows = fs.fleet_status(events, flag_samples(readings), stop)
    return [(r.stack, r.status.value, r.problem, r.last_seen, r.rank) for r in rows]


def assert_boards_agree_with_python(
    s: Scenario, tags: dict[str, StackTags], events: list[AlertEvent], readings: list[Reading], stop: datetime
) -> None:
    """Stack status row by row (order, status, problem, last seen, rank), the counts per status
    and the attention per district and industry (``tags``: each stack's)."""
    want = python_status(events, readings, stop)
    assert flux_status(s, stop) == want, stop
    (counts,) = s.query(panel("Stacks by status"), stop=stop)
    assert counts == {status.value: sum(row[1] == status.value for row in want) for status in fs.STATUSES}, stop
    for column, title in (("district", "Attention by district"), ("industry", "Attention by industry")):
        expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for stack, status, *_ in want:
            key = getattr(tags[stack], column)
            expected[key][0] += 1
            expected[key][1] += fs.Status(status).needs_attention
        rows = s.query(panel(title), stop=stop)
        assert {r[column]: [r["stacks"], r["attention"]] for r in rows} == dict(expected), (stop, column)


@checks("Stack status", "Stacks by status", "Attention by district", "Attention by industry")
def test_python_status_equals_the_boards_over_the_scenario(scenario: Scenario) -> None:
    """rules.fleet_status on the replay's alert events and the simulated readings gives the
    overview's table, row for row, every half hour and long after."""
    stops = [T0 + timedelta(minutes=m) for m in range(30, 260, 30)]
    statuses: set[str] = set()
    tags = stack_tags(scenario.registry)
    for stop in [*stops, END + timedelta(days=2), END + timedelta(days=40)]:
        assert_boards_agree_with_python(scenario, tags, scenario.events, scenario.readings, stop)
        statuses |= {row[1] for row in python_status(scenario.events, scenario.readings, stop)}
    assert {"exceeding", "offline", "early warning", "marked", "normal"} <= statuses


# a handful of stacks written as the sink writes them, each at one edge of the definition
NOW = datetime(2026, 6, 1, tzinfo=UTC)
H = NOW - timedelta(hours=1)
ALERT_EDGE = NOW - timedelta(seconds=fs.ALERT_LOOKBACK_S)
SEEN_EDGE = NOW - timedelta(seconds=fs.SEEN_LOOKBACK_S)


def _alert(
    stack: str, kind: AlertKind, parameter: str | None, *timeline: tuple[AlertEventType, datetime]
) -> list[AlertEvent]:
    fp = fingerprint(stack, parameter, kind)
    start = timeline[0][1]
    return [
        AlertEvent(
            event=event,
            kind=kind,
            severity=Severity.WARNING,
            alert_id=alert_id(fp, start),
            fingerprint=fp,
            enterprise=stack.rsplit("-", 1)[0],
            stack=stack,
            parameter=parameter,
            start=start,
            end=at if event is AlertEventType.RESOLVED else None,
            at=at,
            reason=f"{kind.value} on {stack}",
            evidence={},
        )
        for event, at in timeline
    ]


def _reading(stack: str, at: datetime, kind: DataKind = DataKind.REALTIME, **flags: str) -> Reading:
    values = {p: Measurement(value=1.0, unit=Unit.MG_M3, flag=DataFlag(flag)) for p, flag in flags.items()}
    return Reading(
        enterprise=stack.rsplit("-", 1)[0], stack=stack, mn=f"mn-{stack}", event_time=at, kind=kind,
        values=values, source=Source.REPLAY, received_at=at,
    )  # fmt: skip


def edge_cases() -> tuple[list[AlertEvent], list[Reading], dict[str, str]]:
    """Alert events, readings, and each stack's expected status at ``NOW``."""
    op, up, ack, res = (
        AlertEventType.OPENED,
        AlertEventType.UPDATED,
        AlertEventType.ACKNOWLEDGED,
        AlertEventType.RESOLVED,
    )
    m = timedelta(minutes=1)
    events = [
        *_alert("fs-a-s1", AlertKind.EXCEEDANCE, "so2", (op, H)),  # with a data gap below it
        *_alert("fs-a-s1", AlertKind.DATA_GAP, "nox", (op, H)),
        *_alert("fs-b-s1", AlertKind.EXCEEDANCE, "so2", (op, H), (up, H + 20 * m)),  # two exceedances: the tie
        *_alert("fs-b-s1", AlertKind.EXCEEDANCE, "nox", (op, H + 5 * m)),
        *_alert("fs-c-s1", AlertKind.BYPASS, None, (op, H), (ack, H + m)),  # acknowledged: still open
        *_alert("fs-d-s1", AlertKind.DATA_GAP, None, (op, NOW - timedelta(days=200)), (up, NOW - timedelta(days=100))),
        *_alert("fs-e-s1", AlertKind.DATA_GAP, None, (op, NOW - timedelta(days=400))),  # beyond the lookback
        *_alert("fs-f-s1", AlertKind.EXCEEDANCE, "pm", (op, ALERT_EDGE)),  # at the lookback's start
        *_alert("fs-g-s1", AlertKind.EXCEEDANCE, "so2", (op, NOW)),  # at "now": not yet
        *_alert("fs-i-s1", AlertKind.SPIKE, "pm", (op, H), (ack, H + m)),
        *_alert("fs-j-s1", AlertKind.FLATLINE, "so2", (op, H)),
        *_alert("fs-j-s1", AlertKind.ZS_MISMATCH, "nox", (op, H), (res, H + 2 * m)),
        *_alert("fs-k-s1", AlertKind.DATA_GAP, "nox", (op, H)),
        *_alert("fs-m-s1", AlertKind.INVALID_MARK, "so2", (op, H)),
        *_alert("fs-n-s1", AlertKind.EXCEEDANCE, "so2", (op, H), (up, H + 10 * m), (res, H + 10 * m)),  # same second
        *_alert("fs-p-s1", AlertKind.EXCEEDANCE, "nox", (op, H), (res, NOW)),  # resolved at "now": still open
    ]
    ms = timedelta(milliseconds=1)
    readings = [
        _reading("fs-a-s1", H + 10 * m, so2="N", nox="N"),
        _reading("fs-g-s1", SEEN_EDGE, so2="N"),  # at the seen window's start
        _reading("fs-h-s1", SEEN_EDGE - ms, so2="C"),  # just before it
        _reading("fs-k-s1", H + 3 * m, so2="C"),
        _reading("fs-l-s1", H, so2="N", nox="N"),
        # two data kinds at the same instant, the mark in one or the other: the mark wins
        _reading("fs-l-s1", H + 30 * m, so2="N", nox="C"),
        _reading("fs-l-s1", H + 30 * m, DataKind.MINUTE, so2="N", nox="N"),
        _reading("fs-q-s1", H + 30 * m, so2="N"),
        _reading("fs-q-s1", H + 30 * m, DataKind.MINUTE, so2="T"),
        _reading("fs-m-s1", H + 7 * m, nox="C"),
        _reading("fs-n-s1", H + 11 * m, so2="N"),
        _reading("fs-o-s1", H + 12 * m, so2="N", nox="N"),
        _reading("fs-o-s1", NOW, so2="C"),  # at "now": not yet
    ]
    want = {
        "fs-a-s1": "exceeding", "fs-b-s1": "exceeding", "fs-c-s1": "bypass suspected", "fs-d-s1": "offline",
        "fs-f-s1": "exceeding", "fs-g-s1": "normal", "fs-i-s1": "early warning", "fs-j-s1": "suspect data",
        "fs-k-s1": "data gap", "fs-l-s1": "marked", "fs-m-s1": "marked", "fs-n-s1": "normal", "fs-o-s1": "normal",
        "fs-p-s1": "exceeding", "fs-q-s1": "marked",
    }  # fmt: skip
    return events, readings, want


@checks("Stack status", "Stacks by status", "Attention by district", "Attention by industry")
def test_python_status_equals_the_boards_at_the_edges(scenario: Scenario, infra: InfraSettings) -> None:
    """Every status, ties, acknowledged and resolved alerts, events at the same second, flags
    at the same instant and both windows' boundaries, written into a namespace of their own."""
    events, readings, want = edge_cases()
    ns = f"fs{scenario.ns}"
    fleet = list(scenario.registry.stacks())  # districts and industries borrowed for the test stacks
    tags = {
        stack: StackTags("fs", fleet[i % len(fleet)][0].district, fleet[i % len(fleet)][0].industry.value)
        for i, stack in enumerate(sorted({e.stack for e in events} | {r.stack for r in readings}))
    }
    builder = PointBuilder(tags, ns)
    points = [builder.alert(e) for e in events] + [builder.reading(r) for r in readings]
    try:
        scenario.client.write_api(write_options=SYNCHRONOUS).write(bucket=scenario.bucket, record=points)
        edge = Scenario(ns, scenario.registry, [], [], [], scenario.client, scenario.bucket, scenario.org)
        python = python_status(events, readings, NOW)
        assert {stack: status for stack, status, *_ in python} == want
        assert {s.value for s in fs.STATUSES} == set(want.values())
        by_stack = {row[0]: row for row in python}
        assert by_stack["fs-b-s1"][2] == "exceedance nox"  # the smaller text of two exceedances
        assert by_stack["fs-l-s1"][2:4] == ("marked C nox", H + timedelta(minutes=30))
        assert by_stack["fs-q-s1"][2] == "marked T so2"
        assert by_stack["fs-m-s1"][2] == "invalid_mark so2"
        assert by_stack["fs-g-s1"][3] == SEEN_EDGE and by_stack["fs-d-s1"][3] is None
        assert [row[0] for row in python[:4]] == ["fs-a-s1", "fs-b-s1", "fs-f-s1", "fs-p-s1"]  # ties by stack
        assert_boards_agree_with_python(edge, tags, events, readings, NOW)
    finally:
        forget(scenario.client, ns, infra)


@checks("Stack status")
def test_overview_filters_by_district(scenario: Scenario) -> None:
    district = next(e.district for e, s in scenario.registry.stacks() if s.id == "jy-power-1-s1")
    rows = scenario.query(panel("Stack status"), stop=MID, district=[district])
    assert {r["stack"] for r in rows} == {s.id for e, s in scenario.registry.stacks() if e.district == district}
    assert len(rows) < len(list(scenario.registry.stacks()))


@checks("Attention by district", "Attention by industry")
def test_overview_attention_counts(scenario: Scenario) -> None:
    want = expected_status(scenario, MID)
    for column, title in (("district", "Attention by district"), ("industry", "Attention by industry")):
        expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for e, s in scenario.registry.stacks():
            key = e.district if column == "district" else e.industry.value
            expected[key][0] += 1
            expected[key][1] += want[s.id] != "normal"
        rows = scenario.query(panel(title), stop=MID)
        assert {r[column]: [r["stacks"], r["attention"]] for r in rows} == dict(expected)


@checks("Open alerts")
def test_overview_open_alerts_with_age(scenario: Scenario) -> None:
    want = open_at(scenario.events, MID)
    rows = scenario.query(panel("Open alerts"), stop=MID)
    assert {r["alert_id"] for r in rows} == set(want)
    for r in rows:
        e = want[r["alert_id"]]
        assert r["opened"] == e.start
        assert r["age_h"] == pytest.approx((MID - e.start).total_seconds() / 3600)
        assert (r["kind"], r["stack"], r["last_event"]) == (e.kind.value, e.stack, e.event.value)
    # at the end the exceedances have resolved; the silent and never-reporting stacks remain
    end_rows = scenario.query(panel("Open alerts"), stop=END)
    assert {r["alert_id"] for r in end_rows} == set(open_at(scenario.events, END))
    assert {"jy-cement-2-s1", "jy-steel-3-s1"} <= {r["stack"] for r in end_rows}


@checks("Alerts opened per hour")
def test_overview_alerts_opened_per_hour(scenario: Scenario) -> None:
    want: Counter[tuple[str, datetime]] = Counter()
    for e in scenario.events:
        if e.event is AlertEventType.OPENED:
            # aggregateWindow stamps each hour [h, h+1) with its end
            want[(e.kind.value, e.at.replace(minute=0, second=0) + timedelta(hours=1))] += 1
    rows = scenario.query(panel("Alerts opened per hour"))
    assert {(r["kind"], r["_time"]): r["_value"] for r in rows} == dict(want)
    assert sum(want.values()) == len([e for e in scenario.events if e.event == "opened"])


# -- stack detail ------------------------------------------------------------------------------------------------
def _hourly(s: Scenario, stack: str, parameters: set[str], field: str) -> dict[tuple[str, datetime], float]:
    return {
        (f"{h.parameter} {field}", h.hour_start): getattr(h, field)
        for h in s.hourly
        if h.stack == stack and h.parameter in parameters and getattr(h, field) is not None
    }


@checks("Hourly converted SO2, NOx, PM and limits", "Hourly NH3 slip, NMHC and limits")
def test_stack_hourly_converted_and_limits_equal_the_engine(scenario: Scenario) -> None:
    for title, stack, params in (
        ("Hourly converted SO2, NOx, PM and limits", "jy-power-1-s1", {"so2", "nox", "pm"}),
        ("Hourly NH3 slip, NMHC and limits", "jy-power-2-s1", {"nh3"}),
        ("Hourly NH3 slip, NMHC and limits", "jy-chem-1-s1", {"nmhc"}),
    ):
        rows = scenario.query(panel(title), stack=stack)
        got = {(r["series"], r["_time"]): r["_value"] for r in rows}
        want = {**_hourly(scenario, stack, params, "converted"), **_hourly(scenario, stack, params, "limit")}
        assert got.keys() == want.keys(), title
        assert all(got[k] == pytest.approx(v) for k, v in want.items())
    # the exceedance hour of the scenario shows above its limit line
    rows = scenario.query(panel("Hourly converted SO2, NOx, PM and limits"), stack="jy-power-1-s1")
    so2 = {r["_time"]: r["_value"] for r in rows if r["series"] == "so2 converted"}
    limit = {r["_time"]: r["_value"] for r in rows if r["series"] == "so2 limit"}
    assert so2[T0 + timedelta(hours=1)] > limit[T0 + timedelta(hours=1)]


@checks("Raw concentrations", "Raw NH3 and NMHC", "O2 and humidity", "Flow", "Temperature")
def test_stack_minute_series_are_the_readings(scenario: Scenario) -> None:
    cases = (
        ("Raw concentrations", ("so2", "nox", "pm")),
        ("Raw NH3 and NMHC", ("nh3",)),
        ("O2 and humidity", ("o2", "humidity")),
        ("Flow", ("flow",)),
        ("Temperature", ("temperature",)),
    )
    for title, fields in cases:
        rows = scenario.query(panel(title), stack="jy-power-2-s1")
        for name in fields:
            want = sorted(r.values[name].value for r in scenario.readings if r.stack == "jy-power-2-s1")
            got = sorted(r["_value"] for r in rows if r["_field"] == name)
            assert got == pytest.approx(want), (title, name)


@checks("Raw concentrations")
def test_stack_series_average_over_the_display_interval(scenario: Scenario) -> None:
    rows = scenario.query(panel("Raw concentrations"), stack="jy-power-1-s1", window=timedelta(minutes=10))
    got = {r["_time"]: r["_value"] for r in rows if r["_field"] == "so2"}
    windows: dict[datetime, list[float]] = defaultdict(list)
    for r in scenario.readings:
        if r.stack == "jy-power-1-s1" and r.facility is None:  # the stack's own, not its meters'
            t = r.event_time
            windows[t.replace(minute=t.minute - t.minute % 10, second=0) + timedelta(minutes=10)].append(
                r.values["so2"].value
            )
    assert got == pytest.approx({t: sum(v) / len(v) for t, v in windows.items()})
    assert len(got) == 25


@checks("Data flags")
def test_stack_flags_show_the_over_range_mark(scenario: Scenario) -> None:
    rows = scenario.query(panel("Data flags"), stack="jy-steel-2-s1")
    t_minutes = [r for r in rows if r["_field"] == "so2_flag" and r["_value"] == "T"]
    want = [r for r in scenario.readings if r.stack == "jy-steel-2-s1" and r.values["so2"].flag.value == "T"]
    assert len(t_minutes) == len(want) == 180


@checks("Valid minutes per hour")
def test_stack_valid_minutes_equal_the_engine(scenario: Scenario) -> None:
    rows = scenario.query(panel("Valid minutes per hour"), stack="jy-steel-2-s1")
    got = {(r["parameter"], r["_time"]): r["_value"] for r in rows}
    want = {(h.parameter, h.hour_start): h.valid_minutes for h in scenario.hourly if h.stack == "jy-steel-2-s1"}
    assert got == want
    assert min(v for (p, _), v in got.items() if p == "so2") == 0  # the marked hours


@checks("Alerts on this stack")
def test_stack_alert_events(scenario: Scenario) -> None:
    rows = scenario.query(panel("Alerts on this stack"), stack="jy-power-1-s1")
    got = sorted((r["_time"], r["event"], r["kind"], r["alert_id"]) for r in rows)
    want = sorted(
        (e.at, e.event.value, e.kind.value, e.alert_id) for e in scenario.events if e.stack == "jy-power-1-s1"
    )
    assert got == want
    assert ("exceedance", "opened") in {(k, ev) for _, ev, k, _ in got}


def test_stack_alert_annotations(scenario: Scenario) -> None:
    (board,) = [b for b in all_dashboards() if b.uid == "cems-stack"]
    (annotation,) = board.annotations
    rows = scenario.query(annotation.query, stack="jy-power-1-s1")
    want = sorted(e.at for e in scenario.events if e.stack == "jy-power-1-s1" and e.event in ("opened", "resolved"))
    assert sorted(r["time"] for r in rows) == want
    assert any(r["text"].startswith("opened exceedance: so2 hourly average") for r in rows)


# -- compliance --------------------------------------------------------------------------------------------------
@checks("Exceeding hours by stack and day")
def test_compliance_exceeding_hours_by_day(scenario: Scenario) -> None:
    want: Counter[tuple[str, str, str]] = Counter()
    for h in scenario.hourly:
        if h.exceeds:
            day = (h.hour_start + timedelta(hours=8)).date().isoformat()  # Beijing time
            want[(day, h.stack, h.parameter)] += 1
    rows = scenario.query(panel("Exceeding hours by stack and day"))
    assert {(r["day"], r["stack"], r["parameter"]): r["hours"] for r in rows} == dict(want)
    assert ("2026-01-05", "jy-power-1-s1", "so2") in want


@checks("Exceeding hours by stack and day", "Compliance rate by stack and month")
def test_days_and_months_are_beijing_time(scenario: Scenario) -> None:
    """Hours starting 15:00 and 16:00 UTC on 31 January are 23:00 on the 31st and 00:00 on
    1 February in Beijing: two days, two months."""
    from influxdb_client import Point, WritePrecision
    from influxdb_client.client.write_api import SYNCHRONOUS

    ns = f"tz{scenario.ns}"  # deleted with the scenario's points
    points = [
        Point("hourly").tag("ns", ns).tag("enterprise", "jy-steel-1").tag("stack", "jy-steel-1-s1")
        .tag("district", "d").tag("industry", "steel_sinter").tag("parameter", "so2").tag("status", "valid")
        .field("exceeds", True).time(datetime(2026, 1, 31, hour, tzinfo=UTC), WritePrecision.S)
        for hour in (15, 16)
    ]  # fmt: skip
    scenario.client.write_api(write_options=SYNCHRONOUS).write(bucket=scenario.bucket, record=points)
    tz = Scenario(ns, scenario.registry, [], [], [], scenario.client, scenario.bucket, scenario.org)
    stop = datetime(2026, 2, 2, tzinfo=UTC)
    days = tz.query(panel("Exceeding hours by stack and day"), stop=stop)
    assert sorted((r["day"], r["hours"]) for r in days) == [("2026-01-31", 1), ("2026-02-01", 1)]
    months = tz.query(panel("Compliance rate by stack and month"), stop=stop)
    assert sorted((r["month"], r["hours"], r["exceeding_hours"]) for r in months) == [
        ("2026-01", 1, 1),
        ("2026-02", 1, 1),
    ]


@checks("Compliance rate by stack and month")
def test_compliance_rate_by_month(scenario: Scenario) -> None:
    judged: dict[str, set[datetime]] = defaultdict(set)
    exceeding: dict[str, set[datetime]] = defaultdict(set)
    for h in scenario.hourly:
        if h.status.value == "valid":
            judged[h.stack].add(h.hour_start)
            if h.exceeds:
                exceeding[h.stack].add(h.hour_start)
    rows = scenario.query(panel("Compliance rate by stack and month"))
    got = {r["stack"]: (r["month"], r["hours"], r["exceeding_hours"], round(r["compliant_pct"], 6)) for r in rows}
    want = {
        stack: (
            "2026-01",
            len(hours),
            len(exceeding[stack]),
            round(100 * (len(hours) - len(exceeding[stack])) / len(hours), 6),
        )
        for stack, hours in judged.items()
    }
    assert got == want
    steel = {r["stack"]: r for r in rows if r["industry"].startswith("steel")}
    assert steel["jy-steel-1-s1"]["required_pct"] == 95.0 and steel["jy-steel-1-s1"]["meets"] is False


@checks("Enterprise ranking: exceeding hours")
def test_compliance_enterprise_ranking(scenario: Scenario) -> None:
    want = Counter(h.enterprise for h in scenario.hourly if h.exceeds)
    rows = scenario.query(panel("Enterprise ranking: exceeding hours"))
    assert {r["enterprise"]: r["exceeding_hours"] for r in rows} == dict(want)
    assert [r["exceeding_hours"] for r in rows] == sorted(want.values(), reverse=True)


@checks("Emissions by enterprise", "Emissions in the time range")
def test_compliance_emissions(scenario: Scenario) -> None:
    rate: dict[tuple[str, str, datetime], float] = defaultdict(float)
    for h in scenario.hourly:
        if h.emission_kg_h is not None:
            rate[(h.enterprise, h.parameter, h.hour_start)] += h.emission_kg_h
    rows = scenario.query(panel("Emissions by enterprise"))
    got = {(r["enterprise"], r["parameter"], r["_time"]): r["_value"] for r in rows}
    assert got == pytest.approx(dict(rate))
    total: dict[tuple[str, str], float] = defaultdict(float)
    for (enterprise, parameter, _), v in rate.items():
        total[(enterprise, parameter)] += v
    rows = scenario.query(panel("Emissions in the time range"))
    assert {(r["enterprise"], r["parameter"]): r["kg"] for r in rows} == pytest.approx(dict(total))
    assert rows[0]["kg"] == pytest.approx(max(total.values()))


# -- data quality --------------------------------------------------------------------------------------------------
def _episode_rows(s: Scenario, title: str, **kw: Any) -> dict[str, Episode]:
    return {r["alert_id"]: Episode(r["start"], r.get("end"), r["minutes"]) for r in s.query(panel(title), **kw)}


EPISODE_PANELS = {
    "Data gaps": {AlertKind.DATA_GAP},
    "Falsification signs": {AlertKind.FLATLINE, AlertKind.ZS_MISMATCH, AlertKind.LIMIT_HUGGING, AlertKind.INVALID_MARK},
    "Bypass episodes": {AlertKind.BYPASS},
}


@checks(*EPISODE_PANELS)
def test_episodes_over_any_range(scenario: Scenario) -> None:
    """Ranges that start before, inside and after episodes, ending at every 10 minutes: open
    episodes without any resolved one, resolved ones only, episodes begun before the range."""
    checked = Counter[str]()
    for end_min in range(10, 260, 10):
        stop = T0 + timedelta(minutes=end_min)
        for length in (None, timedelta(minutes=30)):
            start = T0 - timedelta(hours=1) if length is None else stop - length
            for title, kinds in EPISODE_PANELS.items():
                want = episodes(scenario.events, kinds, start, stop)
                got = _episode_rows(scenario, title, start=start, stop=stop)
                assert got == want, (title, start, stop)
                checked[title] += bool(want)
    assert all(checked[t] > 5 for t in EPISODE_PANELS), checked


@checks("Data gaps")
def test_data_gap_episodes(scenario: Scenario) -> None:
    got = _episode_rows(scenario, "Data gaps")
    assert got == episodes(scenario.events, {AlertKind.DATA_GAP})
    rows = {r["stack"]: r for r in scenario.query(panel("Data gaps"))}
    assert rows["jy-steel-3-s1"]["end"] is None and "since monitoring started" in rows["jy-steel-3-s1"]["reason"]
    assert rows["jy-cement-2-s1"]["minutes"] == (END - rows["jy-cement-2-s1"]["start"]).total_seconds() // 60


@checks("Falsification signs")
def test_falsification_sign_episodes(scenario: Scenario) -> None:
    kinds = {AlertKind.FLATLINE, AlertKind.ZS_MISMATCH, AlertKind.LIMIT_HUGGING, AlertKind.INVALID_MARK}
    got = _episode_rows(scenario, "Falsification signs")
    assert got == episodes(scenario.events, kinds)
    kinds_seen = {r["kind"] for r in scenario.query(panel("Falsification signs"))}
    assert {"flatline", "zs_mismatch", "invalid_mark"} <= kinds_seen


@checks("Invalid-mark minutes")
def test_invalid_mark_minutes(scenario: Scenario) -> None:
    want: Counter[tuple[str, str, str]] = Counter()
    for h in scenario.hourly:
        for flag, minutes in h.flag_minutes.items():
            want[(h.stack, h.parameter, flag)] += minutes
    rows = scenario.query(panel("Invalid-mark minutes"))
    assert {(r["stack"], r["parameter"], r["flag"]): r["minutes"] for r in rows} == {k: v for k, v in want.items() if v}
    assert want[("jy-steel-2-s1", "so2", "T")] == 180 and want[("jy-coke-2-s1", "nox", "C")] == 30


@checks("Valid hours")
def test_valid_hours(scenario: Scenario) -> None:
    want: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for h in scenario.hourly:
        want[(h.stack, h.parameter)][0] += 1
        want[(h.stack, h.parameter)][1] += h.status.value == "valid"
    rows = scenario.query(panel("Valid hours"))
    assert {(r["stack"], r["parameter"]): [r["hours"], r["valid_hours"]] for r in rows} == dict(want)
    assert rows[0]["valid_pct"] < 100  # worst first: the marked SO2 of jy-steel-2-s1


# -- bypass ----------------------------------------------------------------------------------------------------
@checks("Bypass episodes")
def test_bypass_episodes_with_their_signals(scenario: Scenario) -> None:
    bypass = [e for e in scenario.events if e.kind is AlertKind.BYPASS]
    rows = scenario.query(panel("Bypass episodes"))
    assert _episode_rows(scenario, "Bypass episodes") == episodes(bypass, {AlertKind.BYPASS})
    latest = {e.alert_id: e for e in bypass if e.event is not AlertEventType.RESOLVED}
    for r in rows:
        e = latest[r["alert_id"]]
        assert r["confidence"] == max(x.evidence["confidence"] for x in bypass if x.alert_id == e.alert_id)
        assert r["signals"] == ", ".join(e.evidence["signals"])
    by_stack = {r["stack"]: r for r in rows}
    assert by_stack["jy-coke-1-s1"]["signals"] == "damper_open" and by_stack["jy-coke-1-s1"]["minutes"] == 20
    assert by_stack["jy-power-1-s2"]["confidence"] < 0.9  # no damper signal: inferred


INSTRUMENTS = {
    "Bypass damper position": "bypass_damper",
    "Bypass duct flow": "bypass_flow",
    "Bypass duct temperature": "bypass_temperature",
}


@checks(*INSTRUMENTS)
def test_bypass_instruments(scenario: Scenario) -> None:
    for title, field in INSTRUMENTS.items():
        rows = scenario.query(panel(title))
        got = sorted((r["stack"], r["_time"], r["_value"]) for r in rows)
        want = sorted(
            (r.stack, r.event_time.replace(second=0) + timedelta(minutes=1), r.values[field].value)
            for r in scenario.readings
            if field in r.values
        )
        assert [g[:2] for g in got] == [w[:2] for w in want], title
        assert [g[2] for g in got] == pytest.approx([w[2] for w in want]), title
    rows = scenario.query(panel("Bypass damper position"), window=timedelta(hours=1))
    assert max(r["_value"] for r in rows if r["stack"] == "jy-coke-1-s1") >= 10  # an hour keeps the opening


# -- variables and coverage ------------------------------------------------------------------------------------
def test_variables_list_the_fleet(scenario: Scenario) -> None:
    stacks = list(scenario.registry.stacks())
    want = {
        "district": {e.district for e, _ in stacks},
        "industry": {e.industry.value for e, _ in stacks},
        "enterprise": {e.id for e, _ in stacks},
        "stack": {s.id for _, s in stacks},
    }
    for board in all_dashboards():
        for variable in board.variables:
            if variable.query is None:
                continue
            rows = scenario.query(variable.query)
            assert {r["_value"] for r in rows} == want[variable.name], (board.uid, variable.name)


def test_cems_dashboards_verify_runs_every_query(scenario: Scenario) -> None:
    result = CliRunner().invoke(
        app, ["dashboards", "verify", "--namespace", scenario.ns, "--stack", "jy-power-1-s1",
              "--start", (T0 - timedelta(hours=1)).isoformat(), "--stop", END.isoformat()],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    queries = sum(len(b.panels()) + len([v for v in b.variables if v.query]) + len(b.annotations)
                  for b in all_dashboards())  # fmt: skip
    lines = [line for line in result.output.splitlines() if line.startswith("│ cems-")]
    assert len(lines) == queries
    assert "failed" not in result.output


def test_every_panel_is_checked() -> None:
    from . import test_dashboards_electricity  # noqa: F401  (its checks register the electricity board's panels)

    titles = {p.title for b in all_dashboards() for p in b.panels()}
    assert titles - CHECKED == set(), "panels without a query check"
    assert CHECKED - titles == set(), "checks of panels that no longer exist"


def test_the_consoles_fleet_and_charts_read_what_the_boards_read(scenario: Scenario, secrets: SecretStore) -> None:
    """The case console's fleet page (its own InfluxDB queries + ``rules.fleet_status``) shows
    the overview's rows, scoped to an officer's district; a case's chart series come back."""
    import asyncio

    from console.evidence import InfluxEvidence
    from console.fleet import fleet_rows
    from rules.cases.access import Actor, Role
    from rules.notify.routing import directory

    infra = InfraSettings()
    source = InfluxEvidence(
        infra.influxdb_url, secrets.influxdb_token(), infra.influxdb_org, infra.influxdb_bucket, scenario.ns
    )
    places = directory(scenario.registry)
    owners = {stack.id: enterprise.id for enterprise, stack in scenario.registry.stacks()}
    try:
        rows = asyncio.run(fleet_rows(source, places, owners, Actor("chief", Role.SUPERVISOR), MID))
        got = [(r.stack, r.status, r.problem, r.last_seen, r.rank) for r in rows]
        assert got == flux_status(scenario, MID) == python_status(scenario.events, scenario.readings, MID)
        assert any(r.rank > 0 for r in rows)
        district = places[rows[0].stack].district
        officer = Actor("o", Role.OFFICER, districts=frozenset({district}))
        scoped = asyncio.run(fleet_rows(source, places, owners, officer, MID))
        assert scoped and [r.stack for r in scoped] == [r.stack for r in rows if r.district == district]

        exceedance = next(e for e in scenario.events if e.kind is AlertKind.EXCEEDANCE and e.parameter)
        assert exceedance.parameter is not None
        hourly = asyncio.run(
            source.hourly(
                exceedance.stack, exceedance.parameter, exceedance.start - timedelta(hours=6), MID + timedelta(hours=6)
            )
        )
        want = [h for h in scenario.hourly if h.stack == exceedance.stack and h.parameter == exceedance.parameter
                and h.status.value == "valid" and h.converted is not None]  # fmt: skip
        assert [p.value for p in hourly.converted] == pytest.approx([h.converted for h in want])
        assert hourly.limit is not None and any(p.value > hourly.limit for p in hourly.converted)
        raw = asyncio.run(
            source.readings(
                exceedance.stack,
                exceedance.parameter,
                exceedance.start - timedelta(hours=2),
                exceedance.start + timedelta(hours=2),
            )
        )
        assert len(raw) > 60 and all(
            exceedance.start - timedelta(hours=2) <= p.at < exceedance.start + timedelta(hours=2) for p in raw
        )
    finally:
        source.close()
