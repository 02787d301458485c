"""Child for the entry-point test: ``replydeck.tui.app.run`` on a real terminal (a pty)."""

from __future__ import annotations

import sys
from pathlib import Path

import replydeck.sources
from replydeck.config.loader import load_config
from replydeck.tui.app import run

if __name__ == "__main__":
    replydeck.sources.SOURCE_TYPES["tuifake"] = "tests.tui.fake_source:TuiFakeSource"
    path = Path(sys.argv[1])
    sys.exit(run(load_config(path, data_dir=path.parent / "data"), title="replydeck test"))
