"""The SQL statements a piece of code runs, recorded once and replayed with nothing between.

Replaying what ``Store.ingest`` ran, on a fresh copy of the database it ran on, times the
SQLite work alone: the rows, their indexes, the reads, the commits. That is the floor under
the ingest ratio, whatever the Python around the statements costs.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Statement:
    sql: str
    params: Any
    many: bool = False


def _recording_connection_class(log: list[Statement]) -> type[sqlite3.Connection]:
    class RecordingCursor(sqlite3.Cursor):
        def execute(self, sql: str, params: Any = (), /) -> sqlite3.Cursor:
            log.append(Statement(sql, params))
            return super().execute(sql, params)

        def executemany(self, sql: str, seq: Any, /) -> sqlite3.Cursor:
            seq = list(seq)
            log.append(Statement(sql, seq, many=True))
            return super().executemany(sql, seq)

    class RecordingConnection(sqlite3.Connection):
        def execute(self, sql: str, params: Any = (), /) -> sqlite3.Cursor:
            return self.cursor().execute(sql, params)

        def executemany(self, sql: str, seq: Any, /) -> sqlite3.Cursor:
            return self.cursor().executemany(sql, seq)

        def cursor(self, factory: Any = RecordingCursor) -> Any:
            return super().cursor(factory)

    return RecordingConnection


@contextlib.contextmanager
def connections_recorded(log: list[Statement]) -> Iterator[None]:
    """Connections opened by ``sqlite3.connect`` inside this block append every statement
    they run to ``log``, for as long as they stay open."""
    connect = sqlite3.connect
    factory = _recording_connection_class(log)

    def recording_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return connect(*args, factory=factory, **kwargs)

    sqlite3.connect = recording_connect  # type: ignore[assignment]
    try:
        yield
    finally:
        sqlite3.connect = connect  # type: ignore[assignment]


def replay(conn: sqlite3.Connection, statements: Sequence[Statement]) -> None:
    """Run ``statements`` in order, reading every result as the code that ran them did."""
    cur = conn.cursor()
    cur.row_factory = None  # the recorded code built its own rows; that is not SQL work
    for s in statements:
        if s.many:
            cur.executemany(s.sql, s.params)
        else:
            cur.execute(s.sql, s.params).fetchall()
