"""A conversation's derived times, moved forward by newly arrived messages.

The store keeps, per conversation, the times the inbox sorts and measures by: when the
customer started waiting, the first human response, the last human and automated replies.
They are defined over the whole thread (see ``Store._thread_times_sql``). When every new
message is later than everything already in the thread, which is how polling delivers
nearly all of them, the new values follow from the old ones and the new messages alone,
and ingest need not read the thread back. :func:`advance` computes exactly that, and says
``None`` when a message arrived out of order, so the caller asks the database instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple


# Named tuples, not dataclasses: ingest makes one per message, and these build ~5x faster.
class ThreadTimes(NamedTuple):
    """Times are epoch milliseconds, as stored."""

    message_count: int = 0
    last_message_at: int | None = None
    last_inbound_at: int | None = None
    #: The oldest customer message later than the last human reply; None when answered.
    waiting_since: int | None = None
    #: The first human reply at or after the first customer message.
    first_response_at: int | None = None
    last_human_reply_at: int | None = None
    last_auto_reply_at: int | None = None

    @classmethod
    def of(cls, row: Any) -> ThreadTimes:
        """From a ``conversations`` row (or a dict with its columns)."""
        return cls(row["message_count"], row["last_message_at"], row["last_inbound_at"],
                   row["waiting_since"], row["first_response_at"], row["last_human_reply_at"],
                   row["last_auto_reply_at"])


class Arrival(NamedTuple):
    """What the times depend on in one new message."""

    at: int
    inbound: bool
    automated: bool = False


def advance(old: ThreadTimes, new: Sequence[Arrival]) -> ThreadTimes | None:
    """The times once ``new`` is in the thread, or None unless all of it is later than the
    thread's last message (then only a look at the whole thread gives the answer)."""
    if not new:
        return None
    if old.message_count and (old.last_message_at is None
                              or min(a.at for a in new) <= old.last_message_at):
        return None
    inbound = [a.at for a in new if a.inbound]
    human = [a.at for a in new if not a.inbound and not a.automated]
    auto = [a.at for a in new if not a.inbound and a.automated]
    last_human = max(human) if human else old.last_human_reply_at
    if human:
        # Every earlier customer message predates this reply.
        waiting = min((t for t in inbound if t > last_human), default=None)
    elif old.waiting_since is not None:
        waiting = old.waiting_since
    else:
        floor = -1 if last_human is None else last_human
        waiting = min((t for t in inbound if t > floor), default=None)
    if old.first_response_at is not None:
        first_response = old.first_response_at
    elif old.last_inbound_at is not None:
        first_response = min(human, default=None)
    else:
        first_in = min(inbound, default=None)
        first_response = None if first_in is None else min(
            (t for t in human if t >= first_in), default=None)
    return ThreadTimes(
        message_count=old.message_count + len(new),
        last_message_at=max(a.at for a in new),
        last_inbound_at=max(inbound) if inbound else old.last_inbound_at,
        waiting_since=waiting,
        first_response_at=first_response,
        last_human_reply_at=last_human,
        last_auto_reply_at=max(auto) if auto else old.last_auto_reply_at,
    )

