"""The dashboards' Flux queries, over the schema in docs/influxdb-schema.md.

Conventions: ``${ns}`` is the hidden namespace variable (``cems`` in production); the fleet
filters are regular expressions over the ``district``, ``industry`` and ``enterprise`` tags
(Grafana's ``:regex`` format, "All" = ``.*``); days and months are Beijing time. "Now" on a
dashboard is the end of its time range (``v.timeRangeStop``), so a past range shows the fleet
as it was then. Day and month labels are the local date of the local midnight (UTC + 8 h).
"""

from __future__ import annotations

from contracts.alerts import AlertKind

BUCKET = "v.defaultBucket"
# Beijing time has no daylight saving: a fixed offset needs no time zone database in InfluxDB
UTC_OFFSET = "8h"
TZ = f"timezone.fixed(offset: {UTC_OFFSET})"
STATUS_LOOKBACK = "30d"  # open alerts older than this are not shown as a stack's status

# a stack's status: the worst open condition, then flags, then normal (rank: higher is worse)
STATUSES: list[tuple[str, int, str]] = [
    ("exceeding", 7, "red"),
    ("bypass suspected", 6, "dark-red"),
    ("offline", 5, "purple"),
    ("early warning", 4, "orange"),
    ("suspect data", 3, "yellow"),
    ("data gap", 2, "blue"),
    ("marked", 1, "light-blue"),
    ("normal", 0, "green"),
]
STATUS_COLORS = {name: color for name, _, color in STATUSES}
SUSPECT_KINDS = (AlertKind.FLATLINE, AlertKind.ZS_MISMATCH, AlertKind.LIMIT_HUGGING)


def fleet(*, enterprise: bool = True) -> str:
    """Namespace, district, industry (and enterprise) filter, as a Flux predicate."""
    clauses = [
        'r.ns == "${ns}"',
        "r.district =~ /^${district:regex}$/",
        "r.industry =~ /^${industry:regex}$/",
    ]
    if enterprise:
        clauses.append("r.enterprise =~ /^${enterprise:regex}$/")
    return " and ".join(clauses)


ONE_STACK = 'r.ns == "${ns}" and r.stack == "${stack}"'


def _in(column: str, values: tuple[str, ...] | list[str]) -> str:
    return "(" + " or ".join(f'r.{column} == "{v}"' for v in values) + ")"


def _rank_expr() -> str:
    k = AlertKind
    suspect = " or ".join(f'r.kind == "{x.value}"' for x in SUSPECT_KINDS)
    return (
        f'if r.kind == "{k.EXCEEDANCE.value}" then 7 '
        f'else if r.kind == "{k.BYPASS.value}" then 6 '
        f'else if r.kind == "{k.DATA_GAP.value}" and r.parameter == "-" then 5 '
        f'else if r.kind == "{k.EARLY_WARNING.value}" then 4 '
        f"else if {suspect} then 3 "
        f'else if r.kind == "{k.DATA_GAP.value}" then 2 '
        f'else if r.kind == "{k.INVALID_MARK.value}" then 1 else 0'
    )


def _status_expr(rank: str) -> str:
    expr = '"normal"'
    for name, value, _ in reversed(STATUSES[:-1]):
        expr = f'if {rank} == {value} then "{name}" else {expr}'
    return expr


# the latest event of each alert episode; `resolved` sorts after anything at the same second
_EVENT_ORDER = (
    'erank: if r.event == "resolved" then 3 else if r.event == "acknowledged" then 2 '
    'else if r.event == "updated" then 1 else 0'
)


def open_alerts_source(where: str, fields: tuple[str, ...] = ("alert_id",)) -> str:
    """Alerts whose latest event by the end of the range is not ``resolved`` (pivoted fields)."""
    field_filter = _in("_field", list(fields))
    return f"""
  |> range(start: date.sub(d: {STATUS_LOOKBACK}, from: v.timeRangeStop), stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "alert" and {where})
  |> filter(fn: (r) => {field_filter})
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> map(fn: (r) => ({{r with {_EVENT_ORDER}}}))
  |> group(columns: ["alert_id"])
  |> sort(columns: ["_time", "erank"])
  |> last(column: "alert_id")
  |> filter(fn: (r) => r.event != "resolved")
  |> group()"""


