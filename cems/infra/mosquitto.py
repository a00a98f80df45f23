"""Mosquitto from Debian, with the project's config: persistence on, no anonymous access,
accounts and rights in the dynamic security plugin (``cems.infra.dynsec``: default deny,
an enterprise publishes only its devices' channels and subscribes only to its own ``ack`` and
``cmd``), payload size and queue limits sized from the registry (``queue_budget``).

``MosquittoServer.start`` regenerates the configuration every time and restarts a running
broker whose configuration changed (the dynsec plugin reads its file only at start-up).
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import pwd
import shutil
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.errors import InfrastructureError

from .dynsec import MqttAccount, dynsec_document
from .process import ManagedServer, check_reachable
from .secrets import SecretStore
from .settings import InfraSettings

__all__ = ["MosquittoServer", "MqttAccount", "QueueBudget", "queue_budget", "render_config", "write_docker_config"]

DYNSEC_FILE = "dynamic-security.json"
#: the fingerprint of the configuration the running broker was started with
APPLIED_FILE = "applied-config.sha256"
PLUGIN_CANDIDATES = ("/usr/lib/*/mosquitto_dynamic_security.so", "/usr/lib/mosquitto_dynamic_security.so")
#: where the eclipse-mosquitto image keeps the plugin and its files (docker-compose)
DOCKER_PLUGIN = "/usr/lib/mosquitto_dynamic_security.so"
DOCKER_DATA = "/mosquitto/data"
DOCKER_LISTENER = "1883 0.0.0.0"
MIB = 1024 * 1024


@dataclass(frozen=True)
class QueueBudget:
    """How much the broker queues for a subscriber that is away (the gateway down)."""

    outage_budget_s: int
    readings_per_hour: float
    bytes_per_reading: int
    safety_factor: float
    floor_bytes: int
    #: ``max_queued_bytes``: the larger of the sized value and the floor
    max_queued_bytes: int

    @property
    def readings_held(self) -> int:
        """Readings of ``bytes_per_reading`` the queue holds."""
        return self.max_queued_bytes // self.bytes_per_reading

    @property
    def hours_held_at_full_load(self) -> float:
        return math.inf if self.readings_per_hour == 0 else self.readings_held / self.readings_per_hour

    def describe(self) -> str:
        return (
            f"outage budget {self.outage_budget_s} s at the registry's full load of "
            f"{self.readings_per_hour:,.0f} readings/h x {self.bytes_per_reading} B x {self.safety_factor:g}, "
            f"floor {self.floor_bytes // MIB} MiB: max_queued_bytes {self.max_queued_bytes:,} "
            f"({self.readings_held:,} readings, {self.hours_held_at_full_load:,.1f} h at full load)"
        )


def queue_budget(
    reporting_intervals_s: Iterable[int],
    *,
    outage_budget_s: int,
    bytes_per_reading: int,
    safety_factor: float,
    floor_bytes: int,
) -> QueueBudget:
    """Size the broker's per-client queue by bytes for an outage of ``outage_budget_s``.

    Full load = sum over the registry's streams (each stack, and each facility's electricity
    meter, which publishes through the same broker: ``cems.accounts``) of 3600 /
    reporting_interval_s readings an hour. ``max_queued_bytes`` = full load x outage hours x
    ``bytes_per_reading`` (1,024 by default; a JSON reading is under 1 KB, an HJ 212 packet
    under 2 KB) x ``safety_factor`` (2 by default), never below ``floor_bytes`` (256 MiB by
    default, so 150,000 readings of ~600 bytes queued while the gateway is down fit with room
    to spare). The sample registry (24 stacks and 14 meters, one reading a minute each: 2,280
    readings/h) needs 4.7 MB for an hour: the floor applies. 10,000 stacks at one a minute
    (600,000 readings/h) need 1.14 GiB for an hour, which Mosquitto holds in memory.
    Mosquitto counts payload bytes only.
    """
    intervals = list(reporting_intervals_s)
    if any(i <= 0 for i in intervals):
        raise ValueError(f"reporting intervals must be positive, got {sorted(set(intervals))[:5]}")
    readings_per_hour = sum(3600 / i for i in intervals)
    sized = math.ceil(readings_per_hour * outage_budget_s / 3600 * bytes_per_reading * safety_factor)
    return QueueBudget(
        outage_budget_s=outage_budget_s,
        readings_per_hour=readings_per_hour,
        bytes_per_reading=bytes_per_reading,
        safety_factor=safety_factor,
        floor_bytes=floor_bytes,
        max_queued_bytes=max(sized, floor_bytes),
    )


def budget_for(settings: InfraSettings, accounts: Sequence[MqttAccount]) -> QueueBudget:
    return queue_budget(
        (i for a in accounts for i in a.reporting_intervals_s),
        outage_budget_s=settings.mqtt_outage_budget_s,
        bytes_per_reading=settings.mqtt_bytes_per_reading,
        safety_factor=settings.mqtt_queue_safety_factor,
        floor_bytes=settings.mqtt_queue_floor_bytes,
    )


def render_config(
    *,
    listener: str,
    data_dir: str,
    plugin: str,
    dynsec_file: str,
    settings: InfraSettings,
    budget: QueueBudget,
) -> str:
    """mosquitto.conf; ``listener`` is ``"<port> <address>"``."""
    return "\n".join(
        [
            "# Generated by cems.infra.mosquitto.render_config.",
            f"# Queue: {budget.describe()}.",
            "per_listener_settings false",
            "allow_anonymous false",
            f"plugin {plugin}",
            f"plugin_opt_config_file {dynsec_file}",
            "persistence true",
            f"persistence_location {data_dir.rstrip('/')}/",
            f"autosave_interval {settings.mqtt_autosave_interval_s}",
            f"message_size_limit {settings.mqtt_message_size_limit_bytes}",
            "max_queued_messages 0",
            f"max_queued_bytes {budget.max_queued_bytes}",
            f"max_inflight_messages {settings.mqtt_max_inflight_messages}",
            f"sys_interval {settings.mqtt_sys_interval_s}",
            # sessions left offline (MQTT 3.1.1 ones never expire by themselves) are dropped after
            # this: an account cannot pile up sessions that each queue for ever
            f"persistent_client_expiration {settings.mqtt_persistent_client_expiration}",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            f"listener {listener}",
            "",
        ]
    )


def write_docker_config(settings: InfraSettings, accounts: Sequence[MqttAccount], out_dir: Path) -> QueueBudget:
    """Write ``mosquitto.conf`` and ``dynamic-security.json`` for the eclipse-mosquitto image
    into ``out_dir`` (docker-compose's ``mosquitto-init`` step; the broker mounts the folder
    at the same path). Same policy and limits as ``cems infra up``; returns the queue budget."""
    out_dir.mkdir(parents=True, exist_ok=True)
    budget = budget_for(settings, accounts)
    dynsec = out_dir / DYNSEC_FILE
    conf = render_config(
        listener=DOCKER_LISTENER,
        data_dir=DOCKER_DATA,
        plugin=DOCKER_PLUGIN,
        dynsec_file=str(dynsec),
        settings=settings,
        budget=budget,
    )
    _write_private(dynsec, render_dynsec(settings, accounts, dynsec))
    (out_dir / "mosquitto.conf").write_text(conf)
    return budget


def platform_account(settings: InfraSettings) -> MqttAccount:
    return MqttAccount(settings.mqtt_platform_user, "platform")


def render_dynsec(settings: InfraSettings, accounts: Sequence[MqttAccount], previous_file: Path | None = None) -> str:
    """The dynsec JSON for the platform and ``accounts``, passwords from the SecretStore;
    hashes that still match are taken from ``previous_file``."""
    secrets = SecretStore(settings.secrets_dir)
    previous: dict[str, Any] | None = None
    if previous_file is not None and previous_file.exists():
        try:
            previous = json.loads(previous_file.read_text())
        except (OSError, ValueError):
            previous = None
    doc = dynsec_document([platform_account(settings), *accounts], secrets.mqtt_password, previous)
    return json.dumps(doc, indent=2) + "\n"


class MosquittoServer(ManagedServer):
    name = "mosquitto"
    process_marker = "mosquitto"

    def __init__(self, settings: InfraSettings, accounts: Sequence[MqttAccount] = ()) -> None:
        super().__init__(settings)
        self.accounts = list(accounts)
        self.secrets = SecretStore(settings.secrets_dir)
        self._rendered: dict[str, str] | None = None

    @property
    def endpoint(self) -> str:
        return f"mqtt://{self.settings.host}:{self.settings.mqtt_port}"

    @property
    def config_path(self) -> Path:
        return self.home / "mosquitto.conf"

    @property
    def dynsec_path(self) -> Path:
        return self.home / DYNSEC_FILE

    @property
    def queue_budget(self) -> QueueBudget:
        return budget_for(self.settings, self.accounts)

    def all_accounts(self) -> list[MqttAccount]:
        return [platform_account(self.settings), *self.accounts]

    def render(self) -> dict[str, str]:
        """File name -> content of the configuration this broker should run with."""
        conf = render_config(
            listener=f"{self.settings.mqtt_port} {self.settings.host}",
            data_dir=str(self.home / "data"),
            plugin=_plugin_path(),
            dynsec_file=str(self.dynsec_path),
            settings=self.settings,
            budget=self.queue_budget,
        )
        return {self.config_path.name: conf, DYNSEC_FILE: render_dynsec(self.settings, self.accounts, self.dynsec_path)}

    @staticmethod
    def fingerprint(files: dict[str, str]) -> str:
        digest = hashlib.sha256()
        for name in sorted(files):
            digest.update(f"{name}\0{files[name]}\0".encode())
        return digest.hexdigest()

    def applied_fingerprint(self) -> str | None:
        try:
            return (self.home / APPLIED_FILE).read_text().strip()
        except OSError:
            return None

    def start(self) -> str:
        """Start as ``ManagedServer.start`` does, but first stop a running broker whose
        configuration is not the one generated now (registry, passwords or settings changed)."""
        self._rendered = self.render()
        restarted = ""
        if self.pid() is not None and self.applied_fingerprint() != self.fingerprint(self._rendered):
            restarted = f"{self.stop()}: its configuration changed; "
        try:
            said = super().start()
        finally:
            self._rendered = None
        return said if "already running" in said else f"{restarted}{said}; {self.queue_budget.describe()}"

    def prepare(self) -> None:
        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            raise InfrastructureError("mosquitto: not installed; run scripts/bootstrap.sh (apt-get install mosquitto)")
        files = self._rendered or self.render()
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(files[self.config_path.name])
        _write_private(self.dynsec_path, files[DYNSEC_FILE])
        _write_private(self.home / APPLIED_FILE, self.fingerprint(files) + "\n")
        for obsolete in ("passwd", "acl"):  # the password file and ACL of before the dynsec plugin
            (self.home / obsolete).unlink(missing_ok=True)
        self._give_to_mosquitto_user()

    def _give_to_mosquitto_user(self) -> None:
        """As root, mosquitto drops to user ``mosquitto``: its files must belong to that user,
        and it must be able to reach its folder."""
        if os.geteuid() != 0:
            return
        try:
            user = pwd.getpwnam("mosquitto")
        except KeyError:
            return
        for path in [self.home, *self.home.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        check_reachable(self.home, user, "mosquitto")

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


def _plugin_path() -> str:
    for pattern in PLUGIN_CANDIDATES:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise InfrastructureError(
        "mosquitto: mosquitto_dynamic_security.so not found under /usr/lib (Debian package mosquitto 2.x)"
    )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, replacing it in one step. The temporary file
    is created with mode 0600 (not under the umask), so the text is never readable by others."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover would keep its mode: os.open's applies to a new file only
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask took away
        out.write(text)
    tmp.replace(path)
