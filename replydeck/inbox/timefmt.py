"""Short human durations and the time words people type ("2h", "tomorrow 9:00").

Shared by the command line and the TUI so a timer reads the same everywhere.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, tzinfo

from replydeck.inbox.model import UTC

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(?:(\d+)\s*([smhdw]))+\s*$", re.IGNORECASE)
_PART = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$", re.IGNORECASE)


def short_duration(seconds: float) -> str:
    """``45s``, ``4m``, ``1h12m``, ``2d``, ``3d4h``: at most two units, never rounding up."""
    s = int(abs(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h}h{m:02d}m" if m else f"{h}h"
    d, h = divmod(s // 3600, 24)
    return f"{d}d{h}h" if h and d < 10 else f"{d}d"


def time_left(due: datetime | None, now: datetime) -> str:
    """``12m left`` / ``3m late`` / ``""`` when there is no target."""
    if due is None:
        return ""
    delta = (due - now).total_seconds()
    return f"{short_duration(delta)} left" if delta >= 0 else f"{short_duration(delta)} late"


def parse_duration(text: str) -> timedelta | None:
    if not _DURATION.match(text):
        return None
    return timedelta(seconds=sum(int(n) * _UNITS[u.lower()] for n, u in _PART.findall(text)))


def parse_when(text: str, now: datetime, tz: tzinfo | None = None) -> datetime:
    """A future moment from what a person types, in UTC.

    Accepts a duration (``2h``, ``1d12h``, ``30m``), ``tomorrow`` / a weekday name with an
    optional clock time (``tomorrow 9:00``, ``mon 14:30``, ``friday 5pm``), a clock time
    alone (today, or tomorrow if it has passed), or an ISO 8601 date/time (local zone when
    it has none). Raises ValueError with a message naming what was not understood.
    """
    tz = tz or now.astimezone().tzinfo or UTC
    raw = text.strip()
    if not raw:
        raise ValueError("expected a time such as 2h, tomorrow 9:00, friday or 2026-12-01 09:00")
    duration = parse_duration(raw)
    if duration is not None:
        if duration <= timedelta(0):
            raise ValueError(f"{raw!r} is not in the future")
        return now + duration
    local_now = now.astimezone(tz)
    words = raw.lower().split()
    day: datetime | None = None
    if words[0] in ("today", "tomorrow"):
        day = local_now + timedelta(days=0 if words[0] == "today" else 1)
        words = words[1:]
    else:
        for i, name in enumerate(_WEEKDAYS):
            if len(words[0]) >= 3 and name.startswith(words[0]):
                ahead = (i - local_now.weekday()) % 7 or 7
                day = local_now + timedelta(days=ahead)
                words = words[1:]
                break
    if day is not None or (words and _CLOCK.match(" ".join(words))):
        clock = time(9, 0) if not words else _clock(" ".join(words), raw)
        base = day or local_now
        result = datetime.combine(base.date(), clock, tzinfo=tz)
        if day is None and result <= local_now:
            result += timedelta(days=1)
        return result.astimezone(UTC)
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"cannot read {raw!r} as a time; try 2h, tomorrow 9:00, friday, "
                         "or 2026-12-01 09:00") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    if parsed <= now:
        raise ValueError(f"{raw!r} is in the past")
    return parsed.astimezone(UTC)


def _clock(text: str, raw: str) -> time:
    m = _CLOCK.match(text.strip())
    if not m:
        raise ValueError(f"cannot read the time of day in {raw!r}; try 9:00 or 5pm")
    hour, minute = int(m.group(1)), int(m.group(2) or 0)
    if m.group(3):
        if hour > 12:
            raise ValueError(f"{raw!r}: {hour} is not an am/pm hour")
        hour = hour % 12 + (12 if m.group(3).lower() == "pm" else 0)
    if hour > 23 or minute > 59:
        raise ValueError(f"{raw!r} is not a time of day")
    return time(hour, minute)
