"""Read the routing YAML: ``${NAME}`` in a value is replaced by the environment variable
(robot tokens, SMTP passwords stay out of the file); then validated by ``rules.notify``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contracts.errors import ConfigError
from contracts.yamlfile import load_yaml_mapping
from rules.notify.config import RoutingConfig, routing_config

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(value: Any, env: Mapping[str, str], source: Path, where: str = "") -> Any:
    """``value`` with each ``${NAME}`` in its strings replaced; a missing variable is an
    error naming the file and the key."""
    if isinstance(value, dict):
        return {k: expand(v, env, source, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, env, source, f"{where}.{i}") for i, v in enumerate(value)]
    if isinstance(value, str):

        def variable(found: re.Match[str]) -> str:
            name = found[1]
            if name not in env:
                raise ConfigError(f"{source}: {where}: environment variable {name} is not set")
            return env[name]

        return _VARIABLE.sub(variable, value)
    return value


def load_routing(path: Path, env: Mapping[str, str] | None = None) -> RoutingConfig:
    from rules.notify.config import EmailChannel

    from .channels import check_email_channels

    raw = load_yaml_mapping(path)
    config = routing_config(expand(raw, os.environ if env is None else env, path), path)
    emails = {
        name: tuple(c for c in receiver.channels if isinstance(c, EmailChannel))
        for name, receiver in config.receivers.items()
    }
    problems = check_email_channels(config.endpoints, {k: v for k, v in emails.items() if v})
    if problems:
        raise ConfigError("\n".join(f"{path}: {p}" for p in problems))
    return config
