"""Mosquitto from Debian, with the project's config: persistence on, no anonymous access,
a password file and an ACL so each enterprise account publishes only under its own prefix."""

from __future__ import annotations

import os
import pwd
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from contracts.errors import InfrastructureError

from .process import ManagedServer, run_checked
from .secrets import SecretStore

#: topic grammar root; an enterprise account may write only below cems/v1/<its account>/
TOPIC_ROOT = "cems/v1"


@dataclass(frozen=True)
class MqttAccount:
    username: str
    role: str  # "enterprise" or "platform"


def render_acl(platform_user: str) -> str:
    """The ACL: the platform reads everything; each enterprise writes under its own prefix.

    ``%u`` is the connecting username, so an account named after its enterprise id can
    publish to ``cems/v1/<enterprise>/...`` and nowhere else, and read only its own
    acknowledgement topics.
    """
    return "\n".join(
        [
            f"user {platform_user}",
            f"topic readwrite {TOPIC_ROOT}/#",
            f"topic readwrite $share/+/{TOPIC_ROOT}/#",
            "",
            "# every other account: an enterprise, confined to its own prefix",
            f"pattern write {TOPIC_ROOT}/%u/#",
            f"pattern read {TOPIC_ROOT}/%u/+/ack",
            f"pattern read {TOPIC_ROOT}/%u/+/cmd",
            "",
        ]
    )


def render_config(*, host: str, port: int, home: Path) -> str:
    return "\n".join(
        [
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {home / 'passwd'}",
            f"acl_file {home / 'acl'}",
            "persistence true",
            f"persistence_location {home / 'data'}/",
            "autosave_interval 30",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            f"listener {port} {host}",
            "",
        ]
    )


class MosquittoServer(ManagedServer):
    name = "mosquitto"
    process_marker = "mosquitto"

    def __init__(self, settings, accounts: Sequence[MqttAccount] = ()) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings)
        self.accounts = list(accounts)
        self.secrets = SecretStore(settings.secrets_dir)

    @property
    def endpoint(self) -> str:
        return f"mqtt://{self.settings.host}:{self.settings.mqtt_port}"

    @property
    def config_path(self) -> Path:
        return self.home / "mosquitto.conf"

    def all_accounts(self) -> list[MqttAccount]:
        return [MqttAccount(self.settings.mqtt_platform_user, "platform"), *self.accounts]

    def prepare(self) -> None:
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if exe is None:
            raise InfrastructureError("mosquitto: not installed; run scripts/bootstrap.sh (apt-get install mosquitto)")
        home = self.home
        (home / "data").mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render_config(host=self.settings.host, port=self.settings.mqtt_port, home=home))
        (home / "acl").write_text(render_acl(self.settings.mqtt_platform_user))
        self.write_password_file()
        self._give_to_mosquitto_user()

    def write_password_file(self) -> None:
        passwd = self.home / "passwd"
        tmp = passwd.with_suffix(".tmp")
        tmp.write_text("")
        for account in self.all_accounts():
            password = self.secrets.mqtt_password(account.username)
            run_checked(
                [_mosquitto_passwd(), "-b", str(tmp), account.username, password],
                f"mosquitto: adding account {account.username!r} to the password file",
            )
        tmp.replace(passwd)

    def _give_to_mosquitto_user(self) -> None:
        """As root, mosquitto drops to user ``mosquitto``: its files must belong to that user."""
        if os.geteuid() != 0:
            return
        try:
            user = pwd.getpwnam("mosquitto")
        except KeyError:
            return
        for path in [self.home, *self.home.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        for path in (self.home / "passwd", self.home / "acl"):
            path.chmod(0o600)

    def command(self) -> list[str]:
        return [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(self.config_path)]

    def check(self) -> str | None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        user = self.settings.mqtt_platform_user
        result: dict[str, object] = {}
        done = threading.Event()

        def on_connect(client, userdata, flags, reason_code, properties):  # type: ignore[no-untyped-def]
            result["rc"] = reason_code
            done.set()

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cems-infra-health")
        client.username_pw_set(user, self.secrets.mqtt_password(user))
        client.on_connect = on_connect
        try:
            client.connect(self.settings.host, self.settings.mqtt_port, keepalive=10)
        except OSError as exc:
            return f"port {self.settings.mqtt_port} not accepting connections ({exc})"
        client.loop_start()
        try:
            if not done.wait(5):
                return "no CONNACK within 5 s"
        finally:
            client.disconnect()
            client.loop_stop()
        rc = result["rc"]
        if getattr(rc, "is_failure", True):
            return f"platform account refused: {rc}"
        return None


def _mosquitto_passwd() -> str:
    exe = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(exe).exists():
        raise InfrastructureError("mosquitto: mosquitto_passwd not found (Debian package mosquitto)")
    return exe
