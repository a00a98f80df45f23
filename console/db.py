"""The console's tables (SQLAlchemy 2). Alembic migrations in ``console/migrations`` create
them; a test checks that the migrations and these models agree.

Times are stored as UTC and always come back timezone-aware (SQLite keeps no offset).
``case_history`` is append-only: the migration adds triggers that refuse UPDATE and DELETE on
it, in SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as naive UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the console stores aware times only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    #: an officer's districts, comma-separated
    districts: Mapped[str] = mapped_column(String(500), default="")
    enterprise: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_open_condition", "enterprise", "stack", "kind", "state"),
        Index("ix_cases_state_opened", "state", "opened_at"),
        Index("ix_cases_district_opened", "district", "opened_at"),
        Index("ix_cases_enterprise_opened", "enterprise", "opened_at"),
        Index("ix_cases_opened", "opened_at", "id"),  # the list's default order (newest first)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise: Mapped[str] = mapped_column(String(64))
    enterprise_name: Mapped[str] = mapped_column(String(200))
    stack: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    district: Mapped[str] = mapped_column(String(100))
    industry: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    opened_at: Mapped[datetime]
    last_occurrence_at: Mapped[datetime]
    #: ids of the case's alerts whose condition still holds
    open_alerts: Mapped[list[str]] = mapped_column(JSON, default=list)
    assignee: Mapped[str | None] = mapped_column(String(64))
    deadline: Mapped[datetime | None]
    responded_at: Mapped[datetime | None]
    recurrences: Mapped[int] = mapped_column(default=0)
    closed_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime]
    #: optimistic locking: the consumer and the web requests update cases concurrently
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's declarative form


class CaseHistory(Base):
    """Append-only (triggers refuse UPDATE and DELETE)."""

    __tablename__ = "case_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")


class Alert(Base):
    """An alert of a kind that opens cases, with its latest facts; ``case_id`` is None while it
    does not (yet) open one (a data gap not yet long enough)."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_pending", "case_id", "state"),)

    alert_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    enterprise: Mapped[str] = mapped_column(String(64))
    stack: Mapped[str] = mapped_column(String(64))
    parameter: Mapped[str | None] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    #: open, acknowledged or resolved
    state: Mapped[str] = mapped_column(String(16))
    start: Mapped[datetime]
    end: Mapped[datetime | None]
    last_event_at: Mapped[datetime]


class AlertEventRow(Base):
    """Every event of a stored alert, once (``event_key`` makes a replayed event a no-op)."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_key: Mapped[str] = mapped_column(String(160), unique=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id"), index=True)
    event: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    body: Mapped[dict[str, Any]]


class ConsumerOffset(Base):
    """The next offset to read, per topic partition, committed with the changes it caused."""

    __tablename__ = "consumer_offsets"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    topic: Mapped[str] = mapped_column(String(200), primary_key=True)
    partition: Mapped[int] = mapped_column(primary_key=True)
    next_offset: Mapped[int]


class WebSession(Base):
    __tablename__ = "web_sessions"

    #: sha256 of the cookie's token: a stolen database holds no usable session
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LoginFailure(Base):
    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: "user:<name>" or "ip:<address>"
    key: Mapped[str] = mapped_column(String(200), index=True)
    at: Mapped[datetime]


def make_engine(url: str) -> Engine:
    """An engine; SQLite gets foreign keys and WAL (the consumer and the web share the file)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)
