"""The LINE adapter against the stateful Messaging API fake over loopback HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from replydeck.config.secrets import Secret
from replydeck.config.sources import parse_sources
from replydeck.config.table import Table
from replydeck.inbox.model import Direction, Kind, Message, Reply
from replydeck.inbox.sanitize import is_inert
from replydeck.sources.base import AuthError, PermanentError, RateLimited, TransientError
from replydeck.sources.line import LineSource, retry_key
from tests.fakes.httpfake import FakeResponse, Fault
from tests.fakes.line import FakeLine

HOSTILE = Path("/work/shared/corpus/hostile-text.jsonl")


@pytest.fixture
def fake() -> Iterator[FakeLine]:
    fake = FakeLine().start()
    yield fake
    fake.stop()


def source(fake: FakeLine, token: str | None = None, **kw: object) -> LineSource:
    kw.setdefault("timeout", 2.0)
    return LineSource("line", token=Secret.literal(token or fake.token),
                      channel_secret=Secret.literal(fake.channel_secret),
                      api_base=fake.base_url, **kw)  # type: ignore[arg-type]


def reply_to(msg: Message, body: str, *, key: str = "k-1", attempts: int = 1) -> Reply:
    return Reply(id=1, conversation_id=1, source="line", body=body, private=True,
                 idempotency_key=key, reply_to=msg, thread_key=msg.thread_key,
                 attempts=attempts)


async def one(src: LineSource, fake: FakeLine, event: dict) -> Message:
    [msg] = await src.webhook_messages(json.loads(fake.webhook_body(event)))
    return msg


async def test_message_event_becomes_a_dm_with_the_display_name(fake: FakeLine) -> None:
    user = fake.add_user("Yuki")
    event = fake.message_event(user, "注文が届きません")
    src = source(fake)
    msg = await one(src, fake, event)
    assert msg.kind == Kind.DM and msg.direction == Direction.IN
    assert msg.thread_key == f"dm:{user.user_id}"
    assert msg.remote_id == event["message"]["id"]
    assert (msg.author.id, msg.author.name) == (user.user_id, "Yuki")
    assert msg.text == "注文が届きません"
    assert msg.raw["reply_token"] == event["replyToken"]
    assert msg.created_at.timestamp() == pytest.approx(event["timestamp"] / 1000)
    # The profile is looked up once per user.
    await one(src, fake, fake.message_event(user, "again"))
    assert len(fake.server.calls("GET", r"/v2/bot/profile/.*")) == 1
    assert (await src.fetch(None)).items == []  # nothing to poll
    await src.close()


async def test_group_message_and_unknown_profile(fake: FakeLine) -> None:
    stranger = fake.add_user("X")
    del fake.users[stranger.user_id]  # not a friend of the bot: no profile
    src = source(fake)
    msg = await one(src, fake, fake.message_event(stranger, "hi all", group_id="Cgroup1"))
    assert msg.kind == Kind.MENTION and msg.thread_key == "group:Cgroup1"
    assert msg.author.name == "" and msg.raw["to"] == "Cgroup1"
    await src.close()


async def test_reply_within_the_minute_uses_the_reply_token_once(fake: FakeLine) -> None:
    user = fake.add_user("Yuki")
    src = source(fake)
    msg = await one(src, fake, fake.message_event(user, "hello"))
    receipt = await src.send(reply_to(msg, "Hi Yuki"))
    [sent] = fake.sent_to(user.user_id)
    assert sent.via == "reply" and sent.text == "Hi Yuki"
    assert receipt.remote_id == sent.id
    assert receipt.message is not None and receipt.message.thread_key == msg.thread_key
    await src.close()


async def test_after_the_minute_push_with_a_retry_key_is_idempotent(fake: FakeLine) -> None:
    user = fake.add_user("Yuki")
    src = source(fake)
    msg = await one(src, fake, fake.message_event(user, "hello", at=time.time() - 120))
    first = await src.send(reply_to(msg, "Sorry for the wait", key="reply-42"))
    [sent] = fake.sent_to(user.user_id)
    assert sent.via == "push" and sent.retry_key == retry_key("reply-42")
    [call] = fake.server.calls("POST", "/v2/bot/message/push")
    assert call.header("x-line-retry-key") == retry_key("reply-42")
    # The same reply again (a retry after a crash): LINE answers 409, nothing new is sent.
    again = await src.send(reply_to(msg, "Sorry for the wait", key="reply-42", attempts=2))
    assert again.remote_id == first.remote_id
    assert len(fake.sent_to(user.user_id)) == 1
    assert fake.server.requests[-1].path == "/v2/bot/message/push"
    await src.close()


async def test_a_retry_never_reuses_the_reply_token(fake: FakeLine) -> None:
    user = fake.add_user("Yuki")
    src = source(fake)
    msg = await one(src, fake, fake.message_event(user, "hello"))
    await src.send(reply_to(msg, "answer", attempts=2))
    assert fake.server.calls("POST", "/v2/bot/message/reply") == []
    assert [s.via for s in fake.sent_to(user.user_id)] == ["push"]
    await src.close()


async def test_a_token_that_expired_on_the_way_falls_back_to_push(fake: FakeLine) -> None:
    user = fake.add_user("Yuki")
    src = source(fake)
    msg = await one(src, fake, fake.message_event(user, "hello"))
    fake.server.inject(Fault(response=FakeResponse(400, {"message": "Invalid reply token"})),
                       when=lambda r: r.path.endswith("/reply"))
    await src.send(reply_to(msg, "answer"))
    assert [s.via for s in fake.sent_to(user.user_id)] == ["push"]
    await src.close()


async def test_errors(fake: FakeLine) -> None:
    user = fake.add_user("Yuki")
    src = source(fake, timeout=0.3)
    msg = await one(src, fake, fake.message_event(user, "hello", at=time.time() - 120))
    with pytest.raises(PermanentError, match="5000"):
        await src.send(reply_to(msg, "x" * 5001))
    fake.server.inject(Fault(response=FakeResponse(429, {"message": "Too Many Requests"})))
    with pytest.raises(RateLimited) as info:
        await src.send(reply_to(msg, "a"))
    assert info.value.retry_at is not None
    fake.server.inject(Fault(response=FakeResponse(
        429, {"message": "You have reached your monthly limit."})))
    with pytest.raises(PermanentError, match="monthly"):
        await src.send(reply_to(msg, "a"))
    fake.server.inject(Fault(response=FakeResponse(500, {"message": "Internal error"})))
    with pytest.raises(TransientError, match="500"):
        await src.send(reply_to(msg, "a"))
    fake.server.inject(Fault(response=FakeResponse(200, b"<html>")))
    with pytest.raises(TransientError, match="malformed") as malformed:
        await src.send(reply_to(msg, "a"))
    assert malformed.value.maybe_sent
    fake.server.inject(Fault(hang_s=0.6))
    with pytest.raises(TransientError, match="did not answer") as hung:
        await src.send(reply_to(msg, "a"))
    assert hung.value.maybe_sent
    bad = source(fake, token="wrong")
    with pytest.raises(AuthError, match="channel access token"):
        await bad.send(reply_to(msg, "a"))
    assert fake.sent == []
    await src.close()
    await bad.close()


async def test_hostile_text_arrives_inert(fake: FakeLine) -> None:
    cases = [json.loads(line) for line in HOSTILE.read_text().splitlines() if line.strip()]
    src = source(fake)
    events = []
    for case in cases:
        user = fake.add_user(case["text"][:40])
        events.append(fake.message_event(user, case["text"]))
    messages = await src.webhook_messages(json.loads(fake.webhook_body(*events)))
    assert len(messages) == len(cases)
    for msg in messages:
        assert is_inert(msg.text) and is_inert(msg.author.name)
        assert "\n" not in msg.author.name
    await src.close()


async def test_check_and_config(fake: FakeLine) -> None:
    result = await source(fake).check()
    assert result.ok and "Acme Support" in result.summary
    result = await source(fake, token="wrong").check()
    assert not result.ok and "channel access token" in result.summary
    table = Table({"sources": [{"type": "line", "name": "line", "token": "env:LINE_TOKEN",
                                "channel_secret": "env:LINE_SECRET"}]}, "", "c.toml")
    [st] = parse_sources(table.tables("sources"), None)
    assert isinstance(st.source, LineSource)
    assert st.source.api_base == "https://api.line.me"
