"""BlueskySource against the fake PDS over loopback HTTP (the real PDS is in tests/e2e)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.secrets import Secret
from replydeck.config.sources import SourceTable
from replydeck.inbox.model import Direction, Kind, Reply
from replydeck.inbox.sanitize import is_inert
from replydeck.sources.base import AuthError, PermanentError, RateLimited, TransientError
from replydeck.sources.bluesky import BlueskySource
from replydeck.sources.bluesky_richtext import TID_RE, expand_links, find_spans, tid_from_key
from tests.fakes.bluesky import Account, FakeBluesky
from tests.fakes.httpfake import FakeResponse, Fault

FIXTURES = Path(__file__).parent.parent / "fakes" / "fixtures" / "bluesky"
HOSTILE = Path("/work/shared/corpus/hostile-text.jsonl")
UTC = timezone.utc


class Clock:
    """A settable clock so timestamps (and token expiry) are under the test's control."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, ms: int = 1) -> None:
        self.now += timedelta(milliseconds=ms)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeBluesky]:
    f = FakeBluesky(clock=clock).start()
    yield f
    f.stop()


@pytest.fixture
def alice(fake: FakeBluesky) -> Account:
    return fake.add_account("alice.test", "alice-app-pw", display_name="Acme Support")


@pytest.fixture
def bob(fake: FakeBluesky) -> Account:
    return fake.add_account("bob.test", "bob-pw", display_name="Bob B", followers=4321)


def make(fake: FakeBluesky, password: str = "alice-app-pw", **kw: Any) -> BlueskySource:
    return BlueskySource("bsky", service=fake.base_url, handle="alice.test",
                         app_password=Secret.literal(password), **kw)


def rep_time() -> datetime:
    return datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def reply(to: Any, body: str, *, private: bool = False, key: str = "key-1") -> Reply:
    # Queued at the fake clock's start, as the outbox records it before sending.
    return Reply(id=1, conversation_id=1, source="bsky", body=body, private=private,
                 idempotency_key=key, reply_to=to, thread_key=to.thread_key,
                 created_at=rep_time())


# -- documented (here: captured from the real dev-env PDS) shapes ------------------------
def _shape_diff(doc: Any, got: Any, path: str = "$") -> list[str]:
    if isinstance(doc, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected object"]
        out = [f"{path}: missing {k}" for k in doc if k not in got]
        out += [f"{path}: extra {k}" for k in got if k not in doc]
        for k in doc:
            if k in got:
                out += _shape_diff(doc[k], got[k], f"{path}.{k}")
        return out
    if isinstance(doc, list):
        if not isinstance(got, list):
            return [f"{path}: expected list"]
        return _shape_diff(doc[0], got[0], f"{path}[0]") if doc and got else []
    if type(doc) is not type(got):
        return [f"{path}: expected {type(doc).__name__}, got {type(got).__name__}"]
    return []


async def test_fake_answers_in_the_real_pds_shapes(fake: FakeBluesky) -> None:
    import httpx

    a = fake.add_account("alice.test", "pw")
    b = fake.add_account("bob.test", "pw2")
    post = fake.mention(b, a, "@alice.test hi")
    doc = {p.stem: json.loads(p.read_text()) for p in FIXTURES.glob("*.json")}
    async with httpx.AsyncClient(base_url=fake.base_url + "/xrpc/") as http:
        s = (await http.post("com.atproto.server.createSession",
                             json={"identifier": "alice.test", "password": "pw"})).json()
        auth = {"Authorization": f"Bearer {s['accessJwt']}"}
        notes = (await http.get("app.bsky.notification.listNotifications",
                                params={"reasons": ["mention"]}, headers=auth)).json()
        profiles = (await http.get("app.bsky.actor.getProfiles", params={"actors": [b.did]},
                                   headers=auth)).json()
        created = (await http.post("com.atproto.repo.createRecord", headers=auth, json={
            "repo": a.did, "collection": "app.bsky.feed.post", "record": {
                "$type": "app.bsky.feed.post", "text": "fixture reply",
                "createdAt": "2026-11-22T21:10:00.000Z",
                "reply": {"root": {"uri": post.uri, "cid": post.cid},
                          "parent": {"uri": post.uri, "cid": post.cid}}}})).json()
        rkey = created["uri"].rsplit("/", 1)[1]
        got = (await http.get("com.atproto.repo.getRecord", params={
            "repo": a.did, "collection": "app.bsky.feed.post", "rkey": rkey})).json()
        feed = (await http.get("app.bsky.feed.getAuthorFeed", headers=auth, params={
            "actor": a.did, "filter": "posts_with_replies", "limit": 1})).json()
        missing = await http.get("com.atproto.repo.getRecord", params={
            "repo": a.did, "collection": "app.bsky.feed.post", "rkey": "2222222222222"})
        bad_pw = await http.post("com.atproto.server.createSession",
                                 json={"identifier": "alice.test", "password": "no"})
    s = {k: ("<jwt>" if "Jwt" in k else v) for k, v in s.items()}
    assert _shape_diff(doc["createSession"], s) == []
    assert _shape_diff(doc["listNotifications"], notes) == []
    assert _shape_diff(doc["getProfiles"], profiles) == []
    assert _shape_diff(doc["createRecord"], created) == []
    assert _shape_diff(doc["getRecord"], got) == []
    assert _shape_diff(doc["getAuthorFeed"]["feed"][0]["post"]["record"],
                       feed["feed"][0]["post"]["record"]) == []
    errors = doc["errors"]
    assert (missing.status_code, missing.json()["error"]) == (
        errors["notFound"]["status"], errors["notFound"]["body"]["error"])
    assert (bad_pw.status_code, bad_pw.json()) == (
        errors["badPassword"]["status"], errors["badPassword"]["body"])


# -- rich text --------------------------------------------------------------------------
def test_facet_offsets_are_utf8_bytes_with_japanese_and_emoji() -> None:
    text = "こんにちは @bob.test 👨‍👩‍👧 詳細は https://example.com/注文?id=1 を見てね。"
    spans = find_spans(text)
    data = text.encode()
    assert [(s.kind, data[s.byte_start:s.byte_end].decode()) for s in spans] == [
        ("mention", "@bob.test"), ("link", "https://example.com/注文?id=1")]
    assert spans[0].byte_start == len("こんにちは ".encode()) == 16
    # "@support" without a domain is not a handle; trailing punctuation is not in the URL.
    assert [s.value for s in find_spans("@support see (https://a.example/x).")] == [
        "https://a.example/x"]


def test_links_in_received_posts_are_expanded_and_bad_facets_ignored() -> None:
    text = "見て example.com/abc... ok"
    start = len("見て ".encode())
    good = {"index": {"byteStart": start, "byteEnd": start + len(b"example.com/abc...")},
            "features": [{"$type": "app.bsky.richtext.facet#link",
                          "uri": "https://example.com/abcdef"}]}
    assert expand_links(text, [good]) == "見て https://example.com/abcdef ok"
    cut = {"index": {"byteStart": 1, "byteEnd": 4}, "features": good["features"]}
    huge = {"index": {"byteStart": 0, "byteEnd": 10_000}, "features": good["features"]}
    evil = {"index": {"byteStart": start, "byteEnd": start + 3},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "javascript:x"}]}
    assert expand_links(text, [cut, huge, evil, "junk"]) == text


def test_rkeys_are_valid_tids_and_stable_per_key() -> None:
    at = datetime(2026, 11, 20, 12, 0, 5, 123_000, tzinfo=UTC)
    a, b = tid_from_key("reply-1", at), tid_from_key("reply-2", at)
    assert TID_RE.match(a) and TID_RE.match(b) and a != b
    assert tid_from_key("reply-1", at.replace(microsecond=0)) == a  # ms lost in the DB
    assert TID_RE.match(tid_from_key("reply-1")) and tid_from_key("reply-1") != a
    # The key's time is the reply's second: the AppView ignores far-off record keys.
    value = 0
    for ch in a:
        value = value * 32 + "234567abcdefghijklmnopqrstuvwxyz".index(ch)
    assert (value >> 10) // 1_000_000 == int(at.timestamp())


