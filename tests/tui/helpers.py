from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from replydeck.tui.screens.inbox import InboxScreen


async def until(pilot: Pilot, cond: Callable[[], object], timeout: float = 5.0) -> None:
    """Let the app run until ``cond()`` holds (writes finish on the writer thread)."""
    steps = int(timeout / 0.02)
    for _ in range(steps):
        if cond():
            return
        await pilot.pause(0.02)
    assert cond(), "condition not reached"


def screen_of(pilot: Pilot) -> InboxScreen:
    screen = pilot.app.inbox_screen
    assert screen is not None
    return screen


def screen_text(pilot: Pilot) -> str:
    """What the terminal shows now, as plain text."""
    return "\n".join(strip.text for strip in pilot.app.screen._compositor.render_strips())


def segments_text(pilot: Pilot) -> str:
    """Every character of every segment painted, including any control characters."""
    out = []
    for strip in pilot.app.screen._compositor.render_strips():
        out.extend(seg.text for seg in strip)
    return "".join(out)
