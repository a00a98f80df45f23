"""Read a YAML configuration file into a mapping, with errors that name the file.

Plain scalars are typed by the YAML 1.2 core schema, not PyYAML's YAML 1.1 one: only
``true``/``True``/``TRUE`` and ``false``/``False``/``FALSE`` are booleans, so a parameter named
``no`` (nitric oxide) or a value ``yes``, ``on``, ``off``, ``y``, ``n`` stays a string (a
boolean setting written ``yes`` still validates: pydantic accepts those words for a ``bool``);
integers are decimal, ``0o`` octal or ``0x`` hexadecimal (``010`` is ten, ``1:30`` and
``1_000`` are strings); ``1e3`` is a float; dates stay strings for the models to parse.
Merge keys (``<<``) are kept. The C parser (libyaml) is used when PyYAML was built with it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

_BOOL, _INT, _FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
#: YAML 1.1 implicit types that YAML 1.2's core schema does not have, or types it defines anew
_DROPPED = {_BOOL, _INT, _FLOAT, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}

# YAML 1.2.2, 10.3.2 "Tag Resolution" (core schema)
_CORE_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_CORE_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_CORE_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class CoreSchemaLoader(_SafeLoader):
    """PyYAML's safe loader with the YAML 1.2 core schema for plain scalars."""


# the class's own table (PyYAML's add_implicit_resolver copies the base's only when absent)
CoreSchemaLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}
CoreSchemaLoader.add_implicit_resolver(_BOOL, _CORE_BOOL, list("tTfF"))
CoreSchemaLoader.add_implicit_resolver(_INT, _CORE_INT, list("-+0123456789"))
CoreSchemaLoader.add_implicit_resolver(_FLOAT, _CORE_FLOAT, list("-+.0123456789"))


def _core_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if not _CORE_INT.match(text):  # an explicit !!int on text YAML 1.2 does not read as one
        raise yaml.constructor.ConstructorError(None, None, f"{text!r} is not an integer", node.start_mark)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)  # "010" is ten, not YAML 1.1's octal eight


def _core_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    text = str(loader.construct_scalar(node))
    if not _CORE_BOOL.match(text):  # an explicit !!bool on a word YAML 1.2 does not know
        raise yaml.constructor.ConstructorError(None, None, f"{text!r} is not a boolean", node.start_mark)
    return text.lower() == "true"


CoreSchemaLoader.add_constructor(_INT, _core_int)
CoreSchemaLoader.add_constructor(_BOOL, _core_bool)


def parse_yaml(text: str) -> Any:
    """One YAML document, typed by the YAML 1.2 core schema."""
    return yaml.load(text, Loader=CoreSchemaLoader)  # a safe loader: no Python objects


def load_yaml_mapping(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. "!!float abc"
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw
