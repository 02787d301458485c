"""The Matrix adapter against a fake homeserver over loopback HTTP (tests/fakes/matrix.py).

The same flows run against a real Synapse in tests/e2e/test_matrix_e2e.py; these tests
cover what a real server will not do on demand: rate limits, 5xx, hangs, malformed
bodies, gaps in the timeline, and hostile text.
"""

from __future__ import annotations

import json
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.secrets import Secret
from replydeck.config.sources import SourceTable
from replydeck.inbox.model import Direction, Kind, Reply, utcnow
from replydeck.inbox.sanitize import is_inert
from replydeck.sources.base import AuthError, PermanentError, RateLimited, TransientError
from replydeck.sources.matrix import MatrixSource
from tests.fakes.httpfake import FakeRequest, FakeResponse, Fault
from tests.fakes.matrix import FakeMatrix

ME = "@support:example.org"
BOB = "@bob:example.org"
CAROL = "@carol:example.org"
TOKEN = "syt_secret_token_value"
HOSTILE = Path("/work/shared/corpus/hostile-text.jsonl")


@pytest.fixture
def hs():
    fake = FakeMatrix().start()
    fake.add_user(ME, TOKEN)
    fake.add_user(BOB, "bob-token")
    yield fake
    fake.stop()


@pytest.fixture
async def source(hs):
    made: list[MatrixSource] = []

    def make(**kw) -> MatrixSource:
        opts = {"token": Secret.literal(TOKEN), "sync_timeout": 0, "timeout": 2.0, **kw}
        src = MatrixSource("mx", homeserver=hs.url, user_id=ME, **opts)
        made.append(src)
        return src

    yield make
    for src in made:
        await src.close()


def sync_calls(req: FakeRequest) -> bool:
    return req.path.endswith("/sync")


def reply(msg, body: str = "Thanks, on it.", key: str = "k1") -> Reply:
    return Reply(id=1, conversation_id=1, source="mx", body=body, private=False,
                 idempotency_key=key, reply_to=msg, thread_key=msg.thread_key)


# -- fetch -----------------------------------------------------------------------------
async def test_fetch_is_incremental_across_a_restart(hs, source):
    dm = hs.add_room([BOB, ME])
    first = hs.say(dm, BOB, "hello")
    src = source()
    batch = await src.fetch(None)
    assert [m.remote_id for m in batch.items] == [first]
    assert (await src.fetch(batch.cursor)).items == []
    later = [hs.say(dm, BOB, "are you there?"), hs.say(dm, BOB, "hello??")]
    restarted = source()  # a new process with the saved cursor
    again = await restarted.fetch(batch.cursor)
    assert [m.remote_id for m in again.items] == later
    sync = hs.http.calls("GET", r".*/sync")[-1]
    assert sync.arg("since") == json.loads(batch.cursor)["since"]


async def test_first_sync_takes_only_recent_history(hs, source):
    dm = hs.add_room([BOB, ME])
    ids = [hs.say(dm, BOB, f"m{i}") for i in range(8)]
    batch = await source(initial_limit=3).fetch(None)
    assert [m.remote_id for m in batch.items] == ids[-3:]
    filt = json.loads(hs.http.calls("GET", r".*/sync")[0].arg("filter"))
    assert filt["room"]["timeline"]["limit"] == 3
    assert hs.http.calls("GET", r".*/sync")[0].arg("timeout") == "0"


async def test_dm_message_fields(hs, source):
    dm = hs.add_room([BOB, ME])
    ev = hs.say(dm, BOB, "Where is order #42? 注文はどこ？ 🙂")
    msg = (await source().fetch(None)).items[0]
    assert msg.kind is Kind.DM and msg.thread_key == f"dm:{dm}"
    assert msg.direction is Direction.IN and msg.in_reply_to is None
    assert msg.author.id == BOB and msg.author.name == "bob"
    assert msg.author.url == "https://matrix.to/#/@bob:example.org"
    assert msg.url == f"https://matrix.to/#/{dm}/{ev}"
    assert msg.text == "Where is order #42? 注文はどこ？ 🙂"
    assert msg.raw["room_id"] == dm and msg.raw["event_id"] == ev


