"""InfluxDB sink: readings, hourly averages and alert events, written in batches.

A batch of Kafka records becomes one InfluxDB write; its offsets are committed only once
every record of it is stored in InfluxDB or in the dead-letter topic. What a failed write
means is decided in ``streams/influx_errors.py``:

- InfluxDB unreachable or overloaded (connection refused or reset, timeouts, HTTP 5xx, 429):
  the sink keeps the batch and tries again with exponential back-off up to a cap (at least
  as long as a ``Retry-After`` asks), logging each failed try with its number; nothing is
  committed meanwhile and nothing is skipped, so it resumes by itself;
- InfluxDB refuses points (HTTP 400, 413, 422: a field type conflict, a line it cannot
  parse, a time beyond the retention period): the sink halves the batch until it has found
  the refused points, writes the others and sends each refused record to the dead-letter
  topic (``influx_rejected``, with InfluxDB's answer), then commits;
- a record the sink cannot read goes to the dead-letter topic too (``malformed_json``,
  ``schema_invalid``; ``internal_error`` if building its point failed);
- InfluxDB refuses the sink itself (401, 403, 404: token, organisation or bucket): it stops,
  without committing, with a ``SinkFatalError`` naming the setting to fix. The same check
  runs at start (an empty write), so a wrong token is found before any record comes.

Re-written points overwrite themselves (same measurement, tags and time), so a crash between
write and commit duplicates nothing in InfluxDB; a dead letter sent just before such a crash
is sent again (the same origin). The measurement, tag and field schema is documented in
``docs/influxdb-schema.md``, with this policy and the metrics (``streams/metrics.py``).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from pydantic import ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, retry_if_exception_type, wait_exponential

from contracts.alerts import AlertEvent, HourlyAverage
from contracts.reading import DeadLetter, Reading, RejectReason
from contracts.registry import Registry
from contracts.topics import Topics

from . import metrics
from .influx_errors import SinkFatalError, Verdict, WriteFailure, classify, fatal_message, find_refused
from .influx_points import PointBuilder, stack_tags

log = logging.getLogger("cems.sink")


class _Item(NamedTuple):
    """A record of the batch and its point as a line of line protocol (millisecond times).
    (A tuple: made once per record, a frozen dataclass's ``__init__`` would cost more.)"""

    message: Message
    measurement: str
    line: str
    enterprise: str
    stack: str
    mn: str | None = None


class _StoppingError(Exception):
    """Asked to stop while waiting to try again: the batch stays uncommitted."""


def origin(message: Message) -> str:
    """A dead letter's origin for a Kafka record: ``kafka:<topic>/<partition>@<offset>``."""
    return f"kafka:{message.topic()}/{message.partition()}@{message.offset()}"


def _validation_detail(exc: ValidationError) -> tuple[RejectReason, str]:
    errors = exc.errors()
    if any(e["type"] == "json_invalid" for e in errors):
        return RejectReason.MALFORMED_JSON, str(errors[0]["msg"])
    shown = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return RejectReason.SCHEMA, shown + more


class InfluxSink:
    def __init__(
        self,
        *,
        bootstrap: str,
        group: str,
        topics: Topics,
        namespace: str,
        influx_url: str,
        token: str,
        org: str,
        bucket: str,
        registry: Registry,
        batch_size: int = 5000,
        max_wait_s: float = 1.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
    ) -> None:
        self.topics = topics
        self.influx_url = influx_url
        self.org = org
        self.bucket = bucket
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.backoff = wait_exponential(multiplier=retry_initial_s, min=retry_initial_s, max=retry_max_s)
        self.builder = PointBuilder(stack_tags(registry), namespace)
        self.topic_names = [topics.readings.name, topics.hourly_averages.name, topics.alerts.name]
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                # a crashed sink's partitions go to its replacement within seconds
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 3_000,
            }
        )
        self.consumer.subscribe(self.topic_names)
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": f"{group}-dead-letters",
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                # a failed delivery is tried again by the sink (and the batch stays uncommitted)
                "delivery.timeout.ms": 30_000,
            }
        )
        self.client = InfluxDBClient(url=influx_url, token=token, org=org, timeout=10_000)
        self.write_api = self.client.write_api(write_options=SYNCHRONOUS)
        self.written = 0
        self.retries = 0
        self.dead_letters = 0

    # -- reading records -------------------------------------------------------------------
    def decode(self, messages: Iterable[Message]) -> tuple[list[_Item], list[DeadLetter]]:
        """The batch's points, and dead letters for the records that cannot become one."""
        items: list[_Item] = []
        letters: list[DeadLetter] = []
        counts: collections.Counter[str] = collections.Counter()
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka consume error: %s", err)
                continue
            counts[msg.topic()] += 1
            item = self._item(msg)
            if isinstance(item, DeadLetter):
                letters.append(item)
            else:
                items.append(item)
        for topic, n in counts.items():
            metrics.SINK_CONSUMED.labels(topic).inc(n)
        return items, letters

    def _item(self, msg: Message) -> _Item | DeadLetter:
        topic, value = msg.topic(), msg.value() or b""
        record: Reading | HourlyAverage | AlertEvent
        try:
            if topic == self.topics.readings.name:
                record = Reading.model_validate_json(value)
            elif topic == self.topics.hourly_averages.name:
                record = HourlyAverage.model_validate_json(value)
            else:
                record = AlertEvent.model_validate_json(value)
        except ValidationError as exc:
            reason, detail = _validation_detail(exc)
            return self._letter(msg, reason, detail)
        mn = record.mn if isinstance(record, Reading) else None
        try:
            point, measurement = self._point(record)
            line = point.to_line_protocol(WritePrecision.MS)
        except Exception as exc:  # a record the contract allows but the point builder fails on: a bug here
            detail = f"building its InfluxDB point failed: {type(exc).__name__}: {exc}"
            return self._letter(msg, RejectReason.INTERNAL_ERROR, detail, record.enterprise, record.stack, mn)
        if not line:
            detail = "the record has no field: InfluxDB has nothing to store"
            return self._letter(msg, RejectReason.INFLUX_REJECTED, detail, record.enterprise, record.stack, mn)
        return _Item(msg, measurement, line, record.enterprise, record.stack, mn)

    def _point(self, record: Reading | HourlyAverage | AlertEvent) -> tuple[Point, str]:
        """The record's point and its measurement."""
        if isinstance(record, Reading):
            return self.builder.reading(record), "reading"
        if isinstance(record, HourlyAverage):
            return self.builder.hourly(record), "hourly"
        return self.builder.alert(record), "alert"

    def _letter(
        self,
        msg: Message,
        reason: RejectReason,
        detail: str,
        enterprise: str | None = None,
        stack: str | None = None,
        mn: str | None = None,
    ) -> DeadLetter:
        where = origin(msg)
        log.warning("dead letter", extra={"reason": reason.value, "origin": where, "detail": detail[:500]})
        return DeadLetter.of_payload(
            reason, detail, where, msg.value() or b"", datetime.now(UTC), enterprise=enterprise, stack=stack, mn=mn
        )

    # -- writing to InfluxDB ---------------------------------------------------------------
    def check_access(self) -> None:
        """An empty write: InfluxDB checks the token, the organisation, the bucket and the
        right to write to it. Refused: ``SinkFatalError``; unreachable: the writes will wait."""
        try:
            self.write_api.write(bucket=self.bucket, record="")
        except Exception as exc:
            failure = classify(exc, datetime.now(UTC))
            if failure.verdict is Verdict.FATAL:
                raise self._fatal(failure) from exc
            log.warning("influxdb at %s not usable at start (%s: %s)", self.influx_url, failure.cause, failure.detail)

    def store(self, items: list[_Item], stop: threading.Event) -> list[tuple[_Item, WriteFailure]]:
        """Write the points until InfluxDB took all it will take; the refused ones."""

        def write(part: Sequence[_Item]) -> WriteFailure | None:
            refused = self._write([i.line for i in part], stop)
            if refused is None:
                for measurement, n in collections.Counter(i.measurement for i in part).items():
                    metrics.SINK_POINTS_WRITTEN.labels(measurement).inc(n)
                self.written += len(part)
            return refused

        refused = find_refused(items, write)
        for item, _ in refused:
            metrics.SINK_REFUSED_POINTS.labels(item.measurement).inc()
        return refused

    def _write(self, lines: list[str], stop: threading.Event) -> WriteFailure | None:
        """One write, tried again while InfluxDB may take it later: ``None`` once taken, the
        failure if InfluxDB refused points of it; raises ``SinkFatalError`` or ``_StoppingError``."""
        retrying = Retrying(
            retry=retry_if_exception(lambda exc: self._failure(exc).verdict is Verdict.RETRY),
            wait=self._wait,
            sleep=lambda s: self._sleep(s, stop),
            before_sleep=lambda state: self._log_retry(state, f"influxdb write of {len(lines)} points"),
            reraise=True,
        )
        try:
            retrying(self._post, lines)
        except _StoppingError:
            raise
        except Exception as exc:
            failure = self._failure(exc)
            if failure.verdict is Verdict.REFUSED:
                return failure
            raise self._fatal(failure) from exc
        return None

    def _post(self, lines: list[str]) -> None:
        started = time.monotonic()
        self.write_api.write(bucket=self.bucket, record=lines, write_precision=WritePrecision.MS)
        metrics.SINK_WRITE_SECONDS.observe(time.monotonic() - started)
        metrics.SINK_LAST_WRITE.set_to_current_time()

    @staticmethod
    def _failure(exc: BaseException) -> WriteFailure:
        if isinstance(exc, KafkaException):
            return WriteFailure(Verdict.RETRY, "kafka", str(exc))
        return classify(exc, datetime.now(UTC))

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = self._failure(exc).retry_after_s if exc is not None else None
        return max(self.backoff(state), asked or 0.0)

    @staticmethod
    def _sleep(seconds: float, stop: threading.Event) -> None:
        if stop.wait(seconds):
            raise _StoppingError

    def _log_retry(self, state: RetryCallState, what: str) -> None:
        exc = state.outcome.exception() if state.outcome else None
        failure = self._failure(exc) if exc is not None else WriteFailure(Verdict.RETRY, "other", "")
        self.retries += 1
        metrics.SINK_RETRIES.labels(failure.cause).inc()
        wait_s = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s failed (attempt %d, %s): %s; trying again in %.1fs",
            what, state.attempt_number, failure.cause, failure.detail, wait_s,
            extra={"attempt": state.attempt_number, "cause": failure.cause},
        )  # fmt: skip

    def _fatal(self, failure: WriteFailure) -> SinkFatalError:
        metrics.SINK_FATAL_ERRORS.labels(failure.cause).inc()
        message = fatal_message(failure, url=self.influx_url, org=self.org, bucket=self.bucket)
        log.error("influxdb refuses the sink; stopping without committing: %s", message)
        return SinkFatalError(message)

    # -- dead letters ----------------------------------------------------------------------
    def send_dead_letters(self, letters: list[DeadLetter], stop: threading.Event) -> None:
        """Produce the letters until Kafka confirmed each (tried again with back-off)."""
        pending = list(letters)

        def produce() -> None:
            errors: dict[int, Any] = {}
            for n, letter in enumerate(pending):

                def report(err: KafkaError | None, _msg: Message, n: int = n) -> None:
                    if err is not None:
                        errors[n] = err

                key = (letter.stack or "").encode() or None
                value = letter.model_dump_json().encode()
                self.producer.produce(self.topics.dead_letters.name, value=value, key=key, on_delivery=report)
            self.producer.flush()
            for n, letter in enumerate(pending):
                if n not in errors:
                    metrics.SINK_DEAD_LETTERS.labels(letter.reason.value).inc()
                    self.dead_letters += 1
            pending[:] = [letter for n, letter in enumerate(pending) if n in errors]
            if errors:
                raise KafkaException(next(iter(errors.values())))

        Retrying(
            retry=retry_if_exception_type(KafkaException),
            wait=self._wait,
            sleep=lambda s: self._sleep(s, stop),
            before_sleep=lambda state: self._log_retry(state, f"sending {len(pending)} dead letters"),
            reraise=True,
        )(produce)

    # -- the loop --------------------------------------------------------------------------
    def handle(self, messages: list[Message], stop: threading.Event) -> None:
        """Store a batch: points to InfluxDB, what cannot be stored to the dead letters."""
        items, letters = self.decode(messages)
        for item, failure in self.store(items, stop):
            detail = f"InfluxDB answered {failure.status}: {failure.detail}"
            letters.append(
                self._letter(item.message, RejectReason.INFLUX_REJECTED, detail, item.enterprise, item.stack, item.mn)
            )
        if letters:
            self.send_dead_letters(letters, stop)

    def update_lag(self) -> None:
        """Consumer lag per topic: high watermark (as of the last fetch) minus position, over
        the partitions assigned to this sink."""
        lag = dict.fromkeys(self.topic_names, 0)
        try:
            for tp in self.consumer.position(self.consumer.assignment()):
                if tp.offset < 0:
                    continue  # nothing read from it yet
                low_high = self.consumer.get_watermark_offsets(tp, cached=True)
                if low_high is not None and low_high[1] >= 0:
                    lag[tp.topic] = lag.get(tp.topic, 0) + max(low_high[1] - tp.offset, 0)
        except KafkaException as exc:  # a metric is not worth stopping for
            log.debug("consumer lag not known: %s", exc)
            return
        for topic, n in lag.items():
            metrics.SINK_CONSUMER_LAG.labels(topic).set(n)

    def commit(self) -> None:
        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as exc:  # e.g. the partitions went to another sink meanwhile
            metrics.SINK_COMMIT_FAILURES.inc()
            log.warning("offset commit failed (the records come again, rewritten idempotently): %s", exc)
            return
        metrics.SINK_BATCHES.inc()

    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set; raises ``SinkFatalError`` when InfluxDB refuses the sink."""
        last_report = time.monotonic()
        try:
            self.check_access()
            log.info("sink running: %s -> %s", self.topic_names, self.bucket)
            while not stop.is_set():
                messages = self.consumer.consume(num_messages=self.batch_size, timeout=self.max_wait_s)
                self.update_lag()
                if not messages:
                    continue
                try:
                    self.handle(messages, stop)
                except _StoppingError:
                    break  # stopping mid-outage: offsets not committed, the batch comes again
                self.commit()
                if time.monotonic() - last_report > 30:
                    log.info(
                        "sink progress: %d points written, %d failed tries, %d dead letters",
                        self.written, self.retries, self.dead_letters,
                    )  # fmt: skip
                    last_report = time.monotonic()
        finally:
            self.consumer.close()
            self.producer.flush(5)
            self.client.close()
