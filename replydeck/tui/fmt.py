"""Pure formatting for the screens: durations, counts, badges, cell-width fitting.

Nothing here touches Textual, so it is cheap to test and to call per painted row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.cells import cell_len, set_cell_size

from replydeck.inbox.model import Conversation, Urgency

PLATFORM_BADGES = {
    "x": "X", "instagram": "IG", "facebook": "FB", "mastodon": "Mast", "bluesky": "Bsky",
    "matrix": "Mtrx", "email": "mail", "telegram": "TG", "line": "LINE", "reddit": "Rddt",
    "slack": "Slck", "discord": "Disc", "github": "GH", "demo": "demo",
}
PLATFORM_NAMES = {
    "x": "X", "instagram": "Instagram", "facebook": "Facebook", "mastodon": "Mastodon",
    "bluesky": "Bluesky", "matrix": "Matrix", "email": "mail", "telegram": "Telegram",
    "line": "LINE", "reddit": "Reddit", "slack": "Slack", "discord": "Discord",
    "github": "GitHub",
}
URGENCY_WORDS = {
    Urgency.CRISIS: "CRISIS", Urgency.URGENT: "URGENT", Urgency.HIGH: "HIGH",
    Urgency.NORMAL: "normal", Urgency.LOW: "low",
}
#: Followers from which the count is worth showing beside the name.
LARGE_FOLLOWING = 10_000


def badge(platform: str) -> str:
    return PLATFORM_BADGES.get(platform, platform[:4])


def platform_name(platform: str) -> str:
    return PLATFORM_NAMES.get(platform, platform)


def short_duration(delta: timedelta) -> str:
    """``45s``, ``4m``, ``1h12m``, ``2d``, ``2d3h``: short enough for a column."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    if days < 7 and hours:
        return f"{days}d{hours}h"
    return f"{days}d"


def count(n: int | None) -> str:
    """250000 -> ``250k``; 1_200_000 -> ``1.2M``."""
    if n is None:
        return ""
    if n >= 1_000_000:
        text = f"{n / 1_000_000:.1f}".rstrip("0").rstrip(".")
        return f"{text}M"
    if n >= 10_000:
        return f"{n // 1000}k"
    if n >= 1000:
        text = f"{n / 1000:.1f}".rstrip("0").rstrip(".")
        return f"{text}k"
    return str(n)


def wait_text(conv: Conversation, now: datetime) -> str:
    """How long the customer has waited for us; empty when nothing is waiting."""
    if conv.waiting_since is None:
        return ""
    return short_duration(now - conv.waiting_since)


def due_state(conv: Conversation, now: datetime) -> str:
    """``none``, ``ok``, ``warning`` or ``breached`` for the response target."""
    if conv.due_at is None:
        return "none"
    if conv.breached or conv.due_at <= now:
        return "breached"
    if conv.warn_at is not None and conv.warn_at <= now:
        return "warning"
    return "ok"


def due_text(conv: Conversation, now: datetime) -> str:
    """Time left to the target (``25m``), or how late it is (``-1h05m``)."""
    if conv.due_at is None:
        return ""
    left = conv.due_at - now
    if left.total_seconds() < 0:
        return "-" + short_duration(-left)
    return short_duration(left)


def author_text(conv: Conversation) -> tuple[str, str]:
    """(name and handle, follower suffix) for the list's author column."""
    a = conv.author
    handle = a.handle.lstrip("@")
    if a.name and handle and a.name != handle:
        main = f"{a.name} @{handle}" if conv.platform != "email" else f"{a.name} <{handle}>"
    else:
        main = a.name or (f"@{handle}" if handle else a.id or "?")
    suffix = count(a.followers) if a.followers and a.followers >= LARGE_FOLLOWING else ""
    if a.verified:
        suffix = ("✓ " + suffix).strip()
    return main, suffix


def fit(text: str, width: int) -> str:
    """Exactly ``width`` cells: cropped (with an ellipsis) or padded. CJK-safe."""
    if width <= 0:
        return ""
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else set_cell_size(text, 1)
    return set_cell_size(text, width)


def fit_right(text: str, width: int) -> str:
    """Right-aligned in ``width`` cells."""
    n = cell_len(text)
    if n >= width:
        return fit(text, width)
    return " " * (width - n) + text


def one_line(text: str) -> str:
    """The first non-empty line, with tabs made spaces (snippets are one row)."""
    for line in text.splitlines():
        if line.strip():
            return " ".join(line.split())
    return ""


def local_time(dt: datetime | None, now: datetime, time_format: str = "%H:%M") -> str:
    """A time in the user's zone: the time today, else the date too."""
    if dt is None:
        return ""
    local = dt.astimezone()
    today = now.astimezone().date()
    if local.date() == today:
        return local.strftime(time_format)
    if local.year == today.year:
        return local.strftime("%b %d ") + local.strftime(time_format)
    return local.strftime("%Y-%m-%d ") + local.strftime(time_format)
