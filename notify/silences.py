"""Silences on their topic: add, end early, and list with what each held back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from contracts.notifications import DeliveryRecord, DeliveryStatus, Matcher, Silence
from contracts.topics import Topics

from .kafka_log import TopicReader, produce_confirmed


def new_silence(matchers: list[Matcher], starts_at: datetime, ends_at: datetime, author: str, reason: str) -> Silence:
    return Silence(id=uuid.uuid4().hex[:12], matchers=tuple(matchers), starts_at=starts_at, ends_at=ends_at,
                   author=author, reason=reason, created_at=datetime.now(UTC))  # fmt: skip


def put_silence(bootstrap: str, topic_set: Topics, silence: Silence) -> None:
    produce_confirmed(bootstrap, topic_set.silences.name, silence.id, silence.model_dump_json().encode(), "silence")


@dataclass
class SilenceView:
    silence: Silence
    #: (receiver, item) pairs it held back
    held: set[tuple[str, str]] = field(default_factory=set)


def read_silences(bootstrap: str, topic_set: Topics) -> dict[str, SilenceView]:
    """Every silence (latest version) with the items the notifier logged as held back by it."""
    views: dict[str, SilenceView] = {}
    reader = TopicReader(bootstrap, [topic_set.silences.name, topic_set.notifications.name], group="cems-silences")
    held: list[DeliveryRecord] = []
    try:
        for record in reader.until_caught_up(timeout_s=60):
            if record.topic == topic_set.silences.name:
                silence = Silence.model_validate_json(record.value)
                views[silence.id] = SilenceView(silence, views[silence.id].held if silence.id in views else set())
            else:
                delivery = DeliveryRecord.model_validate_json(record.value)
                if delivery.status is DeliveryStatus.SILENCED:
                    held.append(delivery)
    finally:
        reader.close()
    for delivery in held:
        view = views.get(delivery.silence_id or "")
        if view is not None:
            view.held.update((delivery.receiver, item) for item in delivery.items)
    return views
