"""Electricity meters through the gateway: the same topics, validation and dead letters as a
stack's devices, keyed by the stack their facility exhausts to, with the facility named.

The registry is the sample one with two meters of jy-power-1 changed: the FGD's meter
declares power in MW and reports every 30 s; the boiler's meter (HJ 212, PW 123456) may send
over TCP only from 203.0.113.0/28.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

import pytest

from cems.infra.settings import REPO_ROOT
from contracts.hj212 import encode_packet, parse_packet
from contracts.hj212_data import PacketValue, data_packet
from contracts.parameters import Unit
from contracts.reading import DataFlag, DataKind, RejectReason, Source
from contracts.registry import SAMPLE_REGISTRY, Registry, load_registry
from contracts.yamlfile import load_yaml_mapping
from ingest.backfill import BackfillPlanner
from ingest.dedup import DedupMemory, epoch_us
from ingest.gateway import Gateway
from ingest.senders import sender_index
from ingest.validation import ReadingValidator, Rejected, ValidationSettings
from tests.unit.test_gateway_core import Acks, Sink


def _registry() -> Registry:
    raw = load_yaml_mapping(SAMPLE_REGISTRY)
    power = next(e for e in raw["enterprises"] if e["id"] == "jy-power-1")
    facilities = {f["id"]: f for f in power["facilities"]}
    facilities["jy-power-1-fgd1"]["meter"].update(
        parameters={"power": "MW", "current": "A", "energy": "kWh"}, reporting_interval_s=30
    )
    facilities["jy-power-1-boiler1"]["meter"]["tcp_allowed_networks"] = ["203.0.113.0/28"]
    return Registry.model_validate(raw)


REG = _registry()
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
V = ReadingValidator(REG, ValidationSettings(max_future_s=300, max_age_s=3600))
METERS = REG.meter_index()
FGD_MN = "41900100019103JYE"  # JSON, power in MW
BOILER_MN = "41900100019101JYE"  # HJ 212, PW 123456
KILN_METER_MN = "41900100039101JYE"  # jy-cement-1-kiln's meter
STACK_MN = REG.stack_index()["jy-power-1-s1"][1].devices[0].mn
FGD_TOPIC = "cems/v1/jy-power-1/jy-power-1-fgd1/reading"
BOILER_TOPIC = "cems/v1/jy-power-1/jy-power-1-boiler1/hj212"


def meter_json(values: dict[str, object], mn: str = FGD_MN, t: datetime = NOW, **extra: object) -> bytes:
    doc: dict[str, object] = {"mn": mn, "time": t.isoformat(), "values": values, **extra}
    return json.dumps(doc).encode()


def boiler_packet(
    values: dict[str, PacketValue] | None = None,
    *,
    kind: DataKind = DataKind.REALTIME,
    t: datetime = NOW,
    pw: str = "123456",
    mn: str = BOILER_MN,
) -> bytes:
    values = values or {"power": PacketValue(3800.0), "current": PacketValue(250.0), "energy": PacketValue(12345.6)}
    return encode_packet(data_packet(mn=mn, kind=kind, event_time=t, values=values, pw=pw))


def refused(topic: str, payload: bytes) -> Rejected:
    with pytest.raises(Rejected) as info:
        V.from_mqtt(topic, payload, NOW)
    return info.value


# -- normalised --------------------------------------------------------------------------------
def test_the_registry_fixture_is_what_the_tests_assume() -> None:
    assert METERS[FGD_MN][1].id == "jy-power-1-fgd1" and METERS[FGD_MN][2].id == "jy-power-1-s1"
    assert METERS[FGD_MN][1].meter.parameters["power"] is Unit.MW
    assert METERS[BOILER_MN][1].meter.protocol == "hj212" and METERS[BOILER_MN][1].meter.hj212_pw == "123456"
    assert METERS[KILN_METER_MN][0].id == "jy-cement-1"


def test_a_json_meter_reading_is_keyed_by_its_facilitys_stack_in_kw() -> None:
    payload = meter_json(
        {
            "power": {"value": 1.25},  # the registry declares MW for this meter: 1,250 kW
            "current": {"value": 180.5, "flag": "N"},
            "energy": {"value": 987654.3, "cou": 987654.3},
        }
    )
    reading, packet = V.from_mqtt(FGD_TOPIC, payload, NOW)
    assert packet is None
    assert (reading.enterprise, reading.stack, reading.mn, reading.facility, reading.source) == (
        "jy-power-1",
        "jy-power-1-s1",
        FGD_MN,
        "jy-power-1-fgd1",
        Source.MQTT_JSON,
    )
    assert reading.values["power"].value == pytest.approx(1250.0)
    assert reading.values["power"].unit is Unit.KW
    assert reading.values["current"].value == 180.5 and reading.values["current"].unit is Unit.AMPERE
    assert reading.values["energy"].value == 987654.3 and reading.values["energy"].unit is Unit.KWH
    assert reading.values["energy"].cumulative == 987654.3


def test_a_unit_named_in_the_reading_wins_over_the_declared_one() -> None:
    reading, _ = V.from_mqtt(FGD_TOPIC, meter_json({"power": {"value": 1250, "unit": "kW"}}), NOW)
    assert reading.values["power"].value == 1250.0
    in_mw, _ = V.from_mqtt(
        "cems/v1/jy-power-1/jy-power-1-scr1/reading",
        meter_json({"power": {"value": 0.18, "unit": "MW"}}, mn="41900100019102JYE"),
        NOW,
    )
    assert in_mw.values["power"].value == pytest.approx(180.0)
    assert in_mw.facility == "jy-power-1-scr1"


def test_an_hj212_meter_packet_with_the_xe_codes() -> None:
    payload = boiler_packet(
        {"power": PacketValue(3800.0, minimum=3700, maximum=3900), "energy": PacketValue(12345.6, flag="M")},
        kind=DataKind.MINUTE,
    )
    assert b"xe0001-Avg=3800" in payload and b"xe0003-Avg=12345.6" in payload
    reading, packet = V.from_mqtt(BOILER_TOPIC, payload, NOW)
    assert packet is not None and packet.mn == BOILER_MN
    assert (reading.stack, reading.facility, reading.kind, reading.source) == (
        "jy-power-1-s1",
        "jy-power-1-boiler1",
        DataKind.MINUTE,
        Source.MQTT_HJ212,
    )
    assert reading.values["power"].value == 3800.0
    assert (reading.values["power"].minimum, reading.values["power"].maximum) == (3700.0, 3900.0)
    assert reading.values["energy"].flag is DataFlag.MAINTENANCE
    assert reading.qn == packet.qn


def test_an_hj212_meter_packet_over_tcp_from_its_allowed_network() -> None:
    packet = parse_packet(boiler_packet())
    reading = V.from_packet(packet, NOW, Source.TCP_HJ212, peer=ip_address("203.0.113.5"))
    assert (reading.stack, reading.facility, reading.source) == (
        "jy-power-1-s1",
        "jy-power-1-boiler1",
        Source.TCP_HJ212,
    )
    assert reading.values["current"].value == 250.0


@pytest.mark.parametrize(
    ("mn", "peer", "pw", "reason"),
    [
        (BOILER_MN, "198.51.100.7", "123456", RejectReason.SOURCE_NOT_ALLOWED),
        (BOILER_MN, "203.0.113.5", "654321", RejectReason.HJ212_PASSWORD),
        (FGD_MN, "203.0.113.5", "123456", RejectReason.HJ212_PASSWORD),  # a JSON meter has no PW: no TCP
    ],
)
def test_a_meter_over_tcp_authenticates_as_a_device_does(mn: str, peer: str, pw: str, reason: RejectReason) -> None:
    packet = parse_packet(boiler_packet({"power": PacketValue(10.0)}, mn=mn, pw=pw))
    with pytest.raises(Rejected) as info:
        V.from_packet(packet, NOW, Source.TCP_HJ212, peer=ip_address(peer))
    assert info.value.reason is reason
    assert (info.value.stack, info.value.mn) == ("jy-power-1-s1", mn)


def test_a_file_reading_of_a_meter_finds_its_facility_by_the_mn() -> None:
    reading = V.from_device_json(meter_json({"power": {"value": 2.0}}), NOW)
    assert (reading.stack, reading.facility, reading.values["power"].value) == (
        "jy-power-1-s1",
        "jy-power-1-fgd1",
        2000.0,
    )


# -- refused -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("topic", "payload", "owner"),
    [
        # another facility of the same enterprise
        (
            "cems/v1/jy-power-1/jy-power-1-esp1/reading",
            meter_json({"power": {"value": 1.0}}),
            "jy-power-1/jy-power-1-fgd1",
        ),
        # the stack its facility exhausts to
        (
            "cems/v1/jy-power-1/jy-power-1-s1/reading",
            meter_json({"power": {"value": 1.0}}),
            "jy-power-1/jy-power-1-fgd1",
        ),
        # another enterprise's facility
        ("cems/v1/jy-cement-1/jy-cement-1-kiln/hj212", boiler_packet(), "jy-power-1/jy-power-1-boiler1"),
        # a stack's device on a facility's topic
        (FGD_TOPIC, meter_json({"so2": {"value": 1.0}}, mn=STACK_MN), "jy-power-1/jy-power-1-s1"),
    ],
)
def test_an_mn_on_a_topic_not_its_own(topic: str, payload: bytes, owner: str) -> None:
    r = refused(topic, payload)
    assert r.reason is RejectReason.MN_TOPIC_MISMATCH
    assert f"belongs to {owner}" in r.detail


def test_a_meter_on_another_facilitys_topic_says_whose_meter_it_is() -> None:
    r = refused("cems/v1/jy-power-1/jy-power-1-esp1/reading", meter_json({"power": {"value": 1.0}}))
    assert r.detail == (
        f"MN {FGD_MN} belongs to jy-power-1/jy-power-1-fgd1 (the electricity meter of facility "
        "jy-power-1/jy-power-1-fgd1), not jy-power-1/jy-power-1-esp1"
    )
    # the refusal is keyed as the topic's readings would be: the stack of the facility named there
    assert (r.enterprise, r.stack, r.mn) == ("jy-power-1", "jy-power-1-s1", FGD_MN)


def test_a_stack_parameter_from_a_meter_is_an_unknown_parameter() -> None:
    r = refused(FGD_TOPIC, meter_json({"power": {"value": 1.0}, "so2": {"value": 30.0}}))
    assert r.reason is RejectReason.UNKNOWN_PARAMETER
    assert r.detail == (
        f"so2 is not a meter parameter: MN {FGD_MN} is the electricity meter of facility "
        "jy-power-1/jy-power-1-fgd1, which reports current, energy, power"
    )
    packet = boiler_packet({"power": PacketValue(10.0), "so2": PacketValue(30.0)})
    assert b"a21026-Rtd=30" in packet
    assert refused(BOILER_TOPIC, packet).reason is RejectReason.UNKNOWN_PARAMETER


def test_power_from_a_stacks_device_is_an_unknown_parameter() -> None:
    r = refused("cems/v1/jy-power-1/jy-power-1-s1/reading", meter_json({"power": {"value": 1.0}}, mn=STACK_MN))
    assert r.reason is RejectReason.UNKNOWN_PARAMETER
    assert r.detail.startswith(
        f"power is an electricity meter's parameter: MN {STACK_MN} is a device of stack jy-power-1/jy-power-1-s1"
    )
    kiln = REG.stack_index()["jy-cement-1-s1"][1].devices[0]
    packet = encode_packet(
        data_packet(
            mn=kiln.mn,
            kind=DataKind.REALTIME,
            event_time=NOW,
            values={"so2": PacketValue(10.0), "energy": PacketValue(5.0)},
            pw=kiln.hj212_pw or "",
        )
    )
    r = refused("cems/v1/jy-cement-1/jy-cement-1-s1/hj212", packet)
    assert r.reason is RejectReason.UNKNOWN_PARAMETER and r.detail.startswith("energy is an electricity meter's")


@pytest.mark.parametrize(
    ("values", "reason", "detail"),
    [
        ({"power": {"value": 1.0, "unit": "A"}}, RejectReason.BAD_UNIT, "power cannot be given in A (allowed: MW, kW)"),
        ({"current": {"value": 1.0, "unit": "kW"}}, RejectReason.BAD_UNIT, "current cannot be given in kW"),
        ({"power": {"value": "1.0"}}, RejectReason.NON_NUMERIC, "power: value '1.0' is not a number"),
        ({"power": {"value": None}}, RejectReason.NON_NUMERIC, "power: value None is not a number"),
        ({"energy": {"value": float("inf")}}, RejectReason.NON_FINITE, "energy: value inf is not finite"),
        ({"power": {"value": -0.001}}, RejectReason.OUT_OF_RANGE, "power value -1 kW is outside the possible 0..2e+06"),
        ({"power": {"value": 2500}}, RejectReason.OUT_OF_RANGE, "power value 2.5e+06 kW"),  # 2,500 MW
        ({"voltage": {"value": 400}}, RejectReason.UNKNOWN_PARAMETER, "unknown parameter 'voltage'"),
    ],
)
def test_bad_values_from_a_meter(values: dict[str, object], reason: RejectReason, detail: str) -> None:
    r = refused(FGD_TOPIC, meter_json(values))
    assert r.reason is reason
    assert detail in r.detail
    assert (r.enterprise, r.stack) == ("jy-power-1", "jy-power-1-s1")


@pytest.mark.parametrize(
    ("text", "reason"), [("abc", RejectReason.NON_NUMERIC), ("nan", RejectReason.NON_FINITE), ("-5", None)]
)
def test_bad_values_in_a_meter_packet(text: str, reason: RejectReason | None) -> None:
    packet = data_packet(
        mn=BOILER_MN, kind=DataKind.REALTIME, event_time=NOW, values={"power": PacketValue(1.0)}, pw="123456"
    )
    cp = tuple(tuple((k, text if k == "xe0001-Rtd" else v) for k, v in group) for group in packet.cp)
    payload = encode_packet(replace(packet, cp=cp))
    assert f"xe0001-Rtd={text}".encode() in payload
    assert refused(BOILER_TOPIC, payload).reason is (reason or RejectReason.OUT_OF_RANGE)


@pytest.mark.parametrize(
    ("offset", "reason"),
    [(timedelta(minutes=10), RejectReason.FUTURE_TIMESTAMP), (timedelta(hours=-2), RejectReason.STALE_TIMESTAMP)],
)
def test_a_meters_event_time_is_judged_as_a_devices(offset: timedelta, reason: RejectReason) -> None:
    assert refused(FGD_TOPIC, meter_json({"power": {"value": 1.0}}, t=NOW + offset)).reason is reason
    assert refused(BOILER_TOPIC, boiler_packet(t=NOW + offset)).reason is reason


def test_a_meter_packet_with_a_wrong_pw_over_mqtt() -> None:
    r = refused(BOILER_TOPIC, boiler_packet(pw="000000"))
    assert r.reason is RejectReason.HJ212_PASSWORD
    assert (r.stack, r.mn) == ("jy-power-1-s1", BOILER_MN)


def test_refusals_before_the_mn_is_known_carry_the_facilitys_stack() -> None:
    r = refused(FGD_TOPIC, b'{"mn": ')
    assert (r.reason, r.enterprise, r.stack) == (RejectReason.MALFORMED_JSON, "jy-power-1", "jy-power-1-s1")
    r = refused(FGD_TOPIC, meter_json({"power": {"value": 1.0}}, mn="NOTREGISTERED1"))
    assert (r.reason, r.stack) == (RejectReason.UNKNOWN_DEVICE, "jy-power-1-s1")
    r = refused("cems/v1/jy-power-1/no-such-level/reading", meter_json({"power": {"value": 1.0}}))
    assert (r.reason, r.stack) == (RejectReason.MN_TOPIC_MISMATCH, "no-such-level")  # as written


# -- through the gateway core ------------------------------------------------------------------
def _gateway(sink: Sink, now: list[datetime], **memory: int) -> Gateway:
    clock_now = now[0]
    dedup = DedupMemory(window_s=26 * 3600, now_us=epoch_us(clock_now), **memory)
    return Gateway(ReadingValidator(REG), sink, dedup, lambda: now[0], backfill=BackfillPlanner(delay_s=0))


def _no_answer(data: bytes) -> None:
    pass


def test_a_meters_repeat_is_a_duplicate_and_its_own_stream_from_the_stacks_device() -> None:
    sink, acks = Sink(), Acks()
    now = [datetime.now(UTC).replace(microsecond=0)]
    gw = _gateway(sink, now)
    t = now[0] - timedelta(minutes=5)
    stack_doc = meter_json({"so2": {"value": 20.0}}, mn=STACK_MN, t=t)
    gw.handle_mqtt(FGD_TOPIC, meter_json({"power": {"value": 1.0}}, t=t), acks("meter"), _no_answer)
    gw.handle_mqtt("cems/v1/jy-power-1/jy-power-1-s1/reading", stack_doc, acks("stack"), _no_answer)  # same time
    gw.handle_mqtt(FGD_TOPIC, meter_json({"power": {"value": 1.0}}, t=t), acks("again"), _no_answer)
    sink.confirm()
    assert [(r.mn, r.stack, r.facility) for r in sink.readings] == [
        (FGD_MN, "jy-power-1-s1", "jy-power-1-fgd1"),
        (STACK_MN, "jy-power-1-s1", None),
    ]
    assert sink.reasons() == ["duplicate"]
    assert (sink.letters[0].stack, sink.letters[0].mn) == ("jy-power-1-s1", FGD_MN)
    assert sorted(acks.done) == ["again", "meter", "stack"]


def test_a_meter_minting_event_times_is_refused_as_too_frequent() -> None:
    sink, acks = Sink(), Acks()
    now = [datetime.now(UTC).replace(microsecond=0)]
    gw = _gateway(sink, now, max_per_stream=3)
    for i in range(4):
        t = now[0] - timedelta(minutes=1, microseconds=i)
        gw.handle_mqtt(FGD_TOPIC, meter_json({"power": {"value": 1.0}}, t=t), acks(str(i)), _no_answer)
    assert len(sink.readings) == 3 and sink.reasons() == ["too_frequent"]
    assert "of MN 41900100019103JYE" in sink.letters[0].detail


def test_a_meters_hole_is_judged_by_its_own_interval_and_asked_for_on_its_own_topic() -> None:
    """The FGD's meter reports every 30 s, its stack every 60 s: a 60 s hole is a hole for the
    meter (over 1.5 x 30 s), not for the stack's device; the request goes to the facility's
    ``cmd`` topic."""
    sink, acks = Sink(), Acks()
    now = [datetime.now(UTC).replace(microsecond=0)]
    gw = _gateway(sink, now)
    t0 = now[0] - timedelta(minutes=10)
    stack_topic = "cems/v1/jy-power-1/jy-power-1-s1/reading"
    for step in (0, 60):
        t = t0 + timedelta(seconds=step)
        gw.handle_mqtt(FGD_TOPIC, meter_json({"power": {"value": 1.0}}, t=t), acks(f"m{step}"), _no_answer)
        gw.handle_mqtt(stack_topic, meter_json({"so2": {"value": 2.0}}, mn=STACK_MN, t=t), acks(f"s{step}"), _no_answer)
    requests = gw.backfill_requests()
    assert [topic for topic, _ in requests] == ["cems/v1/jy-power-1/jy-power-1-fgd1/cmd"]
    request = json.loads(requests[0][1])
    assert (request["mn"], request["kind"]) == (FGD_MN, "realtime")
    assert sink.letters == []


def test_an_hj212_meters_history_request_carries_its_pw() -> None:
    sink, acks = Sink(), Acks()
    now = [datetime.now(UTC).replace(microsecond=0)]
    gw = _gateway(sink, now)
    t0 = now[0] - timedelta(minutes=10)
    for minute in (0, 5):
        gw.handle_mqtt(BOILER_TOPIC, boiler_packet(t=t0 + timedelta(minutes=minute)), acks(str(minute)), _no_answer)
    [(topic, payload)] = gw.backfill_requests()
    assert topic == "cems/v1/jy-power-1/jy-power-1-boiler1/cmd"
    request = parse_packet(payload)
    assert (request.mn, request.pw, request.cn) == (BOILER_MN, "123456", "2011")


def test_every_meter_is_a_sender_of_its_own() -> None:
    senders = sender_index(REG)
    assert len(senders) == len(REG.device_index()) + len(METERS)
    fgd = senders[FGD_MN]
    assert (fgd.topic_level, fgd.stack.id, fgd.reporting_interval_s, fgd.parameters["power"]) == (
        "jy-power-1-fgd1",
        "jy-power-1-s1",
        30,
        Unit.MW,
    )
    device = senders[STACK_MN]
    assert (device.topic_level, device.facility_id, device.reporting_interval_s) == ("jy-power-1-s1", None, 60)


def test_the_device_guides_meter_examples_are_accepted_as_it_says() -> None:
    guide = (REPO_ROOT / "docs" / "device-guide.md").read_text()
    section = guide[guide.index("## 6. Electricity meters") : guide.index("## 7. Refusal reasons")]
    sample = ReadingValidator(load_registry())
    doc = section[section.index("```json\n") + 8 :].split("```", 1)[0]
    sent_at = datetime(2026, 11, 23, 0, 15, tzinfo=UTC)  # 08:15 China time
    reading, _ = sample.from_mqtt(FGD_TOPIC, doc.encode(), sent_at)
    assert (reading.facility, reading.stack) == ("jy-power-1-fgd1", "jy-power-1-s1")
    assert reading.values["power"].value == pytest.approx(1420.0)
    line = next(line for line in section.splitlines() if line.startswith("##0"))
    reading, packet = sample.from_mqtt(BOILER_TOPIC, line.encode() + b"\r\n", sent_at)
    assert packet is not None and packet.ack_requested and packet.cn == "2011"
    assert {k: v.value for k, v in reading.values.items()} == {"power": 3820.5, "current": 412.0, "energy": 18734562.5}
    assert reading.event_time == sent_at and reading.facility == "jy-power-1-boiler1"
