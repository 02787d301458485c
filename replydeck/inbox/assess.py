"""The contract between the store and the judgement code (triage, SLA, rules).

When an ingest (or a person's action) changes a conversation, the store gathers
:class:`ThreadFacts` and asks the configured :class:`Assessor` for a :class:`Decision`,
inside the same transaction, so the stored urgency, due time and tags always match the
messages. The assessor does no I/O; it is given ``now`` so it is deterministic in tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import MISSING, dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import datetime, timedelta
from typing import Any, Protocol, overload

from replydeck.inbox.model import Author, Kind, Message, Status, Urgency


class ThreadMessages(Sequence[Message]):
    """A thread's messages, read the first time an assessor looks at them.

    Many assessments never do (the plain one reads only times and kind), and reading a
    thread back costs more than storing its new messages.
    """

    def __init__(self, load: Callable[[], list[Message]]) -> None:
        self._load: Callable[[], list[Message]] | None = load
        self._items: list[Message] = []

    def _all(self) -> list[Message]:
        if self._load is not None:
            self._items, self._load = self._load(), None
        return self._items

    def __len__(self) -> int:
        return len(self._all())

    @overload
    def __getitem__(self, index: int) -> Message: ...
    @overload
    def __getitem__(self, index: slice) -> list[Message]: ...
    def __getitem__(self, index: int | slice) -> Message | list[Message]:
        return self._all()[index]

    def __iter__(self) -> Iterator[Message]:
        return iter(self._all())

    def __reversed__(self) -> Iterator[Message]:
        return reversed(self._all())

    def __eq__(self, other: object) -> bool:
        return list(self) == (list(other) if isinstance(other, Sequence) else other)

    def __repr__(self) -> str:
        return f"ThreadMessages({self._all()!r})"


@dataclass
class ThreadFacts:
    conversation_id: int
    source: str
    platform: str
    kind: Kind
    status: Status
    author: Author
    #: The thread, oldest first (the latest 50 messages), inbound and outbound.
    messages: Sequence[Message]
    #: The messages this change added (empty for a re-assessment without new messages).
    new_messages: list[Message]
    tags: list[str]
    assignee: str | None
    #: Oldest customer message not yet answered by a human; None when nothing waits.
    waiting_since: datetime | None
    first_response_at: datetime | None
    last_human_reply_at: datetime | None
    last_auto_reply_at: datetime | None
    #: The conversation was created by this change.
    is_new: bool
    #: A customer wrote into a conversation that was done (it has just been reopened).
    reopened: bool
    #: Conversations this author has had before this one (any platform).
    earlier_conversations: int = 0
    #: Whether the conversation has had a human reply before (next response vs first).
    answered_before: bool = False


_UNREAD: Any = object()


def _read_on_use(name: str) -> property:
    slot = "_" + name

    def get(self: LazyThreadFacts) -> Any:
        if self.__dict__.get(slot, _UNREAD) is _UNREAD:
            self._read()
        return self.__dict__[slot]

    def put(self: LazyThreadFacts, value: Any) -> None:
        self.__dict__[slot] = value

    return property(get, put)


class LazyThreadFacts(ThreadFacts):
    """Facts whose costly parts are read from the store the first time they are used.

    ``read`` returns (author, earlier_conversations, last_auto_reply_at); ``messages`` may
    be a :class:`ThreadMessages`. Without ``read`` (as ``dataclasses.replace`` builds a
    copy) every field is an ordinary value.
    """

    author = _read_on_use("author")
    earlier_conversations = _read_on_use("earlier_conversations")
    last_auto_reply_at = _read_on_use("last_auto_reply_at")

    def __init__(self, read: Callable[[], tuple[Author, int, datetime | None]] | None = None,
                 **fields: Any) -> None:
        self._reader = read
        if read is None:
            super().__init__(**fields)
            return
        # Ingest makes one of these per conversation it touches: the fields go straight
        # into the instance instead of through the dataclass __init__ and three setters.
        # The three read on use are left unset (their getters find nothing and read).
        if fields.keys() != _EAGER:  # the store passes every field; others may not
            wrong = (_REQUIRED - fields.keys()) | (fields.keys() - _EAGER)
            if wrong:
                raise TypeError(f"LazyThreadFacts: missing or unknown {', '.join(sorted(wrong))}")
        self.__dict__.update(_DEFAULTS)
        self.__dict__.update(fields)

    def _read(self) -> None:
        assert self._reader is not None
        self.author, self.earlier_conversations, self.last_auto_reply_at = self._reader()


_LAZY = {"author", "earlier_conversations", "last_auto_reply_at"}
_EAGER = {f.name for f in dataclass_fields(ThreadFacts)} - _LAZY
_REQUIRED = {f.name for f in dataclass_fields(ThreadFacts) if f.default is MISSING} - _LAZY
_DEFAULTS = {f.name: f.default for f in dataclass_fields(ThreadFacts)
             if f.default is not MISSING and f.name not in _LAZY}


@dataclass
class AutoReply:
    body: str
    private: bool = False
    #: The saved reply it came from, for the event log and for "once per N hours" guards.
    saved_reply: str | None = None


@dataclass
class Decision:
    urgency: Urgency = Urgency.NORMAL
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)
    due_at: datetime | None = None
    warn_at: datetime | None = None
    add_tags: list[str] = field(default_factory=list)
    assign: str | None = None
    #: Set to DONE (spam) or SNOOZED (with ``snooze_until``) by a rule; None leaves it.
    status: Status | None = None
    snooze_until: datetime | None = None
    auto_reply: AutoReply | None = None
    #: Named views a rule moved the conversation into.
    views: list[str] = field(default_factory=list)
    #: Rules that fired, by name, for `replydeck rules test` and the event log.
    fired_rules: list[str] = field(default_factory=list)


class Assessor(Protocol):
    def assess(self, facts: ThreadFacts, now: datetime) -> Decision: ...


class PlainAssessor:
    """Used when no triage is configured: every conversation normal, fixed targets.

    Targets follow what customers expect: 1 h for DMs, 4 h for public items.
    """

    def assess(self, facts: ThreadFacts, now: datetime) -> Decision:
        if facts.waiting_since is None:
            return Decision()
        target = timedelta(hours=1) if facts.kind.is_private else timedelta(hours=4)
        return Decision(
            due_at=facts.waiting_since + target,
            warn_at=facts.waiting_since + target * 0.75,
        )
