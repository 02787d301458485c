"""The Matrix adapter against a real Synapse on loopback.

bob (and carol) are customers; alice is our account, used by the adapter with a token
from /login. bob's own /sync is the judge of what the customer sees.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import httpx
import pytest

from replydeck.config.sources import SourceTable
from replydeck.inbox.model import Direction, Kind, Reply, utcnow
from replydeck.inbox.outbox import Outbox
from replydeck.inbox.poller import PolledSource, Poller
from replydeck.inbox.store import Store
from replydeck.sources.base import AuthError, RateLimited, TransientError
from replydeck.sources.matrix import MatrixSource
from tests.fakes.httpfake import FakeHTTPServer, FakeRequest, FakeResponse, Fault

pytestmark = pytest.mark.e2e
ALICE = "@alice:localhost"
BOB = "@bob:localhost"
CAROL = "@carol:localhost"


class Client:
    """A customer's plain Matrix client (not replydeck code)."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(base_url=url + "/_matrix/client/v3", timeout=30,
                                 headers={"Authorization": f"Bearer {token}"})
        self.since = self.sync()["next_batch"]

    def sync(self, since: str | None = None) -> dict:
        params = {"timeout": 0, **({"since": since} if since else {})}
        r = self.http.get("/sync", params=params)
        r.raise_for_status()
        return r.json()

    def create_room(self, invite: list[str], direct: bool = True) -> str:
        r = self.http.post("/createRoom", json={"preset": "private_chat",
                                                "is_direct": direct, "invite": invite})
        r.raise_for_status()
        return r.json()["room_id"]

    def join(self, room: str) -> None:
        self.http.post(f"/join/{room}", json={}).raise_for_status()

    def say(self, room: str, body: str, **extra) -> str:
        r = self.http.put(f"/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}",
                          json={"msgtype": "m.text", "body": body, **extra})
        r.raise_for_status()
        return r.json()["event_id"]

    def new_events(self, room: str) -> list[dict]:
        """Messages that arrived in ``room`` since the last call, as the customer sees them."""
        body = self.sync(self.since)
        self.since = body["next_batch"]
        timeline = body.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {})
        return [e for e in timeline.get("events", []) if e["type"] == "m.room.message"]


@pytest.fixture
def alice_token(matrix_server) -> str:
    return matrix_server.login("alice", "alicepass")


@pytest.fixture
def bob(matrix_server) -> Client:
    return Client(matrix_server.url, matrix_server.login("bob", "bobpass"))


@pytest.fixture
async def make_source(matrix_server, alice_token, monkeypatch):
    monkeypatch.setenv("REPLYDECK_E2E_MATRIX_TOKEN", alice_token)
    made: list[MatrixSource] = []

    def make(**overrides) -> MatrixSource:
        data = {"type": "matrix", "name": "support-matrix",
                "homeserver": matrix_server.url, "user_id": ALICE,
                "token": "env:REPLYDECK_E2E_MATRIX_TOKEN", "sync_timeout": 0}
        data.update(overrides)
        table = SourceTable(data, "sources[0]", "config.toml")
        table.name = data["name"]
        src = MatrixSource.from_config(table)
        made.append(src)
        return src

    yield make
    for src in made:
        await src.close()


async def drain(src: MatrixSource, cursor: str | None, room: str, rounds: int = 5):
    """Fetch until nothing more is waiting; the room's messages and the final cursor."""
    got = []
    for _ in range(rounds):
        batch = await src.fetch(cursor)
        cursor = batch.cursor
        got += [m for m in batch.items if m.raw["room_id"] == room]
        if not batch.more:
            break
    return got, cursor


def reply_to(msg, key: str, body: str) -> Reply:
    return Reply(id=1, conversation_id=1, source="support-matrix", body=body, private=False,
                 idempotency_key=key, reply_to=msg, thread_key=msg.thread_key)


