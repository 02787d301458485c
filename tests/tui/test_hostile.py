"""The hostile-text corpus on every screen: nothing acts, nothing crashes, markup is text."""

from __future__ import annotations

import re

import pytest

from replydeck.inbox.model import Status
from replydeck.inbox.store import InboxFilter
from replydeck.tui.screens.help import HelpScreen
from replydeck.tui.screens.outbox import OutboxScreen
from replydeck.tui.screens.saved import SavedReplyPicker
from tests.tui import data
from tests.tui.helpers import screen_of, screen_text, segments_text, until

# Anything a terminal would act on: ESC, BEL, other C0 (but newline), DEL, C1.
_ACTIVE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def assert_inert(pilot) -> None:
    painted = segments_text(pilot)
    found = _ACTIVE.findall(painted)
    assert not found, f"control characters reached the screen: {found!r}"


@pytest.fixture
def hostile_store(tmp_path):
    s = data.make_store(tmp_path / "hostile.db", data.hostile())
    yield s
    s.close()


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_hostile_corpus_on_every_screen(make_app, hostile_store, size):
    app = make_app(st=hostile_store)
    async with app.run_test(size=size) as pilot:
        await pilot.press("5")
        await pilot.pause()
        screen = screen_of(pilot)
        total = screen.inbox.total
        assert total == hostile_store.count(InboxFilter(statuses=tuple(Status)))
        seen_markup = False
        for i in range(total):
            screen.inbox.move_to(i)
            screen.action_open()
            await pilot.pause()
            assert_inert(pilot)
            shown = screen.conversation.plain_text()
            if "[bold red]ALERT[/bold red]" in shown:
                seen_markup = True
            screen.action_back()
        assert seen_markup, "markup in a message must show literally"
        # The list itself, page by page.
        await pilot.press("g")
        for _ in range(total // 10 + 1):
            assert_inert(pilot)
            await pilot.press("pagedown")
        # Composer with hostile text typed in, help, outbox with a hostile body, picker.
        await pilot.press("g", "r")
        screen.composer.editor.insert("[@click=app.quit]x[/] \x1b]0;PWNED\x07 [link=http://e]")
        await pilot.pause()
        assert_inert(pilot)
        assert "[@click=app.quit]x[/]" in screen_text(pilot)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: hostile_store.outbox_counts().get("queued"))
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, OutboxScreen))
        assert_inert(pilot)
        await pilot.press("escape")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert_inert(pilot)
        await pilot.press("escape")
        await pilot.press("r", "ctrl+g")
        await until(pilot, lambda: isinstance(app.screen, SavedReplyPicker))
        assert_inert(pilot)
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running
        assert app.title == "replydeck"
        assert app.clipboard == ""


async def test_markup_in_names_and_messages_is_literal_in_the_list(make_app, hostile_store):
    app = make_app(st=hostile_store)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("5")
        await pilot.pause()
        screen = screen_of(pilot)
        screen.inbox.set_search("nothing may happen")
        assert screen.inbox.find_match()
        await pilot.pause()
        text = screen_text(pilot)
        assert "[@click=app.quit]press here[/]" in text
        # Handles like "[bold]h1[/]" are shown with their brackets.
        assert "@[bold]h" in text
