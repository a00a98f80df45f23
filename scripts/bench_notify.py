"""Notifier throughput and latency against the real Kafka and a real `cems notify` process.

    .venv/bin/python scripts/bench_notify.py [--alerts 5000] [--rate 20] [--seconds 30]
        [--posts 2000] [--concurrency N] [--open-alerts 50000] [--profile PATH]

Needs `cems infra up`. Each phase uses a fresh topic namespace (``bench<uuid>``), deleted at
the end. The routing sends every alert to one webhook receiver on a real local HTTP server
(the integration tests' ``HookServer``), ``group_wait`` and ``group_interval`` 0s.

- **planner**: ``NotifyBook.add_event`` for the burst's events, then ``plan(now)`` with all
  of them due, then (everything delivered) ``plan(now)`` again with nothing due, which is
  what the notifier pays on every loop (at most ``notify_poll_s`` apart) while the alerts stay
  open; and that last call again with ``--open-alerts`` open alerts. In-process, no I/O.
- **burst**: ``--alerts`` distinct alert events (the sample registry's stacks, pollutants and
  hours) produced at once to the alerts topic of a running `cems notify`; the clock runs from
  the first produce until the webhook has received every alert id. ``--profile`` samples the
  notifier with py-spy meanwhile.
- **raw limits**, same run: a plain confluent-kafka consumer over the burst's alerts topic
  (records/s); the HTTP server's POST rate from one httpx ``AsyncClient`` with as many
  requests in flight as the notifier can have for one receiver (one per enterprise).
- **latency**: ``--rate`` alerts/s for ``--seconds`` to a fresh notifier; per alert, from its
  Kafka timestamp (CreateTime, from the delivery report) to the webhook request that carried
  it; beside it, two plain consumers on the same topic in the same run: Kafka's own produce
  to consume latency with ``poll()``, and with ``TopicReader.poll(notify_poll_s)`` as the
  notifier's ``TopicReader`` reads, measured the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from kafka import KafkaAdminClient
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cems import pyspy  # noqa: E402
from cems.infra.settings import InfraSettings  # noqa: E402
from cems.topics import ensure_topics  # noqa: E402
from contracts.alerts import AlertEvent  # noqa: E402
from contracts.notifications import DeliveryRecord, DeliveryStatus  # noqa: E402
from contracts.registry import load_registry  # noqa: E402
from contracts.topics import Topics, topics  # noqa: E402
from notify.config import load_routing  # noqa: E402
from notify.kafka_log import TopicReader  # noqa: E402
from notify.settings import NotifySettings  # noqa: E402
from rules.notify.planner import NotifyBook  # noqa: E402
from rules.notify.routing import directory  # noqa: E402
from tests.integration.helpers import CemsProcess, infra_env  # noqa: E402
from tests.integration.notify_rig import HookServer, alert, publish, write_routing  # noqa: E402

POLLUTANTS = ("so2", "nox", "pm", "nh3")
PROJECT_CODE = ("notify/", "rules/", "contracts/")
console = Console(width=max(Console().width, 150))


def say(text: str) -> None:
    console.print(text, highlight=False)


# -- inputs ------------------------------------------------------------------------------------
def alert_events(count: int, first_hour: datetime) -> list[AlertEvent]:
    """``count`` distinct opened alerts over every stack of the sample registry: each stack's
    pollutants in turn, then one hour earlier."""
    pairs = [(s.id, p) for _, s in load_registry().stacks() for p in POLLUTANTS if p in s.parameters]
    return [
        alert(stack, parameter, start=first_hour - timedelta(hours=i // len(pairs)))
        for i, (stack, parameter) in ((i, pairs[i % len(pairs)]) for i in range(count))
    ]


def routing_file(directory_: Path, hooks: HookServer, path: str) -> Path:
    return write_routing(
        directory_ / f"routing-{path.strip('/')}.yaml",
        {"hook": [{"type": "webhook", "url": f"{hooks.url}{path}"}]},
        [{"name": "all", "levels": [{"receivers": ["hook"]}], "group_wait": "0s", "group_interval": "0s"}],
        delivery={"timeout_s": 10},
    )


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99, max."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98], max(values)


# -- the pure planner --------------------------------------------------------------------------
@dataclass
class PlannerFigures:
    add_event_per_s: float
    first_plan_s: float
    notices: int
    idle_plan_s: float


def bench_planner(routing: Path, events: list[AlertEvent], idle_calls: int = 10) -> PlannerFigures:
    book = NotifyBook(load_routing(routing), directory(load_registry()))
    seen_at = datetime.now(UTC)
    started = time.perf_counter()
    for event in events:
        book.add_event(event, seen_at)
    add_s = time.perf_counter() - started
    now = seen_at + timedelta(seconds=1)
    started = time.perf_counter()
    plan = book.plan(now)
    first_plan_s = time.perf_counter() - started
    for notice in plan.notices:  # as the notifier's log would say: every notice delivered
        for status in (DeliveryStatus.SENDING, DeliveryStatus.DELIVERED):
            book.add_record(DeliveryRecord(notice_id=notice.notice_id, receiver=notice.receiver, group=notice.group,
                                           items=notice.items, status=status, at=now))  # fmt: skip
    idle_s = []
    for _ in range(idle_calls):
        started = time.perf_counter()
        idle = book.plan(now)
        idle_s.append(time.perf_counter() - started)
        assert not idle.notices, "a delivered notice planned again"
    return PlannerFigures(len(events) / add_s, first_plan_s, len(plan.notices), statistics.median(idle_s))


def decode_rate(values: list[bytes], repeat: int = 3) -> float:
    """Alert events/s decoded from JSON as the notifier does (median of ``repeat``)."""
    rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        for value in values:
            AlertEvent.model_validate_json(value)
        rates.append(len(values) / (time.perf_counter() - started))
    return statistics.median(rates)


def median_planner(routing: Path, events: list[AlertEvent], repeat: int = 3) -> PlannerFigures:
    """Each figure's median over ``repeat`` fresh books (the machine is shared)."""
    runs = [bench_planner(routing, events) for _ in range(repeat)]
    return PlannerFigures(
        statistics.median(r.add_event_per_s for r in runs),
        statistics.median(r.first_plan_s for r in runs),
        runs[0].notices,
        statistics.median(r.idle_plan_s for r in runs),
    )


