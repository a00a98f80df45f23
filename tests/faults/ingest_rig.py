"""A rig for ingest fault tests: private servers that a test may kill, a scaled registry, a
real `cems gateway`, a simulated fleet publishing in a thread, and the count that matters:
every reading the fleet produced is in Kafka, once.

Private servers live under the test's tmp dir on free ports (the shared servers other tests
use are never touched); Kafka is private only where a test kills it.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from cems.accounts import mqtt_accounts
from cems.infra.kafka import KafkaServer
from cems.infra.mosquitto import MosquittoServer
from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings
from cems.topics import ensure_topics
from contracts.registry import SAMPLE_REGISTRY, load_registry
from simulators.fleet import Fleet, Message, step_offset
from simulators.publish import Counters, MqttSink, Pacing, run
from simulators.scenarios import load_scenario
from streams.engine import load_engine
from tests.integration.helpers import GatewayProcess, consume_all, free_port


def scaled_registry(path: Path, copies: int, interval_s: int = 1) -> Path:
    """The sample registry with each stack cloned ``copies`` times (own ids and MNs), every
    stack reporting each ``interval_s``: a fleet large enough to load the pipeline. Stacks only:
    the facilities (and the reduction lists naming them) exhaust to stack ids no clone has."""
    doc = yaml.safe_load(SAMPLE_REGISTRY.read_text(encoding="utf-8"))
    for ent in doc["enterprises"]:
        ent.pop("facilities", None)
        ent.pop("emergency", None)
        stacks = []
        for stack in ent["stacks"]:
            for k in range(copies):
                clone = {**stack, "id": f"{stack['id']}-c{k}", "reporting_interval_s": interval_s}
                clone["devices"] = [{**d, "mn": f"{d['mn']}C{k}"[-24:]} for d in stack["devices"]]
                stacks.append(clone)
        ent["stacks"] = stacks
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    load_registry(path)  # valid, or fail here
    return path


def private_settings(tmp: Path, *, kafka: bool = False, shared: InfraSettings | None = None) -> InfraSettings:
    """Settings of a private broker (and Kafka, if asked); the rest shared. Their state lives
    beside the shared servers' (Mosquitto runs as its own user, who cannot enter pytest's
    private tmp dirs), named after ``tmp`` and unique (test sessions may run side by side);
    ``remove_private_state`` deletes it."""
    shared = shared or InfraSettings()
    return InfraSettings(
        state_dir=shared.state_dir / "faults" / f"{tmp.name}-{uuid.uuid4().hex[:8]}",
        mqtt_port=free_port(),
        kafka_port=free_port() if kafka else shared.kafka_port,
        kafka_controller_port=free_port() if kafka else shared.kafka_controller_port,
        influxdb_port=shared.influxdb_port,
        cache_dir=shared.cache_dir,
    )


def remove_private_state(settings: InfraSettings) -> None:
    """Delete a private server's state (kept with ``CEMS_KEEP_FAULT_STATE=1``, to read its logs)."""
    assert settings.state_dir.parent.name == "faults", settings.state_dir
    if not os.environ.get("CEMS_KEEP_FAULT_STATE"):
        shutil.rmtree(settings.state_dir, ignore_errors=True)


