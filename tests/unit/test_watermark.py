"""The event-time watermark the worker and replay share (rules.watermark)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rules.watermark import Watermark

T = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
WALL = T + timedelta(hours=5)  # a backfill: event times well behind the wall clock


def test_minimum_over_active_partitions() -> None:
    w = Watermark(live=True, idle_s=10)
    w.observe(0, T + timedelta(minutes=30), arrival_s=100.0)
    w.observe(1, T + timedelta(minutes=10), arrival_s=101.0)
    assert w.now(102.0, WALL) == T + timedelta(minutes=10)


def test_idle_partition_stops_holding_the_clock_back() -> None:
    w = Watermark(live=False, idle_s=10)
    w.observe(0, T + timedelta(minutes=30), arrival_s=100.0)
    w.observe(1, T + timedelta(minutes=10), arrival_s=100.0)
    w.observe(0, T + timedelta(minutes=40), arrival_s=111.0)
    assert w.now(111.0) == T + timedelta(minutes=40)


def test_live_mode_uses_the_wall_clock_only_in_total_silence() -> None:
    w = Watermark(live=True, idle_s=10)
    assert w.now(0.0, WALL) == WALL  # nothing ever arrived
    w.observe(0, T, arrival_s=100.0)
    assert w.now(105.0, WALL) == T  # a backfill flowing: event time rules
    assert w.now(120.0, WALL) == WALL  # all quiet: the wall clock
    event_mode = Watermark(live=False, idle_s=10)
    event_mode.observe(0, T, arrival_s=100.0)
    assert event_mode.now(120.0, WALL) == T
