"""The ``authors`` rows of the people a batch of messages came from.

Read with one query per 500 authors (``in_chunks``). A stored author gets only the columns that changed
(often just a follower count), or no write at all: an upsert naming every column also
rewrote the author's entry in the handle index, changed or not. New authors go in with
one ``executemany``, their ids taken after the largest. All of it runs inside the ingest's
write transaction, the only writer, so nobody can add an author between the read and the
write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from replydeck.inbox.in_lists import in_chunks
from replydeck.inbox.model import Author
from replydeck.inbox.sanitize import sanitize_line

AuthorKey = tuple[str, str]
"""(platform, the platform's id for the person)"""

_COLUMNS = ("handle", "name", "followers", "url", "verified")


def store_authors(c: sqlite3.Connection, authors: Mapping[AuthorKey, Author]) -> dict[AuthorKey, int]:
    """Insert or update ``authors``; map each key to its row id.

    What is known already is kept when the new data lacks it: an empty handle or name,
    no follower count or no URL leave the stored value; verified never goes back to false.
    """
    stored = _stored(c, list(authors))
    ids: dict[AuthorKey, int] = {}
    new_rows = []
    next_id = None
    for key, author in authors.items():
        handle, name = sanitize_line(author.handle), sanitize_line(author.name)
        row = stored.get(key)
        if row is None:
            if next_id is None:
                # This transaction is the only writer: ids after the largest are free.
                next_id = c.execute("SELECT coalesce(max(id), 0) + 1 FROM authors").fetchone()[0]
            ids[key] = next_id + len(new_rows)
            new_rows.append((ids[key], *key, handle, name, author.followers, author.url,
                             int(author.verified)))
            continue
        row_id, *old = row
        ids[key] = row_id
        new = (handle or old[0], name or old[1],
               old[2] if author.followers is None else author.followers,
               old[3] if author.url is None else author.url,
               max(old[4], int(author.verified)))
        if new != tuple(old):
            changed = [(column, value) for column, value, was in zip(_COLUMNS, new, old, strict=True)
                       if value != was]
            c.execute(f"UPDATE authors SET {', '.join(f'{k}=?' for k, _ in changed)} WHERE id=?",
                      (*(v for _, v in changed), row_id))
    if new_rows:
        c.executemany("INSERT INTO authors(id, platform, remote_id, handle, name, followers, url, "
                      "verified) VALUES(?,?,?,?,?,?,?,?)", new_rows)
    return ids


def _stored(c: sqlite3.Connection, keys: list[AuthorKey]) -> dict[AuthorKey, tuple[Any, ...]]:
    """(id, handle, name, followers, url, verified) of the keys already stored."""
    by_platform: dict[str, list[str]] = {}
    for platform, remote_id in keys:
        by_platform.setdefault(platform, []).append(remote_id)
    found: dict[AuthorKey, tuple[Any, ...]] = {}
    cur = c.cursor()
    cur.row_factory = None
    for platform, remote_ids in by_platform.items():
        for chunk, marks in in_chunks(remote_ids):
            for remote_id, *row in cur.execute(
                    f"SELECT remote_id, id, {', '.join(_COLUMNS)} FROM authors "
                    f"WHERE platform=? AND remote_id IN ({marks})",
                    (platform, *chunk)):
                found[(platform, remote_id)] = tuple(row)
    return found
