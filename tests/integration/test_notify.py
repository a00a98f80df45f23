"""The notifier against real receivers: alert events on a real Kafka topic, the real `cems
notify` process, a real HTTP server answering as DingTalk, WeCom, a webhook and an SMS
gateway, and a real SMTP server. Routing, grouping, escalation, acknowledgement, silences,
retries and fallback, as timelines."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cems.cli import app
from cems.infra.settings import InfraSettings
from cems.topics import ensure_topics
from contracts.alerts import AlertEventType
from contracts.topics import Topics, topics

from .helpers import CemsProcess, consume_all, free_port, infra_env
from .notify_rig import HookServer, SmtpServer, alert, publish, wait_for, write_routing

pytestmark = pytest.mark.integration

ENTERPRISE_NAME = "济源市示范区热电有限公司"  # jy-power-1 in the sample registry


@pytest.fixture
def hooks() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.close()


def _start(infra: InfraSettings, unique: str, tmp_path: Path, routing: Path) -> tuple[CemsProcess, Topics]:
    ns = f"n{unique}"
    topic_set = topics(ns)
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    notifier = CemsProcess(["notify", "--routing", str(routing), "--namespace", ns], tmp_path / "notify.log",
                           b"caught up", infra_env(infra))  # fmt: skip
    notifier.start()
    return notifier, topic_set


def _log(infra: InfraSettings, topic_set: Topics, expect: int = 1) -> list[dict[str, Any]]:
    return consume_all(infra.kafka_bootstrap, topic_set.notifications.name, expect=expect, timeout_s=10, settle_s=0.5)


def _endpoints(hooks: HookServer, smtp: SmtpServer) -> dict[str, Any]:
    return {
        "smtp": {"host": "127.0.0.1", "port": smtp.port, "from": "cems@bureau.test", "security": "none"},
        "dingtalk_base_url": hooks.url,
        "wecom_base_url": hooks.url,
        "sms_gateway_url": f"{hooks.url}/sms/send",
    }


def test_each_channel_receives_one_message_per_enterprise_with_the_facts(
    infra: InfraSettings, unique: str, tmp_path: Path, hooks: HookServer, smtp: SmtpServer
) -> None:
    receivers: dict[str, list[dict[str, Any]]] = {
        "ding": [{"type": "dingtalk", "access_token": "tok-1", "secret": "SECabc"}],
        "wecom": [{"type": "wecom", "key": "key-1"}],
        "hook": [{"type": "webhook", "url": f"{hooks.url}/hooks/cems"}],
        "sms": [{"type": "sms", "phones": ["+8613800000001"]}],
        "mail": [{"type": "email", "to": ["officer@bureau.test"]}],
    }
    routing = write_routing(
        tmp_path / "routing.yaml", receivers,
        [{"name": "all", "levels": [{"receivers": list(receivers)}], "group_wait": "2s"}],
        endpoints=_endpoints(hooks, smtp), delivery={"timeout_s": 5},
    )  # fmt: skip
    notifier, topic_set = _start(infra, unique, tmp_path, routing)
    try:
        burst = [alert("jy-power-1-s1", "so2"), alert("jy-power-1-s1", "nox"), alert("jy-power-1-s2", "so2")]
        publish(infra.kafka_bootstrap, topic_set.alerts.name, [*burst, alert("jy-coke-1-s1", "so2")])
        wait_for(lambda: len(hooks.requests) >= 8 and len(smtp.messages) >= 2, 30, "messages", notifier.tail)
    finally:
        notifier.stop()
    # one message per receiver and enterprise: the burst of three is one message
    for path in ("/robot/send", "/cgi-bin/webhook/send", "/hooks/cems", "/sms/send"):
        assert len(hooks.on(path)) == 2, path
    assert len(smtp.messages) == 2

    [ding] = [r for r in hooks.on("/robot/send") if ENTERPRISE_NAME in r.body["markdown"]["title"]]
    assert ding.query["access_token"] == ["tok-1"]
    timestamp, sign = ding.query["timestamp"][0], ding.query["sign"][0]
    expected = hmac.new(b"SECabc", f"{timestamp}\nSECabc".encode(), hashlib.sha256).digest()
    assert base64.b64decode(sign) == expected
    text = ding.body["markdown"]["text"]
    assert ding.body["msgtype"] == "markdown"
    for fact in ("#1 boiler stack", "SO2", "NOX", "61.5 mg/m³", "35 mg/m³", "2026-11-29 14:00", "超标",
                 "http://grafana.test:3000/d/cems-stack/stack-detail?var-stack=jy-power-1-s1"):  # fmt: skip
        assert fact in text, fact

    [wecom] = [r for r in hooks.on("/cgi-bin/webhook/send") if ENTERPRISE_NAME in r.body["markdown"]["content"]]
    assert wecom.query["key"] == ["key-1"] and "jy-power-1-s2" in wecom.body["markdown"]["content"]

    [hook] = [r for r in hooks.on("/hooks/cems") if r.body["group"] == "jy-power-1"]
    assert hook.headers["Idempotency-Key"] == hook.body["notice_id"]
    assert sorted(a["alert_id"] for a in hook.body["alerts"]) == sorted(e.alert_id for e in burst)
    assert {a["notice"] for a in hook.body["alerts"]} == {"firing"}

    sms_texts = sorted(r.body["text"] for r in hooks.on("/sms/send"))
    assert all(r.body["phones"] == ["+8613800000001"] for r in hooks.on("/sms/send"))
    assert any(ENTERPRISE_NAME in t and "jy-power-1-s2" in t for t in sms_texts)

    [mail] = [m for m in smtp.messages if ENTERPRISE_NAME in str(m["Subject"])]
    assert mail["To"] == "officer@bureau.test" and mail["X-Cems-Notice"]
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None and "61.5 mg/m³" in body.get_content()

    records = _log(infra, topic_set, expect=20)
    delivered = [r for r in records if r["status"] == "delivered"]
    assert len(delivered) == 10 and len({r["notice_id"] for r in delivered}) == 10
    assert {r["notice_id"] for r in records if r["status"] == "sending"} == {r["notice_id"] for r in delivered}


def test_a_refusing_smtp_server_is_retried_logged_and_the_next_channel_used(
    infra: InfraSettings, unique: str, tmp_path: Path, hooks: HookServer, smtp: SmtpServer
) -> None:
    smtp.refuse = True
    routing = write_routing(
        tmp_path / "routing.yaml",
        {"officer": [{"type": "email", "to": ["officer@bureau.test"]}, {"type": "webhook", "url": f"{hooks.url}/h"}]},
        [{"name": "all", "levels": [{"receivers": ["officer"]}], "group_wait": "0s"}],
        endpoints=_endpoints(hooks, smtp), delivery={"attempts_per_channel": 3, "backoff_s": 0.2, "timeout_s": 5},
    )  # fmt: skip
    notifier, topic_set = _start(infra, unique, tmp_path, routing)
    try:
        publish(infra.kafka_bootstrap, topic_set.alerts.name, [alert("jy-power-1-s1")])
        wait_for(lambda: len(hooks.on("/h")) == 1, 30, "fallback webhook", notifier.tail)
    finally:
        notifier.stop()
    assert smtp.refused == 3 and smtp.messages == []
    records = _log(infra, topic_set, expect=5)
    failed = [r for r in records if r["status"] == "failed"]
    assert [(r["channel"], r["attempt"]) for r in failed] == [("email#0", 1), ("email#0", 2), ("email#0", 3)]
    assert all("554" in r["error"] for r in failed)
    [delivered] = [r for r in records if r["status"] == "delivered"]
    assert delivered["channel"] == "webhook#1"


def test_escalation_stops_on_acknowledgement_and_resolved_reaches_everyone_told(
    infra: InfraSettings, unique: str, tmp_path: Path, hooks: HookServer
) -> None:
    routing = write_routing(
        tmp_path / "routing.yaml",
        {name: [{"type": "webhook", "url": f"{hooks.url}/{name}"}] for name in ("officer", "chief")},
        [{"name": "all", "group_wait": "0s", "group_interval": "0s",
          "levels": [{"receivers": ["officer"]}, {"after": "4s", "receivers": ["chief"]}]}],
    )  # fmt: skip
    notifier, topic_set = _start(infra, unique, tmp_path, routing)
    taken, ignored = alert("jy-power-1-s1", "so2"), alert("jy-power-1-s1", "nox")
    try:
        publish(infra.kafka_bootstrap, topic_set.alerts.name, [taken, ignored])
        wait_for(lambda: len(hooks.on("/officer")) >= 1, 20, "officer told", notifier.tail)
        acknowledged = taken.model_copy(update={"event": AlertEventType.ACKNOWLEDGED})
        publish(infra.kafka_bootstrap, topic_set.alerts.name, [acknowledged])
        wait_for(lambda: len(hooks.on("/chief")) >= 1, 20, "chief told", notifier.tail)
        resolved = ignored.model_copy(update={"event": AlertEventType.RESOLVED, "end": ignored.start})
        publish(infra.kafka_bootstrap, topic_set.alerts.name, [resolved])
        wait_for(lambda: len(hooks.on("/officer")) >= 2 and len(hooks.on("/chief")) >= 2, 20, "resolved",
                 notifier.tail)  # fmt: skip
    finally:
        notifier.stop()

    def items(path: str) -> list[list[str]]:
        return [sorted(a["alert_id"] + "|" + a["notice"] for a in r.body["alerts"]) for r in hooks.on(path)]

    assert items("/officer") == [sorted([f"{taken.alert_id}|firing", f"{ignored.alert_id}|firing"]),
                                 [f"{ignored.alert_id}|resolved"]]  # fmt: skip
    # only the alert nobody acknowledged was escalated to the chief
    assert items("/chief") == [[f"{ignored.alert_id}|escalation-1"], [f"{ignored.alert_id}|resolved"]]


def test_a_silence_holds_back_records_what_it_held_and_releases_at_its_end(
    infra: InfraSettings, unique: str, tmp_path: Path, hooks: HookServer
) -> None:
    routing = write_routing(
        tmp_path / "routing.yaml", {"officer": [{"type": "webhook", "url": f"{hooks.url}/officer"}]},
        [{"name": "all", "group_wait": "0s", "group_interval": "0s", "levels": [{"receivers": ["officer"]}]}],
    )  # fmt: skip
    notifier, topic_set = _start(infra, unique, tmp_path, routing)
    ns = topic_set.alerts.name.split(".")[0]
    runner = CliRunner(env={**infra_env(infra), "COLUMNS": "300"})
    try:
        added = runner.invoke(app, ["silence", "add", "--match", "enterprise=jy-power-1", "--duration", "8s",
                                    "--author", "li", "--reason", "FGD overhaul", "--namespace", ns])  # fmt: skip
        assert added.exit_code == 0, added.output
        silence_id = added.output.split()[1].rstrip(":")
        publish(infra.kafka_bootstrap, topic_set.alerts.name, [alert("jy-power-1-s1"), alert("jy-coke-1-s1")])
        wait_for(lambda: len(hooks.on("/officer")) >= 1, 20, "unsilenced alert", notifier.tail)
        wait_for(lambda: any(r["status"] == "silenced" for r in _log(infra, topic_set)), 10, "held back logged")
        assert [r.body["group"] for r in hooks.on("/officer")] == ["jy-coke-1"]
        listed = runner.invoke(app, ["silence", "list", "--namespace", ns])
        assert listed.exit_code == 0 and silence_id in listed.output and "1 notices of 1 alerts" in listed.output
        wait_for(lambda: len(hooks.on("/officer")) >= 2, 20, "released after the silence", notifier.tail)
    finally:
        notifier.stop()
    assert [r.body["group"] for r in hooks.on("/officer")] == ["jy-coke-1", "jy-power-1"]
    held = [r for r in _log(infra, topic_set, expect=5) if r["status"] == "silenced"]
    assert len(held) == 1 and held[0]["silence_id"] == silence_id


def test_the_api_puts_an_acknowledgement_on_the_topic_keyed_by_stack(
    infra: InfraSettings, unique: str, tmp_path: Path, hooks: HookServer
) -> None:
    routing = write_routing(
        tmp_path / "routing.yaml", {"officer": [{"type": "webhook", "url": f"{hooks.url}/officer"}]},
        [{"name": "all", "levels": [{"receivers": ["officer"]}]}],
    )  # fmt: skip
    ns = f"n{unique}"
    topic_set = topics(ns)
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    opened, gone = alert("jy-power-1-s2", "so2"), alert("jy-coke-1-s1", "so2")
    resolved = gone.model_copy(update={"event": AlertEventType.RESOLVED, "end": gone.start})
    publish(infra.kafka_bootstrap, topic_set.alerts.name, [opened, gone, resolved])
    port = free_port()
    notifier = CemsProcess(
        ["notify", "--routing", str(routing), "--namespace", ns, "--api-port", str(port)], tmp_path / "notify.log",
        b"API on", {**infra_env(infra), "CEMS_NOTIFY_API_TOKEN": "s3cret"},
    )  # fmt: skip
    notifier.start()
    base, auth = f"http://127.0.0.1:{port}/api/v1/alerts", {"Authorization": "Bearer s3cret"}
    try:
        with httpx.Client(timeout=10) as http:
            assert http.post(f"{base}/{opened.alert_id}/acknowledge", json={"officer": "wang"}).status_code == 401
            wrong = {"Authorization": "Bearer guess"}
            assert (
                http.post(f"{base}/{opened.alert_id}/acknowledge", json={"officer": "wang"}, headers=wrong).status_code
                == 401
            )
            assert http.post(f"{base}/nope/acknowledge", json={"officer": "wang"}, headers=auth).status_code == 404
            assert (
                http.post(f"{base}/{gone.alert_id}/acknowledge", json={"officer": "wang"}, headers=auth).status_code
                == 409
            )
            bad = http.post(f"{base}/{opened.alert_id}/acknowledge", json={"officer": ""}, headers=auth)
            assert bad.status_code == 400 and "officer" in bad.json()["error"]
            ack_url = f"{base}/{opened.alert_id}/acknowledge"
            assert http.post(ack_url, content=b"{not json", headers=auth).status_code == 400
            assert http.post(ack_url, json=["wang"], headers=auth).status_code == 400
            huge = http.post(ack_url, json={"officer": "w", "note": "x" * 100_000}, headers=auth)
            assert huge.status_code == 413  # the API reads at most 64 KiB
            ok = http.post(f"{base}/{opened.alert_id}/acknowledge", json={"officer": "wang", "note": "on my way"},
                           headers=auth)  # fmt: skip
            assert ok.status_code == 202, ok.text
            shown = http.get(f"{base}/{opened.alert_id}", headers=auth).json()
            assert shown["state"] == "open" and shown["latest"]["stack"] == "jy-power-1-s2"
    finally:
        notifier.stop()
    acks = consume_all(infra.kafka_bootstrap, topic_set.acknowledgements.name, expect=1, timeout_s=10, settle_s=0.5)
    assert [(a["alert_id"], a["stack"], a["officer"], a["note"]) for a in acks] == [
        (opened.alert_id, "jy-power-1-s2", "wang", "on my way")
    ]
