"""The console's emergency desk: responses declared on Kafka (``cems.emergency``) and their
report from the hourly averages in InfluxDB (``rules.emergency_report``), limited to what the
user may see. The monitoring centre (supervisors, admins) declares and ends responses;
officers see the report for their districts, an enterprise account its own lines."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cems import emergency as desk
from contracts.emergency import EmergencyResponse, Level
from rules.cases import access
from rules.cases.access import Actor, Role
from rules.config import RuleSettings, StackProfile
from rules.emergency_report import ROW_COLUMNS, ResponseReport, report_rows, response_report

from .evidence import InfluxEvidence

#: who may declare and end responses: the monitoring centre
DECLARERS = frozenset({Role.SUPERVISOR, Role.ADMIN})


def may_declare(actor: Actor) -> bool:
    return actor.role in DECLARERS


@dataclass
class EmergencyDesk:
    bootstrap: str
    topic: Any  # contracts.topics.TopicSpec
    profiles: dict[str, StackProfile]
    settings: RuleSettings
    #: the hourly averages for reports; None: reports unavailable (no InfluxDB configured)
    influx: InfluxEvidence | None

    @property
    def districts(self) -> set[str]:
        return {p.district for p in self.profiles.values()}

    async def responses(self) -> list[EmergencyResponse]:
        found = await asyncio.to_thread(desk.current, self.bootstrap, self.topic)
        return sorted(found.values(), key=lambda r: r.start, reverse=True)

    async def get(self, response_id: str) -> EmergencyResponse | None:
        found = await asyncio.to_thread(desk.current, self.bootstrap, self.topic)
        return found.get(response_id)

    async def declare(
        self, actor: Actor, level: Level, start: datetime, end: datetime | None, districts: tuple[str, ...],
        note: str | None, now: datetime,
    ) -> EmergencyResponse:  # fmt: skip
        return await asyncio.to_thread(
            lambda: desk.declare(
                self.bootstrap, self.topic, level=level, start=start, end=end, districts=districts,
                declared_by=actor.username, note=note, known_districts=self.districts, now=now,
            )
        )  # fmt: skip

    async def end(self, actor: Actor, response_id: str, at: datetime, now: datetime) -> EmergencyResponse:
        return await asyncio.to_thread(desk.end, self.bootstrap, self.topic, response_id, at, actor.username, now)

    async def report(self, actor: Actor, response: EmergencyResponse, now: datetime) -> ResponseReport | None:
        """The report as far as ``actor`` may see it (None: no InfluxDB configured)."""
        if self.influx is None:
            return None
        plan_days = next(iter(self.profiles.values())).emergency_plan.baseline_days if self.profiles else 1
        start, stop = desk.report_window(response, plan_days, now)
        hourly = await asyncio.to_thread(self.influx.hourly_averages, start, stop)
        visible = {s: p for s, p in self.profiles.items() if _sees(actor, p)}
        report = response_report(visible, self.settings, response, hourly, until=now)
        if actor.role in (Role.ENTERPRISE, Role.OFFICER):
            # the region's totals against the zone's targets are the monitoring centre's: an
            # officer sees only their districts (not the region), an enterprise only itself
            report = replace(report, region=())
        return report


def _sees(actor: Actor, profile: StackProfile) -> bool:
    return access.can_see(actor, district=profile.district, enterprise=profile.enterprise)


def report_csv(report: ResponseReport) -> str:
    out = io.StringIO()
    desk.write_csv(report_rows(report), ROW_COLUMNS, out)
    return out.getvalue()
