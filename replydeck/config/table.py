"""Typed, path-aware access to one TOML table.

Every getter raises :class:`ConfigError` naming the file and the full key path
(``sources[2].token``) with what was expected and what was found. After a section has
been read, :meth:`Table.reject_unknown` turns typos into errors instead of silence.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any, TypeVar

from replydeck.config.errors import ConfigError, describe
from replydeck.config.secrets import Secret

T = TypeVar("T")
_MISSING = object()
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_key(name: str) -> str:
    """A key as TOML would spell it in a path: bare when it can be, else a quoted string
    with control and format characters escaped, so an error never carries raw escapes."""
    if _BARE_KEY.fullmatch(name):
        return name
    out = []
    for ch in name:
        if ch in '"\\':
            out.append("\\" + ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


class Table:
    def __init__(self, data: dict[str, Any], path: str, file: str | None) -> None:
        self.data = data
        self.path = path
        self.file = file
        self._read: set[str] = set()

    def key(self, name: str) -> str:
        name = toml_key(name)
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str | None, problem: str) -> ConfigError:
        return ConfigError(self.file, self.key(name) if name else self.path or None, problem)

    def has(self, name: str) -> bool:
        return name in self.data

    def _get(self, name: str, default: Any, expected: str) -> Any:
        self._read.add(name)
        if name not in self.data:
            if default is _MISSING:
                raise self.error(name, f"missing; expected {expected}")
            return default
        return self.data[name]

    def str(self, name: str, default: Any = _MISSING, *, choices: tuple[str, ...] = ()) -> Any:
        expected = "one of " + ", ".join(repr(c) for c in choices) if choices else "a string"
        value = self._get(name, default, expected)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str):
            raise self.error(name, f"expected {expected}, found {describe(value)}")
        if choices and value not in choices:
            raise self.error(name, f"expected {expected}, found {describe(value)}")
        return value

    def int(self, name: str, default: Any = _MISSING, *, min: int | None = None,
            max: int | None = None) -> Any:
        expected = "an integer"
        if min is not None and max is not None:
            expected = f"an integer from {min} to {max}"
        elif min is not None:
            expected = f"an integer ≥ {min}"
        value = self._get(name, default, expected)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"expected {expected}, found {describe(value)}")
        if (min is not None and value < min) or (max is not None and value > max):
            raise self.error(name, f"expected {expected}, found {describe(value)}")
        return value

    def number(self, name: str, default: Any = _MISSING, *, min: float | None = None) -> Any:
        expected = "a number" if min is None else f"a number ≥ {min}"
        value = self._get(name, default, expected)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(name, f"expected {expected}, found {describe(value)}")
        if min is not None and value < min:
            raise self.error(name, f"expected {expected}, found {describe(value)}")
        return float(value)

    def bool(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default, "true or false")
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, found {describe(value)}")
        return value

    def str_list(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default, "an array of strings")
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, f"expected an array of strings, found {describe(value)}")
        return list(value)

    def secret(self, name: str, default: Any = _MISSING) -> Any:
        """A secret reference (``env:``, ``cmd:``, ``keyring:``, ``file:``), not yet resolved."""
        value = self._get(name, default, "a secret reference (env:VAR, cmd:COMMAND, "
                          "keyring:SERVICE/USER or file:PATH)")
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str):
            raise self.error(name, f"expected a secret reference, found {describe(value)}")
        return Secret.parse(value, file=self.file, key=self.key(name))

    def table(self, name: str, *, required: bool = False) -> Table:
        value = self._get(name, _MISSING if required else {}, "a table")
        if not isinstance(value, dict):
            raise self.error(name, f"expected a table, found {describe(value)}")
        return Table(value, self.key(name), self.file)

    def tables(self, name: str) -> Iterator[Table]:
        """An array of tables (``[[name]]``), each with its index in the path."""
        value = self._get(name, [], "an array of tables")
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(name, f"expected an array of tables ([[{name}]]), "
                              f"found {describe(value)}")
        for i, item in enumerate(value):
            yield Table(item, f"{self.key(name)}[{i}]", self.file)

    def raw(self, name: str, default: Any = None) -> Any:
        self._read.add(name)
        return self.data.get(name, default)

    def reject_unknown(self, *, also_allowed: tuple[str, ...] = ()) -> None:
        unknown = sorted(set(self.data) - self._read - set(also_allowed))
        if unknown:
            known = ", ".join(sorted(self._read | set(also_allowed)))
            raise self.error(unknown[0], f"unknown key (known keys here: {known})")
