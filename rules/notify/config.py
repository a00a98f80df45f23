"""The notifier's routing configuration (versioned YAML), validated strictly. Pure.

The adapter reads the file (``notify.config``); this module checks the parsed mapping:
unknown keys are errors, every receiver a route names exists, escalation levels come in
increasing ``after``, channels have the endpoints they need. Durations are written ``30s``,
``5m``, ``4h``, ``1d`` (or a number of seconds).

Routes are tried in order; the first that matches takes the alert, and with ``continue:
true`` the following routes are tried too (Alertmanager's routing tree, flattened). A route
without ``match`` matches everything, so the last route is usually the catch-all.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from contracts.alerts import Severity
from contracts.errors import ConfigError, config_error
from contracts.notifications import Label

_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_s(value: Any) -> Any:
    """``90`` or ``"90s"``, ``"5m"``, ``"4h"``, ``"1d"`` -> seconds."""
    if isinstance(value, str):
        found = _DURATION.match(value.strip())
        if found is None:
            raise ValueError(f"{value!r} is not a duration: write e.g. 30s, 5m, 4h, 1d")
        return int(found[1]) * _UNIT_S[found[2]]
    return value


DurationS = Annotated[int, BeforeValidator(parse_duration_s), Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class QuietHours(_Strict):
    """Between ``start`` and ``end`` (local time; ``end`` may be the next morning) notices of
    the listed severities wait until ``end``; others go out at once."""

    start: time
    end: time
    hold: frozenset[Severity] = frozenset({Severity.INFO, Severity.WARNING})


class Level(_Strict):
    """Who is told, ``after`` the alert opened if nobody acknowledged it by then."""

    after: DurationS = 0
    receivers: tuple[str, ...] = Field(min_length=1)


class Route(_Strict):
    name: str = Field(min_length=1)
    #: label -> accepted values (any of them); every listed label must match
    match: dict[Label, tuple[str, ...]] = Field(default_factory=dict)
    levels: tuple[Level, ...] = Field(min_length=1)
    group_wait: DurationS = 30
    group_interval: DurationS = 300
    #: remind receivers of an open, unacknowledged alert this often (None: never)
    repeat_interval: DurationS | None = 4 * 3600
    quiet_hours: QuietHours | None = None
    continue_: bool = Field(default=False, alias="continue")

    @model_validator(mode="after")
    def _levels_in_order(self) -> Route:
        afters = [level.after for level in self.levels]
        if self.levels[0].after != 0:
            raise ValueError("the first level is told when the alert opens: its after must be 0")
        if afters != sorted(set(afters)):
            raise ValueError(f"levels must have increasing after: {afters}")
        if self.repeat_interval == 0:
            raise ValueError("repeat_interval must be positive (leave it out, or null, for no reminders)")
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(label) in values for label, values in self.match.items())


class EmailChannel(_Strict):
    type: Literal["email"]
    to: tuple[str, ...] = Field(min_length=1)


class DingTalkChannel(_Strict):
    """A DingTalk group robot: ``access_token`` from its webhook URL, ``secret`` if the robot
    signs (加签)."""

    type: Literal["dingtalk"]
    access_token: str = Field(min_length=1)
    secret: str | None = None


class WeComChannel(_Strict):
    """A WeCom (企业微信) group robot: ``key`` from its webhook URL."""

    type: Literal["wecom"]
    key: str = Field(min_length=1)


class WebhookChannel(_Strict):
    """Any HTTP endpoint: the notice as JSON, with an ``Idempotency-Key`` header."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")


class SmsChannel(_Strict):
    """Text messages through the HTTP SMS gateway in ``endpoints.sms_gateway_url``."""

    type: Literal["sms"]
    phones: tuple[str, ...] = Field(min_length=1)


class LogChannel(_Strict):
    """The notifier's own output (for demonstrations and for a receiver with nothing else)."""

    type: Literal["log"]


Channel = Annotated[
    EmailChannel | DingTalkChannel | WeComChannel | WebhookChannel | SmsChannel | LogChannel,
    Field(discriminator="type"),
]


class Receiver(_Strict):
    """An officer or a duty group; its channels are tried in order (the next is the fallback)."""

    name: str = Field(min_length=1)
    language: Literal["zh", "en"] = "zh"
    channels: tuple[Channel, ...] = Field(min_length=1)


class Smtp(_Strict):
    host: str
    port: int = Field(default=25, gt=0, lt=65536)
    sender: str = Field(alias="from")
    username: str | None = None
    password: str | None = None
    #: none (plain, e.g. a relay on the local network), starttls or ssl
    security: Literal["none", "starttls", "ssl"] = "starttls"


class Endpoints(_Strict):
    smtp: Smtp | None = None
    #: DingTalk's and WeCom's APIs; set to a private gateway (or a test server) if needed
    dingtalk_base_url: str = Field(default="https://oapi.dingtalk.com", pattern=r"^https?://")
    wecom_base_url: str = Field(default="https://qyapi.weixin.qq.com", pattern=r"^https?://")
    sms_gateway_url: str | None = Field(default=None, pattern=r"^https?://")


class Delivery(_Strict):
    #: tries of one channel before falling back to the next, and the first back-off between them
    attempts_per_channel: int = Field(default=3, ge=1, le=10)
    backoff_s: float = Field(default=1.0, gt=0, le=60)
    #: how long one HTTP or SMTP exchange may take
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    #: when every channel failed, try the notice again after this long
    retry_interval: DurationS = 60


class RoutingConfig(_Strict):
    version: Literal[1]
    timezone: str = "Asia/Shanghai"
    #: links in messages go to this Grafana's stack detail dashboard
    grafana_url: str | None = Field(default=None, pattern=r"^https?://")
    endpoints: Endpoints = Field(default_factory=Endpoints)
    delivery: Delivery = Field(default_factory=Delivery)
    receivers: dict[str, Receiver] = Field(min_length=1)
    routes: tuple[Route, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> RoutingConfig:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone {self.timezone!r} is not a known IANA time zone") from exc
        for route in self.routes:
            for level in route.levels:
                unknown = [r for r in level.receivers if r not in self.receivers]
                if unknown:
                    raise ValueError(f"route {route.name!r} names unknown receivers: {', '.join(unknown)}")
        for name, receiver in self.receivers.items():
            for channel in receiver.channels:
                if channel.type == "email" and self.endpoints.smtp is None:
                    raise ValueError(f"receiver {name!r} has an email channel but endpoints.smtp is not set")
                if channel.type == "sms" and self.endpoints.sms_gateway_url is None:
                    raise ValueError(f"receiver {name!r} has an sms channel but endpoints.sms_gateway_url is not set")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def routing_config(raw: dict[str, Any], source: object = "routing config") -> RoutingConfig:
    """Validate a parsed routing file; errors name the file and the key."""
    try:
        return RoutingConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(source, exc) from exc
    except ValueError as exc:  # pragma: no cover - pydantic wraps validator errors
        raise ConfigError(f"{source}: {exc}") from exc
