"""The ``cems`` command."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from contracts.errors import CemsError, InfrastructureError

if TYPE_CHECKING:
    from streams.settings import StreamSettings

from .alerts_cli import alerts_app

app = typer.Typer(help="CEMS alerting: ingest, detection, storage and local infrastructure.", no_args_is_help=True)
infra_app = typer.Typer(help="Real Mosquitto, Kafka (KRaft) and InfluxDB 2 on loopback, for development and tests.")
app.add_typer(infra_app, name="infra")
contracts_app = typer.Typer(help="Wire contracts: JSON Schemas for device vendors and consumers.")
app.add_typer(contracts_app, name="contracts")
topics_app = typer.Typer(help="The project's Kafka topics (the broker does not create topics by itself).")
app.add_typer(topics_app, name="topics")
dashboards_app = typer.Typer(help="Grafana dashboards generated from code (dashboards/), and their queries.")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(alerts_app, name="alerts")

console = Console()
err = Console(stderr=True)

RegistryOption = Annotated[
    Path | None, typer.Option(help="device registry YAML (default: CEMS_REGISTRY or the sample)")
]
NamespaceOption = Annotated[
    str | None,
    typer.Option(help="Kafka topic namespace, also the `ns` tag in InfluxDB (default: CEMS_TOPIC_NAMESPACE or cems)"),
]

ServerNames = Annotated[
    list[str] | None, typer.Argument(help="mosquitto, kafka, influxdb (default: all)", show_default=False)
]


def _servers(names: list[str] | None):  # type: ignore[no-untyped-def]
    from cems.infra.settings import InfraSettings
    from cems.infra.stack import select, servers

    from .accounts import mqtt_accounts

    settings = InfraSettings()
    return select(servers(settings, mqtt_accounts()), names or [])


def _fail(exc: CemsError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(code=1)


@infra_app.command("up")
def infra_up(names: ServerNames = None) -> None:
    """Install (first time), configure and start the servers; wait until each is healthy."""
    from cems.infra.stack import status, up

    try:
        chosen = _servers(names)
        up(chosen, say=console.print)
    except CemsError as exc:
        raise _fail(exc) from exc
    _print_status(status(chosen))


@infra_app.command("down")
def infra_down(names: ServerNames = None) -> None:
    """Stop the servers (their data stays under the state folder)."""
    from cems.infra.stack import down

    try:
        down(_servers(names), say=console.print)
    except CemsError as exc:
        raise _fail(exc) from exc


@infra_app.command("status")
def infra_status(names: ServerNames = None) -> None:
    """Show each server's pid, endpoint and health; exit 1 if any is not healthy."""
    from cems.infra.stack import status

    try:
        rows = status(_servers(names))
    except CemsError as exc:
        raise _fail(exc) from exc
    _print_status(rows)
    if not all(r.healthy for r in rows):
        raise typer.Exit(code=1)


@infra_app.command("mosquitto-config")
def infra_mosquitto_config(
    out: Annotated[Path, typer.Option(help="folder the broker reads, same path (docker-compose: /mosquitto/auth)")],
    registry: RegistryOption = None,
) -> None:
    """Write mosquitto.conf and the dynamic security file for the eclipse-mosquitto image."""
    from cems.infra.mosquitto import write_docker_config
    from cems.infra.settings import InfraSettings

    from .accounts import mqtt_accounts

    try:
        budget = write_docker_config(InfraSettings(), mqtt_accounts(registry), out)
    except CemsError as exc:
        raise _fail(exc) from exc
    console.print(f"mosquitto: wrote {out}/mosquitto.conf and {out}/dynamic-security.json; {budget.describe()}")


@topics_app.command("ensure")
def topics_ensure() -> None:
    """Create every missing project topic with its partitions and retention."""
    from cems.infra.settings import InfraSettings
    from cems.topics import ensure_topics
    from contracts.topics import ALL_TOPICS

    settings = InfraSettings()
    try:
        created = ensure_topics(settings.kafka_bootstrap)
    except CemsError as exc:
        raise _fail(exc) from exc
    table = Table(title=f"Kafka topics at {settings.kafka_bootstrap}")
    for col in ("topic", "partitions", "state", "content"):
        table.add_column(col)
    for spec in ALL_TOPICS:
        table.add_row(
            spec.name, str(spec.partitions), "created" if spec.name in created else "exists", spec.description
        )
    console.print(table)


