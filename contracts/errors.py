"""The project's exception tree, in one place.

    CemsError                      root of everything the project raises on purpose
    ├── ConfigError                a file or setting is wrong; the message names file, entry and key
    └── InfrastructureError        a server could not be installed, started or reached
        (``retryable`` says whether trying again may help)

Adapters translate library errors into these at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations


class CemsError(Exception):
    """Root of the project's exceptions."""


class ConfigError(CemsError):
    """A configuration file or setting is invalid."""


class InfrastructureError(CemsError):
    """A server could not be installed, started, stopped or reached."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
