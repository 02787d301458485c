"""The config `replydeck demo` runs on, written into the demo's own data folder.

The demo keeps its database apart from a real inbox (``<data dir>/demo``), so trying it
never mixes simulated customers into real ones.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

DATABASE_FILES = ("replydeck.db", "replydeck.db-wal", "replydeck.db-shm")


def write_demo_config(folder: Path, *, seed: int = 7, rate: float = 6.0,
                      fresh: bool = False) -> Path:
    """Write ``folder/config.toml`` for the demo; ``fresh`` empties the demo inbox first."""
    if rate <= 0:
        from replydeck.config.errors import ConfigError

        raise ConfigError(None, "--rate", f"expected a number > 0, found {rate}")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if fresh:
        for name in DATABASE_FILES:
            (folder / name).unlink(missing_ok=True)
    template = resources.files("replydeck.demo_files").joinpath("demo.toml").read_text("utf-8")
    text = template.replace("@SEED@", str(int(seed))).replace("@RATE@", repr(float(rate)))
    path = folder / "config.toml"
    tmp = folder / f".config.toml.{os.getpid()}"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
