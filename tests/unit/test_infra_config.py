"""Rendered server configuration (pure; no server needed)."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import pytest

from cems.accounts import mqtt_accounts
from cems.infra.kafka import KafkaServer
from cems.infra.mosquitto import MosquittoServer, MqttAccount, _write_private, budget_for, queue_budget, render_config
from cems.infra.settings import InfraSettings
from contracts.registry import SAMPLE_REGISTRY, load_registry

MIB = 1024 * 1024


def _conf(settings: InfraSettings, tmp_path: Path) -> list[str]:
    return render_config(
        listener="18830 127.0.0.1",
        data_dir=str(tmp_path / "data"),
        plugin="/usr/lib/mosquitto_dynamic_security.so",
        dynsec_file=str(tmp_path / "dynamic-security.json"),
        settings=settings,
        budget=budget_for(settings, mqtt_accounts(SAMPLE_REGISTRY)),
    ).splitlines()


def test_mosquitto_config_is_loopback_persistent_closed_and_uses_dynamic_security(tmp_path: Path) -> None:
    lines = _conf(InfraSettings(state_dir=tmp_path), tmp_path)
    assert "listener 18830 127.0.0.1" in lines
    assert "allow_anonymous false" in lines
    assert "per_listener_settings false" in lines
    assert "plugin /usr/lib/mosquitto_dynamic_security.so" in lines
    assert f"plugin_opt_config_file {tmp_path / 'dynamic-security.json'}" in lines
    assert not any(line.startswith(("password_file", "acl_file")) for line in lines)
    assert "persistence true" in lines
    assert f"persistence_location {tmp_path / 'data'}/" in lines


def test_mosquitto_limits_come_from_the_settings(tmp_path: Path) -> None:
    lines = _conf(InfraSettings(state_dir=tmp_path), tmp_path)
    for line in (
        "message_size_limit 262144",
        "max_queued_messages 0",
        f"max_queued_bytes {256 * MIB}",
        "autosave_interval 5",
        "sys_interval 1",
        "max_inflight_messages 1000",
        "persistent_client_expiration 7d",
    ):
        assert line in lines


def test_mosquitto_limits_can_be_set_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEMS_MQTT_MESSAGE_SIZE_LIMIT_BYTES", "65536")
    monkeypatch.setenv("CEMS_MQTT_OUTAGE_BUDGET_S", "7200")
    monkeypatch.setenv("CEMS_MQTT_QUEUE_FLOOR_BYTES", "0")
    monkeypatch.setenv("CEMS_MQTT_AUTOSAVE_INTERVAL_S", "2")
    settings = InfraSettings(state_dir=tmp_path)
    lines = _conf(settings, tmp_path)
    assert "message_size_limit 65536" in lines
    assert "autosave_interval 2" in lines
    # the sample registry's 2,280 readings an hour, for two hours, 1,024 bytes each, times 2
    assert f"max_queued_bytes {2280 * 2 * 1024 * 2}" in lines


def test_the_sample_registry_reports_2280_readings_an_hour() -> None:
    """The figure the queue budget's docstring states: 24 stacks and 14 meters, one reading a minute each."""
    registry = load_registry(SAMPLE_REGISTRY)
    assert len(registry.stacks()) == 24
    assert len(registry.facilities()) == 14
    budget = budget_for(InfraSettings(), mqtt_accounts(SAMPLE_REGISTRY))
    assert budget.readings_per_hour == 2280
    assert budget.max_queued_bytes == 256 * MIB  # the floor: 2,280 x 1,024 x 2 is 4.7 MB
    assert budget.readings_held == 262_144


