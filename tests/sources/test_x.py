"""The X adapter against the stateful fake over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.secrets import Secret
from replydeck.config.sources import SourceTable
from replydeck.inbox.model import Author, Direction, Kind, Message, Reply
from replydeck.inbox.sanitize import is_inert
from replydeck.sources.base import (
    AuthError,
    PermanentError,
    RateLimited,
    TransientError,
)
from replydeck.sources.x import REPLY_RULE_MESSAGE, XSource
from tests.fakes.httpfake import FakeResponse, Fault
from tests.fakes.x import FakeX, User

HOSTILE = Path("/work/shared/corpus/hostile-text.jsonl")


@dataclass
class World:
    fake: FakeX
    me: User
    alice: User
    bob: User
    token: str

    def source(self, token: Secret | None = None, **kw: object) -> XSource:
        kw.setdefault("timeout", 2.0)
        return XSource("x-test", token=token or Secret.literal(self.token), user_id=self.me.id,
                       api_base=self.fake.base_url, **kw)  # type: ignore[arg-type]


@pytest.fixture
def world() -> Iterator[World]:
    fake = FakeX().start()
    me = fake.add_user("AcmeSupport", "Acme Support", followers=5000, verified=True)
    alice = fake.add_user("alice", "Alice A.", followers=1234)
    bob = fake.add_user("bob", "Bob", followers=7)
    yield World(fake, me, alice, bob, fake.issue_token(me))
    fake.stop()


def reply_to(msg: Message, body: str, *, private: bool = False, key: str = "k-1") -> Reply:
    return Reply(id=1, conversation_id=1, source="x-test", body=body, private=private,
                 idempotency_key=key, reply_to=msg, thread_key=msg.thread_key,
                 created_at=datetime.now(timezone.utc))


def inbound(batch_items: list[Message]) -> list[Message]:
    return [m for m in batch_items if m.direction == Direction.IN]


# -- fetch ---------------------------------------------------------------------------
async def test_mention_becomes_a_message_with_author_thread_and_engagement(world: World) -> None:
    root = world.fake.post(world.alice, "my order is late", mentions=[world.me], likes=3)
    follow = world.fake.post(world.alice, "hello?", reply_to=root.id, mentions=[world.me])
    src = world.source()
    batch = await src.fetch(None)
    await src.close()
    by_id = {m.remote_id: m for m in batch.items}
    assert set(by_id) == {root.id, follow.id}
    first, second = by_id[root.id], by_id[follow.id]
    assert first.kind == Kind.MENTION and first.direction == Direction.IN
    assert first.thread_key == second.thread_key == f"post:{root.id}"
    assert second.in_reply_to == root.id
    assert first.author.handle == "alice" and first.author.name == "Alice A."
    assert first.author.followers == 1234
    assert first.engagement["likes"] == 3
    assert first.url == f"https://x.com/alice/status/{root.id}"
    assert first.text.startswith("@AcmeSupport my order is late")
    # What send() needs later survives in raw.
    assert world.me.id in first.raw["mentioned_ids"]


async def test_incremental_across_restart_with_a_burst_larger_than_a_page(world: World) -> None:
    early = [world.fake.post(world.alice, f"early {i}", mentions=[world.me]) for i in range(3)]
    src = world.source()
    first = await src.fetch(None)
    await src.close()
    assert {m.remote_id for m in first.items} == {p.id for p in early}

    burst = [world.fake.post(world.bob, f"burst {i}", mentions=[world.me]) for i in range(250)]
    restarted = world.source()  # a new process: only the saved cursor carries over
    second = await restarted.fetch(first.cursor)
    ids = [m.remote_id for m in second.items]
    assert len(ids) == len(set(ids)) == 250
    assert set(ids) == {p.id for p in burst}
    assert world.fake.server.calls("GET", r"/2/users/\d+/mentions")[-1].arg("pagination_token")

    third = await restarted.fetch(second.cursor)
    await restarted.close()
    assert inbound(third.items) == []


async def test_since_id_is_compared_as_a_number_not_as_text(world: World) -> None:
    src = world.source()
    batch = await src.fetch(None)
    post = world.fake.post(world.alice, "new", mentions=[world.me])
    again = await src.fetch(batch.cursor)
    await src.close()
    assert [m.remote_id for m in again.items] == [post.id]
    assert json.loads(again.cursor)["mentions"] == post.id
    assert int(post.id) > 2**53  # ids beyond float precision stay exact strings


async def test_post_field_names_from_openapi_are_accepted(world: World) -> None:
    world.fake.post_names = True
    root = world.fake.post(world.alice, "first", mentions=[world.me])
    reply = world.fake.post(world.alice, "second", reply_to=root.id, mentions=[world.me])
    src = world.source()
    batch = await src.fetch(None)
    await src.close()
    msg = {m.remote_id: m for m in batch.items}[reply.id]
    assert msg.in_reply_to == root.id
    assert msg.thread_key == f"post:{root.id}"


async def test_our_replies_from_the_x_app_come_back_as_outbound(world: World) -> None:
    root = world.fake.post(world.alice, "help", mentions=[world.me])
    unrelated = world.fake.post(world.me, "product launch today!")
    src = world.source()
    first = await src.fetch(None)
    ours = world.fake.post(world.me, "we are on it", reply_to=root.id, mentions=[world.alice])
    second = await src.fetch(first.cursor)
    await src.close()
    out = [m for m in second.items if m.direction == Direction.OUT]
    assert [m.remote_id for m in out] == [ours.id]
    assert out[0].thread_key == f"post:{root.id}"
    assert unrelated.id not in {m.remote_id for m in first.items + second.items}


# -- DMs -----------------------------------------------------------------------------
async def test_dms_are_read_once_and_our_own_are_outbound(world: World) -> None:
    a = world.fake.dm(world.alice, world.me, "my account is locked")
    b = world.fake.dm(world.me, world.alice, "sorry, checking (sent from the X app)")
    src = world.source()
    first = await src.fetch(None)
    await src.close()
    dms = {m.remote_id: m for m in first.items if m.kind == Kind.DM}
    assert set(dms) == {f"dm:{a.id}", f"dm:{b.id}"}
    assert dms[f"dm:{a.id}"].direction == Direction.IN
    assert dms[f"dm:{b.id}"].direction == Direction.OUT
    conv = a.dm_conversation_id
    assert {m.thread_key for m in dms.values()} == {f"dm:{conv}"}
    assert dms[f"dm:{a.id}"].author.followers == 1234

    restarted = world.source()
    again = await restarted.fetch(first.cursor)
    assert [m for m in again.items if m.kind == Kind.DM] == []
    c = world.fake.dm(world.alice, world.me, "still locked")
    third = await restarted.fetch(again.cursor)
    await restarted.close()
    assert [m.remote_id for m in third.items if m.kind == Kind.DM] == [f"dm:{c.id}"]


async def test_dm_rate_limit_skips_dms_but_delivers_mentions(world: World) -> None:
    src = world.source()
    first = await src.fetch(None)
    post = world.fake.post(world.alice, "hi", mentions=[world.me])
    dm = world.fake.dm(world.alice, world.me, "hello by DM")
    world.fake.exhaust("dm_events", world.me, reset_in=0.5)
    second = await src.fetch(first.cursor)
    assert [m.remote_id for m in second.items] == [post.id]
    world.fake._windows.clear()
    src._blocked_until.clear()  # the reset time has passed
    third = await src.fetch(second.cursor)
    await src.close()
    assert [m.remote_id for m in third.items] == [f"dm:{dm.id}"]


# -- send ----------------------------------------------------------------------------
async def test_reply_lands_in_the_thread_once(world: World) -> None:
    root = world.fake.post(world.alice, "where is my parcel?", mentions=[world.me])
    src = world.source()
    batch = await src.fetch(None)
    msg = batch.items[0]
    receipt = await src.send(reply_to(msg, "It ships today, sorry for the wait."))
    replies = world.fake.replies_by(world.me, root.id)
    assert [p.id for p in replies] == [receipt.remote_id]
    assert replies[0].conversation_id == root.id
    body = world.fake.server.calls("POST", "/2/tweets")[0].json()
    assert body == {"text": "It ships today, sorry for the wait.",
                    "reply": {"in_reply_to_tweet_id": root.id}}
    assert receipt.message is not None
    assert receipt.message.direction == Direction.OUT
    assert receipt.message.thread_key == msg.thread_key
    # Seen again from our timeline, it is the same remote id (the store upserts it).
    later = await src.fetch(batch.cursor)
    await src.close()
    assert [m.remote_id for m in later.items if m.direction == Direction.OUT] \
        == [receipt.remote_id]


async def test_reply_rule_refused_before_any_call(world: World) -> None:
    post = world.fake.post(world.alice, "I never mentioned you")
    target = Message(source="x-test", remote_id=post.id, platform="x", kind=Kind.MENTION,
                     author=_author(world.alice),
                     text=post.text, created_at=datetime.now(timezone.utc),
                     thread_key=f"post:{post.id}",
                     raw={"id": post.id, "conversation_id": post.id, "mentioned_ids": [],
                          "mentioned_usernames": [], "quoted_author_ids": []})
    src = world.source()
    with pytest.raises(PermanentError) as err:
        await src.send(reply_to(target, "hello"))
    await src.close()
    assert str(err.value) == REPLY_RULE_MESSAGE
    assert world.fake.server.calls("POST", "/2/tweets") == []


async def test_reply_to_a_quote_of_our_post_is_allowed(world: World) -> None:
    ours = world.fake.post(world.me, "New pricing")
    quote = world.fake.post(world.alice, "this is outrageous", quote=ours.id)
    target = Message(source="x-test", remote_id=quote.id, platform="x", kind=Kind.MENTION,
                     author=_author(world.alice), text=quote.text,
                     created_at=datetime.now(timezone.utc), thread_key=f"post:{quote.id}",
                     raw={"id": quote.id, "conversation_id": quote.id, "mentioned_ids": [],
                          "quoted_author_ids": [world.me.id]})
    src = world.source()
    receipt = await src.send(reply_to(target, "Happy to explain the new prices."))
    await src.close()
    assert [p.id for p in world.fake.replies_by(world.me, quote.id)] == [receipt.remote_id]


async def test_the_platforms_own_reply_refusal_is_explained(world: World) -> None:
    post = world.fake.post(world.alice, "no mention here")
    target = Message(source="x-test", remote_id=post.id, platform="x", kind=Kind.MENTION,
                     author=_author(world.alice), text=post.text,
                     created_at=datetime.now(timezone.utc), thread_key=f"post:{post.id}",
                     # A stale or wrong record that claims a mention: X itself refuses.
                     raw={"id": post.id, "conversation_id": post.id,
                          "mentioned_ids": [world.me.id]})
    src = world.source()
    with pytest.raises(PermanentError, match="only allows replies"):
        await src.send(reply_to(target, "hello"))
    await src.close()


@pytest.mark.parametrize(
    ("body", "private"),
    [("x" * 281, False), ("返" * 141, False), ("😀" * 141, False), ("y" * 10001, True)],
)
async def test_too_long_is_refused_before_any_call(world: World, body: str,
                                                   private: bool) -> None:
    world.fake.post(world.alice, "hi", mentions=[world.me])
    world.fake.dm(world.alice, world.me, "hi by dm")
    src = world.source()
    batch = await src.fetch(None)
    target = next(m for m in batch.items if (m.kind == Kind.DM) == private)
    calls_before = len(world.fake.server.requests)
    with pytest.raises(PermanentError, match="too long for an X"):
        await src.send(reply_to(target, body, private=private))
    await src.close()
    assert len(world.fake.server.requests) == calls_before


async def test_a_long_url_counts_23_and_is_sent(world: World) -> None:
    world.fake.post(world.alice, "link?", mentions=[world.me])
    src = world.source()
    msg = (await src.fetch(None)).items[0]
    body = "a" * 250 + " https://example.com/" + "p" * 300
    receipt = await src.send(reply_to(msg, body))
    await src.close()
    assert receipt.remote_id in world.fake.posts


async def test_dm_reply_goes_to_the_conversation(world: World) -> None:
    event = world.fake.dm(world.alice, world.me, "help please")
    src = world.source()
    msg = next(m for m in (await src.fetch(None)).items if m.kind == Kind.DM)
    receipt = await src.send(reply_to(msg, "Sure, what's your order number?", private=True))
    await src.close()
    sent = world.fake.dms_from(world.me)
    assert [f"dm:{e.id}" for e in sent] == [receipt.remote_id]
    assert sent[0].dm_conversation_id == event.dm_conversation_id
    assert world.fake.server.calls(
        "POST", rf"/2/dm_conversations/{event.dm_conversation_id}/messages")
    assert receipt.message is not None and receipt.message.thread_key == msg.thread_key


async def test_private_reply_to_a_public_mention_opens_a_dm(world: World) -> None:
    world.fake.post(world.alice, "my card was charged twice", mentions=[world.me])
    src = world.source()
    msg = (await src.fetch(None)).items[0]
    await src.send(reply_to(msg, "Please DM us the last 4 digits.", private=True))
    await src.close()
    assert world.fake.server.calls("POST", rf"/2/dm_conversations/with/{world.alice.id}/messages")
    assert [e.text for e in world.fake.dms_from(world.me)] == ["Please DM us the last 4 digits."]
    assert world.fake.replies_by(world.me, msg.remote_id) == []


async def test_find_sent_reconciles_a_crash_mid_send(world: World) -> None:
    world.fake.post(world.alice, "refund?", mentions=[world.me])
    src = world.source()
    msg = (await src.fetch(None)).items[0]
    reply = reply_to(msg, "Refund issued & confirmed: https://acme.example/r/1")
    assert await src.find_sent(reply) is None
    # The post goes out but the process dies before the receipt is stored.
    sent = await src.send(reply)
    await src.close()
    restarted = world.source()
    found = await restarted.find_sent(reply)
    assert found is not None and found.remote_id == sent.remote_id
    other = reply_to(msg, "a different text")
    assert await restarted.find_sent(other) is None
    await restarted.close()


async def test_find_sent_for_a_dm(world: World) -> None:
    world.fake.dm(world.alice, world.me, "hi")
    src = world.source()
    msg = next(m for m in (await src.fetch(None)).items if m.kind == Kind.DM)
    reply = reply_to(msg, "hello there", private=True)
    assert await src.find_sent(reply) is None
    sent = await src.send(reply)
    found = await world.source().find_sent(reply)
    await src.close()
    assert found is not None and found.remote_id == sent.remote_id


# -- errors --------------------------------------------------------------------------
async def test_429_with_x_headers_gives_the_reset_time(world: World) -> None:
    world.fake.exhaust("mentions", world.me, reset_in=300)
    reset = int(world.fake._windows[("mentions", world.me.id)][0])
    src = world.source()
    with pytest.raises(RateLimited) as err:
        await src.fetch(None)
    await src.close()
    assert err.value.retry_at == datetime.fromtimestamp(reset, timezone.utc)


async def test_429_without_reset_header_waits_a_default(world: World) -> None:
    world.fake.server.inject(Fault(FakeResponse(429, {"errors": [
        {"code": 88, "message": "Rate limit exceeded"}]})))
    src = world.source()
    with pytest.raises(RateLimited) as err:
        await src.fetch(None)
    await src.close()
    assert err.value.retry_at is not None
    assert err.value.retry_at > datetime.now(timezone.utc)


async def test_remaining_zero_sets_not_before(world: World) -> None:
    world.fake.limits["mentions"] = 1
    src = world.source()
    batch = await src.fetch(None)
    await src.close()
    reset = int(world.fake._windows[("mentions", world.me.id)][0])
    assert batch.not_before == datetime.fromtimestamp(reset, timezone.utc)


async def test_5xx_is_transient(world: World) -> None:
    world.fake.server.inject(Fault(FakeResponse(503, {"title": "Service Unavailable"})))
    src = world.source()
    with pytest.raises(TransientError, match="server error 503"):
        await src.fetch(None)
    await src.close()


async def test_timeout_is_transient(world: World) -> None:
    world.fake.server.inject(Fault(hang_s=0.6, then_handle=True))
    src = world.source(timeout=0.2)
    with pytest.raises(TransientError, match="did not answer"):
        await src.fetch(None)
    await src.close()


async def test_dropped_connection_is_transient(world: World) -> None:
    world.fake.server.inject(Fault(drop=True))
    src = world.source()
    with pytest.raises(TransientError, match="lost the connection to X"):
        await src.fetch(None)
    await src.close()


@pytest.mark.parametrize(
    "body",
    ["<html>oops</html>", [1, 2], {"data": "nope"}, {"data": [{"text": "no id"}]},
     {"data": [{"id": "1", "text": "x", "created_at": 5}]}, {"data": [{"id": 5, "text": "x"}]}],
)
async def test_malformed_answers_are_transient(world: World, body: object) -> None:
    world.fake.server.inject(Fault(FakeResponse(200, body)),
                             when=lambda r: r.path.endswith("/mentions"))
    src = world.source()
    with pytest.raises(TransientError, match="malformed answer from X"):
        await src.fetch(None)
    await src.close()


async def test_expired_token_is_refreshed_and_stored_back_to_a_file(world: World,
                                                                    tmp_path: Path) -> None:
    refresh = world.fake.issue_refresh_token(world.me, "client-123")
    token_file, refresh_file = tmp_path / "x-token", tmp_path / "x-refresh"
    for path, value in ((token_file, world.token), (refresh_file, refresh)):
        path.write_text(value + "\n")
        path.chmod(0o600)
    world.fake.post(world.alice, "hello", mentions=[world.me])
    world.fake.expire_tokens()
    src = world.source(token=Secret.parse(f"file:{token_file}"),
                       refresh_token=Secret.parse(f"file:{refresh_file}"),
                       client_id="client-123")
    batch = await src.fetch(None)
    await src.close()
    assert len(inbound(batch.items)) == 1
    new_token, new_refresh = token_file.read_text().strip(), refresh_file.read_text().strip()
    assert new_token != world.token and new_token in world.fake.tokens
    assert new_refresh != refresh and new_refresh in world.fake.refresh_tokens
    assert refresh not in world.fake.refresh_tokens  # rotated: the old one is dead
    assert stat.S_IMODE(os.stat(refresh_file).st_mode) == 0o600
    form = world.fake.server.calls("POST", "/2/oauth2/token")[0].form()
    assert form["grant_type"] == ["refresh_token"] and form["client_id"] == ["client-123"]
    # A new process starts from the stored pair.
    again = world.source(token=Secret.parse(f"file:{token_file}"),
                         refresh_token=Secret.parse(f"file:{refresh_file}"),
                         client_id="client-123")
    assert (await again.fetch(batch.cursor)).items == []
    await again.close()


async def test_concurrent_401s_refresh_once(world: World) -> None:
    refresh = world.fake.issue_refresh_token(world.me, "cid")
    world.fake.expire_tokens()
    src = world.source(refresh_token=Secret.literal(refresh), client_id="cid")
    await asyncio.gather(src.check(), src.fetch(None))
    await src.close()
    assert len(world.fake.server.calls("POST", "/2/oauth2/token")) == 1


async def test_expired_token_with_env_secret_explains_instead_of_burning_the_refresh(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    refresh = world.fake.issue_refresh_token(world.me, "cid")
    monkeypatch.setenv("X_TOKEN", world.token)
    monkeypatch.setenv("X_REFRESH", refresh)
    world.fake.expire_tokens()
    src = world.source(token=Secret.parse("env:X_TOKEN"),
                       refresh_token=Secret.parse("env:X_REFRESH"), client_id="cid")
    with pytest.raises(AuthError) as err:
        await src.fetch(None)
    await src.close()
    message = str(err.value)
    assert "cannot be saved to env:X_TOKEN" in message
    assert "keyring:" in message and "file:" in message
    assert world.token not in message and refresh not in message
    assert world.fake.server.calls("POST", "/2/oauth2/token") == []
    assert refresh in world.fake.refresh_tokens


async def test_expired_token_without_refresh_settings(world: World) -> None:
    world.fake.expire_tokens()
    src = world.source()
    with pytest.raises(AuthError, match="configure refresh_token and client_id") as err:
        await src.fetch(None)
    await src.close()
    assert world.token not in str(err.value)


async def test_revoked_refresh_token(world: World) -> None:
    world.fake.expire_tokens()
    src = world.source(refresh_token=Secret.literal("xrt-revoked"), client_id="cid")
    with pytest.raises(AuthError, match="refused to refresh") as err:
        await src.fetch(None)
    await src.close()
    assert "xrt-revoked" not in str(err.value)


async def test_missing_dm_scope_is_an_auth_error_naming_scopes(world: World) -> None:
    token = world.fake.issue_token(world.me, scopes=frozenset({"tweet.read", "users.read"}))
    src = world.source(token=Secret.literal(token))
    with pytest.raises(AuthError, match=r"dm\.read"):
        await src.fetch(None)
    result = await src.check()
    await src.close()
    assert not result.ok


# -- doctor, config, hostile text ------------------------------------------------------
async def test_check_names_the_account_and_catches_a_wrong_user_id(world: World) -> None:
    src = world.source()
    result = await src.check()
    await src.close()
    assert result.ok and "@AcmeSupport" in result.summary
    wrong = XSource("x-test", token=Secret.literal(world.token), user_id=world.alice.id,
                    api_base=world.fake.base_url)
    result = await wrong.check()
    await wrong.close()
    assert not result.ok and "not to user_id" in result.summary


async def test_check_with_a_wrong_token(world: World) -> None:
    src = world.source(token=Secret.literal("xat-wrong"))
    result = await src.check()
    await src.close()
    assert not result.ok and "xat-wrong" not in result.summary


def test_from_config_reads_keys_and_rejects_a_bad_user_id() -> None:
    table = SourceTable({"type": "x", "name": "brand-x", "token": "env:X_TOKEN",
                         "refresh_token": "file:~/.x-refresh", "client_id": "abc",
                         "user_id": "2244994945", "api_base": "http://127.0.0.1:9"},
                        "sources[0]", "config.toml")
    table.name = "brand-x"
    src = XSource.from_config(table)
    assert src.user_id == "2244994945" and src.api_base == "http://127.0.0.1:9"
    assert "env:X_TOKEN" not in repr(src)
    bad = SourceTable({"token": "env:X", "user_id": "@acme"}, "sources[0]", "config.toml")
    bad.name = "brand-x"
    with pytest.raises(ConfigError, match=r"sources\[0\]\.user_id"):
        XSource.from_config(bad)


async def test_user_id_is_learned_from_the_token_when_not_configured(world: World) -> None:
    world.fake.post(world.alice, "hi", mentions=[world.me])
    src = XSource("x-test", token=Secret.literal(world.token), api_base=world.fake.base_url)
    batch = await src.fetch(None)
    await src.close()
    assert src.user_id == world.me.id and len(batch.items) == 1


async def test_hostile_text_arrives_inert(world: World) -> None:
    cases = [json.loads(line) for line in HOSTILE.read_text().splitlines() if line.strip()]
    src = world.source()
    cursor = (await src.fetch(None)).cursor
    for case in cases:
        author = world.fake.add_user("h" + str(len(world.fake.users)), case["text"][:50])
        world.fake.post(author, case["text"], mentions=[world.me])
        world.fake.dm(author, world.me, case["text"])
    items: list[Message] = []
    for _ in range(4):
        batch = await src.fetch(cursor)
        items += batch.items
        cursor = batch.cursor
    await src.close()
    assert len(inbound(items)) >= len(cases)
    for msg in items:
        assert is_inert(msg.text), msg.remote_id
        assert is_inert(msg.author.name) and "\n" not in msg.author.name
        assert is_inert(msg.author.handle)


def _author(user: User) -> Author:
    return Author(id=user.id, handle=user.username, name=user.name)


async def test_html_entities_from_x_are_unescaped_once(world: World) -> None:
    world.fake.post(world.alice, "A&B <3 &amp; more", mentions=[world.me])
    src = world.source()
    batch = await src.fetch(None)
    await src.close()
    assert batch.items[0].text.endswith("A&B <3 &amp; more")


async def test_a_lost_answer_to_a_post_is_flagged_maybe_sent(world: World) -> None:
    world.fake.post(world.alice, "hi", mentions=[world.me])
    src = world.source(timeout=0.2)
    msg = (await src.fetch(None)).items[0]
    world.fake.server.inject(Fault(hang_s=0.6, then_handle=True),
                             when=lambda r: r.method == "POST")
    with pytest.raises(TransientError) as err:
        await src.send(reply_to(msg, "on it"))
    assert err.value.maybe_sent
    world.fake.server.inject(Fault(FakeResponse(503, {"title": "Service Unavailable"})),
                             when=lambda r: r.method == "POST")
    with pytest.raises(TransientError) as err:
        await src.send(reply_to(msg, "on it, again"))
    assert err.value.maybe_sent
    await src.close()


async def test_an_unreachable_server_is_not_maybe_sent(world: World) -> None:
    world.fake.post(world.alice, "hi", mentions=[world.me])
    src = world.source()
    msg = (await src.fetch(None)).items[0]
    await src.close()
    world.fake.stop(wait=True)
    with pytest.raises(TransientError, match="cannot reach X") as err:
        await src.send(reply_to(msg, "on it"))
    await src.close()
    assert not err.value.maybe_sent


async def test_refreshed_tokens_are_stored_in_the_keyring(world: World) -> None:
    import keyring

    from tests.config.conftest import MemoryKeyring

    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    try:
        refresh = world.fake.issue_refresh_token(world.me, "cid")
        ring.set_password("replydeck-x", "token", world.token)
        ring.set_password("replydeck-x", "refresh", refresh)
        world.fake.expire_tokens()
        src = world.source(token=Secret.parse("keyring:replydeck-x/token"),
                           refresh_token=Secret.parse("keyring:replydeck-x/refresh"),
                           client_id="cid")
        await src.fetch(None)
        await src.close()
        assert ring.get_password("replydeck-x", "token") in world.fake.tokens
        assert ring.get_password("replydeck-x", "refresh") in world.fake.refresh_tokens
        assert refresh not in world.fake.refresh_tokens
    finally:
        keyring.set_keyring(previous)


async def test_send_waits_for_an_exhausted_post_window(world: World) -> None:
    world.fake.post(world.alice, "hi", mentions=[world.me])
    world.fake.limits["post create"] = 1
    src = world.source()
    msg = (await src.fetch(None)).items[0]
    await src.send(reply_to(msg, "first"))  # remaining drops to 0 with this one
    reset = int(world.fake._windows[("post create", world.me.id)][0])
    calls = len(world.fake.server.calls("POST", "/2/tweets"))
    with pytest.raises(RateLimited) as err:
        await src.send(reply_to(msg, "second"))
    await src.close()
    assert err.value.retry_at == datetime.fromtimestamp(reset, timezone.utc)
    assert len(world.fake.server.calls("POST", "/2/tweets")) == calls  # not even tried


def test_a_config_entry_loads_and_typos_are_reported() -> None:
    from replydeck.config.sources import parse_sources
    from replydeck.config.table import Table

    entry = {"type": "x", "name": "brand-x", "token": "keyring:replydeck/x",
             "refresh_token": "keyring:replydeck/x-refresh", "client_id": "abc",
             "user_id": "2244994945", "dms": False}
    [loaded] = parse_sources([Table(entry, "sources[0]", "config.toml")], None)
    assert isinstance(loaded.source, XSource) and loaded.source.dms is False
    typo = dict(entry, clientid="abc")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.clientid: unknown key"):
        parse_sources([Table(typo, "sources[0]", "config.toml")], None)
    literal = dict(entry, token="AAAA-a-real-token")
    with pytest.raises(ConfigError) as err:
        parse_sources([Table(literal, "sources[0]", "config.toml")], None)
    assert "AAAA-a-real-token" not in str(err.value)


async def test_dm_ids_beyond_the_remembered_set_are_not_read_twice(world: World) -> None:
    old = world.fake.dm(world.alice, world.me, "old one", at=time.time() - 3 * 3600)
    recent = world.fake.dm(world.alice, world.me, "recent one", at=time.time() - 10)
    src = world.source()
    first = await src.fetch(None)
    assert {m.remote_id for m in first.items} == {f"dm:{old.id}", f"dm:{recent.id}"}
    state = json.loads(first.cursor)
    state["dms"] = []  # as if the bounded id list had long since dropped them
    new = world.fake.dm(world.alice, world.me, "new one")
    second = await src.fetch(json.dumps(state))
    await src.close()
    ids = {m.remote_id for m in second.items}
    assert f"dm:{new.id}" in ids
    assert f"dm:{old.id}" not in ids  # hours older than the newest seen: read before
