"""The sink's failure policy: what an InfluxDB error means (retry, refuse the points, stop),
Retry-After, the messages that name the setting, and finding the refused points of a batch."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import urllib3
from hypothesis import given
from hypothesis import strategies as st
from influxdb_client.rest import ApiException

from streams.influx_errors import (
    MAX_RETRY_AFTER_S,
    Verdict,
    WriteFailure,
    classify,
    classify_status,
    fatal_message,
    find_refused,
    retry_after_s,
)

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
#: what urllib3's errors name (made, never connected)
CONN = urllib3.connection.HTTPConnection("127.0.0.1", 8086)
POOL = urllib3.HTTPConnectionPool("127.0.0.1", 8086)


def api_error(status: int, message: str, headers: dict[str, str] | None = None) -> ApiException:
    """What the InfluxDB client raises for an HTTP error answer (a real urllib3 response)."""
    body = json.dumps({"code": "x", "message": message}).encode()
    return ApiException(http_resp=urllib3.HTTPResponse(body=body, status=status, headers=headers or {}))


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (400, Verdict.REFUSED),  # line protocol InfluxDB cannot parse
        (413, Verdict.REFUSED),  # too large: halving helps
        (422, Verdict.REFUSED),  # field type conflict, beyond retention
        (401, Verdict.FATAL),
        (403, Verdict.FATAL),
        (404, Verdict.FATAL),
        (405, Verdict.FATAL),  # not InfluxDB's write endpoint: the URL is wrong
        (408, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (502, Verdict.RETRY),
        (503, Verdict.RETRY),
        (504, Verdict.RETRY),
    ],
)
def test_http_status_verdicts(status: int, verdict: Verdict) -> None:
    failure = classify(api_error(status, "said"), NOW)
    assert (failure.verdict, failure.cause, failure.status) == (verdict, f"http_{status}", status)
    assert failure.detail == "said"
    assert classify_status(status, "said", None, NOW).verdict is verdict


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (urllib3.exceptions.NewConnectionError(CONN, "Failed to establish a new connection: refused"), "connection"),
        (urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")), "connection"),
        (ConnectionRefusedError(111, "Connection refused"), "connection"),
        (urllib3.exceptions.ReadTimeoutError(POOL, "/api/v2/write", "Read timed out."), "timeout"),
        (urllib3.exceptions.ConnectTimeoutError(None, "connect timed out"), "timeout"),
        (TimeoutError("timed out"), "timeout"),
        (ApiException(status=0, reason="SSLError\nhandshake"), "client"),
        (RuntimeError("nobody foresaw this"), "other"),
    ],
)
def test_transport_errors_are_tried_again(exc: Exception, cause: str) -> None:
    failure = classify(exc, NOW)
    assert (failure.verdict, failure.cause) == (Verdict.RETRY, cause)
    assert "\n" not in failure.detail


def test_retry_after_is_read_from_a_429_and_a_503() -> None:
    assert classify(api_error(429, "slow down", {"Retry-After": "7"}), NOW).retry_after_s == 7.0
    later = format_datetime(NOW + timedelta(seconds=42), usegmt=True)
    assert classify(api_error(503, "busy", {"Retry-After": later}), NOW).retry_after_s == 42.0
    assert classify(api_error(503, "busy"), NOW).retry_after_s is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("999999", MAX_RETRY_AFTER_S),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),  # already past
        ("soon", None),
        ("", None),
        ("nan", None),
        (None, None),
    ],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert retry_after_s(header, NOW) == seconds


def test_partial_write_says_how_many_points_were_dropped() -> None:
    detail = 'partial write: field type conflict: input field "f" on measurement "m" is type float dropped=2'
    assert classify(api_error(422, detail), NOW).dropped == 2
    assert classify(api_error(400, "unable to parse 'x': invalid field format"), NOW).dropped is None


@pytest.mark.parametrize(
    ("status", "message", "names", "not_names"),
    [
        (401, "unauthorized access", ["CEMS_INFLUXDB_TOKEN"], ["CEMS_INFLUXDB_BUCKET"]),
        (403, "insufficient permissions for write", ["CEMS_INFLUXDB_TOKEN", "'metrics'", "'acme'"], []),
        (404, 'bucket "metrics" not found', ["CEMS_INFLUXDB_BUCKET", "CEMS_INFLUXDB_ORG"], ["TOKEN"]),
        (404, 'organization name "acme" not found', ["CEMS_INFLUXDB_ORG"], ["CEMS_INFLUXDB_BUCKET"]),
        (405, "method not allowed", ["CEMS_INFLUXDB_URL"], []),
    ],
)
def test_a_fatal_refusal_names_the_setting(status: int, message: str, names: list[str], not_names: list[str]) -> None:
    failure = classify_status(status, message, None, NOW)
    text = fatal_message(failure, url="http://influx:8086", org="acme", bucket="metrics")
    assert f"answered {status}: {message}" in text
    assert "http://influx:8086" in text
    for name in names:
        assert name in text
    for name in not_names:
        assert name not in text


class FakeInflux:
    """InfluxDB's answers to a write of items some of which it refuses: 422 stores the
    others ("partial write ... dropped=N"), 400 stores none of them."""

    def __init__(self, bad: set[int], status: int = 422) -> None:
        self.bad = bad
        self.status = status
        self.stored: list[int] = []
        self.writes = 0

    def write(self, items: Sequence[int]) -> WriteFailure | None:
        self.writes += 1
        dropped = [i for i in items if i in self.bad]
        if self.status == 422 or not dropped:
            self.stored += [i for i in items if i not in self.bad]
        if not dropped:
            return None
        if self.status == 422:
            return classify_status(422, f"partial write: field type conflict dropped={len(dropped)}", None, NOW)
        return classify_status(self.status, "unable to parse", None, NOW)


@pytest.mark.parametrize("status", [400, 422])
def test_one_poison_point_in_a_batch_is_found_and_the_rest_stored(status: int) -> None:
    influx = FakeInflux({1234}, status)
    refused = find_refused(list(range(5000)), influx.write)
    assert [item for item, _ in refused] == [1234]
    assert refused[0][1].status == status
    assert set(influx.stored) == set(range(5000)) - {1234}
    assert influx.writes <= 2 * 13 + 1  # halving: two writes a level, log2(5000) < 13 levels


def test_a_batch_that_is_refused_whole_is_not_halved() -> None:
    influx = FakeInflux(set(range(100)))
    refused = find_refused(list(range(100)), influx.write)
    assert [item for item, _ in refused] == list(range(100))
    assert influx.writes == 1  # "dropped=100" of 100 points


def test_a_batch_without_poison_is_one_write() -> None:
    influx = FakeInflux(set())
    assert find_refused(list(range(10)), influx.write) == []
    assert (influx.writes, influx.stored) == (1, list(range(10)))
    assert find_refused([], influx.write) == []
    assert influx.writes == 1


@given(
    st.integers(min_value=1, max_value=300).flatmap(
        lambda n: st.tuples(st.just(n), st.sets(st.integers(min_value=0, max_value=n - 1), max_size=n))
    ),
    st.sampled_from([400, 422]),
)
def test_exactly_the_refused_points_are_refused_and_every_other_one_is_stored(
    case: tuple[int, set[int]], status: int
) -> None:
    n, bad = case
    influx = FakeInflux(bad, status)
    refused = find_refused(list(range(n)), influx.write)
    assert [item for item, _ in refused] == sorted(bad)
    assert set(influx.stored) == set(range(n)) - bad