# -- the notifier ------------------------------------------------------------------------------
@dataclass
class Receipts:
    """The alert ids the webhook received on one path, with the first arrival of each."""

    hooks: HookServer
    path: str
    first_at: dict[str, float] = field(default_factory=dict)
    seen: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    read: int = 0

    def update(self) -> int:
        fresh = self.hooks.requests[self.read :]
        self.read += len(fresh)
        for request in fresh:
            if request.path != self.path:
                continue
            self.requests += 1
            for item in request.body["alerts"]:
                self.seen[item["alert_id"]] += 1
                self.first_at.setdefault(item["alert_id"], request.at)
        return len(self.first_at)


def start_notifier(infra: InfraSettings, topic_set: Topics, routing: Path, log: Path) -> CemsProcess:
    namespace = topic_set.alerts.name.split(".")[0]
    notifier = CemsProcess(["notify", "--routing", str(routing), "--namespace", namespace], log, b"caught up",
                           infra_env(infra))  # fmt: skip
    notifier.start()
    return notifier


def await_receipts(receipts: Receipts, expect: set[str], notifier: CemsProcess, timeout_s: float) -> float:
    """Wait until the webhook has every id in ``expect``; the arrival of the last one."""
    deadline, last_report = time.monotonic() + timeout_s, time.monotonic()
    while not expect <= receipts.first_at.keys():
        receipts.update()
        if notifier.proc is not None and notifier.proc.poll() is not None:
            raise SystemExit(f"the notifier exited {notifier.proc.returncode}:\n{notifier.tail()}")
        if time.monotonic() > deadline:
            missing = len(expect - receipts.first_at.keys())
            raise SystemExit(f"{missing} of {len(expect)} alerts not at the webhook in {timeout_s:.0f}s\n"
                             f"{notifier.tail()}")  # fmt: skip
        if time.monotonic() - last_report >= 2:
            say(f"  {len(expect & receipts.first_at.keys()):,}/{len(expect):,} alerts at the webhook "
                f"in {receipts.requests:,} requests")  # fmt: skip
            last_report = time.monotonic()
        time.sleep(0.05)
    return max(receipts.first_at[a] for a in expect)


@dataclass
class BurstFigures:
    seconds: float
    requests: int
    duplicates: int
    profile: list[tuple[str, float]]


