"""`cems alerts`: the alerts the worker raised, in a terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from contracts.alerts import Acknowledgement, AlertKind

from .common import console, err

app = typer.Typer(help="The alerts the detection worker raised: list them, or follow them live.")

_Namespace = Annotated[str | None, typer.Option(help="Kafka topic namespace (default: CEMS_TOPIC_NAMESPACE or cems)")]
_Registry = Annotated[Path | None, typer.Option(help="device registry YAML, for districts (default: the sample)")]


def _context(namespace: str | None, registry: Path | None):  # type: ignore[no-untyped-def]
    from cems.accounts import registry_path
    from contracts.registry import load_registry
    from contracts.topics import topics
    from streams.settings import StreamSettings

    settings = StreamSettings()
    if namespace:
        settings = settings.model_copy(update={"topic_namespace": namespace})
    return settings.bootstrap, topics(settings.topic_namespace), load_registry(registry or registry_path())


@app.command("list")
def alerts_list(
    open_only: Annotated[bool, typer.Option("--open", help="only alerts not resolved")] = False,
    district: Annotated[str | None, typer.Option(help="only this district (as in the registry)")] = None,
    kind: Annotated[AlertKind | None, typer.Option(help="only this kind")] = None,
    namespace: _Namespace = None,
    registry: _Registry = None,
) -> None:
    """Every alert in the alerts topic with its current state, oldest first."""
    from cems.alert_view import current_alerts, district_of, select

    bootstrap, topic_set, reg = _context(namespace, registry)
    topic = topic_set.alerts.name
    lines = select(current_alerts(bootstrap, topic).values(), reg, open_only=open_only, district=district, kind=kind)
    table = Table(title=f"{len(lines)} alerts in {topic}")
    for col in ("state", "severity", "kind", "enterprise", "stack", "parameter", "district", "start", "end", "reason"):
        table.add_column(col)
    for line in lines:
        e = line.latest
        end = e.end.strftime("%Y-%m-%d %H:%M") if e.end else ""
        table.add_row(
            e.event.value if e.event.value != "updated" else "open",
            e.severity.value,
            e.kind.value,
            e.enterprise,
            e.stack,
            e.parameter or "",
            district_of(reg, e.stack) or "",
            line.first.start.strftime("%Y-%m-%d %H:%M"),
            end,
            e.reason,
        )
    console.print(table)


@app.command("tail")
def alerts_tail(
    from_beginning: Annotated[bool, typer.Option(help="show the topic's past events first")] = False,
    namespace: _Namespace = None,
    registry: _Registry = None,
) -> None:
    """Follow alert events as the worker writes them (Ctrl-C stops)."""
    from cems.alert_view import AlertReader, describe

    bootstrap, topic_set, reg = _context(namespace, registry)
    topic = topic_set.alerts.name
    reader = AlertReader(bootstrap, topic, from_beginning=from_beginning)
    console.print(f"following {topic} (Ctrl-C stops)")
    try:
        while True:
            for event in reader.poll(timeout_s=1.0):
                console.print(describe(event, reg), soft_wrap=True)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()


@app.command("ack")
def alerts_ack(
    alert_id: Annotated[str, typer.Argument(help="the alert's id (see `cems alerts list`)")],
    officer: Annotated[str, typer.Option(help="who takes it")],
    note: Annotated[str | None, typer.Option(help="a note kept with the acknowledgement")] = None,
    namespace: _Namespace = None,
) -> None:
    """Acknowledge an open alert: the worker records it once (an `acknowledged` event)."""
    from datetime import UTC, datetime

    from cems.alert_view import current_alerts

    bootstrap, topic_set, _ = _context(namespace, None)
    topic = topic_set.alerts.name
    line = current_alerts(bootstrap, topic).get(alert_id)
    if line is None:
        raise typer.BadParameter(f"no alert {alert_id!r} in {topic}", param_hint="ALERT_ID")
    if not line.is_open:
        err.print(f"[yellow]alert {alert_id} is already resolved; nothing to acknowledge[/]")
        raise typer.Exit(code=1)
    ack = Acknowledgement(alert_id=alert_id, stack=line.latest.stack, officer=officer, note=note, at=datetime.now(UTC))
    from notify.kafka_log import produce_confirmed

    value = ack.model_dump_json().encode()
    produce_confirmed(bootstrap, topic_set.acknowledgements.name, ack.stack, value, "acknowledgement")
    console.print(f"acknowledged {alert_id} ({line.latest.kind.value} on {line.latest.stack}) as {officer}")
