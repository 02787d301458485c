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
  turned once per report into cumulative open intervals so each figure is two lookups.

Items and cycles belong to the period in which they *start* (the customer's message), so
"how fast did we answer what customers sent this week" is one period; replies sent later
still count. Received messages and sent replies are counted by their own time.

The work is SQL over temporary tables (window functions split each conversation's
events into cycles and items) inside one read transaction, so a report over a million
messages is a few scans, and the figures form one consistent snapshot.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
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
    with _Run(store, cfg, now, zone) as run:
        run.scope_period(prev.start, period.end)
        run.build(lo=to_ms(period.start), plo=to_ms(prev.start), hi=to_ms(period.end))
        totals = run.figures(None)
        groups: list[Group] = []
        if by is not None:
            grouped = run.figures(by)
            for key in run.order_keys(by, grouped):
                cur, old = grouped.get(key, (Figures(), Figures()))
                groups.append(Group(key, cur, old))
    cur_total, prev_total = totals.get("", (Figures(), Figures()))
    return Report(period, prev, now, run.zone_name, by, cur_total, prev_total, groups)


def conversation_rows(store: Any, period: Period, *, sla: SlaConfig | None = None,
                      now: datetime | None = None) -> list[CycleRow]:
    """One row per cycle starting in ``period`` (a reopened conversation has several)."""
    cfg = sla or SlaConfig()
    now = now or utcnow()
    with _Run(store, cfg, now, None) as run:
        run.scope_period(period.start, period.end)
        lo = to_ms(period.start)
        run.build(lo=lo, plo=lo, hi=to_ms(period.end))
        return run.cycle_rows(current_only=True)


def explain(store: Any, conversation_id: int, *, sla: SlaConfig | None = None,
            now: datetime | None = None) -> Explanation:
    """The events of one conversation and the cycles and items computed from them."""
    cfg = sla or SlaConfig()
    now = now or utcnow()
    with _Run(store, cfg, now, None) as run:
        conv = run.conn.execute("SELECT platform, kind, urgency, tags FROM conversations "
                                "WHERE id=?", (conversation_id,)).fetchone()
        if conv is None:
            raise MetricsError(f"no conversation with id {conversation_id}")
        events = [
            (from_ms(r[0]) or now, r[1], r[2], json.loads(r[3] or "{}"))
            for r in run.conn.execute("SELECT at, type, actor, data FROM events WHERE "
                                      "conversation_id=? ORDER BY at, id", (conversation_id,))
        ]
        run.scope_ids([conversation_id])
        run.build(lo=0, plo=0, hi=1 << 62)
        return Explanation(
            conversation_id=conversation_id, platform=conv[0], kind=conv[1],
            urgency=str(Urgency.from_rank(conv[2])), tags=conv[3].split(), zone=run.zone_name,
            events=events, cycles=run.cycle_rows(current_only=False), items=run.item_rows())


# -- the work ------------------------------------------------------------------------------
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


class _Run:
    """One report: a read transaction, temporary tables, then rolled back."""

    def __init__(self, store: Any, cfg: SlaConfig, now: datetime, zone: str | None) -> None:
        self.store = store
        self.conn: sqlite3.Connection = store.conn
        self.cfg = cfg
        self.now = now
        self.now_ms = to_ms(now)
        self.calendar: BusinessCalendar = cfg.calendar
        self.zone_name = zone or cfg.calendar.timezone_name
        try:
            self.tz = UTC if self.zone_name == "UTC" else ZoneInfo(self.zone_name)
        except (KeyError, ValueError) as exc:
            raise MetricsError(f"unknown time zone {self.zone_name!r}") from exc
        self.lo = self.plo = self.hi = 0
        self._local_expr = "0"
        self._tags_built = False

    def __enter__(self) -> _Run:
        lock = getattr(self.store, "_lock", None)
        self._lock = lock
        if lock is not None:
            lock.acquire()
        try:
            # A deferred transaction: one snapshot for every query, no write lock on the
            # database (temporary tables live in their own file), undone at the end.
            self.conn.execute("BEGIN")
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.conn.execute("ROLLBACK")
        finally:
            if self._lock is not None:
                self._lock.release()

    # scope ----------------------------------------------------------------------------
    def _fresh(self, name: str, columns: str) -> None:
        self.conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
        self.conn.execute(f"CREATE TEMP TABLE {name}({columns})")

    def scope_period(self, start: datetime, end: datetime) -> None:
        self._fresh("rt_scope", "id INTEGER PRIMARY KEY")
        self.conn.execute(
            "INSERT OR IGNORE INTO rt_scope SELECT DISTINCT conversation_id FROM events "
            "WHERE at >= ? AND at < ? AND conversation_id IS NOT NULL AND (type='received' "
            "OR (type='reopened' AND actor='customer'))", (to_ms(start), to_ms(end)))

    def scope_ids(self, ids: Iterable[int]) -> None:
        self._fresh("rt_scope", "id INTEGER PRIMARY KEY")
        self.conn.executemany("INSERT OR IGNORE INTO rt_scope VALUES(?)", [(i,) for i in ids])

    # tables -----------------------------------------------------------------------------
    def build(self, *, lo: int, plo: int, hi: int) -> None:
        self.lo, self.plo, self.hi = lo, plo, hi
        self._segments()
        self._calendar_tables()
        self._targets()
        self._items()
        self._cycles()

    def _segments(self) -> None:
        """Split each conversation's events at every human reply and resolution.

        A segment is the run of events after one boundary up to and including the next;
        its customer messages wait for that boundary. ``cyc`` counts the resolutions
        before a segment: segments with the same ``cyc`` form one cycle.
        """
        c = self.conn
        c.execute("DROP TABLE IF EXISTS temp.rt_seg")
        c.execute(f"""
            CREATE TEMP TABLE rt_seg AS
            WITH ev AS (
                SELECT e.conversation_id AS c, e.at, e.id, e.type, e.actor
                FROM rt_scope s JOIN events e ON e.conversation_id = s.id
                WHERE e.type IN {_SCOPE_TYPES} AND e.at <= {self.now_ms}
            ), w AS (
                SELECT c, at, type, actor,
                    COALESCE(SUM(type IN ('replied','resolved')) OVER p, 0) AS seg,
                    COALESCE(SUM(type = 'resolved') OVER p, 0) AS cyc
                FROM ev
                WINDOW p AS (PARTITION BY c ORDER BY at, id
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
            )
            SELECT c, seg, MIN(cyc) AS cyc,
                MIN(CASE WHEN type='received' OR (type='reopened' AND actor='customer')
                    THEN at END) AS start,
                SUM(type='received') AS n_in,
                MAX(CASE WHEN type='replied' THEN at END) AS reply_at,
                MAX(CASE WHEN type='replied' THEN COALESCE(actor, '') END) AS agent,
                MAX(CASE WHEN type='resolved' THEN at END) AS resolved_at,
                MAX(CASE WHEN type='resolved' THEN COALESCE(actor, '') END) AS resolved_by,
                MAX(type='breached') AS breach_rec
            FROM w GROUP BY c, seg
        """)

    def _calendar_tables(self) -> None:
        """Cumulative business time over the span the items need, and the zone's offsets."""
        row = self.conn.execute(
            "SELECT MIN(start), MAX(MAX(COALESCE(reply_at, 0), COALESCE(resolved_at, 0), start)) "
            "FROM rt_seg WHERE start >= ? AND start < ?", (self.plo, self.hi)).fetchone()
        lo_ms = row[0] if row[0] is not None else self.plo
        hi_ms = max(row[1] or 0, self.now_ms, lo_ms)
        lo_dt = (from_ms(max(lo_ms, 0)) or self.now) - timedelta(days=1)
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
        offsets = _offsets(self.tz, lo_dt, hi_dt)
        parts = " ".join(f"WHEN {{t}} < {nxt} THEN {off}"
                         for (_, off), (nxt, _) in pairwise(offsets))
        last = offsets[-1][1]
        self._local_expr = f"({{t}} + CASE {parts} ELSE {last} END)" if parts \
            else f"({{t}} + {last})"

    def _local(self, t: str) -> str:
        return self._local_expr.replace("{t}", t)

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

    def _items(self) -> None:
        c = self.conn
        c.execute("DROP TABLE IF EXISTS temp.rt_item")
        c.execute(f"""
            CREATE TEMP TABLE rt_item AS
            WITH i AS (
                SELECT g.*, ROW_NUMBER() OVER (PARTITION BY g.c, g.cyc ORDER BY g.seg) AS nth
                FROM rt_seg g WHERE g.start IS NOT NULL
            ), j AS MATERIALIZED (
                SELECT i.*, cv.platform, cv.kind, cv.urgency, cv.tags,
                    (cv.tags LIKE '% spam %') AS spam,
                    CASE WHEN i.start >= :lo AND i.start < :hi THEN 1
                         WHEN i.start >= :plo AND i.start < :lo THEN 0 END AS p,
                    COALESCE(i.reply_at, i.resolved_at) AS end_at,
                    CASE WHEN i.nth = 1 THEN t.first_ms ELSE t.next_ms END AS tgt_ms,
                    CASE WHEN i.nth = 1 THEN t.first_bh ELSE t.next_bh END AS tgt_bh,
                    CASE WHEN i.nth = 1 THEN t.first_why ELSE t.next_why END AS tgt_why,
                    {self._b('i.start')} AS b0,
                    CASE WHEN i.reply_at IS NOT NULL THEN {self._b('i.reply_at')} END AS b1
                FROM i JOIN conversations cv ON cv.id = i.c
                LEFT JOIN rt_tgt t ON t.platform = cv.platform AND t.kind = cv.kind
                    AND t.urgency = cv.urgency AND t.tags = cv.tags
                WHERE i.start >= :plo AND i.start < :hi
            ), k AS MATERIALIZED (
                SELECT j.*, j.reply_at - j.start AS cal, j.b1 - j.b0 AS biz,
                    CASE WHEN tgt_ms IS NULL THEN NULL
                         WHEN tgt_bh THEN {self._binv('j.b0 + j.tgt_ms')}
                         ELSE j.start + j.tgt_ms END AS due
                FROM j
            )
            SELECT k.*,
                CASE WHEN spam THEN 'spam'
                     WHEN reply_at IS NULL AND resolved_by = 'rule' THEN 'closed by rule'
                END AS excluded,
                (breach_rec OR (due IS NOT NULL AND COALESCE(end_at, :now) >= due)) AS breached
            FROM k
        """, {"lo": self.lo, "plo": self.plo, "hi": self.hi, "now": self.now_ms})

    def _cycles(self) -> None:
        c = self.conn
        c.execute("DROP TABLE IF EXISTS temp.rt_cyc")
        c.execute(f"""
            CREATE TEMP TABLE rt_cyc AS
            WITH r AS (
                SELECT c, cyc, MAX(resolved_at) AS resolved_at,
                    MAX(CASE WHEN resolved_at IS NOT NULL THEN resolved_by END) AS resolved_by
                FROM rt_seg GROUP BY c, cyc
            ), f AS MATERIALIZED (
                SELECT i.c, i.cyc, i.p, i.start, i.reply_at AS first_reply, i.agent, i.cal,
                    i.biz, i.due, i.breached, i.spam, i.platform, i.kind, i.urgency, i.tags,
                    r.resolved_at, r.resolved_by, i.b0,
                    CASE WHEN r.resolved_at IS NOT NULL THEN {self._b('r.resolved_at')} END AS b2
                FROM rt_item i JOIN r ON r.c = i.c AND r.cyc = i.cyc
                WHERE i.nth = 1
            )
            SELECT f.*, resolved_at - start AS res_cal, b2 - b0 AS res_biz,
                CASE WHEN spam THEN 'spam'
                     WHEN first_reply IS NULL AND resolved_by = 'rule' THEN 'closed by rule'
                END AS excluded
            FROM f
        """)

    def _ensure_tags(self) -> None:
        if self._tags_built:
            return
        self._fresh("rt_tags", "c INTEGER, tag TEXT")
        rows: list[tuple[int, str]] = []
        for cid, tags in self.conn.execute(
                "SELECT c.id, c.tags FROM rt_scope s JOIN conversations c ON c.id = s.id"):
            names = tags.split()
            rows.extend((cid, t) for t in (names or [NONE_LABEL]))
        self.conn.executemany("INSERT INTO rt_tags VALUES(?,?)", rows)
        self.conn.execute("CREATE INDEX temp.rt_tags_c ON rt_tags(c)")
        self._tags_built = True

    # grouping ---------------------------------------------------------------------------
    def _group(self, by: str | None, *, cid: str, time: str, agent: str | None,
               conv: str) -> tuple[str, str]:
        """(join clause, key expression) for rows whose conversation id is ``cid``."""
        if by is None:
            return "", "''"
        if by == "platform":
            return "", f"{conv}.platform"
        if by == "kind":
            kinds = ",".join(f"'{k}'" for k in _PRIVATE_KINDS)
            return "", f"CASE WHEN {conv}.kind IN ({kinds}) THEN 'private' ELSE 'public' END"
        if by == "urgency":
            return "", f"CAST({conv}.urgency AS TEXT)"
        if by == "tag":
            self._ensure_tags()
            return f" JOIN rt_tags tg ON tg.c = {cid}", "tg.tag"
        if by == "agent":
            if agent is None:
                return "", f"'{NO_REPLY_LABEL}'"
            return "", f"COALESCE(NULLIF({agent}, ''), '{NO_REPLY_LABEL}')"
        local = self._local(time)
        if by == "day":
            return "", f"date({local} / 1000, 'unixepoch')"
        if by == "weekday":
            return "", f"strftime('%w', {local} / 1000, 'unixepoch')"
        return "", f"strftime('%w %H', {local} / 1000, 'unixepoch')"

    def figures(self, by: str | None) -> dict[str, tuple[Figures, Figures]]:
        out: dict[str, tuple[Figures, Figures]] = {}

        def fig(p: int, key: Any) -> Figures:
            pair = out.setdefault(str(key), (Figures(), Figures()))
            return pair[0] if p == 1 else pair[1]

        self._received(by, fig)
        self._cycle_counts(by, fig)
        self._item_figures(by, fig)
        self._sent(by, fig)
        return out

    def _received(self, by: str | None, fig: Any) -> None:
        c = self.conn
        if by == "agent":
            # For the agent breakdown: the customer messages of the items each one answered.
            join, key = self._group(by, cid="i.c", time="i.start", agent="i.agent", conv="i")
            rows = c.execute(f"SELECT p, {key}, SUM(n_in) FROM rt_item i{join} "
                             f"WHERE p IS NOT NULL GROUP BY 1, 2").fetchall()
        else:
            join, key = self._group(by, cid="e.conversation_id", time="e.at", agent=None, conv="cv")
            rows = c.execute(
                f"SELECT CASE WHEN e.at >= :lo THEN 1 ELSE 0 END, {key}, COUNT(*) "
                f"FROM events e JOIN conversations cv ON cv.id = e.conversation_id{join} "
                f"WHERE e.type = 'received' AND e.at >= :plo AND e.at < :hi GROUP BY 1, 2",
                {"lo": self.lo, "plo": self.plo, "hi": min(self.hi, self.now_ms + 1)}).fetchall()
        for p, k, n in rows:
            fig(p, k).received = n

    def _cycle_counts(self, by: str | None, fig: Any) -> None:
        join, key = self._group(by, cid="y.c", time="y.start", agent="y.agent", conv="y")
        rows = self.conn.execute(f"""
            SELECT p, {key},
                SUM(cyc = 0), SUM(cyc > 0),
                SUM(excluded IS NULL), SUM(excluded IS NULL AND first_reply IS NOT NULL),
                SUM(excluded = 'spam'), SUM(excluded = 'closed by rule'),
                SUM(excluded IS NULL AND resolved_at IS NOT NULL)
            FROM rt_cyc y{join} WHERE p IS NOT NULL GROUP BY 1, 2
        """).fetchall()
        for row in rows:
            p, k = row[:2]
            new, reopened, needed, replied, spam, by_rule, resolved = (int(x or 0)
                                                                       for x in row[2:])
            f = fig(p, k)
            f.new_conversations, f.reopened = new, reopened
            f.needed_reply, f.replied, f.spam, f.closed_by_rule = needed, replied, spam, by_rule
            f.resolved = resolved
        where = "p IS NOT NULL AND excluded IS NULL AND resolved_at IS NOT NULL"
        for attr, col in (("resolution", "res_cal"), ("resolution_business", "res_biz")):
            for (p, k), dist in self._distributions("rt_cyc", "y", col, where, join,
                                                    key).items():
                setattr(fig(p, k), attr, dist)

    def _item_figures(self, by: str | None, fig: Any) -> None:
        join, key = self._group(by, cid="i.c", time="i.start", agent="i.agent", conv="i")
        base = "p IS NOT NULL AND excluded IS NULL"
        for first, names in ((1, ("first_response", "first_response_business")),
                             (0, ("next_response", "next_response_business"))):
            nth = "nth = 1" if first else "nth > 1"
            where = f"{base} AND {nth} AND reply_at IS NOT NULL"
            for attr, col in zip(names, ("cal", "biz"), strict=True):
                for (p, k), dist in self._distributions("rt_item", "i", col, where, join,
                                                        key).items():
                    setattr(fig(p, k), attr, dist)
            for p, k, decided, breached, pending in self.conn.execute(f"""
                    SELECT p, {key},
                        SUM(due IS NOT NULL AND (end_at IS NOT NULL OR breached)),
                        SUM(due IS NOT NULL AND breached),
                        SUM(due IS NOT NULL AND end_at IS NULL AND NOT breached)
                    FROM rt_item i{join} WHERE {base} AND {nth} GROUP BY 1, 2"""):
                att = Attainment(decided or 0, breached or 0, pending or 0)
                if first:
                    fig(p, k).sla_first = att
                else:
                    fig(p, k).sla_next = att

    def _distributions(self, table: str, alias: str, col: str, where: str, join: str,
                       key: str) -> dict[tuple[int, Any], Distribution]:
        limits = BUCKET_LIMITS
        b = [f"SUM({col} <= {limits[0] * 1000})"]
        b += [f"SUM({col} > {lo * 1000} AND {col} <= {hi * 1000})"
              for lo, hi in pairwise(limits)]
        b.append(f"SUM({col} > {limits[-1] * 1000})")
        out: dict[tuple[int, Any], Distribution] = {}
        for row in self.conn.execute(
                f"SELECT p, {key}, COUNT({col}), AVG({col}), {', '.join(b)} "
                f"FROM {table} {alias}{join} WHERE {where} AND {col} IS NOT NULL GROUP BY 1, 2"):
            p, k, n, mean = row[:4]
            out[(p, k)] = Distribution(n, mean / 1000 if mean is not None else None, None, None,
                                       tuple(int(x or 0) for x in row[4:]))
        ranks: dict[tuple[int, Any], dict[int, int]] = {}
        for p, k, rn, v in self.conn.execute(f"""
                SELECT p, k, rn, v FROM (
                    SELECT {alias}.p AS p, {key} AS k, {col} AS v,
                        ROW_NUMBER() OVER (PARTITION BY {alias}.p, {key} ORDER BY {col}) AS rn,
                        COUNT(*) OVER (PARTITION BY {alias}.p, {key}) AS n
                    FROM {table} {alias}{join} WHERE {where} AND {col} IS NOT NULL
                ) WHERE rn = (n + 1) / 2 OR rn = (n + 2) / 2 OR rn = (9 * n + 9) / 10"""):
            ranks.setdefault((p, k), {})[rn] = v
        for pk, dist in out.items():
            r = ranks.get(pk, {})
            n = dist.count
            lo_v, hi_v = r.get((n + 1) // 2), r.get((n + 2) // 2)
            if lo_v is not None and hi_v is not None:
                dist.median = (lo_v + hi_v) / 2000
            p90 = r.get((9 * n + 9) // 10)
            dist.p90 = p90 / 1000 if p90 is not None else None
        return out

    def _sent(self, by: str | None, fig: Any) -> None:
        # Failures and retries are the writer's: their agent is the reply's own.
        agent = ("CASE WHEN e.type IN ('replied','auto_replied') THEN e.actor ELSE "
                 "(SELECT r.agent FROM replies r WHERE r.id = "
                 "json_extract(e.data, '$.reply_id')) END")
        join, key = self._group(by, cid="e.conversation_id", time="e.at", agent=agent, conv="cv")
        rows = self.conn.execute(
            f"SELECT CASE WHEN e.at >= :lo THEN 1 ELSE 0 END, {key}, e.type, COUNT(*) "
            f"FROM events e JOIN conversations cv ON cv.id = e.conversation_id{join} "
            "WHERE e.at >= :plo AND e.at < :hi AND e.type IN ('replied','auto_replied',"
            "'reply_failed','reply_retried','reply_unconfirmed') GROUP BY 1, 2, 3",
            {"lo": self.lo, "plo": self.plo, "hi": min(self.hi, self.now_ms + 1)}).fetchall()
        names = {"replied": "sent", "auto_replied": "auto_sent", "reply_failed": "failed",
                 "reply_retried": "retried", "reply_unconfirmed": "unconfirmed"}
        for p, k, type_, n in rows:
            setattr(fig(p, k), names[type_], n)

    def order_keys(self, by: str, grouped: dict[str, tuple[Figures, Figures]]) -> list[str]:
        """Groups of the current period, in a reading order for ``by``."""
        keys = [k for k, (cur, _old) in grouped.items() if _has_data(cur)]
        if by in ("day", "weekday", "hour"):
            return sorted(keys, key=lambda k: ((int(k[0]) + 6) % 7, k[1:]) if by != "day"
                          else (0, k))
        if by == "urgency":
            return sorted(keys, key=int)
        return sorted(keys, key=lambda k: (-grouped[k][0].needed_reply,
                                           -grouped[k][0].received, k))

    # rows for --conversations and --explain ---------------------------------------------
    def cycle_rows(self, *, current_only: bool) -> list[CycleRow]:
        where = "p = 1" if current_only else "p IS NOT NULL"
        out = []
        for r in self.conn.execute(
                "SELECT c, cyc, platform, kind, urgency, tags, start, first_reply, agent, cal, "
                "biz, due, breached, resolved_at, resolved_by, res_cal, res_biz, excluded "
                f"FROM rt_cyc WHERE {where} ORDER BY start, c, cyc"):
            out.append(CycleRow(
                conversation_id=r[0], cycle=r[1], platform=r[2], kind=r[3],
                urgency=str(Urgency.from_rank(r[4])), tags=r[5].split(),
                start=from_ms(r[6]) or self.now, first_reply_at=from_ms(r[7]),
                agent=r[8] if r[7] is not None else None,
                first_response_seconds=_sec(r[9]), first_response_business_seconds=_sec(r[10]),
                due_at=from_ms(r[11]), breached=bool(r[12]) if r[11] is not None else None,
                resolved_at=from_ms(r[13]), resolved_by=r[14] if r[13] is not None else None,
                resolution_seconds=_sec(r[15]), resolution_business_seconds=_sec(r[16]),
                excluded=r[17]))
        return out

    def item_rows(self) -> list[ItemRow]:
        out = []
        for r in self.conn.execute(
                "SELECT c, cyc, nth, start, reply_at, agent, resolved_at, resolved_by, cal, biz, "
                "due, tgt_why, breached, breach_rec, excluded, n_in FROM rt_item "
                "WHERE p IS NOT NULL ORDER BY start, c, seg"):
            out.append(ItemRow(
                conversation_id=r[0], cycle=r[1], first=r[2] == 1,
                start=from_ms(r[3]) or self.now, reply_at=from_ms(r[4]),
                agent=r[5] if r[4] is not None else None, resolved_at=from_ms(r[6]),
                resolved_by=r[7] if r[6] is not None else None, seconds=_sec(r[8]),
                business_seconds=_sec(r[9]), due_at=from_ms(r[10]), target=r[11] or "",
                breached=bool(r[12]), breach_recorded=bool(r[13]), excluded=r[14],
                messages=r[15]))
        return out


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

