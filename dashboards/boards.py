"""The monitoring centre's dashboards: overview, stack detail, compliance, data quality, bypass
watch, and electricity use with the emergency response. `cems dashboards generate` writes them to
dashboards/json/, which Grafana provisions."""

from __future__ import annotations

from contracts.alerts import ELECTRICITY_KINDS, AlertKind

from . import flux
from .model import (
    TABLE,
    TIMESERIES,
    Annotation,
    Dashboard,
    Panel,
    Row,
    Variable,
    colored_cells,
    column_override,
    mapping,
    thresholds,
)

# -- variables ---------------------------------------------------------------------------------------
NS = Variable("ns", "Namespace", constant="cems")
#: where the case console is (``cems console serve``), for links to a stack's cases
CONSOLE = Variable("console", "Case console", constant="http://127.0.0.1:8600")
DISTRICT = Variable("district", "District", flux.tag_values("district", 'r.ns == "${ns}"'))
INDUSTRY = Variable(
    "industry", "Industry", flux.tag_values("industry", 'r.ns == "${ns}" and r.district =~ /^${district:regex}$/')
)
ENTERPRISE = Variable(
    "enterprise",
    "Enterprise",
    flux.tag_values(
        "enterprise", 'r.ns == "${ns}" and r.district =~ /^${district:regex}$/ and r.industry =~ /^${industry:regex}$/'
    ),
)
STACK = Variable(
    "stack",
    "Stack",
    flux.tag_values("stack", 'r.ns == "${ns}" and r.enterprise =~ /^${enterprise:regex}$/'),
    multi=False,
    include_all=False,
)
FLEET = [NS, DISTRICT, INDUSTRY, ENTERPRISE]

LINKS = [
    {
        "type": "dashboards",
        "tags": ["cems"],
        "asDropdown": True,
        "title": "CEMS dashboards",
        "includeVars": True,
        "keepTime": True,
    },
]

SEVERITY = {"critical": "red", "warning": "orange", "info": "blue"}
EVENT = {"opened": "red", "updated": "orange", "acknowledged": "blue", "resolved": "green"}
STACK_LINK = column_override(
    "stack",
    links=[
        {
            "title": "Stack detail",
            "url": "/d/cems-stack/stack-detail?var-ns=${ns}&var-stack=${__value.text:percentencode}"
            "&${__url_time_range}",
        }
    ],
)
EPISODE_COLUMNS = [
    STACK_LINK,
    column_override("start", unit="dateTimeAsIso"),
    column_override("end", unit="dateTimeAsIso"),
]
STATUS_THRESHOLDS = thresholds((None, "green"), (1, "red"))


def _stat(title: str, query: str, description: str, *, width: int = 24, height: int = 4, **kw: object) -> Panel:
    return Panel(
        "stat",
        title,
        query,
        description,
        width=width,
        height=height,
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value_and_name",
            "justifyMode": "center",
            "orientation": "auto",
        },
        **kw,  # type: ignore[arg-type]
    )


def _table(
    title: str,
    query: str,
    description: str,
    *,
    overrides: list[dict[str, object]] | None = None,
    width: int = 24,
    height: int = 9,
    sort: str | None = None,
) -> Panel:
    options = dict(TABLE)
    if sort:
        options["sortBy"] = [{"displayName": sort, "desc": True}]
    return Panel(
        "table", title, query, description, width=width, height=height, options=options, overrides=overrides or []
    )


def _series(
    title: str,
    query: str,
    description: str,
    *,
    unit: str | None = None,
    width: int = 12,
    height: int = 8,
    overrides: list[dict[str, object]] | None = None,
    bars: bool = False,
    defaults: dict[str, object] | None = None,
) -> Panel:
    custom: dict[str, object] = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 60 if bars else 10,
        "showPoints": "never",
        "spanNulls": False,
    }
    return Panel(
        "timeseries",
        title,
        query,
        description,
        width=width,
        height=height,
        unit=unit,
        options=TIMESERIES,
        defaults={"custom": custom, **(defaults or {})},
        overrides=overrides or [],
    )


