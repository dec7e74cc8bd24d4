"""Nested mappings (configs, summaries) as flat ``{"a.b": value}`` dictionaries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def flatten_dict(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> ``{"a.b": value}`` (empty mappings and lists are values)."""
    if isinstance(node, Mapping) and node:
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten_dict(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node} if prefix else {}


def key_under(key: str, prefixes: Iterable[str]) -> bool:
    """Whether the dotted ``key`` is one of ``prefixes`` or lies below one."""
    return any(key == p or key.startswith(p + ".") for p in prefixes)
