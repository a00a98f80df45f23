"""`cems console`: the case console (serve, accounts, database)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .common import NamespaceOption, RegistryOption, console, given, influx_token

if TYPE_CHECKING:
    from console.settings import ConsoleSettings

app = typer.Typer(help="The case console: cases from alerts, worked through in the browser.")
users_app = typer.Typer(help="Console accounts.")
db_app = typer.Typer(help="The console's database (Alembic migrations).")
app.add_typer(users_app, name="users")
app.add_typer(db_app, name="db")

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL (default: CEMS_CONSOLE_DATABASE_URL, else SQLite in the state folder)",
    ),
]
DEMO_PASSWORD_ENV = "CEMS_CONSOLE_DEMO_PASSWORD"


def database_url(settings: ConsoleSettings, given_url: str | None = None) -> str:
    from cems.infra.settings import InfraSettings

    if given_url or settings.console_database_url:
        return str(given_url or settings.console_database_url)
    path = InfraSettings().state_dir / "console" / "console.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _settings(**options: object) -> ConsoleSettings:
    from console.settings import ConsoleSettings

    return ConsoleSettings(**given(**options))


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8600)")] = None,
    url: DatabaseOption = None,
    registry: RegistryOption = None,
    namespace: NamespaceOption = None,
    follow: Annotated[bool, typer.Option(help="follow the alerts topic (turn off to serve a copy)")] = True,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Serve the console; migrate its database first and follow the alerts topic into cases."""
    from cems.logs import setup_logging
    from cems.topics import ensure_topics
    from console.service import run_console
    from contracts.registry import load_registry
    from contracts.topics import topics
    from streams.engine import load_engine
    from streams.settings import StreamSettings

    setup_logging(log_level)
    settings = _settings(console_host=host, console_port=port, registry=registry, topic_namespace=namespace)
    if follow:
        ensure_topics(settings.bootstrap, topics(settings.topic_namespace).all())
    token = _influx_token_or_none(settings)
    # the emergency report judges with the worker's rules: the same registry, settings and catalogue
    stream = StreamSettings()
    rules = load_engine(load_registry(settings.registry), stream.rules_file, stream.catalogue_file)
    raise typer.Exit(code=run_console(settings, database_url(settings, url), token, follow=follow, rules=rules))


def _influx_token_or_none(settings: ConsoleSettings) -> str | None:
    try:
        return influx_token(settings)
    except OSError:
        return None


def _store(url: str | None):  # type: ignore[no-untyped-def]
    """The case store on the migrated database, for account commands (no policy or registry)."""
    from console.store import CaseStore
    from rules.cases.policy import CasePolicy

    return CaseStore(_engine(url), CasePolicy(), {})


def _engine(url: str | None):  # type: ignore[no-untyped-def]
    from console import migrate
    from console.db import make_engine

    engine = make_engine(database_url(_settings(), url))
    migrate.upgrade(engine)
    return engine


@db_app.command("upgrade")
def db_upgrade(url: DatabaseOption = None) -> None:
    """Bring the database to the latest schema (idempotent)."""
    from console import migrate

    engine = _engine(url)
    console.print(f"database at revision {migrate.current(engine)} (head {migrate.head()})")


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="login name")],
    role: Annotated[str, typer.Option(help="officer, supervisor, admin or enterprise")],
    district: Annotated[list[str] | None, typer.Option(help="an officer's district (repeat for several)")] = None,
    enterprise: Annotated[str | None, typer.Option(help="an enterprise account's enterprise id")] = None,
    display_name: Annotated[str | None, typer.Option(help="name shown in the console")] = None,
    password_env: Annotated[
        str | None, typer.Option(help="read the password from this environment variable instead of a prompt")
    ] = None,
    url: DatabaseOption = None,
) -> None:
    """Create an account (the password is asked for, or read from --password-env)."""
    from datetime import UTC, datetime

    from console.auth import AccountError, add_user
    from rules.cases.access import Role

    try:
        chosen = Role(role)
    except ValueError:
        raise typer.BadParameter(f"choose from {[r.value for r in Role]}", param_hint="--role") from None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise typer.BadParameter(f"environment variable {password_env} is not set", param_hint="--password-env")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    store = _store(url)
    try:
        with store.session() as s:
            add_user(s, username=username, password=password, role=chosen, now=datetime.now(UTC),
                     display_name=display_name, districts=district, enterprise=enterprise)  # fmt: skip
    except (AccountError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    console.print(f"added {chosen.value} {username}")


@users_app.command("list")
def users_list(url: DatabaseOption = None) -> None:
    """The accounts and their roles."""
    from sqlalchemy import select

    from console.db import User

    store = _store(url)
    table = Table("user", "role", "districts", "enterprise", "active")
    with store.session() as s:
        for u in s.scalars(select(User).order_by(User.username)):
            table.add_row(u.username, u.role, u.districts, u.enterprise or "", "yes" if u.active else "no")
    console.print(table)


@users_app.command("demo")
def users_demo(
    registry: RegistryOption = None,
    url: DatabaseOption = None,
    quiet: Annotated[bool, typer.Option(help="one summary line instead of the list")] = False,
) -> None:
    """Demo accounts for the registry (idempotent): a supervisor `chief`, an officer per district
    (`officer-1`, ...) and an account per enterprise (its id); one shared password from
    CEMS_CONSOLE_DEMO_PASSWORD or generated once into the state folder's secrets."""
    from console.demo import ensure_demo_users
    from contracts.registry import load_registry

    settings = _settings(registry=registry)
    store = _store(url)
    password = demo_password()
    created = ensure_demo_users(store, load_registry(settings.registry), password)
    if quiet:
        console.print(
            f"demo logins (password [bold]{password}[/]): chief (supervisor, all districts), "
            f"officer-1..{sum(' officer ' in line for line in created)} (one per district), "
            "each enterprise by its id (see `cems console users list`)",
            highlight=False,
            soft_wrap=True,
        )
        return
    for line in created:
        console.print(line, highlight=False)
    console.print(f"demo password: {password}")


def demo_password() -> str:
    """CEMS_CONSOLE_DEMO_PASSWORD, else one generated once and kept (0600) in the state folder."""
    import secrets

    from cems.infra.settings import InfraSettings

    if os.environ.get(DEMO_PASSWORD_ENV):
        return os.environ[DEMO_PASSWORD_ENV]
    path = InfraSettings().secrets_dir / "console-demo-password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(12) + "\n")
    return path.read_text().strip()
