"""Prometheus metrics of the stream processes, one section per process.

Served on ``http://host:<port>/metrics`` when the process's metrics port is set
(``CEMS_SINK_METRICS_PORT`` / ``cems sink --metrics-port``; 0 = off).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# -- InfluxDB sink (`cems sink`, streams/influx_sink.py) ------------------------------------
SINK_CONSUMED = Counter("cems_sink_consumed_total", "Records read from Kafka, by topic", ["topic"])
SINK_POINTS_WRITTEN = Counter(
    "cems_sink_points_written_total", "Points InfluxDB confirmed, by measurement", ["measurement"]
)
SINK_BATCHES = Counter(
    "cems_sink_batches_total", "Batches of records stored (written or dead-lettered) and their offsets committed"
)
SINK_WRITE_SECONDS = Histogram(
    "cems_sink_write_seconds",
    "Duration of each InfluxDB write request that succeeded",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SINK_RETRIES = Counter(
    "cems_sink_retries_total",
    "Failed attempts that are tried again, by cause "
    "(connection, timeout, http_<status>, client, other; kafka for dead letters Kafka did not take)",
    ["cause"],
)
SINK_REFUSED_POINTS = Counter(
    "cems_sink_refused_points_total", "Points InfluxDB refused (HTTP 400/413/422), by measurement", ["measurement"]
)
SINK_DEAD_LETTERS = Counter(
    "cems_sink_dead_letters_total", "Records the sink sent to the dead-letter topic, by reason", ["reason"]
)
SINK_FATAL_ERRORS = Counter(
    "cems_sink_fatal_errors_total", "Errors that stopped the sink (HTTP 401/403/404 from InfluxDB), by cause", ["cause"]
)
SINK_COMMIT_FAILURES = Counter(
    "cems_sink_commit_failures_total", "Offset commits Kafka refused (the records come again; writes are idempotent)"
)
SINK_CONSUMER_LAG = Gauge(
    "cems_sink_consumer_lag",
    "Records in Kafka not yet read by the sink (high watermark - position), by topic",
    ["topic"],
)
SINK_LAST_WRITE = Gauge("cems_sink_last_write_timestamp_seconds", "Unix time of the last write InfluxDB confirmed")
