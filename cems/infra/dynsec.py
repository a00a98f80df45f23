"""Mosquitto's dynamic security document (``mosquitto_dynamic_security.so``), built from the
MQTT accounts: who may publish, subscribe and receive what. Pure: no file or network I/O.

Everything not granted is refused (``defaultACLAccess`` all false), so a SUBSCRIBE outside a
role gets a failure code in its SUBACK (0x80 in MQTT 3.1.1, 0x87 "not authorized" in MQTT 5).

- the platform account (role ``cems-platform``) publishes, subscribes and receives under
  ``cems/v1/#`` and reads ``$SYS/#`` (queue depth, dropped messages). The gateway reads
  through plain persistent subscriptions (``ingest.mqtt_source``), so no account may join a
  shared subscription (``$share/...``);
- an enterprise account (role ``enterprise-<id>``) publishes only its devices' channels
  (``cems/v1/<id>/+/reading``, ``cems/v1/<id>/+/hj212``) and subscribes to, and receives, only
  what the platform sends its devices (``cems/v1/<id>/+/ack``, ``cems/v1/<id>/+/cmd``).
  No ``$share``, no ``#``, no ``$SYS``, no other enterprise.

Passwords are stored as mosquitto 2.0.11 expects them: PBKDF2-HMAC-SHA512 of the password
with a 12-byte random salt, 64-byte hash, salt and hash base64-encoded, ``iterations`` beside
them (checked against a file written by ``mosquitto_ctrl dynsec init``). A client whose
previous entry still verifies against its password keeps its salt and hash, so the same
accounts and passwords give the same document.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from contracts import mqtt_topics
from contracts.errors import InfrastructureError

#: what mosquitto 2.0.11's dynsec plugin writes itself (PW_DEFAULT_ITERATIONS); every
#: CONNECT costs one such hash. The passwords ``cems infra`` generates are random 144-bit
#: tokens, which no iteration count needs to protect against guessing.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
HASH_BYTES = 64

PLATFORM_ROLE = "cems-platform"
SYS_FILTER = "$SYS/#"

AclType = Literal[
    "publishClientSend", "publishClientReceive", "subscribeLiteral", "subscribePattern", "unsubscribePattern"
]


@dataclass(frozen=True)
class MqttAccount:
    """One broker account. An enterprise account is named after its enterprise id and owns
    the topics under ``cems/v1/<id>/``; ``reporting_intervals_s`` are its stacks' and its
    meters' reporting intervals, which size the broker's queue
    (``cems.infra.mosquitto.queue_budget``)."""

    username: str
    role: Literal["enterprise", "platform"]
    reporting_intervals_s: tuple[int, ...] = field(default=())


@dataclass(frozen=True)
class Acl:
    acltype: AclType
    topic: str
    allow: bool = True


@dataclass(frozen=True)
class Role:
    rolename: str
    acls: tuple[Acl, ...]


def _grants(*, send: Sequence[str], subscribe: Sequence[str], receive: Sequence[str]) -> tuple[Acl, ...]:
    """Publish ``send``; subscribe to (and unsubscribe from) filters within ``subscribe``;
    receive messages on ``receive``. ``subscribePattern`` grants a filter only if it is as
    narrow as the pattern: ``cems/v1/e/+/ack`` does not grant ``cems/v1/e/#`` or ``#``."""
    return (
        *(Acl("publishClientSend", t) for t in send),
        *(Acl("subscribePattern", t) for t in subscribe),
        *(Acl("unsubscribePattern", t) for t in subscribe),
        *(Acl("publishClientReceive", t) for t in receive),
    )


def platform_role() -> Role:
    everything = f"{mqtt_topics.ROOT}/#"
    return Role(
        PLATFORM_ROLE,
        _grants(send=[everything], subscribe=[everything, SYS_FILTER], receive=[everything, SYS_FILTER]),
    )


def enterprise_role(enterprise: str) -> Role:
    own_commands = mqtt_topics.platform_filters(enterprise)
    return Role(
        f"enterprise-{enterprise}",
        _grants(send=mqtt_topics.device_filters(enterprise), subscribe=own_commands, receive=own_commands),
    )


def role_for(account: MqttAccount) -> Role:
    if any(ch in account.username for ch in "/+#$\0") or not account.username:
        raise InfrastructureError(f"mqtt account {account.username!r}: a name may not be empty or contain / + # $")
    return platform_role() if account.role == "platform" else enterprise_role(account.username)


# -- passwords ---------------------------------------------------------------------------------
def pbkdf2_hash(password: str, salt: bytes, iterations: int = PBKDF2_ITERATIONS) -> bytes:
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)


def password_fields(
    password: str, previous: Mapping[str, Any] | None, new_salt: Callable[[int], bytes] = os.urandom
) -> dict[str, Any]:
    """``password``, ``salt`` and ``iterations`` for a dynsec client entry; the previous
    entry's when it still verifies against ``password`` at the current iteration count."""
    if previous is not None and previous.get("iterations") == PBKDF2_ITERATIONS:
        try:
            salt = base64.b64decode(str(previous["salt"]), validate=True)
            stored = base64.b64decode(str(previous["password"]), validate=True)
        except (KeyError, ValueError):
            pass
        else:
            if len(salt) == SALT_BYTES and hmac.compare_digest(stored, pbkdf2_hash(password, salt)):
                return {"password": previous["password"], "salt": previous["salt"], "iterations": PBKDF2_ITERATIONS}
    salt = new_salt(SALT_BYTES)
    return {
        "password": base64.b64encode(pbkdf2_hash(password, salt)).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": PBKDF2_ITERATIONS,
    }


# -- the document ------------------------------------------------------------------------------
def dynsec_document(
    accounts: Sequence[MqttAccount],
    password: Callable[[str], str],
    previous: Mapping[str, Any] | None = None,
    new_salt: Callable[[int], bytes] = os.urandom,
) -> dict[str, Any]:
    """The dynamic security JSON for ``accounts`` (the platform account among them).

    ``password(username)`` gives each account's password; ``previous`` is the document
    written last time (its matching hashes are kept). Clients and roles are sorted by name.
    """
    names = [a.username for a in accounts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InfrastructureError(f"mqtt accounts: duplicate account name(s) {duplicates}")
    old_clients: dict[str, Mapping[str, Any]] = {}
    for entry in (previous or {}).get("clients", []):
        if isinstance(entry, Mapping) and isinstance(entry.get("username"), str):
            old_clients[entry["username"]] = entry
    roles: dict[str, Role] = {}
    clients = []
    for account in sorted(accounts, key=lambda a: a.username):
        role = role_for(account)
        roles[role.rolename] = role
        clients.append(
            {
                "username": account.username,
                "textname": f"{account.role} account",
                **password_fields(password(account.username), old_clients.get(account.username), new_salt),
                "roles": [{"rolename": role.rolename}],
            }
        )
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": False,
        },
        "clients": clients,
        "groups": [],
        "roles": [
            {
                "rolename": role.rolename,
                "acls": [{"acltype": a.acltype, "topic": a.topic, "allow": a.allow} for a in role.acls],
            }
            for role in sorted(roles.values(), key=lambda r: r.rolename)
        ],
    }
