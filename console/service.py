"""The console process: migrate the database, follow the alerts topic, serve the pages."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import uvicorn
from fastapi import FastAPI

from contracts.registry import load_registry
from contracts.topics import topics
from contracts.yamlfile import load_yaml_mapping
from rules.cases.access import Actor
from rules.cases.policy import CasePolicy, load_case_policy
from rules.engine import DetectionEngine
from rules.notify.routing import directory

from . import migrate
from .auth import LoginLimit
from .db import make_engine
from .emergency import EmergencyDesk
from .evidence import InfluxEvidence
from .fleet import FleetRow, fleet_rows
from .kafka import AlertFollower, KafkaAcknowledger, NotifierAcknowledger
from .settings import ConsoleSettings
from .store import CaseStore
from .web import Acknowledger, ConsoleContext, create_app

log = logging.getLogger(__name__)


@dataclass
class Console:
    app: FastAPI
    store: CaseStore
    follower: AlertFollower | None
    closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        if self.follower:
            self.follower.stop()
        for close in self.closers:
            close()
        self.store.engine.dispose()


def load_policy(settings: ConsoleSettings) -> CasePolicy:
    if settings.console_policy is None:
        return CasePolicy()
    return load_case_policy(load_yaml_mapping(settings.console_policy), str(settings.console_policy))


def build(
    settings: ConsoleSettings,
    database_url: str,
    influx_token: str | None,
    *,
    follow: bool = True,
    rules: DetectionEngine | None = None,
) -> Console:
    """``rules``: the worker's engine (profiles and settings), for the emergency report; without
    it the console has no emergency pages."""
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    registry = load_registry(settings.registry)
    store = CaseStore(engine, load_policy(settings), directory(registry), consumer=settings.console_consumer)
    topic_set = topics(settings.topic_namespace)
    acknowledge: Acknowledger
    if settings.console_notify_url:
        token = settings.notify_api_token.get_secret_value() if settings.notify_api_token else ""
        acknowledge = NotifierAcknowledger(settings.console_notify_url, token)
    else:
        acknowledge = KafkaAcknowledger(settings.bootstrap, topic_set.acknowledgements.name)
    closers: list[Any] = []
    evidence = None
    if influx_token:
        evidence = InfluxEvidence(
            settings.influx_url, influx_token, settings.influxdb_org, settings.influxdb_bucket, settings.topic_namespace
        )
        closers.append(evidence.close)
        owners = {stack.id: enterprise.id for enterprise, stack in registry.stacks()}
        source, places = evidence, store.places

        async def fleet(actor: Actor, now: datetime) -> list[FleetRow]:
            return await fleet_rows(source, places, owners, actor, now)

    ctx = ConsoleContext(
        store=store,
        session_lifetime=timedelta(hours=settings.console_session_hours),
        login_limit=LoginLimit(settings.console_login_max_failures, settings.console_login_window_s),
        cookie_secure=settings.console_cookie_secure,
        grafana_url=settings.grafana_url,
        evidence=evidence,
        acknowledge=acknowledge,
        fleet=fleet if evidence else None,
        emergency=None
        if rules is None
        else EmergencyDesk(settings.bootstrap, topic_set.emergency, rules.profiles, rules.settings, evidence),
    )
    follower = AlertFollower(store, settings.bootstrap, topic_set.alerts.name) if follow else None
    return Console(create_app(ctx), store, follower, closers)


def run_console(
    settings: ConsoleSettings,
    database_url: str,
    influx_token: str | None,
    *,
    follow: bool = True,
    rules: DetectionEngine | None = None,
) -> int:
    console = build(settings, database_url, influx_token, follow=follow, rules=rules)
    if console.follower:
        console.follower.start()
    server = uvicorn.Server(
        uvicorn.Config(console.app, host=settings.console_host, port=settings.console_port, log_level="warning")
    )
    log.info("console on http://%s:%d", settings.console_host, settings.console_port)
    try:
        server.run()
    finally:
        console.close()
    return 0
