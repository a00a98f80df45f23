"""The dashboards' Flux queries, over the schema in docs/influxdb-schema.md.

Conventions: ``${ns}`` is the hidden namespace variable (``cems`` in production); the fleet
filters are regular expressions over the ``district``, ``industry`` and ``enterprise`` tags
(Grafana's ``:regex`` format, "All" = ``.*``); days and months are Beijing time. "Now" on a
dashboard is the end of its time range (``v.timeRangeStop``), so a past range shows the fleet
as it was then. Day and month labels are the local date of the local midnight (UTC + 8 h).

A stack's status and the fleet's ranking (statuses, ranks, colours, which alert makes which, what is
open, the windows, ties) are defined in ``rules/fleet_status.py``; ``stack_status`` renders that
definition, and the case console evaluates the same one in Python.
"""

from __future__ import annotations

from contracts.alerts import AlertEventType, AlertKind
from contracts.reading import DataFlag
from rules import fleet_status as fs

BUCKET = "v.defaultBucket"
# Beijing time has no daylight saving: a fixed offset needs no time zone database in InfluxDB
UTC_OFFSET = "8h"
TZ = f"timezone.fixed(offset: {UTC_OFFSET})"
# the ``parameter`` tag of an alert on the whole stack (docs/influxdb-schema.md)
STACK_LEVEL = "-"


def duration(seconds: int) -> str:
    """A Flux duration literal: whole days as ``d`` (24 h in Flux), else seconds."""
    return f"{seconds // fs.DAY_S}d" if seconds % fs.DAY_S == 0 else f"{seconds}s"


# what is still open, and each stack's latest readings: the windows of rules/fleet_status.py
ALERT_LOOKBACK = duration(fs.ALERT_LOOKBACK_S)
SEEN_LOOKBACK = duration(fs.SEEN_LOOKBACK_S)

# a stack's status (names, ranks, colours, which alert makes which): rules/fleet_status.py
STATUS_COLORS = {s.value: s.colour for s in fs.STATUSES}
WORST_FIRST = " > ".join(s.value for s in fs.STATUSES if s.needs_attention)


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


def _kind_clause(rule: fs.KindRule) -> str:
    clause = f'r.kind == "{rule.kind.value}"'
    if rule.scope is fs.Scope.STACK:
        return f'{clause} and r.parameter == "{STACK_LEVEL}"'
    if rule.scope is fs.Scope.PARAMETER:
        return f'{clause} and r.parameter != "{STACK_LEVEL}"'
    return clause


def _rank_expr() -> str:
    """An open alert's rank (``fs.alert_status``): the statuses' kind rules, worst first."""
    branches = []
    for status in fs.STATUSES:
        clauses = [_kind_clause(r) for r in fs.KIND_RULES if r.status is status]
        if len(clauses) > 1:
            clauses = [f"({c})" if " and " in c else c for c in clauses]
        if clauses:
            branches.append(f"if {' or '.join(clauses)} then {status.rank} ")
    # a kind this code does not know (written by a newer sink) counts as nothing
    return "else ".join(branches) + f"else {fs.Status.NORMAL.rank}"


def _status_expr(rank: str) -> str:
    expr = f'"{fs.Status.NORMAL.value}"'
    for status in reversed(fs.STATUSES[:-1]):
        expr = f'if {rank} == {status.rank} then "{status.value}" else {expr}'
    return expr


# the latest event of each alert episode (``fs.EVENT_ORDER``): `resolved` sorts after anything at
# the same second
def _event_order() -> str:
    events = sorted(fs.EVENT_ORDER, key=fs.EVENT_ORDER.__getitem__, reverse=True)
    branches = [f'if r.event == "{e.value}" then {fs.EVENT_ORDER[e]}' for e in events[:-1]]
    return "erank: " + " else ".join(branches) + f" else {fs.EVENT_ORDER[events[-1]]}"


_EVENT_ORDER = _event_order()
_RESOLVED = AlertEventType.RESOLVED.value


