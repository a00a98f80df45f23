"""The ``cems`` command: one module per command group, mounted here.

Every command lets a :class:`~contracts.errors.CemsError` propagate; the root group prints its
message (``error: ...`` on stderr) and exits with code 1. A new group is a module with its own
``app = typer.Typer(...)`` and one ``app.add_typer`` line below.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from contracts.errors import CemsError

from . import alerts, console, contracts, dashboards, emergency, infra, notify, replay, services, simulate, topics
from .common import err


class _Root(TyperGroup):
    """The root group: the one place where a CemsError becomes a message and exit code 1."""

    def invoke(self, ctx: Any) -> Any:  # the Context of the click that typer uses (vendored since typer 0.26)
        try:
            return super().invoke(ctx)
        except CemsError as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(code=1) from exc


app = typer.Typer(
    cls=_Root, help="CEMS alerting: ingest, detection, storage and local infrastructure.", no_args_is_help=True
)
app.add_typer(services.app)  # gateway, worker, sink, run
app.add_typer(simulate.app)
app.add_typer(replay.app)
app.add_typer(infra.app, name="infra")
app.add_typer(contracts.app, name="contracts")
app.add_typer(topics.app, name="topics")
app.add_typer(dashboards.app, name="dashboards")
app.add_typer(alerts.app, name="alerts")
app.add_typer(notify.app)  # notify
app.add_typer(notify.silence_app, name="silence")
app.add_typer(console.app, name="console")
app.add_typer(emergency.app, name="emergency")

__all__ = ["app"]
