"""`cems replay`: the detection rules over historical data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from contracts.errors import CemsError, InfrastructureError

from .common import NamespaceOption, RegistryOption, err, given, influx_token

app = typer.Typer()


@app.command("replay")
def replay(
    inputs: Annotated[list[Path], typer.Argument(help="files of HJ 212 packets or JSON readings, one per line")],
    registry: RegistryOption = None,
    out: Annotated[Path | None, typer.Option(help="write alert events here (JSON lines); default stdout")] = None,
    hourly_out: Annotated[Path | None, typer.Option(help="also write hourly averages here (JSON lines)")] = None,
    rules: Annotated[Path | None, typer.Option(help="rule settings YAML (default: built-in settings)")] = None,
    catalogue: Annotated[Path | None, typer.Option(help="limits catalogue YAML (default: rules/data)")] = None,
    responses: Annotated[
        Path | None,
        typer.Option(
            help="declared emergency responses, JSON lines (`cems emergency list --json`), applied from the start"
        ),
    ] = None,
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
    from cems.accounts import registry_path
    from cems.replay import dumps_summary, load_engine, read_inputs, read_responses, run_replay, summary
    from contracts.registry import load_registry

    reg = load_registry(registry or registry_path())
    engine = load_engine(reg, rules, catalogue)
    for path in inputs:
        if not path.is_file():
            raise typer.BadParameter(f"{path}: no such file", param_hint="INPUTS")
    data = read_inputs(inputs, reg)
    if input_stacks_only:
        present = {r.stack for r in data.readings}
        engine.profiles = {s: p for s, p in engine.profiles.items() if s in present}
    result = run_replay(engine, data, read_responses(responses) if responses else ())
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

        settings = StreamSettings(**given(topic_namespace=namespace))
        try:
            written = write_influx(
                data, result, reg, namespace=settings.topic_namespace, url=settings.influx_url,
                token=influx_token(settings), org=settings.influxdb_org, bucket=settings.influxdb_bucket,
                progress=lambda done, total: err.print(f"influxdb: {done:,}/{total:,} points", highlight=False),
            )  # fmt: skip
        except CemsError:
            raise
        except Exception as exc:  # the client raises urllib3 and ApiException errors
            raise InfrastructureError(f"writing to InfluxDB at {settings.influx_url} failed: {exc}") from exc
        bucket, ns = settings.influxdb_bucket, settings.topic_namespace
        err.print(f"influxdb: wrote {written:,} points to bucket {bucket!r} (ns={ns})")
