"""The fleet's stack status for the console: the same statuses and ranking as Grafana's
overview, computed by ``rules.fleet_status`` from the alert events and data flags in InfluxDB,
limited to what the user may see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from rules.cases import access
from rules.cases.access import Actor
from rules.fleet_status import ALERT_LOOKBACK_S, SEEN_LOOKBACK_S, fleet_status
from rules.notify.routing import Directory

from .evidence import InfluxEvidence


@dataclass(frozen=True)
class FleetRow:
    status: str
    color: str
    rank: int
    stack: str
    enterprise: str
    district: str
    industry: str
    problem: str
    last_seen: datetime | None


async def fleet_rows(
    source: InfluxEvidence, places: Directory, owners: dict[str, str], actor: Actor, now: datetime
) -> list[FleetRow]:
    """``owners``: each stack's enterprise id."""
    events = await source.alert_events(now - timedelta(seconds=ALERT_LOOKBACK_S), now)
    flags = await source.latest_flags(now - timedelta(seconds=SEEN_LOOKBACK_S), now)
    rows = []
    for row in fleet_status(events, flags, now):
        place = places.get(row.stack)
        district = place.district if place else "unknown"
        enterprise = owners.get(row.stack, "")
        if not access.can_see(actor, district=district, enterprise=enterprise):
            continue
        rows.append(
            FleetRow(
                status=row.status.value,
                color=row.status.colour,
                rank=row.rank,
                stack=row.stack,
                enterprise=place.enterprise_name if place else "",
                district=district,
                industry=place.industry if place else "unknown",
                problem=row.problem,
                last_seen=row.last_seen,
            )
        )
    return rows
