"""Gateway validation and normalisation, with hand-computed expectations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from contracts.hj212 import encode_packet
from contracts.hj212_data import PacketValue, data_packet
from contracts.reading import DataFlag, DataKind, RejectReason, Source
from contracts.registry import load_registry
from ingest.validation import ReadingValidator, Rejected, ValidationSettings, parse_topic

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
REG = load_registry()
V = ReadingValidator(REG, ValidationSettings(max_future_s=300, max_age_s=3600))
# jy-power-1-s1: coal power, JSON device; jy-cement-1-s1: cement kiln tail, NH3 in ppm
POWER_MN = REG.stack_index()["jy-power-1-s1"][1].devices[0].mn
KILN = REG.stack_index()["jy-cement-1-s1"][1]
KILN_MN = KILN.devices[0].mn
TOPIC = "cems/v1/jy-power-1/jy-power-1-s1/reading"


def js(**doc: object) -> bytes:
    base: dict[str, object] = {"mn": POWER_MN, "time": NOW.isoformat(), "values": {"so2": {"value": 30.0}}}
    base.update(doc)
    return json.dumps(base).encode()


def rejected(topic: str, payload: bytes) -> Rejected:
    with pytest.raises(Rejected) as info:
        V.from_mqtt(topic, payload, NOW)
    return info.value


def test_valid_json_reading() -> None:
    reading, packet = V.from_mqtt(
        TOPIC,
        js(values={"so2": {"value": 30.0, "flag": "N"}, "o2": {"value": 9.0}, "flow": {"value": 3600, "unit": "m3/h"}}),
        NOW,
    )
    assert packet is None
    assert (reading.enterprise, reading.stack, reading.mn, reading.source) == (
        "jy-power-1",
        "jy-power-1-s1",
        POWER_MN,
        Source.MQTT_JSON,
    )
    assert reading.values["so2"].value == 30.0
    assert reading.values["flow"].value == pytest.approx(1.0)  # 3600 m3/h = 1 m3/s
    assert reading.kind is DataKind.REALTIME


def test_nox_as_no2_from_no_and_no2() -> None:
    # NO 20 mg/m3 as NO2 = 20 * 46/30 = 30.67; plus NO2 5 -> 35.67
    reading, _ = V.from_mqtt(TOPIC, js(values={"no": {"value": 20}, "no2": {"value": 5, "flag": "C"}}), NOW)
    assert reading.values["nox"].value == pytest.approx(35.6667, abs=1e-4)
    assert reading.values["nox"].flag is DataFlag.CALIBRATION
    only_no, _ = V.from_mqtt(TOPIC, js(values={"no": {"value": 20}, "no2": {"value": 0}}), NOW)
    assert only_no.values["nox"].value == pytest.approx(30.67, abs=0.01)


def test_ppm_converted_with_molar_mass() -> None:
    # NH3 3 ppm = 17 / 22.4 * 3 = 2.277 mg/m3 (registry declares ppm for this stack)
    packet = data_packet(
        mn=KILN_MN,
        kind=DataKind.REALTIME,
        event_time=NOW,
        values={"nh3": PacketValue(3.0)},
        pw=KILN.devices[0].hj212_pw or "123456",
    )
    reading, _ = V.from_mqtt("cems/v1/jy-cement-1/jy-cement-1-s1/hj212", encode_packet(packet), NOW)
    assert reading.values["nh3"].value == pytest.approx(2.2768, abs=1e-4)
    assert reading.source is Source.MQTT_HJ212


def test_hj212_minute_packet_with_legacy_codes_and_zs() -> None:
    packet = data_packet(
        mn=KILN_MN,
        kind=DataKind.MINUTE,
        event_time=NOW - timedelta(minutes=1),
        legacy_codes=True,
        values={"so2": PacketValue(30, zs=37.5, minimum=29, maximum=31), "o2": PacketValue(9)},
        pw=KILN.devices[0].hj212_pw or "123456",
    )
    reading, parsed = V.from_mqtt("cems/v1/jy-cement-1/jy-cement-1-s1/hj212", encode_packet(packet), NOW)
    assert parsed is not None and parsed.cp_items()["02-Avg"] == "30"
    assert reading.kind is DataKind.MINUTE
    so2 = reading.values["so2"]
    assert (so2.value, so2.zs, so2.minimum, so2.maximum) == (30, 37.5, 29, 31)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (TOPIC, b"{not json", RejectReason.MALFORMED_JSON),
        (TOPIC, js(values={"so2": {"value": "high"}}), RejectReason.NON_NUMERIC),
        (TOPIC, js(values={"so2": {"value": float("nan")}}), RejectReason.NON_FINITE),
        (TOPIC, js(values={"so2": {"value": float("inf")}}), RejectReason.NON_FINITE),
        (TOPIC, js(values={"so2": {"value": -5}}), RejectReason.OUT_OF_RANGE),
        (TOPIC, js(values={"o2": {"value": 30}}), RejectReason.OUT_OF_RANGE),
        (TOPIC, js(values={"mercury": {"value": 1}}), RejectReason.UNKNOWN_PARAMETER),
        (TOPIC, js(values={"pm": {"value": 1, "unit": "ppm"}}), RejectReason.BAD_UNIT),
        (TOPIC, js(values={"so2": {"value": 1, "unit": "furlongs"}}), RejectReason.SCHEMA),
        (TOPIC, js(mn="NOT-REGISTERED"), RejectReason.UNKNOWN_DEVICE),
        (TOPIC, js(mn=KILN_MN), RejectReason.MN_TOPIC_MISMATCH),
        ("cems/v1/jy-power-1/jy-power-1-s2/reading", js(), RejectReason.MN_TOPIC_MISMATCH),
        (TOPIC, js(time=(NOW + timedelta(minutes=6)).isoformat()), RejectReason.FUTURE_TIMESTAMP),
        (TOPIC, js(time=(NOW - timedelta(hours=2)).isoformat()), RejectReason.STALE_TIMESTAMP),
        (TOPIC, js(time="2026-11-23T08:00:00"), RejectReason.SCHEMA),  # no timezone
        ("cems/v1/jy-power-1/reading", js(), RejectReason.TOPIC),
        ("cems/v1/jy-cement-1/jy-cement-1-s1/hj212", b"##0010garbage!!1234\r\n", RejectReason.HJ212_LENGTH),
    ],
)
def test_refusals(topic: str, payload: bytes, reason: RejectReason) -> None:
    assert rejected(topic, payload).reason is reason


def test_refusal_names_where_it_came_from() -> None:
    r = rejected(TOPIC, js(mn=KILN_MN))
    assert (r.enterprise, r.stack, r.mn) == ("jy-power-1", "jy-power-1-s1", KILN_MN)
    assert "belongs to jy-cement-1/jy-cement-1-s1" in r.detail


def test_hj212_crc_and_password() -> None:
    pw = KILN.devices[0].hj212_pw or "123456"
    good = encode_packet(
        data_packet(mn=KILN_MN, kind=DataKind.REALTIME, event_time=NOW, values={"so2": PacketValue(1)}, pw=pw)
    )
    bad_crc = good[:-6] + (b"0000" if good[-6:-2] != b"0000" else b"0001") + b"\r\n"
    assert rejected("cems/v1/jy-cement-1/jy-cement-1-s1/hj212", bad_crc).reason is RejectReason.HJ212_CRC
    wrong_pw = encode_packet(
        data_packet(mn=KILN_MN, kind=DataKind.REALTIME, event_time=NOW, values={"so2": PacketValue(1)}, pw="999999")
    )
    assert rejected("cems/v1/jy-cement-1/jy-cement-1-s1/hj212", wrong_pw).reason is RejectReason.HJ212_PASSWORD


def test_topic_grammar() -> None:
    a = parse_topic("cems/v1/jy-coke-1/jy-coke-1-s2/hj212")
    assert (a.enterprise, a.stack, a.channel) == ("jy-coke-1", "jy-coke-1-s2", "hj212")
