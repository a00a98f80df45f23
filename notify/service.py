"""``cems notify``: the notification service.

At start it reads its delivery log (``cems.v1.notifications``), the silences and the alert
events from their beginning, so it knows what each receiver has already been told; then it
follows the alerts and silences, asks ``rules.notify.planner`` what is due, and sends.

A notice is logged ``sending`` (and Kafka confirms it) before any channel is tried, then
``delivered`` after a channel took it; a notice whose outcome is missing after a crash is
sent again with the same id (``Idempotency-Key`` header, ``X-Cems-Notice`` mail header).
Each channel is tried ``attempts_per_channel`` times with exponential back-off (tenacity),
every failed attempt logged; then the receiver's next channel; if all fail, the notice is
logged ``undelivered`` and planned again after ``retry_interval``. If Kafka cannot confirm a
log record the service stops (exit 1): it never sends what it could not log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from contracts.alerts import AlertEvent
from contracts.errors import ConfigError, InfrastructureError
from contracts.notifications import DeliveryRecord, DeliveryStatus, Silence, split_item
from contracts.topics import Topics
from rules.notify.config import Channel, RoutingConfig
from rules.notify.planner import Logged, Notice, NotifyBook, Outcome
from rules.notify.render import Message, render
from rules.notify.routing import Directory

from . import metrics
from .api import create_api
from .channels import DeliveryError, Senders
from .kafka_log import LogWriter, Record, TopicReader
from .settings import NotifySettings

log = logging.getLogger("cems.notify")


def _now() -> datetime:
    return datetime.now(UTC)


class Notifier:
    def __init__(
        self,
        bootstrap: str,
        topic_set: Topics,
        config: RoutingConfig,
        places: Directory,
        *,
        max_delay_s: int,
        poll_s: float = 0.2,
        api: tuple[str, int, str] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topic_set
        self.config = config
        self.places = places
        self.poll_s = poll_s
        #: (host, port, token) of the HTTP API, or None
        self.api = api
        self.book = NotifyBook(config, places, max_delay_s=max_delay_s)
        self.busy: set[tuple[str, str]] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stats = {"alert_events": 0, "delivered": 0, "undelivered": 0, "held": 0, "expired": 0}

    # -- reading -----------------------------------------------------------------------------
    def _fold(self, record: Record) -> None:
        try:
            if record.topic == self.topics.alerts.name:
                self.book.add_event(AlertEvent.model_validate_json(record.value), record.at)
                self.stats["alert_events"] += 1
                metrics.ALERT_EVENTS.inc()
            elif record.topic == self.topics.silences.name:
                self.book.add_silence(Silence.model_validate_json(record.value))
            elif record.topic == self.topics.notifications.name:
                self.book.add_record(DeliveryRecord.model_validate_json(record.value))
        except ValidationError as exc:  # written by an incompatible release: skip it, loudly
            log.error("unreadable record on %s skipped: %s", record.topic, exc.errors()[:1])

    def catch_up(self) -> TopicReader:
        """Fold the delivery log and everything already in the alerts and silences topics;
        return the reader that follows alerts and silences from there."""
        started = time.monotonic()
        history = TopicReader(self.bootstrap, [self.topics.notifications.name], group="cems-notify-log")
        try:
            for record in history.until_caught_up():
                self._fold(record)
        finally:
            history.close()
        reader = TopicReader(self.bootstrap, [self.topics.alerts.name, self.topics.silences.name], group="cems-notify")
        for record in reader.until_caught_up():
            self._fold(record)
        log.info(
            "caught up: %d alerts, %d silences, %d notices in doubt, in %.1fs",
            len(self.book.alerts), len(self.book.silences), len(self.book.in_doubt), time.monotonic() - started,
        )  # fmt: skip
        return reader

    # -- writing -----------------------------------------------------------------------------
    async def _log(self, record: DeliveryRecord) -> None:
        await self.writer.write(record.receiver, record.model_dump_json().encode())
        self.book.add_record(record)

    async def _log_entry(self, entry: Logged) -> None:
        status = DeliveryStatus.SILENCED if entry.outcome is Outcome.HOLD else DeliveryStatus.EXPIRED
        await self._log(
            DeliveryRecord(notice_id=f"{status.value}-{entry.silence_id or '-'}", receiver=entry.receiver,
                           group=entry.group, items=entry.items, status=status, silence_id=entry.silence_id,
                           at=_now())
        )  # fmt: skip
        counter = "held" if entry.outcome is Outcome.HOLD else "expired"
        self.stats[counter] += len(entry.items)
        (metrics.HELD if entry.outcome is Outcome.HOLD else metrics.EXPIRED).inc(len(entry.items))

    # -- sending -----------------------------------------------------------------------------
    async def _record(self, notice: Notice, status: DeliveryStatus, **details: Any) -> None:
        await self._log(
            DeliveryRecord(notice_id=notice.notice_id, receiver=notice.receiver, group=notice.group,
                           items=notice.items, status=status, at=_now(), **details)
        )  # fmt: skip

    async def _deliver(self, notice: Notice, senders: Senders) -> None:
        receiver = self.config.receivers[notice.receiver]
        facts = self.book.facts(notice.items)
        message = render(facts, notice.group, self.places, language=receiver.language, zone=self.config.zone,
                         grafana_url=self.config.grafana_url)  # fmt: skip
        alerts = [f.event.model_dump(mode="json") | {"notice": f.what} for f in facts]
        payload = {
            "notice_id": notice.notice_id, "receiver": notice.receiver, "group": notice.group,
            "items": list(notice.items), "alerts": alerts,
        }  # fmt: skip
        try:
            if not notice.resend:
                await self._record(notice, DeliveryStatus.SENDING, title=message.title)
            for index, channel in enumerate(receiver.channels):
                name = f"{channel.type}#{index}"
                attempts = await self._try_channel(notice, name, channel, message, payload, senders)
                if attempts:
                    metrics.ATTEMPTS.labels(channel.type, "delivered").inc()
                    await self._record(notice, DeliveryStatus.DELIVERED, channel=name, attempt=attempts,
                                       title=message.title)  # fmt: skip
                    self._delivered(notice, name)
                    return
            self.stats["undelivered"] += 1
            metrics.NOTICES.labels("undelivered").inc()
            log.error("notice %s to %s: every channel failed; trying again in %ss", notice.notice_id,
                      notice.receiver, self.config.delivery.retry_interval)  # fmt: skip
            await self._record(notice, DeliveryStatus.UNDELIVERED)
        finally:
            self.busy.discard((notice.receiver, notice.group))
            metrics.IN_FLIGHT.set(len(self.busy))

    async def _try_channel(
        self, notice: Notice, name: str, channel: Channel, message: Message, payload: dict[str, Any], senders: Senders
    ) -> int:
        """Send on one channel with retries; the attempt that succeeded, or 0 if none did."""
        delivery = self.config.delivery
        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(delivery.attempts_per_channel),
                wait=wait_exponential(multiplier=delivery.backoff_s, max=60),
                retry=retry_if_exception_type(DeliveryError),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    try:
                        await senders.send(channel, message, notice.notice_id, payload)
                    except DeliveryError as exc:
                        metrics.ATTEMPTS.labels(channel.type, "failed").inc()
                        log.warning("notice %s: %s attempt %d failed: %s", notice.notice_id, name, attempts, exc,
                                    extra={"notice_id": notice.notice_id, "receiver": notice.receiver})  # fmt: skip
                        await self._record(notice, DeliveryStatus.FAILED, channel=name, attempt=attempts,
                                           error=str(exc)[:500])  # fmt: skip
                        raise
        except DeliveryError:
            return 0
        return attempts

    def _delivered(self, notice: Notice, channel: str) -> None:
        self.stats["delivered"] += 1
        metrics.NOTICES.labels("delivered").inc()
        now = _now()
        for item in notice.items:
            alert_id, what = split_item(item)
            tracked = self.book.alerts.get(alert_id)
            if tracked is not None and what == "firing":
                metrics.LATENCY.observe((now - tracked.seen_at).total_seconds())
        log.info("notice %s delivered to %s on %s (%d items)", notice.notice_id, notice.receiver, channel,
                 len(notice.items), extra={"notice_id": notice.notice_id, "receiver": notice.receiver})  # fmt: skip

    # -- the loop ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        reader = await asyncio.to_thread(self.catch_up)
        self.writer = LogWriter(self.bootstrap, self.topics.notifications.name)
        senders = Senders(self.config.endpoints, self.config.delivery.timeout_s)
        api_runner, acks = await self._start_api()
        try:
            changed, wake_at = True, None
            while not stop.is_set():
                for done in [t for t in self.tasks if t.done()]:
                    self.tasks.discard(done)
                    done.result()  # a delivery that could not be logged stops the service
                    changed = True
                # planning walks every open alert: only when something changed or came due
                if changed or (wake_at is not None and _now() >= wake_at):
                    wake_at = await self._step(senders)
                records = await asyncio.to_thread(reader.poll, self.poll_s)
                for record in records:
                    self._fold(record)
                changed = bool(records)
                metrics.ACTIVE_ALERTS.set(len(self.book.active))
            if self.tasks:
                await asyncio.wait(self.tasks, timeout=self.config.delivery.timeout_s * 2)
        finally:
            for task in self.tasks:
                task.cancel()
            await senders.close()
            if api_runner is not None:
                await api_runner.cleanup()
            if acks is not None:
                acks.close()
            self.writer.close()
            reader.close()

    async def _start_api(self) -> tuple[web.AppRunner | None, LogWriter | None]:
        if self.api is None:
            return None, None
        host, port, token = self.api
        acks = LogWriter(self.bootstrap, self.topics.acknowledgements.name)
        runner = web.AppRunner(create_api(self.book, acks, token), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        log.info("API on http://%s:%d/api/v1/", host, port)
        return runner, acks

    async def _step(self, senders: Senders) -> datetime | None:
        """Log and start what is due; return when to plan again if nothing changes."""
        plan = self.book.plan(_now(), frozenset(self.busy))
        for entry in plan.logged:
            await self._log_entry(entry)
        for notice in plan.notices:
            key = (notice.receiver, notice.group)
            if key in self.busy:
                continue  # one notice at a time per receiver and group; the rest next round
            self.busy.add(key)
            metrics.IN_FLIGHT.set(len(self.busy))
            self.tasks.add(asyncio.create_task(self._deliver(notice, senders)))
        return plan.wake_at


def summary(stats: dict[str, Any]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in stats.items())


def run_notifier(settings: NotifySettings) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean stop, 1 when Kafka could not be written."""
    import signal

    from prometheus_client import start_http_server

    from contracts.registry import load_registry
    from contracts.topics import topics
    from rules.notify.routing import directory

    from .config import load_routing

    config = load_routing(settings.routing)
    places = directory(load_registry(settings.registry))
    if settings.notify_metrics_port:
        start_http_server(settings.notify_metrics_port, addr=settings.host)
    api = None
    if settings.notify_api_port:
        if settings.notify_api_token is None:
            raise ConfigError("the notifier's API needs a token: set CEMS_NOTIFY_API_TOKEN (or no API port)")
        api = (settings.host, settings.notify_api_port, settings.notify_api_token.get_secret_value())
    notifier = Notifier(settings.bootstrap, topics(settings.topic_namespace), config, places,
                        max_delay_s=settings.notify_max_delay_s, poll_s=settings.notify_poll_s, api=api)  # fmt: skip

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("notifier running", extra={"routing": str(settings.routing), "receivers": len(config.receivers)})
        await notifier.run(stop)

    try:
        asyncio.run(main())
    except InfrastructureError as exc:
        log.error("notifier stopped: %s", exc)
        return 1
    log.info("notifier stopped: %s", summary(notifier.stats))
    return 0
