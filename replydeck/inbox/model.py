"""The nouns of replydeck: messages, authors, conversations, replies, events.

Plain dataclasses with no I/O. Every time is an aware UTC ``datetime``; the store keeps
them as integer epoch milliseconds and the screens convert to the user's zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

UTC = timezone.utc

#: Platforms replydeck knows by name. Any other string is allowed (jsonl/command sources).
KNOWN_PLATFORMS = (
    "x",
    "facebook",
    "instagram",
    "mastodon",
    "bluesky",
    "matrix",
    "email",
    "telegram",
    "line",
    "reddit",
    "slack",
    "discord",
    "github",
    "demo",
)


class StrEnum(str, Enum):
    """``enum.StrEnum`` exists only from 3.11; this behaves the same on 3.10."""

    def __str__(self) -> str:
        return str(self.value)


class Kind(StrEnum):
    MENTION = "mention"
    COMMENT = "comment"
    DM = "dm"
    REPLY = "reply"
    EMAIL = "email"
    REVIEW = "review"

    @property
    def is_private(self) -> bool:
        return self in (Kind.DM, Kind.EMAIL)


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class Status(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    DONE = "done"


class Urgency(StrEnum):
    CRISIS = "crisis"
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 is the most urgent; the inbox sorts ascending on this."""
        return _URGENCY_RANK[self]

    @classmethod
    def from_rank(cls, rank: int) -> Urgency:
        return _URGENCY_BY_RANK[rank]


_URGENCY_RANK = {u: i for i, u in enumerate(Urgency)}
_URGENCY_BY_RANK = {i: u for u, i in _URGENCY_RANK.items()}


class ReplyState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    #: We may have sent it but cannot tell: a person must check before it is sent again.
    UNCONFIRMED = "unconfirmed"


class EventType(StrEnum):
    RECEIVED = "received"
    REPLIED = "replied"
    AUTO_REPLIED = "auto_replied"
    REPLY_QUEUED = "reply_queued"
    REPLY_FAILED = "reply_failed"
    REPLY_RETRIED = "reply_retried"
    REPLY_UNCONFIRMED = "reply_unconfirmed"
    ASSIGNED = "assigned"
    TAGGED = "tagged"
    UNTAGGED = "untagged"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    SNOOZED = "snoozed"
    WOKEN = "woken"
    URGENCY_CHANGED = "urgency_changed"
    BREACHED = "breached"
    WARNED = "warned"


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError("naive datetime: replydeck stores only aware UTC times")
    return int(dt.timestamp() * 1000)


def from_ms(ms: int | None) -> datetime | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True)
class Author:
    id: str
    handle: str = ""
    name: str = ""
    followers: int | None = None
    url: str | None = None
    verified: bool = False

    @property
    def label(self) -> str:
        """``Name (@handle)`` or whichever part is known."""
        if self.name and self.handle and self.name != self.handle:
            return f"{self.name} (@{self.handle.lstrip('@')})"
        return self.name or (f"@{self.handle.lstrip('@')}" if self.handle else self.id)


@dataclass
class Message:
    """One inbound or outbound item as a source reports it.

    ``thread_key`` groups messages into a conversation within one source; when a source
    leaves it empty the message starts (or is) its own conversation, unless
    ``in_reply_to`` names a message we already have.
    """

    source: str
    remote_id: str
    platform: str
    kind: Kind
    author: Author
    text: str
    created_at: datetime
    direction: Direction = Direction.IN
    thread_key: str | None = None
    in_reply_to: str | None = None
    url: str | None = None
    language: str | None = None
    #: Likes, reposts, replies as the platform reports them (for triage).
    engagement: dict[str, int] = field(default_factory=dict)
    #: The platform's own payload, kept for adapters (e.g. Bluesky cid/root refs).
    raw: dict[str, Any] = field(default_factory=dict)
    #: Set by the store for messages that an automation sent.
    automated: bool = False

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ValueError(f"message {self.remote_id}: created_at has no time zone")
        self.created_at = self.created_at.astimezone(UTC)


@dataclass
class Conversation:
    id: int
    source: str
    thread_key: str
    platform: str
    kind: Kind
    status: Status
    urgency: Urgency
    author: Author
    snippet: str
    last_message_at: datetime
    message_count: int
    assignee: str | None = None
    tags: list[str] = field(default_factory=list)
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)
    waiting_since: datetime | None = None
    first_response_at: datetime | None = None
    due_at: datetime | None = None
    warn_at: datetime | None = None
    breached: bool = False
    snoozed_until: datetime | None = None
    snooze_until_reply: bool = False
    unread: bool = True
    created_at: datetime | None = None
    url: str | None = None
    contact_id: int | None = None
    #: Position in inbox order, for keyset pagination: (urgency rank, due, waiting, id).
    sort_key: tuple[int, int, int, int] | None = None
    views: list[str] = field(default_factory=list)

    @property
    def needs_reply(self) -> bool:
        return self.waiting_since is not None and self.status != Status.DONE


@dataclass
class Reply:
    """A reply we mean to send. Stored (state ``queued``) before anything goes out."""

    id: int
    conversation_id: int
    source: str
    body: str
    private: bool
    idempotency_key: str
    state: ReplyState = ReplyState.QUEUED
    attempts: int = 0
    last_error: str | None = None
    remote_id: str | None = None
    created_at: datetime | None = None
    sent_at: datetime | None = None
    agent: str | None = None
    automated: bool = False
    #: Extra platform options chosen in the composer (e.g. Meta ``tag=HUMAN_AGENT``).
    options: dict[str, Any] = field(default_factory=dict)
    #: The message being answered (the latest customer message), filled by the outbox.
    reply_to: Message | None = None
    #: The conversation's thread key, filled by the outbox.
    thread_key: str | None = None


@dataclass
class Event:
    conversation_id: int
    type: EventType
    at: datetime
    actor: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
