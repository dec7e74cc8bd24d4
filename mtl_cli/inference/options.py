"""``key=value`` command-line settings of mtl-predict and mtl-export, typed by their defaults."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mtl_cli.errors import UserError

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def parse_settings(
    prog: str, args: Sequence[str], defaults: Mapping[str, Any], required: Sequence[str]
) -> dict[str, Any]:
    """``defaults`` updated from ``args``; each value is converted to its default's type.

    A default of None takes the value as a string. Unknown keys, malformed arguments,
    values of the wrong type and missing ``required`` keys raise ``UserError``.
    """
    settings = dict(defaults)
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise UserError(f"{arg}: give settings as key=value (see {prog} --help)")
        if key not in defaults:
            raise UserError(f"{key}= is not a setting of {prog}; known settings: {', '.join(defaults)}")
        settings[key] = _convert(key, value, defaults[key])
    missing = [key for key in required if settings[key] in (None, "")]
    if missing:
        raise UserError(f"{' and '.join(k + '=' for k in missing)} missing; see {prog} --help")
    return settings


def _convert(key: str, value: str, default: Any) -> Any:
    if isinstance(default, bool):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise UserError(f"{key}={value}: give true or false")
    if isinstance(default, int):
        try:
            number = int(value)
        except ValueError:
            number = 0
        if number <= 0:
            raise UserError(f"{key}={value}: give a positive whole number")
        return number
    return value
