"""PostgreSQL of `cems infra`, the parts that need no server: binaries, command lines,
authentication files, URL, secrets, registration in the stack."""

from __future__ import annotations

import pwd
import signal
import stat
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from cems.infra.postgres import (
    PostgresBinaries,
    PostgresServer,
    as_user,
    choose_binaries,
    database_url,
    initdb_command,
    parse_major,
    render_hba,
    render_ident,
)
from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings
from cems.infra.stack import select, servers
from contracts.errors import InfrastructureError


def _fake_bindir(tmp_path: Path, version: str = "15.18", tools: tuple[str, ...] = ("initdb", "postgres")) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in tools:
        script = bindir / tool
        script.write_text(f"#!/bin/sh\necho '{tool} (PostgreSQL) {version} (Debian {version}-0+deb12u1)'\n")
        script.chmod(0o755)
    return bindir


def _server(tmp_path: Path, **settings: object) -> PostgresServer:
    return PostgresServer(InfraSettings(state_dir=tmp_path / "state", **settings))  # type: ignore[arg-type]


def test_parse_major_reads_postgres_version_output() -> None:
    assert parse_major("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n") == 15
    assert parse_major("postgres (PostgreSQL) 17beta1") == 17
    assert parse_major("bash: postgres: command not found") is None


def test_no_installation_is_an_error_that_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(InfrastructureError) as info:
        choose_binaries([], None, [Path("/usr/lib/postgresql/15/bin")], tmp_path / "data")
    message = str(info.value)
    assert "initdb, postgres" in message and "/usr/lib/postgresql/15/bin" in message
    assert "apt-get install postgresql" in message


def test_the_installation_matching_the_cluster_is_chosen(tmp_path: Path) -> None:
    v16, v15 = PostgresBinaries(Path("/usr/lib/postgresql/16/bin"), 16), PostgresBinaries(Path("/p15/bin"), 15)
    assert choose_binaries([v16, v15], None, [], tmp_path) == v16  # a new cluster: the first found
    assert choose_binaries([v16, v15], 15, [], tmp_path) == v15
    with pytest.raises(InfrastructureError, match=r"created by PostgreSQL 14, installed is 16 .*install postgresql-14"):
        choose_binaries([v16, v15], 14, [], tmp_path / "data")


def test_a_bindir_without_the_server_tools_is_refused_naming_it(tmp_path: Path) -> None:
    bindir = _fake_bindir(tmp_path, tools=("postgres",))  # initdb missing (only libpq's client tools, say)
    with pytest.raises(InfrastructureError) as info:
        _server(tmp_path, postgres_bindir=bindir).binaries()
    assert str(bindir) in str(info.value)
    assert "CEMS_POSTGRES_BINDIR" in str(info.value)


def test_server_command_listens_on_loopback_with_the_port_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CEMS_POSTGRES_PORT", "15432")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    server = _server(tmp_path, postgres_bindir=_fake_bindir(tmp_path))
    home = tmp_path / "state" / "postgres"
    assert server.home == home
    assert server.command() == [
        str(tmp_path / "bin" / "postgres"), "-D", str(home / "data"), "-p", "15432", "-h", "127.0.0.1",
        "-k", str(home / "run"), "-c", "cluster_name=cems", "-c", "log_line_prefix=%m [%p] %q%u@%d ",
    ]  # fmt: skip
    assert server.endpoint == "postgresql://127.0.0.1:15432/cems"


def test_as_root_the_server_runs_as_the_postgres_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    account = pwd.struct_passwd(("postgres", "x", 101, 104, "", "/var/lib/postgresql", "/bin/bash"))
    monkeypatch.setattr("pwd.getpwnam", lambda name: account if name == "postgres" else None)
    server = _server(tmp_path, postgres_bindir=_fake_bindir(tmp_path))
    assert server.command()[:6] == [
        "setpriv",
        "--reuid=101",
        "--regid=104",
        "--init-groups",
        "--",
        str(tmp_path / "bin" / "postgres"),
    ]
    assert as_user(None) == []


