"""rules/ is a pure core: no broker, database or MQTT library, no I/O, no clock reads.

import-linter enforces the package contracts in pyproject.toml (run by scripts/test.sh);
this test holds the same line inside pytest, and also catches I/O calls and clock reads.
"""

from __future__ import annotations

import ast

import pytest

from cems.infra.settings import REPO_ROOT

FORBIDDEN_MODULES = {
    "paho",
    "kafka",
    "aiokafka",
    "confluent_kafka",
    "faust",
    "mode",
    "influxdb_client",
    "socket",
    "asyncio",
    "subprocess",
    "requests",
    "httpx",
    "urllib",
    "ingest",
    "streams",
    "simulators",
    "dashboards",
    "cems",
}
FORBIDDEN_CALLS = {"open", "print", "input"}
FORBIDDEN_ATTRS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("time", "time"),
    ("time", "monotonic"),
    ("date", "today"),
    ("Path", "read_text"),
    ("Path", "write_text"),
}


def violations(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            names = []
        for name in names:
            if name.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"{filename}:{getattr(node, 'lineno', 0)}: imports {name}")
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"{filename}:{node.lineno}: calls {func.id}()")
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and (func.value.id, func.attr) in FORBIDDEN_ATTRS
            ):
                found.append(f"{filename}:{node.lineno}: calls {func.value.id}.{func.attr}()")
    return found


def test_rules_package_is_pure() -> None:
    files = sorted((REPO_ROOT / "rules").rglob("*.py"))
    assert files, "rules/ has no modules"
    problems = [v for f in files for v in violations(f.read_text(), str(f.relative_to(REPO_ROOT)))]
    assert problems == []


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("import paho.mqtt.client as mqtt", "imports paho.mqtt.client"),
        ("from kafka import KafkaProducer", "imports kafka"),
        ("import faust", "imports faust"),
        ("from influxdb_client import Point", "imports influxdb_client"),
        ("from datetime import datetime\nx = datetime.now()", "calls datetime.now()"),
        ("data = open('x').read()", "calls open()"),
    ],
)
def test_the_check_catches_what_it_forbids(snippet: str, expected: str) -> None:
    assert any(expected in v for v in violations(snippet, "example.py"))


def test_contracts_do_not_depend_on_components() -> None:
    for f in sorted((REPO_ROOT / "contracts").rglob("*.py")):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                assert node.module.split(".")[0] not in {"ingest", "streams", "rules", "simulators", "cems"}, (
                    f"{f}: imports {node.module}"
                )