def stack_status(where: str) -> str:
    """One row per stack: status, rank, what is wrong, when it last reported."""
    return f"""
import "date"
import "join"

open = from(bucket: {BUCKET}){open_alerts_source(where)}
  |> map(fn: (r) => ({{stack: r.stack, enterprise: r.enterprise, district: r.district, industry: r.industry,
      rank: {_rank_expr()},
      problem: r.kind + (if r.parameter == "-" then "" else " " + r.parameter)}}))
flags = from(bucket: {BUCKET})
  |> range(start: date.sub(d: 1d, from: v.timeRangeStop), stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "reading" and {where} and r._field =~ /_flag$/)
  |> last()
  |> group(columns: ["stack", "enterprise", "district", "industry", "_field"])
  |> sort(columns: ["_time"])
  |> last()
  |> group()
marked = flags
  |> filter(fn: (r) => r._value != "N")
  |> map(fn: (r) => ({{stack: r.stack, enterprise: r.enterprise, district: r.district, industry: r.industry,
      rank: 1, problem: "marked " + r._value + " " + strings.trimSuffix(v: r._field, suffix: "_flag")}}))
seen = flags
  |> group(columns: ["stack", "enterprise", "district", "industry"])
  |> max(column: "_time")
  |> group()
  |> map(fn: (r) => ({{stack: r.stack, enterprise: r.enterprise, district: r.district, industry: r.industry,
      rank: 0, problem: "-", last_seen: r._time}}))
worst = union(tables: [open, marked, seen |> drop(columns: ["last_seen"])])
  |> group(columns: ["stack"])
  |> max(column: "rank")
  |> group()
status = join.left(left: worst, right: seen, on: (l, r) => l.stack == r.stack,
    as: (l, r) => ({{l with last_seen: r.last_seen, status: {_status_expr("l.rank")}}}))
"""


def status_table(where: str) -> str:
    return (
        'import "strings"\n'
        + stack_status(where)
        + """status
  |> sort(columns: ["rank", "stack"], desc: true)
  |> keep(columns: ["status", "stack", "enterprise", "district", "industry", "problem", "last_seen", "rank"])
"""
    )


def status_counts(where: str) -> str:
    zeros = ", ".join(f'{{status: "{name}", stacks: 0}}' for name, _, _ in STATUSES)
    return (
        'import "array"\nimport "strings"\n'
        + stack_status(where)
        + f"""counted = status
  |> group(columns: ["status"])
  |> count(column: "stack")
  |> rename(columns: {{stack: "stacks"}})
  |> group()
union(tables: [counted, array.from(rows: [{zeros}])])
  |> group(columns: ["status"])
  |> sum(column: "stacks")
  |> group()
  |> map(fn: (r) => ({{r with row: 1}}))
  |> pivot(rowKey: ["row"], columnKey: ["status"], valueColumn: "stacks")
  |> drop(columns: ["row"])
"""
    )


def attention_by(where: str, column: str) -> str:
    return (
        'import "strings"\n'
        + stack_status(where)
        + f"""status
  |> map(fn: (r) => ({{{column}: r.{column}, attention: if r.rank > 0 then 1 else 0}}))
  |> group(columns: ["{column}"])
  |> reduce(identity: {{stacks: 0, attention: 0}},
      fn: (r, accumulator) => ({{stacks: accumulator.stacks + 1, attention: accumulator.attention + r.attention}}))
  |> group()
  |> sort(columns: ["attention", "stacks"], desc: true)
"""
    )


def open_alerts(where: str) -> str:
    return f"""
import "date"

from(bucket: {BUCKET}){open_alerts_source(where, ("alert_id", "reason", "start_s"))}
  |> map(fn: (r) => ({{
      opened: time(v: r.start_s * 1000000000),
      age_h: float(v: int(v: v.timeRangeStop) - r.start_s * 1000000000) / 3600000000000.0,
      severity: r.severity, kind: r.kind, stack: r.stack, parameter: r.parameter,
      enterprise: r.enterprise, district: r.district, last_event: r.event, reason: r.reason, alert_id: r.alert_id}}))
  |> sort(columns: ["opened"])
"""


def alerts_opened_per_hour(where: str) -> str:
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "alert" and {where} and r._field == "alert_id" and r.event == "opened")
  |> group(columns: ["kind"])
  |> aggregateWindow(every: 1h, fn: count, createEmpty: false)
"""


# -- one stack ----------------------------------------------------------------------------------
def hourly_fields(parameters: tuple[str, ...], fields: tuple[str, ...]) -> str:
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "hourly" and {ONE_STACK})
  |> filter(fn: (r) => {_in("parameter", parameters)} and {_in("_field", fields)})
  |> group(columns: ["parameter", "_field"])
  |> sort(columns: ["_time"])
  |> map(fn: (r) => ({{_time: r._time, _value: float(v: r._value), series: r.parameter + " " + r._field}}))
  |> group(columns: ["series"])
"""