def bench_burst(infra: InfraSettings, topic_set: Topics, routing: Path, hooks: HookServer, events: list[AlertEvent],
                work: Path, profile: Path | None) -> BurstFigures:  # fmt: skip
    notifier = start_notifier(infra, topic_set, routing, work / "notify-burst.log")
    receipts = Receipts(hooks, "/burst")
    spy = None
    try:
        if profile is not None and notifier.proc is not None:
            py_spy = shutil.which("py-spy", path=Path(sys.executable).parent) or shutil.which("py-spy")
            if py_spy is None:
                raise SystemExit("--profile needs py-spy (.venv/bin/pip install py-spy)")
            spy = subprocess.Popen([py_spy, "record", "--pid", str(notifier.proc.pid), "--format", "raw",
                                    "--output", str(profile), "--rate", "100", "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
            time.sleep(1)
        started = time.time()
        publish(infra.kafka_bootstrap, topic_set.alerts.name, events)
        say(f"  produced {len(events):,} alert events in {time.time() - started:.1f}s")
        last = await_receipts(receipts, {e.alert_id for e in events}, notifier, timeout_s=300)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        notifier.stop()
    seconds = last - started
    duplicates = sum(n - 1 for n in receipts.seen.values())
    return BurstFigures(seconds, receipts.requests, duplicates, top_frames(profile) if profile else [])


def top_frames(profile: Path) -> list[tuple[str, float]]:
    return pyspy.top_frames(profile, PROJECT_CODE, count=10, elsewhere="elsewhere (the event loop, threads, start-up)")


# -- raw limits --------------------------------------------------------------------------------
def raw_consume(bootstrap: str, topic: str, expect: int) -> float:
    """Records/s of a plain consumer (the notifier's settings) reading ``expect`` records."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})  # fmt: skip
    try:
        parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        started = time.perf_counter()
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        got = 0
        while got < expect:
            got += sum(1 for m in consumer.consume(1000, 1.0) if m.error() is None)
            if time.perf_counter() - started > 120:
                raise SystemExit(f"plain consumer: {got} of {expect} records in 120s")
        return got / (time.perf_counter() - started)
    finally:
        consumer.close()


def raw_posts(url: str, body: dict[str, Any], count: int, concurrency: int) -> tuple[float, int]:
    """Requests/s of one httpx AsyncClient posting ``body`` with ``concurrency`` in flight,
    and how many attempts failed at the transport (each is tried again, as the notifier would)."""

    async def run() -> tuple[float, int]:
        failed = 0
        async with httpx.AsyncClient(timeout=10) as client:
            todo = iter(range(count))

            async def worker() -> None:
                nonlocal failed
                for _ in todo:
                    for attempt in range(3):
                        try:
                            (await client.post(url, json=body)).raise_for_status()
                            break
                        except httpx.TransportError:
                            failed += 1
                            if attempt == 2:
                                raise

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return count / (time.perf_counter() - started), failed

    return asyncio.run(run())


class LatencyProbe(threading.Thread):
    """A plain consumer on the alerts topic: arrival time minus Kafka timestamp per record;
    with ``poll()`` (each record as soon as it is fetched), or with ``batch_s``, through the
    notifier's own ``TopicReader.poll(batch_s)``."""

    def __init__(self, bootstrap: str, topic: str, batch_s: float | None = None) -> None:
        super().__init__(daemon=True)
        self.batch_s = batch_s
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-probe-{uuid.uuid4().hex[:8]}",
                                  "enable.auto.commit": False, "isolation.level": "read_committed"})  # fmt: skip
        parts = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, 0) for p in sorted(parts)])
        self.reader = None if batch_s is None else TopicReader(bootstrap, [topic], group="bench-probe-reader")
        self.latencies_s: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if self.reader is not None and self.batch_s is not None:
                records = self.reader.poll(self.batch_s)
                now = time.time()
                self.latencies_s.extend(now - r.at.timestamp() for r in records)
                continue
            msg = self.consumer.poll(0.1)
            now = time.time()
            if msg is not None and msg.error() is None:
                self.latencies_s.append(now - msg.timestamp()[1] / 1000)
        self.consumer.close()
        if self.reader is not None:
            self.reader.close()


@dataclass
class LatencyFigures:
    notifier_s: list[float]
    kafka_s: list[float]
    kafka_batch_s: list[float]
    requests: int


