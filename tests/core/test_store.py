"""The store: idempotent ingest, conversation state, search, windows, file safety."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replydeck.inbox.model import Kind, ReplyState, Status, Urgency
from replydeck.inbox.store import LAST, InboxFilter, Store
from tests.core.conftest import T0, msg

ALL = InboxFilter(statuses=())


# -- idempotence (property) ----------------------------------------------------------
_messages = st.builds(
    lambda i, thread, minutes, direction: msg(
        f"r{i}", f"text {i}", minutes=minutes, thread=f"t{thread}", direction=direction),
    st.integers(0, 40), st.integers(0, 6), st.integers(0, 600), st.sampled_from(["in", "out"]),
)
_plan = st.lists(
    st.tuples(st.lists(_messages, max_size=12), st.booleans(), st.booleans()),
    min_size=1, max_size=8,
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=_plan)
def test_any_sequence_of_batches_with_repeats_and_restarts_stores_each_message_once(
        tmp_path_factory, plan):
    """Batches ingested with repeats and restarts yield exactly the distinct messages."""
    path = tmp_path_factory.mktemp("prop") / "p.db"
    store = Store(path)
    expected: dict[str, str] = {}
    for batch, repeat, restart in plan:
        for m in batch:
            expected.setdefault(m.remote_id, m.text)
        store.ingest("src", batch, f"cursor{len(expected)}", now=T0)
        if repeat:
            store.ingest("src", batch, f"cursor{len(expected)}", now=T0)
        if restart:
            store.close()
            store = Store(path)
    rows = store.conn.execute("SELECT remote_id, text FROM messages").fetchall()
    assert sorted(r[0] for r in rows) == sorted(expected)
    assert {r[0]: r[1] for r in rows} == expected
    counts = store.conn.execute("SELECT sum(message_count) FROM conversations").fetchone()[0]
    assert (counts or 0) == len(expected)
    store.close()


def test_reingesting_a_batch_changes_nothing(store):
    batch = [msg("a", minutes=0, thread="t"), msg("b", minutes=1, thread="t")]
    store.ingest("src", batch, "c1", now=T0)
    before = store.conn.execute("SELECT * FROM conversations").fetchall()
    events = len(store.events())
    result = store.ingest("src", batch, "c1", now=T0)
    assert result.new_messages == 0 and result.duplicates == 2
    assert [tuple(r) for r in store.conn.execute("SELECT * FROM conversations")] == \
        [tuple(r) for r in before]
    assert len(store.events()) == events


def test_cursor_is_saved_with_the_batch(store):
    store.ingest("src", [msg("a")], '{"offset": 10}', now=T0)
    assert store.cursor("src") == '{"offset": 10}'


# -- conversation state ----------------------------------------------------------------
def test_waiting_since_is_the_oldest_unanswered_customer_message(store):
    store.ingest("src", [msg("a", minutes=0, thread="t"), msg("b", minutes=5, thread="t")],
                 None, now=T0)
    conv = store.conversation(store.find_conversation("src", "t"))
    assert conv.waiting_since == T0
    # A reply from the platform's own app (direction out) stops the clock.
    store.ingest("src", [msg("c", minutes=7, thread="t", direction="out", author="brand")],
                 None, now=T0)
    conv = store.conversation(conv.id)
    assert conv.waiting_since is None
    assert conv.first_response_at == T0 + timedelta(minutes=7)
    assert conv.due_at is None
    store.ingest("src", [msg("d", minutes=20, thread="t")], None, now=T0)
    conv = store.conversation(conv.id)
    assert conv.waiting_since == T0 + timedelta(minutes=20)
    assert conv.first_response_at == T0 + timedelta(minutes=7)
    assert conv.due_at is not None


def test_a_late_arriving_older_message_does_not_restart_an_answered_clock(store):
    store.ingest("src", [msg("out", minutes=10, thread="t", direction="out")], None, now=T0)
    store.ingest("src", [msg("in", minutes=5, thread="t")], None, now=T0)
    conv = store.conversation(store.find_conversation("src", "t"))
    assert conv.waiting_since is None
    assert conv.first_response_at == T0 + timedelta(minutes=10)


def test_a_new_message_reopens_a_done_conversation(store):
    store.ingest("src", [msg("a", thread="t")], None, now=T0)
    conv_id = store.find_conversation("src", "t")
    store.set_status([conv_id], Status.DONE, actor="me", now=T0 + timedelta(minutes=1))
    assert store.conversation(conv_id).status == Status.DONE
    assert store.conversation(conv_id).due_at is None  # the clock stops on resolve
    store.ingest("src", [msg("b", minutes=30, thread="t")], None, now=T0 + timedelta(minutes=31))
    conv = store.conversation(conv_id)
    assert conv.status == Status.OPEN
    assert "reopened" in [str(e.type) for e in store.events(conv_id)]


def test_snooze_until_a_time_wakes_at_the_sweep_and_a_customer_message_wakes_at_once(store):
    store.ingest("src", [msg("a", thread="t1"), msg("b", thread="t2")], None, now=T0)
    c1, c2 = store.find_conversation("src", "t1"), store.find_conversation("src", "t2")
    store.snooze([c1], until=T0 + timedelta(hours=2), now=T0)
    store.snooze([c2], until=None, now=T0)
    assert store.count(InboxFilter()) == 0
    assert store.sweep(T0 + timedelta(hours=1))["woken"] == []
    assert store.sweep(T0 + timedelta(hours=2))["woken"] == [c1]
    assert store.conversation(c2).status == Status.SNOOZED
    store.ingest("src", [msg("c", minutes=90, thread="t2")], None, now=T0)
    assert store.conversation(c2).status == Status.OPEN


def test_sweep_marks_breaches_once_with_a_tag_and_an_event(store):
    store.ingest("src", [msg("a", thread="t", kind=Kind.DM)], None, now=T0)
    conv_id = store.find_conversation("src", "t")
    due = store.conversation(conv_id).due_at
    assert due == T0 + timedelta(hours=1)
    assert store.sweep(due - timedelta(minutes=20))["warned"] == []
    assert store.sweep(due - timedelta(minutes=10))["warned"] == [conv_id]
    assert store.sweep(due)["breached"] == [conv_id]
    assert store.sweep(due + timedelta(hours=1))["breached"] == []
    conv = store.conversation(conv_id)
    assert conv.breached and "breached" in conv.tags
    assert store.count(InboxFilter(breached=True)) == 1


def test_tags_assign_and_unread(store):
    store.ingest("src", [msg("a", thread="t")], None, now=T0)
    conv_id = store.find_conversation("src", "t")
    store.tag([conv_id], "Billing Issue")
    store.assign([conv_id], "sam")
    store.mark_read([conv_id])
    conv = store.conversation(conv_id)
    assert conv.tags == ["billing-issue"] and conv.assignee == "sam" and not conv.unread
    assert store.count(InboxFilter(tags=("billing-issue",), assignee="sam")) == 1
    store.tag([conv_id], "billing-issue", remove=True)
    assert store.conversation(conv_id).tags == []


def test_in_reply_to_joins_the_parent_conversation_without_a_thread_key(store):
    store.ingest("src", [msg("root", thread=None)], None, now=T0)
    store.ingest("src", [msg("child", minutes=3, thread=None, in_reply_to="root")], None, now=T0)
    assert store.count(ALL) == 1
    conv = store.window(ALL)[0]
    assert conv.message_count == 2


def test_related_conversations_find_the_same_customer_on_another_platform(store):
    store.ingest("src", [msg("a", thread="t1", author="maria", platform="x")], None, now=T0)
    store.ingest("src", [msg("b", thread="t2", author="maria", platform="mastodon")], None,
                 now=T0)
    store.ingest("src", [msg("c", thread="t3", author="other")], None, now=T0)
    store.ingest("src", [msg("d", minutes=1, thread="t4", author="MARIA", platform="bluesky")],
                 None, now=T0)
    c1 = store.find_conversation("src", "t1")
    related = store.related_conversations(c1)
    assert [c.platform for c in related] == ["bluesky", "mastodon"]  # latest first
    plan = " ".join(r[3] for r in store.conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM authors WHERE handle = 'maria' COLLATE NOCASE "
        "AND handle != ''"))
    assert "authors_handle" in plan  # an index lookup, not a scan of every author


# -- the reply queue -----------------------------------------------------------------
def test_reply_queue_claims_each_reply_once_and_recovers_stale_claims(store):
    store.ingest("src", [msg("a", thread="t")], None, now=T0)
    conv_id = store.find_conversation("src", "t")
    reply = store.queue_reply(conv_id, "Thanks!", agent="sam", now=T0)
    assert reply.state == ReplyState.QUEUED and reply.reply_to.remote_id == "a"
    due, stale = store.claim_replies("p1", lease_until=T0 + timedelta(minutes=5), now=T0)
    assert [r.id for r in due] == [reply.id] and not stale
    # A second process sees nothing to take while the claim is live...
    assert store.claim_replies("p2", lease_until=T0 + timedelta(minutes=5),
                               now=T0 + timedelta(minutes=1)) == ([], [])
    # ...and finds it as a crash leftover once the claim has lapsed.
    due, stale = store.claim_replies("p2", lease_until=T0 + timedelta(minutes=20),
                                     now=T0 + timedelta(minutes=6))
    assert not due and [r.id for r in stale] == [reply.id]
    store.mark_sent(reply.id, remote_id="r-1", now=T0 + timedelta(minutes=7))
    store.mark_sent(reply.id, remote_id="r-1", now=T0 + timedelta(minutes=8))
    conv = store.conversation(conv_id)
    assert conv.status == Status.PENDING and conv.waiting_since is None
    assert conv.first_response_at == T0 + timedelta(minutes=7)
    assert [str(e.type) for e in store.events(conv_id)].count("replied") == 1


def test_a_reply_seen_by_the_poller_before_it_was_recorded_counts_once_for_its_agent(store):
    store.ingest("src", [msg("a", thread="t")], None, now=T0)
    conv_id = store.find_conversation("src", "t")
    reply = store.queue_reply(conv_id, "Hi", agent="sam", now=T0)
    store.claim_replies("p", lease_until=T0 + timedelta(minutes=5), now=T0)
    store.ingest("src", [msg("r-9", "Hi", minutes=1, thread="t", direction="out")], None, now=T0)
    store.mark_sent(reply.id, remote_id="r-9", now=T0 + timedelta(minutes=1))
    replied = [e for e in store.events(conv_id) if str(e.type) == "replied"]
    assert [(e.actor, e.data["remote_id"]) for e in replied] == [("sam", "r-9")]
    assert store.conversation(conv_id).message_count == 2


def test_cancel_returns_the_text_as_a_draft(store):
    store.ingest("src", [msg("a", thread="t")], None, now=T0)
    conv_id = store.find_conversation("src", "t")
    store.save_draft(conv_id, "half-written", now=T0)
    reply = store.queue_reply(conv_id, "final text", now=T0)
    assert store.draft(conv_id) is None  # queueing consumes the draft
    assert store.cancel_reply(reply.id) == "final text"
    assert store.draft(conv_id) == ("final text", False)


# -- search and windows --------------------------------------------------------------
def test_full_text_search_finds_latin_and_japanese_text(store):
    store.ingest("src", [
        msg("a", "The app is down again, I can't log in", thread="t1"),
        msg("b", "アプリにログインできません。障害ですか？", thread="t2"),
        msg("c", "Love the new update!", thread="t3"),
    ], None, now=T0)
    assert store.count(InboxFilter(search="log in")) == 1
    assert store.count(InboxFilter(search="ログインできません")) == 1
    assert store.count(InboxFilter(search="障害")) == 1  # two characters: below trigram size
    assert store.count(InboxFilter(search='"down" OR x')) == 0  # user text is not FTS syntax
    assert store.count(InboxFilter(search="UPDATE")) == 1  # case-insensitive


def test_windows_walk_the_whole_list_in_order_both_ways(store):
    batch = [msg(f"m{i}", thread=f"t{i}", minutes=i, kind=Kind.DM if i % 3 else Kind.MENTION)
             for i in range(130)]
    store.ingest("src", batch, None, now=T0)
    store.assessor = type("A", (), {"assess": lambda self, f, now: __import__(
        "replydeck.inbox.assess", fromlist=["Decision"]).Decision(
        urgency=Urgency.URGENT if f.conversation_id % 10 == 0 else Urgency.NORMAL)})()
    store.reassess(range(1, 131), now=T0)
    forward, key = [], None
    while True:
        rows = store.window(ALL, after=key, limit=50)
        if not rows:
            break
        forward += rows
        key = rows[-1].sort_key
    assert len(forward) == 130
    assert [c.sort_key for c in forward] == sorted(c.sort_key for c in forward)
    assert all(c.urgency == Urgency.URGENT for c in forward[:13])
    backward, key = [], LAST
    while True:
        rows = store.window(ALL, before=key, limit=50)
        if not rows:
            break
        backward = rows + backward
        key = rows[0].sort_key
    assert [c.id for c in backward] == [c.id for c in forward]
    assert store.position(ALL, forward[77].sort_key) == 77


def test_database_file_is_private(tmp_path: Path):
    path = tmp_path / "private.db"
    Store(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
