"""Duplicate detection: the same device, data kind and event time is one reading. Pure."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class DedupCache:
    """A bounded set of recently accepted reading keys (least recently seen evicted first)."""

    def __init__(self, max_keys: int = 500_000) -> None:
        if max_keys <= 0:
            raise ValueError("max_keys must be positive")
        self.max_keys = max_keys
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def add(self, key: str) -> bool:
        """Remember ``key``; return ``False`` if it was already there (a duplicate)."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        if len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return True

    def discard(self, key: str) -> None:
        self._keys.pop(key, None)

    def update(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.add(key)
