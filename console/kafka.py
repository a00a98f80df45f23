"""The console's Kafka side: the alerts topic into the case store (exactly once: positions are
stored with the changes, in the database), and acknowledgements out.

The follower assigns itself every partition of the alerts topic (no consumer group: the
positions live in the case database, so a restored database resumes where it was) and hands
batches to ``CaseStore.ingest``; between batches it lets the store open cases for alerts that
have lasted long enough (``sweep``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from contracts.alerts import Acknowledgement
from contracts.errors import InfrastructureError

from .store import CaseStore, IngestStats, Record

log = logging.getLogger(__name__)


class AlertFollower:
    def __init__(
        self,
        store: CaseStore,
        bootstrap: str,
        topic: str,
        *,
        batch: int = 500,
        sweep_every_s: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.topic = topic
        self.batch = batch
        self.sweep_every_s = sweep_every_s
        self.clock = clock
        self.totals = IngestStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"unused-{store.consumer}",  # required by librdkafka; nothing is committed
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
            }
        )

    def _assign(self) -> None:
        metadata = self._consumer.list_topics(self.topic, timeout=30)
        topic_meta = metadata.topics.get(self.topic)
        if topic_meta is None or topic_meta.error is not None:
            raise InfrastructureError(f"kafka: topic {self.topic} is not available ({topic_meta and topic_meta.error})")
        positions = self.store.positions(self.topic)
        self._consumer.assign(
            [TopicPartition(self.topic, p, positions.get(p, OFFSET_BEGINNING)) for p in sorted(topic_meta.partitions)]
        )

    def _reassign(self) -> None:
        try:
            self._assign()
        except Exception:
            log.exception("could not read the stored positions")

    def poll_once(self, timeout_s: float = 0.5) -> IngestStats:
        """Read and apply one batch (what arrives within ``timeout_s``)."""
        messages = self._consumer.consume(self.batch, timeout=timeout_s)
        records = []
        for m in messages:
            error = m.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("alerts topic: %s", error)
                continue
            records.append(Record(m.partition(), m.offset(), m.value() or b""))
        if not records:
            return IngestStats()
        stats = self.store.ingest(self.topic, records)
        for field in vars(self.totals):
            setattr(self.totals, field, getattr(self.totals, field) + getattr(stats, field))
        if stats.opened or stats.recurred:
            log.info("cases: %d opened, %d joined, %d reopened", stats.opened, stats.joined, stats.recurred)
        return stats

    def run(self) -> None:
        self._assign()
        last_sweep = 0.0
        while not self._stop.is_set():
            try:
                applied = self.poll_once()
                # only when caught up: an alert still open here may have its end further on
                if not applied.events and time.monotonic() - last_sweep >= self.sweep_every_s:
                    last_sweep = time.monotonic()
                    if opened := self.store.sweep(self.clock()):
                        log.info("cases: %d long-lasting alerts opened or joined cases", opened)
            except KafkaException as exc:
                log.error("alerts topic: %s (retrying in 2 s)", exc)
                self._stop.wait(2)
            except Exception:  # a database error: nothing of the batch was stored; read it again
                log.exception("applying alert events failed; reading again from the stored positions in 5 s")
                self._stop.wait(5)
                self._reassign()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="alert-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        self._consumer.close()


class KafkaAcknowledger:
    """Acknowledgements straight onto the acknowledgements topic, confirmed by Kafka."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.bootstrap = bootstrap
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})

    async def __call__(self, alert_ids: list[str], stack: str, officer: str, note: str) -> None:
        import asyncio

        await asyncio.to_thread(self._send, alert_ids, stack, officer, note)

    def _send(self, alert_ids: list[str], stack: str, officer: str, note: str) -> None:
        failed: list[str] = []
        now = datetime.now(UTC)
        for alert_id in alert_ids:
            ack = Acknowledgement(alert_id=alert_id, stack=stack, officer=officer, note=note or None, at=now)
            self._producer.produce(
                self.topic,
                key=stack.encode(),
                value=ack.model_dump_json().encode(),
                on_delivery=lambda err, _m: failed.append(str(err)) if err else None,
            )
        if self._producer.flush(30) or failed:
            raise InfrastructureError(
                f"kafka at {self.bootstrap}: acknowledgement not confirmed: {failed or 'timeout'}"
            )


class NotifierAcknowledger:
    """Acknowledgements through the notifier's API (``POST /api/v1/alerts/{id}/acknowledge``)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    async def __call__(self, alert_ids: list[str], stack: str, officer: str, note: str) -> None:
        async with httpx.AsyncClient(timeout=15, headers={"Authorization": f"Bearer {self.token}"}) as client:
            for alert_id in alert_ids:
                response = await client.post(
                    f"{self.base_url}/api/v1/alerts/{alert_id}/acknowledge",
                    json={"officer": officer, "note": note or None},
                )
                if response.status_code not in (202, 409):  # 409: already acknowledged or resolved
                    raise InfrastructureError(
                        f"notifier at {self.base_url}: acknowledging {alert_id} answered {response.status_code}: "
                        f"{response.text[:200]}"
                    )
