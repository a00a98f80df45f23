"""The pure detection core.

Rules take state, a reading and ``now`` (event time) and return new state and decisions
carrying a reason and evidence. This package imports no MQTT, Kafka, Faust or InfluxDB
library, reads no clock and does no I/O; ``tests/unit/test_architecture.py`` and the
import-linter contracts in ``pyproject.toml`` hold it to that.
"""
