"""What Grafana does to a panel's Flux before InfluxDB runs it, so the same text can be run
from tests and from `cems dashboards check`.

Two steps, as Grafana 10/11 performs them: the browser replaces dashboard variables
(``$name``, ``${name}``, ``${name:regex}``; "All" with a custom all value is used as is,
other values are regex-escaped and several become ``(a|b)``), then the InfluxDB datasource
replaces the Flux macros ``v.timeRangeStart`` / ``v.timeRangeStop`` (RFC 3339 times),
``v.windowPeriod`` (a Go duration such as ``1m0s``) and ``v.defaultBucket`` / ``v.bucket`` /
``v.organization`` (quoted strings).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ALL = "$__all"
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")
_REGEX_SPECIAL = re.compile(r"[\\^$.*+?()\[\]{}|/]")


@dataclass(frozen=True)
class Range:
    start: datetime
    stop: datetime
    window: timedelta = timedelta(minutes=1)


def go_duration(d: timedelta) -> str:
    """Go's time.Duration.String() for whole milliseconds and up: 1m0s, 1h30m0s, 500ms."""
    ms = round(d.total_seconds() * 1000)
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest / 1000:g}s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{minutes}m{seconds}"
    return seconds


def _rfc3339(t: datetime) -> str:
    return (
        t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        + (f".{t.microsecond:06d}".rstrip("0") if t.microsecond else "")
        + "Z"
    )


def interpolate_variables(
    text: str, values: Mapping[str, str | Sequence[str]], all_values: Mapping[str, str] | None = None
) -> str:
    """Replace dashboard variables; a name without a value is an error naming it."""
    all_values = all_values or {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        fmt = match.group(2)
        if name.startswith("__"):
            return match.group(0)
        if name not in values:
            raise KeyError(f"dashboard variable ${name} has no value")
        value = values[name]
        chosen = [value] if isinstance(value, str) else list(value)
        if chosen == [ALL] and name in all_values:
            return all_values[name]
        if fmt == "regex":
            escaped = [_REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), v) for v in chosen]
            return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        if fmt not in (None, "raw"):
            raise ValueError(f"variable format {fmt!r} of ${name} is not supported here")
        return ",".join(chosen)

    return _VARIABLE.sub(replace, text)


def interpolate_macros(text: str, time_range: Range, bucket: str, org: str) -> str:
    macros = {
        "v.timeRangeStart": _rfc3339(time_range.start),
        "v.timeRangeStop": _rfc3339(time_range.stop),
        "v.windowPeriod": go_duration(time_range.window),
        "v.defaultBucket": f'"{bucket}"',
        "v.bucket": f'"{bucket}"',
        "v.organization": f'"{org}"',
    }
    return re.sub(r"\bv\.(timeRangeStart|timeRangeStop|windowPeriod|defaultBucket|bucket|organization)\b",
                  lambda m: macros[m.group(0)], text)  # fmt: skip


def render(
    query: str,
    time_range: Range,
    values: Mapping[str, str | Sequence[str]],
    *,
    bucket: str,
    org: str,
    all_values: Mapping[str, str] | None = None,
) -> str:
    return interpolate_macros(interpolate_variables(query, values, all_values), time_range, bucket, org)