def open_alerts_source(where: str, fields: tuple[str, ...] = ("alert_id",)) -> str:
    """Alerts whose latest event by the end of the range is not ``resolved`` (pivoted fields)."""
    field_filter = _in("_field", list(fields))
    return f"""
  |> range(start: date.sub(d: {ALERT_LOOKBACK}, from: v.timeRangeStop), stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "alert" and {where})
  |> filter(fn: (r) => {field_filter})
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> map(fn: (r) => ({{r with {_EVENT_ORDER}}}))
  |> group(columns: ["alert_id"])
  |> sort(columns: ["_time", "erank"])
  |> last(column: "alert_id")
  |> filter(fn: (r) => r.event != "{_RESOLVED}")
  |> group()"""


def stack_status(where: str) -> str:
    """One row per stack: status, rank, what is wrong, when it last reported (no joins: the
    worst condition and the latest reading are reduced in one pass, so an empty side is fine).
    ``rules.fleet_status.fleet_status`` in Flux: a parameter's latest flag is ``flag_order``'s
    (a mark before N at the same instant), of equally bad conditions the smallest problem text."""
    stack_cols = "stack: r.stack, enterprise: r.enterprise, district: r.district, industry: r.industry"
    return f"""
import "date"

open = from(bucket: {BUCKET}){open_alerts_source(where)}
  |> map(fn: (r) => ({{{stack_cols}, rank: {_rank_expr()},
      problem: r.kind + (if r.parameter == "{STACK_LEVEL}" then "" else " " + r.parameter), seen_ns: 0}}))
flags = from(bucket: {BUCKET})
  |> range(start: date.sub(d: {SEEN_LOOKBACK}, from: v.timeRangeStop), stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "reading" and {where} and r._field =~ /_flag$/)
  |> last()
  |> group(columns: ["stack", "enterprise", "district", "industry", "_field"])
  |> map(fn: (r) => ({{r with mark: if r._value == "{DataFlag.NORMAL.value}" then 0 else 1}}))
  |> sort(columns: ["_time", "mark", "_value"])
  |> last()
  |> group()
marked = flags
  |> filter(fn: (r) => r.mark == 1)
  |> map(fn: (r) => ({{{stack_cols}, rank: {fs.Status.MARKED.rank},
      problem: "{fs.Status.MARKED.value} " + r._value + " " + strings.trimSuffix(v: r._field, suffix: "_flag"),
      seen_ns: 0}}))
seen = flags
  |> map(fn: (r) => ({{{stack_cols}, rank: {fs.Status.NORMAL.rank}, problem: "{fs.NO_PROBLEM}",
      seen_ns: int(v: r._time)}}))
merged = union(tables: [open, marked, seen])
  |> group(columns: ["stack", "enterprise", "district", "industry"])
  |> reduce(identity: {{rank: -1, problem: "", seen_ns: 0}},
      fn: (r, accumulator) => {{
          worse = r.rank > accumulator.rank or (r.rank == accumulator.rank and r.problem < accumulator.problem)
          return {{
              rank: if worse then r.rank else accumulator.rank,
              problem: if worse then r.problem else accumulator.problem,
              seen_ns: if r.seen_ns > accumulator.seen_ns then r.seen_ns else accumulator.seen_ns}}
      }})
  |> group()
status = union(tables: [
    merged |> filter(fn: (r) => r.seen_ns > 0) |> map(fn: (r) => ({{r with last_seen: time(v: r.seen_ns)}})),
    merged |> filter(fn: (r) => r.seen_ns == 0),
  ])
  |> map(fn: (r) => ({{r with status: {_status_expr("r.rank")}, order: {fs.MAX_RANK} - r.rank}}))
  |> drop(columns: ["seen_ns"])
"""


def status_table(where: str) -> str:
    return (
        'import "strings"\n'
        + stack_status(where)
        + """status
  |> sort(columns: ["order", "stack"])
  |> keep(columns: ["status", "stack", "enterprise", "district", "industry", "problem", "last_seen", "rank"])
"""
    )


