"""The case console in a real Chromium: an exceedance from a simulated scenario opens a case;
the district's officer sees it, the supervisor assigns it, the officer orders rectification, the
enterprise responds, and the officer closes it as verified once the data allows. Other
enterprises and districts get 404; a forged form is refused.

Everything is real: the alert events come from the simulator replayed through the detection
engine and travel over Kafka to a `cems console serve` process on PostgreSQL; the charts read
the scenario's readings from InfluxDB.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings
from console.demo import demo_accounts
from contracts.alerts import AlertEventType, AlertKind
from contracts.registry import load_registry

from .conftest import ConsoleServer
from .scenario import OURS, THEIRS, ScenarioRun, produce, run_scenario, write_evidence
from .ui import ConsolePage

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def demo_officer(district: str) -> str:
    (name,) = [u for u, role, districts, _, _ in demo_accounts(load_registry()) if districts == [district]]
    return name


OFFICER = demo_officer(OURS[2])
OTHER_OFFICER = demo_officer(THEIRS[2])
SUPERVISOR = "chief"
ENTERPRISE = OURS[1]


def open_cases(run: ScenarioRun, server: ConsoleServer, infra: InfraSettings, secrets: SecretStore) -> None:
    """Every event of the scenario except our exceedance's ``resolved`` (held back: the case
    must wait for it) onto the alerts topic; readings and hourly averages into InfluxDB."""
    held = run.exceedance(OURS[0], AlertEventType.RESOLVED)
    produce(infra.kafka_bootstrap, server.alerts_topic, [e for e in run.result.events if e is not held])
    write_evidence(run, server.namespace, url=infra.influxdb_url, token=secrets.influxdb_token(),
                   org=infra.influxdb_org, bucket=infra.influxdb_bucket)  # fmt: skip


def case_list(ui: ConsolePage, expect: int) -> list[int]:
    """The case list once the console has read the alerts (reloaded until ``expect`` rows)."""
    ui.open("/cases")
    ui.wait_for(lambda: len(ui.case_ids()) == expect, f"{expect} cases", reload=True)
    return ui.case_ids()


def deadline_in(days: int) -> str:
    return (datetime.now(UTC) + timedelta(hours=8) + timedelta(days=days)).date().isoformat()  # Beijing date


def test_exceedance_case_assigned_rectified_answered_and_closed_as_verified(
    page: ConsolePage, console_server: ConsoleServer, infra: InfraSettings, secrets: SecretStore
) -> None:
    ui, pw = page, console_server.password
    run = run_scenario()
    opened = run.exceedance(OURS[0], AlertEventType.OPENED)
    assert opened.evidence["converted_mg_m3"] > opened.evidence["limit_mg_m3"]
    open_cases(run, console_server, infra, secrets)

    # the district's officer sees the case the exceedance opened, and only that one
    ui.open("/cases")
    assert ui.path() == "/login"
    ui.shot("login-page")
    ui.login(OFFICER, pw)
    (case_id,) = case_list(ui, 1)
    assert ui.text("case-total") == "1 found"
    ((_, title, enterprise_name, district, kind, severity, state, *_),) = ui.table("cases")
    assert (district, kind, severity, state) == (OURS[2], "exceedance", "critical", "new")
    assert enterprise_name == next(e.name for e in run.registry.enterprises if e.id == ENTERPRISE)
    assert "so2" in title
    ui.shot("officer-case-list")
    ui.open(f"/cases/{case_id}")
    assert ui.text("case-state") == "new"
    assert ui.find("form-assign") is None  # officers do not assign
    events = ui.table("events")
    assert [row[1:3] for row in events] == [[opened.alert_id, "opened"]]
    assert "exceeds the limit 35" in events[0][4]
    charts = ui.driver.find_elements("css selector", "svg.chart")
    assert len(charts) == 2 and all(c.get_attribute("aria-label") != "no data" for c in charts), [
        c.get_attribute("aria-label") for c in charts
    ]
    ui.shot("officer-case-detail-new")
    ui.logout()

    # the supervisor sees both districts' cases and assigns ours to the district's officer
    ui.login(SUPERVISOR, pw)
    both = case_list(ui, 2)
    assert case_id in both
    ui.shot("supervisor-case-list")
    ui.open(f"/cases/{case_id}")
    options = [o.get_attribute("value") for o in ui.by_id("assignee").find_elements("tag name", "option")]
    assert OFFICER in options and OTHER_OFFICER not in options  # only who is responsible for the district
    ui.by_id("assignee").find_element("css selector", f"option[value='{OFFICER}']").click()
    ui.by_id("do-assign").click()
    ui.wait_for(lambda: ui.find("flash"), "the assign result")
    assert ui.text("flash") == "assign: done"
    assert (ui.text("case-state"), ui.text("case-assignee")) == ("assigned", OFFICER)
    ui.shot("supervisor-assigned")
    ui.logout()

    # the officer orders rectification by a date
    ui.login(OFFICER, pw)
    ui.open(f"/cases/{case_id}")
    due = deadline_in(3)
    ui.driver.execute_script("arguments[0].value = arguments[1]", ui.by_id("deadline"), due)
    ui.by_id("form-deadline").find_element("name", "note").send_keys("Repair the desulphurisation unit.")
    ui.by_id("do-deadline").click()
    ui.wait_for(lambda: ui.find("flash"), "the deadline result")
    assert ui.text("flash") == "set_deadline: done"
    assert ui.text("case-state") == "rectifying"
    assert ui.text("case-deadline") == f"{due} 15:59 UTC"  # the end of that day in Beijing
    ui.shot("officer-ordered-rectification")
    ui.logout()

    # the enterprise sees its own case only and files its response
    ui.login(ENTERPRISE, pw)
    assert case_list(ui, 1) == [case_id]
    assert ui.find("nav-fleet") is None
    ui.shot("enterprise-case-list")
    ui.open(f"/cases/{case_id}")
    assert ui.find("grafana-link") is None
    assert ui.find("form-deadline") is None and ui.find("form-verify") is None
    ui.by_id("response").send_keys("Absorber pump replaced on site; SO2 back under the limit since the next hour.")
    ui.by_id("do-respond").click()
    ui.wait_for(lambda: ui.find("flash"), "the response result")
    assert ui.text("flash") == "respond: done"
    assert ui.text("case-state") == "verifying"
    ui.shot("enterprise-responded")
    ui.logout()

    # the officer may not close it yet: the alert is still open
    ui.login(OFFICER, pw)
    ui.open(f"/cases/{case_id}")
    verify = ui.by_id("do-verify")
    assert verify.get_attribute("disabled") is not None
    assert ui.text("verification") == "alert still open"
    ui.shot("officer-verify-disabled-alert-open")

    # the exceedance resolves (the next hour's average is under the limit): now it may
    resolved = run.exceedance(OURS[0], AlertEventType.RESOLVED)
    produce(infra.kafka_bootstrap, console_server.alerts_topic, [resolved])
    ui.wait_for(lambda: ui.text("verification").startswith("ready"), "verification ready", timeout_s=30, reload=True)
    assert ui.by_id("do-verify").get_attribute("disabled") is None
    ui.shot("officer-verify-ready")
    ui.by_id("do-verify").click()
    ui.wait_for(lambda: ui.find("flash"), "the verify result")
    assert ui.text("flash") == "verify: done"
    assert ui.text("case-state") == "closed"
    assert [row[1:3] for row in ui.table("events")] == [[opened.alert_id, "opened"], [resolved.alert_id, "resolved"]]
    history = [(who, action, states) for _, who, action, states, _ in ui.table("history")]
    assert history == [
        ("system", "open", "→ new"),
        (SUPERVISOR, "assign", "new → assigned"),
        (OFFICER, "set_deadline", "assigned → rectifying"),
        (ENTERPRISE, "respond", "rectifying → verifying"),
        (OFFICER, "verify", "verifying → closed"),
    ]
    ui.driver.execute_script("document.getElementById('history').scrollIntoView()")
    ui.shot("closed-with-history")
    print("page load times (s): " + json.dumps({k: round(v, 3) for k, v in ui.load_s.items()}))


def test_other_enterprises_and_districts_get_404_and_forged_forms_are_refused(
    page: ConsolePage, console_server: ConsoleServer, infra: InfraSettings, secrets: SecretStore
) -> None:
    ui, pw = page, console_server.password
    run = run_scenario()
    open_cases(run, console_server, infra, secrets)
    assert {e.stack for e in run.result.events if e.kind is AlertKind.EXCEEDANCE} == {OURS[0], THEIRS[0]}

    ui.login(SUPERVISOR, pw)
    case_list(ui, 2)
    by_district = {row[3]: int(row[0]) for row in ui.table("cases")}
    ours, theirs = by_district[OURS[2]], by_district[THEIRS[2]]
    # the fleet page (statuses from InfluxDB) lists both stacks for the supervisor
    ui.open("/fleet")
    fleet_stacks = [row[1] for row in ui.table("fleet")]
    assert OURS[0] in fleet_stacks and THEIRS[0] in fleet_stacks, fleet_stacks
    ui.shot("supervisor-fleet")
    ui.logout()

    # an enterprise asking for another enterprise's case: 404, and nothing of it shows
    ui.login(ENTERPRISE, pw)
    ui.open(f"/cases/{theirs}")
    body = ui.body()
    assert (ui.text("error-status"), ui.text("error-detail")) == ("404", "no such case")
    assert THEIRS[0] not in body and THEIRS[1] not in body and "so2" not in body
    ui.shot("enterprise-other-case-404")
    with ui.http() as http:
        assert http.get(f"/cases/{theirs}").status_code == 404
        assert http.get(f"/cases/{ours}").status_code == 200
        csrf = _csrf(http, ours)
        # acting on it is 404 too, not a refusal that would confirm it exists
        response = http.post(f"/cases/{theirs}/respond", data={"csrf": csrf, "note": "not ours"})
        assert response.status_code == 404
        # on its own case an enterprise only responds and comments: assigning is refused
        response = http.post(f"/cases/{ours}/assign", data={"csrf": csrf, "assignee": ENTERPRISE})
        assert response.status_code == 303
        assert response.headers["location"].endswith("refused%3A+role_enterprise_cannot_assign")
        # nor can it be reached through the list's filters or the report
        assert "0 found" in http.get("/cases", params={"enterprise": THEIRS[1]}).text
        assert THEIRS[1] not in http.get("/reports/monthly.csv").text
        fleet = http.get("/fleet")
        assert fleet.status_code == 200 and OURS[0] in fleet.text and THEIRS[0] not in fleet.text
    ui.logout()

    # an officer of another district: 404 on ours, cannot act on it either
    ui.login(OTHER_OFFICER, pw)
    assert case_list(ui, 1) == [theirs]
    ui.open(f"/cases/{ours}")
    assert ui.text("error-detail") == "no such case" and OURS[0] not in ui.body()
    ui.shot("other-district-officer-404")
    with ui.http() as http:
        response = http.post(
            f"/cases/{ours}/set_deadline", data={"csrf": _csrf(http, theirs), "deadline": deadline_in(3)}
        )
        assert response.status_code == 404
    ui.logout()

    # a form whose CSRF token was tampered with is refused and changes nothing
    ui.login(OFFICER, pw)
    ui.open(f"/cases/{ours}")
    before = ui.table("history")
    assert [row[2] for row in before] == ["open"]
    form = ui.by_id("form-comment")
    ui.driver.execute_script("arguments[0].querySelector('input[name=csrf]').value = 'forged'", form)
    form.find_element("name", "note").send_keys("this comment must not be stored")
    ui.by_id("do-comment").click()
    ui.wait_for(lambda: ui.find("error-status"), "the CSRF refusal")
    assert ui.text("error-status") == "403"
    assert "did not come from this site" in ui.text("error-detail")
    ui.shot("forged-csrf-refused")
    with ui.http() as http:
        assert http.post(f"/cases/{ours}/comment", data={"csrf": "forged", "note": "x"}).status_code == 403
        assert http.post(f"/cases/{ours}/comment", data={"note": "x"}).status_code == 403
        # the same request with the session's own token goes through, so the token is what failed
        ok = http.post(f"/cases/{ours}/comment", data={"csrf": _csrf(http, ours), "note": "with the right token"})
        assert ok.status_code == 303 and "comment%3A+done" in ok.headers["location"]
    ui.open(f"/cases/{ours}")
    notes = [row[4] for row in ui.table("history")]
    assert len(ui.table("history")) == len(before) + 1
    assert "this comment must not be stored" not in notes and "with the right token" in notes
    ui.shot("history-without-the-forged-comment")


def _csrf(http: httpx.Client, case_id: int) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', http.get(f"/cases/{case_id}").text)
    assert found, "no CSRF token on the case page"
    return found.group(1)
