"""Response-time figures, computed from the event log so that every one can be explained.

Definitions (the meanings Zendesk, Chatwoot and Front share):

* A **cycle** is one stretch of a conversation that needs us: it begins with the first
  customer message (``received``) and ends when the conversation is resolved. A customer
  who writes after a resolution begins a new cycle (the reopening), so a reopened
  conversation counts again. When a customer's message reached a resolved conversation
  late (its own time is before the resolution), the cycle begins at the customer
  ``reopened`` event instead.
* An **item** is one wait: the oldest customer message not yet answered by a human until
  the next human reply (``replied``; a reply sent from the platform's own app has the
  actor ``external`` and counts). The first item of a cycle is its **first response**,
  the later ones are **next responses**. ``auto_replied`` never ends a wait. A resolution
  ends the wait without a reply.
* **Resolution time**: from the start of a cycle to the ``resolved`` event that ends it.
* **Reply rate**: cycles that needed a reply and got a human reply / cycles that needed
  one. Cycles of conversations tagged ``spam``, and cycles a rule closed before any human
  reply, are excluded and counted on their own.
* **SLA attainment**: each item's target is the one :func:`replydeck.inbox.sla.target_for`
  chooses for the conversation's platform, kind, urgency and tags under the current
  ``[sla]`` config (first or next response), and its due time is computed on the same
  :class:`~replydeck.inbox.calendar.BusinessCalendar` the SLA clock uses. An item
  breached when the reply (or the resolution) came at or after the due time, when it is
  still unanswered and the due time has passed, or when the sweep recorded a
  ``breached`` event inside it. Items still inside their target are ``pending`` and not
  yet counted. Attainment = (items with a target − breached) / items with a target.
* Business time is counted on ``[business_hours]`` whatever the policy: the same calendar,
  turned into cumulative open intervals so each figure is two lookups.
* **Breakdowns**: platform, kind (public/private), urgency and tags are the
  conversation's current ones; the agent of an item is whoever sent its reply
  (``external`` for the platform's own app), of a received message whoever answered its
  wait; day, weekday and hour are local time in the business-hours zone.

Items and cycles belong to the period in which they *start* (the customer's message), so
"how fast did we answer what customers sent this week" is one period; replies sent later
still count. Received messages and sent, failed and retried replies are counted by their
own time. ``now`` only decides whether an unanswered item is already late.

**The cache.** Splitting events into items takes window functions over every event of a
conversation, too slow to repeat per report on a big store. So the derived rows (one per
item, with its business time, due time and outcome, and one per counted event) are kept
in ``metrics_*`` tables of the same database, with the id of the last event they include
and a fingerprint of the ``[sla]``/``[business_hours]`` config. Each report first
re-derives only the conversations that have events after that id (every change to a
conversation that matters here is an event: messages, replies, tags, urgency,
resolutions), and rebuilds everything when the config or the cache layout changed. The
cache is derived data: dropping its tables loses nothing. Reports then read it in one
snapshot with a few range scans and no sort of the whole period.
"""

from __future__ import annotations

import json
import sqlite3
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from replydeck.config.sla import SlaConfig
from replydeck.inbox import sla as sla_mod
from replydeck.inbox.calendar import BusinessCalendar
from replydeck.inbox.model import Kind, Urgency, from_ms, to_ms, utcnow

UTC = timezone.utc
#: Bucket upper bounds in seconds; a last bucket holds everything longer.
BUCKET_LIMITS = (30 * 60, 3600, 4 * 3600, 24 * 3600)
BUCKET_LABELS = ("≤30m", "≤1h", "≤4h", "≤24h", ">24h")
DIMENSIONS = ("platform", "kind", "urgency", "tag", "agent", "day", "weekday", "hour")
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Due times are searched this far past the last event (holidays can push them out).
_DUE_HORIZON = timedelta(days=60)
_PRIVATE_KINDS = tuple(k.value for k in Kind if k.is_private)
_SCOPE_TYPES = "('received','replied','resolved','reopened','breached')"
NONE_LABEL = "(none)"
UNKNOWN_LABEL = "(unknown)"
_EXCLUDED = {1: "spam", 2: "closed by rule"}
_ATTR_DIMENSIONS = ("platform", "kind", "urgency", "tag", "agent")
_ATTR_COLUMN = {"platform": "platform", "kind": "kind", "urgency": "urgency", "tag": "tags",
                "agent": "agent"}
_SEND_NAMES = {"received": "received", "replied": "sent", "auto_replied": "auto_sent",
               "reply_failed": "failed", "reply_retried": "retried",
               "reply_unconfirmed": "unconfirmed"}
#: Conversations derived per write transaction while the cache catches up.
_CHUNK = 20_000
#: Page cache while deriving (negative: KiB).
_CACHE_KIB = -131_072
_MMAP_BYTES = 1 << 30
NO_REPLY_LABEL = "(no reply)"


class MetricsError(Exception):
    """A report that cannot be made as asked (bad period, unknown dimension)."""


# -- results ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise MetricsError("a report period needs aware datetimes")
        if self.end <= self.start:
            raise MetricsError(f"the period ends ({self.end.isoformat()}) before it starts "
                               f"({self.start.isoformat()})")

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        return Period(self.start - self.length, self.start)

    @classmethod
    def last(cls, length: timedelta, now: datetime) -> Period:
        return cls(now - length, now)


@dataclass
class Distribution:
    """Durations in seconds. The median of an even count is the mean of the middle two;
    p90 is the nearest-rank value (the ⌈0.9·n⌉-th smallest)."""

    count: int = 0
    mean: float | None = None
    median: float | None = None
    p90: float | None = None
    buckets: tuple[int, ...] = (0, 0, 0, 0, 0)

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean, "median": self.median, "p90": self.p90,
                "buckets": dict(zip(BUCKET_LABELS, self.buckets, strict=True))}


