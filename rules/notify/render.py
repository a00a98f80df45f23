"""Messages officers act on, in Chinese or English. Pure.

A notice becomes a ``Message``: a title, a Markdown body (DingTalk, WeCom), a plain-text body
(e-mail, log) and one short line (SMS). Each alert says what an officer needs to act: the
enterprise, the stack, the parameter, the hourly value against the limit and the hour where
the evidence has them, since when, and a link to the stack's detail dashboard in Grafana.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from contracts.alerts import AlertEvent

from .routing import Directory

_KIND = {
    "zh": {
        "exceedance": "超标",
        "early_warning": "超标预警",
        "spike": "瞬时值突增",
        "bypass": "旁路排放",
        "data_gap": "数据缺失",
        "invalid_mark": "无效数据标记",
        "flatline": "数据恒定不变",
        "limit_hugging": "贴线排放",
        "zs_mismatch": "折算值不符",
    },
    "en": {
        "exceedance": "exceedance",
        "early_warning": "exceedance warning",
        "spike": "spike",
        "bypass": "bypass in use",
        "data_gap": "data gap",
        "invalid_mark": "invalid data flag",
        "flatline": "flat line",
        "limit_hugging": "limit hugging",
        "zs_mismatch": "converted value mismatch",
    },
}
_SEVERITY = {
    "zh": {"critical": "严重", "warning": "警告", "info": "提示"},
    "en": {"critical": "CRITICAL", "warning": "warning", "info": "info"},
}
_WHAT = {
    "zh": {"firing": "新告警", "escalation": "升级(无人确认)", "reminder": "提醒(仍未确认)", "resolved": "已恢复"},
    "en": {
        "firing": "new",
        "escalation": "escalated (not acknowledged)",
        "reminder": "reminder (still not acknowledged)",
        "resolved": "resolved",
    },
}
_WORDS = {
    "zh": {
        "title": "排放告警 {enterprise}: {count} 条",
        "since": "开始",
        "until": "结束",
        "hour": "时段",
        "value": "小时均值(折算)",
        "limit": "限值",
        "detail": "详情",
        "link": "查看监测数据",
        "id": "告警编号",
    },
    "en": {
        "title": "Emission alerts {enterprise}: {count}",
        "since": "since",
        "until": "until",
        "hour": "hour",
        "value": "hourly average (converted)",
        "limit": "limit",
        "detail": "detail",
        "link": "monitoring data",
        "id": "alert id",
    },
}


@dataclass(frozen=True)
class Message:
    title: str
    markdown: str
    text: str
    short: str


@dataclass(frozen=True)
class AlertFacts:
    """One item of a notice, as the message states it."""

    item: str
    what: str
    event: AlertEvent


def stack_link(grafana_url: str | None, stack: str) -> str | None:
    if grafana_url is None:
        return None
    # stack ids are registry identifiers (letters, digits, - and _): safe in a URL as they are
    return f"{grafana_url.rstrip('/')}/d/cems-stack/stack-detail?var-stack={stack}"


def _local(t: datetime | str | None, zone: ZoneInfo) -> str:
    if t is None:
        return "-"
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    return t.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def render(
    facts: list[AlertFacts],
    enterprise: str,
    places: Directory,
    *,
    language: str,
    zone: ZoneInfo,
    grafana_url: str | None,
) -> Message:
    words = _WORDS[language]
    first = facts[0].event
    info = places.get(first.stack)
    enterprise_name = info.enterprise_name if info else enterprise
    title = words["title"].format(enterprise=enterprise_name, count=len(facts))
    md_lines = [f"### {title}"]
    text_lines = [title, ""]
    shorts = []
    for fact in facts:
        event = fact.event
        where = places.get(event.stack)
        stack_name = f"{where.stack_name} ({event.stack})" if where else event.stack
        kind = _KIND[language].get(event.kind.value, event.kind.value)
        severity = _SEVERITY[language].get(event.severity.value, event.severity.value)
        what = _WHAT[language][fact.what.split("-")[0]]
        head = f"[{what}] {severity} {kind} · {stack_name}" + (
            f" · {event.parameter.upper()}" if event.parameter else ""
        )
        facts_line = [f"{words['since']} {_local(event.start, zone)}"]
        if event.end is not None:
            facts_line.append(f"{words['until']} {_local(event.end, zone)}")
        evidence = event.evidence
        if "converted_mg_m3" in evidence and "limit_mg_m3" in evidence:
            facts_line.append(
                f"{words['value']} {_number(evidence['converted_mg_m3'])} mg/m³ > "
                f"{words['limit']} {_number(evidence['limit_mg_m3'])} mg/m³"
            )
        if "hour_start" in evidence:
            facts_line.append(f"{words['hour']} {_local(evidence['hour_start'], zone)}")
        link = stack_link(grafana_url, event.stack)
        body = "; ".join(facts_line)
        md_lines.append(
            f"- **{head}**  \n  {body}  \n  {words['detail']}: {event.reason}  \n  {words['id']} {event.alert_id}"
        )
        text_lines += [
            f"* {head}",
            f"  {body}",
            f"  {words['detail']}: {event.reason}",
            f"  {words['id']}: {event.alert_id}",
        ]
        if link:
            md_lines.append(f"  [{words['link']}]({link})")
            text_lines.append(f"  {words['link']}: {link}")
        shorts.append(f"{what} {kind} {event.stack}" + (f" {event.parameter.upper()}" if event.parameter else ""))
    short = f"{enterprise_name}: " + "; ".join(shorts)
    return Message(title, "\n".join(md_lines), "\n".join(text_lines), short[:300])
