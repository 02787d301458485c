"""Reading the config file into a validated :class:`Config`.

Every problem becomes a :class:`ConfigError` naming the file, the key path, what was
expected and what was found; the CLI prints it and exits with status 2. Sections owned by
other modules (``[sla]``, ``[[rules]]``, ...) are parsed by those modules, imported only
when they exist in this build, so the loader never depends on them being written yet.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from replydeck.config import paths
from replydeck.config.errors import ConfigError
from replydeck.config.sources import SourceTable, parse_sources
from replydeck.config.table import Table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

TOP_LEVEL_KEYS = (
    "sources", "agent", "sla", "business_hours", "notifications", "rules", "replies",
    "replies_dir", "keys", "views", "ui", "storage", "webhooks",
)
_TOML_POSITION = re.compile(r"^(?P<reason>.*?) \(at (?:line (?P<line>\d+), column (?P<col>\d+)"
                            r"|(?P<end>end of document))\)$", re.DOTALL)
_INIT_HINT = ("run `replydeck init` to write a commented example there, "
              "or `replydeck demo` to try replydeck without any accounts")


@dataclass
class Config:
    file: Path  # absolute
    agent_name: str
    brand: str
    sources: list[SourceTable]
    #: The whole file, for sections other modules read themselves.
    root: Table
    data_dir: Path
    #: ``[storage] database``, default ``<data_dir>/replydeck.db``.
    database: Path
    #: Filled by ``replydeck.config.{sla,replies,rules,keys}.parse``; None when that
    #: module is not part of this build.
    sla: Any = None
    replies: Any = None
    rules: Any = None
    keys: Any = None

    @property
    def config_dir(self) -> Path:
        return self.file.parent

    def source_table(self, name: str) -> SourceTable:
        for table in self.sources:
            if table.name == name:
                return table
        known = ", ".join(repr(t.name) for t in self.sources) or "none configured"
        raise ConfigError(str(self.file), "sources",
                          f"no source named {name!r} (known: {known})")


def read_toml(path: Path) -> dict[str, Any]:
    """Parse the file, turning every I/O and syntax problem into a ConfigError."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(file, None, f"config file not found; {_INIT_HINT}") from None
    except IsADirectoryError:
        raise ConfigError(file, None, "is a directory, expected a TOML file") from None
    except PermissionError:
        raise ConfigError(file, None, "cannot be read (permission denied)") from None
    except OSError as exc:
        raise ConfigError(file, None, f"cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(file, None, f"line {line}: not valid UTF-8 text "
                          "(TOML files must be UTF-8)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, None, _describe_syntax_error(exc)) from None


def _describe_syntax_error(exc: Exception) -> str:
    # tomllib puts the position in the message; 3.14 also offers lineno/colno attributes.
    message = str(exc)
    match = _TOML_POSITION.match(message)
    if match is None:
        return f"invalid TOML: {message}"
    reason = match["reason"]
    if match["end"]:
        return f"invalid TOML at the end of the file: {reason}"
    return f"invalid TOML at line {match['line']}, column {match['col']}: {reason}"


def _default_agent_name() -> str:
    return os.environ.get("USER") or os.environ.get("USERNAME") or "agent"


def _section(module_name: str, *args: Any) -> Any:
    """Call ``<module>.parse(*args)`` when that section parser is part of this build."""
    if importlib.util.find_spec(module_name) is None:
        return None
    return importlib.import_module(module_name).parse(*args)


def load_config(path: Path, *, data_dir: Path | None = None) -> Config:
    """Load and validate ``path``. ``data_dir`` defaults to :func:`paths.data_dir_path`.

    Secrets are parsed but not resolved: resolving runs ``pass`` or opens the keyring, so
    it happens only when a source needs the value (``doctor`` resolves them all).
    """
    path = Path(path)
    file = str(path)
    root = Table(read_toml(path), "", file)
    root.reject_unknown(also_allowed=TOP_LEVEL_KEYS)
    # Relative paths inside the file are taken from its folder, fixed now in case the
    # process changes its working directory later.
    config_dir = path.absolute().parent

    agent = root.table("agent")
    agent_name = agent.str("name", None)
    if agent_name is not None and not agent_name.strip():
        raise agent.error("name", "expected a non-empty string, found an empty string")
    brand = agent.str("brand", "")
    agent.reject_unknown()

    data = Path(data_dir) if data_dir is not None else paths.data_dir_path()
    storage = root.table("storage")
    database = storage.str("database", None)
    storage.reject_unknown()
    if database is not None:
        if not database.strip():
            raise storage.error("database", "expected a file path, found an empty string")
        db_path = Path(os.path.expanduser(database))
        if not db_path.is_absolute():
            db_path = config_dir / db_path
    else:
        db_path = data / paths.DATABASE_FILE_NAME

    sources = parse_sources(root.tables("sources"), config_dir)

    config = Config(
        file=path.absolute(), agent_name=agent_name or _default_agent_name(), brand=brand,
        sources=sources, root=root, data_dir=data, database=db_path,
    )
    config.sla = _section("replydeck.config.sla", root)
    config.replies = _section("replydeck.config.replies", root, config_dir)
    config.rules = _section("replydeck.config.rules", root, config.replies)
    config.keys = _section("replydeck.config.keys", root)
    return config


def example_text() -> str:
    """The commented example config ``replydeck init`` writes."""
    return resources.files("replydeck.config").joinpath("example.toml").read_text("utf-8")


def write_example(path: Path, force: bool = False) -> Path:
    """Write the example config to ``path`` (mode 0600), creating its folder.

    Refuses to replace an existing file unless ``force``: it may hold someone's tokens.
    """
    path = Path(path)
    text = example_text()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:  # a file where a folder should be, or no permission
        raise ConfigError(str(path), None, f"cannot be written ({path.parent}: "
                          f"{exc.strerror or exc})") from None
    try:
        if not force:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            return path
        # Write beside it and rename, so an interrupted --force never leaves half a file.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    except FileExistsError:
        raise ConfigError(str(path), None, "already exists; not overwriting it "
                          "(use `replydeck init --force` to replace it)") from None
    except IsADirectoryError:
        raise ConfigError(str(path), None, "is a directory, expected a file path") from None
    except OSError as exc:
        raise ConfigError(str(path), None,
                          f"cannot be written ({exc.strerror or exc})") from None
    return path
