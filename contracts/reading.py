"""The reading and dead-letter contracts (schema version 1), as they travel on Kafka.

A ``Reading`` is one report of one device for one stack at one event time: per parameter
the value in its canonical unit, the HJ 212 data flag and, where the device sent one, the
value it reported converted to reference O2 (``zs``). ``DeviceReading`` is what a device
publishes as JSON over MQTT (units as the device measures them); the gateway turns it into a
``Reading``. A ``DeadLetter`` keeps refused input with its reason.

``docs/device-guide.md`` is the vendors' view of the same; ``cems contracts schema`` exports
the JSON Schemas.
"""

from __future__ import annotations

import base64
import hashlib
import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from .parameters import Unit

SCHEMA_VERSION: Literal[1] = 1

#: event times the platform accepts, relative to their arrival (``docs/device-guide.md``):
#: at most this far ahead (``future_timestamp`` beyond) ...
MAX_FUTURE_S = 300.0
#: ... and at most this old (``stale_timestamp`` beyond): a day and two hours, so a daily report
#: (HJ 212 CN 2031, stamped with the start of its day) is still accepted until 02:00 the day after
MAX_AGE_S = 26 * 3600.0


class DataKind(StrEnum):
    """Which HJ 212 data a reading carries (the command it came with)."""

    REALTIME = "realtime"  # CN 2011, -Rtd
    MINUTE = "minute"  # CN 2051, -Avg/-Min/-Max
    HOURLY = "hourly"  # CN 2061
    DAILY = "daily"  # CN 2031


class DataFlag(StrEnum):
    """HJ 212 data flags. Which of them make a value invalid is rule configuration."""

    NORMAL = "N"
    STOPPED = "F"  # instrument / unit stopped
    MAINTENANCE = "M"
    MANUAL = "S"  # manually set value
    FAULT = "D"
    CALIBRATION = "C"
    OVER_RANGE = "T"
    COMMS_FAULT = "B"


class Source(StrEnum):
    MQTT_JSON = "mqtt-json"
    MQTT_HJ212 = "mqtt-hj212"
    TCP_HJ212 = "tcp-hj212"
    REPLAY = "replay"  # read from a file by `cems replay`


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class Measurement(_Frozen):
    """One parameter of a reading, in the parameter's canonical unit."""

    value: float
    unit: Unit
    flag: DataFlag = DataFlag.NORMAL
    minimum: float | None = None
    maximum: float | None = None
    cumulative: float | None = None
    #: the device's own value converted to reference O2 (HJ 212 -ZsRtd/-ZsAvg), if sent
    zs: float | None = None

    _check = field_validator("value", "minimum", "maximum", "cumulative", "zs")(_finite)


class Reading(_Frozen):
    schema_version: Literal[1] = SCHEMA_VERSION
    enterprise: str
    #: the stack it is keyed by: for an electricity meter, the stack its facility exhausts to
    #: (so a stack's emissions and its facilities' power meet in one partition and one state)
    stack: str
    mn: str
    event_time: AwareDatetime
    kind: DataKind
    values: dict[str, Measurement]
    source: Source
    received_at: AwareDatetime
    #: HJ 212 QN when the reading came as a packet
    qn: str | None = None
    #: sent by the device in answer to the gateway's request for a period it missed (backfill)
    backfilled: bool = False
    #: set on an electricity meter's reading: the facility the meter is on (its values are
    #: ``power``, ``current``, ``energy``)
    facility: str | None = None

    @property
    def dedup_key(self) -> str:
        """Identity of a report: the same device, data kind and event time is the same reading."""
        return f"{self.mn}|{self.kind.value}|{self.event_time.isoformat()}"


# -- what a device publishes as JSON ---------------------------------------------------------
class DeviceMeasurement(_Frozen):
    value: float | int
    unit: Unit | None = Field(default=None, description="defaults to the unit declared in the registry")
    flag: DataFlag = DataFlag.NORMAL
    min: float | None = None
    max: float | None = None
    cou: float | None = None
    zs: float | None = None


