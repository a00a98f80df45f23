"""docker-compose.yml cannot run here (no Docker engine); check what can be checked."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cems.infra.dynsec import pbkdf2_hash
from cems.infra.secrets import SecretStore
from cems.infra.settings import REPO_ROOT, InfraSettings

COMPOSE = REPO_ROOT / "docker-compose.yml"


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(COMPOSE.read_text())


def test_services_present() -> None:
    services = _compose()["services"]
    assert {"mosquitto", "mosquitto-init", "kafka", "influxdb", "postgres", "grafana"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["influxdb"]["image"] == "influxdb:2.7"
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]


def test_ports_are_published_on_loopback_only() -> None:
    expected = {
        "mosquitto": ["1883"], "kafka": ["9092"], "influxdb": ["8086"], "postgres": ["5432"], "grafana": ["3000"],
        "gateway": ["9212", "9464"], "console": ["8600"],
    }  # fmt: skip
    services = _compose()["services"]
    for name, ports in expected.items():
        assert services[name]["ports"] == [f"127.0.0.1:{p}:{p}" for p in ports], name
    assert all(port.startswith("127.0.0.1:") for service in services.values() for port in service.get("ports", []))


def test_project_services_run_the_cems_command_against_the_compose_servers() -> None:
    services = _compose()["services"]
    assert services["gateway"]["build"] == "."
    assert (REPO_ROOT / "Dockerfile").exists()
    commands = {name: services[name]["command"][0] for name in ("gateway", "worker", "sink", "simulator")}
    assert commands == {"gateway": "gateway", "worker": "worker", "sink": "sink", "simulator": "simulate"}
    for name in ("gateway", "worker", "sink"):
        assert services[name]["environment"]["CEMS_KAFKA_BOOTSTRAP"] == "kafka:19092"
    assert services["gateway"]["environment"]["CEMS_MQTT_HOST"] == "mosquitto"
    assert services["sink"]["environment"]["CEMS_INFLUXDB_URL"] == "http://influxdb:8086"
    # the kafka listener the services use is the one the broker advertises inside the network
    assert "PLAINTEXT://kafka:19092" in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    from typer.core import TyperGroup
    from typer.main import get_command

    from cems.cli import app

    root = get_command(app)
    assert isinstance(root, TyperGroup)
    names = set(root.commands)
    assert set(commands.values()) <= names


def test_every_mounted_file_exists_and_named_volumes_are_declared() -> None:
    compose = _compose()
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (REPO_ROOT / source).exists(), f"service {name} mounts missing {source}"
            else:
                assert source in declared, f"service {name} uses undeclared volume {source}"


def test_mosquitto_runs_the_config_its_init_step_generates_from_the_registry() -> None:
    """The init step runs the project's image (``cems infra mosquitto-config``) into the
    volume the broker reads: no hand-kept config, ACL or password file remains."""
    services = _compose()["services"]
    init, broker = services["mosquitto-init"], services["mosquitto"]
    assert init["image"] == services["gateway"]["image"] and init["build"] == "."
    script = init["entrypoint"][-1]
    assert script.startswith("cems infra mosquitto-config --out /mosquitto/auth ")
    assert "chown -R 1883:1883 /mosquitto/auth" in script  # the eclipse-mosquitto image's user
    assert init["environment"]["CEMS_MQTT_DEV_PASSWORD"]
    assert "mosquitto-auth:/mosquitto/auth" in init["volumes"]
    assert broker["image"].startswith("eclipse-mosquitto:2.")
    assert broker["command"] == ["/usr/sbin/mosquitto", "-c", "/mosquitto/auth/mosquitto.conf"]
    assert "mosquitto-auth:/mosquitto/auth:ro" in broker["volumes"]
    assert broker["depends_on"]["mosquitto-init"]["condition"] == "service_completed_successfully"
    assert not (REPO_ROOT / "scripts/infra/mosquitto").exists()


def test_mosquitto_init_command_writes_the_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cems.cli import app

    monkeypatch.setenv("CEMS_MQTT_DEV_PASSWORD", "dev-pw")
    monkeypatch.setenv("CEMS_STATE_DIR", str(tmp_path / "state"))
    out = tmp_path / "auth"
    result = CliRunner().invoke(app, ["infra", "mosquitto-config", "--out", str(out)])
    assert result.exit_code == 0, result.output
    conf = (out / "mosquitto.conf").read_text().splitlines()
    for line in (
        "listener 1883 0.0.0.0",
        "allow_anonymous false",
        "plugin /usr/lib/mosquitto_dynamic_security.so",
        f"plugin_opt_config_file {out / 'dynamic-security.json'}",
        "persistence_location /mosquitto/data/",
        "max_queued_messages 0",
        f"max_queued_bytes {256 * 1024 * 1024}",
        "message_size_limit 262144",
    ):
        assert line in conf, line
    dynsec = json.loads((out / "dynamic-security.json").read_text())
    clients = {c["username"]: c for c in dynsec["clients"]}
    assert {"cems-platform", "jy-power-1"} <= set(clients)
    client = clients["jy-power-1"]
    assert base64.b64decode(client["password"]) == pbkdf2_hash("dev-pw", base64.b64decode(client["salt"]))
    assert not any(dynsec["defaultACLAccess"].values())


def test_grafana_provisioning_points_at_influxdb_with_flux() -> None:
    ds = yaml.safe_load(Path(REPO_ROOT / "dashboards/provisioning/datasources/influxdb.yaml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "influxdb"
    assert source["jsonData"]["version"] == "Flux"
    assert source["jsonData"]["defaultBucket"] == "cems"


def test_grafana_serves_the_generated_dashboards() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith("./")}
    json_dir = REPO_ROOT / mounts["/var/lib/grafana/dashboards/cems"]
    assert json_dir == REPO_ROOT / "dashboards/json"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (json_dir / Path(home).name).is_file()
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_the_long_running_services_are_started_again_when_they_fail() -> None:
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    assert {name: services[name].get("restart") for name in ("gateway", "worker", "sink")} == dict.fromkeys(
        ("gateway", "worker", "sink"), "unless-stopped"
    )


def test_postgres_is_the_image_of_the_version_cems_infra_runs_with_the_same_role_and_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compose = _compose()
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "postgres:15"  # Debian 12's postgresql-15, what `cems infra up` runs
    settings = InfraSettings(state_dir=tmp_path)
    env = postgres["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_DB"]) == (settings.postgres_user, settings.postgres_db)
    assert "--auth-host=scram-sha-256" in env["POSTGRES_INITDB_ARGS"].split()
    assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    test = postgres["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"] and test[test.index("-h") + 1] == "127.0.0.1"
    # one development password, read by the image and by the project's code (SecretStore)
    variable = "CEMS_POSTGRES_DEV_PASSWORD"
    assert env["POSTGRES_PASSWORD"] == compose["x-dev-secrets"][variable] == f"${{{variable}:-cems-dev-password}}"
    monkeypatch.setenv(variable, "from-compose")
    assert SecretStore(settings.secrets_dir).postgres_password() == "from-compose"


def test_the_console_runs_on_the_compose_postgres_with_demo_accounts_first() -> None:
    services = _compose()["services"]
    console, init = services["console"], services["console-init"]
    assert console["command"][:2] == ["console", "serve"] and init["command"] == ["console", "users", "demo"]
    assert console["depends_on"]["console-init"] == {"condition": "service_completed_successfully"}
    assert init["depends_on"]["postgres"] == {"condition": "service_healthy"}
    url = console["environment"]["CEMS_CONSOLE_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://cems:") and url.endswith("@postgres:5432/cems")
    assert console["environment"] == init["environment"]
    assert "COPY console ./console" in (REPO_ROOT / "Dockerfile").read_text()
