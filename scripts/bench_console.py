"""Case console page load times with 10,000 cases, on SQLite and PostgreSQL.

    .venv/bin/python scripts/bench_console.py [--cases 10000] [--days 90] [--requests 30]
        [--databases sqlite,postgres] [--batch 500] [--profile PATH] [--keep]

PostgreSQL is the local server of `cems infra up postgres`: the script creates a fresh
database on it (``bench_console_<hex>``) and drops it at the end; SQLite is a fresh file in a
temporary folder. Each is migrated with Alembic like `cems console db upgrade` does.

- **seeding**, the way production fills the database: alert events for every stack of the
  sample registry (exceedance, bypass, flatline, data gaps that last over 4 h, invalid marks;
  early warnings and short gaps that open nothing), several episodes per stack and kind over
  ``--days`` ending now, fed through ``CaseStore.ingest`` in batches of ``--batch`` records
  with their topic positions; between batches people act through ``CaseStore.act`` (the
  supervisor assigns and closes, the district's officer sets deadlines and verifies, the
  enterprise responds), so nearly every case is closed (one case per stack and kind can be
  open) and the last of each stack and kind is left new, assigned, rectifying, overdue or
  verifying. Prints events/s and actions/s.
- **pages**: a real uvicorn server (a subprocess, the console's own ``create_app``, no
  InfluxDB) and one logged-in httpx client per demo user; each page ``--requests`` times in
  a row after 3 warm-up requests; median and p95 of the time to the last byte.
- **raw limits, same run**: ``GET /healthz`` through the same server and client (HTTP and
  framework floor); the SQL a list page's ``list_cases`` runs (count and page), captured at
  the cursor and executed again directly (``exec_driver_sql``, database floor); and
  ``list_cases`` itself in-process (query code and ORM loading, no HTTP, no template).
- **plans**: ``EXPLAIN ANALYZE`` (PostgreSQL, after ``VACUUM ANALYZE`` as autovacuum would
  do after such a load) and ``EXPLAIN QUERY PLAN`` (SQLite, no ANALYZE, as the console runs)
  of the list queries and the filter facets; says when a sequential scan of ``cases`` takes
  most of a query's time.
- ``--profile PATH`` (and automatically when a page's median is over 200 ms): py-spy
  samples the server while it serves the slowest page again, and the console's lines that
  were innermost on the most samples are listed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cems import pyspy  # noqa: E402
from cems.infra.postgres import create_database, drop_database  # noqa: E402
from cems.infra.settings import InfraSettings  # noqa: E402
from console import db, migrate, queries, report  # noqa: E402
from console.auth import LoginLimit  # noqa: E402
from console.demo import demo_accounts, ensure_demo_users  # noqa: E402
from console.store import CaseStore, Record, actor_of  # noqa: E402
from contracts.alerts import AlertEvent, AlertEventType, AlertKind, Severity, alert_id, fingerprint  # noqa: E402
from contracts.registry import Registry, load_registry  # noqa: E402
from contracts.topics import topics  # noqa: E402
from rules.cases.access import Actor, Role  # noqa: E402
from rules.cases.machine import Action, CaseState, Command, Refusal  # noqa: E402
from rules.cases.policy import CasePolicy  # noqa: E402
from rules.notify.routing import directory  # noqa: E402

PASSWORD = "bench-console-password"
DATABASE_ENV = "BENCH_CONSOLE_DATABASE_URL"
TOPIC = topics().alerts.name
PARTITIONS = 3
KINDS = (AlertKind.EXCEEDANCE, AlertKind.BYPASS, AlertKind.FLATLINE, AlertKind.DATA_GAP, AlertKind.INVALID_MARK)
SEVERITY = {AlertKind.EXCEEDANCE: Severity.CRITICAL, AlertKind.BYPASS: Severity.CRITICAL,
            AlertKind.FLATLINE: Severity.WARNING, AlertKind.DATA_GAP: Severity.CRITICAL,
            AlertKind.INVALID_MARK: Severity.WARNING}  # fmt: skip
POLLUTANTS = ("so2", "nox", "pm", "nh3", "nmhc", "benzene", "toluene", "xylene")
SUPERVISOR = "chief"
SLOW_MS = 200.0
PROJECT_CODE = ("console/", "rules/")
H = timedelta(hours=1)
console = Console(width=max(Console().width, 150))


def say(text: str) -> None:
    console.print(text, highlight=False)


# -- the timeline: alert events and people's actions per stack and kind --------------------------
@dataclass(frozen=True)
class Pair:
    """A stack and an alert kind: at most one open case at a time."""

    enterprise: str
    stack: str
    district: str
    kind: AlertKind
    parameters: tuple[str | None, ...]


@dataclass(frozen=True)
class Act:
    at: datetime
    username: str
    command: Command


@dataclass
class Block:
    """Consecutive events, or consecutive actions, of one pair."""

    events: list[AlertEvent] = field(default_factory=list)
    acts: list[Act] = field(default_factory=list)


def pairs_of(registry: Registry) -> list[Pair]:
    out = []
    for enterprise, stack in registry.stacks():
        pollutants = tuple(p for p in POLLUTANTS if p in stack.parameters)
        for kind in KINDS:
            params: tuple[str | None, ...] = (None,)
            if kind in (AlertKind.EXCEEDANCE, AlertKind.INVALID_MARK):
                params = pollutants
            elif kind is AlertKind.FLATLINE:
                params = (*pollutants, "o2")
            out.append(Pair(enterprise.id, stack.id, enterprise.district, kind, params))
    return out


def episode(pair: Pair, parameter: str | None, start: datetime, length: timedelta, *,
            resolved: bool = True) -> list[AlertEvent]:  # fmt: skip
    """One alert as the detection engine reports it: opened, updated, (resolved)."""
    kind = pair.kind
    fp = fingerprint(pair.stack, parameter, kind)
    facts: dict[AlertKind, tuple[str, dict[str, Any]]] = {
        AlertKind.EXCEEDANCE: (f"{parameter} hourly average 61.50 mg/m3 at reference O2 exceeds the limit 35",
                               {"hour_start": start.isoformat(), "converted_mg_m3": 61.5, "limit_mg_m3": 35.0,
                                "valid_minutes": 58}),
        AlertKind.BYPASS: ("bypass suspected: o2_dilution", {"confidence": 0.5, "signals": ["o2_dilution"]}),
        AlertKind.FLATLINE: (f"{parameter} constant at 12.5 for 90 minutes while the unit runs",
                             {"value": 12.5, "since": start.isoformat(), "minutes": 90}),
        AlertKind.DATA_GAP: (f"{pair.stack} silent since {start.isoformat()}",
                             {"never_reported": False, "last_seen": start.isoformat(), "threshold_s": 600}),
        AlertKind.INVALID_MARK: (f"{parameter} marked M for over 4 h", {"flag": "M", "since": start.isoformat()}),
        AlertKind.EARLY_WARNING: (f"{parameter} running average heads over the limit", {"projected_mg_m3": 40.1}),
    }  # fmt: skip
    reason, evidence = facts[kind]
    severity = Severity.WARNING if kind is AlertKind.EARLY_WARNING else SEVERITY[kind]
    base = AlertEvent(event=AlertEventType.OPENED, kind=kind, severity=severity, alert_id=alert_id(fp, start),
                      fingerprint=fp, enterprise=pair.enterprise, stack=pair.stack, parameter=parameter, start=start,
                      at=start, reason=reason, evidence=evidence)  # fmt: skip
    # a data gap is reported once it is 10 minutes old and opens a case once it has lasted 4 h
    opened_at = start + timedelta(minutes=10) if kind is AlertKind.DATA_GAP else start
    long_gap = kind is AlertKind.DATA_GAP and length > timedelta(hours=4, minutes=30)
    updated_at = start + timedelta(hours=4, minutes=15) if long_gap else start + length / 2
    events = [base.model_copy(update={"at": opened_at}),
              base.model_copy(update={"event": AlertEventType.UPDATED, "at": updated_at})]  # fmt: skip
    if resolved:
        end = start + length
        events.append(base.model_copy(update={"event": AlertEventType.RESOLVED, "at": end, "end": end}))
    return events


def episode_length(pair: Pair, slot: timedelta) -> timedelta:
    return max(slot * 0.25, timedelta(hours=5)) if pair.kind is AlertKind.DATA_GAP else slot * 0.2


@dataclass(frozen=True)
class People:
    officer: str
    enterprise: str


def dismissed_case(pair: Pair, start: datetime, slot: timedelta, path: str, who: People, policy: CasePolicy,
                   rnd: random.Random) -> list[Block]:  # fmt: skip
    """A case closed without verification within ``slot``: straight from new, after
    assignment, or after the enterprise's response."""
    length = episode_length(pair, slot)
    parameter = rnd.choice(pair.parameters)
    events = episode(pair, parameter, start, length)
    if pair.kind is AlertKind.EXCEEDANCE:  # the early warning before it opens nothing
        warning = Pair(pair.enterprise, pair.stack, pair.district, AlertKind.EARLY_WARNING, pair.parameters)
        events = episode(warning, parameter, start - timedelta(minutes=20), timedelta(minutes=25)) + events
    others = [p for p in pair.parameters if p != parameter]
    if others and rnd.random() < 0.3:  # a second parameter joins the case
        events += episode(pair, rnd.choice(others), start + length * 0.3, length * 0.5)
    blocks = [Block(events=sorted(events, key=lambda e: e.at))]
    t = start + length + (slot - length) * 0.1
    step = (slot - length) * 0.15
    acts: list[Act] = []
    if path != "close_new":
        acts.append(Act(t, SUPERVISOR, Command(Action.ASSIGN, SUPERVISOR, assignee=who.officer)))
    if path == "respond_close":
        days = policy.kinds[pair.kind].response_days
        acts.append(Act(t + step, who.officer, Command(Action.SET_DEADLINE, who.officer,
                                                       deadline=t + step + timedelta(days=days))))  # fmt: skip
        answer = Command(Action.RESPOND, who.enterprise, note="replaced the analyser's pump; readings normal")
        acts.append(Act(t + 2 * step, who.enterprise, answer))
    note = {"close_new": "the operator's maintenance log explains it; no breach",
            "assign_close": "checked on site: instrument fault, repaired",
            "respond_close": "response accepted after the site visit"}[path]  # fmt: skip
    acts.append(Act(t + 3 * step, SUPERVISOR, Command(Action.CLOSE, SUPERVISOR, note=note)))
    blocks.append(Block(acts=acts))
    if pair.kind is AlertKind.DATA_GAP and rnd.random() < 0.3:  # a short gap: opens nothing
        blocks.append(Block(events=episode(pair, None, start + slot * 0.9, timedelta(minutes=30))))
    return blocks


