"""What the detection rules decide over every simulator scenario, as JSON lines, for a golden
comparison: a change that is only meant to make the rules faster must leave these unchanged.

Each case replays readings through the pure engine (``ReplayDriver``) and gives its alert
events and hourly averages, each serialised as the worker publishes them. The cases: every
scenario in ``simulators/scenarios`` as ``test_simulators`` replays it (limit-hugging, a day
long, on four stacks only), the faults scenario with spike notices on, and the faults
scenario fed out of order (some readings late, others sent again as backfill after a
silence), ticked every five minutes, with officers acknowledging alerts on the way.

    .venv/bin/python -m tests.unit.rules_golden --write   # after a change meant to change decisions
    .venv/bin/python -m tests.unit.rules_golden --states --dump DIR   # every line, and final states
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contracts.alerts import AlertEvent
from contracts.reading import Reading
from contracts.registry import load_registry
from ingest.validation import ReadingValidator, ValidationSettings
from rules.config import RuleSettings
from rules.engine import DetectionEngine
from rules.replay import ReplayDriver
from simulators.fleet import Fleet
from simulators.scenarios import load_scenario, scenario_names
from streams.engine import load_engine

GOLDEN = Path(__file__).with_name("rules_golden.json")
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
HUGGING_STACKS = frozenset({"jy-coke-1-s2", "jy-coke-1-s1", "jy-power-1-s1", "jy-cement-1-s1"})
SILENT_STACK = "jy-power-1-s1"  # in the disordered case: silent for minutes 100-119, then backfilled


@functools.lru_cache(maxsize=1)
def scenario_readings(name: str, stacks: frozenset[str] | None = None) -> tuple[Reading, ...]:
    """The scenario's messages, validated as the gateway validates them, in event-time order
    (the last scenario's are kept for the next case: the simulator and the validation take
    longer than the rules)."""
    registry = load_registry()
    engine = load_engine(registry)
    scenario = load_scenario(name)
    fleet = Fleet(registry, engine.profiles, scenario, START, seed=7)
    validator = ReadingValidator(registry, ValidationSettings(max_future_s=300, max_age_s=float("inf")))
    readings = []
    for minute in range(scenario.duration_min):
        for msg in fleet.messages(minute):
            if stacks is not None and msg.stack not in stacks:
                continue
            try:
                reading, _ = validator.from_mqtt(msg.topic, msg.payload, START + timedelta(minutes=minute, seconds=31))
            except Exception:  # refused input is the gateway's business, not the rules'
                continue
            readings.append(reading)
    return tuple(sorted(readings, key=lambda r: r.event_time))


def _lines(events: list[AlertEvent], driver: ReplayDriver, states: bool) -> list[str]:
    """The events and hourly averages; with ``states`` also each stack's final state (what a
    change of the rules' internals must leave alone too, but a change of its format changes)."""
    result = driver.result
    lines = (
        [e.model_dump_json() for e in events + result.events]
        + [h.model_dump_json() for h in result.hourly]
        + [json.dumps({"readings": result.readings, "late": result.late})]
    )
    if states:
        lines += [repr(s) for s in driver.states.values()]
    return lines


def plain(
    name: str, settings: RuleSettings | None = None, stacks: frozenset[str] | None = None, states: bool = False
) -> list[str]:
    """The scenario replayed (only ``stacks``, when given) with ``settings`` (default: the built-in)."""
    engine = load_engine(load_registry())
    profiles = {s: p for s, p in engine.profiles.items() if stacks is None or s in stacks}
    engine = DetectionEngine(profiles, settings or engine.settings)
    driver = ReplayDriver(engine).feed_all(scenario_readings(name, stacks))
    driver.finish()
    return _lines([], driver, states)


def disordered(states: bool = False) -> list[str]:
    """Faults, with arrival order shuffled by up to 7 minutes (beyond the 5-minute grace, so some
    readings are late), one stack silent for 20 minutes and then sending the missed readings as
    backfill, a tick every 5 minutes, and every open alert acknowledged once an hour."""
    engine = load_engine(load_registry())
    rnd = random.Random(13)
    readings = scenario_readings("faults")
    hole = [
        r for r in readings if r.stack == SILENT_STACK and 100 <= (r.event_time - START).total_seconds() // 60 < 120
    ]
    missed = {id(r) for r in hole}
    arrival = [(r.event_time.timestamp() + rnd.uniform(0, 420), r) for r in readings if id(r) not in missed]
    resumed = START.timestamp() + 122 * 60
    arrival += [(resumed + i, r.model_copy(update={"backfilled": True})) for i, r in enumerate(hole)]
    arrival.sort(key=lambda pair: pair[0])
    driver = ReplayDriver(engine, tick_every=timedelta(minutes=5))
    acks: list[AlertEvent] = []
    next_ack = START + timedelta(minutes=30)
    for _, reading in arrival:
        driver.feed(reading)
        if driver.now is not None and driver.now >= next_ack:
            for state in driver.states.values():
                for alert in list(state.alerts.values()):
                    acks += engine.acknowledge(state, alert.alert_id, "officer-1", driver.now, note="seen")
            next_ack += timedelta(hours=1)
    driver.finish(until=driver.now + timedelta(minutes=30) if driver.now else None)
    return _lines(acks, driver, states)


def cases() -> Iterator[tuple[str, Callable[[bool], list[str]]]]:
    """(name, make): ``make(states)`` gives the case's lines."""
    for name in scenario_names():
        if name == "limit-hugging":  # a day: the hugging stack and three others (validating is slow)
            yield f"scenario:{name}", functools.partial(plain, name, None, HUGGING_STACKS)
            continue
        yield f"scenario:{name}", functools.partial(plain, name, None, None)
        if name == "faults":  # right after it, while its readings are at hand
            yield "faults:spikes", functools.partial(plain, "faults", RuleSettings(spike_ratio=1.2), None)
            yield "faults:disordered", disordered


def digest(lines: list[str]) -> dict[str, object]:
    events = [line for line in lines if '"alert_id"' in line]
    return {
        "lines": len(lines),
        "events": len(events),
        "sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"write the digests to {GOLDEN.name}")
    parser.add_argument("--dump", type=Path, help="write each case's lines into this folder")
    parser.add_argument("--states", action="store_true", help="also compare each stack's final state")
    args = parser.parse_args()
    found = {}
    for name, make in cases():
        lines = make(args.states)
        found[name] = digest(lines)
        if args.dump:
            args.dump.mkdir(parents=True, exist_ok=True)
            (args.dump / f"{name.replace(':', '_')}.jsonl").write_text("\n".join(lines) + "\n")
        print(name, found[name])
    if args.write:
        GOLDEN.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