def bench_latency(infra: InfraSettings, topic_set: Topics, routing: Path, hooks: HookServer, events: list[AlertEvent],
                  rate: float, poll_s: float, work: Path) -> LatencyFigures:  # fmt: skip
    notifier = start_notifier(infra, topic_set, routing, work / "notify-paced.log")
    probes = [LatencyProbe(infra.kafka_bootstrap, topic_set.alerts.name, batch_s) for batch_s in (None, poll_s)]
    for probe in probes:
        probe.start()
    receipts = Receipts(hooks, "/paced")
    stamped: dict[str, float] = {}

    def delivered(err: KafkaError | None, msg: Message) -> None:
        assert err is None, err
        stamped[AlertEvent.model_validate_json(msg.value() or b"").alert_id] = msg.timestamp()[1] / 1000

    producer = Producer({"bootstrap.servers": infra.kafka_bootstrap, "partitioner": "murmur2_random"})
    try:
        started = time.monotonic()
        for i, event in enumerate(events):
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
            producer.produce(topic_set.alerts.name, key=event.stack.encode(), value=event.model_dump_json().encode(),
                             on_delivery=delivered)  # fmt: skip
            producer.poll(0)
            if i and i % int(rate * 5) == 0:
                say(f"  {i:,}/{len(events):,} produced, {receipts.update():,} at the webhook")
        producer.flush(30)
        await_receipts(receipts, {e.alert_id for e in events}, notifier, timeout_s=60)
    finally:
        notifier.stop()
        for probe in probes:
            probe.stop.set()
            probe.join(10)
    notifier_s = [receipts.first_at[a] - t for a, t in stamped.items()]
    return LatencyFigures(notifier_s, probes[0].latencies_s, probes[1].latencies_s, receipts.requests)