async def test_own_messages_are_outbound(hs, source):
    dm = hs.add_room([BOB, ME])
    hs.say(dm, BOB, "question")
    ours = hs.say(dm, ME, "answer from Element")
    items = (await source().fetch(None)).items
    assert [(m.remote_id, m.direction) for m in items][-1] == (ours, Direction.OUT)
    assert items[-1].thread_key == f"dm:{dm}"


async def test_shared_room_threads_and_mentions(hs, source):
    room = hs.add_room([BOB, CAROL, ME])
    root = hs.say(room, CAROL, "general chat")
    in_thread = hs.say(room, BOB, "reply in thread",
                       **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    mention = hs.say(room, BOB, "hey support", **{"m.mentions": {"user_ids": [ME]}})
    items = {m.remote_id: m for m in (await source().fetch(None)).items}
    assert items[root].thread_key == f"room:{room}" and items[root].kind is Kind.COMMENT
    assert items[in_thread].thread_key == f"thread:{room}|{root}"
    assert items[in_thread].in_reply_to == root
    assert items[mention].kind is Kind.MENTION


async def test_message_types_are_listed_readably(hs, source):
    dm = hs.add_room([BOB, ME])
    img = hs.say(dm, BOB, msgtype="m.image", body="photo.jpg", url="mxc://x/y")
    f = hs.say(dm, BOB, msgtype="m.file", body="invoice", filename="invoice.pdf")
    emote = hs.say(dm, BOB, msgtype="m.emote", body="waves")
    notice = hs.say(dm, BOB, msgtype="m.notice", body="automated notice")
    quoted = hs.say(dm, BOB, msgtype="m.text",
                    body="> <@support:example.org> old text\n\nmy answer",
                    **{"m.relates_to": {"m.in_reply_to": {"event_id": img}}})
    hs.say(dm, BOB, msgtype="m.text", body="* fixed",
           **{"m.new_content": {"msgtype": "m.text", "body": "fixed"},
              "m.relates_to": {"rel_type": "m.replace", "event_id": notice}})
    hs._append(hs.rooms[dm], {"type": "m.room.message", "sender": BOB, "content": {}})
    enc = hs._append(hs.rooms[dm], {"type": "m.room.encrypted", "sender": BOB,
                                    "content": {"algorithm": "m.megolm.v1.aes-sha2",
                                                "ciphertext": "xyz"}})["event_id"]
    items = {m.remote_id: m for m in (await source().fetch(None)).items}
    assert items[img].text == "[image: photo.jpg]"
    assert items[f].text == "[file: invoice.pdf]"
    assert items[emote].text == "* bob waves"
    assert items[notice].text == "automated notice"
    assert items[quoted].text == "my answer" and items[quoted].in_reply_to == img
    assert "encrypted" in items[enc].text
    assert len(items) == 6  # the edit and the redacted event are not new messages


async def test_invites_are_accepted_and_the_room_arrives_next(hs, source):
    room = hs.add_room([BOB], invited=[ME])
    ev = hs.say(room, BOB, "can you help?")
    src = source()
    first = await src.fetch(None)
    assert first.items == [] and first.more is True
    assert ME in hs.rooms[room].members
    second = await src.fetch(first.cursor)
    assert [m.remote_id for m in second.items] == [ev]


async def test_a_withdrawn_invite_does_not_block_the_source(hs, source):
    room = hs.add_room([BOB], invited=[ME])
    dm = hs.add_room([BOB, ME])
    ev = hs.say(dm, BOB, "hello")
    hs.http.inject(Fault(FakeResponse(403, {"errcode": "M_FORBIDDEN",
                                            "error": "You are not invited to this room."})),
                   when=lambda r: "/join/" in r.path)
    batch = await source().fetch(None)
    assert [m.remote_id for m in batch.items] == [ev]
    assert ME not in hs.rooms[room].members and batch.cursor


async def test_configured_rooms_limit_what_is_fetched_and_joined(hs, source):
    wanted = hs.add_room([BOB, ME], alias="#help:example.org")
    other = hs.add_room([BOB, ME])
    stranger = hs.add_room([BOB], invited=[ME])
    hs.say(other, BOB, "not for this source")
    ev = hs.say(wanted, BOB, "for this source")
    batch = await source(rooms=["#help:example.org"]).fetch(None)
    assert [m.remote_id for m in batch.items] == [ev]
    assert ME not in hs.rooms[stranger].members
    filt = json.loads(hs.http.calls("GET", r".*/sync")[0].arg("filter"))
    assert filt["room"]["rooms"] == [wanted]


async def test_a_gap_in_the_timeline_is_backfilled(hs, source):
    dm = hs.add_room([BOB, ME])
    src = source()
    cursor = (await src.fetch(None)).cursor
    burst = [hs.say(dm, BOB, f"burst {i}") for i in range(130)]  # more than one sync page
    batch = await src.fetch(cursor)
    assert [m.remote_id for m in batch.items] == burst
    assert hs.http.calls("GET", r".*/messages")


async def test_hostile_text_arrives_inert(hs, source):
    dm = hs.add_room([BOB, ME])
    samples = [json.loads(line)["text"] for line in HOSTILE.read_text().splitlines()
               if line.strip()]
    for text in samples:
        hs.say(dm, BOB, text)
    hs.rooms[dm].events.append((10_000, {
        "event_id": "$name", "origin_server_ts": hs.ts + 1, "type": "m.room.member",
        "sender": BOB, "state_key": BOB,
        "content": {"membership": "join", "displayname": "\x1b]8;;http://evil\x07Bob\x1b[2J"}}))
    hs.say(dm, BOB, "after rename")
    items = (await source(initial_limit=100).fetch(None)).items
    assert len(items) == len(samples) + 1
    for msg in items:
        assert is_inert(msg.text) and is_inert(msg.author.name)
        assert "\n" not in msg.author.name
    assert items[-1].author.name == "Bob"  # the escape codes gone, the name kept


# -- send ------------------------------------------------------------------------------
async def test_reply_in_dm_uses_in_reply_to_and_txn_id(hs, source):
    dm = hs.add_room([BOB, ME])
    ev = hs.say(dm, BOB, "help")
    src = source()
    msg = (await src.fetch(None)).items[0]
    receipt = await src.send(reply(msg, key="idem-1"))
    put = hs.http.calls("PUT", r".*/send/.*")[0]
    assert put.path.endswith("/send/m.room.message/idem-1")
    content = put.json()
    assert content["body"] == "Thanks, on it." and content["msgtype"] == "m.text"
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": ev}}
    assert content["m.mentions"] == {"user_ids": [BOB]}
    assert receipt.remote_id == hs.messages_in(dm, ME)[0]["event_id"]
    assert receipt.message is not None and receipt.message.direction is Direction.OUT
    assert receipt.message.thread_key == f"dm:{dm}"


async def test_same_idempotency_key_twice_posts_once(hs, source):
    dm = hs.add_room([BOB, ME])
    hs.say(dm, BOB, "help")
    msg = (await source().fetch(None)).items[0]
    a = await source().send(reply(msg, key="same"))
    b = await source().send(reply(msg, key="same"))  # a new process after a crash
    assert a.remote_id == b.remote_id
    assert len(hs.messages_in(dm, ME)) == 1


async def test_reply_in_a_thread_stays_in_the_thread(hs, source):
    room = hs.add_room([BOB, CAROL, ME])
    root = hs.say(room, CAROL, "root")
    ev = hs.say(room, BOB, "in thread",
                **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    src = source()
    msg = next(m for m in (await src.fetch(None)).items if m.remote_id == ev)
    await src.send(reply(msg))
    rel = hs.messages_in(room, ME)[0]["content"]["m.relates_to"]
    assert rel == {"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
                   "m.in_reply_to": {"event_id": ev}}


async def test_private_reply_in_a_shared_room_goes_to_a_direct_chat(hs, source):
    room = hs.add_room([BOB, CAROL, ME])
    hs.say(room, BOB, "my card was charged twice")
    src = source()
    msg = (await src.fetch(None)).items[0]
    private = reply(msg, body="I refunded it, details here.", key="priv-1")
    private.private = True
    receipt = await src.send(private)
    assert hs.messages_in(room, ME) == []  # nothing visible to the shared room
    [dm] = [r for r in hs.rooms.values() if BOB in r.invited]
    assert dm.members == [ME]
    [sent] = hs.messages_in(dm.room_id, ME)
    assert sent["event_id"] == receipt.remote_id
    assert sent["content"]["body"] == "I refunded it, details here."
    assert "m.relates_to" not in sent["content"]  # its parent is in another room
    assert hs.account_data[(ME, "m.direct")] == {BOB: [dm.room_id]}
    assert receipt.message is not None and receipt.message.raw["private"] is True
    assert receipt.message.thread_key == msg.thread_key

    # after a crash the retry finds the same direct chat; the txnId dedupes the message
    again = await source().send(private)
    assert again.remote_id == receipt.remote_id
    assert len([r for r in hs.rooms.values() if BOB in r.invited]) == 1
    # a later private answer reuses the direct chat
    other = reply(msg, body="One more thing.", key="priv-2")
    other.private = True
    await source().send(other)
    assert len(hs.messages_in(dm.room_id, ME)) == 2


async def test_too_long_reply_is_refused_before_sending(hs, source):
    dm = hs.add_room([BOB, ME])
    hs.say(dm, BOB, "help")
    src = source()
    msg = (await src.fetch(None)).items[0]
    # 20,001 three-byte characters: few characters, too many UTF-8 bytes
    with pytest.raises(PermanentError, match="60001/60000 bytes"):
        await src.send(reply(msg, body="注" * 20_000 + "a"))
    assert hs.http.calls("PUT", r".*/send/.*") == []
    await src.send(reply(msg, body="注" * 20_000))  # exactly at the limit is fine


# -- errors ----------------------------------------------------------------------------
async def test_rate_limit_with_retry_after_header(hs, source):
    hs.http.inject(Fault(FakeResponse(429, {"errcode": "M_LIMIT_EXCEEDED", "error": "slow",
                                            "retry_after_ms": 99_000},
                                      {"Retry-After": "30"})), when=sync_calls)
    before = utcnow()
    with pytest.raises(RateLimited) as exc:
        await source().fetch(None)
    assert before + timedelta(seconds=30) <= exc.value.retry_at \
        <= utcnow() + timedelta(seconds=31)


async def test_rate_limit_with_http_date_and_with_retry_after_ms(hs, source):
    when = (utcnow() + timedelta(minutes=2)).replace(microsecond=0)
    hs.http.inject(Fault(FakeResponse(429, {"errcode": "M_LIMIT_EXCEEDED"},
                                      {"Retry-After": format_datetime(when, usegmt=True)})))
    with pytest.raises(RateLimited) as exc:
        await source().fetch(None)
    assert exc.value.retry_at == when
    # older servers: 400-ish body only, no header
    hs.http.inject(Fault(FakeResponse(429, {"errcode": "M_LIMIT_EXCEEDED",
                                            "retry_after_ms": 1500})))
    before = utcnow()
    with pytest.raises(RateLimited) as exc:
        await source().fetch(None)
    assert before + timedelta(seconds=1.5) <= exc.value.retry_at \
        <= utcnow() + timedelta(seconds=1.6)


async def test_rate_limited_send(hs, source):
    dm = hs.add_room([BOB, ME])
    hs.say(dm, BOB, "help")
    src = source()
    msg = (await src.fetch(None)).items[0]
    hs.http.inject(Fault(FakeResponse(429, {"errcode": "M_LIMIT_EXCEEDED",
                                            "retry_after_ms": 500})),
                   when=lambda r: r.method == "PUT")
    with pytest.raises(RateLimited):
        await src.send(reply(msg))
    assert hs.messages_in(dm, ME) == []
    await src.send(reply(msg))
    assert len(hs.messages_in(dm, ME)) == 1


async def test_unknown_token_is_an_auth_error_without_the_token(hs, source):
    src = source(token=Secret.literal("expired-token"))
    with pytest.raises(AuthError, match="token rejected") as exc:
        await src.fetch(None)
    assert "expired-token" not in str(exc.value)
    check = await src.check()
    assert not check.ok and "M_UNKNOWN_TOKEN" in check.summary
    assert "expired-token" not in repr(src)


async def test_server_error_timeout_and_malformed_are_transient(hs, source):
    dm = hs.add_room([BOB, ME])
    ev = hs.say(dm, BOB, "still here?")
    src = source(timeout=0.5)
    hs.http.inject(Fault(FakeResponse(503, "<html>maintenance</html>")), when=sync_calls)
    with pytest.raises(TransientError, match="server error 503"):
        await src.fetch(None)
    hs.http.inject(Fault(hang_s=1.0), when=sync_calls)
    with pytest.raises(TransientError, match="did not answer in time"):
        await src.fetch(None)
    hs.http.inject(Fault(drop=True), when=sync_calls)
    with pytest.raises(TransientError, match="cannot reach"):
        await src.fetch(None)
    for body in ("not json at all", [], {"rooms": {}}, {"next_batch": 5},
                 {"next_batch": "s1", "rooms": {"join": {dm: {"timeline": {"events": [
                     {"type": "m.room.message", "content": {"body": "x"}}]}}}}}):
        hs.http.inject(Fault(FakeResponse(200, body)), when=sync_calls)
        with pytest.raises(TransientError, match="malformed answer from matrix"):
            await src.fetch(None)
    batch = await src.fetch(None)  # recovered: nothing lost
    assert [m.remote_id for m in batch.items] == [ev]


async def test_send_without_answer_is_maybe_sent_and_the_retry_posts_once(hs, source):
    dm = hs.add_room([BOB, ME])
    hs.say(dm, BOB, "help")
    src = source(timeout=0.3)
    msg = (await src.fetch(None)).items[0]
    hs.http.inject(Fault(hang_s=0.6, then_handle=True), when=lambda r: r.method == "PUT")
    with pytest.raises(TransientError) as exc:
        await src.send(reply(msg, key="lost"))
    assert exc.value.maybe_sent is True
    hs.http.inject(Fault(FakeResponse(502, "bad gateway")), when=lambda r: r.method == "PUT")
    with pytest.raises(TransientError) as exc:
        await src.send(reply(msg, key="lost"))
    assert exc.value.maybe_sent is True
    receipt = await source().send(reply(msg, key="lost"))
    assert [e["event_id"] for e in hs.messages_in(dm, ME)] == [receipt.remote_id]


async def test_forbidden_room_is_permanent(hs, source):
    dm = hs.add_room([BOB, ME])
    hs.say(dm, BOB, "help")
    src = source()
    msg = (await src.fetch(None)).items[0]
    hs.rooms[dm].members.remove(ME)  # we were kicked meanwhile
    with pytest.raises(PermanentError, match="M_FORBIDDEN"):
        await src.send(reply(msg))


async def test_check(hs, source):
    ok = await source().check()
    assert ok.ok and ME in ok.summary
    hs.add_user(BOB, TOKEN)  # the token now belongs to someone else
    wrong = await source().check()
    assert not wrong.ok and "belongs to @bob:example.org" in wrong.summary


async def test_check_reports_configured_rooms_we_are_not_in(hs, source):
    room = hs.add_room([BOB], invited=[ME], alias="#vip:example.org")
    res = await source(rooms=["#vip:example.org"]).check()
    assert not res.ok and room in res.summary


# -- config ----------------------------------------------------------------------------
def table(**data) -> SourceTable:
    base = {"type": "matrix", "name": "mx", "homeserver": "https://matrix.example.org",
            "user_id": ME, "token": "env:MX_TOKEN"}
    base.update(data)
    t = SourceTable(base, "sources[0]", "config.toml")
    t.name = "mx"
    return t


def test_config_reads_options():
    src = MatrixSource.from_config(table(rooms=["#a:example.org", "!b:example.org"],
                                         sync_timeout=0, initial_history=5))
    assert src.rooms == ["#a:example.org", "!b:example.org"]
    assert src.sync_timeout == 0 and src.initial_limit == 5
    assert MatrixSource.from_config(table()).rooms is None


@pytest.mark.parametrize(("data", "key", "words"), [
    ({"homeserver": "http://matrix.example.org"}, "homeserver", "only allowed for loopback"),
    ({"homeserver": "matrix.example.org"}, "homeserver", "client URL"),
    ({"user_id": "support"}, "user_id", "full Matrix user id"),
    ({"rooms": ["general"]}, "rooms", "room id"),
    ({"token": "syt_literal"}, "token", "secret reference"),
])
def test_config_errors_name_the_key(data, key, words):
    with pytest.raises(ConfigError) as exc:
        MatrixSource.from_config(table(**data))
    assert f"sources[0].{key}" in str(exc.value) and words in str(exc.value)
    assert "syt_literal" not in str(exc.value)


def test_http_is_allowed_on_loopback():
    src = MatrixSource.from_config(table(homeserver="http://127.0.0.1:8008"))
    assert src.homeserver == "http://127.0.0.1:8008"
