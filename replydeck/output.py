"""What `replydeck list` / `show` print: a stable JSON schema and plain-text tables.

All text here was sanitised at ingest; it is printed as plain text (never through a
markup parser), and columns are measured in terminal cells so CJK and emoji align.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.cells import cell_len

from replydeck.inbox.model import Conversation, Event, Message, Reply
from replydeck.inbox.sanitize import sanitize_line, sanitize_text
from replydeck.inbox.timefmt import short_duration, time_left

#: Bumped only when a field is removed or changes meaning; new fields may appear anytime.
JSON_SCHEMA_VERSION = 1


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def conversation_json(conv: Conversation,
                      undelivered: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": conv.id,
        "source": conv.source,
        "platform": conv.platform,
        "kind": str(conv.kind),
        "status": str(conv.status),
        "urgency": str(conv.urgency),
        "score": round(conv.score, 2),
        "reasons": conv.reasons,
        "tags": conv.tags,
        "author": {
            "id": conv.author.id,
            "handle": conv.author.handle,
            "name": conv.author.name,
            "followers": conv.author.followers,
            "url": conv.author.url,
        },
        "snippet": conv.snippet,
        "waiting_since": iso(conv.waiting_since),
        "due_at": iso(conv.due_at),
        "breached": conv.breached,
        "first_response_at": iso(conv.first_response_at),
        "last_message_at": iso(conv.last_message_at),
        "snoozed_until": iso(conv.snoozed_until),
        "assignee": conv.assignee,
        "message_count": conv.message_count,
        "unread": conv.unread,
        "url": conv.url,
        #: Our replies not yet delivered, by state: {"queued": 1, "unconfirmed": 1, ...}.
        "undelivered": undelivered or {},
    }


def message_json(msg: Message) -> dict[str, Any]:
    return {
        "remote_id": msg.remote_id,
        "direction": str(msg.direction),
        "kind": str(msg.kind),
        "author": {"id": msg.author.id, "handle": msg.author.handle, "name": msg.author.name,
                   "followers": msg.author.followers},
        "text": msg.text,
        "created_at": iso(msg.created_at),
        "url": msg.url,
        "in_reply_to": msg.in_reply_to,
        "automated": msg.automated,
    }


def reply_json(reply: Reply) -> dict[str, Any]:
    return {
        "id": reply.id,
        "conversation_id": reply.conversation_id,
        "state": str(reply.state),
        "private": reply.private,
        "body": reply.body,
        "attempts": reply.attempts,
        "last_error": reply.last_error,
        "remote_id": reply.remote_id,
        "created_at": iso(reply.created_at),
        "sent_at": iso(reply.sent_at),
        "agent": reply.agent,
        "automated": reply.automated,
    }


def event_json(event: Event) -> dict[str, Any]:
    return {"type": str(event.type), "at": iso(event.at), "actor": event.actor,
            "data": event.data}


def _fit(text: str, width: int) -> str:
    """Cut or pad ``text`` to exactly ``width`` terminal cells."""
    text = sanitize_line(text)
    if cell_len(text) <= width:
        return text + " " * (width - cell_len(text))
    out, used = [], 0
    for ch in text:
        w = cell_len(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…" + " " * (width - used - 1)


def _followers(n: int | None) -> str:
    if n is None or n < 1000:
        return ""
    if n < 1_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.1f}M"


COLUMNS = (("ID", 6), ("URGENCY", 7), ("PLATFORM", 9), ("KIND", 7), ("AUTHOR", 22),
           ("WAIT", 6), ("DUE", 10), ("STATUS", 8), ("REPLY", 11))
#: What the REPLY column says about our undelivered replies, most pressing first.
_REPLY_STATES = ("unconfirmed", "failed", "sending", "queued")


def _reply_cell(states: dict[str, int] | None) -> str:
    for state in _REPLY_STATES:
        if states and states.get(state):
            return state if states[state] == 1 else f"{states[state]} {state}"
    return ""


def list_table(convs: list[Conversation], now: datetime, width: int = 120,
               undelivered: dict[int, dict[str, int]] | None = None) -> str:
    fixed = sum(w + 1 for _, w in COLUMNS)
    snippet_w = max(10, width - fixed)
    header = " ".join(_fit(name, w) for name, w in COLUMNS) + " " + "MESSAGE"
    lines = [header.rstrip()]
    for c in convs:
        author = c.author.name or c.author.handle or c.author.id
        if c.author.handle and c.author.name:
            author = f"{c.author.name} @{c.author.handle.lstrip('@')}"
        reach = _followers(c.author.followers)
        if reach:
            author = f"{author} ({reach})"
        wait = short_duration((now - c.waiting_since).total_seconds()) if c.waiting_since else "-"
        due = time_left(c.due_at, now) if c.waiting_since else ""
        if c.breached and c.due_at:
            due = time_left(c.due_at, now)
        cells = (str(c.id), str(c.urgency).upper() if c.urgency.rank < 3 else str(c.urgency),
                 c.platform, str(c.kind), author, wait, due or "-", str(c.status),
                 _reply_cell((undelivered or {}).get(c.id)))
        row = " ".join(_fit(v, w) for v, (_, w) in zip(cells, COLUMNS, strict=True))
        lines.append((row + " " + _fit(c.snippet, snippet_w)).rstrip())
    return "\n".join(lines)


def show_text(conv: Conversation, messages: list[Message], replies: list[Reply],
              now: datetime, related: list[Conversation] | None = None) -> str:
    a = conv.author
    lines = [
        f"#{conv.id}  {conv.platform} {conv.kind}  [{conv.status}]  urgency: {conv.urgency}"
        f" (score {conv.score:.0f})",
        f"customer: {sanitize_line(a.label)}"
        + (f", {a.followers} followers" if a.followers is not None else "")
        + (f"  {a.url}" if a.url else ""),
    ]
    if conv.tags:
        lines.append("tags: " + ", ".join(conv.tags))
    if conv.assignee:
        lines.append(f"assignee: {sanitize_line(conv.assignee)}")
    if conv.reasons:
        lines.append("why: " + "; ".join(sanitize_line(r) for r in conv.reasons))
    if conv.waiting_since:
        lines.append(
            f"waiting: {short_duration((now - conv.waiting_since).total_seconds())} "
            f"(since {iso(conv.waiting_since)})"
            + (f"; due {iso(conv.due_at)} ({time_left(conv.due_at, now)})" if conv.due_at else "")
            + ("; BREACHED" if conv.breached else ""))
    else:
        lines.append("waiting: nobody is waiting for a reply")
    if conv.first_response_at:
        lines.append(f"first response: {iso(conv.first_response_at)}")
    if conv.snoozed_until:
        lines.append(f"snoozed until {iso(conv.snoozed_until)}")
    lines.append("")
    for m in messages:
        who = "you" if str(m.direction) == "out" else sanitize_line(m.author.label)
        mark = " (automated)" if m.automated else ""
        lines.append(f"--- {iso(m.created_at)}  {who}{mark}"
                     + (f"  {m.url}" if m.url else ""))
        lines.append(sanitize_text(m.text))
    pending = [r for r in replies if str(r.state) != "sent"]
    if pending:
        lines.append("")
        lines.append("replies not yet delivered:")
        for r in pending:
            lines.append(f"  reply {r.id} [{r.state}] {'private' if r.private else 'public'}"
                         + (f": {sanitize_line(r.last_error)}" if r.last_error else ""))
            lines.append("    " + sanitize_line(r.body)[:200])
    if related:
        lines.append("")
        lines.append("the same customer elsewhere:")
        for c in related:
            lines.append(f"  #{c.id} {c.platform} {c.kind} [{c.status}] {sanitize_line(c.snippet)[:80]}")
    return "\n".join(lines)
