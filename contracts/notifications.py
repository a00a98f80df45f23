"""What the notifier reads and writes besides alert events: silences and its delivery log.

``cems.v1.silences`` (compacted, keyed by silence id) holds each silence's latest version;
ending one early is a new version with ``ends_at`` moved to the time it was ended.

``cems.v1.notifications`` (keyed by receiver) is the delivery log and the notifier's memory:
a notice (one message to one receiver, covering one or more *items*) is logged ``sending``
before any channel is tried, then ``delivered`` or ``failed`` for each channel attempt, so
a restarted notifier knows what each receiver already has, and re-sends a notice it cannot
prove delivered with the same id. Items the silences held back are logged ``silenced``.

An item names what a receiver is told about one alert: ``<alert_id>|firing``,
``<alert_id>|escalation-<level>``, ``<alert_id>|reminder-<n>`` or ``<alert_id>|resolved``.
Idempotency is by (receiver, item): alert, event and receiver.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

#: the labels an alert is matched on (routes and silences)
Label = Literal["kind", "severity", "district", "industry", "enterprise", "stack", "parameter"]
LABELS: tuple[Label, ...] = ("kind", "severity", "district", "industry", "enterprise", "stack", "parameter")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Matcher(_Frozen):
    """``label op value``: ``=`` equal, ``!=`` not equal, ``=~`` the whole value matches a regex."""

    label: Label
    op: Literal["=", "!=", "=~"] = "="
    value: str = Field(max_length=500)

    @model_validator(mode="after")
    def _valid_regex(self) -> Matcher:
        if self.op == "=~":
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from exc
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        value = labels.get(self.label, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        return re.fullmatch(self.value, value) is not None

    def __str__(self) -> str:
        return f"{self.label}{self.op}{self.value}"


_MATCHER = re.compile(r"^(?P<label>[a-z]+)(?P<op>!=|=~|=)(?P<value>.*)$")


def parse_matcher(text: str) -> Matcher:
    """``kind=bypass``, ``stack!=jy-coke-1-s2``, ``enterprise=~jy-coke-.*``."""
    found = _MATCHER.match(text.strip())
    if found is None or found["label"] not in LABELS:
        raise ValueError(f"{text!r}: write LABEL=VALUE, LABEL!=VALUE or LABEL=~REGEX; labels: {', '.join(LABELS)}")
    return Matcher(label=found["label"], op=found["op"], value=found["value"])  # type: ignore[arg-type]


class Silence(_Frozen):
    """Planned work: notifications of matching alerts are held back from ``starts_at`` to
    ``ends_at`` (and logged as held back); they go out after it if still relevant."""

    schema_version: Literal[1] = 1
    id: str = Field(min_length=1, max_length=64)
    matchers: tuple[Matcher, ...] = Field(min_length=1)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    author: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)
    created_at: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Silence:
        if self.ends_at < self.starts_at:
            raise ValueError("ends_at is before starts_at")
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def active(self, now: AwareDatetime) -> bool:
        return self.starts_at <= now < self.ends_at


class NoticeKind(StrEnum):
    FIRING = "firing"  # the alert opened (level 0 receivers)
    ESCALATION = "escalation"  # nobody acknowledged it in time: the next level
    REMINDER = "reminder"  # still open and unacknowledged after repeat_interval
    RESOLVED = "resolved"  # the condition cleared


class DeliveryStatus(StrEnum):
    SENDING = "sending"  # about to be tried (written and confirmed before any channel is tried)
    DELIVERED = "delivered"  # a channel accepted it
    FAILED = "failed"  # one channel attempt failed (``error``); the next attempt or channel follows
    UNDELIVERED = "undelivered"  # every channel failed: tried again after the retry interval
    SILENCED = "silenced"  # held back by ``silence_id``
    EXPIRED = "expired"  # ready longer ago than the notifier's max delay (an outage): not sent


class DeliveryRecord(_Frozen):
    schema_version: Literal[1] = 1
    notice_id: str
    receiver: str
    #: the group the notice belongs to (the enterprise)
    group: str
    items: tuple[str, ...] = Field(min_length=1)
    status: DeliveryStatus
    #: ``<type>#<index in the receiver's channels>``, for channel attempts
    channel: str | None = None
    attempt: int = 0
    at: AwareDatetime
    error: str | None = None
    silence_id: str | None = None
    #: the message's title, for people reading the log
    title: str | None = None


def item_key(alert_id: str, what: str) -> str:
    return f"{alert_id}|{what}"


def split_item(item: str) -> tuple[str, str]:
    alert, _, what = item.rpartition("|")
    return alert, what
