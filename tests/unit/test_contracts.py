"""Wire contracts: committed JSON Schemas are current; the vendor guide's examples are valid."""

from __future__ import annotations

import json
import re

import pytest

from cems.infra.settings import REPO_ROOT
from contracts.hj212 import parse_packet
from contracts.reading import DeviceReading, RejectReason
from contracts.schema import schema_documents

GUIDE = (REPO_ROOT / "docs" / "device-guide.md").read_text()


@pytest.mark.parametrize("name", sorted(schema_documents()))
def test_committed_schema_is_current(name: str) -> None:
    committed = (REPO_ROOT / "docs" / "schema" / name).read_text()
    assert committed == schema_documents()[name], "run `cems contracts schema` and commit docs/schema"


def test_guide_json_example_is_a_valid_device_reading() -> None:
    example = re.search(r"```json\n(.*?)```", GUIDE, re.S)
    assert example is not None
    reading = DeviceReading.model_validate(json.loads(example.group(1)))
    assert reading.values["nh3"].unit == "ppm"


def test_guide_hj212_example_parses() -> None:
    line = next(line for line in GUIDE.splitlines() if re.match(r"##\d{4}QN=", line))
    packet = parse_packet(line.encode() + b"\r\n")
    assert packet.cn == "2011" and packet.ack_requested


def test_guide_lists_every_reject_reason() -> None:
    for reason in RejectReason:
        assert f"`{reason.value}`" in GUIDE, reason
