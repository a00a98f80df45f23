"""What a failed InfluxDB write means for the sink: retry, refuse the points, or stop.

``classify`` maps what the InfluxDB client raised to one of three verdicts (a pure function:
no I/O, no clock; the time to read an HTTP-date ``Retry-After`` against is an argument):

    RETRY    InfluxDB may take the same batch later: connection refused or reset, a timeout,
             HTTP 5xx, 429 (with its Retry-After), 408. The sink keeps the batch, backs off
             and commits nothing meanwhile.
    REFUSED  InfluxDB refused points of this batch for what they are: HTTP 400 (line protocol
             it cannot parse), 422 (a field type conflict, a point beyond the retention
             period), 413 (too large). The sink finds the refused points, writes the others and
             sends the refused records to the dead-letter topic.
    FATAL    The sink cannot write anything as configured: 401 (token), 403 (the token may not
             write to the bucket), 404 (bucket or organisation not found), any other 4xx. The
             sink stops, exit code 1, with a message naming the setting to fix.

``find_refused`` finds the refused points of a batch by halving it; ``SinkFatalError`` (an
``InfrastructureError`` that a retry cannot help) carries the message of a fatal refusal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import TypeVar

import urllib3.exceptions
from influxdb_client.client.exceptions import InfluxDBError

from contracts.errors import InfrastructureError

#: the longest wait a server's Retry-After is followed for (a larger value waits this long)
MAX_RETRY_AFTER_S = 300.0

_DROPPED = re.compile(r"\bdropped=(\d+)")

T = TypeVar("T")


class Verdict(StrEnum):
    RETRY = "retry"
    REFUSED = "refused"
    FATAL = "fatal"


@dataclass(frozen=True)
class WriteFailure:
    verdict: Verdict
    #: short and stable, a metric label: ``connection``, ``timeout``, ``http_503``, ...
    cause: str
    #: what InfluxDB (or the connection) said
    detail: str
    status: int | None = None
    #: the server asked to wait this long before the next try (429, 503)
    retry_after_s: float | None = None

    @property
    def dropped(self) -> int | None:
        """How many points InfluxDB said it dropped from the batch (422 "partial write")."""
        found = _DROPPED.search(self.detail)
        return int(found.group(1)) if found else None


class SinkFatalError(InfrastructureError):
    """The sink cannot write to InfluxDB as configured; trying again cannot help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP-date read against ``now``) in seconds,
    at most ``MAX_RETRY_AFTER_S``; ``None`` when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(text) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def classify_status(status: int, detail: str, retry_after: str | None, now: datetime) -> WriteFailure:
    """The verdict on an HTTP error status from InfluxDB's write endpoint."""
    cause = f"http_{status}"
    if status in (401, 403, 404) or (400 <= status < 500 and status not in (400, 408, 413, 422, 429)):
        return WriteFailure(Verdict.FATAL, cause, detail, status)
    if status in (400, 413, 422):
        return WriteFailure(Verdict.REFUSED, cause, detail, status)
    # 408, 429, 5xx and anything else a server says (a 3xx from a proxy, ...)
    return WriteFailure(Verdict.RETRY, cause, detail, status, retry_after_s(retry_after, now))


def classify(exc: BaseException, now: datetime) -> WriteFailure:
    """The verdict on an exception raised by ``WriteApi.write``."""
    if isinstance(exc, InfluxDBError):
        status = getattr(exc, "status", None)
        if status is None and exc.response is not None:
            status = getattr(exc.response, "status", None)
        if isinstance(status, int) and status > 0:
            return classify_status(status, str(exc.message), exc.retry_after, now)
        # status 0: the client could not make the request (TLS handshake, ...)
        return WriteFailure(Verdict.RETRY, "client", _one_line(getattr(exc, "reason", None) or exc))
    if isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ProtocolError | ConnectionError):
        return WriteFailure(Verdict.RETRY, "connection", _one_line(exc))
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return WriteFailure(Verdict.RETRY, "timeout", _one_line(exc))
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return WriteFailure(Verdict.RETRY, "connection", _one_line(exc))
    # not foreseen: a retry loses nothing, the metric and the log show it
    return WriteFailure(Verdict.RETRY, "other", f"{type(exc).__name__}: {_one_line(exc)}")


def fatal_message(failure: WriteFailure, *, url: str, org: str, bucket: str) -> str:
    """What to tell the operator when InfluxDB refuses the sink itself: the setting to fix."""
    said = f"InfluxDB at {url} answered {failure.status}: {failure.detail}"
    if failure.status == 401:
        return f"{said}. The token is not valid: check CEMS_INFLUXDB_TOKEN"
    if failure.status == 403:
        return (
            f"{said}. The token may not write to bucket {bucket!r} of org {org!r}: "
            "check CEMS_INFLUXDB_TOKEN (it needs write permission on the bucket)"
        )
    if failure.status == 404:
        if "organization" in failure.detail.lower():
            return f"{said}. Check CEMS_INFLUXDB_ORG (now {org!r})"
        return f"{said}. Check CEMS_INFLUXDB_BUCKET (now {bucket!r}) and CEMS_INFLUXDB_ORG (now {org!r})"
    return f"{said}. Check CEMS_INFLUXDB_URL (now {url!r})"


def find_refused(
    items: Sequence[T], write: Callable[[Sequence[T]], WriteFailure | None]
) -> list[tuple[T, WriteFailure]]:
    """Write ``items`` (``write`` returns ``None`` when InfluxDB took them, else its refusal);
    a refused write is written again in halves until every refused item is alone, or the
    refusal says that all the items of its write were dropped. Returns the refused items
    with InfluxDB's answer, in order.

    Writing a good point again changes nothing: InfluxDB stores the good points of a refused
    write (422, "partial write") or none of them (400), and the same point overwrites itself.
    """
    if not items:
        return []
    failure = write(items)
    if failure is None:
        return []
    if len(items) == 1 or failure.dropped == len(items):
        return [(item, failure) for item in items]
    half = len(items) // 2
    return find_refused(items[:half], write) + find_refused(items[half:], write)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
