"""The alerts behind the browser tests, made the way the system makes them: a simulator
scenario (an SO2 exceedance hour on two stacks of different enterprises and districts) is
rendered as the devices' messages, validated as the gateway validates them and replayed through
the pure detection engine; its alert events go onto a namespace's real alerts topic, its
readings and hourly averages into InfluxDB (the case's charts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from confluent_kafka import Producer

from cems.replay import ReplayInput, write_influx
from contracts.alerts import AlertEvent, AlertEventType, AlertKind
from contracts.registry import Registry, load_registry
from ingest.validation import ReadingValidator, ValidationSettings
from rules.replay import ReplayDriver, ReplayResult
from simulators.fleet import Fleet
from simulators.scenarios import Scenario
from streams.engine import load_engine

#: (stack, enterprise, district): the case the flow works through, and one of another
#: enterprise in another district that its users must not see
OURS = ("jy-power-1-s1", "jy-power-1", "玉泉街道")
THEIRS = ("jy-power-2-s1", "jy-power-2", "克井镇")
MINUTES = 200  # past the end of the exceedance hour and the next one, so both close


@dataclass(frozen=True)
class ScenarioRun:
    registry: Registry
    data: ReplayInput
    result: ReplayResult

    def exceedance(self, stack: str, event: AlertEventType) -> AlertEvent:
        (found,) = [
            e for e in self.result.events if e.kind is AlertKind.EXCEEDANCE and e.stack == stack and e.event is event
        ]
        return found


def run_scenario(start: datetime | None = None) -> ScenarioRun:
    """Hour 1 of the scenario: SO2 at 1.4 x its limit on both stacks; replayed through the rules."""
    start = start or datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    full = load_registry()
    stacks = {OURS[0], THEIRS[0]}
    doc = full.model_dump(mode="json")
    doc["enterprises"] = [
        {**e, "stacks": [s for s in e["stacks"] if s["id"] in stacks]}
        for e in doc["enterprises"]
        if any(s["id"] in stacks for s in e["stacks"])
    ]
    registry = Registry.model_validate(doc)
    engine = load_engine(registry)
    scenario = Scenario.model_validate(
        {
            "version": 1,
            "name": "browser",
            "duration_min": MINUTES,
            "faults": [
                {"type": "exceedance", "stack": s, "parameter": "so2", "from": 60, "to": 120, "level_share": 1.4}
                for s in sorted(stacks)
            ],
        }
    )
    fleet = Fleet(registry, engine.profiles, scenario, start, seed=7)
    validator = ReadingValidator(registry, ValidationSettings(max_future_s=300, max_age_s=float("inf")))
    data = ReplayInput()
    for minute in range(MINUTES):
        for msg in fleet.messages(minute):
            reading, _ = validator.from_mqtt(msg.topic, msg.payload, msg.event_time + timedelta(seconds=1))
            data.readings.append(reading)
    data.readings.sort(key=lambda r: r.event_time)
    return ScenarioRun(registry, data, ReplayDriver(engine).feed_all(data.readings).finish())


def produce(bootstrap: str, topic: str, events: list[AlertEvent]) -> None:
    """Alert events onto the alerts topic as the worker sends them (keyed by stack), confirmed."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    failed: list[str] = []
    for event in events:
        producer.produce(
            topic,
            key=event.stack.encode(),
            value=event.model_dump_json().encode(),
            on_delivery=lambda err, _m: failed.append(str(err)) if err else None,
        )
    left = producer.flush(30)
    assert left == 0 and not failed, f"alert events not confirmed by Kafka: {failed or left}"


def write_evidence(run: ScenarioRun, namespace: str, *, url: str, token: str, org: str, bucket: str) -> int:
    """The scenario's readings, hourly averages and alerts into InfluxDB under ``namespace``."""
    return write_influx(
        run.data, run.result, run.registry, namespace=namespace, url=url, token=token, org=org, bucket=bucket
    )