def _limit_lines() -> list[dict[str, object]]:
    """Series named `<parameter> limit` drawn as dashed red lines."""
    return [
        {
            "matcher": {"id": "byRegexp", "options": ".* limit$"},
            "properties": [
                {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
                {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                {"id": "custom.lineWidth", "value": 2},
            ],
        }
    ]


def _attention(where: str, column: str) -> Panel:
    return _table(
        f"Attention by {column}",
        flux.attention_by(where, column),
        f"Stacks per {column} and how many of them are not normal.",
        overrides=[
            column_override(
                "attention", **{"custom.cellOptions": {"type": "color-background"}, "thresholds": STATUS_THRESHOLDS}
            )
        ],
        width=5,
        height=7,
    )


# -- overview ------------------------------------------------------------------------------------
def overview() -> Dashboard:
    where = flux.fleet(enterprise=False)
    status_cells = colored_cells("status", flux.STATUS_COLORS)
    counts = _stat(
        "Stacks by status",
        flux.status_counts(where),
        "How many stacks are in each status at the end of the time range. A stack's status is its worst "
        f"open condition: {flux.WORST_FIRST}.",
        height=4,
    )
    counts.overrides = [
        column_override(name, **{"color": {"mode": "fixed", "fixedColor": color}})
        for name, color in flux.STATUS_COLORS.items()
    ]
    return Dashboard(
        uid="cems-overview",
        title="Monitoring centre overview",
        description="Every stack's status at a glance, where the problems are, and the open alerts.",
        variables=[NS, DISTRICT, INDUSTRY],
        refresh="1m",
        time_from="now-6h",
        links=LINKS,
        items=[
            counts,
            _table(
                "Stack status",
                flux.status_table(where),
                "One row per stack, worst first: its status, what is wrong (alert kind and parameter, or the data "
                "flag), and when it last reported. Click a stack for its detail.",
                overrides=[
                    status_cells,
                    STACK_LINK,
                    column_override("last_seen", unit="dateTimeAsIso"),
                    column_override("rank", **{"custom.hidden": True}),
                ],
                width=14,
                height=14,
            ),
            _attention(where, "district"),
            _attention(where, "industry"),
            _table(
                "Open alerts",
                flux.open_alerts(flux.fleet(enterprise=False)),
                "Alerts not yet resolved at the end of the time range, oldest first, with their age in hours. "
                "An acknowledged alert stays here until its condition clears.",
                overrides=[
                    colored_cells("severity", SEVERITY),
                    colored_cells("last_event", EVENT),
                    STACK_LINK,
                    column_override("age_h", unit="h", decimals=1),
                    column_override("opened", unit="dateTimeAsIso"),
                ],
                height=10,
            ),
            _series(
                "Alerts opened per hour",
                flux.alerts_opened_per_hour(where),
                "New alert episodes per hour, by kind.",
                bars=True,
                width=24,
                height=7,
                defaults={"custom": {"drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal"}}},
            ),
        ],
    )


# -- stack detail ----------------------------------------------------------------------------------
def stack_detail() -> Dashboard:
    return Dashboard(
        uid="cems-stack",
        title="Stack detail",
        description="One stack's evidence: converted and raw concentrations against limits, flue gas, flags, validity.",
        variables=[NS, DISTRICT, INDUSTRY, ENTERPRISE, STACK, CONSOLE],
        annotations=[Annotation("Alerts", flux.alert_annotations())],
        links=[
            *LINKS,
            {
                "type": "link",
                "title": "Cases of this stack",
                "url": "${console}/cases?stack=${stack}",
                "targetBlank": True,
            },
        ],
        items=[
            Row("Concentrations"),
            _series(
                "Hourly converted SO2, NOx, PM and limits",
                flux.hourly_fields(("so2", "nox", "pm"), ("converted", "limit")),
                "Hourly averages converted to the stack's reference O2 (HJ 75: only hours with >= 45 valid "
                "minutes are judged) and the limit that applied (dashed red).",
                unit="conmgm3",
                overrides=_limit_lines(),
            ),
            _series(
                "Raw concentrations",
                flux.reading_fields(("so2", "nox", "pm")),
                "Measured concentrations (mg/m3, not O2-converted), averaged per display interval.",
                unit="conmgm3",
            ),
            _series(
                "Hourly NH3 slip, NMHC and limits",
                flux.hourly_fields(("nh3", "nmhc"), ("converted", "limit")),
                "Ammonia slip (O2-converted) and NMHC/VOCs (as measured) hourly averages with their limits.",
                unit="conmgm3",
                overrides=_limit_lines(),
            ),
            _series(
                "Raw NH3 and NMHC",
                flux.reading_fields(("nh3", "nmhc")),
                "Measured ammonia slip and NMHC, averaged per display interval.",
                unit="conmgm3",
            ),
            Row("Flue gas"),
            _series(
                "O2 and humidity",
                flux.reading_fields(("o2", "humidity")),
                "Flue gas O2 (used for the conversion; >= 19 % means the unit is not running) and moisture.",
                unit="percent",
                width=8,
            ),
            _series(
                "Flow",
                flux.reading_fields(("flow",)),
                "Flue gas flow (m3/s); it follows the load.",
                unit="flowcms",
                width=8,
            ),
            _series(
                "Temperature",
                flux.reading_fields(("temperature",)),
                "Flue gas temperature; about 50 C after wet desulphurisation.",
                unit="celsius",
                width=8,
            ),
            Row("Data validity"),
            Panel(
                "state-timeline",
                "Data flags",
                flux.stack_flags(),
                "The HJ 212 flag of each parameter over time: N normal; C calibration, M maintenance, D fault, "
                "F stopped, B communication, T over range, S set value. Flagged minutes do not count for averages.",
                width=12,
                height=8,
                options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8, "legend": {"showLegend": True}},
                defaults={
                    "mappings": mapping(
                        {
                            "N": "green",
                            "C": "blue",
                            "M": "purple",
                            "D": "red",
                            "F": "dark-red",
                            "B": "orange",
                            "T": "yellow",
                            "S": "light-blue",
                        }
                    )
                },
            ),
            _series(
                "Valid minutes per hour",
                flux.stack_valid_minutes(),
                "Minutes of valid data in each closed hour, per parameter; below 45 the hour is not judged.",
                bars=True,
                defaults={
                    "thresholds": thresholds((None, "red"), (45, "green")),
                    "custom": {"drawStyle": "bars", "fillOpacity": 60, "thresholdsStyle": {"mode": "line"}},
                },
            ),
            _table(
                "Alerts on this stack",
                flux.alert_events(flux.ONE_STACK),
                "Every alert event of the stack in the time range, newest first.",
                overrides=[colored_cells("severity", SEVERITY), colored_cells("event", EVENT)],
            ),
        ],
    )