async def test_customer_dm_fetched_once_and_reply_seen_once_even_after_a_crash(
        bob, make_source):
    src = make_source()
    cursor = (await src.fetch(None)).cursor  # the account was set up before the customer
    room = bob.create_room([ALICE])
    question = bob.say(room, "Hi, where is my order #123? 注文はどこ？")

    got, cursor = await drain(src, cursor, room)
    assert [m.remote_id for m in got] == [question]
    msg = got[0]
    assert msg.kind is Kind.DM and msg.thread_key == f"dm:{room}"
    assert msg.direction is Direction.IN
    assert msg.author.id == BOB and msg.author.name == "bob"
    assert msg.text == "Hi, where is my order #123? 注文はどこ？"
    assert msg.url == f"https://matrix.to/#/{room}/{question}"
    assert (await drain(src, cursor, room))[0] == []  # fetched once, not again

    bob.new_events(room)  # bob has seen his own message
    key = f"reply-{uuid.uuid4().hex}"
    receipt = await src.send(reply_to(msg, key, "It ships today."))
    # ... replydeck is killed here, before the outbox records the receipt; after the
    # restart the outbox sends again with the same idempotency key from a NEW source.
    await src.close()
    again = await make_source().send(reply_to(msg, key, "It ships today."))
    assert again.remote_id == receipt.remote_id

    seen = bob.new_events(room)
    replies = [e for e in seen if e["sender"] == ALICE]
    assert len(replies) == 1, seen
    assert replies[0]["event_id"] == receipt.remote_id
    assert replies[0]["content"]["body"] == "It ships today."
    assert replies[0]["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == question

    # our reply comes back from /sync as an outbound message of the same conversation
    ours, _ = await drain(make_source(), cursor, room)
    assert [(m.remote_id, m.direction, m.thread_key) for m in ours] == [
        (receipt.remote_id, Direction.OUT, f"dm:{room}")]


async def test_restart_from_saved_cursor_misses_nothing_and_repeats_nothing(
        bob, make_source):
    src = make_source()
    cursor = (await src.fetch(None)).cursor
    room = bob.create_room([ALICE])
    first = bob.say(room, "first")
    got, cursor = await drain(src, cursor, room)
    assert [m.remote_id for m in got] == [first]
    await src.close()

    # replydeck is down while the customer keeps writing
    while_down = [bob.say(room, f"while down {i}") for i in range(3)]
    restarted = make_source()
    got, cursor = await drain(restarted, cursor, room)
    assert [m.remote_id for m in got] == while_down
    assert [m.text for m in got] == ["while down 0", "while down 1", "while down 2"]
    assert (await drain(restarted, cursor, room))[0] == []


async def test_first_sync_takes_recent_history_not_everything(bob, make_source):
    src = make_source()
    cursor = (await src.fetch(None)).cursor
    room = bob.create_room([ALICE])
    await drain(src, cursor, room)  # accepts the invite
    old = [bob.say(room, f"old {i}") for i in range(6)]
    fresh = make_source(initial_history=4)  # a new install of replydeck: no cursor
    got, _ = await drain(fresh, None, room)
    assert [m.remote_id for m in got] == old[-4:]


async def test_thread_in_a_shared_room_is_its_own_conversation_and_reply_stays_in_it(
        bob, make_source, matrix_server):
    carol = Client(matrix_server.url, matrix_server.login("carol", "carolpass"))
    src = make_source()
    cursor = (await src.fetch(None)).cursor
    room = bob.create_room([ALICE, CAROL], direct=False)
    carol.join(room)
    root = bob.say(room, "Release notes for v2?")
    in_thread = bob.say(room, "@alice:localhost is the export broken?",
                        **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    got, cursor = await drain(src, cursor, room)
    by_id = {m.remote_id: m for m in got}
    assert by_id[root].thread_key == f"room:{room}"
    assert by_id[in_thread].thread_key == f"thread:{room}|{root}"
    assert by_id[in_thread].kind is Kind.MENTION
    bob.new_events(room)

    receipt = await src.send(reply_to(by_id[in_thread], f"t-{uuid.uuid4().hex}",
                                      "Fixed in 2.0.1"))
    seen = [e for e in bob.new_events(room) if e["sender"] == ALICE]
    assert len(seen) == 1
    rel = seen[0]["content"]["m.relates_to"]
    assert rel["rel_type"] == "m.thread" and rel["event_id"] == root
    assert rel["is_falling_back"] is True
    assert rel["m.in_reply_to"]["event_id"] == in_thread
    assert receipt.message is not None
    assert receipt.message.thread_key == f"thread:{room}|{root}"
    ours, _ = await drain(src, cursor, room)
    assert [(m.remote_id, m.thread_key) for m in ours] == [
        (receipt.remote_id, f"thread:{room}|{root}")]


async def test_check_verifies_the_token_owner(make_source):
    assert (await make_source().check()).ok
    wrong = await make_source(user_id=BOB).check()
    assert not wrong.ok and "belongs to @alice:localhost" in wrong.summary


async def test_revoked_token_is_an_auth_error(matrix_server, monkeypatch):
    token = matrix_server.login("alice", "alicepass")
    httpx.post(f"{matrix_server.url}/_matrix/client/v3/logout",
               headers={"Authorization": f"Bearer {token}"}).raise_for_status()
    src = MatrixSource("m", homeserver=matrix_server.url, user_id=ALICE,
                       token=_literal(token), sync_timeout=0)
    with pytest.raises(AuthError, match="token rejected"):
        await src.fetch(None)
    check = await src.check()
    assert not check.ok and "token rejected" in check.summary
    assert token not in check.summary
    await src.close()


# -- faults injected by a proxy in front of the real Synapse ------------------------------
@pytest.fixture
def proxy(matrix_server):
    upstream = httpx.Client(base_url=matrix_server.url, timeout=30)
    server = FakeHTTPServer()

    def forward(req: FakeRequest) -> FakeResponse:
        r = upstream.request(req.method, req.path, params=req.query, content=req.body,
                             headers={k: v for k, v in req.headers.items()
                                      if k in ("authorization", "content-type")})
        return FakeResponse(r.status_code, r.content,
                            {"Content-Type": r.headers.get("content-type", "")})

    for method in ("GET", "POST", "PUT"):
        server.route(method, r"/.*")(forward)
    server.start()
    yield server
    server.stop()
    upstream.close()


async def test_faults_through_a_proxy_lose_nothing_and_double_nothing(
        bob, alice_token, proxy):
    src = MatrixSource("m", homeserver=proxy.base_url, user_id=ALICE,
                       token=_literal(alice_token), sync_timeout=0, timeout=1.0)
    cursor = (await src.fetch(None)).cursor
    room = bob.create_room([ALICE])
    got, cursor = await drain(src, cursor, room)  # joins
    sent = [bob.say(room, "one")]

    def sync(r: FakeRequest) -> bool:
        return r.path.endswith("/sync")

    proxy.inject(Fault(FakeResponse(429, {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many",
                                          "retry_after_ms": 2000},
                                    {"Retry-After": "7"})), when=sync)
    before = utcnow()
    with pytest.raises(RateLimited) as limited:
        await src.fetch(cursor)
    assert before + timedelta(seconds=6) <= limited.value.retry_at \
        <= utcnow() + timedelta(seconds=8)

    proxy.inject(Fault(FakeResponse(429, {"errcode": "M_LIMIT_EXCEEDED",
                                          "retry_after_ms": 2500})), when=sync)
    with pytest.raises(RateLimited) as limited:
        await src.fetch(cursor)
    assert limited.value.retry_at <= utcnow() + timedelta(seconds=2.6)

    proxy.inject(Fault(FakeResponse(502, "<html>bad gateway</html>")), when=sync)
    with pytest.raises(TransientError, match="server error 502"):
        await src.fetch(cursor)
    proxy.inject(Fault(hang_s=2.0), when=sync)
    with pytest.raises(TransientError, match="did not answer in time"):
        await src.fetch(cursor)
    proxy.inject(Fault(FakeResponse(200, "this is not json")), when=sync)
    with pytest.raises(TransientError, match="malformed answer from matrix"):
        await src.fetch(cursor)
    proxy.inject(Fault(FakeResponse(200, {"rooms": {}})), when=sync)
    with pytest.raises(TransientError, match="malformed answer from matrix"):
        await src.fetch(cursor)

    sent.append(bob.say(room, "two"))
    got, cursor = await drain(src, cursor, room)  # the poller's retry: all there, once
    assert [m.remote_id for m in got] == sent

    # a send whose answer is lost is repeated with the same txnId: one event
    msg = got[-1]
    key = f"lost-{uuid.uuid4().hex}"
    bob.new_events(room)
    # the server gets the request, but its answer arrives after the client gave up
    proxy.inject(Fault(hang_s=1.5, then_handle=True), when=lambda r: r.method == "PUT")
    with pytest.raises(TransientError):
        await src.send(reply_to(msg, key, "answer"))
    await asyncio.sleep(1.0)  # let the late request reach Synapse
    receipt = await src.send(reply_to(msg, key, "answer"))
    seen = [e for e in bob.new_events(room) if e["sender"] == ALICE]
    assert [e["event_id"] for e in seen] == [receipt.remote_id]
    await src.close()


def _literal(token: str):
    from replydeck.config.secrets import Secret

    return Secret.literal(token)


async def test_through_poller_store_and_outbox_with_a_crash_mid_send(
        bob, make_source, tmp_path):
    """poll -> store -> queue a reply -> killed after the PUT -> recovered with the same
    txnId: the customer sees one reply, the store one outbound message."""
    store = Store(tmp_path / "inbox.db")
    ps = PolledSource(make_source(), interval=60)
    poller = Poller(store, [ps], owner="first")
    await poller.poll(ps)  # the account's starting point
    room = bob.create_room([ALICE])
    question = bob.say(room, "Can I change my address?")
    for _ in range(3):  # accept the invite, then read the room
        await poller.poll(ps)
    conv = store.find_conversation("support-matrix", f"dm:{room}")
    assert conv is not None
    assert [m.remote_id for m in store.messages(conv)] == [question]
    bob.new_events(room)

    queued = store.queue_reply(conv, "Yes, send us the new one.", private=True)
    due, _ = store.claim_replies("first", lease_until=utcnow() + timedelta(seconds=30))
    first = await ps.source.send(due[0])
    # ... killed here ...
    later = utcnow() + timedelta(minutes=2)
    outbox = Outbox(store, {"support-matrix": make_source()}, owner="second",
                    clock=lambda: later)
    report = await outbox.run_once()
    assert report.sent == [queued.id]
    assert store.reply(queued.id).remote_id == first.remote_id

    seen = [e for e in bob.new_events(room) if e["sender"] == ALICE]
    assert [e["event_id"] for e in seen] == [first.remote_id]
    await poller.poll(ps)  # our event comes back through /sync: no duplicate
    assert [(m.remote_id, m.direction) for m in store.messages(conv)] == [
        (question, Direction.IN), (first.remote_id, Direction.OUT)]
    assert not store.conversation(conv).needs_reply
    store.close()


# -- the unit tests' fake homeserver answers in Synapse's shapes ---------------------------
def shape(value):
    """Field names and JSON types, recursively (lists by their first element)."""
    if isinstance(value, dict):
        # maps keyed by room/user/event ids compare by one placeholder key
        return {("<id>" if k[:1] in "!@$#" else k): shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def assert_within(fake, real, path="$"):
    """Every field the fake sends exists in the real answer with the same type."""
    if isinstance(fake, dict):
        assert isinstance(real, dict), f"{path}: fake has an object, Synapse {real}"
        for key, sub in fake.items():
            assert key in real, f"{path}.{key}: Synapse has no such field ({sorted(real)})"
            assert_within(sub, real[key], f"{path}.{key}")
    elif isinstance(fake, list):
        assert isinstance(real, list), f"{path}: fake has a list, Synapse {real}"
        if fake and real:
            assert_within(fake[0], real[0], f"{path}[0]")
    else:
        assert fake == real, f"{path}: fake sends {fake}, Synapse {real}"


async def test_fake_homeserver_matches_synapse_shapes(matrix_server, alice_token):
    """The unit tests' fake (tests/fakes/matrix.py) against the real thing: every field
    the fake sends, Synapse sends too, with the same JSON type."""
    from tests.fakes.matrix import FakeMatrix

    bob_token = matrix_server.login("bob", "bobpass")
    real = httpx.Client(base_url=matrix_server.url + "/_matrix/client/v3", timeout=30)
    fake = FakeMatrix(server_name="localhost").start()
    fake.add_user(ALICE, alice_token)
    fake.add_user(BOB, bob_token)
    fake_c = httpx.Client(base_url=fake.url + "/_matrix/client/v3", timeout=30)
    pairs = []

    def both(method: str, token: str, real_path: str, fake_path: str,
             real_params: dict | None = None, fake_params: dict | None = None, **kw):
        auth = {"Authorization": f"Bearer {token}"}
        r = real.request(method, real_path, headers=auth, params=real_params, **kw)
        f = fake_c.request(method, fake_path, headers=auth, params=fake_params, **kw)
        assert r.status_code == f.status_code, (real_path, r.text, f.text)
        pairs.append((r.json(), f.json()))
        return r.json(), f.json()

    try:
        real_room = real.post("/createRoom", headers={"Authorization": f"Bearer {bob_token}"},
                              json={"preset": "private_chat", "invite": [ALICE]}
                              ).json()["room_id"]
        fake_room = fake.add_room([BOB], invited=[ALICE])
        both("GET", alice_token, "/account/whoami", "/account/whoami")
        both("POST", alice_token, f"/join/{real_room}", f"/join/{fake_room}", json={})
        for i in range(2):
            both("PUT", bob_token, f"/rooms/{real_room}/send/m.room.message/t{i}",
                 f"/rooms/{fake_room}/send/m.room.message/t{i}",
                 json={"msgtype": "m.text", "body": f"hi {i}"})
        both("GET", alice_token, f"/rooms/{real_room}/joined_members",
             f"/rooms/{fake_room}/joined_members")
        flt = {"filter": json.dumps({"room": {"timeline": {"limit": 1,
                                                           "types": ["m.room.message"]}}}),
               "timeout": 0}
        real_sync, fake_sync = both("GET", alice_token, "/sync", "/sync", flt, flt)
        real_tl = real_sync["rooms"]["join"][real_room]["timeline"]
        fake_tl = fake_sync["rooms"]["join"][fake_room]["timeline"]
        assert real_tl["limited"] is True and fake_tl["limited"] is True
        both("GET", alice_token, f"/rooms/{real_room}/messages",
             f"/rooms/{fake_room}/messages",
             {"from": real_tl["prev_batch"], "dir": "b", "limit": 1},
             {"from": fake_tl["prev_batch"], "dir": "b", "limit": 1})
        both("GET", "not-a-token", "/sync", "/sync")  # the M_UNKNOWN_TOKEN error
        for real_answer, fake_answer in pairs:
            assert_within(shape(fake_answer), shape(real_answer))
    finally:
        fake.stop()
        real.close()
        fake_c.close()


async def test_private_reply_from_a_shared_room_arrives_in_a_direct_chat(
        bob, make_source, matrix_server):
    carol = Client(matrix_server.url, matrix_server.login("carol", "carolpass"))
    src = make_source()
    cursor = (await src.fetch(None)).cursor
    room = bob.create_room([ALICE, CAROL], direct=False)
    carol.join(room)
    bob.say(room, "I was charged twice, can we talk privately?")
    got, cursor = await drain(src, cursor, room)
    msg = got[-1]
    assert msg.kind is not Kind.DM
    private = reply_to(msg, f"p-{uuid.uuid4().hex}", "Sure, refund details here.")
    private.private = True
    receipt = await src.send(private)
    await make_source().send(private)  # a retry after a crash: no second room or message

    body = bob.sync(bob.since)
    bob.since = body["next_batch"]  # (Synapse caches a repeated /sync answer for a while)
    invites = body.get("rooms", {}).get("invite", {})
    assert len(invites) == 1
    dm_room = next(iter(invites))
    bob.join(dm_room)
    seen = [e for e in bob.new_events(dm_room) if e["sender"] == ALICE]
    assert [e["event_id"] for e in seen] == [receipt.remote_id]
    assert all(e["sender"] != ALICE for e in carol.new_events(room))
    ours, _ = await drain(make_source(), cursor, dm_room)  # read back by a fresh process
    assert [(m.remote_id, m.direction, m.thread_key) for m in ours] == [
        (receipt.remote_id, Direction.OUT, f"dm:{dm_room}")]
