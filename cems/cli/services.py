"""The long-running services: `cems gateway`, `worker`, `sink` and `run` (all three, supervised)."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import NamespaceOption, RegistryOption, console, given, influx_token

app = typer.Typer()


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
        **given(
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
    ensure_topics(settings.bootstrap, topics(settings.topic_namespace).all())
    code = run_gateway(settings, password)
    raise typer.Exit(code=code)


@app.command("worker")
def worker(
    namespace: NamespaceOption = None,
    app_id: Annotated[str | None, typer.Option(help="Faust application id (consumer group, table names)")] = None,
    watermark: Annotated[str | None, typer.Option(help="live (default) or event")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus /metrics port, 0 = off (default 0)")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Run the detection stream processor (Faust): readings in; alerts and hourly averages out."""
    import faust

    from cems.logs import setup_logging
    from cems.topics import ensure_topics
    from contracts.topics import topics
    from streams.detector import create_app
    from streams.settings import StreamSettings

    settings = StreamSettings(
        **given(topic_namespace=namespace, worker_app_id=app_id, watermark=watermark, worker_metrics_port=metrics_port)
    )
    ensure_topics(settings.bootstrap, topics(settings.topic_namespace).all())
    faust_app = create_app(settings)
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, addr=settings.host)
    setup_logging(log_level)
    faust.Worker(faust_app, loglevel=log_level.upper(), quiet=True).execute_from_commandline()


@app.command("sink")
def sink(
    namespace: NamespaceOption = None,
    group: Annotated[str | None, typer.Option(help="Kafka consumer group of the sink")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus /metrics port, 0 = off (default 0)")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Write readings, hourly averages and alert events from Kafka to InfluxDB, in batches.

    Records InfluxDB refuses, and records that are not the contract, go to the dead-letter
    topic; while InfluxDB is unreachable the batch waits, uncommitted. Exits 1 naming the
    setting when InfluxDB refuses the sink itself (token, organisation, bucket).
    """
    import signal
    import threading

    from cems.logs import setup_logging
    from cems.topics import ensure_topics
    from contracts.registry import load_registry
    from contracts.topics import topics
    from streams.influx_sink import InfluxSink
    from streams.settings import StreamSettings

    setup_logging(log_level)
    settings = StreamSettings(**given(topic_namespace=namespace, sink_group=group, sink_metrics_port=metrics_port))
    token = influx_token(settings)
    topic_set = topics(settings.topic_namespace)
    ensure_topics(settings.bootstrap, topic_set.all())
    runner = InfluxSink(
        bootstrap=settings.bootstrap, group=settings.sink_group, topics=topic_set,
        namespace=settings.topic_namespace, influx_url=settings.influx_url,
        token=token, org=settings.influxdb_org, bucket=settings.influxdb_bucket,
        registry=load_registry(settings.registry), batch_size=settings.sink_batch_size,
        max_wait_s=settings.sink_max_wait_s, retry_initial_s=settings.sink_retry_initial_s,
        retry_max_s=settings.sink_retry_max_s,
    )  # fmt: skip
    if settings.sink_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.sink_metrics_port, addr=settings.host)
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
    """Run the live pipeline: gateway, detection worker, InfluxDB sink, notifier and case
    console, supervised.

    Needs the infrastructure (`cems infra up`). Logs go to .cems/logs/; a progress line shows
    what Kafka holds, a line for each alert event and each notice delivered. With --simulate,
    the simulated fleet publishes over MQTT too (its recent past, accelerated, ending now).
    Ctrl-C stops everything.
    """
    from cems.infra.settings import InfraSettings
    from cems.run import Service, supervise
    from contracts.topics import topics
    from streams.settings import StreamSettings

    ns = ["--namespace", namespace] if namespace else []
    settings = StreamSettings(**given(topic_namespace=namespace))
    services = [
        Service("gateway", ["gateway", *ns], ready_marker=b'"gateway running"'),
        Service("worker", ["worker", *ns], ready_marker=b"[^Worker]: Ready"),
        Service("sink", ["sink", *ns], ready_marker=b"sink running"),
        Service("notify", ["notify", *ns], ready_marker=b"caught up"),
        Service("console", ["console", "serve", *ns], ready_marker=b"console on http"),
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