# -- compliance ------------------------------------------------------------------------------------
def compliance() -> Dashboard:
    where = flux.fleet()
    return Dashboard(
        uid="cems-compliance",
        title="Compliance",
        description="Exceeding hours, compliance rates, enterprise ranking and emissions.",
        variables=FLEET,
        time_from="now-30d",
        refresh="5m",
        links=LINKS,
        items=[
            _table(
                "Exceeding hours by stack and day",
                flux.exceeding_hours_by_day(where),
                "Hours whose converted average exceeded the limit, per stack, parameter and day (Beijing time).",
                width=12,
            ),
            _table(
                "Compliance rate by stack and month",
                flux.compliance_by_month(where),
                "Share of judged hours (some parameter valid) in which no parameter exceeded, per month. Steel "
                "ultra-low emission requires at least 95 %; other industries are expected to have no exceeding hour.",
                overrides=[
                    # the target depends on the industry: the `meets` column carries the colour
                    column_override("compliant_pct", unit="percent", decimals=1),
                    colored_cells("meets", {"true": "green", "false": "red"}),
                ],
                width=12,
            ),
            Panel(
                "bargauge",
                "Enterprise ranking: exceeding hours",
                flux.enterprise_ranking(where),
                "Enterprises by exceeding hours in the time range, most first.",
                width=8,
                height=9,
                options={
                    "orientation": "horizontal",
                    "displayMode": "basic",
                    "showUnfilled": True,
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "/^exceeding_hours$/", "values": True},
                },
                defaults={"thresholds": thresholds((None, "orange"), (5, "red"))},
            ),
            _series(
                "Emissions by enterprise",
                flux.emissions_rate(where),
                "Hourly emission rate (kg/h = C x standard dry flow x 1e-6), summed over each enterprise's stacks.",
                unit="kg/h",
                width=16,
                height=9,
            ),
            _table(
                "Emissions in the time range",
                flux.emissions_total(where),
                "Kilograms emitted in the time range per enterprise and pollutant (sum of closed hours' kg/h).",
                overrides=[column_override("kg", unit="kg", decimals=1)],
            ),
        ],
    )