def status_counts(where: str) -> str:
    zeros = ", ".join(f'{{status: "{s.value}", stacks: 0}}' for s in fs.STATUSES)
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
  |> map(fn: (r) => ({{{column}: r.{column}, attention: if r.rank > {fs.Status.NORMAL.rank} then 1 else 0}}))
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
  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)
  |> group(columns: ["_field"])
  |> sort(columns: ["_time"])
"""


def stack_flags() -> str:
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "reading" and {ONE_STACK} and r._field =~ /_flag$/)
  |> aggregateWindow(every: v.windowPeriod, fn: last, createEmpty: false)
  |> group(columns: ["_field"])
  |> sort(columns: ["_time"])
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
    """A stack-hour is judged when some parameter had a valid hour, and compliant unless one
    exceeded. Hours are counted per stack with windows (no grouping by time), then per month."""
    per_month = (
        '  |> group(columns: ["stack", "enterprise", "industry"])\n'
        '  |> aggregateWindow(every: 1h, fn: count, createEmpty: false, timeSrc: "_start")\n'
        f'  |> aggregateWindow(every: 1mo, fn: count, createEmpty: false, timeSrc: "_start", location: {TZ})'
    )
    return f"""
import "date"
import "strings"
import "timezone"

valid = from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "hourly" and {where} and r._field == "exceeds" and r.status == "valid")
judged = valid
{per_month}
  |> map(fn: (r) => ({{r with hours: r._value, exceeding_hours: 0}}))
exceeding = valid
  |> filter(fn: (r) => r._value == true)
{per_month}
  |> map(fn: (r) => ({{r with hours: 0, exceeding_hours: r._value}}))
