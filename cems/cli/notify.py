"""`cems notify` (the notification service) and `cems silence add|list|expire`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import NamespaceOption, RegistryOption, aware_time, console, given

app = typer.Typer()
silence_app = typer.Typer(help="Silences for planned work: hold back notifications of matching alerts for a while.")


@app.command("notify")
def notify(
    routing: Annotated[Path | None, typer.Option(help="routing YAML (default: CEMS_ROUTING or the sample)")] = None,
    registry: RegistryOption = None,
    namespace: NamespaceOption = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus /metrics port, 0 = off (default 0)")] = None,
    api_port: Annotated[
        int | None, typer.Option(help="HTTP API port (acknowledgements), 0 = off; needs CEMS_NOTIFY_API_TOKEN")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Run the notification service: alerts in; e-mail, DingTalk, WeCom, webhook and SMS out.

    Routes each alert to its receivers, groups a burst for one enterprise into one message,
    escalates while nobody acknowledges, reminds, holds back what silences match, and logs
    every delivery to the notifications topic (which is also how a restart knows what was
    sent). Stops cleanly on SIGTERM/Ctrl-C.
    """
    from cems.logs import setup_logging
    from cems.topics import ensure_topics
    from contracts.topics import topics
    from notify.service import run_notifier
    from notify.settings import NotifySettings

    setup_logging(log_level)
    settings = NotifySettings(
        **given(routing=routing, registry=registry, topic_namespace=namespace, notify_metrics_port=metrics_port,
                notify_api_port=api_port)
    )  # fmt: skip
    ensure_topics(settings.bootstrap, topics(settings.topic_namespace).all())
    raise typer.Exit(code=run_notifier(settings))


def _kafka(namespace: str | None):  # type: ignore[no-untyped-def]
    from contracts.topics import topics
    from notify.settings import NotifySettings

    settings = NotifySettings(**given(topic_namespace=namespace))
    return settings.bootstrap, topics(settings.topic_namespace)


def _duration(text: str) -> timedelta:
    from rules.notify.config import parse_duration_s

    try:
        return timedelta(seconds=parse_duration_s(text))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--duration") from exc


@silence_app.command("add")
def silence_add(
    match: Annotated[list[str], typer.Option("--match", help="LABEL=VALUE, LABEL!=VALUE or LABEL=~REGEX (repeat)")],
    author: Annotated[str, typer.Option(help="who plans the work")],
    reason: Annotated[str, typer.Option(help="what work, e.g. the permit or ticket")],
    duration: Annotated[str | None, typer.Option(help="how long from the start, e.g. 2h, 3d")] = None,
    start: Annotated[str | None, typer.Option(help="ISO 8601 with time zone (default: now)")] = None,
    end: Annotated[str | None, typer.Option(help="ISO 8601 with time zone (or --duration)")] = None,
    namespace: NamespaceOption = None,
) -> None:
    """Hold back notifications of alerts that match every --match, from --start to --end."""
    from contracts.notifications import parse_matcher
    from notify.silences import new_silence, put_silence

    try:
        matchers = [parse_matcher(m) for m in match]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--match") from exc
    starts_at = aware_time(start, "--start") if start else datetime.now(UTC)
    if (end is None) == (duration is None):
        raise typer.BadParameter("give either --end or --duration", param_hint="--end")
    ends_at = aware_time(end, "--end") if end else starts_at + _duration(duration or "")
    if ends_at <= starts_at:
        raise typer.BadParameter("the silence ends before it starts", param_hint="--end")
    silence = new_silence(matchers, starts_at, ends_at, author, reason)
    bootstrap, topic_set = _kafka(namespace)
    put_silence(bootstrap, topic_set, silence)
    console.print(f"silence {silence.id}: {' '.join(map(str, matchers))} from {starts_at:%Y-%m-%d %H:%M %Z} "
                  f"to {ends_at:%Y-%m-%d %H:%M %Z}")  # fmt: skip


@silence_app.command("expire")
def silence_expire(silence_id: str, namespace: NamespaceOption = None) -> None:
    """End a silence now (notifications it held back go out if they are still due)."""
    from contracts.errors import CemsError
    from notify.silences import put_silence, read_silences

    bootstrap, topic_set = _kafka(namespace)
    view = read_silences(bootstrap, topic_set).get(silence_id)
    if view is None:
        raise CemsError(f"no silence {silence_id} (`cems silence list`)")
    now = datetime.now(UTC)
    silence = view.silence
    ended = silence.model_copy(update={"ends_at": max(min(silence.ends_at, now), silence.starts_at)})
    put_silence(bootstrap, topic_set, ended)
    console.print(f"silence {silence_id} ends {ended.ends_at:%Y-%m-%d %H:%M:%S %Z}")


@silence_app.command("list")
def silence_list(
    all_: Annotated[bool, typer.Option("--all", help="also silences that have ended")] = False,
    namespace: NamespaceOption = None,
) -> None:
    """Silences with their matchers, time, author, reason and what they held back."""
    from contracts.notifications import split_item
    from notify.silences import read_silences

    bootstrap, topic_set = _kafka(namespace)
    now = datetime.now(UTC)
    table = Table(title="silences")
    for column in ("id", "state", "matchers", "from", "to", "author", "reason", "held back"):
        table.add_column(column)
    for view in sorted(read_silences(bootstrap, topic_set).values(), key=lambda v: v.silence.starts_at):
        s = view.silence
        state = "active" if s.active(now) else "pending" if now < s.starts_at else "ended"
        if state == "ended" and not all_:
            continue
        alerts = {split_item(item)[0] for _, item in view.held}
        table.add_row(
            s.id, state, " ".join(map(str, s.matchers)), f"{s.starts_at:%Y-%m-%d %H:%M}", f"{s.ends_at:%Y-%m-%d %H:%M}",
            s.author, s.reason, f"{len(view.held)} notices of {len(alerts)} alerts",
        )  # fmt: skip
    console.print(table)


__all__ = ["app", "silence_app"]
