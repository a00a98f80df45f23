"""Throughput of the pure detection rules, one core, no I/O, beside the raw limit.

    .venv/bin/python scripts/bench_rules.py [--hours 6] [--runs 3] [--profile]

Replays every stack of the sample registry for --hours of one-minute readings (all declared
parameters, with noise) through the same ReplayDriver that `cems replay` uses, and prints
readings per second, with alert and hourly-average counts. Beside it, measured in the same run
on the same readings: the floor, a bare Python loop that only touches each reading's values
(what no rule written in Python can beat). With --profile, one more replay is sampled by
py-spy (attached to this process) and its busiest lines in rules/ are printed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cems.pyspy import top_frames
from contracts.parameters import PARAMETERS
from contracts.reading import DataKind, Measurement, Reading, Source
from contracts.registry import Registry, load_registry
from rules.engine import DetectionEngine
from rules.replay import ReplayDriver, ReplayResult
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


def replay_s(engine: DetectionEngine, data: list[Reading]) -> tuple[float, ReplayResult]:
    """Seconds to replay ``data`` through a fresh driver, and what it decided."""
    started = time.perf_counter()
    result = ReplayDriver(engine).feed_all(data).finish()
    return time.perf_counter() - started, result


def floor_s(data: list[Reading]) -> float:
    """Seconds of a bare loop that only touches each reading's values: the raw limit."""
    started = time.perf_counter()
    total = 0.0
    for reading in data:
        for m in reading.values.values():
            total += m.value
    return time.perf_counter() - started


def profile(engine: DetectionEngine, data: list[Reading], output: Path) -> list[tuple[str, float]] | None:
    """One more replay, sampled by py-spy attached to this process: the busiest lines in rules/."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        return None
    argv = [py_spy, "record", "--pid", str(os.getpid()), "--format", "raw", "--output", str(output), "--rate", "500"]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # attached
    replay_s(engine, data)
    spy.send_signal(signal.SIGINT)
    spy.wait(30)
    return top_frames(output, ("rules/",), count=15, elsewhere="elsewhere (no frame in rules/)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=6)
    parser.add_argument("--runs", type=int, default=1, help="replays to time (each with a fresh state)")
    parser.add_argument("--profile", action="store_true", help="sample one more replay with py-spy")
    args = parser.parse_args()
    data = readings(args.hours)
    engine = load_engine(load_registry())
    for run in range(1, args.runs + 1):
        elapsed, result = replay_s(engine, data)
        floor = floor_s(data)
        print(
            f"run {run}: rules, one core: {len(data):,} readings ({len(engine.profiles)} stacks x {args.hours} h of "
            f"minutes) in {elapsed:.2f}s = {len(data) / elapsed:,.0f} readings/s; floor (a bare loop touching each "
            f"reading's values) {len(data) / floor:,.0f} readings/s, the rules take {elapsed / floor:.0f} x the floor; "
            f"{len(result.hourly):,} hourly averages, {len(result.events)} alert events"
        )
    if args.profile:
        output = Path(tempfile.mkstemp(prefix="bench-rules-", suffix=".txt")[1])
        frames = profile(engine, data, output)
        if frames is None:
            print("py-spy not found: no profile")
            return
        print(f"py-spy, one more replay ({output}): innermost line in rules/ by share of samples")
        for frame, share in frames:
            print(f"  {share:6.1%}  {frame}")


if __name__ == "__main__":
    main()