union(tables: [judged, exceeding])
  |> group(columns: ["stack", "enterprise", "industry", "_time"])
  |> reduce(identity: {{hours: 0, exceeding_hours: 0}},
      fn: (r, accumulator) => ({{hours: accumulator.hours + r.hours,
          exceeding_hours: accumulator.exceeding_hours + r.exceeding_hours}}))
  |> group()
  |> map(fn: (r) => ({{stack: r.stack, enterprise: r.enterprise, industry: r.industry,
      hours: r.hours, exceeding_hours: r.exceeding_hours,
      month: strings.substring(v: string(v: date.add(d: {UTC_OFFSET}, to: r._time)), start: 0, end: 7),
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
  |> group(columns: ["enterprise", "parameter"])
  |> aggregateWindow(every: 1h, fn: sum, createEmpty: false, timeSrc: "_start")
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
def episodes(where: str, kinds: tuple[AlertKind, ...], extra: tuple[str, ...] = ()) -> str:
    """One row per alert episode that overlaps the range (started before its end, not resolved
    before its start, events read a year back): start, end (empty while open), minutes up to the
    end or the range's end, the latest reason before it resolved (and the highest ``confidence``
    / latest ``signals`` when asked for)."""
    fields = ["alert_id", "start_s", "end_s", "reason", *extra]
    defaults = {"confidence": "0.0", "signals": '""'}
    extra_map = "".join(f", {f}: if exists r.{f} then r.{f} else {defaults[f]}" for f in extra)
    extra_identity = "".join(f", {f}: {defaults[f]}" for f in extra)
    extra_reduce = ""
    if "confidence" in extra:
        extra_reduce += (
            ",\n          confidence: if r.confidence > accumulator.confidence then r.confidence "
            "else accumulator.confidence"
        )
    if "signals" in extra:
        extra_reduce += (
            ',\n          signals: if r.event != "resolved" or accumulator.signals == "" then r.signals '
            "else accumulator.signals"
        )
    return f"""
import "date"

merged = from(bucket: {BUCKET})
  |> range(start: date.sub(d: {ALERT_LOOKBACK}, from: v.timeRangeStart), stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "alert" and {where} and {_in("kind", [k.value for k in kinds])})
  |> filter(fn: (r) => {_in("_field", fields)})
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> map(fn: (r) => ({{_time: r._time, alert_id: r.alert_id, stack: r.stack, enterprise: r.enterprise,
      kind: r.kind, parameter: r.parameter, event: r.event, start_s: r.start_s,
      end_s: if exists r.end_s then r.end_s else 0, reason: r.reason{extra_map},
      {_EVENT_ORDER}}}))
  |> group(columns: ["alert_id", "stack", "enterprise", "kind", "parameter"])
  |> sort(columns: ["_time", "erank"])
  |> reduce(identity: {{start_s: 0, end_s: 0, reason: ""{extra_identity}}},
      fn: (r, accumulator) => ({{
          start_s: r.start_s,
          end_s: if r.event == "resolved" then r.end_s else accumulator.end_s,
          reason: if r.event != "resolved" or accumulator.reason == "" then r.reason
              else accumulator.reason{extra_reduce}}}))
  |> group()
  |> filter(fn: (r) => r.end_s == 0 or r.end_s * 1000000000 >= int(v: v.timeRangeStart))
  |> map(fn: (r) => ({{r with start: time(v: r.start_s * 1000000000),
      minutes: ((if r.end_s > 0 then r.end_s * 1000000000 else int(v: v.timeRangeStop)) - r.start_s * 1000000000)
          / 60000000000}}))
union(tables: [
    merged |> filter(fn: (r) => r.end_s > 0) |> map(fn: (r) => ({{r with end: time(v: r.end_s * 1000000000)}})),
    merged |> filter(fn: (r) => r.end_s == 0),
  ])
  |> drop(columns: ["start_s", "end_s"])
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
  |> group(columns: ["stack", "enterprise", "parameter", "status"])
  |> count()
  |> group(columns: ["stack", "enterprise", "parameter"])
  |> reduce(identity: {{hours: 0, valid_hours: 0}},
      fn: (r, accumulator) => ({{hours: accumulator.hours + r._value,
          valid_hours: accumulator.valid_hours + (if r.status == "valid" then r._value else 0)}}))
  |> group()
  |> map(fn: (r) => ({{r with valid_pct: 100.0 * float(v: r.valid_hours) / float(v: r.hours)}}))
  |> sort(columns: ["valid_pct", "stack", "parameter"])
"""


def bypass_signal(where: str, field: str) -> str:
    """One bypass instrument (``bypass_damper``, ``bypass_flow``, ``bypass_temperature``), per
    stack: the highest value in each display interval, so a short opening is not averaged away."""
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "reading" and {where} and r._field == "{field}")
  |> aggregateWindow(every: v.windowPeriod, fn: max, createEmpty: false)
  |> group(columns: ["stack", "_field"])
  |> sort(columns: ["_time"])
"""


def facility_power(where: str) -> str:
    """Each metered facility's active power (kW), averaged over the display interval."""
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "reading" and {where} and r._field == "power" and exists r.facility)
  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)
  |> group(columns: ["enterprise", "facility"])
  |> sort(columns: ["_time"])
"""


def noncompliant_hours(where: str) -> str:
    """Hours in which an emergency measure was not met, per enterprise and facility: each such hour
    opens or updates the facility's ``emergency_noncompliance`` alert once."""
    return f"""
from(bucket: {BUCKET})
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == "alert" and {where} and r.kind == "{AlertKind.EMERGENCY_NONCOMPLIANCE.value}"
      and (r.event == "opened" or r.event == "updated") and r._field == "alert_id")
  |> group(columns: ["enterprise", "parameter"])
  |> count()
  |> group()
  |> map(fn: (r) => ({{enterprise: r.enterprise, facility: r.parameter, noncompliant_hours: r._value}}))
  |> sort(columns: ["noncompliant_hours", "enterprise", "facility"], desc: true)
"""


def tag_values(tag: str, where: str) -> str:
    return f"""
import "date"
import "influxdata/influxdb/schema"

schema.tagValues(bucket: {BUCKET}, tag: "{tag}",
    start: date.sub(d: 90d, from: v.timeRangeStop), stop: v.timeRangeStop,
    predicate: (r) => (r._measurement == "reading" or r._measurement == "alert") and {where})
"""