def _shard_option(value: str | None) -> dict[str, int]:
    if value is None:
        return {}
    try:
        shard, shards = (int(part) for part in value.split("/"))
    except ValueError:
        raise typer.BadParameter(f"--shard {value!r}: expected I/N, e.g. 0/2") from None
    if not 0 <= shard < shards:
        raise typer.BadParameter(f"--shard {value!r}: I must be in 0..N-1")
    return {"gateway_shard": shard, "gateway_shards": shards}


@app.command("gateway")
def gateway(
    registry: RegistryOption = None,
    tcp_port: Annotated[int | None, typer.Option(help="HJ 212 TCP listener port, 0 = off (default 9212)")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus /metrics port, 0 = off (default 9464)")] = None,
    client_id: Annotated[
        str | None,
        typer.Option(help="stable MQTT client id of this instance (default: derived from the shard and a secret)"),
    ] = None,
    namespace: NamespaceOption = None,
    shard: Annotated[
        str | None,
        typer.Option(help="I/N: this instance takes shard I (0-based) of N (each shard is its own MQTT session)"),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Run the ingest gateway: MQTT (JSON, HJ 212) and HJ 212 over TCP in; Kafka out.

    Every accepted reading goes to the readings topic keyed by stack, everything refused to
    the dead-letter topic with its reason; MQTT messages are acknowledged only after Kafka
    confirmed them. Stops cleanly on SIGTERM/Ctrl-C.
    """
    from cems.infra.secrets import SecretStore
    from cems.infra.settings import InfraSettings
    from cems.logs import setup_logging
    from cems.topics import ensure_topics
    from contracts.topics import topics
    from ingest.service import run_gateway
    from ingest.settings import GatewaySettings

    setup_logging(log_level)
    settings = GatewaySettings(
        **_given(
            registry=registry,  # GatewaySettings reads CEMS_REGISTRY itself
            gateway_tcp_port=tcp_port,
            gateway_metrics_port=metrics_port,
            gateway_client_id=client_id,
            topic_namespace=namespace,
            **_shard_option(shard),
        )
    )
    password = (
        settings.mqtt_password.get_secret_value()
        if settings.mqtt_password
        else SecretStore(InfraSettings().secrets_dir).mqtt_password(settings.mqtt_user)
    )
    if settings.mqtt_queue_limit_bytes is None:  # the local broker's, as `cems infra` sized it
        from cems.accounts import mqtt_accounts
        from cems.infra.mosquitto import budget_for

        limit = budget_for(InfraSettings(), mqtt_accounts(settings.registry)).max_queued_bytes
        settings = settings.model_copy(update={"mqtt_queue_limit_bytes": limit})
    try:
        ensure_topics(settings.bootstrap, topics(settings.topic_namespace).all())
        code = run_gateway(settings, password)
    except CemsError as exc:
        raise _fail(exc) from exc
    raise typer.Exit(code=code)


@app.command("worker")
def worker(
    namespace: NamespaceOption = None,
    app_id: Annotated[str | None, typer.Option(help="Faust application id (consumer group, table names)")] = None,
    watermark: Annotated[str | None, typer.Option(help="live (default) or event")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Run the detection stream processor (Faust): readings in; alerts and hourly averages out."""
    import faust

    from cems.logs import setup_logging
    from cems.topics import ensure_topics
    from contracts.topics import topics
    from streams.detector import create_app
    from streams.settings import StreamSettings

    settings = StreamSettings(**_given(topic_namespace=namespace, worker_app_id=app_id, watermark=watermark))
    try:
        ensure_topics(settings.bootstrap, topics(settings.topic_namespace).all())
        faust_app = create_app(settings)
    except CemsError as exc:
        raise _fail(exc) from exc
    setup_logging(log_level)
    faust.Worker(faust_app, loglevel=log_level.upper(), quiet=True).execute_from_commandline()


@app.command("sink")
def sink(
    namespace: NamespaceOption = None,
    group: Annotated[str | None, typer.Option(help="Kafka consumer group of the sink")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Write readings, hourly averages and alert events from Kafka to InfluxDB, in batches."""
    import signal
    import threading

    from cems.logs import setup_logging
    from cems.topics import ensure_topics
    from contracts.registry import load_registry
    from contracts.topics import topics
    from streams.influx_sink import InfluxSink
    from streams.settings import StreamSettings

    setup_logging(log_level)
    settings = StreamSettings(**_given(topic_namespace=namespace, sink_group=group))
    token = _influx_token(settings)
    topic_set = topics(settings.topic_namespace)
    try:
        ensure_topics(settings.bootstrap, topic_set.all())
        runner = InfluxSink(
            bootstrap=settings.bootstrap, group=settings.sink_group, topics=topic_set,
            namespace=settings.topic_namespace, influx_url=settings.influx_url,
            token=token, org=settings.influxdb_org, bucket=settings.influxdb_bucket,
            registry=load_registry(settings.registry), batch_size=settings.sink_batch_size,
            max_wait_s=settings.sink_max_wait_s,
        )  # fmt: skip
    except CemsError as exc:
        raise _fail(exc) from exc
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    runner.run(stop)


@app.command("run")
def run(
    namespace: NamespaceOption = None,
    simulate: Annotated[
        str | None, typer.Option(help="also run the simulated fleet with this scenario (e.g. demo)")
    ] = None,
    speed: Annotated[float, typer.Option(help="simulation speed (event time per wall time)")] = 20.0,
) -> None:
    """Run the live pipeline: gateway, detection worker and InfluxDB sink, supervised.

    Needs the infrastructure (`cems infra up`). Logs go to .cems/logs/; a progress line shows
    what Kafka holds. With --simulate, the simulated fleet publishes over MQTT too (its
    recent past, accelerated, ending now). Ctrl-C stops everything.
    """
    from cems.infra.settings import InfraSettings
    from cems.run import Service, supervise
    from contracts.topics import topics
    from streams.settings import StreamSettings

    ns = ["--namespace", namespace] if namespace else []
    settings = StreamSettings(**_given(topic_namespace=namespace))
    services = [
        Service("gateway", ["gateway", *ns], ready_marker=b'"gateway running"'),
        Service("worker", ["worker", *ns], ready_marker=b"[^Worker]: Ready"),
        Service("sink", ["sink", *ns], ready_marker=b"sink running"),
    ]
    if simulate:
        sim_args = ["simulate", "--scenario", simulate, "--speed", str(speed)]
        services.append(Service("simulator", sim_args, may_finish=True))
    from cems.accounts import registry_path
    from contracts.registry import load_registry

    code = supervise(
        services, InfraSettings().state_dir / "logs", settings.bootstrap, topics(settings.topic_namespace),
        say=console.print, registry=load_registry(registry_path()),
    )  # fmt: skip
    raise typer.Exit(code=code)


@app.command("simulate")
def simulate(
    scenario: Annotated[
        str,
        typer.Option(help="scenario name (simulators/scenarios: baseline, faults, limit-hugging, demo) or YAML file"),
    ] = "baseline",
    registry: RegistryOption = None,
    protocol: Annotated[
        str, typer.Option(help="registry (each device as registered), json, hj212 (over MQTT) or hj212-tcp")
    ] = "registry",
    speed: Annotated[float, typer.Option(help="event time per wall time: 1 = real time, 60 = an hour a minute")] = 1.0,
    start: Annotated[
        str | None, typer.Option(help="event time of the first reading, ISO 8601 (default: early enough to end now)")
    ] = None,
    duration_min: Annotated[int | None, typer.Option(help="minutes of event time (default: the scenario's)")] = None,
    count: Annotated[
        int | None, typer.Option(help="number of stacks; more than the registry clones its stacks")
    ] = None,
    step_s: Annotated[int, typer.Option(help="seconds between two readings of one stack")] = 60,
    out: Annotated[Path | None, typer.Option(help="also write every message to this file (for cems replay)")] = None,
    publish: Annotated[bool, typer.Option(help="send to the broker/gateway; --no-publish writes --out only")] = True,
    truth_out: Annotated[Path | None, typer.Option(help="write the scenario's expected alerts (JSON) here")] = None,
    seed: Annotated[int, typer.Option(help="same seed, same stream")] = 7,
) -> None:
    """Simulate the fleet's data acquisition devices, with a fault scenario and its ground truth.

    Each stack behaves like its industry (load cycle, flow, O2, temperature, humidity,
    concentrations at reference O2); the scenario adds faults (exceedances, bypass, silence,
    marks, flat lines, wrong converted values, clock skew, malformed packets, duplicates).
    Devices publish with their enterprise's MQTT account (QoS 1), as JSON or HJ 212, or push
    HJ 212 over TCP to the gateway. A progress line shows stacks, rate and errors.

    Examples:
      cems simulate --scenario faults --speed 60 --protocol hj212
      cems simulate --scenario faults --no-publish --out faults.txt --truth-out truth.json
      cems simulate --count 10000 --step-s 1 --duration-min 2 --speed 1
    """
    import json
    from datetime import UTC, timedelta

    from cems.infra.secrets import SecretStore
    from cems.infra.settings import InfraSettings
    from contracts.registry import load_registry
    from simulators.fleet import Fleet
    from simulators.publish import Counters, FileSink, MqttSink, Pacing, TcpSink, run
    from simulators.scenarios import load_scenario
    from streams.engine import load_engine

    if protocol not in ("registry", "json", "hj212", "hj212-tcp"):
        raise typer.BadParameter("choose registry, json, hj212 or hj212-tcp", param_hint="--protocol")
    try:
        sc = load_scenario(scenario)
        from cems.accounts import registry_path

        reg = load_registry(registry or registry_path())
        engine = load_engine(reg)
    except CemsError as exc:
        raise _fail(exc) from exc
    minutes = duration_min or sc.duration_min
    step = timedelta(seconds=step_s)
    if start is not None:
        t0 = _aware_time(start, "--start")
    else:
        # end at (about) now: accelerated runs replay the recent past, real time starts now
        lead = timedelta(minutes=minutes) if publish and speed > 1 else timedelta(0)
        t0 = (datetime.now(UTC) - lead).replace(second=0, microsecond=0)
    wire = {"registry": None, "json": "json", "hj212": "hj212", "hj212-tcp": "hj212"}[protocol]
    fleet = Fleet(reg, engine.profiles, sc, t0, seed=seed, protocol=wire, count=count)
    counters = Counters()
    infra = InfraSettings()
    sinks: list[Any] = []
    if out is not None:
        sinks.append(FileSink(out))
    if publish:
        if protocol == "hj212-tcp":
            from ingest.settings import GatewaySettings

            sinks.append(TcpSink(infra.host, GatewaySettings().gateway_tcp_port, counters))
        else:
            secrets = SecretStore(infra.secrets_dir)
            sinks.append(MqttSink(infra.host, infra.mqtt_port, secrets.mqtt_password, counters))
    if not sinks:
        raise typer.BadParameter("nothing to do: --no-publish needs --out")
    if truth_out is not None:
        truth_out.write_text(json.dumps(sc.ground_truth(t0, engine.settings), indent=2), encoding="utf-8")
    steps = int(timedelta(minutes=minutes) / step)
    console.print(
        f"simulating {len(fleet.devices):,} stacks, scenario {sc.name!r}, {minutes} min of event time from "
        f"{t0.isoformat()} at speed {speed:g} ({protocol})"
    )
    started = time.monotonic()
    try:
        run(
            fleet, sinks, steps=steps, pacing=Pacing(speed, step) if publish else None, counters=counters,
            progress=lambda line: console.print(line, soft_wrap=True),
        )  # fmt: skip
    except CemsError as exc:
        raise _fail(exc) from exc
    elapsed = time.monotonic() - started
    if publish:
        console.print(
            f"done: sent {counters.sent:,} in {elapsed:.1f}s ({counters.sent / max(elapsed, 1e-9):,.0f}/s), "
            f"acknowledged {counters.acked:,}, errors {counters.errors:,}, reconnects {counters.reconnects:,}"
            + (
                f", history requests {counters.history_requests:,} answered with {counters.resent:,} readings"
                if counters.history_requests
                else ""
            )
        )
    else:
        console.print(f"done: wrote {out} in {elapsed:.1f}s")


@contracts_app.command("schema")
def contracts_schema(
    out: Annotated[Path, typer.Option(help="folder to write the schemas into")] = Path("docs/schema"),
) -> None:
    """Write the JSON Schemas of the device reading, the reading and the dead letter."""
    from contracts.schema import schema_documents

    out.mkdir(parents=True, exist_ok=True)
    for name, text in schema_documents().items():
        (out / name).write_text(text, encoding="utf-8")
        console.print(f"wrote {out / name}")


@app.command("replay")
def replay(
    inputs: Annotated[list[Path], typer.Argument(help="files of HJ 212 packets or JSON readings, one per line")],
    registry: RegistryOption = None,
    out: Annotated[Path | None, typer.Option(help="write alert events here (JSON lines); default stdout")] = None,
    hourly_out: Annotated[Path | None, typer.Option(help="also write hourly averages here (JSON lines)")] = None,
    rules: Annotated[Path | None, typer.Option(help="rule settings YAML (default: built-in settings)")] = None,
    catalogue: Annotated[Path | None, typer.Option(help="limits catalogue YAML (default: rules/data)")] = None,
    input_stacks_only: Annotated[
        bool, typer.Option(help="judge only stacks present in the input (default: every registry stack)")
    ] = False,
    influx: Annotated[
        bool,
        typer.Option(
            help="also write readings, hourly averages and alerts to InfluxDB (CEMS_INFLUXDB_*), for the dashboards"
        ),
    ] = False,
    namespace: NamespaceOption = None,
) -> None:
    """Run the detection rules over historical data, in event-time order, for audits.

    Alert events go to stdout (or --out) as JSON lines; a summary goes to stderr: readings,
    lines refused and why, late readings, events by kind.
    """
    from cems.replay import dumps_summary, load_engine, read_inputs, run_replay, summary
    from contracts.registry import load_registry

    try:
        from cems.accounts import registry_path

        reg = load_registry(registry or registry_path())
        engine = load_engine(reg, rules, catalogue)
        for path in inputs:
            if not path.is_file():
                raise typer.BadParameter(f"{path}: no such file", param_hint="INPUTS")
        data = read_inputs(inputs, reg)
        if input_stacks_only:
            present = {r.stack for r in data.readings}
            engine.profiles = {s: p for s, p in engine.profiles.items() if s in present}
        result = run_replay(engine, data)
    except CemsError as exc:
        raise _fail(exc) from exc
    lines = "".join(e.model_dump_json() + "\n" for e in result.events)
    if out is None:
        sys.stdout.write(lines)
    else:
        out.write_text(lines, encoding="utf-8")
    if hourly_out is not None:
        hourly_out.write_text("".join(h.model_dump_json() + "\n" for h in result.hourly), encoding="utf-8")
    err.print(dumps_summary(summary(data, result)), highlight=False, soft_wrap=True)
    if influx:
        from cems.replay import write_influx
        from streams.settings import StreamSettings

        settings = StreamSettings(**_given(topic_namespace=namespace))
        try:
            written = write_influx(
                data, result, reg, namespace=settings.topic_namespace, url=settings.influx_url,
                token=_influx_token(settings), org=settings.influxdb_org, bucket=settings.influxdb_bucket,
                progress=lambda done, total: err.print(f"influxdb: {done:,}/{total:,} points", highlight=False),
            )  # fmt: skip
        except CemsError as exc:
            raise _fail(exc) from exc
        except Exception as exc:  # the client raises urllib3 and ApiException errors
            raise _fail(InfrastructureError(f"writing to InfluxDB at {settings.influx_url} failed: {exc}")) from exc
        bucket, ns = settings.influxdb_bucket, settings.topic_namespace
        err.print(f"influxdb: wrote {written:,} points to bucket {bucket!r} (ns={ns})")


@dashboards_app.command("generate")
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


@dashboards_app.command("verify")
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

    settings = StreamSettings(**_given(topic_namespace=namespace))
    end = _aware_time(stop, "--stop") if stop else datetime.now(UTC)
    begin = _aware_time(start, "--start") if start else end - timedelta(hours=hours)
    with InfluxDBClient(url=settings.influx_url, token=_influx_token(settings), org=settings.influxdb_org) as client:
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


def _given(**options: Any) -> dict[str, Any]:
    """The command's options that were given, as settings overrides (the rest come from the
    environment and the defaults)."""
    return {k: v for k, v in options.items() if v is not None}


def _aware_time(text: str, option: str) -> datetime:
    """An ISO 8601 time option, which must say its time zone."""
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise typer.BadParameter("give a time zone, e.g. 2026-03-02T08:00:00+08:00", param_hint=option)
    return t


def _influx_token(settings: StreamSettings) -> str:
    """The InfluxDB token: CEMS_INFLUXDB_TOKEN, else the one `cems infra up` generated."""
    from cems.infra.secrets import SecretStore
    from cems.infra.settings import InfraSettings

    if settings.influxdb_token:
        return str(settings.influxdb_token.get_secret_value())
    return SecretStore(InfraSettings().secrets_dir).influxdb_token()


def _print_status(rows) -> None:  # type: ignore[no-untyped-def]
    table = Table(title="CEMS local infrastructure")
    for col in ("server", "endpoint", "pid", "health", "log"):
        table.add_column(col)
    for r in rows:
        health = "[green]healthy[/]" if r.healthy else f"[red]{r.detail}[/]"
        table.add_row(r.name, r.endpoint, str(r.pid or "-"), health, str(r.log))
    console.print(table)


if __name__ == "__main__":
    app()
