"""The full-text index of message text, filled behind ingest.

Trigram tokenizing costs several times what storing a message does, so ingest stores
messages without it (new messages reach the inbox sooner, and other writers wait less on
the ingest transaction) and :func:`index_pending` indexes them afterwards, in short
transactions of its own. Messages are only ever added, and SQLite gives each one a larger
id than any before, so "indexed" is one watermark: every message with an id up to
``meta.fts_indexed_to`` is in ``messages_fts``, none above it is. Search answers from the
index up to the watermark and reads the few messages above it directly, so a message is
findable the moment it is stored, indexed or not.

Callers hold the store's lock; :func:`index_pending` needs a write transaction.
"""

from __future__ import annotations

import sqlite3
from typing import Any

WATERMARK_KEY = "fts_indexed_to"
#: Messages per indexing transaction: long enough to batch well, short enough that a
#: person's action in another process never waits long behind it.
CHUNK = 2_000

_WATERMARK = f"(SELECT CAST(value AS INTEGER) FROM meta WHERE key='{WATERMARK_KEY}')"


def indexed_to(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (WATERMARK_KEY,)).fetchone()
    return int(row[0]) if row else 0


def pending(conn: sqlite3.Connection) -> int:
    """Stored messages not yet in the index."""
    return int(conn.execute(f"SELECT count(*) FROM messages WHERE id > {_WATERMARK}")
               .fetchone()[0])


def has_pending(conn: sqlite3.Connection) -> bool:
    return conn.execute(f"SELECT EXISTS(SELECT 1 FROM messages WHERE id > {_WATERMARK})"
                        ).fetchone()[0] == 1


def index_pending(conn: sqlite3.Connection, limit: int = CHUNK) -> int:
    """Index up to ``limit`` of the oldest unindexed messages; returns how many."""
    floor = indexed_to(conn)
    top = conn.execute("SELECT max(id) FROM (SELECT id FROM messages WHERE id > ? "
                       "ORDER BY id LIMIT ?)", (floor, limit)).fetchone()[0]
    if top is None:
        return 0
    added = conn.execute("INSERT INTO messages_fts(rowid, text) SELECT id, text FROM messages "
                         "WHERE id > ? AND id <= ?", (floor, top)).rowcount
    conn.execute("UPDATE meta SET value=? WHERE key=?", (str(top), WATERMARK_KEY))
    return int(added)


def match_sql(terms: list[str]) -> tuple[str, list[Any]]:
    """Ids of conversations with a message holding every term (each 3+ characters).

    Terms are matched as quoted strings, so user text is never FTS5 query syntax; above the
    watermark the same test is a case-insensitive ``LIKE`` (what trigram matching does).
    """
    query = " AND ".join('"' + t.replace('"', '""') + '"' for t in terms)
    tail = " AND ".join("m.text LIKE ? ESCAPE '\\'" for _ in terms)
    return ("SELECT m.conversation_id FROM messages m INDEXED BY msg_id_conv "
            "WHERE m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?) "
            "UNION ALL "
            f"SELECT m.conversation_id FROM messages m WHERE m.id > {_WATERMARK} AND {tail}",
            [query, *(like_pattern(t) for t in terms)])


def like_pattern(term: str) -> str:
    """``%term%`` with LIKE's own wildcards escaped."""
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
