"""Child process for the kill test: opens the app, types a draft, then waits to be killed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import replydeck.sources
from replydeck.config.loader import load_config
from replydeck.tui.app import ReplydeckApp


async def main(config_path: str, text: str) -> None:
    replydeck.sources.SOURCE_TYPES["tuifake"] = "tests.tui.fake_source:TuiFakeSource"
    config = load_config(Path(config_path), data_dir=Path(config_path).parent / "data")
    app = ReplydeckApp(config)  # services on: the poller thread runs too
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r", *text)
        # Longer than the draft debounce; the kill comes while the app is still running.
        await pilot.pause(1.5)
        print("READY", flush=True)
        await asyncio.sleep(60)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
