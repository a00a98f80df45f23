"""Heavy-pollution-weather emergency response (重污染天气应急响应): levels, the measures of an
enterprise's reduction list (应急减排清单), and a declared response as it travels on Kafka.

The monitoring centre declares a response (``cems emergency declare``, or the console's API):
a level, the districts it covers (none: the whole zone), its start and its end. Each
declaration, and each later revision of it (ended early, extended), is written to the
emergency topic once per partition, co-partitioned with the readings: the worker of every
partition applies it to the stacks it holds. The latest revision of a response id wins.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator


class Level(StrEnum):
    """Warning levels, in rising order (黄色 III, 橙色 II, 红色 I)."""

    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"


class Action(StrEnum):
    """What a reduction list requires of one facility at one level."""

    STOP = "stop"  # the facility draws no power, and (when every producer on it stops) its stack emits nothing
    LIMIT = "limit"  # production at most ``limit_pct`` % of normal (its metered power against ``normal_kw``)
    CUT = "cut"  # its stack's emission rate (kg/h) at least ``cut_pct`` % under the baseline
    SELF_DIRECTED = "self_directed"  # A-level (绩效分级 A 级) enterprises: their own measures, not checked


ResponseId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class EmergencyResponse(BaseModel):
    """A declared response (one revision of it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    id: ResponseId
    level: Level
    #: the districts it covers, as in the registry's ``district``; empty: the whole zone
    districts: tuple[str, ...] = ()
    start: AwareDatetime
    #: when it ends (exclusive); ``None`` while it runs until ended
    end: AwareDatetime | None = None
    #: 1 for the declaration, one more for each revision (ending it, changing the end)
    revision: int = Field(default=1, ge=1)
    declared_by: str = Field(min_length=1, max_length=200)
    declared_at: AwareDatetime
    note: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _ordered(self) -> EmergencyResponse:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end {self.end.isoformat()} is not after start {self.start.isoformat()}")
        return self

    def covers(self, district: str) -> bool:
        return not self.districts or district in self.districts


def latest(responses: list[EmergencyResponse]) -> dict[str, EmergencyResponse]:
    """The latest revision of each response id (the emergency topic holds every revision, once
    per partition)."""
    out: dict[str, EmergencyResponse] = {}
    for r in responses:
        held = out.get(r.id)
        if held is None or r.revision > held.revision:
            out[r.id] = r
    return out
