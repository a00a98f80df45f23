"""Notification planning as timelines: alert events seen at t, silences, the delivery log;
expect these notices at t' (and nothing before). Pure: ``NotifyBook.plan(now)``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.alerts import AlertEvent, AlertEventType, AlertKind, Severity, alert_id, fingerprint
from contracts.errors import ConfigError
from contracts.notifications import DeliveryRecord, DeliveryStatus, Matcher, Silence
from contracts.registry import load_registry
from rules.notify.config import routing_config
from rules.notify.planner import NotifyBook, Outcome, Plan
from rules.notify.routing import directory

T0 = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
PLACES = directory(load_registry())


def config(**route: Any) -> dict[str, Any]:
    base_route = {
        "name": "all",
        "levels": [
            {"after": 0, "receivers": ["officer"]},
            {"after": "30m", "receivers": ["chief"]},
            {"after": "2h", "receivers": ["duty"]},
        ],
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "4h",
    }
    base_route.update(route)
    return {
        "version": 1,
        "receivers": {name: {"name": name, "channels": [{"type": "log"}]} for name in ("officer", "chief", "duty")},
        "routes": [base_route],
    }


def book(**route: Any) -> NotifyBook:
    return NotifyBook(routing_config(config(**route)), PLACES)


def event(
    stack: str = "jy-power-1-s1",
    kind: AlertKind = AlertKind.EXCEEDANCE,
    what: AlertEventType = AlertEventType.OPENED,
    severity: Severity = Severity.CRITICAL,
    parameter: str | None = "so2",
    start: datetime = T0,
) -> AlertEvent:
    fp = fingerprint(stack, parameter, kind)
    return AlertEvent(
        event=what, kind=kind, severity=severity, alert_id=alert_id(fp, start), fingerprint=fp,
        enterprise=stack.rsplit("-", 1)[0], stack=stack, parameter=parameter, start=start,
        end=start if what is AlertEventType.RESOLVED else None, at=start, reason="test", evidence={},
    )  # fmt: skip


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sent(plan: Plan) -> list[tuple[str, tuple[str, ...]]]:
    return [(n.receiver, tuple(i.split("|")[1] for i in n.items)) for n in plan.notices]


def deliver(b: NotifyBook, plan: Plan, when: datetime) -> None:
    for n in plan.notices:
        b.add_record(DeliveryRecord(notice_id=n.notice_id, receiver=n.receiver, group=n.group, items=n.items,
                                    status=DeliveryStatus.DELIVERED, at=when))  # fmt: skip


def test_firing_waits_group_wait_then_goes_to_the_first_level() -> None:
    b = book()
    b.add_event(event(), seen_at=at(0))
    early = b.plan(at(10))
    assert early.notices == [] and early.wake_at == at(30)
    due = b.plan(at(30))
    assert sent(due) == [("officer", ("firing",))]


def test_a_burst_for_one_enterprise_is_one_message_per_receiver() -> None:
    b = book()
    for i, (stack, param) in enumerate([("jy-power-1-s1", "so2"), ("jy-power-1-s1", "nox"), ("jy-power-1-s2", "so2")]):
        b.add_event(event(stack, parameter=param), seen_at=at(i * 5))
    b.add_event(event("jy-coke-1-s1"), seen_at=at(12))
    plan = b.plan(at(45))
    assert sorted((n.receiver, n.group, len(n.items)) for n in plan.notices) == [
        ("officer", "jy-coke-1", 1),
        ("officer", "jy-power-1", 3),
    ]


def test_after_a_message_the_group_waits_group_interval() -> None:
    b = book()
    b.add_event(event(parameter="so2"), seen_at=at(0))
    deliver(b, b.plan(at(30)), at(31))
    b.add_event(event(parameter="nox"), seen_at=at(60))
    plan = b.plan(at(100))
    assert plan.notices == [] and plan.wake_at == at(31 + 300)
    assert sent(b.plan(at(331))) == [("officer", ("firing",))]


def test_escalation_goes_level_by_level_until_acknowledged() -> None:
    b = book()
    b.add_event(event(), seen_at=at(0))
    deliver(b, b.plan(at(30)), at(30))
    assert b.plan(at(29 * 60)).notices == []
    assert sent(b.plan(at(30 * 60 + 30))) == [("chief", ("escalation-1",))]
    deliver(b, b.plan(at(30 * 60 + 30)), at(30 * 60 + 30))
    b.add_event(event(what=AlertEventType.ACKNOWLEDGED), seen_at=at(3600))
    later = b.plan(at(3 * 3600))
    assert later.notices == []  # no bureau duty (level 2 at 2 h), no reminders


def test_acknowledged_before_the_next_level_is_never_escalated() -> None:
    b = book()
    b.add_event(event(), seen_at=at(0))
    deliver(b, b.plan(at(30)), at(30))
    b.add_event(event(what=AlertEventType.ACKNOWLEDGED), seen_at=at(600))
    assert b.plan(at(5 * 3600)).notices == []


def test_reminders_while_unacknowledged_only_the_latest_after_an_outage() -> None:
    b = book(levels=[{"after": 0, "receivers": ["officer"]}])
    b.add_event(event(), seen_at=at(0))
    deliver(b, b.plan(at(30)), at(30))
    plan = b.plan(at(3600))
    assert plan.notices == [] and plan.wake_at == at(30 + 4 * 3600)
    assert sent(b.plan(at(30 + 9 * 3600))) == [("officer", ("reminder-2",))]


def test_resolved_goes_to_everyone_told_and_then_the_alert_is_settled() -> None:
    b = book()
    b.add_event(event(), seen_at=at(0))
    deliver(b, b.plan(at(30)), at(30))
    deliver(b, b.plan(at(1830)), at(1830))  # chief told
    b.add_event(event(what=AlertEventType.RESOLVED), seen_at=at(2000))
    plan = b.plan(at(2400))
    assert sorted(sent(plan)) == [("chief", ("resolved",)), ("officer", ("resolved",))]
    deliver(b, plan, at(2400))
    assert b.plan(at(2500)).notices == [] and not b.active


def test_an_alert_that_resolves_before_its_message_is_still_reported_once_with_its_end() -> None:
    b = book()
    b.add_event(event(), seen_at=at(0))
    b.add_event(event(what=AlertEventType.RESOLVED), seen_at=at(10))
    plan = b.plan(at(30))
    assert sent(plan) == [("officer", ("firing",))]  # a violation is reported even when short
    deliver(b, plan, at(30))
    assert sent(b.plan(at(400))) == [("officer", ("resolved",))]


def silence(start: float, end: float, *matchers: Matcher) -> Silence:
    return Silence(id="s1", matchers=matchers or (Matcher(label="enterprise", value="jy-power-1"),),
                   starts_at=at(start), ends_at=at(end), author="li", reason="desulphuriser overhaul",
                   created_at=at(start))  # fmt: skip


def test_a_silence_holds_back_logs_once_and_releases_at_its_end() -> None:
    b = book(levels=[{"after": 0, "receivers": ["officer"]}])
    b.add_silence(silence(0, 3600))
    b.add_event(event(), seen_at=at(60))
    b.add_event(event("jy-coke-1-s1"), seen_at=at(60))  # not matched: goes out
    plan = b.plan(at(100))
    assert sent(plan) == [("officer", ("firing",))] and plan.notices[0].group == "jy-coke-1"
    assert [(e.outcome, e.silence_id, e.items) for e in plan.logged] == [
        (Outcome.HOLD, "s1", (event().alert_id + "|firing",))
    ]
    assert plan.wake_at == at(3600)
    for entry in plan.logged:
        b.add_record(DeliveryRecord(notice_id="-", receiver=entry.receiver, group=entry.group, items=entry.items,
                                    status=DeliveryStatus.SILENCED, silence_id=entry.silence_id,
                                    at=at(100)))  # fmt: skip
    deliver(b, plan, at(100))
    again = b.plan(at(200))
    assert again.notices == [] and again.logged == []  # logged once per silence
    b.add_event(event(what=AlertEventType.RESOLVED), seen_at=at(1800))
    after = b.plan(at(3600))
    # what the silence held back is told when it ends: that it fired, and that it resolved
    assert sent(after) == [("officer", ("firing", "resolved"))]


def test_quiet_hours_delay_warnings_not_critical_alerts() -> None:
    b = book(quiet_hours={"start": "22:00", "end": "07:00"}, levels=[{"after": 0, "receivers": ["officer"]}])
    night = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)  # 23:00 in Beijing
    b.add_event(event("jy-power-1-s1", severity=Severity.WARNING, parameter="nox"), seen_at=night)
    b.add_event(event("jy-coke-1-s1", severity=Severity.CRITICAL), seen_at=night)
    plan = b.plan(night + timedelta(seconds=30))
    assert [n.group for n in plan.notices] == ["jy-coke-1"]
    deliver(b, plan, night + timedelta(seconds=30))
    morning = datetime(2026, 11, 29, 23, 0, tzinfo=UTC)  # 07:00 in Beijing
    assert plan.wake_at == morning
    assert [n.group for n in b.plan(morning + timedelta(seconds=30)).notices] == ["jy-power-1"]


def test_a_notice_logged_sending_without_outcome_is_sent_again_as_it_was() -> None:
    b = book()
    b.add_event(event(), seen_at=at(0))
    [notice] = b.plan(at(30)).notices
    b.add_record(DeliveryRecord(notice_id=notice.notice_id, receiver=notice.receiver, group=notice.group,
                                items=notice.items, status=DeliveryStatus.SENDING, at=at(30)))  # fmt: skip
    b.add_event(event(parameter="nox"), seen_at=at(31))
    again = b.plan(at(61))
    assert again.notices[0].resend and again.notices[0].notice_id == notice.notice_id
    assert again.notices[0].items == notice.items
    assert len(again.notices) == 1  # the new alert waits for the group interval after the resend
    assert b.plan(at(61), busy=frozenset({("officer", "jy-power-1")})).notices == []


def test_items_older_than_the_max_delay_are_expired_not_sent() -> None:
    b = book()
    b.add_event(event(), seen_at=at(0))
    plan = b.plan(at(3 * 86400))
    assert plan.notices == [] and {e.outcome for e in plan.logged} == {Outcome.EXPIRE}


def test_routes_match_labels_in_order_and_continue() -> None:
    raw = config()
    raw["routes"] = [
        {"name": "coke", "match": {"industry": ["coking"]}, "levels": [{"receivers": ["chief"]}], "continue": True},
        {"name": "yuquan", "match": {"district": ["玉泉街道"]}, "levels": [{"receivers": ["officer"]}]},
        {"name": "rest", "levels": [{"receivers": ["duty"]}]},
    ]
    b = NotifyBook(routing_config(raw), PLACES)
    b.add_event(event("jy-power-1-s1"), seen_at=at(0))  # 玉泉街道, coal power
    b.add_event(event("jy-coke-1-s1"), seen_at=at(0))  # coking, in 克井镇? whichever: not 玉泉街道
    receivers = sorted((n.group, n.receiver) for n in b.plan(at(30)).notices)
    coke_district = PLACES["jy-coke-1-s1"].district
    expected_coke = "officer" if coke_district == "玉泉街道" else "duty"
    assert receivers == sorted([("jy-power-1", "officer"), ("jy-coke-1", "chief"), ("jy-coke-1", expected_coke)])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["routes"][0]["levels"][1].update(receivers=["nobody"]), "unknown receivers: nobody"),
        (lambda c: c["routes"][0].update(group_wait="5 minutes"), "routes.0.group_wait"),
        (lambda c: c["routes"][0].update(colour="red"), "routes.0.colour: unknown key"),
        (lambda c: c["routes"][0]["levels"][1].update(after=0), "increasing after"),
        (lambda c: c.update(timezone="Mars/Olympus"), "not a known IANA time zone"),
        (lambda c: c["receivers"]["officer"].update(channels=[{"type": "email", "to": ["a@b"]}]), "endpoints.smtp"),
    ],
)
def test_configuration_errors_name_the_key(change: Any, message: str) -> None:
    raw = config()
    change(raw)
    with pytest.raises(ConfigError, match=r"routing\.yaml") as caught:
        routing_config(raw, "routing.yaml")
    assert message in str(caught.value)
