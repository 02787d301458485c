"""The rows ingest writes besides messages: authors, conversations, raw payloads.

Each is written the cheap way (only what changed, one query for a whole batch, orjson);
these tests hold each to what the obvious way gives.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replydeck.inbox.assess import LazyThreadFacts
from replydeck.inbox.author_rows import store_authors
from replydeck.inbox.model import Author, Kind, Status
from replydeck.inbox.payload_json import encode_payload
from replydeck.inbox.store import Store
from tests.core.conftest import msg


def _authors(store: Store) -> dict[tuple[str, str], tuple]:
    return {(r[0], r[1]): tuple(r[2:]) for r in store.conn.execute(
        "SELECT platform, remote_id, handle, name, followers, url, verified FROM authors")}


def _statements(store: Store) -> list[str]:
    seen: list[str] = []
    store.conn.set_trace_callback(seen.append)
    return seen


# -- authors ---------------------------------------------------------------------------
def test_an_author_keeps_what_is_known_when_new_data_lacks_it(tmp_path):
    store = Store(tmp_path / "s.db")
    full = Author(id="7", handle="kim", name="Kim Lee", followers=120,
                  url="https://x.example/kim", verified=True)
    with store.transaction() as c:
        first = store_authors(c, {("x", "7"): full})
        again = store_authors(c, {("x", "7"): Author(id="7")})
    assert first == again
    assert _authors(store)[("x", "7")] == ("kim", "Kim Lee", 120, "https://x.example/kim", 1)

    with store.transaction() as c:
        store_authors(c, {("x", "7"): Author(id="7", handle="kim_new", followers=130)})
    assert _authors(store)[("x", "7")] == ("kim_new", "Kim Lee", 130,
                                           "https://x.example/kim", 1)


def test_an_unchanged_author_is_not_written_and_a_changed_one_only_where_it_changed(tmp_path):
    store = Store(tmp_path / "s.db")
    kim = Author(id="7", handle="kim", name="Kim", followers=120)
    with store.transaction() as c:
        store_authors(c, {("x", "7"): kim})
    seen = _statements(store)
    with store.transaction() as c:
        store_authors(c, {("x", "7"): kim})
    assert [s for s in seen if s.startswith(("UPDATE", "INSERT"))] == []
    with store.transaction() as c:
        store_authors(c, {("x", "7"): Author(id="7", handle="kim", name="Kim", followers=121)})
    updates = [s for s in seen if s.startswith("UPDATE")]
    assert len(updates) == 1 and "followers" in updates[0] and "handle" not in updates[0]


def test_a_batch_of_many_authors_on_several_platforms_gets_one_row_each(tmp_path):
    store = Store(tmp_path / "s.db")
    people = {(p, str(i)): Author(id=str(i), handle=f"{p}{i}")
              for p in ("x", "mastodon") for i in range(1_200)}  # past the 500-per-query chunk
    with store.transaction() as c:
        half = store_authors(c, dict(list(people.items())[::2]))
    with store.transaction() as c:
        ids = store_authors(c, people)
    assert len(set(ids.values())) == len(people) == len(_authors(store))
    assert all(ids[key] == row_id for key, row_id in half.items())
    assert _authors(store)[("mastodon", "1199")][0] == "mastodon1199"


def test_ingest_counts_an_author_once_however_many_messages_they_wrote(tmp_path):
    store = Store(tmp_path / "s.db")
    store.ingest("src", [msg(f"m{i}", minutes=i, author="kim", followers=i) for i in range(5)],
                 "c")
    assert _authors(store) == {("x", "id-kim"): ("kim", "Kim", 4, None, 0)}


# -- conversations ---------------------------------------------------------------------
def test_a_batch_finds_its_stored_conversations_however_many_threads_it_has(tmp_path):
    store = Store(tmp_path / "s.db")
    store.ingest("src", [msg(f"a{i}", thread=f"t{i}") for i in range(0, 1_300, 2)], "c1")
    store.ingest("src", [msg(f"b{i}", minutes=1, thread=f"t{i}") for i in range(1_300)], "c2")
    counts = {r[0]: r[1] for r in store.conn.execute(
        "SELECT thread_key, message_count FROM conversations")}
    assert len(counts) == 1_300
    assert counts["t0"] == counts["t1298"] == 2 and counts["t1"] == counts["t1299"] == 1


def test_a_reply_without_a_thread_joins_its_stored_parent(tmp_path):
    store = Store(tmp_path / "s.db")
    store.ingest("src", [msg("p")], "c1")
    result = store.ingest("src", [msg("r", minutes=1, in_reply_to="p"),
                                  msg("rr", minutes=2, in_reply_to="r")], "c2")
    assert result.new_conversations == []
    assert [r[0] for r in store.conn.execute("SELECT message_count FROM conversations")] == [3]


def test_a_customer_writing_again_leaves_the_inbox_order_alone(tmp_path):
    store = Store(tmp_path / "s.db")
    store.ingest("src", [msg("a", thread="t")], "c1")
    seen = _statements(store)
    store.ingest("src", [msg("b", minutes=5, thread="t")], "c2")
    updates = [s for s in seen if s.startswith("UPDATE conversations")]
    assert len(updates) == 1
    assert "message_count" in updates[0]
    # The due time still counts from the first unanswered message.
    for column in ("sort_due", "urgency", "due_at", "waiting_since", "bucket"):
        assert f"{column}=" not in updates[0]


# -- facts -----------------------------------------------------------------------------
def test_lazy_facts_refuse_a_missing_or_unknown_field():
    known = dict(conversation_id=1, source="s", platform="x", kind=Kind.DM, status=Status.OPEN,
                 messages=[], new_messages=[], tags=[], assignee=None, waiting_since=None,
                 first_response_at=None, last_human_reply_at=None, is_new=True,
                 reopened=False)
    facts = LazyThreadFacts(lambda: (Author(id="a"), 2, None), **known)
    assert (facts.author.id, facts.earlier_conversations, facts.answered_before) == ("a", 2, False)
    with pytest.raises(TypeError, match="kind"):
        LazyThreadFacts(lambda: (Author(id="a"), 0, None),
                        **{k: v for k, v in known.items() if k != "kind"})
    with pytest.raises(TypeError, match="colour"):
        LazyThreadFacts(lambda: (Author(id="a"), 0, None), colour="red", **known)


# -- raw payloads ----------------------------------------------------------------------
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@given(value=_json)
def test_a_payload_reads_back_as_the_standard_library_would_write_it(value):
    text = encode_payload(value)
    assert json.loads(text) == json.loads(json.dumps(value))
    sqlite3.connect(":memory:").execute("SELECT json(?)", (text,)).fetchone()  # valid JSON


def test_what_orjson_refuses_is_written_by_the_standard_library():
    for value in ({"text": "half \ud83d of an emoji"}, {"n": 2 ** 70}, {1: "int key"},
                  _deep(300)):
        assert json.loads(encode_payload(value)) == json.loads(json.dumps(value, default=str))


def _deep(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


def test_a_payload_with_values_json_lacks_still_stores():
    @dataclass
    class Point:
        x: int

    when = datetime(2026, 11, 23, 9, 30, tzinfo=timezone.utc)
    decoded = json.loads(encode_payload({"at": when, "p": Point(1), "nan": math.nan}))
    assert decoded == {"at": str(when), "p": str(Point(1)), "nan": None}