# -- fetching ---------------------------------------------------------------------------
async def test_fetch_mentions_with_threads_authors_and_followers(
        fake: FakeBluesky, clock: Clock, alice: Account, bob: Account) -> None:
    root = fake.post(alice, "We are live!")
    clock.tick()
    q = fake.mention(bob, alice, "@alice.test is the shop down? 😡", reply_to=root)
    clock.tick()
    top = fake.mention(bob, alice, "@alice.test separate question")
    src = make(fake)
    batch = await src.fetch(None)
    by_uri = {m.remote_id: m for m in batch.items}
    m = by_uri[q.uri]
    assert m.kind == Kind.REPLY and m.direction == Direction.IN
    assert m.thread_key == f"post:{root.uri}" and m.in_reply_to == root.uri
    assert by_uri[top.uri].thread_key == f"post:{top.uri}"
    assert by_uri[top.uri].kind == Kind.MENTION
    assert m.author.id == bob.did and m.author.handle == "bob.test"
    assert m.author.name == "Bob B" and m.author.followers == 4321
    assert m.url == f"https://bsky.app/profile/bob.test/post/{q.uri.rsplit('/', 1)[1]}"
    assert m.raw["cid"] == q.cid and m.raw["root"] == {"uri": root.uri, "cid": root.cid}
    assert m.text == "@alice.test is the shop down? 😡"
    calls = fake.server.calls("GET", "/xrpc/app.bsky.notification.listNotifications")
    assert calls[0].query["reasons"] == ["mention", "reply", "quote"]
    await src.close()


async def test_followers_are_fetched_in_batches_of_25_and_cached(
        fake: FakeBluesky, clock: Clock, alice: Account) -> None:
    people = [fake.add_account(f"p{i}.test", "x", followers=i) for i in range(30)]
    for p in people:
        clock.tick()
        fake.mention(p, alice, "@alice.test hello")
    src = make(fake)
    batch = await src.fetch(None)
    assert sorted(m.author.followers or 0 for m in batch.items) == list(range(30))
    calls = fake.server.calls("GET", "/xrpc/app.bsky.actor.getProfiles")
    assert [len(c.query["actors"]) for c in calls] == [25, 5]
    clock.tick()
    fake.mention(people[0], alice, "@alice.test again")
    await src.fetch(batch.cursor)
    assert len(fake.server.calls("GET", "/xrpc/app.bsky.actor.getProfiles")) == 2
    await src.close()


async def test_incremental_fetch_across_restart_with_bursts_and_equal_times(
        fake: FakeBluesky, clock: Clock, alice: Account, bob: Account) -> None:
    fake.mention(bob, alice, "@alice.test old one")
    src = make(fake, page_limit=5)
    first = await src.fetch(None)
    await src.close()
    assert len(first.items) == 1
    posted = []
    for i in range(13):
        if i % 3 == 0:
            clock.tick()  # several notifications share one indexedAt
        posted.append(fake.mention(bob, alice, f"@alice.test burst {i}").uri)
    cursor = first.cursor
    seen: list[str] = []
    for round_ in range(3):
        src = make(fake, page_limit=5)  # a restart each time: only the cursor survives
        b = await src.fetch(cursor)
        await src.close()
        seen += [m.remote_id for m in b.items]
        cursor = b.cursor
        if round_ == 0:
            clock.tick()
            posted.append(fake.mention(bob, alice, "@alice.test later").uri)
    assert sorted(seen) == sorted(posted) and len(seen) == len(set(seen))
    assert "Jwt" not in (cursor or "") and "pw" not in (cursor or "")
    pages = fake.server.calls("GET", "/xrpc/app.bsky.notification.listNotifications")
    assert any("cursor" in p.query for p in pages)  # the burst needed an older page


async def test_session_is_reused_refreshed_and_recreated(fake: FakeBluesky, clock: Clock,
                                                         alice: Account, bob: Account) -> None:
    src = make(fake)
    cur = (await src.fetch(None)).cursor
    cur = (await src.fetch(cur)).cursor
    assert fake.create_session_calls == 1
    fake.expire_access_tokens()
    fake.mention(bob, alice, "@alice.test after expiry")
    b = await src.fetch(cur)
    assert [m.text for m in b.items] == ["@alice.test after expiry"]
    assert fake.create_session_calls == 1
    assert len(fake.server.calls("POST", "/xrpc/com.atproto.server.refreshSession")) == 1
    fake.expire_access_tokens()
    fake.expire_refresh_tokens()
    await src.fetch(b.cursor)
    assert fake.create_session_calls == 2
    await src.close()


async def test_own_replies_from_other_apps_come_back_outbound(
        fake: FakeBluesky, clock: Clock, alice: Account, bob: Account) -> None:
    src = make(fake)
    q = fake.mention(bob, alice, "@alice.test help")
    first = await src.fetch(None)
    clock.tick()
    ans = fake.post(alice, "Sure, DM us", reply_to=q)  # from the Bluesky app
    fake.post(alice, "Unrelated announcement")
    b = await make(fake).fetch(first.cursor)
    assert [(m.remote_id, m.direction, m.thread_key) for m in b.items] == [
        (ans.uri, Direction.OUT, f"post:{q.uri}")]
    await src.close()