@dataclass
class Attainment:
    #: Items whose outcome is known (answered, closed, or past due).
    with_target: int = 0
    breached: int = 0
    #: Items still waiting and still inside their target: not counted yet.
    pending: int = 0

    @property
    def rate(self) -> float | None:
        if not self.with_target:
            return None
        return (self.with_target - self.breached) / self.with_target

    def as_dict(self) -> dict[str, Any]:
        return {"with_target": self.with_target, "breached": self.breached,
                "pending": self.pending, "rate": self.rate}


@dataclass
class Figures:
    received: int = 0
    new_conversations: int = 0
    #: Cycles that began with a customer writing into a resolved conversation.
    reopened: int = 0
    needed_reply: int = 0
    replied: int = 0
    spam: int = 0
    closed_by_rule: int = 0
    resolved: int = 0
    first_response: Distribution = field(default_factory=Distribution)
    first_response_business: Distribution = field(default_factory=Distribution)
    next_response: Distribution = field(default_factory=Distribution)
    next_response_business: Distribution = field(default_factory=Distribution)
    resolution: Distribution = field(default_factory=Distribution)
    resolution_business: Distribution = field(default_factory=Distribution)
    sla_first: Attainment = field(default_factory=Attainment)
    sla_next: Attainment = field(default_factory=Attainment)
    sent: int = 0
    auto_sent: int = 0
    failed: int = 0
    retried: int = 0
    unconfirmed: int = 0

    @property
    def reply_rate(self) -> float | None:
        return self.replied / self.needed_reply if self.needed_reply else None

    @property
    def unanswered(self) -> int:
        return self.needed_reply - self.replied

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("received", "new_conversations", "reopened", "needed_reply", "replied"):
            out[name] = getattr(self, name)
        out["reply_rate"] = self.reply_rate
        out["unanswered"] = self.unanswered
        for name in ("spam", "closed_by_rule", "resolved"):
            out[name] = getattr(self, name)
        for name in ("first_response", "first_response_business", "next_response",
                     "next_response_business", "resolution", "resolution_business"):
            out[name] = getattr(self, name).as_dict()
        out["sla_first"] = self.sla_first.as_dict()
        out["sla_next"] = self.sla_next.as_dict()
        for name in ("sent", "auto_sent", "failed", "retried", "unconfirmed"):
            out[name] = getattr(self, name)
        return out


@dataclass
class Group:
    key: str
    current: Figures
    previous: Figures


@dataclass
class Report:
    period: Period
    previous_period: Period
    now: datetime
    zone: str
    by: str | None
    current: Figures
    previous: Figures
    groups: list[Group] = field(default_factory=list)


@dataclass
class ItemRow:
    """One wait for a reply, with everything that made its figures."""

    conversation_id: int
    cycle: int
    first: bool
    start: datetime
    reply_at: datetime | None
    agent: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    seconds: float | None
    business_seconds: float | None
    due_at: datetime | None
    target: str
    breached: bool
    breach_recorded: bool
    excluded: str | None
    messages: int


@dataclass
class CycleRow:
    """One cycle (first message or reopening to resolution) of one conversation."""

    conversation_id: int
    cycle: int
    platform: str
    kind: str
    urgency: str
    tags: list[str]
    start: datetime
    first_reply_at: datetime | None
    agent: str | None
    first_response_seconds: float | None
    first_response_business_seconds: float | None
    due_at: datetime | None
    breached: bool | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_seconds: float | None
    resolution_business_seconds: float | None
    excluded: str | None


@dataclass
class Explanation:
    conversation_id: int
    platform: str
    kind: str
    urgency: str
    tags: list[str]
    zone: str
    events: list[tuple[datetime, str, str | None, dict[str, Any]]]
    cycles: list[CycleRow]
    items: list[ItemRow]


# -- public entry points -----------------------------------------------------------------
def compute(store: Any, period: Period, *, sla: SlaConfig | None = None, by: str | None = None,
            now: datetime | None = None, zone: str | None = None) -> Report:
    """Figures for ``period`` and the period of the same length before it.

    ``by`` is one of :data:`DIMENSIONS` (or None); ``zone`` (default: the business-hours
    zone) decides what "day" and "hour" mean.
    """
    if by is not None and by not in DIMENSIONS:
        raise MetricsError(f"cannot break down by {by!r}; choose one of {', '.join(DIMENSIONS)}")
    cfg = sla or SlaConfig()
    now = now or utcnow()
    prev = period.previous()
    engine = _Engine(store, cfg, now, zone)
    engine.refresh()
    with engine.reading():
        acc = engine.aggregate(by, lo=to_ms(period.start), plo=to_ms(prev.start),
                               hi=to_ms(period.end))
    total = acc.pop("", None) or (Figures(), Figures())
    groups = [Group(k, *acc[k]) for k in engine.order_keys(by, acc)] if by else []
    return Report(period, prev, now, engine.zone_name, by, total[0], total[1], groups)


def conversation_rows(store: Any, period: Period, *, sla: SlaConfig | None = None,
                      now: datetime | None = None) -> list[CycleRow]:
    """One row per cycle starting in ``period`` (a reopened conversation has several)."""
    engine = _Engine(store, sla or SlaConfig(), now or utcnow(), None)
    engine.refresh()
    with engine.reading():
        return engine.cycle_rows("start >= ? AND start < ?",
                                 (to_ms(period.start), to_ms(period.end)))


def explain(store: Any, conversation_id: int, *, sla: SlaConfig | None = None,
            now: datetime | None = None) -> Explanation:
    """The events of one conversation and the cycles and items computed from them."""
    engine = _Engine(store, sla or SlaConfig(), now or utcnow(), None)
    engine.refresh()
    with engine.reading():
        conn = engine.conn
        conv = conn.execute("SELECT platform, kind, urgency, tags FROM conversations "
                            "WHERE id=?", (conversation_id,)).fetchone()
        if conv is None:
            raise MetricsError(f"no conversation with id {conversation_id}")
        events = [
            (from_ms(r[0]) or engine.now, r[1], r[2], json.loads(r[3] or "{}"))
            for r in conn.execute("SELECT at, type, actor, data FROM events WHERE "
                                  "conversation_id=? ORDER BY at, id", (conversation_id,))
        ]
        return Explanation(
            conversation_id=conversation_id, platform=conv[0], kind=conv[1],
            urgency=str(Urgency.from_rank(conv[2])), tags=conv[3].split(),
            zone=engine.zone_name, events=events,
            cycles=engine.cycle_rows("c = ?", (conversation_id,)),
            items=engine.item_rows(conversation_id))