# -- data quality ------------------------------------------------------------------------------------
def data_quality() -> Dashboard:
    where = flux.fleet()
    return Dashboard(
        uid="cems-data-quality",
        title="Data quality",
        description="Data gaps, invalid marks and signs of falsified data.",
        variables=FLEET,
        time_from="now-7d",
        links=LINKS,
        items=[
            _table(
                "Data gaps",
                flux.episodes(where, (AlertKind.DATA_GAP,)),
                "Episodes of a stack (parameter '-') or a parameter not reporting: start, end (empty while it "
                "lasts) and minutes. 'since monitoring started' means the device never reported.",
                overrides=EPISODE_COLUMNS,
            ),
            _table(
                "Invalid-mark minutes",
                flux.flag_minutes(where),
                "Minutes flagged C, M, D, F, B, T or S per stack and parameter in closed hours. Marks are capped "
                "(e.g. calibration 4 h); longer ones raise an invalid_mark alert.",
                width=12,
            ),
            _table(
                "Valid hours",
                flux.valid_hours(where),
                "Closed hours per stack and parameter, and the share with >= 45 valid minutes.",
                overrides=[
                    column_override(
                        "valid_pct",
                        unit="percent",
                        decimals=1,
                        thresholds=thresholds((None, "red"), (90, "orange"), (99, "green")),
                        **{"custom.cellOptions": {"type": "color-background"}},
                    )
                ],
                width=12,
            ),
            _table(
                "Falsification signs",
                flux.episodes(
                    where,
                    (AlertKind.FLATLINE, AlertKind.ZS_MISMATCH, AlertKind.LIMIT_HUGGING, AlertKind.INVALID_MARK),
                ),
                "Flat lines while running, converted values that disagree with recomputation, hours hugging "
                "the limit, marks held beyond their cap.",
                overrides=EPISODE_COLUMNS,
            ),
        ],
    )


# -- bypass watch ------------------------------------------------------------------------------------
def bypass_watch() -> Dashboard:
    where = flux.fleet()
    return Dashboard(
        uid="cems-bypass",
        title="Bypass watch",
        description="Suspected and measured bypass episodes with the signals that raised them.",
        variables=FLEET,
        time_from="now-7d",
        links=LINKS,
        items=[
            _table(
                "Bypass episodes",
                flux.episodes(where, (AlertKind.BYPASS,), ("confidence", "signals")),
                "Each episode: start, end, minutes, confidence (0.95 measured damper or duct flow ... 0.5 "
                "dilution signature) and the signals seen.",
                overrides=[
                    *EPISODE_COLUMNS,
                    column_override(
                        "confidence",
                        unit="percentunit",
                        thresholds=thresholds((None, "yellow"), (0.7, "orange"), (0.9, "red")),
                        **{"custom.cellOptions": {"type": "color-background"}},
                    ),
                ],
            ),
            _series(
                "Bypass damper position",
                flux.bypass_signal(where, "bypass_damper"),
                "Bypass damper opening (%), per stack that has a damper signal; open >= 10 % for 3 minutes "
                "is a measured bypass.",
                unit="percent",
                width=8,
            ),
            _series(
                "Bypass duct flow",
                flux.bypass_signal(where, "bypass_flow"),
                "Flow in the bypass duct (m3/s), per stack that has a meter there; >= 1 m3/s for 3 minutes "
                "is a measured bypass.",
                unit="flowcms",
                width=8,
            ),
            _series(
                "Bypass duct temperature",
                flux.bypass_signal(where, "bypass_temperature"),
                "Temperature in the bypass duct; hot (>= 80 C) means flue gas passes.",
                unit="celsius",
                width=8,
            ),
        ],
    )


# -- electricity use and emergency response ----------------------------------------------------------
def electricity_emergency() -> Dashboard:
    where = flux.fleet()
    return Dashboard(
        uid="cems-electricity",
        title="Electricity use and emergency response",
        description="Production and pollution-control facilities' power (分表计电), the alerts it raises, and "
        "heavy-pollution emergency measures not met.",
        variables=FLEET,
        time_from="now-2d",
        links=LINKS,
        items=[
            _table(
                "Electricity alerts",
                flux.episodes(where, ELECTRICITY_KINDS),
                "Pollution control off while production runs (treatment_off), started late or stopped early, "
                "far below its normal power at normal load; every producer off while the stack emits.",
                overrides=EPISODE_COLUMNS,
            ),
            _series(
                "Facility power",
                flux.facility_power(where),
                "Active power (kW) of each metered facility: production follows its load; a pollution-control "
                "facility near zero while its production runs is switched off.",
                unit="kwatt",
                width=24,
                height=9,
            ),
            _table(
                "Emergency non-compliance",
                flux.episodes(where, (AlertKind.EMERGENCY_NONCOMPLIANCE,)),
                "Each facility's run of hours in which its emergency reduction measure was not met (stop, limit, "
                "cut against the baseline); the reason gives required and measured values.",
                overrides=EPISODE_COLUMNS,
                width=16,
            ),
            _table(
                "Non-compliant hours by facility",
                flux.noncompliant_hours(where),
                "Hours in which a facility's emergency measure was not met, in the time range; `cems emergency "
                "report` and the console give the full report with required and measured values.",
                width=8,
                sort="noncompliant_hours",
            ),
        ],
    )


def all_dashboards() -> list[Dashboard]:
    return [overview(), stack_detail(), compliance(), data_quality(), bypass_watch(), electricity_emergency()]