# -- sending ----------------------------------------------------------------------------
async def test_reply_in_thread_with_root_parent_and_facets(
        fake: FakeBluesky, clock: Clock, alice: Account, bob: Account) -> None:
    carol = fake.add_account("carol.test", "c")
    root = fake.post(bob, "Top post by bob")
    clock.tick()
    mid = fake.mention(bob, alice, "@alice.test what about this?", reply_to=root)
    src = make(fake)
    (m,) = [x for x in (await src.fetch(None)).items if x.remote_id == mid.uri]
    body = ("@bob.test ご不便をおかけしました 🙏 @carol.test 詳細: https://acme.example/ヘルプ "
            "😀 @ghost.test")
    receipt = await src.send(reply(m, body))
    rec = fake.records[receipt.remote_id]
    assert rec.value["reply"] == {"root": {"uri": root.uri, "cid": root.cid},
                                  "parent": {"uri": mid.uri, "cid": mid.cid}}
    data = body.encode()
    got = [(data[f["index"]["byteStart"]:f["index"]["byteEnd"]].decode(), f["features"][0])
           for f in rec.value["facets"]]
    # bob (whom we answer) gets the reply itself, not a mention facet; ghost does not exist.
    assert got == [
        ("@carol.test", {"$type": "app.bsky.richtext.facet#mention", "did": carol.did}),
        ("https://acme.example/ヘルプ", {"$type": "app.bsky.richtext.facet#link",
                                      "uri": "https://acme.example/ヘルプ"})]
    assert rec.value["facets"][0]["index"]["byteStart"] == len(
        "@bob.test ご不便をおかけしました 🙏 ".encode())
    assert receipt.message is not None and receipt.message.direction == Direction.OUT
    assert receipt.message.thread_key == f"post:{root.uri}"
    assert receipt.remote_id.endswith("/" + tid_from_key("key-1", rep_time()))
    # bob sees it as a reply to his post; carol as a mention.
    note = [n for n in fake.notifications if n.recipient == bob.did and n.reason == "reply"]
    assert [n.reason_subject for n in note] == [mid.uri]
    assert [n.reason for n in fake.notifications if n.recipient == carol.did] == ["mention"]
    await src.close()


async def test_resend_with_same_key_posts_once(fake: FakeBluesky, alice: Account,
                                               bob: Account) -> None:
    fake.mention(bob, alice, "@alice.test hi")
    src = make(fake)
    (m,) = (await src.fetch(None)).items
    r1 = await src.send(reply(m, "Hello!", key="same-key"))
    r2 = await make(fake).send(reply(m, "Hello!", key="same-key"))
    assert r1.remote_id == r2.remote_id
    assert len(fake.posts_by(alice)) == 1
    r3 = await src.send(reply(m, "Hello again", key="other-key"))
    assert r3.remote_id != r1.remote_id and len(fake.posts_by(alice)) == 2
    await src.close()


async def test_lost_answer_after_create_is_detected_on_retry(fake: FakeBluesky,
                                                             alice: Account,
                                                             bob: Account) -> None:
    fake.mention(bob, alice, "@alice.test hi")
    src = make(fake, timeout=0.3)
    (m,) = (await src.fetch(None)).items
    # The PDS writes the record but the answer never arrives in time.
    fake.server.inject(Fault(hang_s=0.6, then_handle=True),
                       when=lambda r: r.path.endswith("createRecord"))
    with pytest.raises(TransientError, match="did not answer"):
        await src.send(reply(m, "Shipped today"))
    for _ in range(100):  # the hung request finishes on the server side
        if fake.posts_by(alice):
            break
        await asyncio.sleep(0.02)
    # The outbox retries with the same key: the existing record is found, not doubled.
    receipt = await src.send(reply(m, "Shipped today"))
    assert len(fake.posts_by(alice)) == 1
    assert receipt.remote_id == fake.posts_by(alice)[0].uri
    assert receipt.message is not None and receipt.message.text == "Shipped today"
    await src.close()


