"""InfluxDB OSS 2.7 (``influxd`` built from its Go module) serving the v2 HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from contracts.errors import InfrastructureError

from .process import ManagedServer
from .secrets import SecretStore
from .settings import REPO_ROOT

BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-influxd.sh"


class InfluxDBServer(ManagedServer):
    name = "influxdb"
    process_marker = "influxd"

    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings)
        self.secrets = SecretStore(settings.secrets_dir)

    @property
    def endpoint(self) -> str:
        return self.settings.influxdb_url

    def install(self) -> Path:
        binary = self.settings.influxd_binary
        if binary.exists():
            return binary
        env = {
            **_environ(),
            "INFLUXDB_VERSION": self.settings.influxdb_version,
            "CEMS_CACHE_DIR": str(self.settings.cache_dir),
        }
        log = self.home / "build.log"
        self.home.mkdir(parents=True, exist_ok=True)
        print(f"influxdb: building influxd {self.settings.influxdb_version} once (log: {log}) ...", flush=True)
        with log.open("w") as out:
            done = subprocess.run(
                ["bash", str(BUILD_SCRIPT)], env=env, stdout=out, stderr=subprocess.STDOUT, check=False
            )
        if done.returncode != 0 or not binary.exists():
            raise InfrastructureError(f"influxdb: building influxd failed (exit {done.returncode}); read {log}")
        return binary

    def prepare(self) -> None:
        self.install()
        for sub in ("engine", "meta"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [
            str(self.settings.influxd_binary),
            "--bolt-path",
            str(self.home / "meta" / "influxd.bolt"),
            "--sqlite-path",
            str(self.home / "meta" / "influxd.sqlite"),
            "--engine-path",
            str(self.home / "engine"),
            "--http-bind-address",
            f"{self.settings.host}:{self.settings.influxdb_port}",
            "--reporting-disabled",
            "--log-level",
            "info",
        ]

    def _request(self, method: str, path: str, body: object | None = None, token: str | None = None) -> object:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.endpoint}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Token {token}")
        with urllib.request.urlopen(req, timeout=5) as resp:
            payload = resp.read()
        return json.loads(payload) if payload else None

    def check(self) -> str | None:
        try:
            health = self._request("GET", "/health")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return f"/health not answering ({exc})"
        if not isinstance(health, dict) or health.get("status") != "pass":
            return f"/health says {health}"
        return None

    def after_start(self) -> None:
        """Create the org, bucket and operator token once (InfluxDB's onboarding)."""
        token = self.secrets.influxdb_token()
        setup = self._request("GET", "/api/v2/setup")
        if isinstance(setup, dict) and setup.get("allowed"):
            self._request(
                "POST",
                "/api/v2/setup",
                {
                    "username": self.settings.influxdb_user,
                    "password": self.secrets.influxdb_password(),
                    "org": self.settings.influxdb_org,
                    "bucket": self.settings.influxdb_bucket,
                    "token": token,
                },
            )
        try:
            buckets = self._request("GET", f"/api/v2/buckets?name={self.settings.influxdb_bucket}", token=token)
        except urllib.error.HTTPError as exc:
            raise InfrastructureError(
                f"influxdb: the token in {self.settings.secrets_dir / 'influxdb.json'} is refused ({exc}); "
                f"the data in {self.home} was set up with another one: `cems infra reset influxdb` starts afresh"
            ) from exc
        if not isinstance(buckets, dict) or not buckets.get("buckets"):
            raise InfrastructureError(f"influxdb: bucket {self.settings.influxdb_bucket!r} missing after set-up")


def _environ() -> dict[str, str]:
    import os

    env = dict(os.environ)
    for tool in ("go", "cargo"):
        if shutil.which(tool) is None:
            raise InfrastructureError(f"influxdb: building influxd needs {tool!r} on PATH")
    return env
