"""Simulator throughput, one process, against the real Mosquitto (`cems infra up`).

    .venv/bin/python scripts/bench_simulate.py [--stacks 1000 10000] [--seconds 30] [--protocol registry]

Prints, for each fleet size:

- generation only: messages built per second (models, faults, payload encoding), no I/O;
- sustained: every stack sends one reading per second in real time for ``--seconds``
  (QoS 1, each enterprise with its own account), as `cems simulate --step-s 1 --speed 1`
  does; the rate is readings per second of event time, and it held if the last step was
  acknowledged well within a second of being due;
- max: the same fleet unpaced (event time in the past), as fast as it goes.

With sent, acknowledged and errors, and the process's CPU time per wall second. The machine's
other load counts: run it a few times.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cems.infra.secrets import SecretStore  # noqa: E402
from cems.infra.settings import InfraSettings  # noqa: E402
from contracts.registry import load_registry  # noqa: E402
from simulators.fleet import Fleet  # noqa: E402
from simulators.publish import Counters, MqttSink, Pacing, run  # noqa: E402
from simulators.scenarios import load_scenario  # noqa: E402
from streams.engine import load_engine  # noqa: E402

STEP = timedelta(seconds=1)


def fleet(stacks: int, protocol: str | None, start: datetime) -> Fleet:
    registry = load_registry()
    return Fleet(
        registry, load_engine(registry).profiles, load_scenario("baseline"), start, protocol=protocol, count=stacks
    )


def generation(stacks: int, protocol: str | None, steps: int = 5) -> float:
    f = fleet(stacks, protocol, datetime(2026, 3, 2, tzinfo=UTC))
    for _ in f.messages(0, f.start):  # encoders are made on first use
        pass
    started, n = time.perf_counter(), 0
    for i in range(1, steps + 1):
        for _ in f.messages(0, f.start + i * STEP):
            n += 1
    return n / (time.perf_counter() - started)


def publish(stacks: int, protocol: str | None, seconds: int, paced: bool) -> str:
    infra = InfraSettings()
    secrets = SecretStore(infra.secrets_dir)
    now = datetime.now(UTC).replace(microsecond=0)
    f = fleet(stacks, protocol, now if paced else now - timedelta(hours=1))
    counters = Counters()
    sink = MqttSink(
        infra.host, infra.mqtt_port, secrets.mqtt_password, counters, client_prefix=f"bench-{uuid.uuid4().hex[:6]}"
    )
    wall, cpu = time.perf_counter(), time.process_time()
    run(f, [sink], steps=seconds, pacing=Pacing(1.0, STEP) if paced else None, counters=counters)
    elapsed, cpu = time.perf_counter() - wall, time.process_time() - cpu
    counts = f"{counters.sent:,} sent, {counters.acked:,} acknowledged, {counters.errors:,} errors"
    if paced:
        # step i is due i seconds after the start: the last one's lag tells whether it kept up
        lag = elapsed - (seconds - 1) * STEP.total_seconds()
        return (
            f"{counters.sent / seconds:>9,.0f} readings/s  ({counts}; last step acknowledged {lag:.2f}s "
            f"after it was due; CPU {cpu / elapsed:.0%} of one core)"
        )
    rate = counters.sent / elapsed
    return f"{rate:>9,.0f} readings/s  ({counts} in {elapsed:.1f}s; CPU {cpu / elapsed:.0%} of one core)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stacks", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seconds", type=int, default=30, help="reporting steps (one per second) of each run")
    parser.add_argument("--protocol", choices=["registry", "json", "hj212"], default="registry")
    parser.add_argument("--skip", choices=["sustained", "max"], nargs="*", default=[])
    args = parser.parse_args()
    protocol = None if args.protocol == "registry" else args.protocol

    print(f"payloads: {args.protocol}; QoS 1 over MQTT; {args.seconds} steps of one reading per stack", flush=True)
    for stacks in args.stacks:
        print(f"{stacks:>6,} stacks  generation only  {generation(stacks, protocol):>9,.0f} messages/s", flush=True)
        if "sustained" not in args.skip:
            print(f"{stacks:>6,} stacks  sustained (1/s)  {publish(stacks, protocol, args.seconds, True)}", flush=True)
        if "max" not in args.skip:
            print(f"{stacks:>6,} stacks  max (unpaced)    {publish(stacks, protocol, args.seconds, False)}", flush=True)


if __name__ == "__main__":
    main()
