"""The console's pages (FastAPI, server-rendered Jinja2; no JavaScript).

Every page needs a logged-in user; every form carries the session's CSRF token; a case the user
may not see answers 404 like one that does not exist. Permissions and state changes are
decided in ``rules.cases`` through ``CaseStore.act``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Form, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.emergency import Level
from contracts.errors import CemsError, ConfigError
from rules.cases import machine
from rules.cases.access import Actor
from rules.cases.machine import Action, Command, Refusal
from rules.notify.render import stack_link

from . import auth, db, queries, report
from .charts import case_charts
from .db import User, WebSession
from .emergency import EmergencyDesk, may_declare, report_csv
from .evidence import EvidenceSource
from .store import CaseStore, actor_of

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
COOKIE = "cems_console"
Clock = Callable[[], datetime]
Acknowledger = Callable[[list[str], str, str, str], Awaitable[None]]


@dataclass
class ConsoleContext:
    store: CaseStore
    session_lifetime: timedelta
    login_limit: auth.LoginLimit
    cookie_secure: bool = False
    grafana_url: str | None = None
    evidence: EvidenceSource | None = None
    acknowledge: Acknowledger | None = None
    fleet: Callable[[Actor, datetime], Awaitable[list[Any]]] | None = None
    emergency: EmergencyDesk | None = None
    clock: Clock = lambda: datetime.now(UTC)


class LoginRequiredError(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


@dataclass
class Visit:
    """The request's database session, web session and user."""

    db: Session
    web: WebSession | None
    user: User | None
    now: datetime


def visit(request: Request) -> Iterator[Visit]:
    """The request's database session (one transaction per request), web session and user."""
    ctx: ConsoleContext = request.app.state.ctx
    with ctx.store.session() as s:
        now = ctx.clock()
        web = auth.find_session(s, request.cookies.get(COOKIE), now)
        user = s.get(db.User, web.user_id) if web and web.user_id else None
        yield Visit(s, web, user if user and user.active else None, now)


# "function": the transaction commits before the response leaves (a redirect after login must
# find the new session)
VisitDep = Annotated[Visit, Depends(visit, scope="function")]


def login_required(v: VisitDep, request: Request) -> Visit:
    if v.user is None:
        raise LoginRequiredError(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))
    return v


UserDep = Annotated[Visit, Depends(login_required)]


