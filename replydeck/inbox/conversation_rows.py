"""The ``conversations`` rows an ingest batch touches: found, made, and written back.

Everything here runs inside the ingest's write transaction. That transaction is the only
writer, so rows read at its start stay true until it commits, and ids handed out for
new conversations cannot collide.

A row is a dict of the table's columns. Under the key :data:`STORED` it also holds the
row as it was read (or None for a row made by this batch). :func:`write` then inserts a
new row once, already assessed, or updates only the columns that changed.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable
from typing import Any

from replydeck.inbox.in_lists import in_chunks
from replydeck.inbox.model import Direction, Message, to_ms
from replydeck.inbox.schema import NO_DUE

#: The row as stored when it was read; None for a row this batch creates.
STORED = "__stored__"


def loaded(row: sqlite3.Row | dict[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A stored row, ready to change and then :func:`write`."""
    conv = dict(row)
    conv[STORED] = dict(conv)
    return conv


def _loaded_rows(c: sqlite3.Connection, sql: str, args: Iterable[Any]) -> list[dict[str, Any]]:
    # Plain tuples zipped with the column names: ``dict(sqlite3.Row)`` costs ~6 µs a row.
    cur = c.cursor()
    cur.row_factory = None
    cur.execute(sql, tuple(args))
    names = [d[0] for d in cur.description]
    return [loaded(zip(names, values, strict=True)) for values in cur]


def write(c: sqlite3.Connection, conv: dict[str, Any]) -> None:
    """Insert a row this batch made, or update the columns that changed.

    An UPDATE that names a column rewrites every index on it even when the value is the
    same. So a customer's second message, which moves no due time, leaves the inbox
    order indexes alone.
    """
    stored = conv.pop(STORED)
    if stored is None:
        names = tuple(conv)
        c.execute(_insert_sql(names), [conv[k] for k in names])
        return
    changed = [k for k, v in conv.items() if v != stored[k]]
    if changed:
        c.execute(f"UPDATE conversations SET {'=?, '.join(changed)}=? WHERE id=?",
                  (*(conv[k] for k in changed), conv["id"]))


@functools.lru_cache(maxsize=8)
def _insert_sql(names: tuple[str, ...]) -> str:
    return (f"INSERT INTO conversations({', '.join(names)}) "
            f"VALUES({', '.join('?' * len(names))})")


def defaults(c: sqlite3.Connection) -> dict[str, Any]:
    """A row as the schema's column defaults make it."""
    columns = c.execute("PRAGMA table_info(conversations)").fetchall()
    values = c.execute("SELECT " + ", ".join(
        col[4] or "NULL" for col in columns)).fetchone()  # col[4]: dflt_value
    return {col[1]: v for col, v in zip(columns, values, strict=True)}


class BatchConversations:
    """The conversation of each message of one batch from one source.

    The stored conversations of the batch's threads are read in one query per 500
    thread keys. A new one gets the next id after the largest stored, and its row waits
    in :attr:`rows` until it is assessed and written.
    """

    def __init__(self, c: sqlite3.Connection, source: str, messages: Iterable[Message],
                 row_defaults: dict[str, Any]) -> None:
        self._c = c
        self._source = source
        self._defaults = row_defaults
        #: Conversation id -> its row, for every conversation the batch has touched.
        self.rows: dict[int, dict[str, Any]] = {}
        #: Ids of the conversations this batch creates, in the order it created them.
        self.created: list[int] = []
        # Thread key -> conversation id; also "msg:<remote id>" for this batch's messages,
        # so that a reply joins a parent that arrived earlier in the same batch.
        self._threads: dict[str, int] = {}
        self._last_id = c.execute("SELECT coalesce(max(id), 0) FROM conversations").fetchone()[0]
        self._read({m.thread_key or f"msg:{m.remote_id}" for m in messages})

    def _read(self, keys: set[str]) -> None:
        for chunk, marks in in_chunks(list(keys)):
            for row in _loaded_rows(
                    self._c, "SELECT * FROM conversations WHERE source=? AND thread_key IN "
                    f"({marks})", (self._source, *chunk)):
                self.rows[row["id"]] = row
                self._threads[row["thread_key"]] = row["id"]

    def of(self, msg: Message, author_id: int) -> int:
        """The id of ``msg``'s conversation, made if it has none yet."""
        conv_id = self._find(msg)
        if conv_id is None:
            conv_id = self._make(msg, author_id)
        self._threads[f"msg:{msg.remote_id}"] = conv_id
        return conv_id

    def _find(self, msg: Message) -> int | None:
        if not msg.thread_key and msg.in_reply_to:
            # No thread key: a reply belongs where its parent is.
            found = self._threads.get(f"msg:{msg.in_reply_to}")
            if found is not None:
                return found
            parent = self._c.execute(
                "SELECT conversation_id FROM messages WHERE source=? AND remote_id=?",
                (self._source, msg.in_reply_to)).fetchone()
            if parent is not None:
                found = int(parent[0])
                if found not in self.rows:
                    self.rows[found] = _loaded_rows(
                        self._c, "SELECT * FROM conversations WHERE id=?", (found,))[0]
                return found
        return self._threads.get(msg.thread_key or f"msg:{msg.remote_id}")

    def _make(self, msg: Message, author_id: int) -> int:
        conv_id = self._last_id + len(self.created) + 1
        at = to_ms(msg.created_at)
        thread_key = msg.thread_key or f"msg:{msg.remote_id}"
        row = dict(self._defaults)
        row.update(id=conv_id, source=self._source, thread_key=thread_key,
                   platform=msg.platform, kind=msg.kind.value,
                   author_id=author_id if msg.direction == Direction.IN else None,
                   url=msg.url, created_at=at, last_message_at=at, sort_due=NO_DUE,
                   sort_wait=at)
        row[STORED] = None
        self.rows[conv_id] = row
        self.created.append(conv_id)
        self._threads[thread_key] = conv_id
        return conv_id
