"""The list reads windows from the store: any row, any jump, never the whole inbox."""

from __future__ import annotations

import random

import pytest

from replydeck.inbox.model import Status
from replydeck.inbox.store import InboxFilter
from replydeck.tui.widgets.inbox_list import MAX_BLOCK
from tests.tui import data
from tests.tui.helpers import screen_of, until

N = 1500


@pytest.fixture
def big_store(tmp_path):
    s = data.make_store(tmp_path / "big.db", data.bulk(N))
    yield s
    s.close()


def all_ids(store, f):
    ids, key = [], None
    while True:
        page = store.window(f, after=key, limit=500)
        if not page:
            return ids
        ids += [c.id for c in page]
        key = page[-1].sort_key


async def test_every_row_is_the_stores_row_whatever_the_jumps(make_app, big_store):
    app = make_app(st=big_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await pilot.pause()
        inbox = screen_of(pilot).inbox
        expected = all_ids(big_store, inbox.filter)
        assert inbox.total == len(expected) == N
        rng = random.Random(7)
        for index in [0, 1, N - 1, N - 2, 700, 699, 701, 820, 300, 5, *rng.sample(range(N), 40)]:
            assert inbox.row(index).id == expected[index], index
            assert len(inbox._rows) <= MAX_BLOCK


async def test_keys_move_through_a_big_list(make_app, big_store):
    app = make_app(st=big_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await pilot.pause()
        inbox = screen_of(pilot).inbox
        expected = all_ids(big_store, inbox.filter)
        height = inbox.scrollable_content_region.height
        await pilot.press("G")
        assert inbox.cursor == N - 1 and inbox.current.id == expected[-1]
        await pilot.press("g", "pagedown")
        assert inbox.cursor == height and inbox.current.id == expected[height]
        await pilot.press("pagedown", "pageup", "j", "j", "k")
        assert inbox.cursor == height + 1 and inbox.current.id == expected[height + 1]
        # A scrollbar drag to the middle paints the right rows.
        inbox.scroll_to(y=900, animate=False, immediate=True)
        await pilot.pause()
        assert inbox.row(int(inbox.scroll_y)).id == expected[900]


async def test_done_far_down_keeps_position(make_app, big_store):
    app = make_app(st=big_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5", "G")
        await pilot.pause()
        inbox = screen_of(pilot).inbox
        inbox.move_to(1000)
        target, after = inbox.current.id, inbox.row(1001).id
        big_store.set_status([target], Status.DONE)
        await until(pilot, lambda: inbox.current.status == Status.DONE)
        assert inbox.current.id == target  # "All" still lists done ones, re-sorted
        await pilot.press("1")
        needs = InboxFilter(needs_reply=True)
        assert inbox.total == big_store.count(needs)
        assert after in all_ids(big_store, needs)
