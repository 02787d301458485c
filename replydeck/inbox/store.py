"""The SQLite store: idempotent ingest, conversation state, the reply queue, windows.

One ``Store`` per thread or process. Several processes may share the file (WAL mode,
busy timeout): the TUI of each person on a shared server plus a headless poller. Every
write is one ``BEGIN IMMEDIATE`` transaction; an ingest writes the batch's messages,
the conversations they touch (with triage and due times) and the source's cursor in that
one transaction, so a crash at any point loses nothing and duplicates nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from replydeck.inbox import conversation_rows, search_index
from replydeck.inbox.assess import (
    Assessor,
    Decision,
    LazyThreadFacts,
    PlainAssessor,
    ThreadFacts,
    ThreadMessages,
)
from replydeck.inbox.author_rows import store_authors
from replydeck.inbox.checkpointer import SAFETY_PAGES, Checkpointer
from replydeck.inbox.in_lists import in_chunks
from replydeck.inbox.model import (
    Author,
    Conversation,
    Direction,
    Event,
    EventType,
    Kind,
    Message,
    Reply,
    ReplyState,
    Status,
    Urgency,
    from_ms,
    to_ms,
    utcnow,
)
from replydeck.inbox.payload_json import encode_payload
from replydeck.inbox.sanitize import sanitize_line, sanitize_text
from replydeck.inbox.schema import NO_DUE, migrate
from replydeck.inbox.thread_times import Arrival, ThreadTimes, advance

BUCKET = {Status.OPEN: 0, Status.PENDING: 0, Status.SNOOZED: 1, Status.DONE: 2}
FACTS_MESSAGES = 50
SNIPPET_CHARS = 200


class StoreError(Exception):
    """A request the store cannot carry out (unknown conversation, bad state change)."""


@dataclass(frozen=True)
class InboxFilter:
    """Which conversations a list or window shows. Empty fields mean "any"."""

    statuses: tuple[Status, ...] = (Status.OPEN, Status.PENDING)
    platforms: tuple[str, ...] = ()
    kinds: tuple[Kind, ...] = ()
    tags: tuple[str, ...] = ()
    assignee: str | None = None
    #: Only conversations at least this urgent.
    min_urgency: Urgency | None = None
    needs_reply: bool = False
    breached: bool = False
    unread: bool = False
    view: str | None = None
    search: str | None = None
    sources: tuple[str, ...] = ()


#: The sort key of a row: (urgency rank, sort_due, sort_wait, id).
SortKey = tuple[int, int, int, int]


@dataclass
class SourceState:
    name: str
    type: str
    platform: str
    cursor: str | None
    health: str
    last_error: str | None
    last_ok_at: datetime | None
    last_poll_at: datetime | None
    next_poll_at: datetime | None
    failures: int


@dataclass
class IngestResult:
    new_messages: int = 0
    duplicates: int = 0
    conversations: list[int] = field(default_factory=list)
    new_conversations: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    auto_replies: list[int] = field(default_factory=list)
    decisions: dict[int, Decision] = field(default_factory=dict)
    #: Conversations that have just reached urgent or crisis (for notifications).
    became_urgent: list[int] = field(default_factory=list)


def _ms(dt: datetime | None) -> int | None:
    return None if dt is None else to_ms(dt)


def _tags_text(tags: Iterable[str]) -> str:
    # Stored with surrounding spaces so "has tag" is `LIKE '% tag %'` without false prefixes.
    clean = sorted({t.strip().lower() for t in tags if t.strip()})
    return f" {' '.join(clean)} " if clean else ""


def _tags_list(text: str) -> list[str]:
    return text.split()


_JSON_TEXT = json.JSONEncoder(ensure_ascii=False)


#: Where ``_message_row`` puts the sanitised text.
_TEXT_COLUMN = 7


class _Arrived:
    """What one ingest brings to one conversation: its new messages in time order, their
    times, and the latest customer message's stored text and author."""

    __slots__ = ("arrivals", "latest_in", "messages")

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.arrivals: list[Arrival] = []
        self.latest_in: tuple[str, int | None] | None = None

    def add(self, msg: Message, at: int, *, text: str, author_id: int) -> None:
        inbound = msg.direction is Direction.IN
        self.messages.append(msg)
        self.arrivals.append(Arrival(at, inbound, msg.automated))
        if inbound:
            self.latest_in = (text, author_id)


def _snippet(text: str) -> str:
    first = next((line for line in text.splitlines() if line.strip()), "")
    return first[:SNIPPET_CHARS]