def reading_fields(fields: tuple[str, ...]) -> str:
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "reading" and {ONE_STACK} and {_in("_field", fields)})
  |> group(columns: ["_field"])
  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)
"""


def stack_flags() -> str:
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "reading" and {ONE_STACK} and r._field =~ /_flag$/)
  |> group(columns: ["_field"])
  |> sort(columns: ["_time"])
  |> aggregateWindow(every: v.windowPeriod, fn: last, createEmpty: false)
"""


def stack_valid_minutes() -> str:
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "hourly" and {ONE_STACK} and r._field == "valid_minutes")
  |> group(columns: ["parameter"])
  |> sort(columns: ["_time"])
"""


def alert_events(where: str, kinds: tuple[AlertKind, ...] | None = None) -> str:
    kind_filter = f" and {_in('kind', [k.value for k in kinds])}" if kinds else ""
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "alert" and {where}{kind_filter})
  |> filter(fn: (r) => r._field == "alert_id" or r._field == "reason")
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> group()
  |> keep(columns: ["_time", "event", "kind", "severity", "stack", "parameter", "reason", "alert_id"])
  |> sort(columns: ["_time"], desc: true)
"""


def alert_annotations() -> str:
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "alert" and {ONE_STACK} and r._field == "reason")
  |> filter(fn: (r) => r.event == "opened" or r.event == "resolved")
  |> group()
  |> map(fn: (r) => ({{time: r._time, text: r.event + " " + r.kind + ": " + r._value, tags: r.kind}}))
"""


# -- compliance ---------------------------------------------------------------------------------
def exceeding_hours_by_day(where: str) -> str:
    return f"""
import "date"
import "strings"
import "timezone"

from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "hourly" and {where} and r._field == "exceeds" and r._value == true)
  |> map(fn: (r) => ({{day: date.truncate(t: r._time, unit: 1d, location: {TZ}),
      stack: r.stack, enterprise: r.enterprise, parameter: r.parameter, hours: 1}}))
  |> group(columns: ["day", "stack", "enterprise", "parameter"])
  |> sum(column: "hours")
  |> group()
  |> map(fn: (r) => ({{r with
      day: strings.substring(v: string(v: date.add(d: {UTC_OFFSET}, to: r.day)), start: 0, end: 10)}}))
  |> sort(columns: ["day", "stack", "parameter"])
"""


def compliance_by_month(where: str) -> str:
    """A stack-hour is judged when some parameter had a valid hour, and compliant unless one exceeded."""
    return f"""
import "date"
import "strings"
import "timezone"

from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "hourly" and {where} and r._field == "exceeds" and r.status == "valid")
  |> map(fn: (r) => ({{_time: r._time, stack: r.stack, enterprise: r.enterprise, industry: r.industry,
      exceeding: if r._value then 1 else 0}}))
  |> group(columns: ["stack", "enterprise", "industry", "_time"])
  |> max(column: "exceeding")
  |> map(fn: (r) => ({{r with month: date.truncate(t: r._time, unit: 1mo, location: {TZ})}}))
  |> group(columns: ["stack", "enterprise", "industry", "month"])
  |> reduce(identity: {{hours: 0, exceeding_hours: 0}},
      fn: (r, accumulator) => ({{hours: accumulator.hours + 1,
          exceeding_hours: accumulator.exceeding_hours + r.exceeding}}))
  |> group()
  |> map(fn: (r) => ({{r with
      month: strings.substring(v: string(v: date.add(d: {UTC_OFFSET}, to: r.month)), start: 0, end: 7),
      compliant_pct: 100.0 * float(v: r.hours - r.exceeding_hours) / float(v: r.hours),
      required_pct: if strings.hasPrefix(v: r.industry, prefix: "steel") then 95.0 else 100.0}}))
  |> map(fn: (r) => ({{r with meets: r.compliant_pct >= r.required_pct}}))
  |> sort(columns: ["compliant_pct", "stack"])
"""


def enterprise_ranking(where: str) -> str:
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "hourly" and {where} and r._field == "exceeds" and r._value == true)
  |> map(fn: (r) => ({{enterprise: r.enterprise, hours: 1}}))
  |> group(columns: ["enterprise"])
  |> sum(column: "hours")
  |> group()
  |> rename(columns: {{hours: "exceeding_hours"}})
  |> sort(columns: ["exceeding_hours", "enterprise"], desc: true)
"""