def verified_slot(pair: Pair, policy: CasePolicy, recur: bool) -> timedelta:
    return timedelta(days=policy.kinds[pair.kind].verify_days + 2 + (3 if recur else 0))


def verified_case(pair: Pair, start: datetime, who: People, policy: CasePolicy, recur: bool,
                  rnd: random.Random) -> list[Block]:  # fmt: skip
    """A case closed as verified from data: assigned, rectification ordered, answered, (the
    condition recurs while verifying and is answered again,) quiet for the kind's window."""
    kind_policy = policy.kinds[pair.kind]
    parameter = rnd.choice(pair.parameters)
    length = timedelta(hours=5)
    blocks = [Block(events=episode(pair, parameter, start, length))]
    assign_at, deadline_at, respond_at = start + 6 * H, start + 8 * H, start + 30 * H
    respond = Command(Action.RESPOND, who.enterprise, note="bag filter replaced, see the attached report")
    blocks.append(Block(acts=[
        Act(assign_at, SUPERVISOR, Command(Action.ASSIGN, SUPERVISOR, assignee=who.officer)),
        Act(deadline_at, who.officer, Command(Action.SET_DEADLINE, who.officer,
                                              deadline=deadline_at + timedelta(days=kind_policy.response_days))),
        Act(respond_at, who.enterprise, respond),
    ]))  # fmt: skip
    if recur:
        again = respond_at + timedelta(days=2)
        blocks.append(Block(events=episode(pair, parameter, again, length)))
        respond_at = again + timedelta(days=1)
        blocks.append(Block(acts=[Act(respond_at, who.enterprise, respond)]))
    verify_at = respond_at + timedelta(days=kind_policy.verify_days, hours=1)
    blocks.append(Block(acts=[Act(verify_at, who.officer, Command(Action.VERIFY, who.officer))]))
    return blocks


