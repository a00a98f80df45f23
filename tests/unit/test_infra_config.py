"""Rendered server configuration (pure; no server needed)."""

from __future__ import annotations

from pathlib import Path

from cems.infra.kafka import KafkaServer
from cems.infra.mosquitto import render_acl, render_config
from cems.infra.settings import InfraSettings


def test_mosquitto_config_is_loopback_persistent_and_closed(tmp_path: Path) -> None:
    conf = render_config(host="127.0.0.1", port=18830, home=tmp_path)
    lines = conf.splitlines()
    assert "listener 18830 127.0.0.1" in lines
    assert "allow_anonymous false" in lines
    assert "persistence true" in lines
    assert f"password_file {tmp_path / 'passwd'}" in lines
    assert f"acl_file {tmp_path / 'acl'}" in lines


def test_acl_confines_enterprises_to_their_prefix() -> None:
    acl = render_acl("platform").splitlines()
    assert "pattern write cems/v1/%u/#" in acl
    assert "topic readwrite cems/v1/#" in acl
    # the platform's unrestricted line belongs to the platform user block only
    assert acl.index("user platform") < acl.index("topic readwrite cems/v1/#")
    assert not any(
        line.startswith("topic") and "write" in line for line in acl[acl.index("pattern write cems/v1/%u/#") :]
    )


def test_kafka_properties_kraft_single_node_without_auto_topics(tmp_path: Path) -> None:
    settings = InfraSettings(state_dir=tmp_path, kafka_port=19092, kafka_controller_port=19093)
    props = dict(line.split("=", 1) for line in KafkaServer(settings).server_properties().splitlines() if line)
    assert props["process.roles"] == "broker,controller"
    assert props["auto.create.topics.enable"] == "false"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")
