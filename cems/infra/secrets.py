"""Local development secrets (MQTT passwords, InfluxDB token, PostgreSQL passwords), generated once and kept
under ``<state>/secrets`` with mode 0600. Production deployments inject their own."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path


class SecretStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _load(self, name: str) -> dict[str, str]:
        path = self.directory / f"{name}.json"
        if not path.exists():
            return {}
        data = json.loads(path.read_text())
        return {str(k): str(v) for k, v in data.items()}

    def _save(self, name: str, data: dict[str, str]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        path = self.directory / f"{name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o600)
        tmp.replace(path)

    def _get_or_create(self, name: str, key: str) -> str:
        data = self._load(name)
        if key not in data:
            data[key] = secrets.token_urlsafe(18)
            self._save(name, data)
        return data[key]

    def mqtt_password(self, username: str) -> str:
        # docker-compose gives every development account one password (see docker-compose.yml)
        shared = os.environ.get("CEMS_MQTT_DEV_PASSWORD")
        return shared if shared else self._get_or_create("mqtt", username)

    def influxdb_token(self) -> str:
        return self._get_or_create("influxdb", "token")

    def influxdb_password(self) -> str:
        return self._get_or_create("influxdb", "password")

    def postgres_password(self, role: str = "cems") -> str:
        """The password of a login role of the local PostgreSQL; docker-compose gives every
        development role one password, ``$CEMS_POSTGRES_DEV_PASSWORD`` (see docker-compose.yml)."""
        shared = os.environ.get("CEMS_POSTGRES_DEV_PASSWORD")
        return shared if shared else self._get_or_create("postgres", role)
