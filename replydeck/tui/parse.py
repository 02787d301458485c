"""What a person types into the small prompts: snooze times and filter expressions."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, time, timedelta

from replydeck.inbox.model import Kind, Status, Urgency
from replydeck.inbox.store import InboxFilter

SNOOZE_HELP = "2h, 30m, 1d, tomorrow, tomorrow 9:00, 17:30, mon 9:00, 2026-12-01 09:00, or reply"
FILTER_HELP = ("platform:x,instagram kind:dm status:open tag:billing assignee:me|none "
               "urgency:high unread breached needs-reply (empty clears)")

_DURATION = re.compile(r"^(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?$")
_CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_UNTIL_REPLY = ("", "reply", "until reply", "customer", "until they write", "r")
DEFAULT_MORNING = time(9, 0)


def _clock(text: str) -> time:
    m = _CLOCK.match(text.strip().lower())
    if not m:
        raise ValueError(f"not a time of day: {text!r} (write 9:00 or 17:30)")
    hour, minute = int(m.group(1)), int(m.group(2) or 0)
    if m.group(3) == "pm" and hour < 12:
        hour += 12
    elif m.group(3) == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        raise ValueError(f"not a time of day: {text!r}")
    return time(hour, minute)


def parse_snooze(text: str, now: datetime) -> datetime | None:
    """When to wake, as an aware time; None means "until the customer writes"."""
    raw = " ".join(text.strip().lower().split())
    if raw in _UNTIL_REPLY:
        return None
    m = _DURATION.match(raw)
    if m and any(m.groups()):
        d, h, mi = (int(g or 0) for g in m.groups())
        delta = timedelta(days=d, hours=h, minutes=mi)
        if delta <= timedelta(0):
            raise ValueError("snooze for longer than zero")
        return now + delta
    local_now = now.astimezone()
    day_word, _, rest = raw.partition(" ")
    if day_word in ("tomorrow", "tmr"):
        at = _clock(rest) if rest else DEFAULT_MORNING
        day = local_now.date() + timedelta(days=1)
        return datetime.combine(day, at, tzinfo=local_now.tzinfo)
    if day_word[:3] in _WEEKDAYS and day_word.isalpha():
        at = _clock(rest) if rest else DEFAULT_MORNING
        ahead = (_WEEKDAYS.index(day_word[:3]) - local_now.weekday()) % 7 or 7
        day = local_now.date() + timedelta(days=ahead)
        return datetime.combine(day, at, tzinfo=local_now.tzinfo)
    try:
        parsed = datetime.fromisoformat(raw.replace(" ", "T", 1)) if "-" in raw else None
    except ValueError:
        parsed = None
    if parsed is not None:
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=local_now.tzinfo)
        if parsed <= now:
            raise ValueError("that time has passed")
        return parsed
    try:
        at = _clock(raw)
    except ValueError:
        raise ValueError(f"cannot read {text.strip()!r} as a time; try {SNOOZE_HELP}") from None
    when = datetime.combine(local_now.date(), at, tzinfo=local_now.tzinfo)
    if when <= local_now:
        when += timedelta(days=1)
    return when


def _values(text: str) -> list[str]:
    return [v for v in text.split(",") if v]


def parse_filter(text: str, base: InboxFilter, agent: str) -> InboxFilter:
    """Narrow ``base`` by ``text`` (see :data:`FILTER_HELP`); empty text returns ``base``."""
    f = base
    for token in text.split():
        key, colon, value = token.partition(":")
        key = key.lower()
        if not colon:
            flags = {"unread": "unread", "breached": "breached", "breaching": "breached",
                     "needs-reply": "needs_reply", "needs_reply": "needs_reply"}
            if key not in flags:
                raise ValueError(f"unknown filter {token!r}; use {FILTER_HELP}")
            f = replace(f, **{flags[key]: True})
            continue
        values = _values(value.lower())
        if not values:
            raise ValueError(f"{key}: needs a value")
        if key in ("platform", "platforms", "p"):
            f = replace(f, platforms=tuple(values))
        elif key in ("kind", "kinds", "k"):
            try:
                f = replace(f, kinds=tuple(Kind(v) for v in values))
            except ValueError:
                raise ValueError(f"kind: expected {', '.join(str(k) for k in Kind)}") from None
        elif key in ("status", "statuses", "s"):
            try:
                f = replace(f, statuses=tuple(Status(v) for v in values))
            except ValueError:
                raise ValueError(f"status: expected {', '.join(str(s) for s in Status)}"
                                 ) from None
        elif key in ("tag", "tags", "t"):
            f = replace(f, tags=tuple(values))
        elif key in ("assignee", "assigned", "a"):
            who = value
            f = replace(f, assignee=agent if who == "me" else "" if who == "none" else who)
        elif key in ("urgency", "u"):
            try:
                f = replace(f, min_urgency=Urgency(values[0]))
            except ValueError:
                raise ValueError(f"urgency: expected {', '.join(str(u) for u in Urgency)}"
                                 ) from None
        else:
            raise ValueError(f"unknown filter {key!r}; use {FILTER_HELP}")
    return f
