"""bench/sql_replay.py: ingest's statements, replayed, build the very store ingest built.

The benchmark's "SQLite work alone" figure is the replay's time, so it means something only
if the replay does all of ingest's SQL work and nothing else.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta

from bench.sql_replay import Statement, connections_recorded, replay
from replydeck.inbox.model import Status
from replydeck.inbox.store import Store
from tests.core.conftest import T0, msg

TABLES = ("messages", "conversations", "authors", "events", "sources")


def _dump(path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in TABLES}
    finally:
        conn.close()


def _batches():
    first = [msg(f"a{i}", f"question {i}", minutes=i, thread=f"t{i % 7}", author=f"u{i % 5}",
                 followers=10 * i) for i in range(40)]
    replies = [msg(f"r{i}", "answered from the app", minutes=50 + i, thread=f"t{i}",
                   direction="out", author="me") for i in range(3)]
    again = [msg(f"b{i}", f"still waiting {i}", minutes=60 + i, thread=f"t{i % 9}",
                 author=f"u{i % 6}", followers=500 + i) for i in range(30)]
    # A repeat of stored messages, a reply that joins its parent, a brand-new thread.
    mixed = [*first[:5], msg("c1", "and another thing", minutes=90, in_reply_to="b3"),
             msg("c2", "hello?", minutes=91, thread="new")]
    return [first, replies, again, mixed]


def test_replayed_statements_build_what_ingest_built(tmp_path):
    seeded = tmp_path / "seeded.db"
    with Store(seeded) as store:
        store.ingest("src", [msg("s1", "an old question", minutes=-600, thread="t1")], "c0",
                     now=T0 - timedelta(hours=9))
        store.set_status(store.conversation_ids(), Status.DONE)
    ingested, replayed = tmp_path / "ingested.db", tmp_path / "replayed.db"
    shutil.copyfile(seeded, ingested)
    shutil.copyfile(seeded, replayed)

    log: list[Statement] = []
    with connections_recorded(log):
        store = Store(ingested)
    del log[:]
    for n, batch in enumerate(_batches()):
        store.ingest("src", batch, f"c{n + 1}", now=T0 + timedelta(hours=2))
    store.close()
    assert any(s.many for s in log) and any(s.sql == "COMMIT" for s in log)

    with Store(replayed) as other:
        replay(other.conn, log)
    got, want = _dump(replayed), _dump(ingested)
    assert got == want
    assert len(want["messages"]) == 1 + 40 + 3 + 30 + 2
    assert any(row for row in want["events"] if row[2] == "reopened")


def test_only_connections_opened_inside_the_block_record(tmp_path):
    log: list[Statement] = []
    with connections_recorded(log):
        inside = sqlite3.connect(tmp_path / "a.db")
    outside = sqlite3.connect(tmp_path / "b.db")
    inside.execute("CREATE TABLE t(x)")
    inside.executemany("INSERT INTO t VALUES(?)", ((i,) for i in range(3)))
    inside.cursor().execute("SELECT count(*) FROM t").fetchall()
    outside.execute("CREATE TABLE u(y)")
    assert [(s.sql, s.many) for s in log] == [
        ("CREATE TABLE t(x)", False), ("INSERT INTO t VALUES(?)", True),
        ("SELECT count(*) FROM t", False)]
    assert log[1].params == [(0,), (1,), (2,)]  # a generator, kept so it can run again
    assert type(outside) is sqlite3.Connection
