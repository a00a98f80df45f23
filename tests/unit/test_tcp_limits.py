"""The HJ 212 TCP listener's decisions, pure (``ingest/tcp_limits.py``): admission per source
network and in all with eviction of the oldest connection that never authenticated, quiet
connections, the refusal budget, blank lines."""

from __future__ import annotations

import pytest

from ingest.tcp_limits import (
    Closure,
    ConnectionBook,
    Refusal,
    RefusalBudget,
    TcpLimits,
    expiry,
    is_blank,
    source_network,
)


@pytest.mark.parametrize(
    ("address", "limits", "network"),
    [
        ("203.0.113.77", TcpLimits(), "203.0.113.0/24"),
        ("2001:db8:40:1:aaaa::1", TcpLimits(), "2001:db8:40:1::/64"),
        ("::ffff:203.0.113.77", TcpLimits(), "203.0.113.0/24"),  # IPv4-mapped: counted as IPv4
        ("203.0.113.77", TcpLimits(ipv4_prefix=32), "203.0.113.77/32"),
        ("2001:db8:40:1:aaaa::1", TcpLimits(ipv6_prefix=48), "2001:db8:40::/48"),
        ("fe80::1%eth0", TcpLimits(), "fe80::/64"),
        ("not-an-address", TcpLimits(), "not-an-address"),
    ],
)
def test_source_network(address: str, limits: TcpLimits, network: str) -> None:
    assert source_network(address, limits) == network


@pytest.mark.parametrize(
    ("admitted_before", "address", "expected"),
    [
        ([], "10.0.0.1", None),
        (["10.0.0.1"] * 2, "10.0.0.1", Refusal.PER_ADDRESS),
        (["10.0.0.1", "10.0.0.200"], "10.0.0.7", Refusal.PER_ADDRESS),  # one /24
        (["10.0.0.1"] * 2, "10.0.1.1", None),
        (["10.0.0.1", "10.0.1.1", "10.0.2.1", "10.0.3.1"], "10.0.0.1", None),  # the cap: a stranger goes
    ],
)
def test_connection_book_admits_per_network(admitted_before: list[str], address: str, expected: Refusal | None) -> None:
    book: ConnectionBook[int] = ConnectionBook(TcpLimits(max_connections=4, max_per_address=2))
    for key, a in enumerate(admitted_before):
        assert book.admit(key, a).refusal is None
    assert book.admit(99, address).refusal is expected
    assert book.total == min(4, len(admitted_before) + (expected is None))
    for key in range(len(admitted_before)):
        book.release(key)
    assert book.total == (expected is None)


def test_at_the_total_cap_the_oldest_stranger_is_evicted_never_an_authenticated_one() -> None:
    book: ConnectionBook[str] = ConnectionBook(TcpLimits(max_connections=3, max_per_address=10))
    for key in ("a", "b", "c"):
        assert book.admit(key, "10.0.0.1").evicted is None
    book.authenticated("a")
    assert book.unauthenticated == 2
    # b is the oldest stranger: it makes room
    admission = book.admit("d", "10.0.0.1")
    assert (admission.refusal, admission.evicted) == (None, "b")
    assert book.total == 3 and not book.release("b"), "the evicted one is out of the book already"
    book.authenticated("c")
    admission = book.admit("e", "10.0.0.2")
    assert (admission.refusal, admission.evicted) == (None, "d")
    book.authenticated("e")
    # all authenticated: the newcomer is refused, nobody evicted
    admission = book.admit("f", "10.0.0.3")
    assert (admission.refusal, admission.evicted) == (Refusal.TOTAL, None)
    assert book.total == 3 and book.unauthenticated == 0
    assert all(book.is_authenticated(k) for k in ("a", "c", "e"))
    # a network at its cap is refused before anyone is evicted for it
    small: ConnectionBook[str] = ConnectionBook(TcpLimits(max_connections=2, max_per_address=1))
    assert small.admit("x", "10.0.0.1").refusal is None
    assert small.admit("y", "10.0.1.1").refusal is None
    assert small.admit("z", "10.0.0.9").refusal is Refusal.PER_ADDRESS
    assert small.total == 2 and small.from_network_of("10.0.0.200") == 1


def test_release_counts_out_once() -> None:
    book: ConnectionBook[str] = ConnectionBook(TcpLimits(max_per_address=1))
    book.admit("a", "10.0.0.1")
    assert book.release("a")
    assert not book.release("a")
    assert book.total == 0 and book.from_network_of("10.0.0.1") == 0
    assert book.admit("b", "10.0.0.1").refusal is None


LIMITS = TcpLimits(idle_timeout_s=600, auth_timeout_s=30)


@pytest.mark.parametrize(
    ("opened_s", "authenticated_s", "now_s", "limits", "expected"),
    [
        (100.0, None, 129.9, LIMITS, None),
        (100.0, None, 130.0, LIMITS, Closure.AUTH_TIMEOUT),
        (100.0, 120.0, 130.0, LIMITS, None),  # authenticated: the idle time applies
        (100.0, 120.0, 719.9, LIMITS, None),
        (100.0, 120.0, 720.0, LIMITS, Closure.IDLE),
        # an idle time shorter than the authentication time closes strangers too
        (100.0, None, 102.0, TcpLimits(idle_timeout_s=2, auth_timeout_s=30), Closure.IDLE),
        (100.0, None, 101.9, TcpLimits(idle_timeout_s=2, auth_timeout_s=30), None),
    ],
)
def test_expiry(
    opened_s: float, authenticated_s: float | None, now_s: float, limits: TcpLimits, expected: Closure | None
) -> None:
    assert expiry(opened_s, authenticated_s, now_s, limits) is expected


def test_refusal_budget_allows_a_burst_then_the_rate() -> None:
    limits = TcpLimits(max_refusals=100, refusal_window_s=10)  # 100 at once, then 10 a second
    budget = RefusalBudget()
    assert not any(budget.spend(1000.0, limits) for _ in range(100))
    assert budget.spend(1000.0, limits), "the 101st at once"
    # a steady 9 a second, after a pause that emptied it, lasts for ever
    steady = RefusalBudget()
    assert not any(steady.spend(2000.0 + i / 9, limits) for i in range(9 * 600))
    # 11 a second fills it within a couple of minutes
    fast = RefusalBudget()
    over_at = next(i for i in range(11 * 600) if fast.spend(3000.0 + i / 11, limits)) / 11
    assert 90 <= over_at <= 110, over_at


def test_a_device_reporting_each_minute_with_some_refused_stays_within_the_budget() -> None:
    limits = TcpLimits()
    budget = RefusalBudget()
    assert not any(budget.spend(60.0 * i + k, limits) for i in range(1440) for k in range(5))


@pytest.mark.parametrize(
    ("chunk", "blank"),
    [(b"\r\n", True), (b" \t\r\n", True), (b"\n", True), (b"", True), (b"x\r\n", False), (b"##0000\r\n", False)],
)
def test_is_blank(chunk: bytes, blank: bool) -> None:
    assert is_blank(chunk) is blank


@pytest.mark.parametrize(
    "bad",
    [
        {"idle_timeout_s": 0},
        {"auth_timeout_s": 0},
        {"max_per_address": 0},
        {"max_refusals": 0},
        {"refusal_window_s": -1},
        {"ipv4_prefix": 33},
        {"ipv6_prefix": 129},
    ],
)
def test_limits_must_make_sense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TcpLimits(**bad)  # type: ignore[arg-type]
