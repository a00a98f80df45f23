"""HJ 212-2017 codec: reference vectors, hand-built packets, and properties."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.hj212 import (
    CHINA_TZ,
    Hj212Error,
    Hj212Packet,
    Hj212Reason,
    crc16,
    crc16_bitwise,
    data_answer,
    encode_packet,
    parse_packet,
    split_stream,
)

REFERENCE_SEGMENT = (
    b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&"
)


def frame(segment: bytes, crc: str | None = None, length: int | None = None) -> bytes:
    crc_text = crc if crc is not None else f"{crc16(segment):04X}"
    return b"##%04d" % (len(segment) if length is None else length) + segment + crc_text.encode() + b"\r\n"


def test_reference_crc_is_1c80_not_modbus() -> None:
    assert crc16(REFERENCE_SEGMENT) == 0x1C80
    assert crc16_bitwise(REFERENCE_SEGMENT) == 0x1C80


@given(st.binary(max_size=500))
def test_table_crc_equals_the_bitwise_definition(data: bytes) -> None:
    assert crc16(data) == crc16_bitwise(data)


def test_reference_packet_parses_with_upper_and_lower_case_crc() -> None:
    for crc in ("1C80", "1c80"):
        packet = parse_packet(frame(REFERENCE_SEGMENT, crc))
        assert packet.qn == "20160801085857223"
        assert packet.st == "32"
        assert packet.cn == "1062"
        assert packet.pw == "100000"
        assert packet.mn == "010000A8900016F000169DC0"
        assert packet.flag == 5
        assert packet.ack_requested
        assert packet.cp == ((("RtdInterval", "30"),),)


def test_reference_packet_length_is_0101() -> None:
    assert encode_packet(parse_packet(frame(REFERENCE_SEGMENT)))[:6] == b"##0101"


def test_realtime_packet_fields_and_data_time() -> None:
    seg = (
        b"QN=20261123081500123;ST=32;CN=2011;PW=123456;MN=41900100010101JYC;Flag=4;"
        b"CP=&&DataTime=20261123081500;a21026-Rtd=30.5,a21026-ZsRtd=37.5,a21026-Flag=N;a19001-Rtd=9,a19001-Flag=N&&"
    )
    packet = parse_packet(frame(seg))
    assert packet.cn == "2011"
    assert not packet.ack_requested
    assert packet.data_time() == datetime(2026, 11, 23, 8, 15, 0, tzinfo=CHINA_TZ)
    assert packet.qn_time() == datetime(2026, 11, 23, 8, 15, 0, 123000, tzinfo=CHINA_TZ)
    items = packet.cp_items()
    assert items["a21026-Rtd"] == "30.5"
    assert items["a21026-ZsRtd"] == "37.5"
    assert items["a19001-Rtd"] == "9"


def test_split_packet_numbers() -> None:
    seg = b"QN=20261123081500123;ST=32;CN=2051;PW=123456;MN=M1;Flag=7;PNUM=2;PNO=1;CP=&&DataTime=20261123081500&&"
    packet = parse_packet(frame(seg))
    assert (packet.pnum, packet.pno, packet.is_split, packet.ack_requested) == (2, 1, True, True)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", Hj212Reason.FRAMING),
        (b"#0101abc\r\n", Hj212Reason.FRAMING),
        (frame(REFERENCE_SEGMENT)[:-2], Hj212Reason.FRAMING),
        (b"##01x1" + REFERENCE_SEGMENT + b"1C80\r\n", Hj212Reason.FRAMING),
        (frame(REFERENCE_SEGMENT, crc="1C8G"), Hj212Reason.FRAMING),
        (frame(REFERENCE_SEGMENT, length=100), Hj212Reason.LENGTH),
        (frame(REFERENCE_SEGMENT, crc="0759"), Hj212Reason.CRC),  # the MODBUS CRC is wrong here
        (frame(b"QN=1;CN=2011;MN=M;CP=&&&&"), Hj212Reason.FIELD),  # QN not 17 digits
        (frame(b"CN=2011;PW=1;CP=&&&&"), Hj212Reason.FIELD),  # no MN
        (frame(b"CN=2011;MN=M;XX=1;CP=&&&&"), Hj212Reason.FIELD),  # unknown header field
        (frame(b"CN=2011;MN=M;CP=&&a21026-Rtd&&"), Hj212Reason.FIELD),  # item without '='
        (frame(b"CN=2011;MN=M"), Hj212Reason.FIELD),  # no CP
        (frame("CN=2011;MN=\u00e9;CP=&&&&".encode()), Hj212Reason.ENCODING),
    ],
)
def test_refusals_carry_their_reason(raw: bytes, reason: Hj212Reason) -> None:
    with pytest.raises(Hj212Error) as info:
        parse_packet(raw)
    assert info.value.reason is reason


def test_data_answer_echoes_qn_and_mn() -> None:
    request = parse_packet(frame(REFERENCE_SEGMENT))
    answer = data_answer(request)
    assert encode_packet(answer) == frame(
        b"QN=20160801085857223;ST=91;CN=9014;PW=100000;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&"
    )


def test_split_stream_keeps_remainder() -> None:
    one = frame(REFERENCE_SEGMENT)
    packets, rest = split_stream(one + one + one[:10])
    assert packets == [one, one]
    assert rest == one[:10]


# -- properties ---------------------------------------------------------------------------------
_value = st.text(alphabet="0123456789abcdefXYZ.-_ ", min_size=0, max_size=12)
_key = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_\-]{0,10}\Z")
_group = st.lists(st.tuples(_key, _value), min_size=1, max_size=4).map(tuple)
_qn = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda d: d.strftime("%Y%m%d%H%M%S") + f"{d.microsecond // 1000:03d}"
)
_small = st.integers(min_value=0, max_value=9999)


@st.composite
def packets(draw: st.DrawFn) -> Hj212Packet:
    pnum = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=99)))
    pno = None if pnum is None else draw(st.integers(min_value=1, max_value=pnum))
    return Hj212Packet(
        cn=draw(st.from_regex(r"\A[0-9]{4}\Z")),
        mn=draw(st.from_regex(r"\A[0-9A-Za-z]{1,24}\Z")),
        qn=draw(st.one_of(st.none(), _qn)),
        st=draw(st.one_of(st.none(), st.sampled_from(["31", "32", "91"]))),
        pw=draw(st.one_of(st.none(), st.from_regex(r"\A[0-9A-Za-z]{1,10}\Z"))),
        flag=draw(st.one_of(st.none(), _small)),
        pnum=pnum,
        pno=pno,
        cp=tuple(draw(st.lists(_group, max_size=5))),
    )


@given(packets())
@settings(max_examples=300)
def test_parse_of_encode_is_identity(packet: Hj212Packet) -> None:
    assert parse_packet(encode_packet(packet)) == packet


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_arbitrary_bytes_only_ever_raise_a_typed_rejection(raw: bytes) -> None:
    try:
        parse_packet(raw)
    except Hj212Error as exc:
        assert exc.reason in Hj212Reason
        assert exc.detail


@given(packets(), st.data())
@settings(max_examples=200)
def test_any_single_byte_change_in_the_data_segment_is_caught(packet: Hj212Packet, data: st.DataObject) -> None:
    raw = bytearray(encode_packet(packet))
    index = data.draw(st.integers(min_value=6, max_value=len(raw) - 7))
    new = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != raw[index]))
    raw[index] = new
    with pytest.raises(Hj212Error) as info:
        parse_packet(bytes(raw))
    assert info.value.reason is Hj212Reason.CRC


@given(packets(), st.integers(min_value=-3, max_value=3).filter(bool))
def test_length_mismatch_is_caught(packet: Hj212Packet, delta: int) -> None:
    raw = encode_packet(packet)
    declared = int(raw[2:6]) + delta
    if not 0 <= declared <= 9999:
        return
    tampered = b"##%04d" % declared + raw[6:]
    with pytest.raises(Hj212Error) as info:
        parse_packet(tampered)
    assert info.value.reason is Hj212Reason.LENGTH
