"""PostgreSQL of `cems infra`: SQLAlchemy + psycopg through ``database_url``, the ``cems``
role's rights, per-test databases, idempotent start, and a clean fast shutdown (private server)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from cems.infra.postgres import PostgresServer, create_database, database_url, drop_database
from cems.infra.settings import InfraSettings

from .helpers import free_port

pytestmark = pytest.mark.integration


def test_write_and_read_rows_through_sqlalchemy(postgres: InfraSettings) -> None:
    engine = create_engine(database_url(postgres))
    rows = [(1, "jy-power-1-s1", 36.25, "超标 exceedance"), (2, "jy-steel-2-s1", 101.5, "旁路 bypass")]
    try:
        with engine.begin() as conn:
            who = conn.execute(text("SELECT current_user, current_database()")).one()
            assert tuple(who) == ("cems", "cems")
            conn.execute(
                text(
                    "CREATE TEMPORARY TABLE smoke (id int PRIMARY KEY, stack text, so2_mg_m3 float8, note text) "
                    "ON COMMIT DROP"
                )
            )
            conn.execute(
                text("INSERT INTO smoke VALUES (:id, :stack, :v, :note)"),
                [{"id": i, "stack": s, "v": v, "note": n} for i, s, v, n in rows],
            )
            back = conn.execute(text("SELECT id, stack, so2_mg_m3, note FROM smoke ORDER BY id")).all()
            assert [tuple(r) for r in back] == rows
            total = conn.execute(text("SELECT sum(so2_mg_m3) FROM smoke")).scalar_one()
            assert total == pytest.approx(137.75)
        with engine.connect() as conn:  # dropped at commit (the pool hands out the same session)
            assert conn.execute(text("SELECT to_regclass('pg_temp.smoke')")).scalar_one() is None
    finally:
        engine.dispose()


def test_the_cems_role_may_create_databases_and_nothing_more(postgres: InfraSettings) -> None:
    engine = create_engine(database_url(postgres))
    try:
        with engine.connect() as conn:
            role = conn.execute(
                text("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user")
            ).one()
            assert tuple(role) == (False, True, False)
            owner = conn.execute(
                text("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
            ).scalar_one()
            assert owner == "cems"
            with pytest.raises(Exception, match="permission denied"):
                conn.execute(text("SELECT rolpassword FROM pg_authid"))
    finally:
        engine.dispose()


def test_a_wrong_password_is_refused(postgres: InfraSettings) -> None:
    url = database_url(postgres).replace("@", "x@", 1)  # the password with one character more
    engine = create_engine(url)
    try:
        with pytest.raises(OperationalError, match="password authentication failed"):
            engine.connect()
    finally:
        engine.dispose()


def test_a_second_start_says_already_running_and_changes_nothing(postgres: InfraSettings) -> None:
    server = PostgresServer(postgres)
    pid = server.pid()
    assert pid is not None
    said = server.start()
    assert said == f"postgres: already running (pid {pid}) at postgresql://127.0.0.1:{postgres.postgres_port}/cems"
    assert server.pid() == pid
    assert server.status().healthy, server.status().detail


def test_postgres_url_gives_an_empty_database_of_its_own(postgres_url: str, postgres: InfraSettings) -> None:
    assert postgres_url.startswith("postgresql+psycopg://cems:")
    name = postgres_url.rsplit("/", 1)[1]
    assert name.startswith("test_") and name != postgres.postgres_db
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar_one() == name
            tables = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar_one()
            assert tables == 0
            conn.execute(text("CREATE TABLE cases (id serial PRIMARY KEY, title text NOT NULL)"))
            conn.execute(text("INSERT INTO cases (title) VALUES ('a'), ('b')"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM cases")).scalar_one() == 2
    finally:
        engine.dispose()


def test_a_dropped_database_is_gone_even_with_a_session_still_open(postgres: InfraSettings) -> None:
    name = f"test_drop_{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    url = create_database(postgres, name)
    created_s = time.monotonic() - started
    engine = create_engine(url)
    try:
        held = engine.connect()
        assert held.execute(text("SELECT 1")).scalar_one() == 1
        started = time.monotonic()
        drop_database(postgres, name)
        dropped_s = time.monotonic() - started
        with pytest.raises(OperationalError, match="does not exist"):
            create_engine(url).connect()
        print(f"create database {created_s * 1000:.0f} ms, drop with a session open {dropped_s * 1000:.0f} ms")
        assert created_s < 10 and dropped_s < 10
    finally:
        engine.dispose()
        drop_database(postgres, name)


# -- a private server: initdb, fast shutdown with a client connected, data kept ----------------
@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    # short, and reachable by the `postgres` user (pytest's tmp_path is under a 0700 folder)
    state = Path(tempfile.mkdtemp(prefix="cems-pg-"))
    os.chmod(state, 0o755)
    server = PostgresServer(InfraSettings(state_dir=state, postgres_port=free_port(), start_timeout_s=60))
    yield server
    server.stop()
    shutil.rmtree(state, ignore_errors=True)


def test_stop_is_a_fast_clean_shutdown_and_a_restart_keeps_the_data(private_postgres: PostgresServer) -> None:
    server = private_postgres
    first = server.start()
    assert first.startswith("postgres: started (pid "), first
    assert (server.data_dir / "PG_VERSION").read_text().strip() == "15"
    url = database_url(server.settings)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE kept (v text)"))
        conn.execute(text("INSERT INTO kept VALUES ('before the stop')"))
    engine.dispose()
    # a client idle in a transaction: a "smart" shutdown would wait for it for ever
    idle = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"))
    idle.execute("SELECT 1")
    started = time.monotonic()
    said = server.stop(timeout_s=20)
    stop_s = time.monotonic() - started
    idle.close()
    assert said.startswith("postgres: stopped (pid ") and "killed" not in said, said
    assert stop_s < 10, stop_s
    log = server.log_path.read_text()
    assert "received fast shutdown request" in log
    assert log.rstrip().endswith("database system is shut down")
    assert not (server.data_dir / "postmaster.pid").exists()

    second = server.start()
    assert second.startswith("postgres: started (pid "), second
    restart_log = server.log_path.read_text()[len(log) :]
    assert "was shut down at" in restart_log and "not properly shut down" not in restart_log
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT v FROM kept")).scalar_one() == "before the stop"
    finally:
        engine.dispose()
    print(f"{first}; stop with an idle client {stop_s:.2f} s; {second}")
