"""The console's emergency pages against the real Kafka, InfluxDB and PostgreSQL: the monitoring
centre declares and ends a response (onto the emergency topic, every partition), nobody else
may; the report judges the hourly averages stored in InfluxDB, as far as each user may see."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings
from console import db, migrate
from console.auth import LoginLimit
from console.demo import demo_accounts, ensure_demo_users
from console.emergency import EmergencyDesk
from console.evidence import InfluxEvidence
from console.store import CaseStore
from console.web import ConsoleContext, create_app
from contracts.alerts import HourlyAverage, HourlyStatus
from contracts.registry import load_registry
from contracts.topics import topics
from rules.cases.policy import CasePolicy
from rules.config import meter_key
from rules.notify.routing import directory
from streams.engine import load_engine
from streams.influx_points import PointBuilder, stack_tags

pytestmark = pytest.mark.integration
PASSWORD = "demo-password-42"
REGISTRY = load_registry()
ENGINE = load_engine(REGISTRY)
#: 08:00 Beijing time; the orange lists of jy-coke-1 (oven1: limit 70 % of 2,200 kW, lead 2 h) and
#: jy-cement-1 (mill on s3: stop, lead 2 h; kiln on s1: limit 50 %)
START = datetime(2026, 11, 20, 0, tzinfo=UTC)
H = timedelta(hours=1)
COKE, MILL = "jy-coke-1", "jy-cement-1"


def _hour(stack: str, parameter: str, hour: datetime, mean: float) -> HourlyAverage:
    ent = REGISTRY.stack_index()[stack][0].id
    return HourlyAverage(
        enterprise=ent, stack=stack, parameter=parameter, hour_start=hour, status=HourlyStatus.VALID,
        valid_minutes=60, mean=mean, converted=mean, o2_converted=False, limit=None, o2_mean=None,
        reference_o2_pct=None, flag_minutes={},
    )  # fmt: skip


def _stored_hours() -> list[HourlyAverage]:
    """oven1 over its 1,540 kW limit in the 1st and 3rd judged hours, under it in the 2nd; the mill
    stopped (under its 150 kW running threshold) in every judged hour, and its stack (the mill is
    its only producer, so it must stop too) at 1 m3/s against 50 m3/s in the same hours the day
    before."""
    oven, mill = meter_key("jy-coke-1-oven1", "power"), meter_key("jy-cement-1-mill", "power")
    out = []
    for i, kw in enumerate((2000.0, 1000.0, 2100.0)):
        hour = START + (2 + i) * H
        out += [_hour("jy-coke-1-s1", oven, hour, kw), _hour("jy-cement-1-s3", mill, hour, 10.0)]
        out += [_hour("jy-cement-1-s3", "flow", hour, 1.0), _hour("jy-cement-1-s3", "flow", hour - 24 * H, 50.0)]
    return out


@dataclass
class Rig:
    client: TestClient
    namespace: str
    bootstrap: str


@pytest.fixture
def rig(postgres_url: str, infra: InfraSettings, secrets: SecretStore, unique: str) -> Iterator[Rig]:
    engine = db.make_engine(postgres_url)
    migrate.upgrade(engine)
    store = CaseStore(engine, CasePolicy(), directory(REGISTRY))
    ensure_demo_users(store, REGISTRY, PASSWORD)
    ns = f"em{unique}"
    token = secrets.influxdb_token()
    with InfluxDBClient(url=infra.influxdb_url, token=token, org=infra.influxdb_org) as client:
        builder = PointBuilder(stack_tags(REGISTRY), ns)
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=infra.influxdb_bucket, record=[builder.hourly(h) for h in _stored_hours()]
        )
    evidence = InfluxEvidence(infra.influxdb_url, token, infra.influxdb_org, infra.influxdb_bucket, ns)
    desk = EmergencyDesk(infra.kafka_bootstrap, topics(ns).emergency, ENGINE.profiles, ENGINE.settings, evidence)
    ctx = ConsoleContext(
        store=store, session_lifetime=timedelta(hours=1), login_limit=LoginLimit(5, 900), emergency=desk,
        clock=lambda: START + 6 * H,
    )  # fmt: skip
    with TestClient(create_app(ctx)) as client:
        yield Rig(client, ns, infra.kafka_bootstrap)
    evidence.close()
    engine.dispose()


def _login(client: TestClient, username: str) -> None:
    client.cookies.clear()
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    done = client.post("/login", data={"username": username, "password": PASSWORD, "csrf": csrf.group(1)},
                       follow_redirects=False)  # fmt: skip
    assert done.status_code == 303, done.text


def _csrf(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/emergency").text)
    assert found is not None
    return found.group(1)


def _officer_of(district: str) -> str:
    return next(u for u, role, ds, _, _ in demo_accounts(REGISTRY) if role.value == "officer" and district in ds)


def _partitions_holding(bootstrap: str, topic: str, partitions: int) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "x", "isolation.level": "read_committed"})
    try:
        return sum(
            1 for p in range(partitions) if consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] > 0
        )
    finally:
        consumer.close()


def test_the_centre_declares_and_ends_others_may_not(rig: Rig) -> None:
    client = rig.client
    districts = [REGISTRY.enterprises[0].district]
    for who in (COKE, _officer_of(districts[0])):  # an enterprise, an officer: not the monitoring centre
        _login(client, who)
        assert 'id="declare"' not in client.get("/emergency").text
        bare = {"level": "orange", "start": "2026-11-20T08:00", "csrf": _csrf(client)}
        assert client.post("/emergency", data=bare, follow_redirects=False).status_code == 403
    _login(client, "chief")
    assert client.post("/emergency", data={"level": "orange", "start": "2026-11-20T08:00", "csrf": "forged"},
                       follow_redirects=False).status_code == 403  # fmt: skip
    form: dict[str, str | list[str]] = {
        "level": "orange", "start": "2026-11-20T08:00", "end": "2026-11-20T13:00", "districts": districts,
        "note": "豫环攻坚办 2026-88", "csrf": _csrf(client),
    }  # fmt: skip
    made = client.post("/emergency", data=form, follow_redirects=False)
    assert made.status_code == 303 and "declared+20261120T0000Z-orange" in made.headers["location"]
    again = client.post("/emergency", data=form, follow_redirects=False)
    assert "refused" in again.headers["location"] and "exists+already" in again.headers["location"]
    unknown = client.post("/emergency", data={**form, "districts": ["nowhere"]}, follow_redirects=False)
    assert "not+in+the+registry" in unknown.headers["location"]
    listed = client.get("/api/emergency").json()
    assert [(r["id"], r["level"], r["districts"], r["revision"], r["declared_by"]) for r in listed] == [
        ("20261120T0000Z-orange", "orange", districts, 1, "chief")
    ]
    assert listed[0]["start"] == "2026-11-20T00:00:00Z" and listed[0]["end"] == "2026-11-20T05:00:00Z"
    spec = topics(rig.namespace).emergency
    assert _partitions_holding(rig.bootstrap, spec.name, spec.partitions) == spec.partitions
    ended = client.post(
        "/emergency/20261120T0000Z-orange/end", data={"at": "2026-11-20T10:00", "csrf": _csrf(client)},
        follow_redirects=False,
    )  # fmt: skip
    assert "ended+20261120T0000Z-orange" in ended.headers["location"]
    (after,) = client.get("/api/emergency").json()
    assert after["revision"] == 2 and after["end"] == "2026-11-20T02:00:00Z"


def test_the_report_judges_the_stored_hours_as_far_as_each_user_may_see(rig: Rig) -> None:
    client = rig.client
    district = {e.id: e.district for e in REGISTRY.enterprises}
    coke_d, mill_d = district[COKE], district[MILL]
    _login(client, "chief")
    form = {"level": "orange", "start": "2026-11-20T08:00", "end": "2026-11-20T13:00",
            "districts": [coke_d, mill_d], "csrf": _csrf(client)}  # fmt: skip
    assert "declared" in client.post("/emergency", data=form, follow_redirects=False).headers["location"]
    rid = "20261120T0000Z-orange"
    rows = list(csv.DictReader(io.StringIO(client.get(f"/emergency/{rid}.csv").text)))
    measures = {(r["enterprise"], r["facility"]): r for r in rows if r["section"] == "measure"}
    oven = measures[(COKE, "jy-coke-1-oven1")]
    # lead time 2 h: the hours from 10:00 to 13:00 Beijing are judged: 2,000 and 2,100 kW over 1,540, 1,000 under
    assert (oven["compliant_hours"], oven["noncompliant_hours"], oven["unverifiable_hours"]) == ("1", "2", "0")
    assert measures[(MILL, "jy-cement-1-mill")]["compliant_hours"] == "3"
    kiln = measures[(MILL, "jy-cement-1-kiln")]  # no kiln power stored: every hour unverifiable
    assert (kiln["compliant_hours"], kiln["noncompliant_hours"], kiln["unverifiable_hours"]) == ("0", "0", "3")
    checks = [r for r in rows if r["section"] == "check" and r["facility"] == "jy-coke-1-oven1"]
    assert [(r["hour_start"], r["status"], r["required"], r["measured"]) for r in checks] == [
        ("2026-11-20T02:00:00+00:00", "noncompliant", "1540.0", "2000.0"),
        ("2026-11-20T03:00:00+00:00", "compliant", "1540.0", "1000.0"),
        ("2026-11-20T04:00:00+00:00", "noncompliant", "1540.0", "2100.0"),
    ]
    assert any(r["section"] == "region" for r in rows)
    page = client.get(f"/emergency/{rid}").text
    assert "jy-coke-1-oven1" in page and 'id="region"' in page
    # an enterprise sees its own lines and not the region; an officer only their district's
    _login(client, COKE)
    mine = client.get(f"/emergency/{rid}").text
    assert "jy-coke-1-oven1" in mine and "jy-cement-1-mill" not in mine and 'id="region"' not in mine
    assert {r["enterprise"] for r in csv.DictReader(io.StringIO(client.get(f"/emergency/{rid}.csv").text))
            if r["enterprise"]} == {COKE}  # fmt: skip
    if coke_d != mill_d:
        _login(client, _officer_of(mill_d))
        theirs = client.get(f"/emergency/{rid}").text
        assert "jy-cement-1-mill" in theirs and "jy-coke-1-oven1" not in theirs
        assert 'id="region"' not in theirs  # their districts are not the region
    assert client.get("/emergency/no-such-response").status_code == 404