async def test_length_limits_in_graphemes_and_bytes(fake: FakeBluesky, alice: Account,
                                                    bob: Account) -> None:
    fake.mention(bob, alice, "@alice.test hi")
    src = make(fake)
    (m,) = (await src.fetch(None)).items
    ok = await src.send(reply(m, "あ" * 300, key="a"))  # 300 graphemes, 900 bytes
    assert ok.remote_id
    with pytest.raises(PermanentError, match=r"301/300 characters"):
        await src.send(reply(m, "あ" * 301, key="b"))
    family = "👨‍👩‍👧‍👦"  # one grapheme, 25 bytes
    with pytest.raises(PermanentError, match=r"3750/3000 bytes"):
        await src.send(reply(m, family * 150, key="c"))
    assert len(fake.posts_by(alice)) == 1
    assert src.limits.max_length == 300 and src.limits.counting == "graphemes"
    await src.close()


# -- failures ---------------------------------------------------------------------------
async def test_rate_limit_headers_and_429_retry_after(fake: FakeBluesky, clock: Clock,
                                                      alice: Account) -> None:
    src = make(fake)
    fake.rate_limit = 4  # createSession, notifications, author feed, DM log
    b = await src.fetch(None)
    reset = clock.now.replace(microsecond=0) + fake.window
    assert b.not_before == reset
    fake.server.inject(Fault(FakeResponse(429, {"error": "RateLimitExceeded",
                                                "message": "Rate Limit Exceeded"},
                                          {"Retry-After": "120",
                                           "RateLimit-Reset": "1999999999"})))
    before = datetime.now(UTC)
    with pytest.raises(RateLimited) as info:
        await src.fetch(b.cursor)
    assert info.value.retry_at is not None
    assert before + timedelta(seconds=119) <= info.value.retry_at
    assert info.value.retry_at <= datetime.now(UTC) + timedelta(seconds=121)
    with pytest.raises(RateLimited) as info:  # the fake's own limiter: 4th call in window
        await src.fetch(b.cursor)
    assert info.value.retry_at is not None
    await src.close()


async def test_5xx_timeout_and_malformed_are_transient_and_lose_nothing(
        fake: FakeBluesky, alice: Account, bob: Account) -> None:
    src = make(fake, timeout=0.3)
    cur = (await src.fetch(None)).cursor
    p = fake.mention(bob, alice, "@alice.test still there?")
    notes = {"when": lambda r: r.path.endswith("listNotifications")}
    fake.server.inject(Fault(FakeResponse(502, "<html>bad gateway</html>")), **notes)
    with pytest.raises(TransientError, match="server error 502"):
        await src.fetch(cur)
    fake.server.inject(Fault(hang_s=1.0), **notes)
    with pytest.raises(TransientError, match="did not answer"):
        await src.fetch(cur)
    fake.server.inject(Fault(FakeResponse(200, "not json")), **notes)
    with pytest.raises(TransientError, match="malformed answer from Bluesky"):
        await src.fetch(cur)
    fake.server.inject(Fault(FakeResponse(200, {"notifications": [{"uri": 3}]})), **notes)
    with pytest.raises(TransientError, match="malformed answer from Bluesky"):
        await src.fetch(cur)
    fake.server.inject(Fault(FakeResponse(200, {"notifications": "x"})), **notes)
    with pytest.raises(TransientError, match="malformed"):
        await src.fetch(cur)
    b = await src.fetch(cur)
    assert [m.remote_id for m in b.items] == [p.uri]
    await src.close()


async def test_check_reports_wrong_password_and_unknown_account(fake: FakeBluesky,
                                                                alice: Account) -> None:
    res = await make(fake, password="wrong").check()
    assert not res.ok and "wrong handle or app password for @alice.test" in res.summary
    assert "wrong" not in res.summary.replace("wrong handle", "")
    ghost = BlueskySource("b", service=fake.base_url, handle="ghost.test",
                          app_password=Secret.literal("x"))
    res = await ghost.check()
    assert not res.ok and "account not found: @ghost.test" in res.summary
    with pytest.raises(AuthError, match="wrong handle or app password"):
        await make(fake, password="wrong").fetch(None)
    ok = await make(fake).check()
    assert ok.ok and ok.summary == "ok: @alice.test" and "DMs: available" in ok.details


