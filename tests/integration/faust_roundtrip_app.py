"""A minimal Faust app for the infrastructure smoke test: an agent consumes readings,
keeps a per-stack count in a table (changelog-backed), and produces to an output topic.

Configured from the environment so each test run uses its own topics:
``ROUNDTRIP_SUFFIX`` and ``ROUNDTRIP_BROKER``.
"""

from __future__ import annotations

import os

import faust

SUFFIX = os.environ["ROUNDTRIP_SUFFIX"]
BROKER = os.environ["ROUNDTRIP_BROKER"]


class Reading(faust.Record, serializer="json"):
    stack: str
    value: float


class Counted(faust.Record, serializer="json"):
    stack: str
    count: int
    total: float


app = faust.App(
    f"roundtrip-{SUFFIX}",
    broker=f"kafka://{BROKER}",
    store="memory://",
    topic_partitions=2,
    topic_replication_factor=1,
    topic_allow_declare=True,
    web_enabled=False,
)

readings = app.topic(f"roundtrip-in.{SUFFIX}", value_type=Reading, key_type=str)
counted = app.topic(f"roundtrip-out.{SUFFIX}", value_type=Counted, key_type=str)
counts = app.Table("counts", default=int, partitions=2)
totals = app.Table("totals", default=float, partitions=2)


@app.agent(readings)
async def count_readings(stream):  # type: ignore[no-untyped-def]
    async for reading in stream:
        counts[reading.stack] += 1
        totals[reading.stack] += reading.value
        await counted.send(
            key=reading.stack,
            value=Counted(stack=reading.stack, count=counts[reading.stack], total=totals[reading.stack]),
        )
