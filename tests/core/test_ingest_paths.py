"""Ingest's shortcuts give the answers of the slow, obvious way.

Ingest moves a conversation's times forward from the new messages alone when they came in
order, writes only the columns of a conversation that changed, reads a thread back only
when the assessor looks at it, skips text that has nothing to strip, and leaves search
indexing to ``index_pending``. Each shortcut is checked here
against the definition it replaces.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replydeck.inbox import conversation_rows, search_index
from replydeck.inbox.assess import Decision, PlainAssessor, ThreadFacts
from replydeck.inbox.model import Direction
from replydeck.inbox.sanitize import _ANY_UNSAFE, _strip, sanitize_text
from replydeck.inbox.schema import MIGRATIONS
from replydeck.inbox.store import InboxFilter, Store
from replydeck.inbox.thread_times import Arrival, ThreadTimes, advance
from replydeck.runtime import index_all
from tests.core.conftest import T0, msg

ALL = InboxFilter(statuses=())


def recompute(thread: list[Arrival]) -> ThreadTimes:
    """The times of a whole thread, straight from their definitions."""
    inbound = [a.at for a in thread if a.inbound]
    human = [a.at for a in thread if not a.inbound and not a.automated]
    auto = [a.at for a in thread if not a.inbound and a.automated]
    last_human = max(human, default=None)
    floor = -1 if last_human is None else last_human
    first_in = min(inbound, default=None)
    return ThreadTimes(
        message_count=len(thread),
        last_message_at=max((a.at for a in thread), default=None),
        last_inbound_at=max(inbound, default=None),
        waiting_since=min((t for t in inbound if t > floor), default=None),
        first_response_at=None if first_in is None else min(
            (t for t in human if t >= first_in), default=None),
        last_human_reply_at=last_human,
        last_auto_reply_at=max(auto, default=None),
    )


_arrival = st.builds(Arrival, st.integers(0, 40), st.booleans(), st.booleans())


@given(old=st.lists(_arrival, max_size=8), new=st.lists(_arrival, min_size=1, max_size=8),
       later=st.booleans())
def test_advancing_the_times_equals_recomputing_them_over_the_whole_thread(old, new, later):
    if later:  # as polling delivers: everything new comes after the thread so far
        base = max((a.at for a in old), default=0) + 1
        new = [Arrival(a.at + base, a.inbound, a.automated) for a in new]
    got = advance(recompute(old), new)
    in_order = not old or min(a.at for a in new) > max(a.at for a in old)
    if in_order:
        assert got == recompute(old + new)
    else:
        assert got is None  # the store then reads the thread


# -- the store: in-order arrivals take the shortcut, the rest the thread's rows ---------
_message = st.tuples(
    st.integers(0, 30),                                   # remote id
    st.integers(0, 3),                                    # thread
    st.integers(0, 240),                                  # minutes
    st.sampled_from(["in", "in", "out", "auto"]),
)


def _times_from_rows(store: Store, conv_id: int) -> tuple[ThreadTimes, tuple | None]:
    return Store._thread_times_sql(store.conn, conv_id)


def _write_every_column(c: sqlite3.Connection, conv: dict) -> None:
    """The obvious write: a whole new row, or every column of a stored one."""
    stored = conv.pop(conversation_rows.STORED)
    names = [k for k in conv if k != "id"]
    if stored is None:
        c.execute(f"INSERT INTO conversations(id, {', '.join(names)}) "
                  f"VALUES(?{', ?' * len(names)})", [conv["id"], *(conv[k] for k in names)])
    else:
        c.execute(f"UPDATE conversations SET {'=?, '.join(names)}=? WHERE id=?",
                  [*(conv[k] for k in names), conv["id"]])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(_message, max_size=10), min_size=1, max_size=6))
def test_conversations_come_out_the_same_as_when_every_thread_is_read_back(
        tmp_path_factory, batches):
    folder = tmp_path_factory.mktemp("times")
    fast, slow = Store(folder / "fast.db"), Store(folder / "slow.db")
    for k, batch in enumerate(batches):
        messages = []
        for rid, thread, minutes, kind in batch:
            # Mostly in order, as polling delivers, with some stragglers.
            minutes = minutes + 300 * k if minutes % 7 else minutes
            m = msg(f"r{rid}", f"text {rid} in batch {k}", minutes=minutes, thread=f"t{thread}",
                    direction="in" if kind == "in" else "out", author=f"a{rid % 4}")
            m.automated = kind == "auto"
            messages.append(m)
        now = T0 + timedelta(hours=5)
        fast.ingest("src", messages, f"c{k}", now=now)
        with patch("replydeck.inbox.store.advance", lambda old, new: None), \
                patch("replydeck.inbox.conversation_rows.write", _write_every_column):
            slow.ingest("src", messages, f"c{k}", now=now)
        rows = [[dict(r) for r in s.conn.execute("SELECT * FROM conversations ORDER BY id")]
                for s in (fast, slow)]
        assert rows[0] == rows[1]
        for row in rows[0]:
            assert ThreadTimes.of(row) == _times_from_rows(fast, row["id"])[0]
    fast.close()
    slow.close()


# -- the thread is read only for an assessor that looks -------------------------------
class Counting(PlainAssessor):
    def __init__(self, read: bool) -> None:
        self.read = read
        self.seen: list[list[str]] = []

    def assess(self, facts: ThreadFacts, now) -> Decision:
        if self.read:
            self.seen.append([m.text for m in facts.messages])
        return super().assess(facts, now)


def test_an_assessor_that_reads_the_thread_sees_all_of_it_oldest_first(tmp_path):
    reader = Counting(read=True)
    store = Store(tmp_path / "s.db", assessor=reader)
    store.ingest("src", [msg("a", "first", thread="t")], "c1", now=T0)
    store.ingest("src", [msg("b", "second", minutes=1, thread="t"),
                         msg("c", "third", minutes=2, thread="t", direction="out")], "c2", now=T0)
    assert reader.seen[-1] == ["first", "second", "third"]


def test_a_thread_nobody_reads_is_not_loaded(tmp_path, monkeypatch):
    store = Store(tmp_path / "s.db", assessor=Counting(read=False))
    loaded = []
    import replydeck.inbox.store as store_module
    real = store_module._message_from_row
    monkeypatch.setattr(store_module, "_message_from_row",
                        lambda r: loaded.append(r) or real(r))
    store.ingest("src", [msg(f"m{i}", minutes=i, thread="t") for i in range(5)], "c", now=T0)
    assert loaded == []
    assert store.thread_facts([1])[0].messages[-1].remote_id == "m4"  # outside: read at once


# -- sanitising: the shortcut for clean text -----------------------------------------
_tricky = st.lists(st.sampled_from(
    [*"ab [/]\n\t\r", "\x1b", "\x1b[", "\x1b]", "\x07", "\x9b", "\x9d", "\x9c", "\x85",
     "\u2028", "\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\ud800", "\x00", "\x7f",
     "ア", "😀"]), max_size=40).map("".join)


@given(text=_tricky)
def test_clean_text_skips_the_stripping_and_anything_else_gets_all_of_it(text):
    assert sanitize_text(text) == (_strip(text) if text else "")


def test_text_isprintable_accepts_has_nothing_to_strip():
    # sanitize_text returns such text at once; this is why that is safe.
    printable = "".join(chr(cp) for cp in range(0x110000) if chr(cp).isprintable())
    assert len(printable) > 100_000  # every assigned code point but the invisible ones
    assert _strip(printable) == printable
    assert _ANY_UNSAFE.search(printable) is None


# -- search indexing behind ingest -----------------------------------------------------
def _found(store: Store, term: str) -> set[str]:
    return {c.snippet for c in store.window(InboxFilter(statuses=(), search=term), limit=50)}


def test_a_stored_message_is_found_before_and_after_it_is_indexed(tmp_path):
    store = Store(tmp_path / "s.db")
    texts = ["My REFUND is late", "返金をお願いします。パスワードも", "50% off?",
             "nothing to see", "refund_policy please"]
    store.ingest("src", [msg(f"m{i}", t, thread=f"t{i}") for i, t in enumerate(texts)], "c",
                 now=T0)
    assert store.unindexed() == len(texts)
    queries = ["refund", "パスワード", "50%", "d_p", "y refund is", "refund late"]
    before = {q: _found(store, q) for q in queries}
    assert before["refund"] == {"My REFUND is late", "refund_policy please"}
    assert before["パスワード"] == {"返金をお願いします。パスワードも"}
    assert before["50%"] == {"50% off?"}          # % is a character here, not a wildcard
    assert before["d_p"] == {"refund_policy please"}
    assert before["refund late"] == {"My REFUND is late"}
    assert store.index_pending(limit=2) == 2        # one chunk at a time
    assert store.unindexed() == 3
    assert {q: _found(store, q) for q in queries} == before  # half indexed
    assert store.index_pending() == 3 and store.index_pending() == 0
    assert store.unindexed() == 0
    assert {q: _found(store, q) for q in queries} == before
    assert store.conn.execute("SELECT count(*) FROM messages_fts").fetchone()[0] == len(texts)


def test_the_runtime_indexes_everything_pending(tmp_path):
    import asyncio

    store = Store(tmp_path / "s.db")
    store.ingest("src", [msg(f"m{i}", f"order {i}", thread=f"t{i}") for i in range(4500)], "c",
                 now=T0)
    assert asyncio.run(index_all(store)) == 4500
    assert store.unindexed() == 0
    assert len(store.window(InboxFilter(statuses=(), search="order 4499"), limit=5)) == 1


def test_a_database_from_before_indexing_moved_out_of_ingest_is_not_indexed_twice(
        tmp_path: Path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)")
    for script in MIGRATIONS[:4]:
        conn.executescript(script)
    conn.execute("INSERT INTO meta VALUES('schema_version', '4')")
    conn.execute("INSERT INTO conversations(id, source, thread_key, platform, kind, created_at, "
                 "last_message_at, sort_due, sort_wait) VALUES(1,'src','t','x','mention',0,0,0,0)")
    for i, text in enumerate(["old refund request", "another one"], start=1):
        conn.execute("INSERT INTO messages(id, source, remote_id, conversation_id, platform, "
                     "kind, direction, text, created_at) VALUES(?,?,?,?,?,?,?,?,?)",
                     (i, "src", f"o{i}", 1, "x", "mention", "in", text, 0))
        conn.execute("INSERT INTO messages_fts(rowid, text) VALUES(?, ?)", (i, text))
    conn.close()
    store = Store(path)
    assert search_index.indexed_to(store.conn) == 2
    assert store.unindexed() == 0 and store.index_pending() == 0
    store.ingest("src", [msg("n1", "a new refund question", thread="t2")], "c", now=T0)
    assert store.index_pending() == 1
    hits = store.conn.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH "
                              "'\"refund\"' ORDER BY rowid").fetchall()
    assert [h[0] for h in hits] == [1, 3]
    # FTS5's own consistency check fails on a row indexed twice or a missing one.
    store.conn.execute("INSERT INTO messages_fts(messages_fts) VALUES('integrity-check')")


@pytest.mark.parametrize("direction", [Direction.IN, Direction.OUT])
def test_an_out_of_order_message_takes_the_thread_rows_path(tmp_path, direction):
    store = Store(tmp_path / "s.db")
    store.ingest("src", [msg("b", "later", minutes=10, thread="t"),
                         msg("c", "reply", minutes=20, thread="t", direction="out")], "c1", now=T0)
    store.ingest("src", [msg("a", "earlier", minutes=5, thread="t",
                             direction=str(direction))], "c2", now=T0)
    row = store.conn.execute("SELECT * FROM conversations").fetchone()
    assert ThreadTimes.of(row) == _times_from_rows(store, row["id"])[0]
    assert row["waiting_since"] is None and row["message_count"] == 3


# -- facts: what an assessor reads is what the store holds ------------------------------
class Recording(PlainAssessor):
    def __init__(self) -> None:
        self.facts: list[tuple[str, int, object, int]] = []

    def assess(self, facts: ThreadFacts, now) -> Decision:
        self.facts.append((facts.author.handle, facts.earlier_conversations,
                           facts.last_auto_reply_at, len(facts.messages)))
        return super().assess(facts, now)


def test_an_assessor_reads_the_author_history_and_auto_replies_on_demand(tmp_path):
    seen = Recording()
    store = Store(tmp_path / "s.db", assessor=seen)
    store.ingest("src", [msg("a1", thread="first", author="maria")], "c1", now=T0)
    store.ingest("src", [msg("a2", minutes=5, thread="second", author="maria")], "c2", now=T0)
    auto = msg("a3", "auto answer", minutes=6, thread="second", direction="out")
    auto.automated = True
    store.ingest("src", [auto], "c3", now=T0)
    assert seen.facts[0] == ("maria", 0, None, 1)
    assert seen.facts[1] == ("maria", 1, None, 1)      # her earlier conversation counts
    assert seen.facts[2] == ("maria", 1, T0 + timedelta(minutes=6), 2)


# -- checkpoints beside ingest ---------------------------------------------------------
def test_background_checkpoints_keep_the_log_short_and_lose_nothing(tmp_path):
    path = tmp_path / "s.db"
    store = Store(path)
    store.checkpoint_in_background()
    empty = path.stat().st_size
    for k in range(30):
        batch = [msg(f"m{k}-{i}", "x" * 400, minutes=k, thread=f"t{k}-{i % 50}")
                 for i in range(300)]
        store.ingest("src", batch, f"c{k}", now=T0)
    # The writer no longer checkpoints below its safety limit, so only the thread can have
    # copied pages into the database file.
    deadline = time.monotonic() + 5
    while path.stat().st_size < empty + 2_000_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.stat().st_size >= empty + 2_000_000
    store.checkpoint()
    busy, log_frames, copied = store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and log_frames == copied       # everything is in the database file
    # Far below the writer's own limit: the thread did the copying.
    assert Path(f"{path}-wal").stat().st_size < 4096 * 16_000 / 4
    store.close()
    assert not any(t.name == "sqlite-checkpoint" for t in threading.enumerate())
    store = Store(path)
    assert store.conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 9000
    store.close()
