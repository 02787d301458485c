"""SQLite schema and its migrations.

Times are INTEGER epoch milliseconds (UTC). The inbox order is an index walk:
``(bucket, urgency, sort_due, sort_wait, id)`` where ``bucket`` separates what needs a
person (open/pending) from snoozed and done conversations, ``urgency`` is the rank (0 =
crisis), ``sort_due`` is ``due_at`` with "no target" sorted last, and ``sort_wait`` is
``waiting_since`` (or the last message time). Keyset pagination over that tuple makes a
window cost the same anywhere in a list of any length.
"""

from __future__ import annotations

import sqlite3

#: ``sort_due`` for conversations with no due time: after every real timestamp.
NO_DUE = 9_000_000_000_000_000

MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE sources(
        name TEXT PRIMARY KEY,
        type TEXT NOT NULL DEFAULT '',
        platform TEXT NOT NULL DEFAULT '',
        cursor TEXT,
        health TEXT NOT NULL DEFAULT 'new',
        last_error TEXT,
        last_ok_at INTEGER,
        last_poll_at INTEGER,
        next_poll_at INTEGER,
        failures INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_until INTEGER
    );
    CREATE TABLE authors(
        id INTEGER PRIMARY KEY,
        platform TEXT NOT NULL,
        remote_id TEXT NOT NULL,
        handle TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL DEFAULT '',
        followers INTEGER,
        url TEXT,
        verified INTEGER NOT NULL DEFAULT 0,
        contact_id INTEGER,
        UNIQUE(platform, remote_id)
    );
    CREATE INDEX authors_contact ON authors(contact_id);
    CREATE INDEX authors_handle ON authors(handle);
    CREATE TABLE conversations(
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        thread_key TEXT NOT NULL,
        platform TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        bucket INTEGER NOT NULL DEFAULT 0,
        assignee TEXT,
        tags TEXT NOT NULL DEFAULT '',
        views TEXT NOT NULL DEFAULT '',
        urgency INTEGER NOT NULL DEFAULT 3,
        score REAL NOT NULL DEFAULT 0,
        reasons TEXT NOT NULL DEFAULT '[]',
        author_id INTEGER,
        snippet TEXT NOT NULL DEFAULT '',
        url TEXT,
        created_at INTEGER NOT NULL,
        last_message_at INTEGER NOT NULL,
        last_inbound_at INTEGER,
        waiting_since INTEGER,
        first_response_at INTEGER,
        last_human_reply_at INTEGER,
        last_auto_reply_at INTEGER,
        due_at INTEGER,
        warn_at INTEGER,
        breached INTEGER NOT NULL DEFAULT 0,
        warned INTEGER NOT NULL DEFAULT 0,
        snoozed_until INTEGER,
        snooze_until_reply INTEGER NOT NULL DEFAULT 0,
        unread INTEGER NOT NULL DEFAULT 1,
        message_count INTEGER NOT NULL DEFAULT 0,
        sort_due INTEGER NOT NULL,
        sort_wait INTEGER NOT NULL,
        UNIQUE(source, thread_key)
    );
    CREATE INDEX conv_order ON conversations(urgency, sort_due, sort_wait, id);
    CREATE INDEX conv_bucket_order ON conversations(bucket, urgency, sort_due, sort_wait, id);
    CREATE INDEX conv_author ON conversations(author_id);
    CREATE INDEX conv_due ON conversations(due_at) WHERE bucket = 0 AND due_at IS NOT NULL;
    CREATE INDEX conv_snoozed ON conversations(snoozed_until) WHERE bucket = 1;
    CREATE TABLE messages(
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        remote_id TEXT NOT NULL,
        conversation_id INTEGER NOT NULL,
        platform TEXT NOT NULL,
        kind TEXT NOT NULL,
        direction TEXT NOT NULL,
        author_id INTEGER,
        text TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        url TEXT,
        in_reply_to TEXT,
        language TEXT,
        engagement TEXT,
        raw TEXT,
        automated INTEGER NOT NULL DEFAULT 0,
        reply_id INTEGER,
        UNIQUE(source, remote_id)
    );
    CREATE INDEX msg_conv ON messages(conversation_id, created_at);
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        text, content='messages', content_rowid='id', tokenize='trigram'
    );
    CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TABLE replies(
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL,
        source TEXT NOT NULL,
        body TEXT NOT NULL,
        private INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        remote_id TEXT,
        idempotency_key TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        sent_at INTEGER,
        next_attempt_at INTEGER,
        claimed_by TEXT,
        claimed_until INTEGER,
        agent TEXT,
        automated INTEGER NOT NULL DEFAULT 0,
        options TEXT NOT NULL DEFAULT '{}',
        reply_to_message_id INTEGER,
        saved_reply TEXT
    );
    CREATE INDEX replies_state ON replies(state, next_attempt_at);
    CREATE INDEX replies_conv ON replies(conversation_id);
    CREATE TABLE drafts(
        conversation_id INTEGER PRIMARY KEY,
        body TEXT NOT NULL,
        private INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE events(
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER,
        type TEXT NOT NULL,
        at INTEGER NOT NULL,
        actor TEXT,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_at ON events(at);
    CREATE INDEX events_conv ON events(conversation_id, at);
    """,
    # 2: the FTS index is filled in bulk at the end of each ingest (INSERT … SELECT), which
    # is about five times faster than a per-row trigger for trigram tokenizing.
    """
    DROP TRIGGER IF EXISTS messages_ai;
    """,
    # 3: search maps each matching message to its conversation; reading that from this
    # narrow index instead of the wide message rows makes a common-word search ~2x faster.
    """
    CREATE INDEX msg_id_conv ON messages(id, conversation_id);
    """,
    # 4: "needs reply" counts (the status bar, the first view) read this index only.
    """
    CREATE INDEX conv_waiting ON conversations(bucket, waiting_since)
        WHERE waiting_since IS NOT NULL;
    """,
    # 5: the search index is filled behind ingest (inbox/search_index.py); every message
    # stored so far is indexed already. A deleted message leaves the index only if it
    # is in it: FTS5 must never be told to delete a row it does not hold.
    """
    INSERT INTO meta(key, value)
        SELECT 'fts_indexed_to', coalesce(max(id), 0) FROM messages WHERE true
        ON CONFLICT(key) DO UPDATE SET value=excluded.value;
    DROP TRIGGER IF EXISTS messages_ad;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages
    WHEN old.id <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key='fts_indexed_to')
    BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    """,
    # 6: "the same customer elsewhere" matches handles without regard to case; an index
    # that folds case lets it look them up instead of reading every conversation.
    """
    DROP INDEX IF EXISTS authors_handle;
    CREATE INDEX authors_handle ON authors(handle COLLATE NOCASE) WHERE handle != '';
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; return that version.

    Each migration runs in its own IMMEDIATE transaction, so two processes opening a new
    database at once cannot both apply it.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)")
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version >= len(MIGRATIONS):
                conn.execute("COMMIT")
                return version
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO meta(key, value) VALUES('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (str(version + 1),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