# -- the cache ---------------------------------------------------------------------------
#: Bump when the meaning of a cached column changes: the cache is then rebuilt.
CACHE_VERSION = 6
_CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS metrics_state(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS metrics_item(
    start INTEGER NOT NULL, c INTEGER NOT NULL, seg INTEGER NOT NULL, cyc INTEGER NOT NULL,
    nth INTEGER NOT NULL, n_in INTEGER NOT NULL, reply_at INTEGER, agent TEXT,
    resolved_at INTEGER, resolved_by TEXT, breach_rec INTEGER NOT NULL,
    platform TEXT, kind TEXT, urgency INTEGER, tags TEXT, excl INTEGER NOT NULL,
    f INTEGER NOT NULL, cal INTEGER, biz INTEGER, due INTEGER, tgt_why TEXT,
    state INTEGER NOT NULL, cyc_resolved_at INTEGER, cyc_resolved_by TEXT, res_cal INTEGER,
    res_biz INTEGER,
    PRIMARY KEY(start, c, seg)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metrics_item_c ON metrics_item(c);
CREATE TABLE IF NOT EXISTS metrics_send(
    c INTEGER NOT NULL, at INTEGER NOT NULL, type TEXT NOT NULL, agent TEXT,
    platform TEXT, kind TEXT, urgency INTEGER, tags TEXT
);
CREATE INDEX IF NOT EXISTS metrics_send_c ON metrics_send(c);
CREATE INDEX IF NOT EXISTS metrics_send_type ON metrics_send(type, at);
CREATE INDEX IF NOT EXISTS metrics_send_attr
    ON metrics_send(platform, kind, urgency, tags, agent, type, at);
"""


def _fingerprint(cfg: SlaConfig) -> str:
    """Everything cached values depend on: a change rebuilds the cache."""
    policies = [[p.name, p.first_response.total_seconds(), p.next_response.total_seconds(),
                 p.business_hours, sorted(p.platforms), sorted(p.kinds),
                 sorted(u.value for u in p.urgencies), sorted(p.tags)] for p in cfg.policies]
    return json.dumps([CACHE_VERSION, repr(cfg.calendar), cfg.max_target.total_seconds(),
                       policies])


def _offsets(tz: Any, lo: datetime, hi: datetime) -> list[tuple[int, int]]:
    """``[(from_ms, utc_offset_ms), ...]`` covering ``[lo, hi]``: one entry per DST change."""
    def off(t: datetime) -> int:
        delta = t.astimezone(tz).utcoffset() or timedelta(0)
        return int(delta.total_seconds() * 1000)

    out = [(-(1 << 62), off(lo))]
    t = lo
    step = timedelta(hours=6)
    while t < hi:
        nxt = t + step
        if off(nxt) != off(t):
            a, b = t, nxt
            while b - a > timedelta(seconds=1):
                mid = a + (b - a) / 2
                if off(mid) == off(a):
                    a = mid
                else:
                    b = mid
            out.append((to_ms(b.replace(microsecond=0)), off(b)))
        t = nxt
    return out


class _Acc:
    """Running figures for one (period, group)."""

    __slots__ = ("auto_sent", "by_rule", "failed", "frt", "frt_b", "needed", "new", "nrt",
                 "nrt_b", "received", "reopened", "replied", "res", "res_b", "resolved",
                 "retried", "sent", "sla1", "sla2", "spam", "unconfirmed")

    def __init__(self) -> None:
        self.received = self.new = self.reopened = self.needed = self.replied = 0
        self.spam = self.by_rule = self.resolved = 0
        self.sent = self.auto_sent = self.failed = self.retried = self.unconfirmed = 0
        self.frt: list[int] = []
        self.frt_b: list[int] = []
        self.nrt: list[int] = []
        self.nrt_b: list[int] = []
        self.res: list[int] = []
        self.res_b: list[int] = []
        self.sla1 = [0, 0, 0]
        self.sla2 = [0, 0, 0]

    def add(self, counts: list[int], lists: list[list[int]]) -> None:
        (new, reopened, spam, by_rule, needed, replied, resolved,
         f_dec, f_br, f_pen, n_dec, n_br, n_pen) = counts
        self.new += new
        self.reopened += reopened
        self.spam += spam
        self.by_rule += by_rule
        self.needed += needed
        self.replied += replied
        self.resolved += resolved
        for sla, dec, br, pen in ((self.sla1, f_dec, f_br, f_pen), (self.sla2, n_dec, n_br, n_pen)):
            sla[0] += dec
            sla[1] += br
            sla[2] += pen
        for mine, more in zip((self.frt, self.frt_b, self.nrt, self.nrt_b, self.res, self.res_b),
                              lists, strict=True):
            mine.extend(more)

    def figures(self) -> Figures:
        return Figures(
            received=self.received, new_conversations=self.new, reopened=self.reopened,
            needed_reply=self.needed, replied=self.replied, spam=self.spam,
            closed_by_rule=self.by_rule, resolved=self.resolved,
            first_response=_dist(self.frt), first_response_business=_dist(self.frt_b),
            next_response=_dist(self.nrt), next_response_business=_dist(self.nrt_b),
            resolution=_dist(self.res), resolution_business=_dist(self.res_b),
            sla_first=Attainment(*self.sla1), sla_next=Attainment(*self.sla2),
            sent=self.sent, auto_sent=self.auto_sent, failed=self.failed,
            retried=self.retried, unconfirmed=self.unconfirmed)


def _ints(text: str | None) -> list[int]:
    return list(map(int, text.split(","))) if text else []


def _dist(values: list[int]) -> Distribution:
    """Milliseconds in, seconds out."""
    n = len(values)
    if not n:
        return Distribution()
    values.sort()
    buckets = [0, 0, 0, 0, 0]
    limits = [x * 1000 for x in BUCKET_LIMITS]
    prev = 0
    for i, lim in enumerate(limits):
        idx = bisect_right(values, lim)
        buckets[i] = idx - prev
        prev = idx
    buckets[4] = n - prev
    median = (values[(n + 1) // 2 - 1] + values[(n + 2) // 2 - 1]) / 2000
    p90 = values[(9 * n + 9) // 10 - 1] / 1000
    return Distribution(n, sum(values) / n / 1000, median, p90, tuple(buckets))


class _Engine:
    def __init__(self, store: Any, cfg: SlaConfig, now: datetime, zone: str | None) -> None:
        self.store = store
        self.conn: sqlite3.Connection = store.conn
        self.lock = getattr(store, "_lock", None)
        self.cfg = cfg
        self.now = now
        self.now_ms = to_ms(now)
        self.calendar: BusinessCalendar = cfg.calendar
        self.zone_name = zone or cfg.calendar.timezone_name
        self._span = (now, now)
        try:
            self.tz = UTC if self.zone_name == "UTC" else ZoneInfo(self.zone_name)
        except (KeyError, ValueError) as exc:
            raise MetricsError(f"unknown time zone {self.zone_name!r}") from exc

    # transactions -------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self.lock is None:
            yield
            return
        with self.lock:
            yield

    @contextmanager
    def reading(self) -> Iterator[None]:
        """One snapshot for every query of a report (a deferred read transaction)."""
        with self._locked():
            # A report reads the cache end to end: map the file rather than copy it page
            # by page through a small cache (restored afterwards).
            mmap = self.conn.execute("PRAGMA mmap_size").fetchone()[0]
            self.conn.execute(f"PRAGMA mmap_size={max(int(mmap), _MMAP_BYTES)}")
            with self._big_cache():
                self.conn.execute("BEGIN")
                try:
                    yield
                finally:
                    self.conn.execute("ROLLBACK")
                    self.conn.execute(f"PRAGMA mmap_size={int(mmap)}")

    def refresh(self) -> None:
        """Bring the cache up to the newest event: only conversations with new events are
        recomputed; a changed ``[sla]``/``[business_hours]`` config rebuilds it all.

        The work is done in short write transactions of :data:`_CHUNK` conversations, so a
        first build over a big store never holds the database long enough to make the
        poller or the inbox wait; the high-water mark moves only when every chunk is in.
        """
        with self._locked(), self._big_cache():
            with self._write():
                self.conn.execute("CREATE TABLE IF NOT EXISTS metrics_state("
                                  "key TEXT PRIMARY KEY, value TEXT)")
                state = dict(self.conn.execute("SELECT key, value FROM metrics_state"))
                fp = _fingerprint(self.cfg)
                done = int(state.get("event_id", 0))
                if state.get("fingerprint") != fp:
                    # New config or a new cache layout: start over from the events.
                    self.conn.execute("DROP TABLE IF EXISTS metrics_item")
                    self.conn.execute("DROP TABLE IF EXISTS metrics_send")
                    done = 0
                    self._set_state(fp, 0)
                for statement in _CACHE_SCHEMA.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                top = self.conn.execute("SELECT MAX(id) FROM events").fetchone()[0] or 0
                # SQLite hands the id of a deleted last row to the next insert (the store
                # replaces a reply it first logged as "external"), so the last event seen
                # is checked too, not only its id.
                rewritten: set[int] = set()
                seen = state.get("event_sig")
                if done and seen != self._signature(done):
                    rewritten.add(int((seen or "0").split("|", 1)[0] or 0))
                    now_at = self._signature(done)
                    if now_at:
                        rewritten.add(int(now_at.split("|", 1)[0] or 0))
                if top <= done and not rewritten:
                    return
                # Taken now: a rewrite of this event while the chunks run shows next time.
                top_sig = self._signature(top)
                changed = sorted({r[0] for r in self.conn.execute(
                    "SELECT DISTINCT conversation_id FROM events WHERE id > ? AND "
                    "conversation_id IS NOT NULL", (done,))} | (rewritten - {0}))
            for i in range(0, len(changed), _CHUNK):
                with self._write():
                    self._fresh("rt_scope", "id INTEGER PRIMARY KEY")
                    self.conn.executemany("INSERT INTO rt_scope VALUES(?)",
                                          [(c,) for c in changed[i:i + _CHUNK]])
                    self._derive()
                    for name in ("rt_scope", "rt_ev", "rt_seg", "rt_bh", "rt_bhe", "rt_tgt"):
                        self.conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
            with self._write():
                self._set_state(fp, top, top_sig)

    def _signature(self, event_id: int) -> str | None:
        row = self.conn.execute("SELECT conversation_id, type, actor, at, data FROM events "
                                "WHERE id=?", (event_id,)).fetchone()
        return None if row is None else "|".join("" if v is None else str(v) for v in row)

    @contextmanager
    def _big_cache(self) -> Iterator[None]:
        """A larger page cache while rows go into the cache's b-trees and while a report
        sorts its groups (restored after)."""
        size = self.conn.execute("PRAGMA cache_size").fetchone()[0]
        self.conn.execute(f"PRAGMA cache_size={_CACHE_KIB}")
        try:
            yield
        finally:
            self.conn.execute(f"PRAGMA cache_size={int(size)}")

    @contextmanager
    def _write(self) -> Iterator[None]:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise MetricsError(f"cannot update the report cache: {exc}") from exc
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _set_state(self, fp: str, event_id: int, sig: str | None = None) -> None:
        self.conn.executemany(
            "INSERT INTO metrics_state(key, value) VALUES(?, ?) ON CONFLICT(key) "
            "DO UPDATE SET value=excluded.value",
            [("fingerprint", fp), ("event_id", str(event_id)), ("event_sig", sig or "")])

    def _fresh(self, name: str, columns: str) -> None:
        self.conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
        self.conn.execute(f"CREATE TEMP TABLE {name}({columns})")

    # deriving the cache rows ------------------------------------------------------------
    def _derive(self) -> None:
        c = self.conn
        c.execute("DELETE FROM metrics_item WHERE c IN (SELECT id FROM rt_scope)")
        c.execute("DELETE FROM metrics_send WHERE c IN (SELECT id FROM rt_scope)")
        self._segments()
        self._calendar_tables()
        self._targets()
        c.execute(f"""
            INSERT INTO metrics_item
            WITH i AS (
                SELECT g.*, CASE WHEN g.start IS NOT NULL THEN ROW_NUMBER() OVER
                    (PARTITION BY g.c, g.cyc, g.start IS NULL ORDER BY g.seg) END AS nth
                FROM rt_seg g
            ), r AS (
                SELECT c, cyc, MAX(resolved_at) AS cyc_resolved_at,
                    MAX(CASE WHEN resolved_at IS NOT NULL THEN resolved_by END) AS cyc_resolved_by
                FROM rt_seg GROUP BY c, cyc
            ), j AS MATERIALIZED (
                SELECT i.*, cv.platform, cv.kind, cv.urgency, cv.tags,
                    (cv.tags LIKE '% spam %') AS spam,
                    CASE WHEN i.nth = 1 THEN t.first_ms ELSE t.next_ms END AS tgt_ms,
                    CASE WHEN i.nth = 1 THEN t.first_bh ELSE t.next_bh END AS tgt_bh,
                    CASE WHEN i.nth = 1 THEN t.first_why ELSE t.next_why END AS tgt_why,
                    CASE WHEN i.start IS NOT NULL THEN {self._b('i.start')} END AS b0,
                    CASE WHEN i.start IS NOT NULL AND i.reply_at IS NOT NULL
                         THEN {self._b('i.reply_at')} END AS b1,
                    r.cyc_resolved_at, r.cyc_resolved_by
                FROM i JOIN conversations cv ON cv.id = i.c
                JOIN r ON r.c = i.c AND r.cyc = i.cyc
                LEFT JOIN rt_tgt t ON t.platform = cv.platform AND t.kind = cv.kind
                    AND t.urgency = cv.urgency AND t.tags = cv.tags
            ), k AS MATERIALIZED (
                SELECT j.*, j.reply_at - j.start AS cal, j.b1 - j.b0 AS biz,
                    CASE WHEN j.start IS NULL OR j.tgt_ms IS NULL THEN NULL
                         WHEN j.tgt_bh THEN {self._binv('j.b0 + j.tgt_ms')}
                         ELSE j.start + j.tgt_ms END AS due,
                    CASE WHEN j.nth = 1 AND j.cyc_resolved_at IS NOT NULL
                         THEN {self._b('j.cyc_resolved_at')} END AS b2
                FROM j
            )
            SELECT start, c, seg, cyc, nth, n_in, reply_at, agent, resolved_at, resolved_by,
                breach_rec, platform, kind, urgency, tags, excl,
                CASE WHEN excl THEN 0 WHEN nth = 1 THEN 1 ELSE 2 END,
                cal, biz, due, tgt_why,
                CASE WHEN due IS NULL THEN -1
                     WHEN COALESCE(reply_at, resolved_at) IS NOT NULL THEN
                        CASE WHEN breach_rec OR COALESCE(reply_at, resolved_at) >= due
                             THEN 2 ELSE 1 END
                     WHEN breach_rec THEN 2 ELSE 0 END,
                cyc_resolved_at, cyc_resolved_by,
                CASE WHEN nth = 1 THEN cyc_resolved_at - start END,
                CASE WHEN nth = 1 THEN b2 - b0 END
            FROM (SELECT k.*, CASE WHEN spam THEN 1
                    WHEN reply_at IS NULL AND COALESCE(resolved_by, '') = 'rule' THEN 2
                    ELSE 0 END AS excl FROM k WHERE start IS NOT NULL)
        """)
        c.execute("""
            INSERT INTO metrics_send
            SELECT e.conversation_id, e.at, e.type,
                CASE WHEN e.type = 'auto_replied' THEN e.actor ELSE
                    (SELECT r.agent FROM replies r
                     WHERE r.id = json_extract(e.data, '$.reply_id')) END,
                cv.platform, cv.kind, cv.urgency, cv.tags
            FROM rt_scope s JOIN events e ON e.conversation_id = s.id
            JOIN conversations cv ON cv.id = s.id
            WHERE e.type IN ('auto_replied','reply_failed','reply_retried','reply_unconfirmed')
        """)
        # Customer messages by their own time, with the agent who answered their wait.
        c.execute(f"""
            INSERT INTO metrics_send
            SELECT v.c, v.at, 'received', COALESCE(NULLIF(g.agent, ''), '{NO_REPLY_LABEL}'),
                cv.platform, cv.kind, cv.urgency, cv.tags
            FROM rt_ev v JOIN rt_seg g ON g.c = v.c AND g.seg = v.seg
            JOIN conversations cv ON cv.id = v.c WHERE v.type = 'received'
        """)
        # Human replies, from the segments (each ends at most one): ``sent`` by its own time.
        c.execute("""
            INSERT INTO metrics_send
            SELECT g.c, g.reply_at, 'replied', g.agent, cv.platform, cv.kind, cv.urgency, cv.tags
            FROM rt_seg g JOIN conversations cv ON cv.id = g.c WHERE g.reply_at IS NOT NULL
        """)

    def _segments(self) -> None:
        """Split each conversation's events at every human reply and resolution.

        A segment is the run of events after one boundary up to and including the next;
        its customer messages wait for that boundary. ``cyc`` counts the resolutions
        before a segment: segments with the same ``cyc`` form one cycle.
        """
        c = self.conn
        c.execute("DROP TABLE IF EXISTS temp.rt_ev")
        c.execute("DROP TABLE IF EXISTS temp.rt_seg")
        c.execute(f"""
            CREATE TEMP TABLE rt_ev AS
            WITH ev AS (
                SELECT e.conversation_id AS c, e.at, e.id, e.type, e.actor
                FROM rt_scope s JOIN events e ON e.conversation_id = s.id
                WHERE e.type IN {_SCOPE_TYPES}
            ), w AS (
                SELECT c, at, type, actor,
                    COALESCE(SUM(type IN ('replied','resolved')) OVER p, 0) AS seg,
                    COALESCE(SUM(type = 'resolved') OVER p, 0) AS cyc
                FROM ev
                WINDOW p AS (PARTITION BY c ORDER BY at, id
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
            )
            SELECT * FROM w
        """)
        c.execute("""
            CREATE TEMP TABLE rt_seg AS
            SELECT c, seg, MIN(cyc) AS cyc,
                MIN(CASE WHEN type='received' OR (type='reopened' AND actor='customer')
                    THEN at END) AS start,
                SUM(type='received') AS n_in,
                MAX(CASE WHEN type='replied' THEN at END) AS reply_at,
                MAX(CASE WHEN type='replied' THEN COALESCE(actor, '') END) AS agent,
                MAX(CASE WHEN type='resolved' THEN at END) AS resolved_at,
                MAX(CASE WHEN type='resolved' THEN COALESCE(actor, '') END) AS resolved_by,
                MAX(type='breached') AS breach_rec
            FROM rt_ev GROUP BY c, seg
        """)
        c.execute("CREATE INDEX temp.rt_seg_cs ON rt_seg(c, seg)")

    def _calendar_tables(self) -> None:
        """Cumulative business time over the span the new rows need."""
        row = self.conn.execute(
            "SELECT MIN(start), MAX(MAX(COALESCE(reply_at, 0), COALESCE(resolved_at, 0), "
            "COALESCE(start, 0))) FROM rt_seg").fetchone()
        lo_ms = row[0] if row[0] is not None else self.now_ms
        hi_ms = max(row[1] or 0, self.now_ms, lo_ms)
        lo_dt = (from_ms(lo_ms) or self.now) - timedelta(days=1)
        hi_dt = (from_ms(hi_ms) or self.now) + _DUE_HORIZON
        self._fresh("rt_bh", "s INTEGER PRIMARY KEY, e INTEGER, cum INTEGER")
        self._fresh("rt_bhe", "ce INTEGER PRIMARY KEY, s INTEGER, cum INTEGER")
        rows = []
        cum = 0
        if self.calendar.is_always:
            rows.append((to_ms(lo_dt), to_ms(hi_dt), 0))
        else:
            for s, e in self.calendar.intervals(lo_dt, hi_dt):
                s_ms, e_ms = to_ms(s), to_ms(e)
                if e_ms > s_ms:
                    rows.append((s_ms, e_ms, cum))
                    cum += e_ms - s_ms
        self.conn.executemany("INSERT INTO rt_bh VALUES(?,?,?)", rows)
        self.conn.executemany("INSERT INTO rt_bhe VALUES(?,?,?)",
                              [(cu + e - s, s, cu) for s, e, cu in rows])

    def _targets(self) -> None:
        """The first- and next-response target of every (platform, kind, urgency, tags)."""
        self._fresh("rt_tgt", "platform TEXT, kind TEXT, urgency INTEGER, tags TEXT, "
                    "first_ms INTEGER, first_bh INTEGER, first_why TEXT, "
                    "next_ms INTEGER, next_bh INTEGER, next_why TEXT, "
                    "PRIMARY KEY(platform, kind, urgency, tags)")
        rows = []
        for platform, kind, urgency, tags in self.conn.execute(
                "SELECT DISTINCT c.platform, c.kind, c.urgency, c.tags FROM rt_scope s "
                "JOIN conversations c ON c.id = s.id").fetchall():
            try:
                kind_v = Kind(kind)
            except ValueError:
                kind_v = Kind.MENTION
            out: list[Any] = [platform, kind, urgency, tags]
            for answered in (False, True):
                t = sla_mod.target_for(self.cfg, platform=platform, kind=kind_v,
                                       urgency=Urgency.from_rank(urgency),
                                       answered_before=answered, tags=tags.split())
                out += [int(t.duration.total_seconds() * 1000),
                        int(t.business_hours and not self.calendar.is_always), t.reason]
            rows.append(out)
        self.conn.executemany("INSERT INTO rt_tgt VALUES(?,?,?,?,?,?,?,?,?,?)", rows)

    @staticmethod
    def _b(t: str) -> str:
        """SQL for business milliseconds from the table's start up to instant ``t``."""
        return (f"COALESCE((SELECT cum + MIN({t}, e) - s FROM rt_bh WHERE s <= {t} "
                "ORDER BY s DESC LIMIT 1), 0)")

    @staticmethod
    def _binv(x: str) -> str:
        """SQL for the instant at which ``x`` business milliseconds have passed."""
        return f"(SELECT s + ({x}) - cum FROM rt_bhe WHERE ce >= {x} ORDER BY ce LIMIT 1)"

    # reading ----------------------------------------------------------------------------
    def _local(self, t: str) -> str:
        """SQL for instant ``t`` as local wall-clock milliseconds (DST-aware over the span
        being read: one CASE branch per clock change)."""
        lo, hi = self._span
        offsets = _offsets(self.tz, lo - timedelta(days=1), hi + timedelta(days=1)) \
            if self.tz is not UTC else [(0, 0)]
        parts = " ".join(f"WHEN {t} < {nxt} THEN {off}"
                         for (_, off), (nxt, _) in pairwise(offsets))
        last = offsets[-1][1]
        return f"({t} + CASE {parts} ELSE {last} END)" if parts else f"({t} + {last})"

    def aggregate(self, by: str | None, *, lo: int, plo: int,
                  hi: int) -> dict[str, tuple[Figures, Figures]]:
        """Counts summed and durations concatenated per (period, group) in SQL.

        Grouping never sorts the whole period (SQLite sorts at about a microsecond a row):
        attribute breakdowns read an index already in (platform, kind, urgency, tags,
        agent) order and fold the combinations into groups here; time breakdowns query
        one local day at a time.
        """
        self._span = (from_ms(plo) or self.now, from_ms(hi) or self.now)
        accs: dict[tuple[int, str], _Acc] = {}

        def targets(p: int, keys: list[str]) -> list[_Acc]:
            out = []
            for k in ["", *keys] if by is not None else [""]:
                acc = accs.get((p, k))
                if acc is None:
                    acc = accs[(p, k)] = _Acc()
                out.append(acc)
            return out

        def add(p: int, keys: list[str], row: Sequence[Any]) -> None:
            counts = [int(x) for x in row[:13]]
            lists = [_ints(x) for x in row[13:]]
            for acc in targets(p, keys):
                acc.add(counts, lists)

        ranges = ((1, lo, hi), (0, plo, lo))
        agg, args = self._item_aggregates()
        if by is None:
            for p, a, b in ranges:
                add(p, [], self.conn.execute(
                    f"SELECT {agg} FROM metrics_item WHERE start >= :a AND start < :b",
                    {**args, "a": a, "b": b}).fetchone())
        elif by in _ATTR_DIMENSIONS:
            # Sorting on the one column the groups come from is cheaper than walking an
            # index in group order (that reads the rows at random).
            column = _ATTR_COLUMN[by]
            for p, a, b in ranges:
                for row in self.conn.execute(
                        f"SELECT {column}, {agg} FROM metrics_item "
                        "WHERE start >= :a AND start < :b GROUP BY 1",
                        {**args, "a": a, "b": b}):
                    add(p, _value_keys(by, row[0], NO_REPLY_LABEL), row[1:])
        else:
            hour = f"strftime('%H', {self._local('start')} / 1000, 'unixepoch')"
            for p, a, b, day in self._days(ranges):
                if by == "hour":
                    for row in self.conn.execute(
                            f"SELECT {hour}, {agg} FROM metrics_item "
                            "WHERE start >= :a AND start < :b GROUP BY 1",
                            {**args, "a": a, "b": b}):
                        add(p, [f"{_weekday_number(day)} {row[0]}"], row[1:])
                else:
                    add(p, [_day_key(by, day)], self.conn.execute(
                        f"SELECT {agg} FROM metrics_item WHERE start >= :a AND start < :b",
                        {**args, "a": a, "b": b}).fetchone())
        self._sent(by, ranges, targets)
        out: dict[str, tuple[Figures, Figures]] = {}
        for k in {k for _p, k in accs}:
            cur, old = accs.get((1, k)), accs.get((0, k))
            out[k] = (cur.figures() if cur else Figures(), old.figures() if old else Figures())
        return out

    def _item_aggregates(self) -> tuple[str, dict[str, Any]]:
        st = "(CASE WHEN state = 0 AND :now >= due THEN 2 ELSE state END)"
        agg = f"""TOTAL(nth = 1 AND cyc = 0), TOTAL(nth = 1 AND cyc > 0),
            TOTAL(nth = 1 AND excl = 1), TOTAL(nth = 1 AND excl = 2),
            TOTAL(f = 1), TOTAL(f = 1 AND reply_at IS NOT NULL),
            TOTAL(f = 1 AND cyc_resolved_at IS NOT NULL),
            TOTAL(f = 1 AND {st} > 0), TOTAL(f = 1 AND {st} = 2), TOTAL(f = 1 AND {st} = 0),
            TOTAL(f = 2 AND {st} > 0), TOTAL(f = 2 AND {st} = 2), TOTAL(f = 2 AND {st} = 0),
            group_concat(CASE WHEN f = 1 THEN cal END),
            group_concat(CASE WHEN f = 1 THEN biz END),
            group_concat(CASE WHEN f = 2 THEN cal END),
            group_concat(CASE WHEN f = 2 THEN biz END),
            group_concat(CASE WHEN f = 1 THEN res_cal END),
            group_concat(CASE WHEN f = 1 THEN res_biz END)"""
        return agg, {"now": self.now_ms}

    def _attr_index(self, a: int, b: int) -> str:
        """Walk the attribute index when the range is a good part of the table (no sort);
        for a small range a sort of its few rows is cheaper than reading every entry."""
        marks = ",".join("?" * len(_SEND_NAMES))
        inside = self.conn.execute(f"SELECT count(*) FROM metrics_send WHERE type IN ({marks}) "
                                   "AND at >= ? AND at < ?", (*_SEND_NAMES, a, b)).fetchone()[0]
        total = self.conn.execute("SELECT count(*) FROM metrics_send").fetchone()[0]
        return " INDEXED BY metrics_send_attr" if inside * 4 > total else ""

    def _days(self, ranges: Sequence[tuple[int, int, int]]
              ) -> Iterator[tuple[int, int, int, date]]:
        """``(p, start_ms, end_ms, local date)`` for every local day inside the ranges."""
        for p, a, b in ranges:
            if b <= a:
                continue
            day = (from_ms(a) or self.now).astimezone(self.tz).date()
            while True:
                d0 = to_ms(datetime.combine(day, time(), tzinfo=self.tz))
                d1 = to_ms(datetime.combine(day + timedelta(days=1), time(), tzinfo=self.tz))
                s, e = max(a, d0), min(b, d1)
                if s < e:
                    yield p, s, e, day
                if d1 >= b:
                    break
                day += timedelta(days=1)

    def _sent(self, by: str | None, ranges: Sequence[tuple[int, int, int]],
              targets: Any) -> None:
        """Messages received and replies sent, failed, retried: counted by their own time."""
        marks = ",".join("?" * len(_SEND_NAMES))
        by_type = (f"SELECT type, COUNT(*) FROM metrics_send INDEXED BY metrics_send_type "
                   f"WHERE type IN ({marks}) AND at >= ? AND at < ? GROUP BY type")

        def add(p: int, keys: list[str], type_: str, n: int) -> None:
            name = _SEND_NAMES[type_]
            for acc in targets(p, keys):
                setattr(acc, name, getattr(acc, name) + n)

        if by is None:
            for p, a, b in ranges:
                for type_, n in self.conn.execute(by_type, (*_SEND_NAMES, a, b)):
                    add(p, [], type_, n)
        elif by in _ATTR_DIMENSIONS:
            for p, a, b in ranges:
                for row in self.conn.execute(
                        "SELECT platform, kind, urgency, tags, agent, type, COUNT(*) "
                        f"FROM metrics_send{self._attr_index(a, b)} "
                        f"WHERE type IN ({marks}) AND at >= ? AND at < ? "
                        "GROUP BY platform, kind, urgency, tags, agent, type",
                        (*_SEND_NAMES, a, b)):
                    add(p, _attr_keys(by, row[:5], UNKNOWN_LABEL), row[5], row[6])
        else:
            hour = f"strftime('%H', {self._local('at')} / 1000, 'unixepoch')"
            for p, a, b, day in self._days(ranges):
                if by == "hour":
                    for h, type_, n in self.conn.execute(
                            f"SELECT {hour}, type, COUNT(*) FROM metrics_send "
                            f"WHERE type IN ({marks}) AND at >= ? AND at < ? GROUP BY 1, 2",
                            (*_SEND_NAMES, a, b)):
                        add(p, [f"{_weekday_number(day)} {h}"], type_, n)
                else:
                    for type_, n in self.conn.execute(by_type, (*_SEND_NAMES, a, b)):
                        add(p, [_day_key(by, day)], type_, n)

    def order_keys(self, by: str | None,
                   grouped: dict[str, tuple[Figures, Figures]]) -> list[str]:
        """Groups with data in the current period, in a reading order for ``by``."""
        keys = [k for k, (cur, _old) in grouped.items() if k and _has_data(cur)]
        if by == "day":
            return sorted(keys)
        if by in ("weekday", "hour"):
            return sorted(keys, key=lambda k: ((int(k[0]) + 6) % 7, k[1:]))
        if by == "urgency":
            return sorted(keys, key=int)
        return sorted(keys, key=lambda k: (-grouped[k][0].needed_reply,
                                           -grouped[k][0].received, k))

    # rows for --conversations and --explain ---------------------------------------------
    def cycle_rows(self, where: str, args: tuple[Any, ...]) -> list[CycleRow]:
        out = []
        for r in self.conn.execute(
                "SELECT c, cyc, platform, kind, urgency, tags, start, reply_at, agent, cal, "
                "biz, due, state, breach_rec, cyc_resolved_at, cyc_resolved_by, res_cal, "
                f"res_biz, excl FROM metrics_item WHERE nth = 1 AND {where} "
                "ORDER BY start, c, cyc", args):
            excluded = _EXCLUDED.get(r[18])
            out.append(CycleRow(
                conversation_id=r[0], cycle=r[1], platform=r[2], kind=r[3],
                urgency=str(Urgency.from_rank(r[4])), tags=r[5].split(),
                start=from_ms(r[6]) or self.now, first_reply_at=from_ms(r[7]),
                agent=r[8] if r[7] is not None else None,
                first_response_seconds=_sec(r[9]), first_response_business_seconds=_sec(r[10]),
                due_at=from_ms(r[11]),
                breached=self._breached(r[11], r[12]) if r[11] is not None else None,
                resolved_at=from_ms(r[14]), resolved_by=r[15] if r[14] is not None else None,
                resolution_seconds=_sec(r[16]), resolution_business_seconds=_sec(r[17]),
                excluded=excluded))
        return out

    def _breached(self, due: int | None, state: int) -> bool:
        return state == 2 or (state == 0 and due is not None and self.now_ms >= due)

    def item_rows(self, conversation_id: int) -> list[ItemRow]:
        out = []
        for r in self.conn.execute(
                "SELECT c, cyc, nth, start, reply_at, agent, resolved_at, resolved_by, cal, biz, "
                "due, tgt_why, state, breach_rec, excl, n_in FROM metrics_item "
                "WHERE c = ? ORDER BY seg", (conversation_id,)):
            excluded = _EXCLUDED.get(r[14])
            out.append(ItemRow(
                conversation_id=r[0], cycle=r[1], first=r[2] == 1,
                start=from_ms(r[3]) or self.now, reply_at=from_ms(r[4]),
                agent=r[5] if r[4] is not None else None, resolved_at=from_ms(r[6]),
                resolved_by=r[7] if r[6] is not None else None, seconds=_sec(r[8]),
                business_seconds=_sec(r[9]), due_at=from_ms(r[10]), target=r[11] or "",
                breached=self._breached(r[10], r[12]), breach_recorded=bool(r[13]),
                excluded=excluded, messages=r[15]))
        return out


def _attr_keys(by: str, attrs: Sequence[Any], no_agent: str) -> list[str]:
    """The group(s) of one (platform, kind, urgency, tags, agent) combination."""
    return _value_keys(by, attrs[_ATTR_DIMENSIONS.index(by)], no_agent)


def _value_keys(by: str, value: Any, no_agent: str) -> list[str]:
    """The group(s) of one value of the column ``by`` reads."""
    if by == "kind":
        return ["private" if value in _PRIVATE_KINDS else "public"]
    if by == "urgency":
        return [str(value)]
    if by == "tag":
        return (value or "").split() or [NONE_LABEL]
    if by == "agent":
        # NULL: nobody replied; "": a reply whose sender was not recorded.
        return [no_agent if value is None else (value or UNKNOWN_LABEL)]
    return [str(value)]


def _weekday_number(day: date) -> int:
    """strftime's %w: Sunday is 0."""
    return (day.weekday() + 1) % 7


def _day_key(by: str, day: date) -> str:
    return day.isoformat() if by == "day" else str(_weekday_number(day))


def _sec(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def _has_data(f: Figures) -> bool:
    return bool(f.received or f.needed_reply or f.spam or f.closed_by_rule or f.sent
                or f.auto_sent or f.failed or f.retried or f.unconfirmed
                or f.first_response.count or f.next_response.count
                or f.sla_first.pending or f.sla_next.pending)


def group_label(by: str | None, key: str) -> str:
    """A readable name for a group key (urgency ranks, weekday numbers)."""
    if by == "urgency":
        try:
            return str(Urgency.from_rank(int(key)))
        except (ValueError, KeyError):
            return key
    if by == "weekday":
        return WEEKDAY_NAMES[(int(key) + 6) % 7]
    if by == "hour":
        day, hour = key.split()
        return f"{WEEKDAY_NAMES[(int(day) + 6) % 7]} {hour}:00"
    return key