# -- DMs --------------------------------------------------------------------------------
async def test_dms_in_and_private_replies_out(fake: FakeBluesky, clock: Clock,
                                              alice: Account, bob: Account) -> None:
    src = make(fake)
    first = await src.fetch(None)
    clock.tick()
    dm = fake.dm(bob, alice, "my order 42 never came")
    b = await src.fetch(first.cursor)
    (m,) = b.items
    assert m.kind == Kind.DM and m.thread_key == f"dm:{dm.convo_id}"
    assert m.author.handle == "bob.test" and m.author.followers == 4321
    assert json.loads(b.cursor or "{}")["dm"] == dm.rev
    r = await src.send(reply(m, "Sorry, refund on its way"))
    r_again = await make(fake).send(reply(m, "Sorry, refund on its way"))
    convo = fake.convos[dm.convo_id]
    assert [x.text for x in convo.messages] == ["my order 42 never came",
                                                "Sorry, refund on its way"]
    assert r.remote_id == r_again.remote_id
    assert r.message is not None and r.message.direction == Direction.OUT
    # Our own message comes back from the log as outbound, in the same conversation.
    b2 = await src.fetch(b.cursor)
    assert [(x.remote_id, x.direction) for x in b2.items] == [(r.remote_id, Direction.OUT)]
    await src.close()


async def test_private_reply_to_a_public_mention_opens_the_dm(fake: FakeBluesky,
                                                              alice: Account,
                                                              bob: Account) -> None:
    fake.mention(bob, alice, "@alice.test can I DM you?")
    src = make(fake)
    (m,) = (await src.fetch(None)).items
    r = await src.send(reply(m, "Yes, here we are", private=True))
    (convo,) = fake.convos.values()
    assert sorted(convo.members) == sorted([alice.did, bob.did])
    assert r.remote_id.startswith(f"dm:{convo.id}:") and convo.messages[0].text == \
        "Yes, here we are"
    assert fake.posts_by(alice) == []
    await src.close()


async def test_app_password_without_dm_access_keeps_public_items_flowing(
        fake: FakeBluesky, clock: Clock, bob: Account) -> None:
    acc = fake.add_account("alice.test", "plain-pw", dm=False)
    fake.mention(bob, acc, "@alice.test public question")
    src = make(fake, password="plain-pw")
    b = await src.fetch(None)
    assert [m.text for m in b.items] == ["@alice.test public question"]
    assert src.dm_notice and "app password without DM access" in src.dm_notice
    assert src.notice and src.notice.startswith("DMs off")
    assert src.limits.supports_private is False
    res = await src.check()
    assert res.ok and "DMs off: app password without DM access" in res.summary
    with pytest.raises(AuthError, match="app password without DM access"):
        await src.send(reply(b.items[0], "let us talk in private", private=True))
    # Later fetches do not hammer the chat service.
    n = len(fake.server.calls("GET", "/xrpc/chat.bsky.convo.getLog"))
    clock.tick()
    await src.fetch(b.cursor)
    assert len(fake.server.calls("GET", "/xrpc/chat.bsky.convo.getLog")) == n
    await src.close()


async def test_hostile_text_arrives_inert(fake: FakeBluesky, clock: Clock,
                                          alice: Account) -> None:
    samples = [json.loads(line)["text"] for line in HOSTILE.read_text().splitlines() if line]
    evil = fake.add_account("evil.test", "x", display_name="\x1b]0;pwned\x07Eve\u202e")
    for text in samples:
        clock.tick()
        fake.post(evil, "@alice.test " + text, facets=[{
            "index": {"byteStart": 0, "byteEnd": 11},
            "features": [{"$type": "app.bsky.richtext.facet#mention", "did": alice.did}]}])
    clock.tick()
    fake.dm(evil, alice, "\x1b[2J\x1b[31mclear")
    items = (await make(fake).fetch(None)).items
    assert len(items) == len(samples) + 1
    for m in items:
        assert is_inert(m.text) and is_inert(m.author.name) and is_inert(m.author.handle)
    assert items[0].author.name == "Eve"


def test_from_config_checks_service_and_handle() -> None:
    def table(data: dict[str, Any]) -> SourceTable:
        t = SourceTable(data, "sources[1]", "cfg.toml")
        t.name = "b"
        return t

    src = BlueskySource.from_config(table({"handle": "acme.bsky.social",
                                           "app_password": "env:BSKY_PW"}))
    assert src.service == "https://bsky.social" and "BSKY" not in repr(src)
    with pytest.raises(ConfigError, match=r"sources\[1\]\.service"):
        BlueskySource.from_config(table({"service": "http://pds.example", "handle": "a.b",
                                         "app_password": "env:X"}))
    with pytest.raises(ConfigError, match=r"sources\[1\]\.handle"):
        BlueskySource.from_config(table({"handle": "acme", "app_password": "env:X"}))


