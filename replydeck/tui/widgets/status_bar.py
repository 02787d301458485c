"""The bottom line: each source's health, the outbox, and what needs a person."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from replydeck.inbox.store import InboxFilter, SourceState, Store
from replydeck.tui import fmt
from replydeck.tui.widgets.inbox_list import Reader

NEEDS_REPLY = InboxFilter(needs_reply=True)
BREACHING = InboxFilter(breached=True)


def source_text(states: Iterable[SourceState], now: datetime) -> Text:
    t = Text()
    for state in states:
        if t:
            t.append("  ")
        health = state.health
        style = {"ok": "green", "degraded": "yellow", "failing": "bold red",
                 "error": "bold red", "new": "dim"}.get(health, "yellow")
        t.append(state.name, "bold")
        t.append(" ")
        t.append(health, style)
        if health not in ("ok", "new") and state.last_error:
            t.append(": " + fmt.one_line(state.last_error)[:60], style)
        if state.next_poll_at is not None:
            left = state.next_poll_at - now
            t.append(" (next " + (fmt.short_duration(left) if left.total_seconds() > 0
                                 else "now") + ")", "dim")
    return t


def outbox_text(counts: dict[str, int]) -> Text:
    t = Text("outbox ", "dim")
    shown = False
    for state, style in (("queued", "yellow"), ("sending", "yellow"), ("failed", "bold red"),
                         ("unconfirmed", "bold magenta")):
        n = counts.get(state, 0)
        if n:
            t.append(f"{n} {state} ", style)
            shown = True
    if not shown:
        t.append("empty ", "dim")
    return t


@dataclass
class StatusData:
    needs_reply: int
    breaching: int
    outbox: dict[str, int]
    sources: list[SourceState]


def read_status(store: Store) -> StatusData:
    return StatusData(store.count(NEEDS_REPLY), store.count(BREACHING), store.outbox_counts(),
                      store.source_states())


class StatusBar(Static):
    """Reads the store on ``update_from_store`` (called on changes and on the tick)."""

    def __init__(self, store: Store, clock: Callable[[], datetime],
                 sources: Iterable[str] | None = None, *, id: str | None = None) -> None:
        super().__init__(Text(), id=id)
        self.store = store
        self.clock = clock
        self.sources = set(sources) if sources is not None else None
        self.needs_reply = 0
        self.breaching = 0
        self.outbox: dict[str, int] = {}

    def update_from_store(self) -> None:
        self.show(read_status(self.store))

    async def update_in_background(self, read: Reader | None) -> None:
        """The counts scan the inbox (slow at 100k): read them off the UI thread."""
        if read is None:
            self.update_from_store()
        else:
            self.show(await read(read_status))

    def show(self, status: StatusData) -> None:
        now = self.clock()
        self.needs_reply, self.breaching, self.outbox = (status.needs_reply, status.breaching,
                                                         status.outbox)
        states = [s for s in status.sources if self.sources is None or s.name in self.sources]
        t = Text()
        t.append(f"{self.needs_reply} need reply", "bold")
        t.append("  ")
        t.append(f"{self.breaching} breaching", "bold red" if self.breaching else "dim")
        t.append("  ")
        t.append_text(outbox_text(self.outbox))
        t.append(" ")
        t.append_text(source_text(states, now))
        t.no_wrap = True
        t.overflow = "ellipsis"
        self.update(t)
