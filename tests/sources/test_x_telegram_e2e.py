"""X and Telegram end to end through the real store, poller and outbox, against the fakes.

A customer's message appears once; the reply lands in the right thread exactly once, also
when the answer to the send is lost (X reconciles through find_sent, Telegram holds the
reply as unconfirmed for a person instead of sending it twice).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from replydeck.config.secrets import Secret
from replydeck.inbox.model import Direction, ReplyState, utcnow
from replydeck.inbox.outbox import Outbox
from replydeck.inbox.poller import PolledSource, Poller
from replydeck.inbox.store import Store
from replydeck.sources.telegram import TelegramSource
from replydeck.sources.x import XSource
from tests.fakes.httpfake import Fault
from tests.fakes.telegram import FakeTelegram
from tests.fakes.x import FakeX


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "replydeck.db")
    yield s
    s.close()


@pytest.fixture
def xfake() -> Iterator[FakeX]:
    fake = FakeX().start()
    yield fake
    fake.stop()


@pytest.fixture
def tgfake() -> Iterator[FakeTelegram]:
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


async def test_x_mention_reply_and_lost_answer_reconciled(store: Store, xfake: FakeX) -> None:
    me = xfake.add_user("AcmeSupport")
    alice = xfake.add_user("alice", followers=42)
    src = XSource("x", token=Secret.literal(xfake.issue_token(me)), user_id=me.id,
                  api_base=xfake.base_url, timeout=0.3)
    clock = Clock()
    poller = Poller(store, [PolledSource(src, interval=60)], owner="t", clock=clock)
    outbox = Outbox(store, {"x": src}, owner="t", clock=clock)

    root = xfake.post(alice, "my parcel is lost", mentions=[me])
    await poller.run_once()
    await poller.run_once()
    conv_id = store.find_conversation("x", f"post:{root.id}")
    assert conv_id is not None
    assert [m.remote_id for m in store.messages(conv_id)] == [root.id]
    assert store.conversation(conv_id).author.followers == 42  # type: ignore[union-attr]

    # The post is created but its answer never arrives (the client times out first).
    xfake.server.inject(Fault(hang_s=0.8, then_handle=True),
                        when=lambda r: r.method == "POST" and r.path == "/2/tweets")
    reply = store.queue_reply(conv_id, "We found it: it arrives tomorrow.")
    report = await outbox.run_once()
    assert report.retrying == [reply.id]
    await asyncio.sleep(1.0)  # the fake finishes handling the hung request
    assert len(xfake.replies_by(me, root.id)) == 1

    clock.offset = timedelta(minutes=10)  # past the deferred claim: recovery runs
    report = await outbox.run_once()
    assert report.sent == [reply.id]
    [posted] = xfake.replies_by(me, root.id)
    stored = store.reply(reply.id)
    assert stored is not None and stored.state == ReplyState.SENT
    assert stored.remote_id == posted.id
    assert len(xfake.server.calls("POST", "/2/tweets")) == 1  # never sent a second time

    # Our reply also comes back from our timeline: stored once, in the same conversation.
    clock.offset = timedelta(minutes=20)
    await poller.run_once()
    messages = store.messages(conv_id)
    assert [(m.remote_id, m.direction) for m in messages] == \
        [(root.id, Direction.IN), (posted.id, Direction.OUT)]
    await src.close()


async def test_x_reply_rule_refusal_keeps_the_reason(store: Store, xfake: FakeX) -> None:
    me = xfake.add_user("AcmeSupport")
    alice = xfake.add_user("alice")
    src = XSource("x", token=Secret.literal(xfake.issue_token(me)), user_id=me.id,
                  api_base=xfake.base_url)
    poller = Poller(store, [PolledSource(src, interval=60)], owner="t")
    outbox = Outbox(store, {"x": src}, owner="t")
    root = xfake.post(alice, "hello", mentions=[me])
    await poller.run_once()
    conv_id = store.find_conversation("x", f"post:{root.id}")
    assert conv_id is not None
    # Pretend the stored post lost its mention entity (e.g. an edit): the rule applies.
    store.conn.execute("UPDATE messages SET raw=? WHERE remote_id=?",
                       (json.dumps({"id": root.id, "mentioned_ids": []}), root.id))
    reply = store.queue_reply(conv_id, "hi")
    report = await outbox.run_once()
    [(failed_id, reason)] = report.failed
    assert failed_id == reply.id and "mention or quote" in reason
    assert xfake.server.calls("POST", "/2/tweets") == []
    await src.close()


async def test_telegram_dm_reply_once_and_offset_confirmed_after_storing(
        store: Store, tgfake: FakeTelegram) -> None:
    alice = tgfake.add_user("Alice", "alice")
    chat = tgfake.private_chat(alice)
    src = TelegramSource("tg", token=Secret.literal(tgfake.token), api_base=tgfake.base_url,
                         long_poll=0, timeout=0.3)
    clock = Clock()
    poller = Poller(store, [PolledSource(src, interval=1)], owner="t", clock=clock)
    outbox = Outbox(store, {"tg": src}, owner="t", clock=clock)

    tgfake.say(chat, alice, "where is my order?")
    await poller.run_once()
    conv_id = store.find_conversation("tg", f"chat:{chat.id}")
    assert conv_id is not None
    # Stored, but Telegram still holds the update until the next getUpdates confirms it.
    assert len(tgfake.pending()) == 1
    clock.offset = timedelta(seconds=5)
    await poller.run_once()
    assert tgfake.pending() == []
    assert len(store.messages(conv_id)) == 1

    reply = store.queue_reply(conv_id, "It ships today.")
    report = await outbox.run_once()
    assert report.sent == [reply.id]
    assert [m["text"] for m in tgfake.bot_messages(chat)] == ["It ships today."]

    # The answer to a send is lost: Telegram cannot tell, so a person must check.
    tgfake.server.inject(Fault(hang_s=0.8, then_handle=True),
                         when=lambda r: r.path.endswith("/sendMessage"))
    second = store.queue_reply(conv_id, "Tracking: 123")
    report = await outbox.run_once()
    assert report.unconfirmed == [second.id]
    await asyncio.sleep(1.0)
    clock.offset = timedelta(hours=1)
    await outbox.run_once()
    assert [m["text"] for m in tgfake.bot_messages(chat)] == ["It ships today.",
                                                            "Tracking: 123"]
    stored = store.reply(second.id)
    assert stored is not None and stored.state == ReplyState.UNCONFIRMED
    await src.close()
