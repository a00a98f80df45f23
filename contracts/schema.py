"""JSON Schemas of the wire contracts, for device vendors and consumers."""

from __future__ import annotations

import json

from pydantic import BaseModel

from .reading import DeadLetter, DeviceReading, Reading

SCHEMAS: dict[str, type[BaseModel]] = {
    "device-reading.schema.json": DeviceReading,
    "reading.schema.json": Reading,
    "dead-letter.schema.json": DeadLetter,
}


def schema_documents() -> dict[str, str]:
    """File name -> JSON Schema text (stable formatting, so committed copies can be compared)."""
    out = {}
    for name, model in SCHEMAS.items():
        schema = model.model_json_schema()
        schema["$id"] = f"urn:cems:schema:v1:{name.removesuffix('.schema.json')}"
        out[name] = json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    return out
