"""The routing files, secrets from the environment, matchers, messages and DingTalk's
signature: the notifier's pure parts and its configuration loading."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from cems.run import describe_delivery
from contracts.errors import ConfigError
from contracts.notifications import DeliveryRecord, DeliveryStatus, parse_matcher
from contracts.registry import load_registry
from notify.channels import dingtalk_url
from notify.config import load_routing
from notify.settings import SAMPLE_ROUTING
from rules.notify.config import DingTalkChannel
from rules.notify.render import AlertFacts, render
from rules.notify.routing import directory, labels, routes_for
from tests.integration.notify_rig import alert

EXAMPLE = SAMPLE_ROUTING.with_name("routing-example.yaml")
SECRETS = {n: "x" for n in ("CEMS_SMTP_PASSWORD", "CEMS_DINGTALK_URBAN_TOKEN", "CEMS_DINGTALK_URBAN_SECRET",
                            "CEMS_WECOM_CHIEF_KEY")}  # fmt: skip


def test_the_sample_routing_takes_every_stack_of_the_sample_registry_to_its_district_officer() -> None:
    config = load_routing(SAMPLE_ROUTING, env={})
    registry = load_registry()
    places = directory(registry)
    for enterprise, stack in registry.stacks():
        routes = routes_for(config, labels(alert(stack.id), places))
        assert [r.name for r in routes] != ["anywhere-else"], f"{enterprise.district} has no route"
        assert enterprise.district in routes[0].match["district"]
        assert [len(r.levels) for r in routes] == [3]


def test_the_example_routing_reads_its_secrets_from_the_environment() -> None:
    config = load_routing(EXAMPLE, env={**SECRETS, "CEMS_DINGTALK_URBAN_TOKEN": "tok-from-env"})
    ding = config.receivers["urban-officer"].channels[0]
    assert isinstance(ding, DingTalkChannel) and ding.access_token == "tok-from-env"


def test_a_missing_secret_names_the_file_the_key_and_the_variable() -> None:
    env = {k: v for k, v in SECRETS.items() if k != "CEMS_WECOM_CHIEF_KEY"}
    with pytest.raises(ConfigError) as caught:
        load_routing(EXAMPLE, env=env)
    assert str(caught.value) == (
        f"{EXAMPLE}: receivers.section-chief.channels.0.key: environment variable CEMS_WECOM_CHIEF_KEY is not set"
    )


def test_an_address_apprise_cannot_send_to_is_refused_at_load(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace("chief@example.org", "not an address")
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"receivers\.section-chief: e-mail to not an address: not an e-mail address"):
        load_routing(path, env=SECRETS)


@pytest.mark.parametrize(
    ("text", "label", "op", "value"),
    [("kind=bypass", "kind", "=", "bypass"), ("stack!=jy-coke-1-s2", "stack", "!=", "jy-coke-1-s2"),
     ("enterprise=~jy-coke-.*", "enterprise", "=~", "jy-coke-.*")],
)  # fmt: skip
def test_matchers_parse(text: str, label: str, op: str, value: str) -> None:
    m = parse_matcher(text)
    assert (m.label, m.op, m.value) == (label, op, value)


@pytest.mark.parametrize("text", ["colour=red", "kind", "enterprise=~(unclosed"])
def test_bad_matchers_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_matcher(text)


def test_messages_state_the_facts_in_chinese_and_english() -> None:
    places = directory(load_registry())
    event = alert("jy-power-1-s1", "so2")
    facts = [AlertFacts(f"{event.alert_id}|firing", "firing", event)]
    zone = load_routing(SAMPLE_ROUTING, env={}).zone
    zh = render(facts, "jy-power-1", places, language="zh", zone=zone, grafana_url="http://g:3000")
    en = render(facts, "jy-power-1", places, language="en", zone=zone, grafana_url=None)
    assert zh.title == "排放告警 济源市示范区热电有限公司: 1 条"
    assert "[新告警] 严重 超标 · #1 boiler stack (jy-power-1-s1) · SO2" in zh.markdown
    assert "小时均值(折算) 61.5 mg/m³ > 限值 35 mg/m³" in zh.text and "时段 2026-11-29 14:00" in zh.text
    assert "http://g:3000/d/cems-stack/stack-detail?var-stack=jy-power-1-s1" in zh.markdown
    assert en.title == "Emission alerts 济源市示范区热电有限公司: 1"
    assert "hourly average (converted) 61.5 mg/m³ > limit 35 mg/m³" in en.text and "http" not in en.text
    assert len(zh.short) <= 300 and "jy-power-1-s1" in zh.short


def test_dingtalk_signature_is_hmac_sha256_of_timestamp_and_secret() -> None:
    url = dingtalk_url(
        "https://oapi.dingtalk.com", DingTalkChannel(type="dingtalk", access_token="t", secret="S"), 1700
    )
    query = parse_qs(urlparse(url).query)
    assert urlparse(url).path == "/robot/send" and query["access_token"] == ["t"] and query["timestamp"] == ["1700"]
    assert base64.b64decode(query["sign"][0]) == hmac.new(b"S", b"1700\nS", hashlib.sha256).digest()


def test_run_shows_deliveries_and_holds_but_not_attempts() -> None:
    base: dict[str, Any] = {"notice_id": "n", "receiver": "urban-officer", "group": "jy-power-1",
                            "items": ("a|firing", "b|firing"), "at": datetime(2026, 11, 29, tzinfo=UTC)}  # fmt: skip
    shown = describe_delivery(DeliveryRecord(**base, status=DeliveryStatus.DELIVERED, channel="log#0", title="T"))
    assert shown is not None and "urban-officer via log#0: T (2 items)" in shown
    held = describe_delivery(DeliveryRecord(**base, status=DeliveryStatus.SILENCED, silence_id="s1"))
    assert held is not None and "silence s1" in held
    assert describe_delivery(DeliveryRecord(**base, status=DeliveryStatus.SENDING)) is None
