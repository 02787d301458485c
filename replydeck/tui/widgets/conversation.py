"""One conversation: author card, why it is urgent, SLA, the whole thread, related ones.

Everything from a platform is appended to ``rich.text.Text`` as plain strings, never
parsed as markup, so ``[bold]`` or ``[@click=app.quit]`` in a message is only text.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from rich.console import Group
from rich.padding import Padding
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from replydeck.inbox.model import Conversation, Direction, Reply, ReplyState, from_ms
from replydeck.inbox.store import Store
from replydeck.tui import fmt

#: Threads longer than this show their latest messages (the rest are in the store).
MAX_MESSAGES = 300

_STATE_STYLE = {
    ReplyState.QUEUED: "yellow", ReplyState.SENDING: "yellow", ReplyState.SENT: "green",
    ReplyState.FAILED: "bold red", ReplyState.UNCONFIRMED: "bold magenta",
}
_URGENCY_STYLE = {"crisis": "bold white on red", "urgent": "bold red", "high": "yellow",
                  "normal": "", "low": "dim"}


def _kv(text: Text, label: str, value: str, style: str = "") -> None:
    text.append(f"{label} ", "dim")
    text.append(value, style)
    text.append("   ")


def author_card(conv: Conversation, earlier: int) -> Text:
    a = conv.author
    t = Text(no_wrap=False)
    t.append(a.name or a.handle or a.id or "unknown", "bold")
    if a.handle:
        t.append(f"  @{a.handle.lstrip('@')}" if conv.platform != "email" else f"  <{a.handle}>",
                 "cyan")
    if a.verified:
        t.append("  ✓ verified", "green")
    t.append("\n")
    _kv(t, "on", f"{fmt.platform_name(conv.platform)} {conv.kind} · {conv.source}")
    if a.followers is not None:
        _kv(t, "followers", fmt.count(a.followers),
            "bold" if a.followers >= fmt.LARGE_FOLLOWING else "")
    _kv(t, "earlier conversations", str(earlier))
    t.append("\n")
    _kv(t, "status", str(conv.status))
    _kv(t, "assignee", conv.assignee or "nobody")
    if conv.tags:
        _kv(t, "tags", " ".join(conv.tags), "magenta")
    return t


def triage_text(conv: Conversation, now: datetime, time_format: str) -> Text:
    t = Text()
    t.append(f" {fmt.URGENCY_WORDS[conv.urgency]} ", _URGENCY_STYLE.get(str(conv.urgency), ""))
    if conv.reasons:
        t.append("  " + "; ".join(conv.reasons))
    t.append("\n")
    if conv.waiting_since is not None:
        _kv(t, "waiting since", f"{fmt.local_time(conv.waiting_since, now, time_format)} "
            f"({fmt.short_duration(now - conv.waiting_since)})")
    else:
        t.append("nobody is waiting for a reply   ", "dim")
    if conv.due_at is not None:
        state = fmt.due_state(conv, now)
        left = fmt.due_text(conv, now)
        label = f"{left} late" if left.startswith("-") else f"{left} left"
        _kv(t, "due", f"{fmt.local_time(conv.due_at, now, time_format)} ({label.lstrip('-')})",
            {"ok": "green", "warning": "yellow", "breached": "bold red"}.get(state, ""))
        if conv.waiting_since is not None:
            _kv(t, "target", fmt.short_duration(conv.due_at - conv.waiting_since))
    if conv.first_response_at is not None:
        _kv(t, "first response", fmt.local_time(conv.first_response_at, now, time_format))
    if conv.snoozed_until is not None:
        _kv(t, "snoozed until", fmt.local_time(conv.snoozed_until, now, time_format))
    elif conv.snooze_until_reply:
        _kv(t, "snoozed", "until the customer writes")
    return t


def thread_renderable(parts: list[tuple[Text, Text]]) -> Group:
    """Headers flush left, bodies indented two cells (wrapped lines too)."""
    items: list[Any] = []
    for header, body in parts:
        items += [header, Padding(body, (0, 0, 1, 2))]
    return Group(*items)


def thread_parts(store: Store, conv: Conversation, now: datetime,
                 time_format: str) -> list[tuple[Text, Text]]:
    rows = store.message_rows(conv.id)
    replies = {r.id: r for r in store.replies(conv.id)}
    parts: list[tuple[Text, Text]] = []
    if len(rows) > MAX_MESSAGES:
        parts.append((Text(f"… {len(rows) - MAX_MESSAGES} earlier messages not shown",
                           "dim"), Text()))
        rows = rows[-MAX_MESSAGES:]
    for row in rows:
        out = row["direction"] == str(Direction.OUT)
        t = Text()
        t.append(f"{fmt.local_time(from_ms(row['created_at']), now, time_format)}  ", "dim")
        if out:
            t.append("you" if not row["automated"] else "auto-reply", "bold green")
            if row["name"]:
                t.append(f" ({row['name']})", "green")
            reply = replies.get(row["reply_id"]) if row["reply_id"] else None
            state = reply.state if reply else ReplyState.SENT
            t.append(f"  [{state}]", _STATE_STYLE[state])
        else:
            t.append(row["name"] or row["handle"] or "customer", "bold cyan")
            if row["handle"]:
                t.append(f" @{row['handle'].lstrip('@')}", "cyan")
        parts.append((t, Text(row["text"])))
    for reply in replies.values():
        if reply.state != ReplyState.SENT:
            parts.append(_pending(reply, now, time_format))
    return parts


def _pending(reply: Reply, now: datetime, time_format: str) -> tuple[Text, Text]:
    t = Text()
    t.append(f"{fmt.local_time(reply.created_at, now, time_format)}  ", "dim")
    t.append("you", "bold green")
    t.append(f"  [{reply.state}]", _STATE_STYLE[reply.state])
    t.append("  private" if reply.private else "  public", "dim")
    if reply.last_error:
        t.append(f"  {reply.last_error}", "red")
    return t, Text(reply.body, "italic")


def related_text(convs: list[Conversation], now: datetime) -> Text:
    t = Text()
    if not convs:
        return t
    t.append("Other conversations with this customer\n", "bold")
    for c in convs:
        ago = fmt.short_duration(now - c.last_message_at)
        t.append(f"  {fmt.badge(c.platform):<4} {c.kind!s:<7} {c.status!s:<7} {ago:>6} ago  ",
                 "dim")
        t.append(fmt.one_line(c.snippet)[:80])
        t.append("\n")
    return t


class ConversationView(VerticalScroll, can_focus=True):
    """Shows one conversation; ``show(id)`` loads it, ``refresh_data()`` re-reads it."""

    def __init__(self, store: Store, clock: Callable[[], datetime], time_format: str = "%H:%M",
                 *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store
        self.clock = clock
        self.time_format = time_format
        self.conversation: Conversation | None = None
        self._thread_plain = ""

    def compose(self) -> ComposeResult:
        yield Static(Text("No conversation selected.", "dim"), id="conv-card")
        yield Static(Text(), id="conv-triage")
        yield Static(Text(), id="conv-thread")
        yield Static(Text(), id="conv-related")

    def show(self, conv_id: int | None) -> None:
        changed = self.conversation is None or conv_id != self.conversation.id
        self.conversation = self.store.conversation(conv_id) if conv_id is not None else None
        self._paint(full=True)
        if changed:
            self.scroll_end(animate=False, immediate=True)

    def refresh_data(self) -> None:
        if self.conversation is not None:
            self.show(self.conversation.id)

    def tick(self) -> None:
        if self.conversation is not None:
            self._paint(full=False)

    def _paint(self, full: bool) -> None:
        conv = self.conversation
        now = self.clock()
        card = self.query_one("#conv-card", Static)
        if conv is None:
            card.update(Text("No conversation selected.", "dim"))
            for part in ("#conv-triage", "#conv-thread", "#conv-related"):
                self.query_one(part, Static).update(Text())
            self._thread_plain = ""
            return
        self.query_one("#conv-triage", Static).update(triage_text(conv, now, self.time_format))
        if full:
            related = self.store.related_conversations(conv.id)
            earlier = sum(1 for c in related if c.created_at and conv.created_at
                          and c.created_at < conv.created_at)
            card.update(author_card(conv, earlier))
            parts = thread_parts(self.store, conv, now, self.time_format)
            self._thread_plain = "\n\n".join(f"{h.plain}\n{b.plain}" for h, b in parts)
            self.query_one("#conv-thread", Static).update(thread_renderable(parts))
            self.query_one("#conv-related", Static).update(related_text(related, now))

    def plain_text(self) -> str:
        """Everything shown, as plain text (for tests and copying)."""
        parts = []
        for part in ("#conv-card", "#conv-triage", "#conv-related"):
            content = self.query_one(part, Static).visual
            parts.append(str(getattr(content, "plain", content)))
        parts.insert(2, self._thread_plain)
        return "\n".join(parts)
