"""The local servers together: bring up, check, stop, in dependency order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from contracts.errors import InfrastructureError

from .influxdb import InfluxDBServer
from .kafka import KafkaServer
from .mosquitto import MosquittoServer, MqttAccount
from .postgres import PostgresServer
from .process import ManagedServer, ServerStatus
from .settings import InfraSettings


def servers(settings: InfraSettings, accounts: Sequence[MqttAccount] = ()) -> list[ManagedServer]:
    return [
        MosquittoServer(settings, accounts),
        KafkaServer(settings),
        InfluxDBServer(settings),
        PostgresServer(settings),
    ]


def select(all_servers: list[ManagedServer], names: Sequence[str]) -> list[ManagedServer]:
    if not names:
        return all_servers
    known = {s.name: s for s in all_servers}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InfrastructureError(f"unknown server(s) {unknown}; choose from {sorted(known)}")
    return [known[n] for n in names]


def up(chosen: list[ManagedServer], say: Callable[[str], None] = print) -> None:
    """Start each server (idempotent); stop at the first that fails, saying which and where to look."""
    for server in chosen:
        say(server.start())


def down(chosen: list[ManagedServer], say: Callable[[str], None] = print) -> None:
    for server in reversed(chosen):
        say(server.stop())


def status(chosen: list[ManagedServer]) -> list[ServerStatus]:
    return [server.status() for server in chosen]
