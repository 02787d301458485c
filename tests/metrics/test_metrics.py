"""Exact figures from a hand-built week (Europe/Berlin business hours, Mon-Fri 09-17).

November 2026 is CET (UTC+1): the office is open 08:00-16:00 UTC.

Conversations (times UTC), period Mon 2026-11-02 .. Mon 2026-11-09, now Mon 11-09 12:00:

A x dm     Mon 09:00 in, 09:00:30 auto-reply, 09:20 ana (FRT 20m), 10:00 + 10:05 in,
           10:50 ben (NRT 50m), 11:00 resolved (resolution 2h)
B mastodon mention  Fri 15:30 in (16:30 Berlin), Mon 11-09 08:30 ana: FRT 65h calendar,
           1h business (30m Friday + 30m Monday); public 4h target due Mon 11:30: met
C email    Tue 08:00 in, reply queued 08:10, failed 08:11, retried 09:25, sent 09:30 by
           chloe: FRT 90m, due 09:00: breached (the sweep at 09:05 records it)
D x dm     Tue 12:00 in, 12:45 reply from the platform's own app (agent "external")
E x dm     Wed 09:00 in, 09:10 ana, resolved 09:30; 13:00 the customer writes again
           (reopened: a new cycle), 13:40 ben, resolved 14:00
F x mention Wed 11:00 "crypto": a rule tags spam and closes it
G x mention Wed 15:00 "thanks": a rule closes it without a reply
H x dm     Thu 08:00 in, never answered: due Thu 09:00, breached by now
I x dm     Thu 10:00 in, resolved by ana at 10:30 without a reply (before its due time)
P x dm     (previous period) Wed 10-28 09:00 in, 09:30 ana: FRT 30m
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from replydeck.inbox import metrics
from replydeck.inbox.model import Kind
from tests.metrics.world import World, berlin_config, utc

PERIOD = metrics.Period(utc(2026, 11, 2), utc(2026, 11, 9))
NOW = utc(2026, 11, 9, 12)


def build_week(w: World) -> dict[str, int]:
    ids: dict[str, int] = {}
    ids["P"] = p = w.customer("P", utc(2026, 10, 28, 9))
    w.reply(p, utc(2026, 10, 28, 9, 30), "ana")

    ids["A"] = a = w.customer("A", utc(2026, 11, 2, 9))
    w.reply(a, utc(2026, 11, 2, 9, 0, 30), "auto", automated=True)
    w.reply(a, utc(2026, 11, 2, 9, 20), "ana")
    w.customer("A", utc(2026, 11, 2, 10))
    w.customer("A", utc(2026, 11, 2, 10, 5))
    w.reply(a, utc(2026, 11, 2, 10, 50), "ben")
    w.resolve(a, utc(2026, 11, 2, 11))

    ids["C"] = c = w.customer("C", utc(2026, 11, 3, 8), platform="email", kind=Kind.EMAIL)
    w.failed_then_retried(c, "chloe", queued=utc(2026, 11, 3, 8, 10),
                          failed=utc(2026, 11, 3, 8, 11), retried=utc(2026, 11, 3, 9, 25),
                          sent=utc(2026, 11, 3, 9, 30), sweep_at=utc(2026, 11, 3, 9, 5))
    ids["D"] = d = w.customer("D", utc(2026, 11, 3, 12))
    w.external_reply(d, utc(2026, 11, 3, 12, 45))

    ids["E"] = e = w.customer("E", utc(2026, 11, 4, 9))
    w.reply(e, utc(2026, 11, 4, 9, 10), "ana")
    w.resolve(e, utc(2026, 11, 4, 9, 30))
    ids["F"] = w.customer("F", utc(2026, 11, 4, 11), "free crypto here", kind=Kind.MENTION)
    w.customer("E", utc(2026, 11, 4, 13))
    w.reply(e, utc(2026, 11, 4, 13, 40), "ben")
    w.resolve(e, utc(2026, 11, 4, 14), actor="ben")
    ids["G"] = w.customer("G", utc(2026, 11, 4, 15), "thanks", kind=Kind.MENTION)

    ids["H"] = w.customer("H", utc(2026, 11, 5, 8))
    ids["I"] = i = w.customer("I", utc(2026, 11, 5, 10))
    w.resolve(i, utc(2026, 11, 5, 10, 30))
    ids["B"] = w.customer("B", utc(2026, 11, 6, 15, 30), platform="mastodon", kind=Kind.MENTION)
    # The sweep runs now and then; by Monday morning H is long overdue, B not yet.
    w.store.sweep(utc(2026, 11, 9, 8))
    w.reply(ids["B"], utc(2026, 11, 9, 8, 30), "ana")
    return ids


@pytest.fixture
def week(tmp_path: Path) -> Iterator[tuple[World, dict[str, int]]]:
    w = World(tmp_path / "week.db", berlin_config())
    ids = build_week(w)
    yield w, ids
    w.close()


def report(w: World, by: str | None = None) -> metrics.Report:
    return metrics.compute(w.store, PERIOD, sla=w.cfg, by=by, now=NOW)


def test_counts_and_reply_rate(week: tuple[World, dict[str, int]]) -> None:
    w, _ = week
    cur = report(w).current
    assert cur.received == 12          # A 3, B-I 1 each, E 2
    assert cur.new_conversations == 9  # A-I
    assert cur.reopened == 1           # E's second cycle
    # Needing a reply: A B C D E E' H I; spam F and rule-closed G apart.
    assert (cur.needed_reply, cur.replied, cur.unanswered) == (8, 6, 2)
    assert cur.reply_rate == 0.75
    assert (cur.spam, cur.closed_by_rule) == (1, 1)
    assert cur.resolved == 4           # A, E, E', I


def test_first_response_calendar_and_business(week: tuple[World, dict[str, int]]) -> None:
    w, _ = week
    cur = report(w).current
    frt = cur.first_response
    # E 600, A 1200 (the auto-reply at 30 s does not stop the clock), E' 2400, D 2700,
    # C 5400 (the failed attempt at 08:11 is not a reply), B 234000 (Fri 15:30 -> Mon 08:30).
    assert frt.count == 6
    assert frt.median == 2550
    assert frt.mean == pytest.approx(246300 / 6)
    assert frt.p90 == 234000
    assert frt.buckets == (2, 2, 1, 0, 1)
    biz = cur.first_response_business
    # Only B differs: 30 minutes on Friday before 17:00 Berlin + 30 minutes on Monday.
    assert biz.count == 6
    assert biz.median == 2550
    assert biz.mean == pytest.approx(15900 / 6)
    assert biz.p90 == 5400
    assert biz.buckets == (2, 3, 1, 0, 0)


def test_next_response_and_resolution(week: tuple[World, dict[str, int]]) -> None:
    w, _ = week
    cur = report(w).current
    # A: oldest unanswered is 10:00 (not 10:05) -> ben at 10:50.
    assert (cur.next_response.count, cur.next_response.median) == (1, 3000)
    assert cur.next_response_business.median == 3000
    # A 7200, E 1800, E' 3600 (the reopening counts again), I 1800.
    res = cur.resolution
    assert (res.count, res.median, res.mean, res.p90) == (4, 2700, 3600, 7200)
    assert cur.resolution_business.median == 2700


def test_sla_attainment(week: tuple[World, dict[str, int]]) -> None:
    w, _ = week
    cur = report(w).current
    # First response targets: A B C D E E' H I; C replied after its due time, H unanswered
    # and overdue; I was closed before its due time.
    assert (cur.sla_first.with_target, cur.sla_first.breached, cur.sla_first.pending) == (8, 2, 0)
    assert cur.sla_first.rate == 0.75
    assert (cur.sla_next.with_target, cur.sla_next.breached) == (1, 0)
    assert cur.sla_next.rate == 1.0


def test_pending_then_breached_then_answered_updates_the_cache(tmp_path: Path) -> None:
    """Reports between changes: each one sees the new events (the cache catches up)."""
    w = World(tmp_path / "live.db", berlin_config())
    try:
        conv = w.customer("Q", utc(2026, 11, 3, 8))        # due 09:00 UTC (1h business)
        first = metrics.compute(w.store, PERIOD, sla=w.cfg, now=utc(2026, 11, 3, 8, 30))
        assert (first.current.sla_first.with_target, first.current.sla_first.pending) == (0, 1)
        assert first.current.reply_rate == 0.0
        late = metrics.compute(w.store, PERIOD, sla=w.cfg, now=utc(2026, 11, 3, 9, 30))
        assert (late.current.sla_first.with_target, late.current.sla_first.breached) == (1, 1)
        w.reply(conv, utc(2026, 11, 3, 8, 45), "ana")
        done = metrics.compute(w.store, PERIOD, sla=w.cfg, now=utc(2026, 11, 3, 9, 30))
        assert (done.current.sla_first.with_target, done.current.sla_first.breached) == (1, 0)
        assert done.current.first_response.median == 2700
        assert done.current.reply_rate == 1.0
        # A stricter target in the config: the cache is rebuilt and the reply is late.
        strict = berlin_config()
        strict.policies.insert(0, type(strict.policies[0])(
            "fast", timedelta(minutes=30), timedelta(minutes=30), True, builtin=False))
        again = metrics.compute(w.store, PERIOD, sla=strict, now=utc(2026, 11, 3, 9, 30))
        assert (again.current.sla_first.with_target, again.current.sla_first.breached) == (1, 1)
    finally:
        w.close()


def test_sent_failed_retried(week: tuple[World, dict[str, int]]) -> None:
    w, _ = week
    cur = report(w).current
    # Replies in the period: A ana+ben, C chloe, D external, E ana+ben (B's is on 11-09).
    assert (cur.sent, cur.auto_sent, cur.failed, cur.retried, cur.unconfirmed) == (6, 1, 1, 1, 0)


def test_previous_period(week: tuple[World, dict[str, int]]) -> None:
    w, _ = week
    rep = report(w)
    assert rep.previous_period == metrics.Period(utc(2026, 10, 26), utc(2026, 11, 2))
    prev = rep.previous
    assert (prev.received, prev.needed_reply, prev.replied) == (1, 1, 1)
    assert prev.first_response.median == 1800
    assert prev.first_response.buckets == (1, 0, 0, 0, 0)
    assert prev.sent == 1


def test_by_agent(week: tuple[World, dict[str, int]]) -> None:
    w, _ = week
    groups = {g.key: g.current for g in report(w, "agent").groups}
    assert set(groups) == {"ana", "ben", "chloe", "external", "auto", "(no reply)"}
    ana, ben = groups["ana"], groups["ben"]
    assert (ana.first_response.count, ana.first_response.median) == (3, 1200)  # A, B, E
    assert (ana.replied, ana.needed_reply, ana.sent) == (3, 3, 2)
    assert (ben.first_response.count, ben.first_response.median) == (1, 2400)  # E'
    assert (ben.next_response.count, ben.next_response.median) == (1, 3000)    # A
    assert ben.sent == 2
    chloe = groups["chloe"]
    assert (chloe.first_response.median, chloe.sent, chloe.failed, chloe.retried) == (
        5400, 1, 1, 1)
    assert chloe.sla_first.breached == 1
    assert groups["external"].first_response.median == 2700
    assert groups["external"].sent == 1
    assert groups["auto"].auto_sent == 1
    assert groups["auto"].first_response.count == 0
    nobody = groups["(no reply)"]
    assert (nobody.needed_reply, nobody.replied) == (2, 0)  # H and I


def test_by_platform_kind_and_day(week: tuple[World, dict[str, int]]) -> None:
    w, _ = week
    platform = {g.key: g.current for g in report(w, "platform").groups}
    assert [g.key for g in report(w, "platform").groups] == ["x", "email", "mastodon"]
    assert (platform["x"].needed_reply, platform["x"].replied) == (6, 4)
    assert (platform["x"].spam, platform["x"].closed_by_rule) == (1, 1)
    assert platform["mastodon"].first_response_business.median == 3600
    assert platform["email"].first_response.median == 5400
    kind = {g.key: g.current for g in report(w, "kind").groups}
    assert (kind["private"].needed_reply, kind["public"].needed_reply) == (7, 1)
    day = report(w, "day")
    assert [g.key for g in day.groups] == [
        "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06"]
    by_day = {g.key: g.current for g in day.groups}
    assert by_day["2026-11-04"].first_response.count == 2   # E and E'
    assert by_day["2026-11-06"].first_response.median == 234000
    weekday = {metrics.group_label("weekday", g.key): g.current
               for g in report(w, "weekday").groups}
    assert weekday["Fri"].received == 1
    hour = {metrics.group_label("hour", g.key): g.current for g in report(w, "hour").groups}
    # 16:30 Berlin on Friday, 10:00 Berlin on Monday (A's first message).
    assert hour["Fri 16:00"].needed_reply == 1
    assert hour["Mon 10:00"].received == 1


def test_by_tag_and_urgency(week: tuple[World, dict[str, int]]) -> None:
    w, _ = week
    tags = {g.key: g.current for g in report(w, "tag").groups}
    assert tags["spam"].spam == 1
    # The sweep tagged C and H; C's reply took the tag away again.
    assert tags["breached"].sla_first.breached == 1
    assert tags["spam"].needed_reply == 0 and tags["(none)"].needed_reply == 7
    urgency = report(w, "urgency")
    assert all(metrics.group_label("urgency", g.key) in {"normal", "high"}
               for g in urgency.groups)
    assert sum(g.current.needed_reply for g in urgency.groups) == 8


def test_explain_shows_due_reply_and_business_minutes(
        week: tuple[World, dict[str, int]]) -> None:
    w, ids = week
    ex = metrics.explain(w.store, ids["C"], sla=w.cfg, now=NOW)
    assert [e[1] for e in ex.events][:1] == ["received"]
    assert "reply_failed" in [e[1] for e in ex.events]
    (item,) = ex.items
    assert item.start == utc(2026, 11, 3, 8)
    assert item.due_at == utc(2026, 11, 3, 9)
    assert item.reply_at == utc(2026, 11, 3, 9, 30)
    assert (item.seconds, item.business_seconds) == (5400, 5400)
    assert item.breached and item.breach_recorded
    assert "first response 1h" in item.target
    ex_b = metrics.explain(w.store, ids["B"], sla=w.cfg, now=NOW)
    (b,) = ex_b.items
    assert b.due_at == utc(2026, 11, 9, 11, 30)
    assert (b.seconds, b.business_seconds) == (234000, 3600)
    assert not b.breached
    ex_e = metrics.explain(w.store, ids["E"], sla=w.cfg, now=NOW)
    assert [(c.cycle, c.first_response_seconds, c.resolution_seconds) for c in ex_e.cycles] == [
        (0, 600, 1800), (1, 2400, 3600)]
    ex_f = metrics.explain(w.store, ids["F"], sla=w.cfg, now=NOW)
    assert ex_f.cycles[0].excluded == "spam"


def test_conversation_rows(week: tuple[World, dict[str, int]]) -> None:
    w, ids = week
    rows = metrics.conversation_rows(w.store, PERIOD, sla=w.cfg, now=NOW)
    assert [(r.conversation_id, r.cycle) for r in rows] == [
        (ids["A"], 0), (ids["C"], 0), (ids["D"], 0), (ids["E"], 0), (ids["F"], 0),
        (ids["E"], 1), (ids["G"], 0), (ids["H"], 0), (ids["I"], 0), (ids["B"], 0)]
    d = rows[2]
    assert (d.agent, d.first_response_seconds, d.breached) == ("external", 2700, False)
    g = rows[6]
    assert (g.excluded, g.resolved_by) == ("closed by rule", "rule")


def test_empty_store_and_bad_input(tmp_path: Path) -> None:
    w = World(tmp_path / "empty.db", berlin_config())
    try:
        rep = metrics.compute(w.store, PERIOD, sla=w.cfg, by="agent", now=NOW)
        assert rep.current.received == 0 and rep.current.reply_rate is None
        assert rep.current.first_response.median is None and rep.groups == []
        with pytest.raises(metrics.MetricsError, match="break down by"):
            metrics.compute(w.store, PERIOD, by="colour")
        with pytest.raises(metrics.MetricsError, match="no conversation"):
            metrics.explain(w.store, 99)
        with pytest.raises(metrics.MetricsError, match="before it starts"):
            metrics.Period(utc(2026, 11, 9), utc(2026, 11, 2))
    finally:
        w.close()


@pytest.mark.parametrize("asked, replied, calendar_s, due", [
    # Autumn: Fri 2026-10-23 16:30 CEST -> Mon 10-26 09:30 CET; clocks went back on Sunday,
    # so the wall clock shows 65 h but 66 h passed.
    (utc(2026, 10, 23, 14, 30), utc(2026, 10, 26, 8, 30), 66 * 3600,
     utc(2026, 10, 26, 11, 30)),
    # Spring: Fri 2026-03-27 16:30 CET -> Mon 03-30 09:30 CEST; 65 h on the wall, 64 h real.
    (utc(2026, 3, 27, 15, 30), utc(2026, 3, 30, 7, 30), 64 * 3600,
     utc(2026, 3, 30, 10, 30)),
])
def test_dst_change_between_message_and_reply(tmp_path: Path, asked: Any, replied: Any,
                                              calendar_s: int, due: Any) -> None:
    w = World(tmp_path / "dst.db", berlin_config())
    try:
        conv = w.customer("Z", asked, platform="mastodon", kind=Kind.MENTION)
        w.reply(conv, replied, "ana")
        period = metrics.Period(asked - timedelta(days=1), asked + timedelta(days=6))
        now = replied + timedelta(hours=1)
        cur = metrics.compute(w.store, period, sla=w.cfg, now=now).current
        assert cur.first_response.median == calendar_s
        # 30 minutes before Friday's 17:00 close + 30 minutes after Monday's 09:00 opening.
        assert cur.first_response_business.median == 3600
        assert (cur.sla_first.with_target, cur.sla_first.breached) == (1, 0)
        (item,) = metrics.explain(w.store, conv, sla=w.cfg, now=now).items
        assert item.due_at == due      # public 4h: 30 min Friday + 3h30 Monday
        # Berlin wall time on each side of the change: the wait began Friday 16:30, the
        # reply went out Monday 09:30.
        hours = metrics.compute(w.store, period, sla=w.cfg, now=now, by="hour")
        got = {metrics.group_label("hour", g.key): g.current for g in hours.groups}
        assert sorted(got) == ["Fri 16:00", "Mon 09:00"]
        assert (got["Fri 16:00"].needed_reply, got["Fri 16:00"].sent) == (1, 0)
        assert (got["Mon 09:00"].needed_reply, got["Mon 09:00"].sent) == (0, 1)
    finally:
        w.close()


def test_cache_built_in_small_chunks_gives_the_same_figures(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_CHUNK", 2)
    w = World(tmp_path / "chunks.db", berlin_config())
    try:
        build_week(w)
        cur = report(w).current
        assert (cur.received, cur.needed_reply, cur.replied) == (12, 8, 6)
        assert (cur.first_response.median, cur.first_response_business.mean) == (
            2550, pytest.approx(15900 / 6))
        assert (cur.sla_first.with_target, cur.sla_first.breached) == (8, 2)
        assert w.store.conn.execute("SELECT count(*) FROM metrics_item").fetchone()[0] == 12  # waits: P, A A, B-D, E E, F-I
    finally:
        w.close()


def test_received_counts_messages_by_their_own_time(
        week: tuple[World, dict[str, int]]) -> None:
    w, _ = week
    # Mon 09:00-10:02: A's first message and its 10:00 follow-up are in; 10:05 is not.
    period = metrics.Period(utc(2026, 11, 2, 9), utc(2026, 11, 2, 10, 2))
    cur = metrics.compute(w.store, period, sla=w.cfg, now=NOW).current
    assert cur.received == 2
    assert (cur.new_conversations, cur.needed_reply) == (1, 1)
    # Both waits of A started inside; their replies came later and still count.
    assert (cur.first_response.median, cur.next_response.median) == (1200, 3000)
    assert cur.sent == 1    # ana's 09:20 reply; ben's 10:50 is after the period


def test_reply_seen_by_the_poller_first_is_credited_to_its_agent(tmp_path: Path) -> None:
    """The poller may fetch our own reply before the outbox records it: it is logged as
    from another app, then handed to the agent who wrote it (no reply counted twice)."""
    w = World(tmp_path / "echo.db", berlin_config())
    try:
        conv = w.customer("R", utc(2026, 11, 3, 9))
        r = w.store.queue_reply(conv, "on it", agent="ana", now=utc(2026, 11, 3, 9, 9))
        w.store.claim_replies("w", lease_until=utc(2026, 11, 3, 9, 20),
                              now=utc(2026, 11, 3, 9, 9, 30))
        echo = w.store.conversation(conv)
        assert echo is not None
        from replydeck.inbox.model import Author, Direction, Message
        w.store.ingest("src", [Message(
            source="src", remote_id="out-echo", platform="x", kind=Kind.DM,
            author=Author(id="brand"), text="on it", created_at=utc(2026, 11, 3, 9, 10),
            direction=Direction.OUT, thread_key=echo.thread_key)], None,
            now=utc(2026, 11, 3, 9, 10, 30))
        before = {g.key: g.current for g in report(w, "agent").groups}
        assert before["external"].first_response.median == 600
        w.store.mark_sent(r.id, remote_id="out-echo", sent_at=utc(2026, 11, 3, 9, 10),
                          now=utc(2026, 11, 3, 9, 11))
        after = report(w, "agent")
        groups = {g.key: g.current for g in after.groups}
        assert "external" not in groups
        assert (groups["ana"].first_response.median, groups["ana"].sent) == (600, 1)
        assert after.current.sent == 1
    finally:
        w.close()


def test_holiday_is_closed_all_day(tmp_path: Path) -> None:
    from replydeck.config.sla import from_mapping

    cfg = from_mapping({"sla": {"business_hours": True},
                        "business_hours": {"timezone": "Europe/Berlin",
                                           "holidays": ["2026-11-04"]}})
    w = World(tmp_path / "holiday.db", cfg)
    try:
        # Tue 16:30 Berlin, answered Thu 09:20 Berlin; Wednesday is a holiday.
        conv = w.customer("H", utc(2026, 11, 3, 15, 30))
        w.reply(conv, utc(2026, 11, 5, 8, 20), "ana")
        cur = metrics.compute(w.store, PERIOD, sla=cfg, now=NOW).current
        assert cur.first_response.median == 40 * 3600 + 50 * 60
        assert cur.first_response_business.median == 50 * 60
        (item,) = metrics.explain(w.store, conv, sla=cfg, now=NOW).items
        # 1h private target: 30 minutes on Tuesday, 30 on Thursday.
        assert item.due_at == utc(2026, 11, 5, 8, 30)
        assert not item.breached
    finally:
        w.close()
