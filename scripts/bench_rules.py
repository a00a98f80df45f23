"""Throughput of the pure detection rules, one core, no I/O.

    .venv/bin/python scripts/bench_rules.py [--hours 6]

Replays every stack of the sample registry for --hours of one-minute readings (all declared
parameters, with noise) through the same ReplayDriver that `cems replay` uses, and prints
readings per second, with alert and hourly-average counts.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contracts.parameters import PARAMETERS
from contracts.reading import DataKind, Measurement, Reading, Source
from contracts.registry import Registry, load_registry
from rules.replay import ReplayDriver
from streams.engine import load_engine

TYPICAL = {
    "flow": 100.0, "velocity": 12.0, "temperature": 60.0, "pressure": 0.3, "humidity": 10.0, "o2": 8.0,
    "so2": 20.0, "nox": 35.0, "no": 20.0, "no2": 3.0, "pm": 4.0, "nh3": 1.0, "co": 50.0, "hcl": 5.0, "thc": 20.0,
    "nmhc": 20.0, "ch4": 2.0, "benzene": 0.2, "toluene": 1.0, "xylene": 2.0, "load": 85.0, "bypass_damper": 0.0,
    "bypass_flow": 0.0, "bypass_temperature": 30.0,
}  # fmt: skip


def readings(hours: int, seed: int = 7, registry: Registry | None = None) -> list[Reading]:
    rnd = random.Random(seed)
    registry = registry or load_registry()
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    out = []
    for minute in range(hours * 60):
        t = t0 + timedelta(minutes=minute, seconds=30)
        for ent, stack in registry.stacks():
            values = {
                p: Measurement(value=max(0.0, TYPICAL[p] * rnd.uniform(0.95, 1.05)), unit=PARAMETERS[p].unit)
                for p in stack.parameters
            }
            out.append(
                Reading(enterprise=ent.id, stack=stack.id, mn=stack.devices[0].mn, event_time=t,
                        kind=DataKind.REALTIME, values=values, source=Source.REPLAY, received_at=t)
            )  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=6)
    args = parser.parse_args()
    data = readings(args.hours)
    engine = load_engine(load_registry())
    started = time.perf_counter()
    result = ReplayDriver(engine).feed_all(data).finish()
    elapsed = time.perf_counter() - started
    print(
        f"rules, one core: {len(data):,} readings ({len(engine.profiles)} stacks x {args.hours} h of minutes) "
        f"in {elapsed:.2f}s = {len(data) / elapsed:,.0f} readings/s; "
        f"{len(result.hourly):,} hourly averages, {len(result.events)} alert events"
    )


if __name__ == "__main__":
    main()
