"""Prometheus metrics of the notifier."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ALERT_EVENTS = Counter("cems_notify_alert_events_total", "Alert events read from the alerts topic")
NOTICES = Counter("cems_notify_notices_total", "Notices by outcome (delivered, undelivered)", ["outcome"])
ATTEMPTS = Counter(
    "cems_notify_channel_attempts_total", "Channel attempts by channel type and result", ["channel", "result"]
)
HELD = Counter("cems_notify_held_items_total", "Items held back by silences")
EXPIRED = Counter("cems_notify_expired_items_total", "Items not sent: ready longer ago than the maximum delay")
LATENCY = Histogram(
    "cems_notify_latency_seconds",
    "From the alert event's Kafka timestamp to a channel taking the notice (includes group_wait)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
ACTIVE_ALERTS = Gauge("cems_notify_active_alerts", "Alerts that may still give notifications")
IN_FLIGHT = Gauge("cems_notify_receivers_busy", "Receivers a notice is being sent to now")