class LossyMqttSink(MqttSink):
    """Loses the messages ``lose`` picks after the device counted them sent, as a broker that
    crashed before saving what it had acknowledged would: the device still has them in its
    history, and answers history requests with them (those answers are not lost)."""

    def __init__(self, *args: Any, lose: Callable[[Message], bool], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lose = lose
        self.lost = 0

    def send(self, msg: Message) -> None:
        if self.lose(msg):
            self.lost += 1
            self.counters.sent += 1
            return
        super().send(msg)


@dataclass
class FleetRun:
    """A simulated fleet publishing over MQTT (QoS 1, persistent sessions) in a thread."""

    settings: InfraSettings
    registry: Path
    steps: int
    step_s: int = 1
    speed: float = 1.0
    start: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    counters: Counters = field(default_factory=Counters)
    error: BaseException | None = None
    #: messages to lose between the device and the broker's subscribers (see ``LossyMqttSink``)
    lose: Callable[[Message], bool] | None = None

    def __post_init__(self) -> None:
        reg = load_registry(self.registry)
        engine = load_engine(reg)
        self.fleet = Fleet(reg, engine.profiles, load_scenario("baseline"), self.start, seed=11)
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)

    def _run(self) -> None:
        secrets = SecretStore(self.settings.secrets_dir)
        where = (self.settings.host, self.settings.mqtt_port, secrets.mqtt_password, self.counters)
        sink = MqttSink(*where, stall_s=60) if self.lose is None else LossyMqttSink(*where, stall_s=60, lose=self.lose)
        step = timedelta(seconds=self.step_s)
        try:
            run(self.fleet, [sink], steps=self.steps, pacing=Pacing(self.speed, step), counters=self.counters)
        except BaseException as exc:  # reported by wait()
            self.error = exc

    def begin(self) -> FleetRun:
        self._thread.start()
        return self

    def wait(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"fleet still publishing after {timeout_s}s: {self.counters}"
        assert self.error is None, f"fleet failed: {self.error!r}"

    def expected(self) -> set[tuple[str, str]]:
        """(MN, event time) of every reading the fleet produced."""
        step = timedelta(seconds=self.step_s)
        times = [self.start + i * step + step_offset(step) for i in range(self.steps)]
        return {(dev.mn, t.isoformat()) for _, _, dev in self.fleet.devices for t in times}


def private_broker(settings: InfraSettings, registry: Path) -> MosquittoServer:
    server = MosquittoServer(settings, mqtt_accounts(registry))
    server.start()
    return server


def private_kafka(settings: InfraSettings) -> KafkaServer:
    server = KafkaServer(settings)
    server.start()
    return server


def start_gateway(
    settings: InfraSettings, tmp: Path, env: dict[str, str] | None = None, name: str = "gw"
) -> GatewayProcess:
    """A real `cems gateway` on ``settings``' servers, with ``env`` added to its environment, in
    a topic namespace and MQTT session of its own (named after ``name``), its topics created."""
    run = f"{name}{uuid.uuid4().hex[:8]}"
    gw = GatewayProcess(settings, f"f{run}", tmp / f"gateway-{name}.log", client_id=f"gw-{run}", env=env)
    ensure_topics(settings.kafka_bootstrap, gw.topics.all())
    gw.start()
    return gw


@dataclass
class Rig:
    """A private broker (and Kafka, if asked), a scaled registry and a running gateway."""

    registry: Path
    settings: InfraSettings
    broker: MosquittoServer
    gateway: GatewayProcess
    kafka: KafkaServer | None = None

    def fleet(self, steps: int, **options: Any) -> FleetRun:
        return FleetRun(self.settings, self.registry, steps, **options)

    def count(self, fleet: FleetRun, timeout_s: float) -> Count:
        return count_readings(self.settings, self.gateway.topics.readings.name, fleet.expected(), timeout_s)


@contextmanager
def ingest_rig(tmp: Path, name: str, *, copies: int, kafka: bool = False) -> Iterator[Rig]:
    """Start the rig; stop everything and remove the private state however the test ends."""
    registry = scaled_registry(tmp / "registry.yaml", copies=copies)
    settings = private_settings(tmp, kafka=kafka)
    with ExitStack() as stack:
        stack.callback(remove_private_state, settings)
        kafka_server = private_kafka(settings) if kafka else None
        if kafka_server is not None:
            stack.callback(kafka_server.stop)
        broker = private_broker(settings, registry)
        stack.callback(broker.stop)
        gateway = start_gateway(settings, tmp, {"CEMS_REGISTRY": str(registry)}, name)
        stack.callback(gateway.stop)
        yield Rig(registry, settings, broker, gateway, kafka_server)


@dataclass(frozen=True)
class Count:
    expected: int
    stored: int
    missing: int
    duplicated: int
    unexpected: int
    backfilled: int

    def __str__(self) -> str:
        return (
            f"expected {self.expected:,}, stored {self.stored:,}, missing {self.missing:,}, "
            f"duplicated {self.duplicated:,}, unexpected {self.unexpected:,}, backfilled {self.backfilled:,}"
        )


def count_readings(settings: InfraSettings, topic: str, expected: set[tuple[str, str]], timeout_s: float) -> Count:
    """Read the readings topic until every expected reading arrived (or ``timeout_s``)."""
    got: list[dict[str, Any]] = consume_all(
        settings.kafka_bootstrap, topic, expect=len(expected), timeout_s=timeout_s, settle_s=3
    )
    keys = Counter((r["mn"], datetime.fromisoformat(r["event_time"]).astimezone(UTC).isoformat()) for r in got)
    return Count(
        expected=len(expected),
        stored=len(keys),
        missing=len(expected - set(keys)),
        duplicated=sum(n - 1 for n in keys.values()),
        unexpected=len(set(keys) - expected),
        backfilled=sum(1 for r in got if r.get("backfilled")),
    )