def emissions_rate(where: str) -> str:
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "hourly" and {where} and r._field == "emission_kg_h")
  |> group(columns: ["enterprise", "parameter", "_time"])
  |> sum()
  |> group(columns: ["enterprise", "parameter"])
  |> sort(columns: ["_time"])
"""


def emissions_total(where: str) -> str:
    """kg over the range: each closed hour's kg/h times one hour."""
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "hourly" and {where} and r._field == "emission_kg_h")
  |> group(columns: ["enterprise", "parameter"])
  |> sum()
  |> group()
  |> rename(columns: {{_value: "kg"}})
  |> keep(columns: ["enterprise", "parameter", "kg"])
  |> sort(columns: ["kg"], desc: true)
"""


# -- episodes (data quality, bypass) -----------------------------------------------------------------
def episodes(where: str, kinds: tuple[AlertKind, ...], extra_fields: tuple[str, ...] = ()) -> str:
    """One row per alert episode with an event in the range: start, end (if resolved),
    duration so far, and the latest evidence before it resolved."""
    fields = ("alert_id", "start_s", "reason", *extra_fields)
    keep = ", ".join(
        f'"{c}"' for c in ("alert_id", "stack", "enterprise", "kind", "parameter", "reason", *extra_fields)
    )
    return f"""
import "join"

events = from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "alert" and {where} and {_in("kind", [k.value for k in kinds])})
  |> filter(fn: (r) => {_in("_field", [*fields, "end_s"])})
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> group(columns: ["alert_id"])
  |> sort(columns: ["_time"])
latest = events
  |> filter(fn: (r) => r.event != "resolved")
  |> last(column: "alert_id")
  |> group()
  |> map(fn: (r) => ({{r with start: time(v: r.start_s * 1000000000)}}))
  |> keep(columns: ["start", {keep}])
ends = events
  |> filter(fn: (r) => r.event == "resolved")
  |> last(column: "alert_id")
  |> group()
  |> map(fn: (r) => ({{alert_id: r.alert_id, end: time(v: r.end_s * 1000000000)}}))
join.left(left: latest, right: ends, on: (l, r) => l.alert_id == r.alert_id,
    as: (l, r) => ({{l with end: r.end,
        minutes: (int(v: if exists r.end then r.end else v.timeRangeStop) - int(v: l.start)) / 60000000000}}))
  |> sort(columns: ["start"], desc: true)
"""


def flag_minutes(where: str) -> str:
    return f"""
import "strings"

from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "hourly" and {where} and r._field =~ /^flag_minutes_/)
  |> group(columns: ["stack", "enterprise", "parameter", "_field"])
  |> sum()
  |> group()
  |> map(fn: (r) => ({{stack: r.stack, enterprise: r.enterprise, parameter: r.parameter,
      flag: strings.trimPrefix(v: r._field, prefix: "flag_minutes_"), minutes: r._value}}))
  |> sort(columns: ["minutes"], desc: true)
"""


def valid_hours(where: str) -> str:
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "hourly" and {where} and r._field == "valid_minutes")
  |> map(fn: (r) => ({{stack: r.stack, enterprise: r.enterprise, parameter: r.parameter,
      valid: if r.status == "valid" then 1 else 0}}))
  |> group(columns: ["stack", "enterprise", "parameter"])
  |> reduce(identity: {{hours: 0, valid_hours: 0}},
      fn: (r, accumulator) => ({{hours: accumulator.hours + 1, valid_hours: accumulator.valid_hours + r.valid}}))
  |> group()
  |> map(fn: (r) => ({{r with valid_pct: 100.0 * float(v: r.valid_hours) / float(v: r.hours)}}))
  |> sort(columns: ["valid_pct", "stack", "parameter"])
"""


def bypass_signals(where: str) -> str:
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "reading" and {where})
  |> filter(fn: (r) => r._field == "bypass_damper" or r._field == "bypass_flow" or r._field == "bypass_temperature")
  |> group(columns: ["stack", "_field"])
  |> aggregateWindow(every: v.windowPeriod, fn: max, createEmpty: false)
"""


def tag_values(tag: str, where: str) -> str:
    return f"""
import "date"
import "influxdata/influxdb/schema"

schema.tagValues(bucket: {BUCKET}, tag: "{tag}",
    start: date.sub(d: 90d, from: v.timeRangeStop), stop: v.timeRangeStop,
    predicate: (r) => (r._measurement == "reading" or r._measurement == "alert") and {where})
"""
