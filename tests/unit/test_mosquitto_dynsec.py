"""Mosquitto's dynamic security document: roles, default deny, password hashes (pure)."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import pytest

from cems.infra.dynsec import (
    PBKDF2_ITERATIONS,
    MqttAccount,
    dynsec_document,
    password_fields,
    pbkdf2_hash,
)
from contracts import mqtt_topics
from contracts.errors import InfrastructureError

ACCOUNTS = [
    MqttAccount("cems-platform", "platform"),
    MqttAccount("jy-power-1", "enterprise", (60, 60)),
    MqttAccount("jy-cement-1", "enterprise", (60,)),
]
PASSWORDS = {"cems-platform": "p-platform", "jy-power-1": "p-power", "jy-cement-1": "p-cement"}


def _salts() -> Any:
    counter = itertools.count()
    return lambda n: bytes([next(counter) % 256]) * n


def _doc(**kw: Any) -> dict[str, Any]:
    return dynsec_document(ACCOUNTS, PASSWORDS.__getitem__, new_salt=_salts(), **kw)


def _acls(doc: dict[str, Any], rolename: str) -> dict[str, set[str]]:
    (role,) = [r for r in doc["roles"] if r["rolename"] == rolename]
    by_type: dict[str, set[str]] = {}
    for acl in role["acls"]:
        assert acl["allow"] is True
        by_type.setdefault(acl["acltype"], set()).add(acl["topic"])
    return by_type


def test_everything_not_granted_is_denied() -> None:
    assert _doc()["defaultACLAccess"] == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": False,
    }


def test_enterprise_role_covers_only_its_own_device_and_command_topics() -> None:
    acls = _acls(_doc(), "enterprise-jy-power-1")
    assert acls == {
        "publishClientSend": {"cems/v1/jy-power-1/+/reading", "cems/v1/jy-power-1/+/hj212"},
        "subscribePattern": {"cems/v1/jy-power-1/+/ack", "cems/v1/jy-power-1/+/cmd"},
        "unsubscribePattern": {"cems/v1/jy-power-1/+/ack", "cems/v1/jy-power-1/+/cmd"},
        "publishClientReceive": {"cems/v1/jy-power-1/+/ack", "cems/v1/jy-power-1/+/cmd"},
    }
    # built from the one topic grammar
    assert acls["publishClientSend"] == set(mqtt_topics.device_filters("jy-power-1"))
    assert acls["subscribePattern"] == set(mqtt_topics.platform_filters("jy-power-1"))
    topics = set().union(*acls.values())
    assert not any(t.startswith("$") or "#" in t or "jy-cement-1" in t for t in topics)


def test_platform_role_reads_readings_and_sys_and_joins_no_shared_group() -> None:
    acls = _acls(_doc(), "cems-platform")
    assert acls["publishClientSend"] == {"cems/v1/#"}
    assert acls["subscribePattern"] == {"cems/v1/#", "$SYS/#"}
    assert not any(t.startswith("$share") for t in set().union(*acls.values()))
    assert acls["publishClientReceive"] == {"cems/v1/#", "$SYS/#"}


def test_each_client_has_its_own_role_and_every_role_exists() -> None:
    doc = _doc()
    roles = {r["rolename"] for r in doc["roles"]}
    assert {c["username"]: [r["rolename"] for r in c["roles"]] for c in doc["clients"]} == {
        "cems-platform": ["cems-platform"],
        "jy-cement-1": ["enterprise-jy-cement-1"],
        "jy-power-1": ["enterprise-jy-power-1"],
    }
    assert roles == {"cems-platform", "enterprise-jy-cement-1", "enterprise-jy-power-1"}
    assert doc["groups"] == []


def test_password_hash_is_what_mosquitto_ctrl_writes() -> None:
    """A client written by mosquitto 2.0.11's ``mosquitto_ctrl dynsec init d.json admin adminpw``."""
    salt = "6WV4w8d23anKADPH"
    expected = "0+HHdNiCgMsw0CHOjkVU1ks0xTtKrk6uJI7Jn+bOu6Cr9CQAg6fFFB8/TGTZuZQmbVnVwVzjH02DDul/TL4NBw=="
    assert PBKDF2_ITERATIONS == 101
    assert base64.b64encode(pbkdf2_hash("adminpw", base64.b64decode(salt))).decode() == expected
    # and an entry like it verifies, so it is kept as it is
    previous = {"password": expected, "salt": salt, "iterations": 101}
    assert password_fields("adminpw", previous) == previous


def test_new_hashes_have_mosquittos_sizes_and_verify() -> None:
    for client in _doc()["clients"]:
        salt = base64.b64decode(client["salt"])
        digest = base64.b64decode(client["password"])
        assert (len(salt), len(digest), client["iterations"]) == (12, 64, PBKDF2_ITERATIONS)
        assert digest == pbkdf2_hash(PASSWORDS[client["username"]], salt)


def test_same_accounts_and_passwords_give_the_same_document() -> None:
    first = dynsec_document(ACCOUNTS, PASSWORDS.__getitem__)
    again = dynsec_document(list(reversed(ACCOUNTS)), PASSWORDS.__getitem__, previous=first)
    assert again == first


def test_a_changed_password_gets_a_new_hash_and_the_others_keep_theirs() -> None:
    first = dynsec_document(ACCOUNTS, PASSWORDS.__getitem__)
    changed = {**PASSWORDS, "jy-power-1": "rotated"}
    second = dynsec_document(ACCOUNTS, changed.__getitem__, previous=first)
    old = {c["username"]: c for c in first["clients"]}
    new = {c["username"]: c for c in second["clients"]}
    assert new["jy-power-1"]["password"] != old["jy-power-1"]["password"]
    assert (
        new["jy-power-1"]["password"]
        == base64.b64encode(pbkdf2_hash("rotated", base64.b64decode(new["jy-power-1"]["salt"]))).decode()
    )
    assert new["jy-cement-1"] == old["jy-cement-1"]


@pytest.mark.parametrize(
    "previous",
    [
        {"password": "not base64!", "salt": "AAAAAAAAAAAAAAAA", "iterations": 101},
        {"password": "AAAA", "salt": "AAAA", "iterations": 101},
        {"salt": "AAAAAAAAAAAAAAAA", "iterations": 101},
        {"password": "x", "salt": "AAAAAAAAAAAAAAAA", "iterations": 1000},
    ],
)
def test_an_unusable_previous_entry_is_replaced(previous: dict[str, Any]) -> None:
    fields = password_fields("secret", previous, new_salt=lambda n: b"\x01" * n)
    assert fields["salt"] == base64.b64encode(b"\x01" * 12).decode()
    assert base64.b64decode(fields["password"]) == pbkdf2_hash("secret", b"\x01" * 12)


@pytest.mark.parametrize("name", ["", "a/b", "a+b", "a#", "$SYS"])
def test_account_names_that_would_widen_a_topic_are_refused(name: str) -> None:
    with pytest.raises(InfrastructureError, match="mqtt account"):
        dynsec_document([MqttAccount(name, "enterprise")], lambda _u: "pw")


def test_duplicate_accounts_are_refused() -> None:
    with pytest.raises(InfrastructureError, match="duplicate"):
        dynsec_document([*ACCOUNTS, MqttAccount("jy-power-1", "enterprise")], PASSWORDS.__getitem__)