def create_app(ctx: ConsoleContext) -> FastAPI:
    app = FastAPI(title="CEMS case console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["state_label"] = lambda s: s.replace("_", " ")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def check_csrf(v: Visit, token: str | None) -> None:
        if not auth.csrf_ok(v.web, token):
            raise HTTPException(403, "the form has expired or did not come from this site; reload the page")

    def render(request: Request, name: str, v: Visit, status: int = 200, **values: Any) -> HTMLResponse:
        values |= {"user": v.user, "csrf": v.web.csrf_token if v.web else "", "now": v.now}
        return templates.TemplateResponse(request, name, values, status_code=status)

    @app.exception_handler(LoginRequiredError)
    async def _to_login(_request: Request, exc: LoginRequiredError) -> Response:
        return RedirectResponse("/login?" + urlencode({"next": exc.next_url}), status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def _error_page(request: Request, exc: StarletteHTTPException) -> Response:
        """A browser gets an HTML page with a way back (others: FastAPI's JSON)."""
        if "text/html" not in request.headers.get("accept", ""):
            return await http_exception_handler(request, exc)
        values = {"user": None, "csrf": "", "status": exc.status_code, "detail": exc.detail}
        return templates.TemplateResponse(request, "error.html", values, status_code=exc.status_code)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if "text/html" in response.headers.get("content-type", ""):
            response.headers["Cache-Control"] = "no-store"
        return response

    def set_cookie(response: Response, token: str) -> None:
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(ctx.session_lifetime.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=ctx.cookie_secure,
        )

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, v: VisitDep, next: str = "/cases") -> Response:
        token = None
        if v.web is None:
            token, v.web = auth.new_session(v.db, None, v.now, ctx.session_lifetime)
        response = render(request, "login.html", v, next=_local(next), error=None)
        if token:
            set_cookie(response, token)
        return response

    @app.post("/login")
    def login(
        request: Request,
        v: VisitDep,
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=200)],
        csrf: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/cases",
    ) -> Response:
        check_csrf(v, csrf)
        address = request.client.host if request.client else "-"
        if auth.login_blocked(v.db, username, address, v.now, ctx.login_limit):
            log.warning("login refused (too many failures): user %r from %s", username, address)
            return render(
                request, "login.html", v, 429, next=_local(next), error="Too many failed logins; wait and try again."
            )
        user = auth.authenticate(v.db, username, password, address, v.now)
        if user is None:
            return render(request, "login.html", v, 401, next=_local(next), error="Wrong user name or password.")
        auth.end_session(v.db, request.cookies.get(COOKIE))
        token, _ = auth.new_session(v.db, user, v.now, ctx.session_lifetime)
        response = RedirectResponse(_local(next), status_code=303)
        set_cookie(response, token)
        return response

    @app.post("/logout")
    def logout(request: Request, v: UserDep, csrf: Annotated[str, Form()] = "") -> Response:
        check_csrf(v, csrf)
        auth.end_session(v.db, request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/")
    def home() -> Response:
        return RedirectResponse("/cases", status_code=303)

    @app.get("/cases", response_class=HTMLResponse)
    def case_list(
        request: Request,
        v: UserDep,
        district: str = "",
        industry: str = "",
        kind: str = "",
        state: str = "",
        enterprise: str = "",
        stack: str = "",
        overdue: bool = False,
        sort: queries.Sort = queries.Sort.NEWEST,
        page: int = 1,
    ) -> Response:
        assert v.user is not None
        actor = actor_of(v.user)
        f = queries.CaseFilter(district, industry, kind, state, enterprise, stack, overdue, sort, page)
        result = queries.list_cases(v.db, actor, f, v.now)
        args = {k: val for k, val in vars(f).items() if val and k != "page"}
        return render(
            request,
            "cases.html",
            v,
            result=result,
            filters=f,
            facets=queries.facets(v.db, actor),
            states=[s.value for s in machine.CaseState],
            sorts=[s.value for s in queries.Sort],
            query=lambda **change: "?" + urlencode({k: _arg(x) for k, x in (args | change).items() if x}),
        )

    @app.get("/cases/{case_id}", response_class=HTMLResponse)
    async def case_page(request: Request, case_id: int, v: UserDep) -> Response:
        assert v.user is not None
        detail = queries.case_detail(v.db, actor_of(v.user), case_id, ctx.store.policy, v.now)
        if detail is None:
            raise HTTPException(404, "no such case")
        charts, unavailable = None, None
        if ctx.evidence:
            try:
                charts = await case_charts(ctx.evidence, detail)
            except Exception as exc:  # the page works without its charts
                log.warning("charts of case %d: %s", case_id, exc)
                unavailable = f"InfluxDB did not answer: {type(exc).__name__}"
        return render(
            request,
            "case.html",
            v,
            d=detail,
            c=detail.case,
            charts=charts,
            unavailable=unavailable,
            grafana=stack_link(ctx.grafana_url, detail.case.stack),
            Action=Action,
            message=request.query_params.get("msg"),
        )

    @app.post("/cases/{case_id}/{action}")
    async def case_action(
        case_id: int,
        action: Action,
        v: UserDep,
        csrf: Annotated[str, Form()] = "",
        note: Annotated[str, Form(max_length=4000)] = "",
        assignee: Annotated[str, Form(max_length=64)] = "",
        deadline: Annotated[str, Form(max_length=40)] = "",
    ) -> Response:
        check_csrf(v, csrf)
        assert v.user is not None
        actor = actor_of(v.user)
        when = _parse_deadline(deadline) if deadline else None
        if deadline and when is None:
            return _back(case_id, "refused: deadline_not_a_date")
        command = Command(action, actor.username, note=note.strip(), assignee=assignee or None, deadline=when)
        if action is Action.ACKNOWLEDGE:
            detail = queries.case_detail(v.db, actor, case_id, ctx.store.policy, v.now)
            if detail is None:
                raise HTTPException(404, "no such case")
            open_ids = sorted(detail.domain.open_alerts)
            if ctx.acknowledge is None or not open_ids or Action.ACKNOWLEDGE not in detail.actions:
                return _back(case_id, "refused: nothing_to_acknowledge" if not open_ids else "refused: not_allowed")
            try:
                await ctx.acknowledge(open_ids, detail.case.stack, actor.username, note)
            except CemsError as exc:
                log.error("acknowledging %s failed: %s", open_ids, exc)
                return _back(case_id, "refused: acknowledgement_not_confirmed (try again)")
            command = Command(
                action, actor.username, note=f"acknowledged {', '.join(open_ids)}" + (f": {note}" if note else "")
            )
        v.db.rollback()  # the store runs its own transaction
        result = ctx.store.act(actor, case_id, command, v.now)
        if result is None:
            raise HTTPException(404, "no such case")
        if isinstance(result, Refusal):
            return _back(case_id, f"refused: {result.reason}")
        return _back(case_id, f"{action.value}: done")

    def month_report(v: Visit, month: str) -> tuple[datetime, list[report.ReportRow]]:
        """The month asked for (default: this one) and its report over what the user may see."""
        assert v.user is not None
        first = report.parse_month(month) if month else report.month_of(v.now)
        if first is None:
            raise HTTPException(400, f"month: {month!r} is not YYYY-MM")
        return first, report.monthly(v.db, actor_of(v.user), first, v.now)

    @app.get("/reports/monthly", response_class=HTMLResponse)
    def monthly(request: Request, v: UserDep, month: str = "") -> Response:
        first, rows = month_report(v, month)
        return render(request, "report.html", v, rows=rows, month=first, columns=report.COLUMNS)

    @app.get("/reports/monthly.{fmt}")
    def monthly_file(v: UserDep, fmt: str, month: str = "") -> Response:
        first, rows = month_report(v, month)
        name = f"cases-{first:%Y-%m}"
        if fmt == "csv":
            return Response(report.to_csv(rows), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})  # fmt: skip
        if fmt == "xlsx":
            return Response(
                report.to_xlsx(rows, f"{first:%Y-%m}"),
                media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
            )
        raise HTTPException(404, "formats: csv, xlsx")

    @app.get("/fleet", response_class=HTMLResponse)
    async def fleet(request: Request, v: UserDep) -> Response:
        assert v.user is not None
        rows, unavailable = None, None
        try:
            rows = await ctx.fleet(actor_of(v.user), v.now) if ctx.fleet else None
        except Exception as exc:
            log.warning("fleet status: %s", exc)
            unavailable = f"InfluxDB did not answer: {type(exc).__name__}"
        return render(request, "fleet.html", v, rows=rows, unavailable=unavailable, grafana=ctx.grafana_url,
                      link=stack_link)  # fmt: skip

    # -- heavy-pollution emergency responses -------------------------------------------------------
    def desk() -> EmergencyDesk:
        if ctx.emergency is None:
            raise HTTPException(404, "emergency responses are not configured for this console")
        return ctx.emergency

    async def kafka_call(call: Awaitable[Any]) -> Any:
        try:
            return await call
        except ConfigError:
            raise
        except CemsError as exc:
            raise HTTPException(503, f"Kafka did not answer: {exc}") from exc

    def centre(v: Visit, csrf: str) -> Actor:
        """The monitoring centre's user behind a form that declares or ends a response (a form
        from elsewhere: 403; anyone else: 403)."""
        assert v.user is not None
        check_csrf(v, csrf)
        actor = actor_of(v.user)
        if not may_declare(actor):
            raise HTTPException(403, "only the monitoring centre (supervisors, admins) declares and ends responses")
        return actor

    @app.get("/emergency", response_class=HTMLResponse)
    async def emergency_list(request: Request, v: UserDep, msg: str = "") -> Response:
        assert v.user is not None
        d = desk()
        responses = await kafka_call(d.responses())
        return render(request, "emergency.html", v, responses=responses, may_declare=may_declare(actor_of(v.user)),
                      levels=[lv.value for lv in Level], districts=sorted(d.districts), msg=msg)  # fmt: skip

    @app.get("/api/emergency")
    async def emergency_api(v: UserDep) -> Response:
        """The declared responses (latest revision of each), newest first, as JSON."""
        responses = await kafka_call(desk().responses())
        return JSONResponse([r.model_dump(mode="json") for r in responses])

    @app.post("/emergency")
    async def emergency_declare(
        v: UserDep,
        level: Annotated[str, Form()],
        start: Annotated[str, Form()],
        end: Annotated[str, Form()] = "",
        districts: Annotated[list[str] | None, Form()] = None,
        note: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        actor = centre(v, csrf)
        begin, finish = _parse_time(start), _parse_time(end) if end else None
        if begin is None or (end and finish is None) or level not in {lv.value for lv in Level}:
            return _emergency_back("refused: give a level and times as YYYY-MM-DDTHH:MM (Beijing time)")
        try:
            made = await kafka_call(
                desk().declare(actor, Level(level), begin, finish, tuple(districts or ()), note or None, v.now)
            )
        except ConfigError as exc:
            return _emergency_back(f"refused: {exc}")
        return _emergency_back(f"declared {made.id}")

    @app.post("/emergency/{response_id}/end")
    async def emergency_end(
        v: UserDep, response_id: str, at: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = ""
    ) -> Response:
        actor = centre(v, csrf)
        when = _parse_time(at) if at else v.now
        if when is None:
            return _emergency_back("refused: give the end as YYYY-MM-DDTHH:MM (Beijing time)")
        try:
            revised = await kafka_call(desk().end(actor, response_id, when, v.now))
        except ConfigError as exc:
            return _emergency_back(f"refused: {exc}")
        return _emergency_back(f"ended {revised.id}")

    async def emergency_report(v: Visit, response_id: str) -> tuple[Any, Any]:
        assert v.user is not None
        d = desk()
        response = await kafka_call(d.get(response_id))
        if response is None:
            raise HTTPException(404, "no such response")
        try:
            result = await d.report(actor_of(v.user), response, v.now)
        except Exception as exc:  # the InfluxDB client raises urllib3 and ApiException errors
            log.exception("emergency report %s failed", response_id)
            raise HTTPException(503, f"the report could not be made: {type(exc).__name__}") from exc
        return response, result

    @app.get("/emergency/{response_id}.csv")
    async def emergency_report_csv(v: UserDep, response_id: str) -> Response:
        response, result = await emergency_report(v, response_id)
        if result is None:
            raise HTTPException(404, "the report needs InfluxDB (not configured for this console)")
        disposition = f'attachment; filename="emergency-{response.id}.csv"'
        return Response(
            report_csv(result), media_type="text/csv; charset=utf-8", headers={"Content-Disposition": disposition}
        )

    @app.get("/emergency/{response_id}", response_class=HTMLResponse)
    async def emergency_report_page(request: Request, v: UserDep, response_id: str) -> Response:
        response, result = await emergency_report(v, response_id)
        return render(request, "emergency_report.html", v, response=response, report=result)

    return app


def _emergency_back(message: str) -> Response:
    return RedirectResponse("/emergency?" + urlencode({"msg": message}), status_code=303)


def _parse_time(text: str) -> datetime | None:
    """A time from a form, in Beijing time when it has no offset."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=report.BEIJING)
    return value.astimezone(UTC)


def _arg(value: Any) -> str:
    return "1" if value is True else str(getattr(value, "value", value))


def _local(url: str) -> str:
    """Only same-site paths are followed after login (no open redirect)."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/cases"


def _back(case_id: int, message: str) -> Response:
    return RedirectResponse(f"/cases/{case_id}?" + urlencode({"msg": message}), status_code=303)


def _parse_deadline(text: str) -> datetime | None:
    """A date or datetime from the form, in Beijing time when it has no offset."""
    value = _parse_time(text)
    if value is not None and len(text) <= 10:  # a date: the end of that day
        value = value + timedelta(hours=23, minutes=59)
    return value
