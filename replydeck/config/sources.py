"""The ``[[sources]]`` tables: their common keys, and building each source from its table.

Every entry has ``type`` (a key of :data:`replydeck.sources.SOURCE_TYPES`), a unique
``name`` and ``poll_interval`` (seconds). The rest of the table belongs to the source
class, whose ``from_config(table)`` reads it with the :class:`Table` getters; whatever it
did not read is then a typo, reported as an error.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from replydeck.config.errors import ConfigError, describe
from replydeck.config.table import _MISSING, Table

DEFAULT_POLL_INTERVAL = 60.0
MIN_POLL_INTERVAL = 1
COMMON_KEYS = ("type", "name", "poll_interval")


class SourceTable(Table):
    """One ``[[sources]]`` entry. ``name``, ``type`` and ``poll_interval`` are read by the
    loader; ``source`` is the object built from the table (secrets not yet resolved)."""

    def __init__(self, data: dict[str, Any], path: str, file: str | None,
                 config_dir: Path | None = None) -> None:
        super().__init__(data, path, file)
        self.config_dir = config_dir
        self.name: str = ""
        self.type: str = ""
        self.poll_interval: float = DEFAULT_POLL_INTERVAL
        self.source: Any = None

    def file_path(self, name: str, default: Any = _MISSING) -> Any:
        """A filesystem path: ``~`` expanded, relative paths taken from the config's folder
        (so a config works the same from any working directory)."""
        value = self.str(name, default)
        if value is default and default is not _MISSING:
            return value
        if not value.strip():
            raise self.error(name, "expected a file path, found an empty string")
        path = Path(os.path.expanduser(value))
        if not path.is_absolute() and self.config_dir is not None:
            path = self.config_dir / path
        return path


def _check_name(table: SourceTable) -> str:
    name = table.str("name")
    if not name.strip():
        raise table.error("name", "expected a non-empty string, found an empty string")
    # Names are shown on screen and used on the command line: no control characters.
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
        raise table.error("name", "expected a name without control or format characters, "
                          f"found {describe(name)}")
    return name


def parse_sources(tables: Iterable[Table], config_dir: Path | None) -> list[SourceTable]:
    """Validate every ``[[sources]]`` entry and build its source object.

    Imports each named source module only now, so a config naming three types loads three
    adapters and no more.
    """
    from replydeck.sources import SOURCE_TYPES, source_class

    out: list[SourceTable] = []
    seen: dict[str, str] = {}
    for raw in tables:
        table = SourceTable(raw.data, raw.path, raw.file, config_dir)
        table.type = table.str("type", choices=tuple(SOURCE_TYPES))
        table.name = _check_name(table)
        if table.name in seen:
            raise table.error("name", f"duplicate source name {table.name!r} "
                              f"(also used by {seen[table.name]}); names must be unique")
        seen[table.name] = table.path
        try:
            cls = source_class(table.type)
        except (ImportError, AttributeError) as exc:
            raise table.error("type", f"source type {table.type!r} is not available in "
                              f"this build ({exc})") from None
        default_interval = float(getattr(cls, "default_poll_interval", DEFAULT_POLL_INTERVAL))
        table.poll_interval = table.number("poll_interval", default_interval,
                                           min=MIN_POLL_INTERVAL)
        table.source = cls.from_config(table)
        table.reject_unknown(also_allowed=COMMON_KEYS)
        out.append(table)
    return out


__all__ = ["COMMON_KEYS", "DEFAULT_POLL_INTERVAL", "ConfigError", "SourceTable",
           "parse_sources"]