# -- the run -----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=5000, help="alert events in the burst")
    parser.add_argument("--rate", type=float, default=20, help="alerts/s of the paced stream")
    parser.add_argument("--seconds", type=float, default=30, help="length of the paced stream")
    parser.add_argument("--posts", type=int, default=2000, help="requests of the raw HTTP measurement")
    parser.add_argument("--concurrency", type=int, default=0, help="raw HTTP requests in flight (0: enterprises)")
    parser.add_argument("--open-alerts", type=int, default=50000, help="open alerts for plan()'s cost at scale")
    parser.add_argument("--profile", type=Path, help="sample the notifier with py-spy during the burst, to PATH")
    args = parser.parse_args()

    infra = InfraSettings()
    bootstrap = infra.kafka_bootstrap
    registry = load_registry()
    enterprises = len(registry.enterprises)
    concurrency = args.concurrency or enterprises
    run = uuid.uuid4().hex[:8]
    burst_topics, paced_topics = topics(f"bench{run}b"), topics(f"bench{run}p")
    work = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    hooks = HookServer()
    poll_s = NotifySettings().notify_poll_s
    first_hour = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
    burst = alert_events(args.alerts, first_hour)
    paced = alert_events(int(args.rate * args.seconds), first_hour - timedelta(days=3650))
    say(f"Kafka {bootstrap}; {len(list(registry.stacks()))} stacks of {enterprises} enterprises; "
        f"2 cores shared with the servers; logs in {work}")  # fmt: skip
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        ensure_topics(bootstrap, [*burst_topics.all(), *paced_topics.all()])
        burst_routing = routing_file(work, hooks, "/burst")

        say("[bold]planner[/] (in-process)")
        values = [e.model_dump_json().encode() for e in burst]
        decode_per_s, decoded = decode_rate(values), [AlertEvent.model_validate_json(v) for v in values]
        planner = median_planner(burst_routing, decoded)
        say(f"  add_event {planner.add_event_per_s:,.0f}/s; plan with {len(burst):,} due "
            f"{planner.first_plan_s * 1000:.0f} ms ({planner.notices} notices); "
            f"plan with nothing due {planner.idle_plan_s * 1000:.1f} ms")  # fmt: skip

        many = alert_events(args.open_alerts, first_hour)
        idle_many_s = bench_planner(burst_routing, many, idle_calls=3).idle_plan_s
        say(f"  plan with {len(many):,} open alerts, nothing due {idle_many_s * 1000:.0f} ms")

        say(f"[bold]burst[/]: {len(burst):,} alerts to `cems notify`")
        figures = bench_burst(infra, burst_topics, burst_routing, hooks, burst, work, args.profile)
        say(f"  {len(burst):,} alerts at the webhook in {figures.seconds:.1f}s, {figures.requests} requests")

        say("[bold]raw limits[/]")
        consume_per_s = raw_consume(bootstrap, burst_topics.alerts.name, len(burst))
        say(f"  plain consumer {consume_per_s:,.0f} records/s")
        body = {"notice_id": "raw", "receiver": "hook", "group": burst[0].enterprise, "items": [],
                "alerts": [burst[0].model_dump(mode="json")]}  # fmt: skip
        posts_per_s, post_errors = raw_posts(f"{hooks.url}/raw", body, args.posts, concurrency)
        say(f"  httpx to the HTTP server {posts_per_s:,.0f} requests/s ({concurrency} in flight, "
            f"{post_errors} transport errors retried)")  # fmt: skip

        say(f"[bold]latency[/]: {args.rate:g} alerts/s for {args.seconds:g}s")
        latency = bench_latency(infra, paced_topics, routing_file(work, hooks, "/paced"), hooks, paced, args.rate,
                                poll_s, work)  # fmt: skip
    finally:
        hooks.close()
        existing = set(admin.list_topics())
        admin.delete_topics([t.name for t in (*burst_topics.all(), *paced_topics.all()) if t.name in existing])
        admin.close()

    routed_per_s = len(burst) / figures.seconds
    requests_per_s = figures.requests / figures.seconds
    planner_per_s = len(burst) / (len(burst) / planner.add_event_per_s + planner.first_plan_s)
    table = Table(title=f"cems notify, one process ({len(burst):,}-alert burst; {len(paced)} alerts paced)")
    for column in ("measure", "notifier", "raw limit (same run)", "notifier / raw"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    table.add_row("alerts routed/s, burst (first produce to last alert at the webhook)", f"{routed_per_s:,.0f}",
                  f"{consume_per_s:,.0f} records/s plain consumer", f"{routed_per_s / consume_per_s:.3f}")  # fmt: skip
    table.add_row("  pure planner: decode + add_event + plan, alerts/s (in-process)",
                  f"{1 / (1 / decode_per_s + 1 / planner_per_s):,.0f}", f"{decode_per_s:,.0f} decodes/s",
                  f"{routed_per_s / planner_per_s:.3f} (end to end / planner)")  # fmt: skip
    table.add_row(f"  plan(now), nothing due, {len(burst):,} open alerts: ms per call",
                  f"{planner.idle_plan_s * 1000:.1f}", f"poll every {poll_s * 1000:.0f} ms",
                  f"{planner.idle_plan_s / poll_s:.2f} of a poll")  # fmt: skip
    table.add_row(f"  plan(now), nothing due, {args.open_alerts:,} open alerts: ms per call",
                  f"{idle_many_s * 1000:.1f}", f"poll every {poll_s * 1000:.0f} ms",
                  f"{idle_many_s / poll_s:.2f} of a poll")  # fmt: skip
    table.add_row("webhook requests/s during the burst (notices)",
                  f"{requests_per_s:,.1f} ({len(burst) / figures.requests:,.0f} alerts each)",
                  f"{posts_per_s:,.0f} httpx POST/s ({concurrency} in flight)",
                  f"{requests_per_s / posts_per_s:.3f}")  # fmt: skip
    table.add_row("alerts at the webhook more than once", str(figures.duplicates), "0", "")
    notifier_lat, kafka_lat, batch_lat = (percentiles(v) for v in (latency.notifier_s, latency.kafka_s,
                                                                    latency.kafka_batch_s))  # fmt: skip
    for i, name in enumerate(("p50", "p99", "max")):
        table.add_row(
            f"latency {name}, Kafka timestamp to webhook received (ms)",
            f"{notifier_lat[i] * 1000:,.0f}",
            f"{kafka_lat[i] * 1000:,.0f} produce to poll()",
            f"{notifier_lat[i] / kafka_lat[i]:,.1f}",
        )
    for i, name in enumerate(("p50", "p99", "max")):
        table.add_row(f"  Kafka to TopicReader.poll({poll_s:g}s), the notifier's read call, {name} (ms)",
                      f"{batch_lat[i] * 1000:,.0f}", f"{kafka_lat[i] * 1000:,.0f} produce to poll()",
                      f"{batch_lat[i] / kafka_lat[i]:,.1f}")  # fmt: skip
    console.print(table)
    say(f"latency: {len(latency.notifier_s)} alerts in {latency.requests} webhook requests; "
        f"Kafka: {len(latency.kafka_s)} and {len(latency.kafka_batch_s)} records")  # fmt: skip
    if figures.profile:
        profile_table = Table(title=f"the notifier during the burst (py-spy, {args.profile})")
        profile_table.add_column("function (file)")
        profile_table.add_column("share of samples", justify="right")
        for frame, share in figures.profile:
            profile_table.add_row(frame, f"{share:.0%}")
        console.print(profile_table)


if __name__ == "__main__":
    main()