TAIL_STATES = ("new", "assigned", "rectifying", "overdue", "verifying")


def tail_case(pair: Pair, start: datetime, now: datetime, state: str, who: People) -> list[Block]:
    """The pair's last case, still open at ``now`` in ``state``."""
    blocks = [Block(events=episode(pair, pair.parameters[0], start, 5 * H, resolved=state != "new"))]
    acts = []
    if state != "new":
        acts.append(Act(start + 6 * H, SUPERVISOR, Command(Action.ASSIGN, SUPERVISOR, assignee=who.officer)))
    if state in ("rectifying", "overdue", "verifying"):
        deadline = start + timedelta(days=1, hours=8) if state == "overdue" else now + timedelta(days=3)
        acts.append(Act(start + 8 * H, who.officer, Command(Action.SET_DEADLINE, who.officer, deadline=deadline)))
    if state == "verifying":
        acts.append(Act(start + 30 * H, who.enterprise, Command(Action.RESPOND, who.enterprise,
                                                                note="scrubber pump repaired")))  # fmt: skip
    if acts:
        blocks.append(Block(acts=acts))
    return blocks


def timeline(registry: Registry, cases: int, days: float, now: datetime, policy: CasePolicy,
             seed: int) -> list[list[Block]]:  # fmt: skip
    """Per pair, its blocks in time order; ``cases`` cases in all over ``days`` ending ``now``."""
    rnd = random.Random(seed)
    pairs = pairs_of(registry)
    officers = {districts[0]: name for name, role, districts, _, _ in demo_accounts(registry) if role is Role.OFFICER}
    start = now - timedelta(days=days)
    tail_start = now - timedelta(days=4)
    plans = []
    for i, pair in enumerate(pairs):
        count = cases // len(pairs) + (1 if i < cases % len(pairs) else 0)
        if count == 0:
            continue
        who = People(officers[pair.district], pair.enterprise)
        verify_days = policy.kinds[pair.kind].verify_days
        verified = min(int(days * 0.4 / (verify_days + 2)), (count - 1) // 10)
        recurs = [j == 0 and rnd.random() < 0.5 for j in range(verified)]
        dismissed = count - 1 - verified
        room = tail_start - start - sum((verified_slot(pair, policy, r) for r in recurs), timedelta())
        slot = room / (dismissed + 0.5)
        if dismissed and slot < timedelta(hours=7):
            raise SystemExit(f"--cases {cases} over --days {days:g}: {slot.total_seconds() / 3600:.1f} h per case "
                             f"for {pair.stack} {pair.kind.value}; at least 7 h are needed: raise --days")  # fmt: skip
        kinds_of_case = ["verified"] * verified + [
            rnd.choices(("close_new", "assign_close", "respond_close"), (25, 40, 35))[0] for _ in range(dismissed)
        ]
        rnd.shuffle(kinds_of_case)
        blocks: list[Block] = []
        t = start + slot * rnd.random() * 0.5
        for path in kinds_of_case:
            if path == "verified":
                recur = recurs.pop()
                blocks += verified_case(pair, t, who, policy, recur, rnd)
                t += verified_slot(pair, policy, recur)
            else:
                blocks += dismissed_case(pair, t, slot, path, who, policy, rnd)
                t += slot
        tail_at = max(t, tail_start) + timedelta(minutes=rnd.randrange(0, 600))
        blocks += tail_case(pair, tail_at, now, rnd.choice(TAIL_STATES), who)
        plans.append(merged(blocks))
    return plans


def merged(blocks: list[Block]) -> list[Block]:
    out: list[Block] = []
    for block in blocks:
        if out and bool(out[-1].events) == bool(block.events):
            out[-1].events += block.events
            out[-1].acts += block.acts
        else:
            out.append(block)
    return out


# -- seeding through the case store ----------------------------------------------------------------
@dataclass
class SeedFigures:
    events: int = 0
    ingest_s: float = 0.0
    acts: int = 0
    act_s: float = 0.0
    wall_s: float = 0.0
    opened: int = 0
    ignored: int = 0


def seed(store: CaseStore, plans: list[list[Block]], batch: int) -> SeedFigures:
    """In rounds: every pair's next events block (all pairs' events in time order, in batches
    with their topic positions), then every pair's next actions block (in time order)."""
    with store.session() as s:
        actors = {u.username: actor_of(u) for u in s.scalars(select(db.User))}
    total_events = sum(len(b.events) for plan in plans for b in plan)
    figures = SeedFigures()
    offsets: Counter[int] = Counter()
    open_case: dict[int, int] = {}
    pointer = [0] * len(plans)
    started = last_report = time.perf_counter()

    def take(events: bool) -> list[tuple[int, Block]]:
        out = []
        for i, plan in enumerate(plans):
            if pointer[i] < len(plan) and bool(plan[pointer[i]].events) == events:
                out.append((i, plan[pointer[i]]))
                pointer[i] += 1
        return out

    while any(pointer[i] < len(plan) for i, plan in enumerate(plans)):
        events = sorted((e for _, b in take(events=True) for e in b.events), key=lambda e: e.at)
        for first in range(0, len(events), batch):
            records = []
            for e in events[first : first + batch]:
                partition = zlib.crc32(e.stack.encode()) % PARTITIONS
                records.append(Record(partition, offsets[partition], e.model_dump_json().encode()))
                offsets[partition] += 1
            t0 = time.perf_counter()
            stats = store.ingest(TOPIC, records)
            figures.ingest_s += time.perf_counter() - t0
            figures.events += stats.events
            figures.opened += stats.opened
            figures.ignored += stats.ignored
        acts = sorted(((i, a) for i, b in take(events=False) for a in b.acts), key=lambda x: x[1].at)
        for i, act in acts:
            if i not in open_case:
                open_case[i] = locate(store, plans[i])
            t0 = time.perf_counter()
            result = store.act(actors[act.username], open_case[i], act.command, act.at)
            figures.act_s += time.perf_counter() - t0
            figures.acts += 1
            if result is None or isinstance(result, Refusal):
                raise SystemExit(f"{act.command.action.value} by {act.username} on case {open_case[i]} at "
                                 f"{act.at:%Y-%m-%d %H:%M}: {result}")  # fmt: skip
            if result.case.state is CaseState.CLOSED:
                del open_case[i]
        if time.perf_counter() - last_report >= 3:
            last_report = time.perf_counter()
            say(
                f"  {figures.events:,}/{total_events:,} events ({figures.events / figures.ingest_s:,.0f}/s), "
                f"{figures.opened:,} cases opened, {figures.acts:,} actions ({figures.acts / figures.act_s:,.0f}/s)"
            )
    figures.wall_s = time.perf_counter() - started
    return figures


def locate(store: CaseStore, plan: list[Block]) -> int:
    """The open case of a plan's stack and kind."""
    sample = next(e for b in plan for e in b.events if e.kind in KINDS)
    with store.session() as s:
        found = s.scalar(select(db.Case.id).where(db.Case.enterprise == sample.enterprise,
                                                  db.Case.stack == sample.stack, db.Case.kind == sample.kind.value,
                                                  db.Case.state != CaseState.CLOSED.value)
                         .order_by(db.Case.id.desc()).limit(1))  # fmt: skip
    if found is None:
        raise SystemExit(f"no open case for {sample.stack} {sample.kind.value}")
    return found


# -- the server and its clients ----------------------------------------------------------------------
def serve(port: int) -> None:
    """The console's web app over the database in $BENCH_CONSOLE_DATABASE_URL (as
    ``console.service.run_console`` serves it, without Kafka and InfluxDB)."""
    import uvicorn

    from console.web import ConsoleContext, create_app

    store = CaseStore(db.make_engine(os.environ[DATABASE_ENV]), CasePolicy(), directory(load_registry()))
    ctx = ConsoleContext(store=store, session_lifetime=timedelta(hours=12), login_limit=LoginLimit())
    uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning")).run()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, url: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            command = [sys.executable, __file__, "--serve", str(self.port)]
            env = {**os.environ, DATABASE_ENV: url}
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the console server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def login(self, username: str) -> httpx.Client:
        client = httpx.Client(base_url=self.base, timeout=120)
        found = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert found is not None, "no CSRF token on the login page"
        response = client.post("/login", data={"username": username, "password": PASSWORD, "csrf": found.group(1)})
        if response.status_code != 303:
            raise SystemExit(f"login as {username}: {response.status_code}")
        return client

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass(frozen=True)
class Page:
    name: str
    user: str
    path: str
    #: for a list page: the filter ``list_cases`` gets (the database floor)
    filter: queries.CaseFilter | None = None


@dataclass
class Timing:
    median_ms: float
    p95_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Timing:
        return cls(
            statistics.median(seconds) * 1000, statistics.quantiles(seconds, n=20, method="inclusive")[18] * 1000
        )

    def __str__(self) -> str:
        return f"{self.median_ms:,.1f} / {self.p95_ms:,.1f}"


def timed(call: Callable[[], Any], requests: int, warm: int = 3) -> list[float]:
    times = []
    for i in range(warm + requests):
        t0 = time.perf_counter()
        call()
        if i >= warm:
            times.append(time.perf_counter() - t0)
    return times


def fetch_page(client: httpx.Client, path: str) -> int:
    response = client.get(path)
    if response.status_code != 200:
        raise SystemExit(f"GET {path}: {response.status_code}")
    return len(response.content)


# -- database floor and plans --------------------------------------------------------------------------
def captured(engine: Engine, call: Callable[[Session], Any]) -> list[tuple[str, Any]]:
    """The statements ``call`` sends to the database, as the driver gets them."""
    statements: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "cases" in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        with Session(engine) as s:
            call(s)
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    return statements


def bare_sql(engine: Engine, statements: list[tuple[str, Any]], requests: int) -> list[float]:
    with engine.connect() as conn:
        return timed(lambda: [conn.exec_driver_sql(sql, params).fetchall() for sql, params in statements], requests)


def plan_summary(engine: Engine, sql: str, params: Any) -> tuple[str, float | None, str | None]:
    """(the plan in one line, execution ms (PostgreSQL), what a sequential scan of the cases
    table costs, if there is one)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            raw = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params).scalar_one()
            found = (json.loads(raw) if isinstance(raw, str) else raw)[0]
            nodes: list[str] = []
            seq_ms = 0.0

            def walk(node: dict[str, Any]) -> None:
                nonlocal seq_ms
                what = node["Node Type"]
                if "Index Name" in node:
                    what += f" {node['Index Name']}"
                elif "Relation Name" in node:
                    what += f" {node['Relation Name']}"
                nodes.append(f"{what} ({node['Actual Rows']:,} rows)")
                if node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "cases":
                    seq_ms += node["Actual Total Time"] * node["Actual Loops"]
                for child in node.get("Plans", []):
                    walk(child)

            walk(found["Plan"])
            total = found["Execution Time"]
            seq = None
            if seq_ms:
                most = "most of the time" if seq_ms > 0.5 * total else "less than half"
                seq = f"sequential scan of cases {seq_ms:.1f} of {total:.1f} ms ({most})"
            return " > ".join(nodes), total, seq
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        details = [str(r[-1]) for r in rows]
        # SQLite gives no times: say so when the table itself is read whole
        whole = any(d == "SCAN cases" for d in details)
        return "; ".join(details), None, "reads the whole cases table" if whole else None


def top_frames(profile: Path) -> list[tuple[str, float]]:
    return pyspy.top_frames(
        profile, PROJECT_CODE, count=12, elsewhere="elsewhere (server loop, framework, idle threads)"
    )


def profile_page(server: Server, client: httpx.Client, path: str, output: Path, requests: int) -> None:
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        say("  py-spy not found: no profile")
        return
    spy = subprocess.Popen([py_spy, "record", "--pid", str(server.proc.pid), "--format", "raw", "--output",
                            str(output), "--rate", "200", "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    time.sleep(1)
    for _ in range(requests):
        fetch_page(client, path)
    spy.send_signal(signal.SIGINT)
    spy.wait(30)
    table = Table(title=f"the server serving {path} {requests} times (py-spy, {output})")
    table.add_column("line (file)")
    table.add_column("share of samples", justify="right")
    for frame, share in top_frames(output):
        table.add_row(frame, f"{share:.0%}")
    console.print(table)


# -- one database ------------------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    timing: Timing
    size: int
    floor: Timing | None = None
    in_process: Timing | None = None


@dataclass
class Run:
    database: str
    seeding: SeedFigures
    counts: dict[str, int]
    results: list[Result]
    notes: list[str]


def counts_of(store: CaseStore) -> dict[str, int]:
    with store.session() as s:
        out = {t.__tablename__: s.scalar(select(func.count()).select_from(t)) or 0
               for t in (db.Case, db.Alert, db.AlertEventRow, db.CaseHistory)}  # fmt: skip
        for state in CaseState:
            out[state.value] = (
                s.scalar(select(func.count()).select_from(db.Case).where(db.Case.state == state.value)) or 0
            )
        return out


def pages_for(store: CaseStore, registry: Registry, now: datetime) -> tuple[list[Page], dict[str, Actor]]:
    with store.session() as s:
        district, _ = s.execute(select(db.Case.district, func.count()).group_by(db.Case.district)
                                .order_by(func.count().desc()).limit(1)).one()  # fmt: skip
        enterprise, _ = s.execute(select(db.Case.enterprise, func.count()).group_by(db.Case.enterprise)
                                  .order_by(func.count().desc()).limit(1)).one()  # fmt: skip
        total = s.scalar(select(func.count()).select_from(db.Case)) or 0
        rich = s.scalar(select(db.Case.id).where(db.Case.recurrences > 0, db.Case.resolution == "verified")
                        .order_by(db.Case.id).limit(1))  # fmt: skip
        case_id = rich or s.scalar(select(db.Case.id).order_by(db.Case.id).limit(1))
        alerts = s.scalar(select(func.count()).select_from(db.Alert).where(db.Alert.case_id == case_id))
        history = s.scalar(select(func.count()).select_from(db.CaseHistory).where(db.CaseHistory.case_id == case_id))
        users = {u.username: actor_of(u) for u in s.scalars(select(db.User))}
    officer = next(name for name, role, districts, _, _ in demo_accounts(registry)
                   if role is Role.OFFICER and districts == [district])  # fmt: skip
    last = max(1, -(-total // queries.PAGE_SIZE))
    month = f"{report.month_of(report.month_of(now) - timedelta(days=1)):%Y-%m}"
    f = queries.CaseFilter
    pages = [
        Page(f"case list, first page (supervisor, all {total:,})", SUPERVISOR, "/cases", f()),
        Page(f"filtered: district {district} + state closed", SUPERVISOR,
             f"/cases?district={district}&state=closed", f(district=district, state="closed")),
        Page("overdue=1", SUPERVISOR, "/cases?overdue=1", f(overdue=True)),
        Page("sorted by deadline", SUPERVISOR, "/cases?sort=deadline", f(sort=queries.Sort.DEADLINE)),
        Page(f"last page ({last})", SUPERVISOR, f"/cases?page={last}", f(page=last)),
        Page(f"officer's list ({officer}, {district})", officer, "/cases", f()),
        Page(f"enterprise account's list ({enterprise})", enterprise, "/cases", f()),
        Page(f"case detail (#{case_id}: {alerts} alerts, {history} history rows)", SUPERVISOR, f"/cases/{case_id}"),
        Page(f"monthly report page ({month})", SUPERVISOR, f"/reports/monthly?month={month}"),
        Page(f"monthly report CSV ({month})", SUPERVISOR, f"/reports/monthly.csv?month={month}"),
        Page(f"monthly report XLSX ({month})", SUPERVISOR, f"/reports/monthly.xlsx?month={month}"),
    ]  # fmt: skip
    return pages, users


@dataclass
class Database:
    label: str
    url: str
    cleanup: Callable[[], None]


def sqlite_database(work: Path) -> Database:
    path = work / "console.sqlite3"
    return Database("SQLite", f"sqlite:///{path}", lambda: None)


def postgres_database(infra: InfraSettings) -> Database:
    name = f"bench_console_{uuid.uuid4().hex[:8]}"
    url = create_database(infra, name)
    return Database(f"PostgreSQL ({name})", url, lambda: drop_database(infra, name))


def bench_database(database: Database, args: argparse.Namespace, work: Path) -> Run:
    registry = load_registry()
    policy = CasePolicy()
    engine = db.make_engine(database.url)
    migrate.upgrade(engine)
    store = CaseStore(engine, policy, directory(registry))
    ensure_demo_users(store, registry, PASSWORD)
    now = datetime.now(UTC).replace(microsecond=0)
    plans = timeline(registry, args.cases, args.days, now, policy, args.seed)
    say(f"[bold]{database.label}[/]: seeding {args.cases:,} cases over {args.days:g} days "
        f"({len(plans)} stacks x kinds, batches of {args.batch})")  # fmt: skip
    seeding = seed(store, plans, args.batch)
    counts = counts_of(store)
    notes = []
    if counts["cases"] != args.cases:
        notes.append(f"{counts['cases']:,} cases made, not {args.cases:,}")
    say(f"  {seeding.events:,} events in {seeding.ingest_s:.1f}s = {seeding.events / seeding.ingest_s:,.0f} events/s "
        f"through CaseStore.ingest; {seeding.acts:,} actions in {seeding.act_s:.1f}s = "
        f"{seeding.acts / seeding.act_s:,.0f}/s through CaseStore.act; wall {seeding.wall_s:.0f}s")  # fmt: skip
    say("  " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")

    pages, actors = pages_for(store, registry, now)
    server = Server(database.url, work / f"server-{engine.dialect.name}.log")
    results: list[Result] = []
    try:
        clients = {user: server.login(user) for user in {p.user for p in pages}}
        health = timed(lambda: clients[SUPERVISOR].get("/healthz").raise_for_status(), args.requests)
        results.append(Result("GET /healthz (HTTP + framework floor)", Timing.of(health), 2))
        for page in pages:
            client = clients[page.user]
            size = fetch_page(client, page.path)
            result = Result(page.name, Timing.of(timed(lambda c=client, p=page.path: fetch_page(c, p),  # type: ignore[misc]
                                                      args.requests)), size)  # fmt: skip
            if page.filter is not None:
                actor, flt = actors[page.user], page.filter
                statements = captured(engine, lambda s, a=actor, f=flt: queries.list_cases(s, a, f, now))  # type: ignore[misc]
                result.floor = Timing.of(bare_sql(engine, statements, args.requests))

                def in_process(a: Actor = actor, f: queries.CaseFilter = flt) -> None:
                    with Session(engine) as s:
                        queries.list_cases(s, a, f, now)

                result.in_process = Timing.of(timed(in_process, args.requests))
            results.append(result)
            say(f"  {page.name}: {result.timing} ms" + (f" (SQL {result.floor} ms)" if result.floor else ""))
        explain(engine, pages, actors, now, notes)
        slowest = max(range(len(pages)), key=lambda i: results[i + 1].timing.median_ms)
        if args.profile or results[slowest + 1].timing.median_ms > SLOW_MS:
            output = args.profile or work / "profile.txt"
            output = output.with_name(f"{output.stem}-{engine.dialect.name}{output.suffix or '.txt'}")
            page = pages[slowest]
            profile_page(server, clients[page.user], page.path, output, max(args.requests, 60))
        for client in clients.values():
            client.close()
    finally:
        server.stop()
        engine.dispose()
    return Run(database.label, seeding, counts, results, notes)


def explain(engine: Engine, pages: list[Page], actors: dict[str, Actor], now: datetime, notes: list[str]) -> None:
    table = Table(title=f"query plans ({engine.dialect.name})", show_lines=True)
    for column in ("query", "plan", "ms"):
        table.add_column(column, justify="right" if column == "ms" else "left")
    chief = actors[SUPERVISOR]
    facets = captured(engine, lambda s: queries.facets(s, chief))
    work: list[tuple[str, list[tuple[str, Any]]]] = [("facets (supervisor)", facets)]
    for page in pages:
        if page.filter is not None:
            actor, flt = actors[page.user], page.filter
            work.append((page.name, captured(engine, lambda s, a=actor, f=flt: queries.list_cases(s, a, f, now))))  # type: ignore[misc]
    for name, statements in work:
        for i, (sql, params) in enumerate(statements):
            what = "count" if "count(" in sql.lower() else "rows"
            plan, ms, seq = plan_summary(engine, sql, params)
            label = f"{name}: {what}" if "facets" not in name else f"{name} {i + 1}"
            table.add_row(label, plan, "" if ms is None else f"{ms:.1f}")
            if seq:
                notes.append(f"{engine.dialect.name}, {label}: {seq}")
    console.print(table)


# -- the run ---------------------------------------------------------------------------------------------
def report_tables(runs: list[Run], args: argparse.Namespace) -> None:
    for run in runs:
        table = Table(title=f"case console, {run.database}: {run.counts['cases']:,} cases, "
                            f"{args.requests} requests a page, median / p95 ms")  # fmt: skip
        for column in ("page", "page load", "size", "list_cases() in-process", "SQL count + page (floor)"):
            table.add_column(column, justify="left" if column == "page" else "right")
        for r in run.results:
            table.add_row(r.name, str(r.timing), f"{r.size / 1024:,.1f} KB" if r.size > 2 else f"{r.size} B",
                          str(r.in_process or ""), str(r.floor or ""))  # fmt: skip
        console.print(table)
        for note in run.notes:
            say(f"[yellow]note[/]: {note}")
    if len(runs) > 1:
        table = Table(title="side by side: page load median / p95 ms (SQL floor median)")
        table.add_column("page")
        for run in runs:
            table.add_column(run.database.split(" ")[0], justify="right")
        for i, r in enumerate(runs[0].results):
            cells = []
            for run in runs:
                other = run.results[i]
                cells.append(str(other.timing) + (f" ({other.floor.median_ms:.1f})" if other.floor else ""))
            table.add_row(r.name, *cells)
        table.add_row("seeding: events/s through CaseStore.ingest",
                      *(f"{run.seeding.events / run.seeding.ingest_s:,.0f}" for run in runs))  # fmt: skip
        table.add_row("seeding: actions/s through CaseStore.act",
                      *(f"{run.seeding.acts / run.seeding.act_s:,.0f}" for run in runs))  # fmt: skip
        console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=90, help="the history's length, ending now")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page")
    parser.add_argument("--batch", type=int, default=500, help="alert records per CaseStore.ingest call")
    parser.add_argument("--databases", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", type=Path, help="sample the server with py-spy on the slowest page, to PATH")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file and the PostgreSQL database")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-console-"))
    infra = InfraSettings()
    say(f"{os.cpu_count()} cores shared with the servers and other work; logs in {work}")
    runs = []
    for name in args.databases.split(","):
        database = sqlite_database(work) if name == "sqlite" else postgres_database(infra)
        try:
            runs.append(bench_database(database, args, work))
        finally:
            if args.keep:
                say(f"kept {database.label}: {re.sub(r':[^:@/]+@', ':***@', database.url)}")
            else:
                database.cleanup()
    report_tables(runs, args)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
