"""The Source protocol every platform adapter speaks (see DESIGN.md).

A source fetches new items (``fetch(cursor) -> Batch``) and sends replies
(``send(reply) -> Receipt``). It owns its HTTP details and maps every failure to one of
:class:`TransientError` (retry later, maybe at a known time) or :class:`PermanentError`
(show the person, keep the draft). The poller and outbox know nothing else about it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from replydeck.inbox.model import Message, Reply

#: A source's resume point, opaque to everyone but the source. JSON-serialisable string.
Cursor = str


class SourceError(Exception):
    """Base of every error a source raises. Messages never contain secrets."""


class TransientError(SourceError):
    """Try again later. ``retry_at`` (UTC) is set when the platform said when.

    ``maybe_sent`` matters only for ``send``: set it when the request may have reached the
    platform (a read timeout, a dropped connection after the body went out, a 5xx from a
    gateway). The outbox then reconciles or holds the reply as unconfirmed instead of
    sending it blindly again on a platform without idempotency keys.
    """

    def __init__(self, message: str, *, retry_at: datetime | None = None,
                 maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.retry_at = retry_at
        self.maybe_sent = maybe_sent


class RateLimited(TransientError):
    """The platform asked us to slow down; ``retry_at`` is when it allows us again."""


class PermanentError(SourceError):
    """Retrying will not help (bad token, reply window closed, text too long, ...)."""


class AuthError(PermanentError):
    """The credentials are wrong, expired beyond refresh, or miss a scope."""


@dataclass(frozen=True)
class Limits:
    """What a platform allows in a reply; the composer and the outbox both check this.

    ``counting`` names the rule in :mod:`replydeck.inbox.textlen`: ``chars``,
    ``x_weighted``, ``graphemes`` or ``utf8_bytes``.
    """

    max_length: int = 5000
    counting: str = "chars"
    private_max_length: int | None = None
    private_counting: str | None = None
    supports_public: bool = True
    supports_private: bool = True
    #: Hours after the customer's last message in which a private reply is allowed (Meta: 24).
    private_window_hours: int | None = None

    def for_reply(self, private: bool) -> tuple[int, str]:
        if private and self.private_max_length is not None:
            return self.private_max_length, self.private_counting or self.counting
        return self.max_length, self.counting


@dataclass
class Batch:
    """What one fetch returns: new items, the cursor to resume from, and pacing hints."""

    items: list[Message]
    cursor: Cursor | None
    #: Earliest time the source wants to be polled again (rate limits, long polls).
    not_before: datetime | None = None
    #: More items are waiting right now (fetch again without the usual interval).
    more: bool = False


@dataclass(frozen=True)
class Receipt:
    remote_id: str
    url: str | None = None
    sent_at: datetime | None = None
    #: The outbound message as the platform shows it, stored into the thread.
    message: Message | None = None


@dataclass(frozen=True)
class CheckResult:
    """One line of ``replydeck doctor`` for a source."""

    ok: bool
    summary: str
    details: list[str] = field(default_factory=list)


@runtime_checkable
class Source(Protocol):
    name: str
    platform: str
    limits: Limits

    async def fetch(self, cursor: Cursor | None) -> Batch: ...

    async def send(self, reply: Reply) -> Receipt: ...


class BaseSource(ABC):
    """Shared defaults for concrete sources. Subclasses set ``type_name`` and ``platform``.

    Optional hooks beyond the protocol:

    * ``check()``: reach the platform and verify auth and scopes, for ``replydeck doctor``.
    * ``find_sent(reply)``: after a crash mid-send on a platform without idempotency keys,
      look at our own recent posts and return the receipt if this reply went out, else
      ``None``. Sources that cannot tell leave ``can_reconcile`` False, and the outbox then
      holds the reply as ``unconfirmed`` instead of sending it again.
    * ``idempotent_send``: True when ``send`` with the same ``reply.idempotency_key`` can be
      repeated safely (Mastodon Idempotency-Key, Matrix txnId, Bluesky rkey, ...).
    """

    type_name: ClassVar[str] = ""
    platform: str = ""
    limits: Limits = Limits()
    idempotent_send: bool = False
    can_reconcile: bool = False

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    @abstractmethod
    def from_config(cls, table: Any) -> BaseSource:
        """Build the source from its ``[[sources]]`` table (a ``config.SourceTable``)."""

    @abstractmethod
    async def fetch(self, cursor: Cursor | None) -> Batch: ...

    @abstractmethod
    async def send(self, reply: Reply) -> Receipt: ...

    async def check(self) -> CheckResult:
        return CheckResult(True, "configured (this source has no online check)")

    async def find_sent(self, reply: Reply) -> Receipt | None:
        return None

    async def close(self) -> None:  # noqa: B027 - most sources hold nothing to release
        """Release connections. Called once when the poller stops."""


def describe_json(data: Any, limit: int = 200) -> str:
    """A short, secret-free description of an unexpected API answer for error messages."""
    if isinstance(data, Mapping):
        keys = ", ".join(sorted(str(k) for k in data)[:12])
        return f"an object with keys [{keys}]"
    if isinstance(data, list):
        return f"a list of {len(data)} items"
    text = repr(data)
    return text if len(text) <= limit else text[:limit] + "…"
