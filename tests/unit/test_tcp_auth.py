"""Who may send HJ 212 over TCP: a registered PW, and the device's allowed networks if any.

Over MQTT the enterprise account authenticates the sender; over TCP nothing does but the
packet's PW (and, optionally, where it comes from), so the rules differ by source.
"""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest

from contracts.errors import ConfigError
from contracts.hj212 import Hj212Packet, encode_packet
from contracts.hj212_data import PacketValue, data_packet
from contracts.reading import DataKind, RejectReason, Source
from contracts.registry import SAMPLE_REGISTRY, load_registry
from ingest.validation import ReadingValidator, Rejected, ValidationSettings, peer_address

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
SETTINGS = ValidationSettings(max_future_s=300, max_age_s=3600)
V = ReadingValidator(load_registry(), SETTINGS)
JSON_STACK = load_registry().stack_index()["jy-power-1-s2"][1]  # registered as json, no PW
KILN_STACK = load_registry().stack_index()["jy-cement-1-s1"][1]  # hj212, PW 123456
JSON_MN, KILN_MN = JSON_STACK.devices[0].mn, KILN_STACK.devices[0].mn
LOCAL = ip_address("127.0.0.1")


def packet(mn: str, pw: str) -> Hj212Packet:
    raw = encode_packet(
        data_packet(mn=mn, kind=DataKind.REALTIME, event_time=NOW, values={"so2": PacketValue(12.5)}, pw=pw)
    )
    return V.parse_hj212(raw)


def refusal(validator: ReadingValidator, pkt: Hj212Packet, peer: IPv4Address | IPv6Address | None) -> Rejected:
    with pytest.raises(Rejected) as info:
        validator.from_packet(pkt, NOW, Source.TCP_HJ212, peer=peer)
    return info.value


def registry_with_networks(tmp_path: Path, networks: list[str]) -> Path:
    """The sample registry with ``tcp_allowed_networks`` on the kiln's device."""
    text = SAMPLE_REGISTRY.read_text(encoding="utf-8")
    anchor = f"    - mn: {KILN_MN}\n"
    assert text.count(anchor) == 1
    listed = "".join(f"      - {n}\n" for n in networks)
    path = tmp_path / "registry.yaml"
    path.write_text(text.replace(anchor, f"{anchor}      tcp_allowed_networks:\n{listed}"), encoding="utf-8")
    return path


@pytest.mark.parametrize("pw", ["123456", "anything", ""])
def test_device_without_pw_is_refused_over_tcp_whatever_pw_it_sends(pw: str) -> None:
    assert JSON_STACK.devices[0].hj212_pw is None
    r = refusal(V, packet(JSON_MN, pw), LOCAL)
    assert r.reason is RejectReason.HJ212_PASSWORD
    assert (r.enterprise, r.stack, r.mn) == ("jy-power-1", "jy-power-1-s2", JSON_MN)
    assert "no HJ 212 PW in the registry" in r.detail


def test_device_without_pw_is_still_accepted_over_mqtt() -> None:
    """Over MQTT the enterprise's account authenticates: no PW needed, as before."""
    reading = V.from_packet(packet(JSON_MN, "anything"), NOW, Source.MQTT_HJ212)
    assert (reading.stack, reading.source) == ("jy-power-1-s2", Source.MQTT_HJ212)
    reading, _ = V.from_mqtt("cems/v1/jy-power-1/jy-power-1-s2/hj212", encode_packet(packet(JSON_MN, "x")), NOW)
    assert reading.values["so2"].value == 12.5


def test_device_with_pw_and_no_networks_may_send_from_anywhere() -> None:
    for peer in (LOCAL, ip_address("203.0.113.9"), ip_address("2001:db8::1"), None):
        reading = V.from_packet(packet(KILN_MN, "123456"), NOW, Source.TCP_HJ212, peer=peer)
        assert reading.source is Source.TCP_HJ212
    assert refusal(V, packet(KILN_MN, "654321"), LOCAL).reason is RejectReason.HJ212_PASSWORD


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        ("10.20.3.4", True),
        ("10.20.255.255", True),
        ("10.21.0.1", False),
        ("192.0.2.7", True),  # a /32
        ("192.0.2.8", False),
        ("2001:db8:7::5", True),
        ("2001:db8:8::5", False),
        ("127.0.0.1", False),
        (None, False),  # an address the listener could not tell: refused, not waved through
    ],
)
def test_allowed_networks(tmp_path: Path, peer: str | None, allowed: bool) -> None:
    path = registry_with_networks(tmp_path, ["10.20.0.0/16", "192.0.2.7/32", "2001:db8:7::/48"])
    validator = ReadingValidator(load_registry(path), SETTINGS)
    address = ip_address(peer) if peer is not None else None
    pkt = packet(KILN_MN, "123456")
    if allowed:
        assert validator.from_packet(pkt, NOW, Source.TCP_HJ212, peer=address).stack == "jy-cement-1-s1"
        return
    r = refusal(validator, pkt, address)
    assert r.reason is RejectReason.SOURCE_NOT_ALLOWED
    assert "10.20.0.0/16, 192.0.2.7/32, 2001:db8:7::/48" in r.detail
    assert r.mn == KILN_MN


def test_allowed_networks_do_not_apply_over_mqtt(tmp_path: Path) -> None:
    validator = ReadingValidator(load_registry(registry_with_networks(tmp_path, ["10.20.0.0/16"])), SETTINGS)
    assert validator.from_packet(packet(KILN_MN, "123456"), NOW, Source.MQTT_HJ212).stack == "jy-cement-1-s1"


def test_a_network_with_host_bits_is_a_registry_error_naming_the_device(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_registry(registry_with_networks(tmp_path, ["10.20.0.1/16"]))
    assert "tcp_allowed_networks" in str(info.value)
    assert "jy-cement-1-s1" in str(info.value)


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("127.0.0.1:40000", "127.0.0.1"),
        ("[::1]:40000", "::1"),
        ("[2001:db8::5]:9212", "2001:db8::5"),
        ("[::ffff:10.1.2.3]:9212", "10.1.2.3"),  # IPv4 through a dual-stack socket
        ("not-an-address:1", None),
        ("", None),
    ],
)
def test_peer_address(peer: str, address: str | None) -> None:
    assert peer_address(peer) == (ip_address(address) if address else None)