class DeviceReading(_Frozen):
    """JSON published on ``cems/v1/{enterprise}/{stack}/reading``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    mn: Annotated[str, Field(min_length=1, max_length=24)]
    time: AwareDatetime
    kind: DataKind = DataKind.REALTIME
    values: dict[str, DeviceMeasurement] = Field(min_length=1)


# -- dead letters ----------------------------------------------------------------------------
class RejectReason(StrEnum):
    """Why input was refused. Stable codes: dashboards and audits count by them."""

    MALFORMED_JSON = "malformed_json"
    SCHEMA = "schema_invalid"
    TOPIC = "topic_invalid"
    HJ212_FRAMING = "hj212_framing"
    HJ212_ENCODING = "hj212_encoding"
    HJ212_LENGTH = "hj212_length"
    HJ212_CRC = "hj212_crc"
    HJ212_FIELD = "hj212_field"
    HJ212_COMMAND = "hj212_command"
    HJ212_PASSWORD = "hj212_password"
    #: HJ 212 over TCP from an address outside the device's registered networks
    SOURCE_NOT_ALLOWED = "source_not_allowed"
    UNKNOWN_DEVICE = "unknown_device"
    MN_TOPIC_MISMATCH = "mn_topic_mismatch"
    FUTURE_TIMESTAMP = "future_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    UNKNOWN_PARAMETER = "unknown_parameter"
    BAD_UNIT = "bad_unit"
    NON_NUMERIC = "non_numeric"
    NON_FINITE = "non_finite"
    OUT_OF_RANGE = "out_of_range"
    DUPLICATE = "duplicate"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    #: more readings of one device and kind within the acceptance window than one a second
    TOO_FREQUENT = "too_frequent"
    #: the gateway failed on this input in a way nobody foresaw: a bug, kept with the exception type
    INTERNAL_ERROR = "internal_error"
    #: the InfluxDB sink: InfluxDB refused the record's point (HTTP 400/413/422, e.g. a field
    #: type conflict), kept with InfluxDB's answer
    INFLUX_REJECTED = "influx_rejected"
    #: the stream worker: a reading for a minute the rules had already closed (judged without it)
    LATE = "late"
    #: the stream worker: a record whose key is not the stack it carries (it would reach the
    #: wrong partition's state)
    KEY_MISMATCH = "key_mismatch"


#: a dead letter keeps a payload whole up to this size (about 0.5 MB as JSON at worst, with its
#: bytes escaped and in base64: under Kafka's 1 MB), and of a larger one its first
#: ``DEAD_LETTER_EXCERPT_BYTES`` with its size and SHA-256
DEAD_LETTER_WHOLE_BYTES = 64 * 1024
DEAD_LETTER_EXCERPT_BYTES = 1024
#: an MQTT topic may be 65,535 bytes long: a dead letter keeps its beginning
ORIGIN_MAX_CHARS = 512
DETAIL_MAX_CHARS = 2000


class DeadLetter(_Frozen):
    schema_version: Literal[1] = SCHEMA_VERSION
    reason: RejectReason
    detail: str
    #: where it came from: ``mqtt:<topic>``, ``tcp:<peer>``, or ``kafka:<topic>/<partition>@<offset>``
    #: for a record a stream processor could not use
    origin: str
    received_at: AwareDatetime
    payload_text: str = Field(description="the payload (or its first bytes) decoded as UTF-8 with bad bytes escaped")
    payload_b64: str = Field(description="the exact payload bytes (or its first bytes), base64")
    payload_size: int | None = Field(default=None, description="the payload's length in bytes")
    payload_sha256: str | None = Field(default=None, description="hex SHA-256 of the whole payload")
    payload_truncated: bool = Field(
        default=False, description="true when only the first bytes are kept (the payload was too large)"
    )
    enterprise: str | None = None
    stack: str | None = None
    mn: str | None = None

    @classmethod
    def of_payload(
        cls,
        reason: RejectReason,
        detail: str,
        origin: str,
        payload: bytes,
        received_at: datetime,
        *,
        whole_up_to: int = DEAD_LETTER_WHOLE_BYTES,
        enterprise: str | None = None,
        stack: str | None = None,
        mn: str | None = None,
    ) -> DeadLetter:
        """The dead letter of ``payload``: kept whole up to ``whole_up_to`` bytes, else its
        first bytes with its size and SHA-256; detail and origin cut to their limits."""
        kept = payload if len(payload) <= whole_up_to else payload[:DEAD_LETTER_EXCERPT_BYTES]
        return cls(
            reason=reason,
            detail=detail[:DETAIL_MAX_CHARS],
            origin=origin[:ORIGIN_MAX_CHARS],
            received_at=received_at,
            payload_text=kept.decode("utf-8", errors="backslashreplace"),
            payload_b64=base64.b64encode(kept).decode(),
            payload_size=len(payload),
            payload_sha256=hashlib.sha256(payload).hexdigest(),
            payload_truncated=len(kept) < len(payload),
            enterprise=enterprise,
            stack=stack,
            mn=mn,
        )
