"""The notifier's HTTP API, for the case console and other tools (aiohttp, in the
notifier's event loop). Every request needs ``Authorization: Bearer <CEMS_NOTIFY_API_TOKEN>``.

``POST /api/v1/alerts/{alert_id}/acknowledge`` with ``{"officer": "...", "note": "..."}``
puts an ``Acknowledgement`` on the acknowledgements topic keyed by the alert's stack (the
worker applies it once; escalation and reminders stop when its ``acknowledged`` event comes
back): 202 with the acknowledgement; 404 for an alert the notifier has not seen, 409 for a
resolved one, 400 for a body that is not valid, 401 without the token.

``GET /api/v1/alerts/{alert_id}``: the alert's latest event, state and who was told.
``GET /healthz``: 200 once the notifier has caught up with its topics.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web
from pydantic import ValidationError

from contracts.alerts import Acknowledgement, AlertState
from rules.notify.planner import NotifyBook

from .kafka_log import LogWriter

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def state_of(book: NotifyBook, alert_id: str) -> AlertState | None:
    tracked = book.alerts.get(alert_id)
    if tracked is None:
        return None
    if tracked.resolved_at is not None:
        return AlertState.RESOLVED
    return AlertState.ACKNOWLEDGED if tracked.acknowledged_at is not None else AlertState.OPEN


def create_api(book: NotifyBook, acknowledgements: LogWriter, token: str) -> web.Application:
    @web.middleware
    async def authorised(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "")
        if request.path != "/healthz" and not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _error(401, "missing or wrong bearer token")
        return await handler(request)

    async def acknowledge(request: web.Request) -> web.Response:
        alert_id = request.match_info["alert_id"]
        state = state_of(book, alert_id)
        if state is None:
            return _error(404, f"no alert {alert_id}")
        if state is AlertState.RESOLVED:
            return _error(409, f"alert {alert_id} is resolved; nothing to acknowledge")
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            ack = Acknowledgement(
                alert_id=alert_id, stack=book.alerts[alert_id].first.stack, officer=body.get("officer", ""),
                note=body.get("note"), at=datetime.now(UTC),
            )  # fmt: skip
        except ValidationError as exc:
            return _error(400, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
        except ValueError as exc:
            return _error(400, f"not a JSON object: {exc}")
        await acknowledgements.write(ack.stack, ack.model_dump_json().encode())
        return web.json_response(ack.model_dump(mode="json"), status=202)

    async def show(request: web.Request) -> web.Response:
        alert_id = request.match_info["alert_id"]
        state = state_of(book, alert_id)
        if state is None:
            return _error(404, f"no alert {alert_id}")
        tracked = book.alerts[alert_id]
        told = sorted({receiver for receiver, alert in book.told_at if alert == alert_id})
        return web.json_response(
            {"state": state.value, "latest": tracked.latest.model_dump(mode="json"), "told": told,
             "acknowledged": tracked.acknowledged_at is not None}
        )  # fmt: skip

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "alerts": len(book.alerts)})

    api = web.Application(middlewares=[authorised], client_max_size=64 * 1024)
    api.add_routes(
        [
            web.post("/api/v1/alerts/{alert_id}/acknowledge", acknowledge),
            web.get("/api/v1/alerts/{alert_id}", show),
            web.get("/healthz", health),
        ]
    )
    return api