class Store:
    def __init__(self, path: str | os.PathLike[str], *, assessor: Assessor | None = None,
                 busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self.assessor: Assessor = assessor or PlainAssessor()
        self._lock = threading.RLock()
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                # Created 0600 before SQLite opens it; SQLite gives -wal/-shm the same mode.
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
        self.conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
        )
        self.conn.row_factory = sqlite3.Row
        self.conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA temp_store=MEMORY")
        migrate(self.conn)
        self._checkpointer: Checkpointer | None = None
        self._conv_defaults: dict[str, Any] | None = None

    def checkpoint_in_background(self) -> None:
        """For the store that ingests (the poller's): its commits stop paying for WAL
        checkpoints, which a thread runs beside them (see ``inbox/checkpointer.py``)."""
        if self._checkpointer is not None or str(self.path) == ":memory:":
            return
        with self._lock:
            self.conn.execute(f"PRAGMA wal_autocheckpoint={SAFETY_PAGES}")
        self._checkpointer = Checkpointer(self.path)
        self._checkpointer.start()

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file now (PASSIVE: waits for nobody)."""
        if self._checkpointer is not None:
            self._checkpointer.catch_up()
        else:
            with self._lock:
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock:
            self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ----------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    def index_pending(self, limit: int = search_index.CHUNK) -> int:
        """Add up to ``limit`` stored messages to the search index; returns how many.

        Search finds unindexed messages too (more slowly); see ``inbox/search_index.py``.
        """
        with self._lock:
            # A read first: an idle indexer must not take the write lock every few seconds.
            if not search_index.has_pending(self.conn):
                return 0
            with self.transaction() as c:
                return search_index.index_pending(c, limit)

    def unindexed(self) -> int:
        with self._lock:
            return search_index.pending(self.conn)

    def data_version(self) -> int:
        """Changes whenever another connection commits; the TUI polls it to refresh."""
        with self._lock:
            return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def change_marker(self) -> tuple[int, int]:
        """Changes on any commit by anyone, this connection included."""
        with self._lock:
            version = int(self.conn.execute("PRAGMA data_version").fetchone()[0])
            return version, self.conn.total_changes

    # -- sources -----------------------------------------------------------------------
    def register_source(self, name: str, type_name: str, platform: str) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO sources(name, type, platform) VALUES(?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET type=excluded.type, platform=excluded.platform",
                (name, type_name, platform),
            )

    def source_state(self, name: str) -> SourceState | None:
        with self._lock:
            row = self.conn.execute("SELECT * FROM sources WHERE name=?", (name,)).fetchone()
        return self._source_row(row) if row else None

    def source_states(self) -> list[SourceState]:
        with self._lock:
            rows = self.conn.execute("SELECT * FROM sources ORDER BY name").fetchall()
        return [self._source_row(r) for r in rows]

    @staticmethod
    def _source_row(row: sqlite3.Row) -> SourceState:
        return SourceState(
            name=row["name"], type=row["type"], platform=row["platform"], cursor=row["cursor"],
            health=row["health"], last_error=row["last_error"],
            last_ok_at=from_ms(row["last_ok_at"]), last_poll_at=from_ms(row["last_poll_at"]),
            next_poll_at=from_ms(row["next_poll_at"]), failures=row["failures"],
        )

    def cursor(self, source: str) -> str | None:
        state = self.source_state(source)
        return state.cursor if state else None

    def record_poll(self, source: str, *, health: str, error: str | None,
                    next_poll_at: datetime | None, now: datetime | None = None) -> None:
        now = now or utcnow()
        ok = health == "ok"
        with self.transaction() as c:
            c.execute(
                "UPDATE sources SET health=?, last_error=?, last_poll_at=?, next_poll_at=?, "
                "last_ok_at=CASE WHEN ? THEN ? ELSE last_ok_at END, "
                "failures=CASE WHEN ? THEN 0 ELSE failures + 1 END WHERE name=?",
                (health, error, to_ms(now), _ms(next_poll_at), ok, to_ms(now), ok, source),
            )

    def acquire_lease(self, source: str, owner: str, until: datetime,
                      now: datetime | None = None) -> bool:
        """Take or extend the right to poll ``source``; False while another process holds it."""
        now = now or utcnow()
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE sources SET lease_owner=?, lease_until=? WHERE name=? AND "
                "(lease_owner IS NULL OR lease_owner=? OR lease_until < ?)",
                (owner, to_ms(until), source, owner, to_ms(now)),
            )
            return cur.rowcount == 1

    def release_dead_claims(self, host: str, is_alive: Callable[[int], bool],
                            grace_for: Callable[[str], float] = lambda _source: 0.0) -> int:
        """Free leases and reply claims held by processes on ``host`` that have died.

        Owners are ``host:pid:nonce``. A claim by a dead process would otherwise block its
        source or reply until the claim times out; with this, a restart recovers sooner.
        ``grace_for(source)`` is how many seconds after the claim was taken recovery must
        still wait: a request the dead process sent may still be carried out by the
        platform, and a look at our own posts (``find_sent``) made too early would miss it
        and send the reply a second time. Claims by other hosts are left to time out.
        """
        def dead(owner: str | None) -> bool:
            parts = (owner or "").split(":")
            return (len(parts) == 3 and parts[0] == host and parts[1].isdigit()
                    and not is_alive(int(parts[1])))

        freed = 0
        with self.transaction() as c:
            for row in c.execute("SELECT id, source, claimed_by, claimed_until, updated_at "
                                 "FROM replies WHERE state='sending' AND claimed_by IS NOT NULL"
                                 ).fetchall():
                if dead(row["claimed_by"]):
                    until = min(row["claimed_until"] or 0,
                                row["updated_at"] + int(grace_for(row["source"]) * 1000))
                    freed += c.execute("UPDATE replies SET claimed_until=? WHERE id=?",
                                       (until, row["id"])).rowcount
            for row in c.execute("SELECT name, lease_owner FROM sources WHERE "
                                 "lease_owner IS NOT NULL").fetchall():
                if dead(row[1]):
                    c.execute("UPDATE sources SET lease_owner=NULL, lease_until=NULL "
                              "WHERE name=?", (row[0],))
                    freed += 1
        return freed

    def release_lease(self, source: str, owner: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE sources SET lease_owner=NULL, lease_until=NULL "
                      "WHERE name=? AND lease_owner=?", (source, owner))

    # -- ingest ------------------------------------------------------------------------
    def ingest(self, source: str, messages: Sequence[Message], cursor: str | None,
               *, save_cursor: bool = True, now: datetime | None = None) -> IngestResult:
        """Store a batch and the source's new cursor in ONE transaction.

        Upserts by (source, remote_id): a message already stored is skipped, so ingesting
        the same batch twice changes nothing.
        """
        now = now or utcnow()
        result = IngestResult()
        with self.transaction() as c:
            seen: set[str] = set()
            existing = self._existing_remote_ids(c, source, [m.remote_id for m in messages])
            fresh = []
            for msg in sorted(messages, key=lambda m: m.created_at):
                if msg.remote_id in existing or msg.remote_id in seen:
                    result.duplicates += 1
                    continue
                seen.add(msg.remote_id)
                fresh.append(msg)
            # Later messages know more about their author.
            authors = store_authors(c, {(m.platform, m.author.id): m.author for m in fresh})
            batch = conversation_rows.BatchConversations(c, source, fresh,
                                                         self._row_defaults(c))
            arrived: dict[int, _Arrived] = {}
            rows = []
            for msg in fresh:
                author_id = authors[(msg.platform, msg.author.id)]
                at = to_ms(msg.created_at)
                conv_id = batch.of(msg, author_id)
                row = self._message_row(source, msg, conv_id, author_id, at=at)
                rows.append(row)
                into = arrived.get(conv_id)
                if into is None:
                    into = arrived[conv_id] = _Arrived()
                into.add(msg, at, text=row[_TEXT_COLUMN], author_id=author_id)
            # Rows inserted inside this write transaction get ids above the current maximum.
            floor = c.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0]
            self._insert_messages(c, rows)
            # An event per message: received, or a human reply sent from outside replydeck
            # (the platform's own app). Built by SQLite from the rows just written: that
            # proved cheaper than a second executemany of rows built in Python.
            c.execute(
                "INSERT INTO events(conversation_id, type, at, actor, data) "
                "SELECT conversation_id, CASE direction WHEN 'in' THEN :received ELSE :replied END, "
                "created_at, CASE direction WHEN 'in' THEN NULL ELSE 'external' END, "
                "json_object('remote_id', remote_id) FROM messages "
                "WHERE id > :floor AND (direction = 'in' OR automated = 0) ORDER BY id",
                {"floor": floor, "received": EventType.RECEIVED.value,
                 "replied": EventType.REPLIED.value})
            result.new_messages = len(fresh)
            created = set(batch.created)
            for conv_id, into in arrived.items():
                reopened = self._refresh(c, conv_id, into.messages, is_new=conv_id in created,
                                         now=now, result=result, arrived=into,
                                         row=batch.rows[conv_id])
                if reopened:
                    result.reopened.append(conv_id)
            if save_cursor:
                c.execute(
                    "INSERT INTO sources(name, cursor) VALUES(?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET cursor=excluded.cursor",
                    (source, cursor),
                )
            result.conversations = list(arrived)
            result.new_conversations = batch.created
        return result

    @staticmethod
    def _existing_remote_ids(c: sqlite3.Connection, source: str, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for chunk, marks in in_chunks(ids):
            found.update(r[0] for r in c.execute(
                f"SELECT remote_id FROM messages WHERE source=? AND remote_id IN ({marks})",
                (source, *chunk)))
        return found

    def _row_defaults(self, c: sqlite3.Connection) -> dict[str, Any]:
        if self._conv_defaults is None:
            self._conv_defaults = conversation_rows.defaults(c)
        return self._conv_defaults

    @staticmethod
    def _message_row(source: str, msg: Message, conv_id: int, author_id: int,
                     reply_id: int | None = None, *, at: int | None = None) -> tuple[Any, ...]:
        # ``_value_`` is what ``.value`` returns, without the property's descriptor call.
        return (source, msg.remote_id, conv_id, msg.platform, msg.kind._value_,
                msg.direction._value_, author_id, sanitize_text(msg.text),
                to_ms(msg.created_at) if at is None else at,
                msg.url, msg.in_reply_to, msg.language,
                encode_payload(msg.engagement) if msg.engagement else None,
                encode_payload(msg.raw) if msg.raw else None,
                int(msg.automated), reply_id)

    @staticmethod
    def _insert_messages(c: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert message rows; ``index_pending`` adds them to the search index later."""
        c.executemany(
            "INSERT INTO messages(source, remote_id, conversation_id, platform, kind, direction, "
            "author_id, text, created_at, url, in_reply_to, language, engagement, raw, "
            "automated, reply_id) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    @staticmethod
    def _insert_message(c: sqlite3.Connection, source: str, msg: Message, conv_id: int,
                        author_id: int, reply_id: int | None = None) -> None:
        Store._insert_messages(c, [Store._message_row(source, msg, conv_id, author_id, reply_id)])

    def _refresh(self, c: sqlite3.Connection, conv_id: int, new: list[Message], *,
                 is_new: bool, now: datetime, result: IngestResult | None = None,
                 assess: bool = True, arrived: _Arrived | None = None,
                 row: dict[str, Any] | None = None) -> bool:
        """Recompute a conversation's derived state from its messages, then assess it.

        ``arrived`` says ``new`` was inserted just now; the times then move forward from
        the stored ones when the messages came in order. ``row`` is the conversation's row
        when the caller has it. Returns True when an inbound message reopened a done
        conversation.
        """
        conv = row if row is not None else conversation_rows.loaded(
            c.execute("SELECT * FROM conversations WHERE id=?", (conv_id,)).fetchone())
        times = latest_in = None
        if arrived is not None:
            times = advance(ThreadTimes.of(conv), arrived.arrivals)
            latest_in = arrived.latest_in
        if times is None:
            times, latest_in = self._thread_times_sql(c, conv_id)
        inbound_new = any(m.direction == Direction.IN for m in new)
        status = Status(conv["status"])
        reopened = False
        now_ms = to_ms(now)
        if inbound_new and status == Status.DONE and times.waiting_since is not None:
            status, reopened = Status.OPEN, True
            self._event(c, conv_id, EventType.REOPENED, now_ms, "customer")
        elif inbound_new and status == Status.SNOOZED:
            # A customer who writes again always wakes a snoozed conversation.
            status = Status.OPEN
            self._event(c, conv_id, EventType.WOKEN, now_ms, "customer",
                        {"reason": "customer wrote"})
        elif inbound_new and status == Status.PENDING:
            status = Status.OPEN
        snoozed = status == Status.SNOOZED
        conv.update(
            status=str(status), bucket=BUCKET[status], message_count=times.message_count,
            last_message_at=times.last_message_at, last_inbound_at=times.last_inbound_at,
            waiting_since=times.waiting_since, first_response_at=times.first_response_at,
            last_human_reply_at=times.last_human_reply_at,
            last_auto_reply_at=times.last_auto_reply_at,
            unread=1 if inbound_new else conv["unread"],
            snoozed_until=conv["snoozed_until"] if snoozed else None,
            snooze_until_reply=conv["snooze_until_reply"] if snoozed else 0,
        )
        if latest_in is not None:
            conv["snippet"] = _snippet(latest_in[0])
            if conv["author_id"] is None:
                conv["author_id"] = latest_in[1]
        if assess:
            # The assessment writes these columns along with its own.
            self._assess(c, conv_id, new, is_new=is_new, reopened=reopened, now=now,
                         result=result, conv=conv)
        else:
            conversation_rows.write(c, conv)
        return reopened

    @staticmethod
    def _thread_times_sql(c: sqlite3.Connection,
                          conv_id: int) -> tuple[ThreadTimes, tuple[str, int | None] | None]:
        """The thread's times, and its latest customer message (text, author), from its rows."""
        # One pass over the thread's (indexed) times gives most derived times at once.
        agg = c.execute(
            "SELECT count(*) AS n, max(created_at) AS last_at, "
            "max(CASE WHEN direction='out' AND automated=0 THEN created_at END) AS last_human, "
            "max(CASE WHEN direction='out' AND automated=1 THEN created_at END) AS last_auto, "
            "min(CASE WHEN direction='in' THEN created_at END) AS first_in, "
            "max(CASE WHEN direction='in' THEN created_at END) AS last_in "
            "FROM messages WHERE conversation_id=?", (conv_id,),
        ).fetchone()
        last_human = agg["last_human"]
        waiting, first_response, latest_in_id = c.execute(
            "SELECT (SELECT min(created_at) FROM messages WHERE conversation_id=:c AND "
            "direction='in' AND created_at > :lh), "
            "(SELECT min(created_at) FROM messages WHERE conversation_id=:c AND direction='out' "
            "AND automated=0 AND created_at >= :fi), "
            "(SELECT id FROM messages WHERE conversation_id=:c AND direction='in' "
            "ORDER BY created_at DESC, id DESC LIMIT 1)",
            {"c": conv_id, "lh": last_human if last_human is not None else -1,
             "fi": agg["first_in"] if agg["first_in"] is not None else 1 << 62},
        ).fetchone()
        latest_in = None
        if latest_in_id is not None:
            row = c.execute("SELECT text, author_id FROM messages WHERE id=?",
                            (latest_in_id,)).fetchone()
            latest_in = (row["text"], row["author_id"])
        return ThreadTimes(agg["n"], agg["last_at"], agg["last_in"], waiting, first_response,
                           last_human, agg["last_auto"]), latest_in

    def _facts(self, c: sqlite3.Connection, conv_id: int, new: list[Message], *,
               is_new: bool, reopened: bool, conv: dict[str, Any] | None = None,
               lazy: bool = True) -> ThreadFacts:
        """What the assessor sees. ``conv`` is the conversation row when the caller has
        it. The author, the history and the thread are read only if the assessor looks at
        them (unless ``lazy`` is off, for facts used after the transaction)."""
        if conv is None:
            conv = dict(c.execute("SELECT * FROM conversations WHERE id=?",
                                  (conv_id,)).fetchone())
        author_id, last_auto_at = conv["author_id"], conv["last_auto_reply_at"]

        def people() -> tuple[Author, int, datetime | None]:
            # An automated reply still in the queue counts as given: a customer who writes
            # twice before it goes out must not get a second one.
            row = c.execute(
                "SELECT a.remote_id, a.handle, a.name, a.followers, a.url, a.verified, "
                "(SELECT count(*) FROM conversations WHERE author_id=:a AND id<:c) AS earlier, "
                "(SELECT max(created_at) FROM replies WHERE conversation_id=:c AND "
                " automated=1 AND state IN ('queued','sending','unconfirmed')) AS pending_auto "
                "FROM (SELECT 1) LEFT JOIN authors a ON a.id=:a",
                {"a": author_id, "c": conv_id}).fetchone()
            author = Author(id="") if row["remote_id"] is None else Author(
                id=row["remote_id"], handle=row["handle"], name=row["name"],
                followers=row["followers"], url=row["url"], verified=bool(row["verified"]))
            last_auto = max((t for t in (last_auto_at, row["pending_auto"]) if t is not None),
                            default=None)
            return author, int(row["earlier"]), from_ms(last_auto)

        def thread() -> list[Message]:
            # Judgement reads text, direction, times and authors; the raw payload stays
            # unparsed.
            rows = c.execute(
                "SELECT m.source, m.remote_id, m.platform, m.kind, m.direction, m.text, "
                "m.created_at, m.in_reply_to, m.url, m.language, m.engagement, m.automated, "
                "NULL AS raw, a.remote_id AS a_rid, a.handle AS a_handle, a.name AS a_name, "
                "a.followers AS a_followers, a.url AS a_url, a.verified AS a_verified "
                "FROM messages m LEFT JOIN authors a ON a.id = m.author_id "
                "WHERE m.conversation_id=? ORDER BY m.created_at DESC, m.id DESC LIMIT ?",
                (conv_id, FACTS_MESSAGES),
            ).fetchall()
            return [_message_from_row(r) for r in reversed(rows)]

        known = dict(
            conversation_id=conv_id, source=conv["source"], platform=conv["platform"],
            kind=Kind(conv["kind"]), status=Status(conv["status"]), new_messages=list(new),
            tags=_tags_list(conv["tags"]), assignee=conv["assignee"],
            waiting_since=from_ms(conv["waiting_since"]),
            first_response_at=from_ms(conv["first_response_at"]),
            last_human_reply_at=from_ms(conv["last_human_reply_at"]),
            is_new=is_new, reopened=reopened,
            answered_before=conv["last_human_reply_at"] is not None,
        )
        if lazy:
            return LazyThreadFacts(people, messages=ThreadMessages(thread), **known)
        author, earlier, last_auto = people()
        return ThreadFacts(author=author, earlier_conversations=earlier,
                           last_auto_reply_at=last_auto, messages=thread(), **known)

    def _assess(self, c: sqlite3.Connection, conv_id: int, new: list[Message], *,
                is_new: bool, reopened: bool, now: datetime,
                result: IngestResult | None = None,
                conv: dict[str, Any] | None = None) -> Decision:
        facts = self._facts(c, conv_id, new, is_new=is_new, reopened=reopened, conv=conv)
        decision = self.assessor.assess(facts, now)
        self._apply_decision(c, conv_id, facts, decision, now, result, conv=conv)
        if result is not None:
            result.decisions[conv_id] = decision
            if decision.auto_reply is not None and c.execute(
                "SELECT 1 FROM replies WHERE conversation_id=? AND automated=1 AND state IN "
                "('queued','sending') ", (conv_id,)).fetchone():
                result.auto_replies.append(conv_id)
        return decision

    def _apply_decision(self, c: sqlite3.Connection, conv_id: int, facts: ThreadFacts,
                        d: Decision, now: datetime, result: IngestResult | None = None,
                        conv: dict[str, Any] | None = None) -> None:
        if conv is None:
            conv = conversation_rows.loaded(c.execute("SELECT * FROM conversations WHERE id=?",
                                     (conv_id,)).fetchone())
        now_ms = to_ms(now)
        status = Status(conv["status"])
        if d.status is not None and d.status != status and facts.new_messages:
            status = d.status
            event = EventType.RESOLVED if status == Status.DONE else EventType.SNOOZED
            self._event(c, conv_id, event, now_ms, "rule",
                        {"rules": d.fired_rules, "until": _ms(d.snooze_until)})
        tags = set(_tags_list(conv["tags"]))
        added = [t for t in d.add_tags if t.lower() not in tags]
        tags.update(t.lower() for t in d.add_tags)
        for tag in added:
            self._event(c, conv_id, EventType.TAGGED, now_ms, "rule", {"tag": tag.lower()})
        assignee = conv["assignee"]
        if d.assign and not assignee:
            assignee = d.assign
            self._event(c, conv_id, EventType.ASSIGNED, now_ms, "rule", {"to": assignee})
        views = set(conv["views"].split()) | set(d.views)
        old_urgency = conv["urgency"]
        urgent = Urgency.URGENT.rank
        if result is not None and d.urgency.rank <= urgent and (
                old_urgency > urgent or facts.is_new) and facts.waiting_since is not None:
            result.became_urgent.append(conv_id)
        if d.urgency.rank != old_urgency:
            self._event(c, conv_id, EventType.URGENCY_CHANGED, now_ms, None,
                        {"from": str(Urgency.from_rank(old_urgency)), "to": str(d.urgency),
                         "reasons": d.reasons})
        waiting = conv["waiting_since"]
        due = _ms(d.due_at) if waiting is not None and status != Status.DONE else None
        warn = _ms(d.warn_at) if due is not None else None
        breached = conv["breached"] if due is not None and due == conv["due_at"] else 0
        if not breached and "breached" in tags and due != conv["due_at"]:
            tags.discard("breached")
        snoozed_until = _ms(d.snooze_until) if status == Status.SNOOZED and d.snooze_until \
            else conv["snoozed_until"]
        warned = conv["warned"] if warn == conv["warn_at"] else 0
        conv.update(
            status=str(status), bucket=BUCKET[status], tags=_tags_text(tags), assignee=assignee,
            views=" ".join(sorted(views)), urgency=d.urgency.rank, score=d.score,
            reasons=_JSON_TEXT.encode(d.reasons) if d.reasons else "[]", due_at=due, warn_at=warn,
            breached=breached, warned=warned, snoozed_until=snoozed_until,
            sort_due=due if due is not None else NO_DUE,
            sort_wait=waiting if waiting is not None else conv["last_message_at"],
        )
        # One write for the refresh that came before (if any) and this decision.
        conversation_rows.write(c, conv)
        if d.auto_reply is not None and facts.new_messages:
            self._queue_reply(c, conv_id, d.auto_reply.body, d.auto_reply.private, agent="auto",
                              automated=True, saved_reply=d.auto_reply.saved_reply, now=now)

    def thread_facts(self, conv_ids: Iterable[int]) -> list[ThreadFacts]:
        """What the assessor sees for stored conversations (for `replydeck rules test`)."""
        with self._lock:
            return [self._facts(self.conn, i, [], is_new=False, reopened=False, lazy=False)
                    for i in conv_ids]

    def conversation_ids(self, *, active_since: datetime | None = None) -> list[int]:
        sql, args = "SELECT id FROM conversations", []
        if active_since is not None:
            sql += " WHERE last_message_at >= ?"
            args.append(to_ms(active_since))
        with self._lock:
            return [r[0] for r in self.conn.execute(sql + " ORDER BY id", args)]

    def reassess(self, conv_ids: Iterable[int], now: datetime | None = None) -> None:
        """Recompute triage and due times (after a config change or a person's action)."""
        now = now or utcnow()
        with self.transaction() as c:
            for conv_id in conv_ids:
                self._refresh(c, conv_id, [], is_new=False, now=now)

    # -- events ------------------------------------------------------------------------
    @staticmethod
    def _event(c: sqlite3.Connection, conv_id: int | None, type_: EventType, at_ms: int,
               actor: str | None, data: dict[str, Any] | None = None) -> None:
        c.execute("INSERT INTO events(conversation_id, type, at, actor, data) VALUES(?,?,?,?,?)",
                  (conv_id, str(type_), at_ms, actor,
                   json.dumps(data or {}, ensure_ascii=False, default=str)))

    def events(self, conversation_id: int | None = None, *, since: datetime | None = None,
               until: datetime | None = None) -> list[Event]:
        sql = "SELECT * FROM events WHERE 1=1"
        args: list[Any] = []
        if conversation_id is not None:
            sql += " AND conversation_id=?"
            args.append(conversation_id)
        if since is not None:
            sql += " AND at>=?"
            args.append(to_ms(since))
        if until is not None:
            sql += " AND at<?"
            args.append(to_ms(until))
        with self._lock:
            rows = self.conn.execute(sql + " ORDER BY at, id", args).fetchall()
        return [Event(conversation_id=r["conversation_id"], type=EventType(r["type"]),
                      at=from_ms(r["at"]) or utcnow(), actor=r["actor"],
                      data=json.loads(r["data"]), id=r["id"]) for r in rows]

    # -- a person's actions ------------------------------------------------------------
    def _require(self, c: sqlite3.Connection, conv_id: int) -> sqlite3.Row:
        row = c.execute("SELECT * FROM conversations WHERE id=?", (conv_id,)).fetchone()
        if row is None:
            raise StoreError(f"no conversation with id {conv_id}")
        return row

    def set_status(self, conv_ids: Iterable[int], status: Status, *, actor: str | None = None,
                   now: datetime | None = None) -> None:
        now = now or utcnow()
        with self.transaction() as c:
            for conv_id in conv_ids:
                row = self._require(c, conv_id)
                if row["status"] == str(status):
                    continue
                event = {Status.DONE: EventType.RESOLVED, Status.SNOOZED: EventType.SNOOZED}.get(
                    status, EventType.REOPENED)
                c.execute("UPDATE conversations SET status=?, bucket=?, snoozed_until=NULL, "
                          "snooze_until_reply=0 WHERE id=?",
                          (str(status), BUCKET[status], conv_id))
                self._event(c, conv_id, event, to_ms(now), actor, {"from": row["status"]})
                self._refresh(c, conv_id, [], is_new=False, now=now)

    def snooze(self, conv_ids: Iterable[int], *, until: datetime | None,
               actor: str | None = None, now: datetime | None = None) -> None:
        """Hide until ``until`` (None: until the customer writes). A customer reply always wakes."""
        now = now or utcnow()
        with self.transaction() as c:
            for conv_id in conv_ids:
                self._require(c, conv_id)
                c.execute("UPDATE conversations SET status='snoozed', bucket=1, snoozed_until=?, "
                          "snooze_until_reply=? WHERE id=?",
                          (_ms(until), int(until is None), conv_id))
                self._event(c, conv_id, EventType.SNOOZED, to_ms(now), actor,
                            {"until": _ms(until), "until_reply": until is None})
                self._refresh(c, conv_id, [], is_new=False, now=now)

    def assign(self, conv_ids: Iterable[int], agent: str | None, *, actor: str | None = None,
               now: datetime | None = None) -> None:
        now = now or utcnow()
        with self.transaction() as c:
            for conv_id in conv_ids:
                self._require(c, conv_id)
                c.execute("UPDATE conversations SET assignee=? WHERE id=?", (agent, conv_id))
                self._event(c, conv_id, EventType.ASSIGNED, to_ms(now), actor, {"to": agent})

    def tag(self, conv_ids: Iterable[int], tag: str, *, remove: bool = False,
            actor: str | None = None, now: datetime | None = None) -> None:
        tag = sanitize_line(tag).lower().replace(" ", "-")
        if not tag:
            raise StoreError("a tag needs at least one visible character")
        now = now or utcnow()
        with self.transaction() as c:
            for conv_id in conv_ids:
                row = self._require(c, conv_id)
                tags = set(_tags_list(row["tags"]))
                if (tag in tags) != remove:
                    continue
                tags.discard(tag) if remove else tags.add(tag)
                c.execute("UPDATE conversations SET tags=? WHERE id=?", (_tags_text(tags), conv_id))
                self._event(c, conv_id, EventType.UNTAGGED if remove else EventType.TAGGED,
                            to_ms(now), actor, {"tag": tag})

    def mark_read(self, conv_ids: Iterable[int], read: bool = True) -> None:
        with self.transaction() as c:
            for conv_id in conv_ids:
                c.execute("UPDATE conversations SET unread=? WHERE id=?", (int(not read), conv_id))

    def sweep(self, now: datetime | None = None) -> dict[str, list[int]]:
        """Wake snoozes that are due, mark warnings and breaches. Run periodically."""
        now = now or utcnow()
        now_ms = to_ms(now)
        out: dict[str, list[int]] = {"woken": [], "warned": [], "breached": []}
        with self.transaction() as c:
            for (conv_id,) in c.execute(
                    "SELECT id FROM conversations WHERE bucket=1 AND snoozed_until IS NOT NULL "
                    "AND snoozed_until<=?", (now_ms,)).fetchall():
                c.execute("UPDATE conversations SET status='open', bucket=0, snoozed_until=NULL, "
                          "snooze_until_reply=0 WHERE id=?", (conv_id,))
                self._event(c, conv_id, EventType.WOKEN, now_ms, None, {"reason": "time"})
                self._refresh(c, conv_id, [], is_new=False, now=now)
                out["woken"].append(conv_id)
            for row in c.execute(
                    "SELECT id, tags, due_at FROM conversations WHERE bucket=0 AND "
                    "due_at IS NOT NULL AND due_at<=? AND breached=0", (now_ms,)).fetchall():
                tags = set(_tags_list(row["tags"])) | {"breached"}
                c.execute("UPDATE conversations SET breached=1, warned=1, tags=? WHERE id=?",
                          (_tags_text(tags), row["id"]))
                self._event(c, row["id"], EventType.BREACHED, row["due_at"], None)
                out["breached"].append(row["id"])
            for (conv_id,) in c.execute(
                    "SELECT id FROM conversations WHERE bucket=0 AND warn_at IS NOT NULL AND "
                    "warn_at<=? AND warned=0 AND breached=0", (now_ms,)).fetchall():
                c.execute("UPDATE conversations SET warned=1 WHERE id=?", (conv_id,))
                self._event(c, conv_id, EventType.WARNED, now_ms, None)
                out["warned"].append(conv_id)
        return out

    # -- drafts ------------------------------------------------------------------------
    def save_draft(self, conv_id: int, body: str, private: bool = False,
                   now: datetime | None = None) -> None:
        now = now or utcnow()
        with self.transaction() as c:
            if body.strip():
                c.execute("INSERT INTO drafts(conversation_id, body, private, updated_at) "
                          "VALUES(?,?,?,?) ON CONFLICT(conversation_id) DO UPDATE SET "
                          "body=excluded.body, private=excluded.private, "
                          "updated_at=excluded.updated_at",
                          (conv_id, body, int(private), to_ms(now)))
            else:
                c.execute("DELETE FROM drafts WHERE conversation_id=?", (conv_id,))

    def draft(self, conv_id: int) -> tuple[str, bool] | None:
        with self._lock:
            row = self.conn.execute("SELECT body, private FROM drafts WHERE conversation_id=?",
                                    (conv_id,)).fetchone()
        return (row["body"], bool(row["private"])) if row else None

    def drafts(self) -> dict[int, str]:
        with self._lock:
            rows = self.conn.execute("SELECT conversation_id, body FROM drafts").fetchall()
        return {r[0]: r[1] for r in rows}

    # -- replies (the outbox's queue) --------------------------------------------------
    def queue_reply(self, conv_id: int, body: str, *, private: bool = False,
                    agent: str | None = None, options: dict[str, Any] | None = None,
                    automated: bool = False, saved_reply: str | None = None,
                    now: datetime | None = None) -> Reply:
        """Store a reply (state queued) and drop the draft, before anything is sent."""
        if not body.strip():
            raise StoreError("the reply is empty")
        now = now or utcnow()
        with self.transaction() as c:
            self._require(c, conv_id)
            reply_id = self._queue_reply(c, conv_id, body, private, agent=agent,
                                         automated=automated, options=options,
                                         saved_reply=saved_reply, now=now)
            c.execute("DELETE FROM drafts WHERE conversation_id=?", (conv_id,))
        reply = self.reply(reply_id)
        assert reply is not None
        return reply

    def _queue_reply(self, c: sqlite3.Connection, conv_id: int, body: str, private: bool, *,
                     agent: str | None, automated: bool, now: datetime,
                     options: dict[str, Any] | None = None,
                     saved_reply: str | None = None) -> int:
        conv = self._require(c, conv_id)
        latest_in = c.execute(
            "SELECT id FROM messages WHERE conversation_id=? AND direction='in' "
            "ORDER BY created_at DESC, id DESC LIMIT 1", (conv_id,)).fetchone()
        now_ms = to_ms(now)
        cur = c.execute(
            "INSERT INTO replies(conversation_id, source, body, private, state, "
            "idempotency_key, created_at, updated_at, next_attempt_at, agent, automated, options, "
            "reply_to_message_id, saved_reply) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (conv_id, conv["source"], body, int(private), str(ReplyState.QUEUED),
             uuid.uuid4().hex, now_ms, now_ms, now_ms, agent, int(automated),
             json.dumps(options or {}), latest_in[0] if latest_in else None, saved_reply),
        )
        reply_id = int(cur.lastrowid or 0)
        self._event(c, conv_id, EventType.REPLY_QUEUED, now_ms, agent,
                    {"reply_id": reply_id, "automated": automated, "saved_reply": saved_reply})
        return reply_id

    def reply(self, reply_id: int) -> Reply | None:
        with self._lock:
            row = self.conn.execute("SELECT * FROM replies WHERE id=?", (reply_id,)).fetchone()
            return self._reply_row(row) if row else None

    def replies(self, conv_id: int | None = None, *,
                states: Sequence[ReplyState] = ()) -> list[Reply]:
        sql, args = "SELECT * FROM replies WHERE 1=1", []
        if conv_id is not None:
            sql += " AND conversation_id=?"
            args.append(conv_id)
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args.extend(str(s) for s in states)
        with self._lock:
            rows = self.conn.execute(sql + " ORDER BY id", args).fetchall()
            return [self._reply_row(r) for r in rows]

    def undelivered(self, conv_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        """Replies not yet sent, per conversation and state (queued, failed, unconfirmed…)."""
        out: dict[int, dict[str, int]] = {}
        ids = list(conv_ids)
        with self._lock:
            for chunk, marks in in_chunks(ids):
                for conv_id, state, n in self.conn.execute(
                        "SELECT conversation_id, state, count(*) FROM replies WHERE state != "
                        f"'sent' AND conversation_id IN ({marks}) "
                        "GROUP BY conversation_id, state", chunk):
                    out.setdefault(conv_id, {})[state] = n
        return out

    def outbox_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT state, count(*) FROM replies WHERE state != 'sent' GROUP BY state"
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def _reply_row(self, row: sqlite3.Row) -> Reply:
        reply_to = None
        if row["reply_to_message_id"] is not None:
            reply_to = self._message_by_id(row["reply_to_message_id"])
        thread = self.conn.execute("SELECT thread_key FROM conversations WHERE id=?",
                                   (row["conversation_id"],)).fetchone()
        return Reply(
            id=row["id"], conversation_id=row["conversation_id"], source=row["source"],
            body=row["body"], private=bool(row["private"]),
            idempotency_key=row["idempotency_key"], state=ReplyState(row["state"]),
            attempts=row["attempts"], last_error=row["last_error"], remote_id=row["remote_id"],
            created_at=from_ms(row["created_at"]), sent_at=from_ms(row["sent_at"]),
            agent=row["agent"], automated=bool(row["automated"]),
            options=json.loads(row["options"]), reply_to=reply_to,
            thread_key=thread["thread_key"] if thread else None,
        )

    def _message_by_id(self, message_id: int) -> Message | None:
        row = self.conn.execute(
            "SELECT m.*, a.remote_id AS a_rid, a.handle AS a_handle, a.name AS a_name, "
            "a.followers AS a_followers, a.url AS a_url, a.verified AS a_verified "
            "FROM messages m LEFT JOIN authors a ON a.id = m.author_id WHERE m.id=?",
            (message_id,)).fetchone()
        return _message_from_row(row) if row else None

    def claim_replies(self, owner: str, *, lease_until: datetime, now: datetime | None = None,
                      limit: int = 20) -> tuple[list[Reply], list[Reply]]:
        """Take replies to send: (due queued ones, stale 'sending' ones left by a crash).

        The claim is a compare-and-set on the state, so two processes never take the same
        reply. A 'sending' reply whose claim expired was being sent when its process died.
        """
        now = now or utcnow()
        now_ms = to_ms(now)
        due: list[int] = []
        stale: list[int] = []
        with self.transaction() as c:
            for (rid,) in c.execute(
                    "SELECT id FROM replies WHERE state='sending' AND claimed_until<? LIMIT ?",
                    (now_ms, limit)).fetchall():
                c.execute("UPDATE replies SET claimed_by=?, claimed_until=? WHERE id=?",
                          (owner, to_ms(lease_until), rid))
                stale.append(rid)
            for (rid,) in c.execute(
                    "SELECT id FROM replies WHERE state='queued' AND "
                    "(next_attempt_at IS NULL OR next_attempt_at<=?) ORDER BY id LIMIT ?",
                    (now_ms, limit)).fetchall():
                c.execute("UPDATE replies SET state='sending', attempts=attempts+1, claimed_by=?, "
                          "claimed_until=?, updated_at=? WHERE id=? AND state='queued'",
                          (owner, to_ms(lease_until), now_ms, rid))
                due.append(rid)
        return ([r for r in (self.reply(i) for i in due) if r],
                [r for r in (self.reply(i) for i in stale) if r])

    def mark_sent(self, reply_id: int, *, remote_id: str, sent_at: datetime | None = None,
                  message: Message | None = None, now: datetime | None = None) -> None:
        """Record delivery and put the sent message into the thread (stops the timer)."""
        now = now or utcnow()
        sent_at = sent_at or now
        with self.transaction() as c:
            row = c.execute("SELECT * FROM replies WHERE id=?", (reply_id,)).fetchone()
            if row is None:
                raise StoreError(f"no reply with id {reply_id}")
            if row["state"] == str(ReplyState.SENT):
                return
            conv = self._require(c, row["conversation_id"])
            c.execute("UPDATE replies SET state='sent', remote_id=?, sent_at=?, updated_at=?, "
                      "last_error=NULL, claimed_by=NULL, claimed_until=NULL WHERE id=?",
                      (remote_id, to_ms(sent_at), to_ms(now), reply_id))
            automated = bool(row["automated"])
            if message is None:
                message = Message(
                    source=row["source"], remote_id=remote_id, platform=conv["platform"],
                    kind=Kind(conv["kind"]), author=Author(id="me", name=row["agent"] or ""),
                    text=row["body"], created_at=sent_at, direction=Direction.OUT,
                    thread_key=conv["thread_key"],
                )
            message.automated = automated
            message.direction = Direction.OUT
            existing = c.execute(
                "SELECT id, conversation_id FROM messages WHERE source=? AND remote_id=?",
                (row["source"], message.remote_id)).fetchone()
            if existing is None:
                key = (message.platform, message.author.id)
                author_id = store_authors(c, {key: message.author})[key]
                self._insert_message(c, row["source"], message, row["conversation_id"],
                                     author_id, reply_id=reply_id)
            else:
                # The poller saw our reply come back first and logged it as a reply from
                # another app: link it, and give the event to its real author instead of
                # logging a second reply.
                c.execute("UPDATE messages SET reply_id=?, automated=? WHERE id=?",
                          (reply_id, int(automated), existing["id"]))
                c.execute("DELETE FROM events WHERE conversation_id=? AND type='replied' AND "
                          "actor='external' AND json_extract(data, '$.remote_id')=?",
                          (row["conversation_id"], message.remote_id))
            self._event(c, row["conversation_id"],
                        EventType.AUTO_REPLIED if automated else EventType.REPLIED,
                        to_ms(sent_at), row["agent"],
                        {"reply_id": reply_id, "remote_id": remote_id,
                         "private": bool(row["private"]), "attempts": row["attempts"]})
            if not automated and conv["status"] == str(Status.OPEN):
                c.execute("UPDATE conversations SET status='pending' WHERE id=?",
                          (row["conversation_id"],))
            self._refresh(c, row["conversation_id"], [message], is_new=False, now=now)

    def mark_retry(self, reply_id: int, error: str, *, next_attempt_at: datetime,
                   now: datetime | None = None) -> None:
        now = now or utcnow()
        with self.transaction() as c:
            c.execute("UPDATE replies SET state='queued', last_error=?, next_attempt_at=?, "
                      "updated_at=?, claimed_by=NULL, claimed_until=NULL WHERE id=? "
                      "AND state IN ('sending','queued')",
                      (error, to_ms(next_attempt_at), to_ms(now), reply_id))
            row = c.execute("SELECT conversation_id FROM replies WHERE id=?", (reply_id,)).fetchone()
            if row:
                self._event(c, row[0], EventType.REPLY_RETRIED, to_ms(now), None,
                            {"reply_id": reply_id, "error": error})

    def defer_claim(self, reply_id: int, error: str, until: datetime) -> None:
        """Keep a reply in 'sending' until ``until``; then it is recovered like a crash.

        For a send whose outcome is unknown on a platform where recovery can find out
        (idempotency key or a look at our own posts), this defers to that safe path.
        """
        with self.transaction() as c:
            c.execute("UPDATE replies SET last_error=?, claimed_until=? WHERE id=? AND "
                      "state='sending'", (error, to_ms(until), reply_id))

    def mark_failed(self, reply_id: int, error: str, *, now: datetime | None = None) -> None:
        self._end_reply(reply_id, ReplyState.FAILED, EventType.REPLY_FAILED, error, now)

    def mark_unconfirmed(self, reply_id: int, reason: str, *,
                         now: datetime | None = None) -> None:
        self._end_reply(reply_id, ReplyState.UNCONFIRMED, EventType.REPLY_UNCONFIRMED, reason, now)

    def _end_reply(self, reply_id: int, state: ReplyState, event: EventType, error: str,
                   now: datetime | None) -> None:
        now = now or utcnow()
        with self.transaction() as c:
            row = c.execute("SELECT conversation_id, state FROM replies WHERE id=?",
                            (reply_id,)).fetchone()
            if row is None or row["state"] == str(ReplyState.SENT):
                return
            c.execute("UPDATE replies SET state=?, last_error=?, updated_at=?, claimed_by=NULL, "
                      "claimed_until=NULL WHERE id=?", (str(state), error, to_ms(now), reply_id))
            self._event(c, row["conversation_id"], event, to_ms(now), None,
                        {"reply_id": reply_id, "error": error})

    def requeue_reply(self, reply_id: int, *, actor: str | None = None,
                      now: datetime | None = None) -> None:
        """A person asks to send a reply again now: a failed or unconfirmed one, or a queued
        one waiting for its next attempt (same idempotency key)."""
        now = now or utcnow()
        with self.transaction() as c:
            row = c.execute("SELECT conversation_id, state FROM replies WHERE id=?",
                            (reply_id,)).fetchone()
            if row is None:
                raise StoreError(f"no reply with id {reply_id}")
            if row["state"] not in (str(ReplyState.FAILED), str(ReplyState.UNCONFIRMED),
                                    str(ReplyState.QUEUED)):
                raise StoreError(f"reply {reply_id} is {row['state']}; only queued, failed or "
                                 "unconfirmed replies can be retried")
            c.execute("UPDATE replies SET state='queued', next_attempt_at=?, updated_at=? "
                      "WHERE id=?", (to_ms(now), to_ms(now), reply_id))
            self._event(c, row["conversation_id"], EventType.REPLY_RETRIED, to_ms(now), actor,
                        {"reply_id": reply_id, "by": "person"})

    def cancel_reply(self, reply_id: int) -> str:
        """Take an unsent reply back; its text returns as the draft. Returns the body."""
        with self.transaction() as c:
            row = c.execute("SELECT * FROM replies WHERE id=?", (reply_id,)).fetchone()
            if row is None:
                raise StoreError(f"no reply with id {reply_id}")
            if row["state"] not in ("queued", "failed", "unconfirmed"):
                raise StoreError(f"reply {reply_id} is {row['state']} and cannot be cancelled")
            c.execute("DELETE FROM replies WHERE id=?", (reply_id,))
            c.execute("INSERT INTO drafts(conversation_id, body, private, updated_at) "
                      "VALUES(?,?,?,?) ON CONFLICT(conversation_id) DO NOTHING",
                      (row["conversation_id"], row["body"], row["private"], row["updated_at"]))
            return str(row["body"])

    # -- reading -----------------------------------------------------------------------
    def conversation(self, conv_id: int) -> Conversation | None:
        with self._lock:
            row = self.conn.execute(_CONV_SELECT + " WHERE c.id=?", (conv_id,)).fetchone()
        return _conversation_from_row(row) if row else None

    def messages(self, conv_id: int) -> list[Message]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT m.*, a.remote_id AS a_rid, a.handle AS a_handle, a.name AS a_name, "
                "a.followers AS a_followers, a.url AS a_url, a.verified AS a_verified "
                "FROM messages m LEFT JOIN authors a ON a.id = m.author_id "
                "WHERE m.conversation_id=? ORDER BY m.created_at, m.id", (conv_id,)).fetchall()
        return [_message_from_row(r) for r in rows]

    def message_rows(self, conv_id: int) -> list[sqlite3.Row]:
        """Messages with their store ids and reply links (for screens that show delivery)."""
        with self._lock:
            return self.conn.execute(
                "SELECT m.id, m.remote_id, m.direction, m.text, m.created_at, m.url, m.automated, "
                "m.reply_id, a.handle, a.name FROM messages m LEFT JOIN authors a "
                "ON a.id = m.author_id WHERE m.conversation_id=? ORDER BY m.created_at, m.id",
                (conv_id,)).fetchall()

    def related_conversations(self, conv_id: int, limit: int = 20) -> list[Conversation]:
        """The same customer's other conversations, on any platform (same contact or handle)."""
        with self._lock:
            row = self.conn.execute(
                "SELECT a.id, a.contact_id, a.handle FROM conversations c JOIN authors a "
                "ON a.id = c.author_id WHERE c.id=?", (conv_id,)).fetchone()
            if row is None:
                return []
            # The same person: this author, authors linked to the same contact, and authors
            # with the same handle (any case) on other platforms. Each is an index lookup.
            rows = self.conn.execute(
                _CONV_SELECT + " WHERE c.author_id IN ("
                "SELECT :author UNION "
                "SELECT id FROM authors WHERE contact_id = :contact UNION "
                "SELECT id FROM authors WHERE handle = :handle COLLATE NOCASE AND handle != '') "
                "AND c.id != :conv ORDER BY c.last_message_at DESC LIMIT :limit",
                {"author": row["id"], "contact": row["contact_id"], "handle": row["handle"],
                 "conv": conv_id, "limit": limit}).fetchall()
        return [_conversation_from_row(r) for r in rows]

    def _where(self, f: InboxFilter) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        buckets = sorted({BUCKET[s] for s in f.statuses})
        if f.statuses and len(buckets) < 3:
            clauses.append(f"c.bucket IN ({','.join('?' * len(buckets))})")
            args.extend(buckets)
            wanted = {str(s) for s in f.statuses}
            implied = {str(s) for s, b in BUCKET.items() if b in buckets}
            if wanted != implied:
                clauses.append(f"c.status IN ({','.join('?' * len(wanted))})")
                args.extend(sorted(wanted))
        if f.platforms:
            clauses.append(f"c.platform IN ({','.join('?' * len(f.platforms))})")
            args.extend(f.platforms)
        if f.sources:
            clauses.append(f"c.source IN ({','.join('?' * len(f.sources))})")
            args.extend(f.sources)
        if f.kinds:
            clauses.append(f"c.kind IN ({','.join('?' * len(f.kinds))})")
            args.extend(str(k) for k in f.kinds)
        for tag in f.tags:
            clauses.append("c.tags LIKE ?")
            args.append(f"% {tag.lower()} %")
        if f.assignee is not None:
            if f.assignee == "":
                clauses.append("c.assignee IS NULL")
            else:
                clauses.append("c.assignee = ?")
                args.append(f.assignee)
        if f.min_urgency is not None:
            clauses.append("c.urgency <= ?")
            args.append(f.min_urgency.rank)
        if f.needs_reply:
            clauses.append("c.waiting_since IS NOT NULL")
        if f.breached:
            clauses.append("c.breached = 1")
        if f.unread:
            clauses.append("c.unread = 1")
        if f.view:
            clauses.append("(' ' || c.views || ' ') LIKE ?")
            args.append(f"% {f.view} %")
        if f.search:
            search_sql, search_args = self._search_sql(f.search)
            clauses.append(search_sql)
            args.extend(search_args)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    @staticmethod
    def _search_sql(text: str) -> tuple[str, list[Any]]:
        """Full-text match through FTS5 (trigram: any 3+ character substring, any script)."""
        terms = [t for t in text.split() if t]
        if terms and all(len(t) >= 3 for t in terms):
            matches, args = search_index.match_sql(terms)
            return f"c.id IN ({matches})", args
        # Trigram cannot index 1-2 character terms (e.g. a two-kanji word): check each
        # conversation's messages while walking the list in order, so a window stops as
        # soon as it has its rows.
        like = " AND ".join("m.text LIKE ? ESCAPE '\\'" for _ in terms) or "1=1"
        return (f"EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND {like})",
                [search_index.like_pattern(t) for t in terms])

    def count(self, f: InboxFilter = InboxFilter()) -> int:
        where, args = self._where(f)
        with self._lock:
            return int(self.conn.execute(
                f"SELECT count(*) FROM conversations c{where}", args).fetchone()[0])

    def window(self, f: InboxFilter = InboxFilter(), *, after: SortKey | None = None,
               before: SortKey | None = None, limit: int = 50) -> list[Conversation]:
        """Up to ``limit`` conversations in inbox order, after or before a sort key.

        ``before`` returns the rows just above the key, still in inbox order. With neither,
        the top of the list. ``window(f, before=LAST)`` is the end of the list.
        """
        where, args = self._where(f)
        key = "(c.urgency, c.sort_due, c.sort_wait, c.id)"
        join = " AND " if where else " WHERE "
        if after is not None:
            where += f"{join}{key} > (?,?,?,?)"
            args.extend(after)
        elif before is not None:
            where += f"{join}{key} < (?,?,?,?)"
            args.extend(before)
        order = "DESC" if before is not None else "ASC"
        sql = (_CONV_SELECT + where +
               f" ORDER BY c.urgency {order}, c.sort_due {order}, c.sort_wait {order}, "
               f"c.id {order} LIMIT ?")
        with self._lock:
            rows = self.conn.execute(sql, [*args, limit]).fetchall()
        convs = [_conversation_from_row(r) for r in rows]
        return list(reversed(convs)) if before is not None else convs

    def window_at(self, f: InboxFilter, offset: int, limit: int = 50) -> list[Conversation]:
        """Rows from position ``offset`` on, for a jump far from any known row.

        A scrollbar drag has no neighbouring sort key; this counts through the order index
        instead. Everything else pages with :meth:`window` keysets.
        """
        where, args = self._where(f)
        sql = (_CONV_SELECT + where +
               " ORDER BY c.urgency, c.sort_due, c.sort_wait, c.id LIMIT ? OFFSET ?")
        with self._lock:
            rows = self.conn.execute(sql, [*args, limit, max(0, offset)]).fetchall()
        return [_conversation_from_row(r) for r in rows]

    def assignees(self, limit: int = 50) -> list[str]:
        """Agents conversations are assigned to, for pickers."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT DISTINCT assignee FROM conversations WHERE assignee IS NOT NULL "
                "ORDER BY assignee LIMIT ?", (limit,)).fetchall()
        return [r[0] for r in rows]

    def position(self, f: InboxFilter, key: SortKey) -> int:
        """How many rows come before ``key`` (for a scrollbar)."""
        where, args = self._where(f)
        join = " AND " if where else " WHERE "
        with self._lock:
            return int(self.conn.execute(
                f"SELECT count(*) FROM conversations c{where}{join}"
                "(c.urgency, c.sort_due, c.sort_wait, c.id) < (?,?,?,?)",
                [*args, *key]).fetchone()[0])

    def find_conversation(self, source: str, thread_key: str) -> int | None:
        with self._lock:
            row = self.conn.execute("SELECT id FROM conversations WHERE source=? AND "
                                    "thread_key=?", (source, thread_key)).fetchone()
        return int(row[0]) if row else None


_CONV_SELECT = (
    "SELECT c.*, a.remote_id AS a_rid, a.handle AS a_handle, a.name AS a_name, "
    "a.followers AS a_followers, a.url AS a_url, a.verified AS a_verified, "
    "a.contact_id AS a_contact FROM conversations c LEFT JOIN authors a ON a.id = c.author_id"
)

LAST: SortKey = (1 << 62, 1 << 62, 1 << 62, 1 << 62)


def _conversation_from_row(r: sqlite3.Row) -> Conversation:
    conv = Conversation(
        id=r["id"], source=r["source"], thread_key=r["thread_key"], platform=r["platform"],
        kind=Kind(r["kind"]), status=Status(r["status"]),
        urgency=Urgency.from_rank(r["urgency"]),
        author=Author(id=r["a_rid"] or "", handle=r["a_handle"] or "", name=r["a_name"] or "",
                      followers=r["a_followers"], url=r["a_url"],
                      verified=bool(r["a_verified"])),
        snippet=r["snippet"], last_message_at=from_ms(r["last_message_at"]) or utcnow(),
        message_count=r["message_count"], assignee=r["assignee"], tags=_tags_list(r["tags"]),
        score=r["score"], reasons=json.loads(r["reasons"]),
        waiting_since=from_ms(r["waiting_since"]),
        first_response_at=from_ms(r["first_response_at"]), due_at=from_ms(r["due_at"]),
        warn_at=from_ms(r["warn_at"]), breached=bool(r["breached"]),
        snoozed_until=from_ms(r["snoozed_until"]),
        snooze_until_reply=bool(r["snooze_until_reply"]), unread=bool(r["unread"]),
        created_at=from_ms(r["created_at"]), url=r["url"], contact_id=r["a_contact"],
        sort_key=(r["urgency"], r["sort_due"], r["sort_wait"], r["id"]),
    )
    return conv


def _message_from_row(r: sqlite3.Row) -> Message:
    return Message(
        source=r["source"], remote_id=r["remote_id"], platform=r["platform"],
        kind=Kind(r["kind"]),
        author=Author(id=r["a_rid"] or "", handle=r["a_handle"] or "", name=r["a_name"] or "",
                      followers=r["a_followers"], url=r["a_url"],
                      verified=bool(r["a_verified"])),
        text=r["text"], created_at=from_ms(r["created_at"]) or utcnow(),
        direction=Direction(r["direction"]), in_reply_to=r["in_reply_to"], url=r["url"],
        language=r["language"],
        engagement=json.loads(r["engagement"]) if r["engagement"] else {},
        raw=json.loads(r["raw"]) if r["raw"] else {}, automated=bool(r["automated"]),
    )
