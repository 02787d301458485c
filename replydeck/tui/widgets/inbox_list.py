"""The inbox: a Line-API scroll view that draws only the rows on screen.

Rows come from the store in windows (keyset pagination on the inbox order), kept in one
contiguous block around the viewport; nothing ever holds the whole list. ``count()`` gives
the scrollbar's length and ``position()`` turns a conversation into a row number, so a
refresh puts the cursor back on the same conversation wherever new rows landed.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from replydeck.inbox.model import Conversation, Status, Urgency
from replydeck.inbox.store import LAST, InboxFilter, SortKey, Store
from replydeck.tui import fmt

#: Runs a store query on the reader thread (its own connection) and returns the result.
Reader = Callable[[Callable[[Store], Any]], Awaitable[Any]]

#: Rows fetched per store query, and the most kept in memory around the viewport.
WINDOW = 120
MAX_BLOCK = 600

_URGENCY_CLASS = {
    Urgency.CRISIS: "inbox--crisis", Urgency.URGENT: "inbox--urgent",
    Urgency.HIGH: "inbox--high", Urgency.NORMAL: "inbox--normal", Urgency.LOW: "inbox--low",
}
_DUE_CLASS = {"ok": "inbox--ok", "warning": "inbox--warning", "breached": "inbox--breached",
              "none": "inbox--dim"}


def _upto(key: SortKey) -> SortKey:
    """A ``before`` bound that still includes ``key`` (ids are unique)."""
    return (key[0], key[1], key[2], key[3] + 1)


def _from(key: SortKey) -> SortKey:
    """An ``after`` bound that still includes ``key``."""
    return (key[0], key[1], key[2], key[3] - 1)


@dataclass
class Reloaded:
    """What a refresh read: the length, and the rows around the anchor conversation."""

    total: int
    rows: list[Conversation]
    #: Row number of ``rows[0]``; None when there was no anchor (keep the cursor's place).
    base: int | None
    cursor: int


def reload_query(store: Store, f: InboxFilter, anchor: Conversation | None) -> Reloaded:
    """Where ``anchor`` is now in ``f``'s order, with a window either side of it.

    If it left the view (done, snoozed), the cursor stays at its place, which now holds
    the next one. Safe to run on any thread with that thread's own store.
    """
    total = store.count(f)
    if anchor is None or anchor.sort_key is None:
        return Reloaded(total, [], None, 0)
    fresh = store.conversation(anchor.id)
    key = fresh.sort_key if fresh and fresh.sort_key else anchor.sort_key
    before = store.window(f, before=_upto(key), limit=WINDOW)
    matched = bool(before) and before[-1].id == anchor.id
    after = store.window(f, after=key, limit=WINDOW)
    pos = store.position(f, key)
    return Reloaded(total, before + after, pos - (len(before) - int(matched)), pos)


def columns(width: int) -> list[tuple[str, int]]:
    """The list's columns for a width: (name, cells). The snippet takes what is left."""
    wide = width >= 110
    fixed = [("mark", 2), ("urgency", 6), ("platform", 4), ("kind", 7)]
    tail = [("wait", 5), ("due", 6)]
    if wide:
        tail += [("status", 7), ("assignee", 10)]
    used = sum(w for _, w in fixed + tail) + len(fixed) + len(tail)  # one space after each
    author = max(10, min(30, (width - used) * 2 // 5))
    snippet = max(0, width - used - author - 1)
    return [*fixed, ("author", author), ("snippet", snippet), *tail]


def header_text(width: int) -> str:
    names = {"mark": "", "urgency": "URG", "platform": "NET", "kind": "KIND",
             "author": "FROM", "snippet": "LATEST", "wait": " WAIT", "due": "   DUE",
             "status": "STATUS", "assignee": "OWNER"}
    parts = []
    for name, w in columns(width):
        parts.append(fmt.fit_right(names[name], w) if name in ("wait", "due")
                     else fmt.fit(names[name], w))
    return fmt.fit(" ".join(parts), width)


class InboxList(ScrollView, can_focus=True, inherit_bindings=False):
    """Keys are the screen's (rebindable); the scroll view's own arrow bindings would
    scroll without moving the cursor, so none are inherited."""

    COMPONENT_CLASSES = {
        "inbox--cursor", "inbox--selected", "inbox--crisis", "inbox--urgent", "inbox--high",
        "inbox--normal", "inbox--low", "inbox--ok", "inbox--warning", "inbox--breached",
        "inbox--dim", "inbox--unread", "inbox--match", "inbox--empty",
    }

    class Highlighted(Message):
        """The cursor is on another conversation (None: the list is empty).

        ``by_person`` is False when a refresh moved it (the conversation left the view):
        screens then leave what the person is reading alone.
        """

        def __init__(self, conversation: Conversation | None, by_person: bool = True) -> None:
            super().__init__()
            self.conversation = conversation
            self.by_person = by_person

    class Counted(Message):
        """The exact length of the view is known (it was read in the background)."""

    def __init__(self, store: Store, clock: Callable[[], datetime], *,
                 read: Reader | None = None, name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.store = store
        self.read = read
        self._generation = 0
        self.clock = clock
        self.filter = InboxFilter()
        self.search: str | None = None
        self.total = 0
        self.cursor = 0
        self.selected: set[int] = set()
        #: Conversations with an unsent draft (marked ✎, so a restored draft is found).
        self.drafts: set[int] = set()
        self.empty_text = "Nothing here."
        self._base = 0
        self._rows: list[Conversation] = []
        self._styles: dict[str, Style] = {}
        self._matches: set[int] = set()
        self._matches_for: tuple[int, int, int] | None = None
        self._match_count: tuple[Any, int] = (None, 0)
        self._highlighted_id: int | None = None
        self._now: datetime = clock()

    # -- data --------------------------------------------------------------------------
    @property
    def current(self) -> Conversation | None:
        return self.row(self.cursor) if self.total else None

    def row(self, index: int) -> Conversation | None:
        if not 0 <= index < self.total:
            return None
        if not self._base <= index < self._base + len(self._rows):
            self._load_around(index)
        offset = index - self._base
        return self._rows[offset] if 0 <= offset < len(self._rows) else None

    def _load_around(self, index: int) -> None:
        end = self._base + len(self._rows)
        f = self.filter
        if self._rows and end <= index < end + WINDOW:
            more = self.store.window(f, after=self._rows[-1].sort_key,
                                     limit=WINDOW + index - end)
            self._rows.extend(more)
        elif self._rows and self._base - WINDOW <= index < self._base:
            more = self.store.window(f, before=self._rows[0].sort_key,
                                     limit=WINDOW + self._base - index)
            self._rows[:0] = more
            self._base -= len(more)
        elif index < WINDOW:
            self._rows = self.store.window(f, limit=WINDOW)
            self._base = 0
        elif index >= self.total - WINDOW:
            self._rows = self.store.window(f, before=LAST, limit=WINDOW)
            self._base = self.total - len(self._rows)
        else:
            start = index - WINDOW // 2
            self._rows = _window_at(self.store, f, start, WINDOW)
            self._base = start
        if len(self._rows) > MAX_BLOCK:
            keep_from = max(0, min(index - self._base - MAX_BLOCK // 2,
                                   len(self._rows) - MAX_BLOCK))
            self._rows = self._rows[keep_from:keep_from + MAX_BLOCK]
            self._base += keep_from

    def set_filter(self, f: InboxFilter, *, empty_text: str | None = None) -> None:
        """Show another view: back to the top.

        The first rows come from one indexed window; when the view is longer than that,
        its exact length (a count, slow on big stores) is read in the background.
        """
        self.filter = f
        self._generation += 1
        if empty_text is not None:
            self.empty_text = empty_text
        self._rows = self.store.window(f, limit=2 * WINDOW)
        self._base = 0
        self._matches_for = None
        self.total = len(self._rows)
        self.cursor = 0
        self.virtual_size = Size(self.size.width, self.total)
        self.scroll_to(y=0, animate=False, immediate=True)
        self.refresh()
        self._announce()
        if len(self._rows) == 2 * WINDOW:
            if self.read is None:
                self._set_total(self.store.count(f))
            else:
                # After this frame is on screen: on a big store the count takes a while.
                generation = self._generation
                self.call_after_refresh(lambda: self.run_worker(
                    functools.partial(self._count_later, f, generation), group="inbox-count",
                    exclusive=True))

    async def _count_later(self, f: InboxFilter, generation: int) -> None:
        assert self.read is not None
        total = await self.read(lambda s: s.count(f))
        if generation == self._generation:
            self._set_total(total)

    def _set_total(self, total: int) -> None:
        self.total = total
        self.virtual_size = Size(self.size.width, self.total)
        self.refresh()
        self.post_message(self.Counted())

    def reload(self) -> None:
        """Re-read the store now, keeping the cursor on the conversation it was on."""
        self._apply(reload_query(self.store, self.filter, self.current))

    async def reload_in_background(self) -> None:
        """The same, with the queries on the reader thread (counts are slow at 100k).

        If the person moved meanwhile, the answer is for a conversation they left: ask
        again for the one they are on now.
        """
        if self.read is None:
            self.reload()
            return
        for _ in range(3):
            anchor, generation, f = self.current, self._generation, self.filter
            result = await self.read(functools.partial(reload_query, f=f, anchor=anchor))
            if generation != self._generation:
                return  # another view was chosen; it loaded itself
            now = self.current
            if (now.id if now else None) == (anchor.id if anchor else None):
                self._apply(result)
                return
        self.reload()

    def _apply(self, result: Reloaded) -> None:
        screen_row = self.cursor - int(self.scroll_y)
        self._matches_for = None
        self._match_count = (None, 0)
        self.total = result.total
        if result.base is None:
            self._rows, self._base = [], 0
            self.cursor = min(self.cursor, max(0, self.total - 1))
        else:
            self._rows, self._base = result.rows, result.base
            self.cursor = max(0, min(result.cursor, self.total - 1))
        self.virtual_size = Size(self.size.width, self.total)
        height = max(1, self.scrollable_content_region.height)
        target = max(0, min(self.cursor - max(0, min(screen_row, height - 1)),
                            max(0, self.total - height)))
        self.scroll_to(y=target, animate=False, immediate=True)
        self.refresh()
        self._announce(by_person=False)

    def set_search(self, text: str | None) -> None:
        self.search = text or None
        self._matches_for = None
        self.refresh()

    def _search_filter(self) -> InboxFilter:
        return replace(self.filter, search=self.search)

    def match_count(self) -> int:
        """Conversations in this view matching the search (cached until the data moves)."""
        if not self.search:
            return 0
        key = (self.search, self.filter, self.total, self._generation)
        if self._match_count[0] != key:
            self._match_count = (key, self.store.count(self._search_filter()))
        return self._match_count[1]

    def find_match(self, forward: bool = True) -> bool:
        """Move to the next (or previous) conversation matching the search, wrapping."""
        if not self.search or not self.total:
            return False
        fs = self._search_filter()
        cur = self.current
        key = cur.sort_key if cur else None
        if forward:
            hits = self.store.window(fs, after=key, limit=1) if key else []
            hits = hits or self.store.window(fs, limit=1)
        else:
            hits = self.store.window(fs, before=key, limit=1) if key else []
            hits = hits or self.store.window(fs, before=LAST, limit=1)
        if not hits or hits[0].sort_key is None:
            return False
        self.move_to(self.store.position(self.filter, hits[0].sort_key))
        return True

    def _visible_matches(self) -> set[int]:
        if not self.search or not self._rows:
            return set()
        marker = (self._base, len(self._rows), id(self._rows[0]))
        if self._matches_for != marker:
            first, last = self._rows[0].sort_key, self._rows[-1].sort_key
            assert first is not None and last is not None
            hits = self.store.window(self._search_filter(), after=_from(first),
                                     limit=len(self._rows))
            self._matches = {c.id for c in hits if c.sort_key and c.sort_key <= last}
            self._matches_for = marker
        return self._matches

    # -- cursor ------------------------------------------------------------------------
    def move_to(self, index: int) -> None:
        if not self.total:
            return
        index = max(0, min(index, self.total - 1))
        old = self.cursor
        self.cursor = index
        height = max(1, self.scrollable_content_region.height)
        top = int(self.scroll_y)
        if index < top:
            self.scroll_to(y=index, animate=False, immediate=True)
        elif index >= top + height:
            self.scroll_to(y=index - height + 1, animate=False, immediate=True)
        else:
            self._refresh_index(old)
            self._refresh_index(index)
        self._announce()

    def move(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def page(self, pages: int) -> None:
        height = max(1, self.scrollable_content_region.height)
        top = int(self.scroll_y)
        new_top = max(0, min(top + pages * height, max(0, self.total - height)))
        offset = self.cursor - top
        self.scroll_to(y=new_top, animate=False, immediate=True)
        self.move_to(new_top + offset if new_top != top else self.cursor + pages * height)

    def _refresh_index(self, index: int) -> None:
        y = index - int(self.scroll_y)
        if 0 <= y < self.size.height:
            self.refresh_line(y)

    def _announce(self, by_person: bool = True) -> None:
        conv = self.current
        cid = conv.id if conv else None
        if cid != self._highlighted_id:
            self._highlighted_id = cid
            self.post_message(self.Highlighted(conv, by_person))

    def on_click(self, event: events.Click) -> None:
        """A click puts the cursor on the row (everything else is on the keyboard)."""
        self.move_to(int(self.scroll_y) + event.y)
        self.focus()

    def toggle_selected(self) -> None:
        conv = self.current
        if conv is None:
            return
        self.selected.symmetric_difference_update({conv.id})
        self._refresh_index(self.cursor)

    def clear_selection(self) -> None:
        self.selected.clear()
        self.refresh()

    # -- painting ----------------------------------------------------------------------
    def notify_style_update(self) -> None:
        self._styles.clear()
        super().notify_style_update()

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = self.get_component_rich_style(name, partial=True)
        return style

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.total)

    def tick(self) -> None:
        """Timers moved on: repaint (no store access)."""
        self._now = self.clock()
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        index = int(self.scroll_y) + y
        if not self.total:
            if y == 0:
                return Strip([Segment(fmt.fit(" " + self.empty_text, width),
                                      base + self._style("inbox--empty"))])
            return Strip.blank(width, base)
        conv = self.row(index)
        if conv is None:
            return Strip.blank(width, base)
        return self._render_row(conv, index, width, base)

    def _render_row(self, conv: Conversation, index: int, width: int, base: Style) -> Strip:
        now = self._now
        row_style = base
        if index == self.cursor:
            row_style = base + self._style("inbox--cursor")
        elif conv.id in self.selected:
            row_style = base + self._style("inbox--selected")
        dim = self._style("inbox--dim")
        segments: list[Segment] = []
        for name, w in columns(width):
            style = row_style
            if name == "mark":
                first = "+" if conv.id in self.selected else "✎" if conv.id in self.drafts \
                    else " "
                text = first + ("•" if conv.unread else " ")
                style = row_style + self._style("inbox--unread")
            elif name == "urgency":
                text = fmt.fit(fmt.URGENCY_WORDS[conv.urgency], w)
                style = row_style + self._style(_URGENCY_CLASS[conv.urgency])
            elif name == "platform":
                text = fmt.fit(fmt.badge(conv.platform), w)
            elif name == "kind":
                text = fmt.fit(str(conv.kind), w)
                style = row_style + dim
            elif name == "author":
                main, suffix = fmt.author_text(conv)
                if suffix and w > len(suffix) + 4:
                    text = fmt.fit(main, w - len(suffix) - 1) + " " + suffix
                else:
                    text = fmt.fit(main, w)
                if conv.unread:
                    style = row_style + Style(bold=True)
            elif name == "snippet":
                text = fmt.fit(fmt.one_line(conv.snippet), w)
                if self.search and conv.id in self._visible_matches():
                    style = row_style + self._style("inbox--match")
            elif name == "wait":
                text = fmt.fit_right(fmt.wait_text(conv, now), w)
            elif name == "due":
                text = fmt.fit_right(fmt.due_text(conv, now), w)
                style = row_style + self._style(_DUE_CLASS[fmt.due_state(conv, now)])
            elif name == "status":
                label = str(conv.status) if conv.status != Status.OPEN else ""
                text = fmt.fit(label, w)
                style = row_style + dim
            else:  # assignee
                text = fmt.fit(conv.assignee or "", w)
                style = row_style + dim
            segments.append(Segment(text, style))
            segments.append(Segment(" ", row_style))
        strip = Strip(segments)
        return strip.adjust_cell_length(width, row_style)


def _window_at(store: Store, f: InboxFilter, offset: int, limit: int) -> list[Conversation]:
    """Rows from ``offset`` on, for a jump far from any loaded row (a scrollbar drag)."""
    return store.window_at(f, offset, limit)
