"""Prometheus metrics of the gateway."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ACCEPTED = Counter("cems_gateway_accepted_total", "Readings accepted and confirmed by Kafka", ["source"])
REJECTED = Counter("cems_gateway_rejected_total", "Input refused, by reason", ["reason"])
INTERNAL_ERRORS = Counter(
    "cems_gateway_internal_errors_total", "Input the gateway failed on unexpectedly (dead-lettered)", ["error_type"]
)
DUPLICATES = Counter("cems_gateway_duplicates_total", "Redelivered or resent readings dropped", ["source"])
PRODUCE_LATENCY = Histogram(
    "cems_gateway_kafka_produce_seconds",
    "From handing a record to the producer until Kafka confirmed it",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

BROKER_STORED_MESSAGES = Gauge("cems_broker_stored_messages", "Messages the MQTT broker holds ($SYS store count)")
BROKER_STORED_BYTES = Gauge("cems_broker_stored_bytes", "Payload bytes the MQTT broker holds ($SYS store bytes)")
BROKER_DROPPED = Gauge(
    "cems_broker_dropped_messages", "Messages the MQTT broker dropped since it started ($SYS publish dropped)"
)
BACKFILL_REQUESTS = Counter(
    "cems_gateway_backfill_requests_total", "History requests sent to devices for missed periods"
)
BACKFILLED = Counter("cems_gateway_backfilled_total", "Readings stored from devices' answers to history requests")
BACKFILL_DUPLICATES = Counter(
    "cems_gateway_backfill_duplicates_total", "Readings in answers to history requests that were already stored"
)
BACKFILL_UNREACHABLE = Counter(
    "cems_gateway_backfill_unreachable_total",
    "History requests not sent: the TCP device never sent on a connection of this gateway",
)

TCP_OPEN = Gauge("cems_gateway_tcp_connections", "HJ 212 TCP connections open now")
TCP_REFUSED = Counter(
    "cems_gateway_tcp_refused_total",
    "HJ 212 TCP connections closed as soon as accepted, by cause (total_cap, per_address_cap, stopping)",
    ["cause"],
)
TCP_CLOSED = Counter(
    "cems_gateway_tcp_closed_total",
    "HJ 212 TCP connections the gateway closed, by cause "
    "(idle, auth_timeout, refusals, evicted, unread_answers, error, stopping)",
    ["cause"],
)
TCP_BLANK_LINES = Counter(
    "cems_gateway_tcp_blank_lines_total", "Blank lines (bare CR LF) on HJ 212 TCP connections: ignored, no dead letter"
)
TCP_ERRORS = Counter(
    "cems_gateway_tcp_errors_total",
    "Unexpected errors in the HJ 212 TCP listener, by stage (the listener goes on)",
    ["stage"],
)
BACKFILL_HOLES_OPEN = Gauge("cems_gateway_backfill_holes_open", "Missed periods waiting for a request or its answers")
BACKFILL_HOLES_DROPPED = Gauge(
    "cems_gateway_backfill_holes_dropped", "Missed periods not asked for: too many open (per stream or in all)"
)
