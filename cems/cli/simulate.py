"""`cems simulate`: the simulated fleet of data acquisition devices."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import RegistryOption, aware_time, console

app = typer.Typer()


@app.command("simulate")
def simulate(
    scenario: Annotated[
        str,
        typer.Option(
            help="scenario name (simulators/scenarios: baseline, faults, limit-hugging, demo, electricity, "
            "emergency) or YAML file"
        ),
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
        int | None, typer.Option(help="number of stacks; more than the registry clones its stacks (no meters)")
    ] = None,
    meters: Annotated[
        bool, typer.Option(help="simulate the facilities' electricity meters too (--no-meters: stacks only)")
    ] = True,
    step_s: Annotated[int, typer.Option(help="seconds between two readings of one stack")] = 60,
    out: Annotated[Path | None, typer.Option(help="also write every message to this file (for cems replay)")] = None,
    publish: Annotated[bool, typer.Option(help="send to the broker/gateway; --no-publish writes --out only")] = True,
    truth_out: Annotated[Path | None, typer.Option(help="write the scenario's expected alerts (JSON) here")] = None,
    responses_out: Annotated[
        Path | None,
        typer.Option(help="write the emergency responses the scenario declares here (JSON lines, for cems replay)"),
    ] = None,
    seed: Annotated[int, typer.Option(help="same seed, same stream")] = 7,
) -> None:
    """Simulate the fleet's data acquisition devices, with a fault scenario and its ground truth.

    Each stack behaves like its industry (load cycle, flow, O2, temperature, humidity,
    concentrations at reference O2); each facility's electricity meter follows it (production
    power with the load, pollution control on its own schedule). The scenario adds faults
    (exceedances, bypass, silence, marks, flat lines, wrong converted values, clock skew,
    malformed packets, duplicates; control facilities off, late or weak; production stopped,
    limited or cut on paper only; emissions cut) and may declare emergency responses: they are
    listed here and in --truth-out ("responses"), for `cems emergency declare`. A scenario with
    responses starts on the hour (its judged hours are whole hours). Devices publish with their
    enterprise's MQTT account (QoS 1), as JSON or HJ 212, or push HJ 212 over TCP to the
    gateway. A progress line shows stacks, rate and errors.

    Examples:
      cems simulate --scenario faults --speed 60 --protocol hj212
      cems simulate --scenario faults --no-publish --out faults.txt --truth-out truth.json
      cems simulate --scenario emergency --no-publish --out em.txt --truth-out truth.json --responses-out em.jsonl
      cems replay em.txt --responses em.jsonl
      cems simulate --count 10000 --step-s 1 --duration-min 2 --speed 1
    """
    import json
    from datetime import UTC, timedelta

    from cems.accounts import registry_path
    from cems.infra.secrets import SecretStore
    from cems.infra.settings import InfraSettings
    from contracts.registry import load_registry
    from simulators.fleet import Fleet
    from simulators.publish import Counters, FileSink, MqttSink, Pacing, TcpSink, run
    from simulators.scenarios import load_scenario
    from streams.engine import load_engine

    if protocol not in ("registry", "json", "hj212", "hj212-tcp"):
        raise typer.BadParameter("choose registry, json, hj212 or hj212-tcp", param_hint="--protocol")
    reg = load_registry(registry or registry_path())
    sc = load_scenario(scenario).resolved(reg.emergency_plan.baseline_days)
    engine = load_engine(reg)
    minutes = duration_min or sc.duration_min
    step = timedelta(seconds=step_s)
    if start is not None:
        t0 = aware_time(start, "--start")
    else:
        # end at (about) now: accelerated runs replay the recent past, real time starts now
        lead = timedelta(minutes=minutes) if publish and speed > 1 else timedelta(0)
        t0 = (datetime.now(UTC) - lead).replace(second=0, microsecond=0)
        if sc.declared:
            t0 = t0.replace(minute=0)
    wire = {"registry": None, "json": "json", "hj212": "hj212", "hj212-tcp": "hj212"}[protocol]
    fleet = Fleet(reg, engine.profiles, sc, t0, seed=seed, protocol=wire, count=count, meters=meters)
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
        truth = sc.ground_truth(t0, engine.settings, engine.profiles)
        truth_out.write_text(json.dumps(truth, indent=2, ensure_ascii=False), encoding="utf-8")
    if responses_out is not None:
        lines = "".join(r.model_dump_json() + "\n" for r in sc.responses(t0))
        responses_out.write_text(lines, encoding="utf-8")
    steps = int(timedelta(minutes=minutes) / step)
    console.print(
        f"simulating {len(fleet.devices):,} stacks and {len(fleet.meters):,} meters, scenario {sc.name!r}, "
        f"{minutes} min of event time from {t0.isoformat()} at speed {speed:g} ({protocol})"
    )
    for response in sc.responses(t0):
        end = response.end.isoformat() if response.end else "not ended"
        console.print(
            f"emergency response to declare: {response.id} {response.level.value} "
            f"{', '.join(response.districts) or 'whole zone'} from {response.start.isoformat()} to {end}"
        )
    started = time.monotonic()
    run(
        fleet, sinks, steps=steps, pacing=Pacing(speed, step) if publish else None, counters=counters,
        progress=lambda line: console.print(line, soft_wrap=True),
    )  # fmt: skip
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
