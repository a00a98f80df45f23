"""Sending one message on one channel. E-mail goes through apprise (SMTP, MIME, UTF-8
headers); DingTalk and WeCom group robots, webhooks and the SMS gateway are plain JSON over
HTTP with httpx, because apprise's DingTalk and WeCom plugins have their API hosts built in
and a private gateway (or a test server) must be able to stand in for them.

Every failure becomes a ``DeliveryError`` naming the channel and what went wrong.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from typing import Any
from urllib.parse import quote, urlencode

import apprise
import httpx
from apprise.utils.parse import is_email

from contracts.errors import CemsError
from rules.notify.config import (
    Channel,
    DingTalkChannel,
    EmailChannel,
    Endpoints,
    LogChannel,
    SmsChannel,
    Smtp,
    WebhookChannel,
    WeComChannel,
)
from rules.notify.render import Message

log = logging.getLogger("cems.notify")
#: robots' limits on a message (bytes of UTF-8)
DINGTALK_MAX_BYTES = 20000
WECOM_MAX_BYTES = 4096


class DeliveryError(CemsError):
    """A channel did not take a message."""


def _clip(text: str, max_bytes: int) -> str:
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    return data[: max_bytes - 12].decode(errors="ignore") + "\n…(truncated)"


def dingtalk_url(base_url: str, channel: DingTalkChannel, now_ms: int) -> str:
    """The robot's webhook; with ``secret``, signed as DingTalk's 加签 asks: HMAC-SHA256 of
    ``"<timestamp>\\n<secret>"``, base64, in the query."""
    query = {"access_token": channel.access_token}
    if channel.secret:
        digest = hmac.new(channel.secret.encode(), f"{now_ms}\n{channel.secret}".encode(), hashlib.sha256).digest()
        query |= {"timestamp": str(now_ms), "sign": base64.b64encode(digest).decode()}
    return f"{base_url.rstrip('/')}/robot/send?{urlencode(query, quote_via=quote)}"


class Senders:
    """The channels' clients, shared by all deliveries of one notifier."""

    def __init__(self, endpoints: Endpoints, timeout_s: float) -> None:
        self.endpoints = endpoints
        self.timeout_s = timeout_s
        self.http = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        await self.http.aclose()

    async def send(self, channel: Channel, message: Message, key: str, payload: dict[str, Any]) -> None:
        """Deliver ``message`` (``key`` identifies the notice: the same key is the same notice)."""
        if isinstance(channel, EmailChannel):
            await asyncio.to_thread(self._email, channel, message, key)
        elif isinstance(channel, DingTalkChannel):
            url = dingtalk_url(self.endpoints.dingtalk_base_url, channel, int(time.time() * 1000))
            body = {
                "msgtype": "markdown",
                "markdown": {"title": message.title, "text": _clip(message.markdown, DINGTALK_MAX_BYTES)},
            }
            await self._robot("dingtalk", url, body)
        elif isinstance(channel, WeComChannel):
            url = f"{self.endpoints.wecom_base_url.rstrip('/')}/cgi-bin/webhook/send?key={quote(channel.key)}"
            await self._robot(
                "wecom", url, {"msgtype": "markdown", "markdown": {"content": _clip(message.markdown, WECOM_MAX_BYTES)}}
            )
        elif isinstance(channel, WebhookChannel):
            await self._post("webhook", channel.url, payload | {"title": message.title, "text": message.text}, key)
        elif isinstance(channel, SmsChannel):
            assert self.endpoints.sms_gateway_url is not None  # checked with the configuration
            sms = {"id": key, "phones": list(channel.phones), "text": message.short}
            await self._post("sms", self.endpoints.sms_gateway_url, sms, key)
        elif isinstance(channel, LogChannel):
            log.info("notice %s: %s", key, message.text, extra={"notice_id": key, "channel": "log"})

    async def _post(self, name: str, url: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        try:
            response = await self.http.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{name}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 300:
            raise DeliveryError(f"{name}: HTTP {response.status_code}: {response.text[:200]}")
        return response

    async def _robot(self, name: str, url: str, body: dict[str, Any]) -> None:
        """DingTalk and WeCom answer HTTP 200 with ``errcode`` 0 when they took the message."""
        response = await self._post(name, url, body)
        try:
            answer = response.json()
        except ValueError as exc:
            raise DeliveryError(f"{name}: the answer is not JSON: {response.text[:200]}") from exc
        if not isinstance(answer, dict) or answer.get("errcode") != 0:
            raise DeliveryError(f"{name}: refused: {str(answer)[:200]}")

    def _email(self, channel: EmailChannel, message: Message, key: str) -> None:
        smtp = self.endpoints.smtp
        assert smtp is not None  # checked with the configuration
        notifier = apprise.Apprise()
        if not notifier.add(email_url(smtp, channel.to, key)):
            raise DeliveryError(f"email: apprise refused the SMTP settings for {smtp.host}:{smtp.port}")
        with apprise.LogCapture(level=logging.DEBUG, fmt="%(message)s") as captured:  # type: ignore[no-untyped-call]
            ok = notifier.notify(title=message.title, body=message.text, body_format=apprise.NotifyFormat.TEXT)
        if not ok:
            # apprise says why (the SMTP reply, a socket error) at debug level
            lines = captured.getvalue().splitlines()
            reasons = [line for line in lines if "exception" in line.lower() or "failed" in line.lower()]
            detail = " ".join(" ".join(reasons).split())[-300:] or "no detail"
            raise DeliveryError(f"email to {', '.join(channel.to)} via {smtp.host}:{smtp.port}: {detail}")


def email_url(smtp: Smtp, to: tuple[str, ...], key: str) -> str:
    """apprise's URL for one message: our SMTP server, sender, recipients, and the notice id
    as the ``X-Cems-Notice`` header."""
    mode = {"none": "insecure", "starttls": "starttls", "ssl": "ssl"}[smtp.security]
    scheme = "mailtos" if smtp.security != "none" else "mailto"
    auth = f"{quote(smtp.username)}:{quote(smtp.password or '', safe='')}@" if smtp.username else ""
    query = urlencode(
        {"smtp": smtp.host, "from": smtp.sender, "to": ",".join(to), "mode": mode, "format": "text",
         "+X-Cems-Notice": key},
    )  # fmt: skip
    return f"{scheme}://{auth}{smtp.host}:{smtp.port}?{query}"


def check_email_channels(endpoints: Endpoints, channels: dict[str, tuple[EmailChannel, ...]]) -> list[str]:
    """Problems apprise finds with the SMTP settings or addresses, per receiver."""
    problems = []
    for receiver, emails in channels.items():
        for channel in emails:
            assert endpoints.smtp is not None
            # apprise drops an address it cannot use and would then mail the sender instead
            wrong = [address for address in channel.to if not is_email(address)]  # type: ignore[no-untyped-call]
            if wrong:
                problems.append(f"receivers.{receiver}: e-mail to {', '.join(wrong)}: not an e-mail address")
            elif not apprise.Apprise().add(email_url(endpoints.smtp, channel.to, "check")):
                problems.append(f"receivers.{receiver}: e-mail to {', '.join(channel.to)} via "
                                f"{endpoints.smtp.host}: not a valid address or SMTP setting")  # fmt: skip
    return problems