def test_as_root_without_the_postgres_user_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> pwd.struct_passwd:
        raise KeyError(name)

    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("pwd.getpwnam", missing)
    with pytest.raises(InfrastructureError, match=r"refuses to run as root.*apt-get install postgresql"):
        _server(tmp_path).run_as()


def test_initdb_makes_a_utf8_cluster_with_scram_over_tcp(tmp_path: Path) -> None:
    cmd = initdb_command(PostgresBinaries(tmp_path, 15), tmp_path / "data", tmp_path / "pw")
    assert cmd[0] == str(tmp_path / "initdb")
    for arg in ("--auth-host=scram-sha-256", "--auth-local=peer", "--encoding=UTF8", "--locale=C"):
        assert arg in cmd
    assert cmd[cmd.index("--username") + 1] == "postgres"
    assert cmd[cmd.index("--pwfile") + 1] == str(tmp_path / "pw")


def test_hba_trusts_nobody_and_lets_only_the_admin_map_be_superuser_by_peer() -> None:
    rules = [line.split() for line in render_hba().splitlines() if line and not line.startswith("#")]
    assert rules == [
        ["local", "all", "postgres", "peer", "map=cems_admin"],
        ["local", "all", "all", "scram-sha-256"],
        ["host", "all", "all", "samehost", "scram-sha-256"],
    ]
    assert "trust" not in render_hba() and "md5" not in render_hba()


def test_ident_maps_each_operating_system_user_once() -> None:
    rules = [line.split() for line in render_ident(["root", "postgres", "root"]).splitlines()[1:] if line]
    assert rules == [["cems_admin", "root", "postgres"], ["cems_admin", "postgres", "postgres"]]


def test_database_url_is_sqlalchemy_psycopg_with_the_stored_password(tmp_path: Path) -> None:
    settings = InfraSettings(state_dir=tmp_path)
    password = SecretStore(settings.secrets_dir).postgres_password()
    assert database_url(settings) == f"postgresql+psycopg://cems:{password}@127.0.0.1:5432/cems"
    assert database_url(settings, "other").endswith("@127.0.0.1:5432/other")
    assert len(password) >= 20
    secret_file = settings.secrets_dir / "postgres.json"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert SecretStore(settings.secrets_dir).postgres_password() == password  # generated once


def test_database_url_quotes_a_password_with_url_characters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEMS_POSTGRES_DEV_PASSWORD", "p@ss:w/rd%?#")
    url = make_url(database_url(InfraSettings(state_dir=tmp_path)))
    assert (url.drivername, url.username, url.password, url.host, url.port, url.database) == (
        "postgresql+psycopg", "cems", "p@ss:w/rd%?#", "127.0.0.1", 5432, "cems",
    )  # fmt: skip


def test_stop_asks_for_a_fast_shutdown_and_the_pid_is_checked_against_the_data_dir(tmp_path: Path) -> None:
    server = _server(tmp_path)
    assert server.stop_signal == signal.SIGINT
    assert server.process_marker == str(tmp_path / "state" / "postgres" / "data")


def test_a_socket_path_too_long_for_linux_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 90)
    server = PostgresServer(InfraSettings(state_dir=deep, postgres_bindir=_fake_bindir(tmp_path)))
    with pytest.raises(InfrastructureError, match="longer than 107 bytes; choose a shorter CEMS_STATE_DIR"):
        server.prepare()
    assert not deep.exists()


def test_postgres_is_the_fourth_server_of_the_stack(tmp_path: Path) -> None:
    stack = servers(InfraSettings(state_dir=tmp_path))
    assert [s.name for s in stack] == ["mosquitto", "kafka", "influxdb", "postgres"]
    (chosen,) = select(stack, ["postgres"])
    assert isinstance(chosen, PostgresServer)
