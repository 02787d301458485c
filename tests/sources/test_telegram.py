"""The Telegram adapter against the stateful Bot API fake over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.secrets import Secret
from replydeck.config.sources import SourceTable
from replydeck.inbox.model import Direction, Kind, Message, Reply
from replydeck.inbox.sanitize import is_inert
from replydeck.sources.base import AuthError, PermanentError, RateLimited, TransientError
from replydeck.sources.telegram import TelegramSource
from tests.fakes.httpfake import FakeResponse, Fault
from tests.fakes.telegram import FakeTelegram

HOSTILE = Path("/work/shared/corpus/hostile-text.jsonl")


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


def source(fake: FakeTelegram, token: str | None = None, **kw: object) -> TelegramSource:
    kw.setdefault("long_poll", 0)
    kw.setdefault("timeout", 2.0)
    return TelegramSource("tg", token=Secret.literal(token or fake.token),
                          api_base=fake.base_url, **kw)  # type: ignore[arg-type]


def reply_to(msg: Message, body: str, *, private: bool = False) -> Reply:
    return Reply(id=1, conversation_id=1, source="tg", body=body, private=private,
                 idempotency_key="k-1", reply_to=msg, thread_key=msg.thread_key)


# -- fetch ---------------------------------------------------------------------------
async def test_private_message_becomes_a_dm(fake: FakeTelegram) -> None:
    alice = fake.add_user("Alice", "alice_s", last_name="Smith")
    chat = fake.private_chat(alice)
    sent = fake.say(chat, alice, "my order is late")
    src = source(fake)
    batch = await src.fetch(None)
    await src.close()
    [msg] = batch.items
    assert msg.kind == Kind.DM and msg.direction == Direction.IN
    assert msg.thread_key == f"chat:{chat.id}"
    assert msg.remote_id == f"{chat.id}:{sent['message_id']}"
    assert msg.text == "my order is late"
    assert (msg.author.id, msg.author.handle, msg.author.name) == \
        (str(alice.id), "alice_s", "Alice Smith")
    assert msg.author.followers is None  # Telegram has no follower count
    assert msg.created_at == datetime.fromtimestamp(sent["date"], timezone.utc)


async def test_offset_is_confirmed_only_by_the_next_fetch_with_the_stored_cursor(
        fake: FakeTelegram) -> None:
    alice = fake.add_user("Alice")
    chat = fake.private_chat(alice)
    for i in range(3):
        fake.say(chat, alice, f"m{i}")
    src = source(fake)
    first = await src.fetch(None)
    assert len(first.items) == 3
    # The batch is not stored yet (the process dies here): nothing is confirmed.
    assert len(fake.pending()) == 3
    assert fake.offsets == [None]
    await src.close()

    # A restart with the old (unsaved) cursor gets the same three again: nothing lost.
    again = await source(fake).fetch(None)
    assert [m.remote_id for m in again.items] == [m.remote_id for m in first.items]

    # Once stored, fetching with the saved cursor confirms them and returns only new ones.
    fake.say(chat, alice, "m3")
    restarted = source(fake)
    third = await restarted.fetch(first.cursor)
    assert [m.text for m in third.items] == ["m3"]
    assert len(fake.pending()) == 1  # m0..m2 are confirmed (forgotten) now, m3 not yet
    fourth = await restarted.fetch(third.cursor)
    await restarted.close()
    assert fourth.items == []
    assert fake.pending() == []
    # Never asked with an offset past what the caller handed in.
    assert fake.offsets[1:] == [None, int(first.cursor), int(third.cursor)]


async def test_a_batch_of_100_says_more_is_waiting(fake: FakeTelegram) -> None:
    alice = fake.add_user("Alice")
    chat = fake.private_chat(alice)
    for i in range(130):
        fake.say(chat, alice, f"m{i}")
    src = source(fake)
    first = await src.fetch(None)
    second = await src.fetch(first.cursor)
    await src.close()
    assert (len(first.items), first.more) == (100, True)
    assert (len(second.items), second.more) == (30, False)
    texts = [m.text for m in first.items + second.items]
    assert texts == [f"m{i}" for i in range(130)]


async def test_other_update_types_advance_the_cursor_and_are_skipped(
        fake: FakeTelegram) -> None:
    alice = fake.add_user("Alice")
    fake.say(fake.private_chat(alice), alice, "hello")
    src = source(fake)
    batch = await src.fetch(None)
    assert fake.allowed_updates == ["message"]
    # Telegram may still hand out an update type asked for earlier by another program.
    after = int(batch.cursor)
    fake.server.inject(Fault(FakeResponse(200, {"ok": True, "result": [
        {"update_id": after, "edited_message": {"message_id": 1}},
        {"update_id": after + 1, "callback_query": {"id": "4382"}}]})),
        when=lambda r: r.path.endswith("/getUpdates"))
    later = await src.fetch(batch.cursor)
    await src.close()
    assert later.items == []
    assert int(later.cursor) == after + 2


async def test_group_messages_only_when_addressed_to_the_bot(fake: FakeTelegram) -> None:
    fake.privacy = False  # the bot sees all group chatter: the adapter must filter
    bob = fake.add_user("Bob", "bobby")
    group = fake.group("Acme Community", username="acmecommunity")
    fake.say(group, bob, "just chatting")
    fake.say(group, bob, "@someoneelse hi")
    mention = fake.say(group, bob, "the app crashes", mention_bot=True)
    command = fake.say(group, bob, f"/help@{fake.bot.username}")
    src = source(fake)
    batch = await src.fetch(None)
    await src.close()
    assert [m.remote_id for m in batch.items] == [
        f"{group.id}:{mention['message_id']}", f"{group.id}:{command['message_id']}"]
    msg = batch.items[0]
    assert msg.kind == Kind.MENTION
    assert msg.thread_key == f"chat:{group.id}:{mention['message_id']}"
    assert msg.url == f"https://t.me/acmecommunity/{mention['message_id']}"


async def test_mention_after_emoji_uses_utf16_offsets(fake: FakeTelegram) -> None:
    fake.privacy = False
    bob = fake.add_user("Bob")
    group = fake.group("G")
    fake.say(group, bob, f"😀😀 @{fake.bot.username} help")
    src = source(fake)
    batch = await src.fetch(None)
    await src.close()
    assert len(batch.items) == 1


async def test_reply_to_the_bot_joins_its_conversation(fake: FakeTelegram) -> None:
    bob = fake.add_user("Bob")
    group = fake.group("Acme Community")
    root = fake.say(group, bob, "is the service down?", mention_bot=True)
    src = source(fake)
    first = await src.fetch(None)
    receipt = await src.send(reply_to(first.items[0], "Looking into it."))
    [bot_msg] = fake.bot_messages(group)
    assert bot_msg["reply_to_message"]["message_id"] == root["message_id"]
    assert receipt.message is not None
    assert receipt.message.thread_key == f"chat:{group.id}:{root['message_id']}"
    follow = fake.say(group, bob, "thanks, any news?", reply_to=bot_msg["message_id"])
    second = await src.fetch(first.cursor)
    await src.close()
    [msg] = second.items
    # No thread id: it names the bot's message, which the store has in that conversation.
    assert msg.thread_key is None
    assert msg.in_reply_to == receipt.remote_id
    assert msg.remote_id == f"{group.id}:{follow['message_id']}"


async def test_forum_or_reply_thread_id_is_the_thread(fake: FakeTelegram) -> None:
    bob = fake.add_user("Bob")
    group = fake.group("Forum")
    fake.say(group, bob, "in a topic", mention_bot=True, thread_id=77)
    src = source(fake)
    batch = await src.fetch(None)
    await src.close()
    assert batch.items[0].thread_key == f"chat:{group.id}:77"
    assert batch.items[0].url is not None and "/c/" in batch.items[0].url


async def test_photo_caption_is_the_text(fake: FakeTelegram) -> None:
    alice = fake.add_user("Alice")
    fake.say(fake.private_chat(alice), alice, "broken box", photo=True)
    src = source(fake)
    batch = await src.fetch(None)
    await src.close()
    assert batch.items[0].text == "[photo] broken box"


# -- send ----------------------------------------------------------------------------
async def test_reply_in_a_private_chat_lands_once_literally(fake: FakeTelegram) -> None:
    alice = fake.add_user("Alice")
    chat = fake.private_chat(alice)
    first = fake.say(chat, alice, "hi")
    src = source(fake)
    msg = (await src.fetch(None)).items[0]
    body = "*not bold* <b>nor this</b> [link](http://x)"
    receipt = await src.send(reply_to(msg, body))
    await src.close()
    [sent] = fake.bot_messages(chat)
    assert sent["text"] == body
    assert sent["reply_to_message"]["message_id"] == first["message_id"]
    request = fake.server.calls("POST", r"/bot[^/]+/sendMessage")[0].json()
    assert "parse_mode" not in request
    assert request["reply_parameters"] == {"message_id": first["message_id"],
                                           "allow_sending_without_reply": True}
    assert receipt.remote_id == f"{chat.id}:{sent['message_id']}"
    assert receipt.message is not None and receipt.message.direction == Direction.OUT
    assert receipt.message.thread_key == f"chat:{chat.id}"


async def test_private_reply_to_a_group_mention_goes_to_the_persons_chat(
        fake: FakeTelegram) -> None:
    bob = fake.add_user("Bob")
    group = fake.group("G")
    fake.say(group, bob, "card charged twice", mention_bot=True)
    src = source(fake)
    msg = (await src.fetch(None)).items[0]
    await src.send(reply_to(msg, "Please send us the details here.", private=True))
    assert fake.bot_messages(group) == []
    assert [m["text"] for m in fake.bot_messages(fake.chats[bob.id])] == \
        ["Please send us the details here."]
    shy = fake.add_user("Shy", started_bot=False)
    fake.say(group, shy, "me too", mention_bot=True)
    batch = await src.fetch(None)
    target = next(m for m in batch.items if m.author.id == str(shy.id))
    with pytest.raises(PermanentError, match="can't initiate conversation"):
        await src.send(reply_to(target, "hello", private=True))
    await src.close()


async def test_too_long_is_refused_before_any_call(fake: FakeTelegram) -> None:
    alice = fake.add_user("Alice")
    fake.say(fake.private_chat(alice), alice, "hi")
    src = source(fake)
    msg = (await src.fetch(None)).items[0]
    before = len(fake.server.requests)
    with pytest.raises(PermanentError, match="4097/4096"):
        await src.send(reply_to(msg, "x" * 4097))
    await src.close()
    assert len(fake.server.requests) == before
    # 4096 emoji are 4096 characters: allowed by the adapter's rule.
    assert TelegramSource.limits.max_length == 4096


async def test_flood_429_gives_retry_after(fake: FakeTelegram) -> None:
    alice = fake.add_user("Alice")
    chat = fake.private_chat(alice)
    fake.say(chat, alice, "hi")
    src = source(fake)
    msg = (await src.fetch(None)).items[0]
    fake.flood(chat, 17)
    before = datetime.now(timezone.utc)
    with pytest.raises(RateLimited) as err:
        await src.send(reply_to(msg, "hello"))
    await src.close()
    assert err.value.retry_at is not None
    assert before + timedelta(seconds=16) <= err.value.retry_at \
        <= datetime.now(timezone.utc) + timedelta(seconds=18)
    assert fake.bot_messages(chat) == []


# -- errors --------------------------------------------------------------------------
async def test_revoked_token(fake: FakeTelegram) -> None:
    bad = f"{fake.bot.id}:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    src = source(fake, token=bad)
    with pytest.raises(AuthError, match="bot token rejected") as err:
        await src.fetch(None)
    result = await src.check()
    await src.close()
    assert bad not in str(err.value)
    assert not result.ok and bad not in result.summary


async def test_malformed_token(fake: FakeTelegram) -> None:
    src = source(fake, token="not-a-token")
    with pytest.raises(AuthError, match="bot token rejected"):
        await src.fetch(None)
    await src.close()


async def test_webhook_conflict_explains_delete_webhook(fake: FakeTelegram) -> None:
    fake.webhook_url = "https://example.com/hook"
    src = source(fake)
    with pytest.raises(PermanentError, match="deleteWebhook"):
        await src.fetch(None)
    result = await src.check()
    await src.close()
    assert not result.ok and "deleteWebhook" in result.summary


async def test_check_names_the_bot(fake: FakeTelegram) -> None:
    src = source(fake)
    result = await src.check()
    await src.close()
    assert result.ok and "@AcmeHelpBot" in result.summary
    assert any("privacy mode" in d for d in result.details)


async def test_5xx_and_timeout_and_drop_are_transient(fake: FakeTelegram) -> None:
    alice = fake.add_user("Alice")
    fake.say(fake.private_chat(alice), alice, "hi")
    src = source(fake, timeout=0.2)
    await src.fetch(None)  # learn the bot (getMe) first
    fake.server.inject(Fault(FakeResponse(502, "Bad Gateway")))
    with pytest.raises(TransientError, match="502"):
        await src.fetch(None)
    fake.server.inject(Fault(hang_s=0.6, then_handle=True))
    with pytest.raises(TransientError, match="did not answer") as err:
        await src.fetch(None)
    assert fake.token not in str(err.value)
    fake.server.inject(Fault(drop=True))
    with pytest.raises(TransientError, match="lost the connection") as err:
        await src.fetch(None)
    assert fake.token not in str(err.value)
    batch = await src.fetch(None)  # nothing was lost meanwhile
    await src.close()
    assert [m.text for m in batch.items] == ["hi"]


@pytest.mark.parametrize(
    "body",
    ["<html>", {"ok": True}, {"ok": True, "result": {"x": 1}},
     {"ok": True, "result": [{"update_id": "1"}]},
     {"ok": True, "result": [{"update_id": 1, "message": {"message_id": 1}}]}],
)
async def test_malformed_answers_are_transient(fake: FakeTelegram, body: object) -> None:
    src = source(fake)
    await src.fetch(None)
    fake.server.inject(Fault(FakeResponse(200, body)),
                       when=lambda r: r.path.endswith("/getUpdates"))
    with pytest.raises(TransientError, match="malformed answer from Telegram"):
        await src.fetch(None)
    await src.close()


async def test_unreadable_cursor_is_a_clear_error(fake: FakeTelegram) -> None:
    src = source(fake)
    with pytest.raises(PermanentError, match="cursor is unreadable"):
        await src.fetch("not-a-number")
    await src.close()


def test_from_config() -> None:
    table = SourceTable({"token": "env:TG_TOKEN", "long_poll": 0,
                         "api_base": "http://127.0.0.1:9"}, "sources[1]", "config.toml")
    table.name = "tg"
    src = TelegramSource.from_config(table)
    assert (src.long_poll, src.api_base) == (0, "http://127.0.0.1:9")
    bad = SourceTable({"token": "env:TG_TOKEN", "long_poll": 600}, "sources[1]", "c.toml")
    bad.name = "tg"
    with pytest.raises(ConfigError, match=r"sources\[1\]\.long_poll"):
        TelegramSource.from_config(bad)


async def test_long_poll_returns_when_a_message_arrives(fake: FakeTelegram) -> None:
    import asyncio

    alice = fake.add_user("Alice")
    chat = fake.private_chat(alice)
    src = source(fake, long_poll=5)
    await src._me()
    task = asyncio.create_task(src.fetch(None))
    await asyncio.sleep(0.1)
    fake.say(chat, alice, "ping")
    batch = await asyncio.wait_for(task, 4)
    await src.close()
    assert [m.text for m in batch.items] == ["ping"]
    assert fake.server.calls("POST", r"/bot[^/]+/getUpdates")[0].json()["timeout"] == 5


async def test_hostile_text_arrives_inert(fake: FakeTelegram) -> None:
    cases = [json.loads(line) for line in HOSTILE.read_text().splitlines() if line.strip()]
    for case in cases:
        user = fake.add_user(case["text"][:60], None, last_name=case["name"])
        fake.say(fake.private_chat(user), user, case["text"])
    src = source(fake)
    batch = await src.fetch(None)
    await src.close()
    # Telegram has no empty messages; everything else arrives.
    assert len(batch.items) == len([c for c in cases if c["text"]])
    for msg in batch.items:
        assert is_inert(msg.text)
        assert is_inert(msg.author.name) and "\n" not in msg.author.name


def test_a_config_entry_loads() -> None:
    from replydeck.config.sources import parse_sources
    from replydeck.config.table import Table

    entry = {"type": "telegram", "name": "bot", "token": "env:TG_TOKEN"}
    [loaded] = parse_sources([Table(entry, "sources[0]", "config.toml")], None)
    assert isinstance(loaded.source, TelegramSource)
    assert loaded.source.long_poll == 25 and loaded.poll_interval == 1
