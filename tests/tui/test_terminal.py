"""Terminal behaviour: resizing, NO_COLOR, the ANSI theme, and reading while data arrives."""

from __future__ import annotations

import pytest

from replydeck.inbox.model import Status
from replydeck.inbox.store import Store
from replydeck.tui.app import ReplydeckApp
from tests.tui import data
from tests.tui.helpers import screen_of, screen_text, until


async def test_wide_shows_the_conversation_beside_narrow_one_at_a_time(make_app):
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        screen = screen_of(pilot)
        assert screen.wide
        await until(pilot, lambda: screen.conversation.conversation is not None)
        assert screen.conversation.conversation.id == screen.inbox.current.id
        await pilot.press("j")
        await until(pilot, lambda: screen.conversation.conversation.id
                    == screen.inbox.current.id)
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not screen.wide and not screen.reading
        assert "CRISIS" in screen_text(pilot)
        await pilot.press("enter")
        assert screen.reading
        await pilot.resize_terminal(160, 40)
        await pilot.pause()
        assert "CRISIS" in screen_text(pilot)


async def test_refresh_never_swaps_the_conversation_being_read(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(pilot)
        await pilot.press("enter")
        reading = screen.conversation.conversation.id
        other = Store(store.path, assessor=data.KeywordAssessor())
        other.set_status([reading], Status.DONE, actor="someone-else")
        other.close()
        await until(pilot, lambda: screen.inbox.current is not None
                    and screen.inbox.current.id != reading)
        await pilot.pause(0.2)
        assert screen.conversation.conversation.id == reading
        assert screen.reading


async def test_no_color_is_honoured(config, store, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = ReplydeckApp(config, store=store, clock=lambda: data.NOW, start_services=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await pilot.pause()
        assert app.no_color
        for strip in app.screen._compositor.render_strips():
            for seg in strip:
                style = seg.style
                if style is None:
                    continue
                for color in (style.color, style.bgcolor):
                    if color is not None and color.triplet is not None:
                        r, g, b = color.triplet
                        assert r == g == b, f"coloured output under NO_COLOR: {seg!r}"


async def test_ansi_theme_uses_the_terminals_colours(write_config, store):
    cfg = write_config('\n[ui]\ntheme = "ansi"\n')
    app = ReplydeckApp(cfg, store=store, clock=lambda: data.NOW, start_services=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await pilot.pause()
        assert app.theme == "ansi-dark"
        assert app.native_ansi_color
        assert "CRISIS" in screen_text(pilot)


async def test_a_click_moves_the_cursor(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await pilot.pause()
        screen = screen_of(pilot)
        await pilot.click("#inbox", offset=(10, 3))
        assert screen.inbox.cursor == 3


async def test_rows_keep_their_columns_with_cjk_and_emoji(make_app):
    from rich.cells import cell_len

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("5")
        await pilot.pause()
        inbox = screen_of(pilot).inbox
        width = inbox.scrollable_content_region.width
        lines = [inbox.render_line(y).text for y in range(inbox.total)]
        assert any("田中" in ln for ln in lines) and any("🎉" in ln for ln in lines)
        for line in lines:
            assert cell_len(line) == width
        # The wait column ends at the same cell in every row: "50m", "8m", "2d"...
        header = screen_text(pilot).splitlines()[1]
        wait_end = cell_len(header[:header.index("WAIT") + 4])
        for line, conv in zip(lines, (inbox.row(i) for i in range(inbox.total)), strict=True):
            if conv.waiting_since is not None:
                before = line[:next(i for i in range(len(line) + 1)
                                if cell_len(line[:i]) == wait_end)]
                assert before.rstrip() == before, line