# -- through the real store, poller and outbox ------------------------------------------
async def test_pipeline_expiry_lost_answer_and_own_reply_stored_once(
        tmp_path: Path, fake: FakeBluesky, clock: Clock, alice: Account, bob: Account) -> None:
    from replydeck.inbox.model import ReplyState, utcnow
    from replydeck.inbox.outbox import Outbox
    from replydeck.inbox.poller import PolledSource, Poller
    from replydeck.inbox.store import Store

    offset = [timedelta()]

    def now() -> datetime:
        return utcnow() + offset[0]

    store = Store(tmp_path / "replydeck.db")
    src = make(fake, timeout=0.3)
    poller = Poller(store, [PolledSource(src, interval=60)], owner="t", clock=now)
    outbox = Outbox(store, {"bsky": src}, owner="t", clock=now)
    try:
        await poller.run_once()
        clock.tick()
        post = fake.mention(bob, alice, "@alice.test 注文が届きません 😢")
        fake.expire_access_tokens()  # mid-run expiry: refreshed, not a new login
        await poller.run_once()
        assert fake.create_session_calls == 1
        conv_id = store.find_conversation("bsky", f"post:{post.uri}")
        assert conv_id is not None
        conv = store.conversation(conv_id)
        assert conv is not None and conv.author.followers == 4321

        fake.server.inject(Fault(hang_s=0.8, then_handle=True),
                           when=lambda r: r.path.endswith("createRecord"))
        reply_row = store.queue_reply(conv_id, "申し訳ありません、本日発送します 🙏")
        report = await outbox.run_once()
        assert report.retrying == [reply_row.id]
        for _ in range(100):
            if fake.posts_by(alice):
                break
            await asyncio.sleep(0.02)
        offset[0] = timedelta(minutes=10)
        report = await outbox.run_once()
        assert report.sent == [reply_row.id]
        (rec,) = fake.posts_by(alice)
        stored = store.reply(reply_row.id)
        assert stored is not None and stored.state == ReplyState.SENT
        assert stored.remote_id == rec.uri
        assert rec.value["reply"]["parent"]["uri"] == post.uri
        clock.tick(1000)
        offset[0] = timedelta(minutes=20)
        await poller.run_once()
        assert [(m.remote_id, m.direction) for m in store.messages(conv_id)] == [
            (post.uri, Direction.IN), (rec.uri, Direction.OUT)]
    finally:
        await src.close()
        store.close()


async def test_empty_first_run_then_a_burst_loses_nothing(fake: FakeBluesky, clock: Clock,
                                                          alice: Account, bob: Account) -> None:
    src = make(fake, page_limit=3)
    first = await src.fetch(None)
    assert first.items == []
    burst = []
    for i in range(10):
        clock.tick()
        burst.append(fake.mention(bob, alice, f"@alice.test {i}").uri)
    b = await src.fetch(first.cursor)
    assert sorted(m.remote_id for m in b.items) == sorted(burst)
    await src.close()


async def test_quotes_are_their_own_threads(fake: FakeBluesky, clock: Clock, alice: Account,
                                            bob: Account) -> None:
    ours = fake.post(alice, "New pricing is live")
    clock.tick()
    q = fake.post(bob, "this is a rip-off", quote=ours)
    src = make(fake)
    (m,) = (await src.fetch(None)).items
    assert m.remote_id == q.uri and m.raw["reason"] == "quote"
    assert m.kind == Kind.MENTION and m.thread_key == f"post:{q.uri}"
    r = await src.send(reply(m, "Sorry to hear that, can we help?"))
    assert fake.records[r.remote_id].value["reply"]["root"]["uri"] == q.uri
    await src.close()


async def test_revoked_session_signs_in_again_once(fake: FakeBluesky, alice: Account,
                                                   bob: Account) -> None:
    src = make(fake)
    cur = (await src.fetch(None)).cursor
    fake.revoke_sessions()  # e.g. signed out everywhere from the app
    fake.mention(bob, alice, "@alice.test still there?")
    b = await src.fetch(cur)
    assert [m.text for m in b.items] == ["@alice.test still there?"]
    assert fake.create_session_calls == 2
    await src.close()
