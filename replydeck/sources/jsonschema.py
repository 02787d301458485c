"""The JSON Lines message schema shared by the ``jsonl`` and ``command`` sources.

One object per line::

    {"id": "42", "platform": "x", "kind": "mention", "direction": "in",
     "author": {"id": "u1", "handle": "maya", "name": "Maya", "followers": 120},
     "text": "Is the app down?", "created_at": "2024-05-01T10:00:00Z",
     "thread": "t-42", "in_reply_to": "41", "url": "https://…", "language": "en"}

``id``, ``platform``, ``kind``, ``author.id``, ``text`` and ``created_at`` are required;
``direction`` defaults to ``in``. Unknown keys are allowed and kept in ``Message.raw``.
Errors name the line and the field, and quote at most a short, escaped piece of the value,
so a problem report can be logged or shown without carrying the stranger's text with it.
"""

from __future__ import annotations

import json
import logging
import re
from collections import deque
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from replydeck.inbox.model import Author, Direction, Kind, Message, Reply
from replydeck.inbox.sanitize import sanitize_line, sanitize_text
from replydeck.sources.base import Limits

log = logging.getLogger(__name__)

#: What a reply may hold on each well-known platform (see PLATFORMS.md). Sources whose
#: messages name their platform (jsonl, command, demo) answer ``limits_for`` from this.
PLATFORM_LIMITS = {
    "x": Limits(max_length=280, counting="x_weighted",
                private_max_length=10000, private_counting="chars"),
    "bluesky": Limits(max_length=300, counting="graphemes",
                      private_max_length=1000, private_counting="graphemes"),
    "mastodon": Limits(max_length=500, counting="chars"),
    "instagram": Limits(max_length=2200, counting="chars", private_max_length=1000,
                        private_counting="utf8_bytes", private_window_hours=24),
    "facebook": Limits(max_length=8000, counting="chars", private_max_length=2000,
                       private_counting="chars", private_window_hours=24),
    "email": Limits(max_length=100_000, counting="chars"),
}

KINDS = tuple(k.value for k in Kind)
DIRECTIONS = tuple(d.value for d in Direction)

# ISO 8601 / RFC 3339 date-time. Parsed by hand: ``datetime.fromisoformat`` on 3.10 rejects
# "Z" and fractions that are not 3 or 6 digits, both of which real exporters write.
_ISO = re.compile(
    r"""^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})
        [Tt ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?
        (?P<z>[Zz]|[+-]\d{2}(?::?\d{2})?)?$""",
    re.VERBOSE,
)


class SchemaError(ValueError):
    """A line that does not follow the schema; ``str()`` is the whole message."""


def describe_value(value: Any, limit: int = 40) -> str:
    """A short, escaped rendering of a found value (``repr`` escapes control characters)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        shown = value if len(value) <= limit else value[:limit] + "…"
        return repr(shown)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    return type(value).__name__


def parse_datetime(value: str) -> datetime | None:
    """An aware UTC datetime, or None when ``value`` is not ISO 8601 with a zone."""
    m = _ISO.match(value.strip())
    if not m or not m.group("z"):
        return None
    frac = (m.group("f") or "0")[:6].ljust(6, "0")
    zone = m.group("z")
    if zone in ("Z", "z"):
        tz = timezone.utc
    else:
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-offset if zone[0] == "-" else offset)
    try:
        return datetime(
            int(m.group("y")), int(m.group("mo")), int(m.group("d")),
            int(m.group("h")), int(m.group("mi")), int(m.group("s") or 0), int(frac),
            tzinfo=tz,
        ).astimezone(timezone.utc)
    except ValueError:
        return None


class _Fields:
    """Typed access to one JSON object; errors carry the line and the field path."""

    def __init__(self, obj: dict[str, Any], prefix: str, path: str = "") -> None:
        self.obj = obj
        self.prefix = prefix
        self.path = path

    def fail(self, name: str, problem: str) -> SchemaError:
        return SchemaError(f"{self.prefix}{self.path}{name}: {problem}")

    def string(self, name: str, *, required: bool, nonempty: bool = True) -> str | None:
        if name not in self.obj or self.obj[name] is None:
            if required:
                raise self.fail(name, "missing; expected a string")
            return None
        value = self.obj[name]
        if not isinstance(value, str):
            raise self.fail(name, f"expected a string, found {describe_value(value)}")
        if nonempty and not value.strip():
            raise self.fail(name, "expected a non-empty string, found ''")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str | None) -> str:
        value = self.obj.get(name)
        if value is None:
            if default is None:
                raise self.fail(name, f"missing; expected one of {', '.join(choices)}")
            return default
        if not isinstance(value, str) or value not in choices:
            raise self.fail(name, f"expected one of {', '.join(choices)}, "
                                  f"found {describe_value(value)}")
        return value


def parse_json_line(line: str, lineno: int) -> Any:
    """The decoded JSON of one line, or a :class:`SchemaError` naming where it broke."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"line {lineno}: not valid JSON ({exc.msg} at column {exc.colno})") \
            from None
    except RecursionError:
        raise SchemaError(f"line {lineno}: not valid JSON (nested too deeply)") from None


