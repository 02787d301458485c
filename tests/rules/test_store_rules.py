"""Rules through the real store: ingest -> rule fires -> one automated reply, marked so."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from replydeck.config.loader import load_config
from replydeck.inbox.model import Author, Kind, Message, ReplyState
from replydeck.inbox.rules import build_assessor
from replydeck.inbox.store import Store

UTC = timezone.utc
CLOSED = datetime(2026, 11, 18, 13, 0, tzinfo=UTC)    # Wednesday 22:00 in Tokyo
CONFIG = """
[agent]
name = "Aiko"
brand = "Example Coffee"

[business_hours]
timezone = "Asia/Tokyo"
monday = ["09:00-18:00"]
tuesday = ["09:00-18:00"]
wednesday = ["09:00-18:00"]
thursday = ["09:00-18:00"]
friday = ["09:00-18:00"]

[[replies]]
name = "out-of-hours"
body = "Hi {customer.name|there}, we're closed now and back at 9:00 JST."

[[rules]]
name = "spam"
stop = true
when = { text_regex = "crypto (signals|giveaway)" }
then = { done = true, tags = ["spam"] }

[[rules]]
name = "ack"
when = { business_hours = "outside" }
then = { auto_reply = "out-of-hours", tags = ["after-hours"] }
"""


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG, encoding="utf-8")
    config = load_config(path, data_dir=tmp_path)
    s = Store(tmp_path / "db.sqlite", assessor=build_assessor(config))
    yield s
    s.close()


def dm(remote_id: str, text: str, at: datetime) -> Message:
    return Message(source="shop", remote_id=remote_id, platform="instagram", kind=Kind.DM,
                   author=Author(id="u1", handle="mika", name="Mika"), text=text,
                   created_at=at, thread_key="t1")


def test_out_of_hours_ack_is_queued_once_and_marked_automated(store):
    batch = [dm("1", "Hi, is the Ethiopia roast back in stock?", CLOSED)]
    result = store.ingest("shop", batch, "c1", now=CLOSED)
    [conv_id] = result.conversations
    [reply] = store.replies(conv_id)
    assert reply.automated and reply.private
    assert reply.body == "Hi Mika, we're closed now and back at 9:00 JST."
    assert "after-hours" in store.conversation(conv_id).tags

    # The same batch again (a poll retried): nothing new, still one reply.
    store.ingest("shop", batch, "c1", now=CLOSED + timedelta(minutes=1))
    assert len(store.replies(conv_id)) == 1

    # Sent: it is in the thread as automated and is not a first response.
    store.mark_sent(reply.id, remote_id="r1", now=CLOSED + timedelta(minutes=2))
    conv = store.conversation(conv_id)
    assert conv.first_response_at is None
    assert conv.waiting_since == CLOSED
    assert [m.automated for m in store.messages(conv_id)] == [False, True]

    # The customer writes again the same night: no second acknowledgement.
    later = CLOSED + timedelta(hours=2)
    result = store.ingest("shop", [dm("2", "Also, do you ship to Osaka?", later)], "c2",
                          now=later)
    assert [r.state for r in store.replies(conv_id)] == [ReplyState.SENT]
    assert "auto-reply skipped: already acknowledged in this off-hours period" in \
        result.decisions[conv_id].reasons


def test_spam_is_closed_and_never_answered(store):
    result = store.ingest("shop", [dm("9", "Join our CRYPTO SIGNALS group now!!", CLOSED)],
                          "c1", now=CLOSED)
    [conv_id] = result.conversations
    conv = store.conversation(conv_id)
    assert conv.status == "done" and "spam" in conv.tags
    assert store.replies(conv_id) == []


def test_second_message_before_the_ack_is_sent_gets_no_second_ack(store):
    result = store.ingest("shop", [dm("1", "Hi, is the shop open tomorrow?", CLOSED)], "c1",
                          now=CLOSED)
    [conv_id] = result.conversations
    later = CLOSED + timedelta(minutes=5)
    store.ingest("shop", [dm("2", "Also, do you ship to Osaka?", later)], "c2", now=later)
    assert len(store.replies(conv_id)) == 1