@pytest.mark.parametrize(
    ("intervals_s", "budget_s", "readings_per_hour", "max_queued_bytes"),
    [
        ([], 3600, 0, 256 * MIB),  # no stacks: the floor
        ([60] * 24, 3600, 1440, 256 * MIB),  # the sample registry: 2,949,120 bytes sized, the floor applies
        ([60] * 10_000, 3600, 600_000, 600_000 * 1024 * 2),  # 10,000 stacks a minute: 1.14 GiB
        ([60] * 10_000, 1800, 600_000, 300_000 * 1024 * 2),  # half the outage, half the bytes
        ([1] * 10_000, 3600, 36_000_000, 36_000_000 * 1024 * 2),  # a reading a second
        ([60, 30, 3600] * 1000, 3600, 181_000, 181_000 * 1024 * 2),  # mixed intervals add up
    ],
)
def test_queue_budget(intervals_s: list[int], budget_s: int, readings_per_hour: float, max_queued_bytes: int) -> None:
    budget = queue_budget(
        intervals_s, outage_budget_s=budget_s, bytes_per_reading=1024, safety_factor=2, floor_bytes=256 * MIB
    )
    assert budget.readings_per_hour == pytest.approx(readings_per_hour)
    assert budget.max_queued_bytes == max_queued_bytes
    assert budget.readings_held == max_queued_bytes // 1024
    if readings_per_hour:
        assert budget.hours_held_at_full_load >= 2 * budget_s / 3600
    else:
        assert budget.hours_held_at_full_load == math.inf


def test_queue_budget_holds_the_issues_150000_readings_of_600_bytes() -> None:
    budget = budget_for(InfraSettings(), mqtt_accounts(SAMPLE_REGISTRY))
    assert budget.max_queued_bytes > 150_000 * 600


def test_queue_budget_refuses_a_nonpositive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        queue_budget([60, 0], outage_budget_s=3600, bytes_per_reading=1024, safety_factor=2, floor_bytes=0)


def test_accounts_carry_their_stacks_and_meters_reporting_intervals() -> None:
    accounts = {a.username: a for a in mqtt_accounts(SAMPLE_REGISTRY)}
    registry = load_registry(SAMPLE_REGISTRY)
    assert set(accounts) == {e.id for e in registry.enterprises}
    for enterprise in registry.enterprises:
        stacks = tuple(s.reporting_interval_s for s in enterprise.stacks)
        meters = tuple(f.meter.reporting_interval_s for f in enterprise.facilities)
        assert accounts[enterprise.id].reporting_intervals_s == stacks + meters
    assert sum(len(a.reporting_intervals_s) for a in accounts.values()) == 24 + 14


def test_generated_config_is_the_same_for_the_same_registry_and_secrets(tmp_path: Path) -> None:
    settings = InfraSettings(state_dir=tmp_path, mqtt_port=18830)
    server = MosquittoServer(settings, mqtt_accounts(SAMPLE_REGISTRY))
    server.home.mkdir(parents=True)
    first = server.render()
    server.dynsec_path.write_text(first["dynamic-security.json"])
    again = MosquittoServer(settings, mqtt_accounts(SAMPLE_REGISTRY)).render()
    assert again == first
    assert server.fingerprint(again) == server.fingerprint(first)
    fewer = MosquittoServer(settings, mqtt_accounts(SAMPLE_REGISTRY)[1:]).render()
    assert server.fingerprint(fewer) != server.fingerprint(first)
    other_limits = MosquittoServer(
        settings.model_copy(update={"mqtt_sys_interval_s": 2}), [MqttAccount("a1", "enterprise")]
    )
    assert "sys_interval 2" in other_limits.render()["mosquitto.conf"]


def test_private_files_are_created_0600_whatever_the_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dynsec file (password hashes) is never readable by others, not even as its temporary
    file: with the umask at 0 and every chmod a no-op, what is written is still 0600."""
    path = tmp_path / "dynamic-security.json"
    (tmp_path / "dynamic-security.json.tmp").write_text("left over by a crash")
    (tmp_path / "dynamic-security.json.tmp").chmod(0o644)
    for name in ("chmod", "fchmod"):
        monkeypatch.setattr(os, name, lambda *args, **kwargs: None)
    umask = os.umask(0)
    try:
        _write_private(path, '{"clients": []}')
    finally:
        os.umask(umask)
    assert path.read_text() == '{"clients": []}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not (tmp_path / "dynamic-security.json.tmp").exists()


def test_kafka_properties_kraft_single_node_without_auto_topics(tmp_path: Path) -> None:
    settings = InfraSettings(state_dir=tmp_path, kafka_port=19092, kafka_controller_port=19093)
    props = dict(line.split("=", 1) for line in KafkaServer(settings).server_properties().splitlines() if line)
    assert props["process.roles"] == "broker,controller"
    assert props["auto.create.topics.enable"] == "false"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")
