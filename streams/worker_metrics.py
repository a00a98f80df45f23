"""Prometheus metrics of the detection worker (served on ``CEMS_WORKER_METRICS_PORT``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from .processor import BatchResult

RECORDS = Counter("cems_worker_records_total", "Records the rules took, by kind", ["kind"])
LATE = Counter("cems_worker_late_readings_total", "Readings for minutes already closed (judged without them)")
DEAD_LETTERS = Counter("cems_worker_dead_letters_total", "Records sent to the dead-letter topic, by reason", ["reason"])
ALERT_EVENTS = Counter("cems_worker_alert_events_total", "Alert events produced, by kind and type", ["kind", "type"])
HOURLY_AVERAGES = Counter("cems_worker_hourly_averages_total", "Hourly averages produced")
STATE_WRITES = Counter("cems_worker_state_writes_total", "Stack states written to the table's changelog")
STATE_WRITE_BYTES = Counter("cems_worker_state_write_bytes_total", "Bytes of stack states written to the changelog")
BATCH_SECONDS = Histogram(
    "cems_worker_batch_seconds",
    "Time to run one batch through the rules and hand its output to the producer",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CONSUMER_LAG = Gauge(
    "cems_worker_consumer_lag", "Records behind the partition's end, after the last batch", ["topic", "partition"]
)
WATERMARK = Gauge("cems_worker_watermark_seconds", "The event-time watermark (Unix time)")
STATE_BYTES = Gauge("cems_worker_state_bytes", "Encoded size of the stack states this process holds")
STACKS_HELD = Gauge("cems_worker_stacks", "Stacks whose state this process holds")


def observe_batch(result: BatchResult, seconds: float, watermark: datetime | None) -> None:
    RECORDS.labels("reading").inc(result.readings)
    RECORDS.labels("tick").inc(result.ticks)
    RECORDS.labels("acknowledgement").inc(result.acknowledgements)
    RECORDS.labels("response").inc(result.responses)
    LATE.inc(result.late)
    STATE_WRITES.inc(len(result.writes))
    STATE_WRITE_BYTES.inc(sum(len(raw) for raw in result.writes.values()))
    BATCH_SECONDS.observe(seconds)
    if watermark is not None:
        WATERMARK.set(watermark.timestamp())


def totals() -> dict[str, int]:
    """The counters so far, for the progress log line."""

    def total(name: str, **labels: str) -> int:
        return int(REGISTRY.get_sample_value(name, labels) or 0)

    kinds = ("reading", "tick", "acknowledgement")
    out = {f"{kind}s": total("cems_worker_records_total", kind=kind) for kind in kinds}
    out["late"] = total("cems_worker_late_readings_total")
    out["hourly"] = total("cems_worker_hourly_averages_total")
    out["alert_events"] = sum(
        int(sample.value)
        for metric in REGISTRY.collect()
        if metric.name == "cems_worker_alert_events"
        for sample in metric.samples
        if sample.name == "cems_worker_alert_events_total"
    )
    return out
