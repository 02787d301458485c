"""Screenshots of the main screens at 80x24 and 160x48 with the clock frozen.

Update after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update``
and look at the SVGs in ``__snapshots__``.
"""

from __future__ import annotations

import pytest

SIZES = [(80, 24), (160, 48)]


def _no_blink(pilot) -> None:
    for area in pilot.app.query("TextArea"):
        area.cursor_blink = False


@pytest.mark.parametrize("size", SIZES)
def test_inbox(snap_compare, make_app, size):
    assert snap_compare(make_app(), terminal_size=size, press=["5"])


@pytest.mark.parametrize("size", SIZES)
def test_conversation(snap_compare, make_app, size):
    assert snap_compare(make_app(), terminal_size=size, press=["5", "j", "enter"])


@pytest.mark.parametrize("size", SIZES)
def test_composer(snap_compare, make_app, size):
    async def type_reply(pilot) -> None:
        await pilot.press("5", "j", "j", "r")
        _no_blink(pilot)
        await pilot.press(*"ご不便をおかけしております。Checking now!")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=type_reply)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, make_app, size):
    assert snap_compare(make_app(), terminal_size=size, press=["question_mark"])