def parse_message(obj: Any, source_name: str, *, line: int | None = None) -> Message:
    """A sanitised :class:`Message` from one schema object, or a :class:`SchemaError`."""
    prefix = f"line {line}: " if line is not None else ""
    if not isinstance(obj, dict):
        raise SchemaError(f"{prefix}expected a JSON object, found {describe_value(obj)}")
    f = _Fields(obj, prefix)

    remote_id = sanitize_line(f.string("id", required=True) or "")
    if not remote_id:
        raise f.fail("id", f"expected a printable id, found {describe_value(obj['id'])}")
    # Lower case so "X" and "x" are one platform for limits, filters and colours.
    platform = sanitize_line(f.string("platform", required=True) or "").lower()
    if not platform:
        raise f.fail("platform", f"expected a platform name, found {describe_value(obj['platform'])}")
    kind = Kind(f.choice("kind", KINDS, None))
    direction = Direction(f.choice("direction", DIRECTIONS, Direction.IN.value))

    author_obj = obj.get("author")
    if not isinstance(author_obj, dict):
        if author_obj is None:
            raise f.fail("author", "missing; expected an object with id, handle, name")
        raise f.fail("author", f"expected an object, found {describe_value(author_obj)}")
    a = _Fields(author_obj, prefix, "author.")
    author_id = a.string("id", required=True)
    followers = author_obj.get("followers")
    if followers is not None and (
        isinstance(followers, bool) or not isinstance(followers, int) or followers < 0
    ):
        raise a.fail("followers", f"expected a whole number ≥ 0, found {describe_value(followers)}")
    author = Author(
        id=sanitize_line(author_id or ""),
        handle=sanitize_line(a.string("handle", required=False, nonempty=False) or ""),
        name=sanitize_line(a.string("name", required=False, nonempty=False) or ""),
        followers=followers,
        url=_optional_line(a.string("url", required=False)),
    )

    text = f.string("text", required=True, nonempty=False) or ""
    created_raw = f.string("created_at", required=True)
    created_at = parse_datetime(created_raw or "")
    if created_at is None:
        raise f.fail("created_at", "expected ISO 8601 with a time zone, "
                                   f"found {describe_value(created_raw)}")

    return Message(
        source=source_name,
        remote_id=remote_id,
        platform=platform,
        kind=kind,
        author=author,
        text=sanitize_text(text),
        created_at=created_at,
        direction=direction,
        thread_key=_optional_line(f.string("thread", required=False)),
        in_reply_to=_optional_line(f.string("in_reply_to", required=False)),
        url=_optional_line(f.string("url", required=False)),
        language=_optional_line(f.string("language", required=False)),
        raw=obj,
    )


def cursor_line(obj: Any, *, line: int | None = None) -> str | None:
    """The cursor of a ``{"cursor": "..."}`` line, or None for any other object."""
    if isinstance(obj, dict) and set(obj) == {"cursor"}:
        value = obj["cursor"]
        if not isinstance(value, str):
            prefix = f"line {line}: " if line is not None else ""
            raise SchemaError(f"{prefix}cursor: expected a string, "
                              f"found {describe_value(value)}")
        if "\x00" in value:
            # It goes into an environment variable, which cannot hold one.
            prefix = f"line {line}: " if line is not None else ""
            raise SchemaError(f"{prefix}cursor: contains a NUL character")
        return value
    return None


def _optional_line(value: str | None) -> str | None:
    if value is None:
        return None
    return sanitize_line(value) or None


def reply_record(reply: Reply, now: datetime) -> dict[str, Any]:
    """The JSON object a reply is handed over as (reply file line, reply program stdin)."""
    to = reply.reply_to
    return {
        "reply_id": reply.id,
        "idempotency_key": reply.idempotency_key,
        "thread": reply.thread_key or (to.thread_key if to else None),
        "in_reply_to": to.remote_id if to else None,
        "platform": to.platform if to else None,
        "private": reply.private,
        "text": reply.body,
        "created_at": now.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
    }


class Problems:
    """The recent malformed lines of one source, for ``doctor``, the TUI and the log.

    Entries are the :class:`SchemaError` messages, which quote at most a short escaped
    piece of the line, never the line itself.
    """

    def __init__(self, source_name: str, keep: int = 200) -> None:
        self.source_name = source_name
        self.entries: deque[str] = deque(maxlen=keep)
        self.total = 0

    #: Problems logged one by one; after that only every thousandth, so a file of
    #: garbage cannot flood the log.
    LOG_EACH = 100

    def add(self, problem: str) -> None:
        self.total += 1
        self.entries.append(problem)
        if self.total <= self.LOG_EACH or self.total % 1000 == 0:
            log.warning("source %s: skipped %s (%d so far)", self.source_name, problem,
                        self.total)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)
