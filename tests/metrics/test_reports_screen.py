"""The Reports screen computes in a worker and shows the week's figures."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.app import App
from textual.widgets import Static

from replydeck.tui.reports_screen import ReportsScreen
from tests.metrics.test_metrics import build_week
from tests.metrics.world import World, berlin_config, utc

NOW = utc(2026, 11, 9, 0)  # the period is exactly the hand-built week


def rendered(screen: ReportsScreen, widget_id: str) -> str:
    static = screen.query_one(f"#{widget_id}", Static)
    content = static.content if hasattr(static, "content") else static.renderable
    console = Console(width=140, record=True, color_system=None, file=io.StringIO())
    console.print(content)
    return console.export_text()


class Host(App[None]):
    def __init__(self, screen: ReportsScreen) -> None:
        super().__init__()
        self.reports = screen

    def on_mount(self) -> None:
        self.push_screen(self.reports)


async def test_reports_screen_shows_figures_from_a_worker(tmp_path: Path) -> None:
    w = World(tmp_path / "week.db", berlin_config())
    build_week(w)
    w.store.close()
    opened: list[Any] = []

    def open_store() -> Any:
        from replydeck.inbox.store import Store

        s = Store(tmp_path / "week.db")
        opened.append(s)
        return s

    screen = ReportsScreen(open_store, berlin_config(), clock=lambda: NOW)
    app = Host(screen)
    async with app.run_test(size=(150, 80)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.data is not None
        head = rendered(screen, "reports-headline")
        assert "Reply rate" in head and "75%" in head and "100%" in head
        assert "42m" in head  # first response median 2550 s
        chart = rendered(screen, "reports-chart")
        assert "2026-11-06" in chart and "2d17h" in chart
        buckets = rendered(screen, "reports-buckets")
        assert ">24h" in buckets and "1 (17%)" in buckets
        agents = rendered(screen, "reports-agents")
        assert "chloe" in agents and "external" in agents
        platforms = rendered(screen, "reports-platforms")
        assert "mastodon" in platforms
        # A shorter period: recomputed in the worker, the last day only.
        await pilot.press("1")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.data is not None
        assert screen.data.headline.period.length.days == 1
        assert screen.data.headline.current.received == 0
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is not screen
    # Each computation opened its own connection (the inbox's is never used).
    assert len(opened) == 2


async def test_names_are_shown_as_text_never_as_markup(tmp_path: Path) -> None:
    w = World(tmp_path / "names.db", berlin_config())
    conv = w.customer("N", utc(2026, 11, 4, 9), platform="[bold]x[/bold]")
    w.reply(conv, utc(2026, 11, 4, 9, 5), "[red]eve[/red]")
    w.store.close()
    screen = ReportsScreen(tmp_path / "names.db", berlin_config(), clock=lambda: NOW)
    app = Host(screen)
    async with app.run_test(size=(150, 60)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "[red]eve[/red]" in rendered(screen, "reports-agents")
        assert "[bold]x[/bold]" in rendered(screen, "reports-platforms")
