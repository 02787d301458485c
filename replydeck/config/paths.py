"""Where replydeck keeps its config file and its data.

Each location is chosen in this order: an explicit argument (the CLI's ``--config`` /
``--data-dir``), then the environment (``REPLYDECK_CONFIG`` / ``REPLYDECK_DATA_DIR``),
then the platform's user directories (XDG on Linux) through platformdirs.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "replydeck"
CONFIG_ENV = "REPLYDECK_CONFIG"
DATA_DIR_ENV = "REPLYDECK_DATA_DIR"
CONFIG_FILE_NAME = "config.toml"
DATABASE_FILE_NAME = "replydeck.db"


def _choose(explicit: str | os.PathLike[str] | None, env_var: str) -> Path | None:
    # An empty value (``REPLYDECK_CONFIG=``) means "not set", as shells commonly produce it.
    for value in (explicit, os.environ.get(env_var)):
        if value is not None and str(value) != "":
            return Path(os.path.expanduser(str(value)))
    return None


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / CONFIG_FILE_NAME


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config file to read (not created here: ``replydeck init`` writes it)."""
    return _choose(explicit, CONFIG_ENV) or default_config_path()


def data_dir_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data directory, without creating it (for messages and dry runs)."""
    return _choose(explicit, DATA_DIR_ENV) or default_data_dir()


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data directory, created private (0700) if missing.

    An existing directory keeps its mode: a team may share one on purpose.
    """
    path = data_dir_path(explicit)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
