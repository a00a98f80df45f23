"""The project's exception tree, in one place.

    CemsError                      root of everything the project raises on purpose
    ├── ConfigError                a file or setting is wrong; the message names file, entry and key
    └── InfrastructureError        a server could not be installed, started or reached
        (``retryable`` says whether trying again may help)

Adapters translate library errors into these at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class CemsError(Exception):
    """Root of the project's exceptions."""


class ConfigError(CemsError):
    """A configuration file or setting is invalid."""


class InfrastructureError(CemsError):
    """A server could not be installed, started, stopped or reached."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def config_error(source: object, exc: Any, where: Callable[[tuple[int | str, ...]], str] | None = None) -> ConfigError:
    """A ``ConfigError`` listing every problem of a pydantic ``ValidationError`` as
    ``<source>: <where>: <message>`` ("unknown key" for keys a strict model forbids)."""
    problems = []
    for e in exc.errors():
        loc = tuple(e["loc"])
        place = where(loc) if where else ".".join(str(p) for p in loc) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else str(e["msg"]).removeprefix("Value error, ")
        problems.append(f"{source}: {place}: {msg}")
    return ConfigError("\n".join(problems))
