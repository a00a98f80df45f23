"""The gateway's MQTT side without a broker: shard filters and the broker's $SYS counters."""

from __future__ import annotations

import logging

import pytest

from ingest import metrics
from ingest.mqtt_source import (
    SYS_DROPPED,
    SYS_STORE_BYTES,
    SYS_STORE_MESSAGES,
    BrokerWatch,
    default_client_id,
    shard_of,
    stale_filters,
    subscriptions,
)

ENTERPRISES = [f"jy-ent-{i}" for i in range(40)]


def test_one_shard_subscribes_to_every_device_channel() -> None:
    assert subscriptions(ENTERPRISES) == [("cems/v1/+/+/reading", 1), ("cems/v1/+/+/hj212", 1)]


def test_shards_split_the_enterprises_without_overlap() -> None:
    shards = [subscriptions(ENTERPRISES, shard, 3) for shard in range(3)]
    covered = [f.split("/")[2] for filters in shards for f, _ in filters if f.endswith("/reading")]
    assert sorted(covered) == sorted(ENTERPRISES)  # each exactly once
    assert all(shards)  # 40 enterprises spread over every shard
    for shard, filters in enumerate(shards):
        assert all(shard_of(f.split("/")[2], 3) == shard for f, _ in filters)
    with pytest.raises(ValueError, match=r"shard 3 is not in 0\.\.2"):
        subscriptions(ENTERPRISES, 3, 3)


def test_broker_counters_become_metrics_with_a_warning_at_half_and_an_error_on_drops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = BrokerWatch(queue_limit_bytes=1000)
    with caplog.at_level(logging.INFO, logger="cems.gateway.mqtt"):
        watch.update(SYS_STORE_MESSAGES, b"7")
        watch.update(SYS_STORE_BYTES, b"400")
        assert not caplog.records
        watch.update(SYS_STORE_BYTES, b"600")
        watch.update(SYS_STORE_BYTES, b"700")  # warned once, not at every update
        assert [r.levelname for r in caplog.records] == ["WARNING"]
        watch.update(SYS_STORE_BYTES, b"100")
        assert caplog.records[-1].levelname == "INFO"
        watch.update(SYS_DROPPED, b"3")  # the first value seen: the broker's count since it started
        watch.update(SYS_DROPPED, b"5")
        assert caplog.records[-1].levelname == "ERROR" and caplog.records[-1].__dict__["dropped"] == 2
        watch.update(SYS_DROPPED, b"not a number")  # ignored
    assert metrics.BROKER_STORED_MESSAGES._value.get() == 7
    assert metrics.BROKER_STORED_BYTES._value.get() == 100
    assert metrics.BROKER_DROPPED._value.get() == 5


def test_after_resharding_a_resumed_session_drops_what_is_no_longer_its_own() -> None:
    ours = {f for f, _ in subscriptions(ENTERPRISES, 1, 3)}
    stale = stale_filters(ENTERPRISES, 1, 3)
    assert "cems/v1/+/+/reading" in stale and "cems/v1/+/+/hj212" in stale  # left from one shard
    assert not ours & set(stale)
    assert ours | set(stale) == {f for n in range(3) for f, _ in subscriptions(ENTERPRISES, n, 3)} | {
        "cems/v1/+/+/reading",
        "cems/v1/+/+/hj212",
    }
    assert not {f for f, _ in subscriptions(ENTERPRISES)} & set(stale_filters(ENTERPRISES))


def test_the_default_client_id_is_stable_per_shard_and_needs_the_platform_password() -> None:
    a = default_client_id(0, 2, "secret-1")
    assert a == default_client_id(0, 2, "secret-1") and a.startswith("cems-gateway-0-of-2-")
    assert a != default_client_id(1, 2, "secret-1")
    assert a != default_client_id(0, 2, "secret-2")  # an account without the password cannot guess it
