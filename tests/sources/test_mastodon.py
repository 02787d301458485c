"""MastodonSource against the fake Mastodon server over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.secrets import Secret
from replydeck.config.sources import SourceTable
from replydeck.inbox.model import Direction, Kind, Reply
from replydeck.inbox.sanitize import is_inert
from replydeck.sources.base import (
    AuthError,
    PermanentError,
    RateLimited,
    TransientError,
)
from replydeck.sources.mastodon import MastodonSource, id_key, mastodon_length
from replydeck.sources.mastodon_html import html_to_text
from tests.fakes.httpfake import FakeResponse, Fault
from tests.fakes.mastodon import Account, FakeMastodon

FIXTURES = Path(__file__).parent.parent / "fakes" / "fixtures" / "mastodon"
HOSTILE = Path("/work/shared/corpus/hostile-text.jsonl")


@pytest.fixture
def fake() -> Iterator[FakeMastodon]:
    f = FakeMastodon().start()
    yield f
    f.stop()


@pytest.fixture
def us(fake: FakeMastodon) -> Account:
    return fake.add_account("support", token="tok-support", display_name="Acme Support")


@pytest.fixture
def carol(fake: FakeMastodon) -> Account:
    return fake.add_account("carol", token="tok-carol", display_name="Carol C", followers=1234)


def make(fake: FakeMastodon, token: str = "tok-support", **kw: Any) -> MastodonSource:
    return MastodonSource("masto", instance=fake.base_url, token=Secret.literal(token), **kw)


def reply(to: Any, body: str, *, private: bool = False, key: str = "k-1",
          thread: str | None = None) -> Reply:
    return Reply(id=1, conversation_id=1, source="masto", body=body, private=private,
                 idempotency_key=key, reply_to=to, thread_key=thread or to.thread_key)


# -- documented shapes ------------------------------------------------------------------
def _shape_diff(doc: Any, got: Any, path: str = "$") -> list[str]:
    if doc is None or got is None:
        return []  # nullable field: either side may be null
    if isinstance(doc, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected object, got {type(got).__name__}"]
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


async def test_fake_answers_in_the_documented_shapes(fake: FakeMastodon, us: Account,
                                                     carol: Account) -> None:
    import httpx

    root = fake.post(us, "hello world")
    fake.post(carol, "@support see https://example.com/a/very/long/path/indeed ok",
              in_reply_to=root.id)
    auth = {"Authorization": "Bearer tok-support"}
    async with httpx.AsyncClient(base_url=fake.base_url, headers=auth) as http:
        notes = (await http.get("/api/v1/notifications")).json()
        ctx = (await http.get(f"/api/v1/statuses/{notes[0]['status']['id']}/context")).json()
        inst = (await http.get("/api/v2/instance")).json()
        bad = await http.get("/api/v1/notifications", headers={"Authorization": "Bearer x"})
    doc = {p.stem: json.loads(p.read_text()) for p in FIXTURES.glob("*.json")}
    assert _shape_diff(doc["notification"], notes[0]) == []
    assert _shape_diff(doc["status"], notes[0]["status"]) == []
    assert _shape_diff(doc["account"], notes[0]["account"]) == []
    assert _shape_diff(doc["context"], ctx) == []
    assert _shape_diff(doc["instance_v2"], inst) == []
    assert bad.json() == doc["errors"]["unauthorized"]
    assert isinstance(notes[0]["id"], str)


# -- HTML -------------------------------------------------------------------------------
def test_html_to_text_keeps_links_mentions_and_breaks() -> None:
    doc = json.loads((FIXTURES / "status.json").read_text())
    text = html_to_text(doc["content"], doc["mentions"])
    assert text == ('"I lost my inheritance with one wrong digit on my sort code"\n\n'
                    "https://www.theguardian.com/money/2019/dec/07/i-lost-my-193000-"
                    "inheritance-with-one-wrong-digit-on-my-sort-code")
    html = ('<p><span class="h-card"><a href="https://other.example/@bob" '
            'class="u-url mention">@<span>bob</span></a></span> hi &amp; bye<br>line two'
            '<br/>three <a href="https://x.example/tags/help" class="mention hashtag" '
            'rel="tag">#<span>help</span></a></p><p>R&eacute;sum&#233; &lt;b&gt;</p>')
    mentions = [{"url": "https://other.example/@bob", "acct": "bob@other.example"}]
    assert html_to_text(html, mentions) == (
        "@bob@other.example hi & bye\nline two\nthree #help\n\nRésumé <b>")
    # Unknown mention keeps its visible text; broken HTML still yields its words.
    assert html_to_text('<p><a class="u-url mention" href="https://z/@q">@q</a> <a href="x">'
                        "dangling") == "@q dangling"


def test_ids_are_ordered_as_opaque_strings() -> None:
    ids = ["100000000", "99999999", "99999998"]
    assert sorted(ids, key=id_key) == ["99999998", "99999999", "100000000"]
    assert mastodon_length("hi https://example.com/" + "a" * 100) == 3 + 23
    assert mastodon_length("@bob@far.example hi") == len("@bob hi")


# -- fetching ---------------------------------------------------------------------------
async def test_fetch_mentions_with_author_text_and_filtered_strangers(
        fake: FakeMastodon, us: Account, carol: Account) -> None:
    stranger = fake.add_account("newbie", followers=3)
    st = fake.post(carol, "@support my order #123 is late &lt; 😡\n\nsee https://shop.example/o/123")
    fake.post(stranger, "@support hello?", filtered_for={us.id})
    src = make(fake)
    batch = await src.fetch(None)
    await src.close()
    assert [m.author.handle for m in batch.items] == ["carol", "newbie"]
    m = batch.items[0]
    assert m.remote_id == st.id and isinstance(m.remote_id, str)
    assert m.kind == Kind.MENTION and m.direction == Direction.IN
    assert m.thread_key == f"post:{st.id}"
    assert m.text == "@support my order #123 is late &lt; 😡\n\nsee https://shop.example/o/123"
    assert m.author.name == "Carol C" and m.author.followers == 1234
    assert m.author.url == carol.url and m.url and m.url.endswith(st.id)
    assert all(q.get("include_filtered") == ["true"] and q.get("types[]") == ["mention"]
               for q in (r.query for r in fake.server.calls("GET", "/api/v1/notifications")))


async def test_incremental_fetch_across_restart_pages_forward_without_gaps() -> None:
    # Ids cross a length boundary (99999999 -> 100000000): lexical order would break here.
    fake = FakeMastodon(first_id=99_999_960).start()
    try:
        fake.add_account("support", token="tok-support")
        carol = fake.add_account("carol")
        first = [fake.post(carol, f"@support first {i}") for i in range(3)]
        src = make(fake, page_limit=2, max_pages=2)
        b1 = await src.fetch(None)
        await src.close()
        # First run reads only the newest page.
        assert [m.remote_id for m in b1.items] == [first[1].id, first[2].id]
        burst = [fake.post(carol, f"@support burst {i}") for i in range(45)]
        assert len(burst[0].id) < len(burst[-1].id)
        seen: list[str] = []
        cursor = b1.cursor
        for _ in range(30):
            src = make(fake, page_limit=2, max_pages=2)  # a "restart" every fetch
            b = await src.fetch(cursor)
            await src.close()
            seen += [m.remote_id for m in b.items]
            cursor = b.cursor
            if not b.more:
                break
        assert seen == [s.id for s in burst]
        notif_calls = fake.server.calls("GET", "/api/v1/notifications")
        assert not any("since_id" in r.query for r in notif_calls)
        # Every page keeps the filters, whatever the Link header carries.
        assert all(r.query.get("include_filtered") == ["true"] for r in notif_calls)
        assert all(r.query.get("types[]") == ["mention"] for r in notif_calls)
        again = make(fake)
        assert (await again.fetch(cursor)).items == []
        await again.close()
    finally:
        fake.stop()


async def test_threads_group_by_root_using_context_once(fake: FakeMastodon, us: Account,
                                                        carol: Account) -> None:
    dave = fake.add_account("dave", domain="far.example")
    ours = fake.post(us, "We are launching today!")
    src = make(fake)
    await src.fetch(None)
    q1 = fake.post(carol, "@support is it out?", in_reply_to=ours.id)
    q2 = fake.post(carol, "@support hello??", in_reply_to=q1.id)
    q3 = fake.post(dave, "@support @carol same question", in_reply_to=q2.id)
    cursor = (await src.fetch(None)).cursor  # start point after the launch post
    fake.notifications = [n for n in fake.notifications if n.status is not q1]
    batch = await make(fake).fetch(json.dumps({"n": "1", "s": json.loads(cursor)["s"]}))
    by_id = {m.remote_id: m for m in batch.items}
    assert {by_id[q2.id].thread_key, by_id[q3.id].thread_key} == {f"post:{ours.id}"}
    assert by_id[q2.id].kind == Kind.MENTION and by_id[q2.id].in_reply_to == q1.id
    # Our own launch post came with the context: outbound, same thread.
    assert by_id[ours.id].direction == Direction.OUT
    assert by_id[ours.id].thread_key == f"post:{ours.id}"
    assert by_id[q3.id].author.handle == "dave@far.example"
    await src.close()


async def test_root_cache_avoids_repeated_context_calls(fake: FakeMastodon, us: Account,
                                                        carol: Account) -> None:
    src = make(fake)
    first = await src.fetch(None)
    top = fake.post(carol, "@support question")
    a = fake.post(carol, "@support more", in_reply_to=top.id)
    b = fake.post(carol, "@support and more", in_reply_to=a.id)
    batch = await src.fetch(first.cursor)
    assert {m.thread_key for m in batch.items} == {f"post:{top.id}"}
    assert [m.remote_id for m in batch.items] == [top.id, a.id, b.id]
    assert fake.server.calls("GET", r"/api/v1/statuses/\d+/context") == []
    await src.close()


async def test_direct_statuses_are_dms(fake: FakeMastodon, us: Account, carol: Account) -> None:
    src = make(fake)
    cur = (await src.fetch(None)).cursor
    dm = fake.post(carol, "@support my address is private", visibility="direct")
    batch = await src.fetch(cur)
    (m,) = batch.items
    assert m.kind == Kind.DM and m.thread_key == f"dm:{dm.id}"
    # A private reply goes out as a direct status naming the customer.
    receipt = await src.send(reply(m, "Thanks, noted.", private=True))
    sent = fake.statuses[receipt.remote_id]
    assert sent.visibility == "direct" and sent.in_reply_to_id == dm.id
    assert sent.text == "@carol Thanks, noted."
    assert receipt.message is not None and receipt.message.thread_key == f"dm:{dm.id}"
    assert receipt.message.direction == Direction.OUT and receipt.message.kind == Kind.DM
    await src.close()


# -- sending ----------------------------------------------------------------------------
async def test_public_reply_keeps_visibility_and_addresses_everyone_but_us(
        fake: FakeMastodon, us: Account, carol: Account) -> None:
    dave = fake.add_account("dave", domain="far.example")
    src = make(fake)
    cur = (await src.fetch(None)).cursor
    st = fake.post(carol, "@support @dave@far.example broken again", visibility="unlisted")
    (m,) = (await src.fetch(cur)).items
    receipt = await src.send(reply(m, "Sorry! Fixed now."))
    sent = fake.statuses[receipt.remote_id]
    assert sent.text == "@carol @dave@far.example Sorry! Fixed now."
    assert sent.visibility == "unlisted" and sent.in_reply_to_id == st.id
    assert [a.id for a in sent.mentions] == [carol.id, dave.id]
    assert receipt.message is not None and receipt.message.thread_key == f"post:{st.id}"
    assert receipt.message.text.endswith("Sorry! Fixed now.")
    assert receipt.url == f"https://social.example/@support/{receipt.remote_id}"
    # A body that already names the customer is not prefixed twice.
    r2 = await src.send(reply(m, "@Carol one more thing", key="k-2"))
    assert fake.statuses[r2.remote_id].text == "@dave@far.example @Carol one more thing"
    posts = fake.server.calls("POST", "/api/v1/statuses")
    assert [p.header("idempotency-key") for p in posts] == ["k-1", "k-2"]
    await src.close()


async def test_same_idempotency_key_twice_posts_once(fake: FakeMastodon, us: Account,
                                                     carol: Account) -> None:
    src = make(fake)
    cur = (await src.fetch(None)).cursor
    fake.post(carol, "@support hi")
    (m,) = (await src.fetch(cur)).items
    r1 = await src.send(reply(m, "Hello!", key="same"))
    src2 = make(fake)  # as after a crash between send and record
    r2 = await src2.send(reply(m, "Hello!", key="same"))
    assert r1.remote_id == r2.remote_id
    assert sum(1 for s in fake.statuses.values() if s.account.id == us.id) == 1
    assert MastodonSource.idempotent_send is True
    await src.close()
    await src2.close()


async def test_too_long_reply_is_refused_before_posting() -> None:
    fake = FakeMastodon(max_characters=40).start()
    try:
        fake.add_account("support", token="tok-support")
        carol = fake.add_account("carol")
        src = make(fake)
        cur = (await src.fetch(None)).cursor
        fake.post(carol, "@support hi")
        (m,) = (await src.fetch(cur)).items
        with pytest.raises(PermanentError, match=r"48/40 characters"):
            await src.send(reply(m, "x" * 41))
        assert fake.server.calls("POST", "/api/v1/statuses") == []
        assert src.limits.max_length == 40
        # A long URL counts 23: this fits although it has 60+ code points.
        ok = await src.send(reply(m, "see https://example.com/" + "p" * 40))
        assert ok.remote_id
        await src.close()
    finally:
        fake.stop()


# -- failures ---------------------------------------------------------------------------
async def test_rate_limit_429_without_retry_after_uses_iso_reset(fake: FakeMastodon,
                                                                 us: Account) -> None:
    src = make(fake)
    fake.rate_limit = 3  # verify_credentials, notifications, own statuses: then 429
    first = await src.fetch(None)
    assert first.not_before is not None  # remaining hit 0: come back at the reset
    start, _ = fake._used["tok-support"]
    assert first.not_before == start + fake.window
    with pytest.raises(RateLimited) as info:
        await src.fetch(first.cursor)
    assert info.value.retry_at == start + fake.window
    last = fake.server.requests[-1]
    assert last.path == "/api/v1/notifications"
    await src.close()


async def test_5xx_timeout_and_malformed_answers_are_transient_and_lose_nothing(
        fake: FakeMastodon, us: Account, carol: Account) -> None:
    src = make(fake, timeout=0.3)
    cur = (await src.fetch(None)).cursor
    st = fake.post(carol, "@support are you there?")
    notif = {"when": lambda r: r.path == "/api/v1/notifications"}
    fake.server.inject(Fault(FakeResponse(503, "<html>down</html>")), **notif)
    with pytest.raises(TransientError, match="server error 503"):
        await src.fetch(cur)
    fake.server.inject(Fault(hang_s=1.0), **notif)
    with pytest.raises(TransientError, match="did not answer"):
        await src.fetch(cur)
    fake.server.inject(Fault(FakeResponse(200, "<html>proxy</html>")), **notif)
    with pytest.raises(TransientError, match="malformed answer from Mastodon"):
        await src.fetch(cur)
    fake.server.inject(Fault(FakeResponse(200, [{"id": 5, "type": "mention"}])), **notif)
    with pytest.raises(TransientError, match="malformed answer from Mastodon"):
        await src.fetch(cur)
    fake.server.inject(Fault(FakeResponse(200, {"error": "?"})), **notif)
    with pytest.raises(TransientError, match="malformed"):
        await src.fetch(cur)
    # The same cursor still delivers the item afterwards.
    batch = await src.fetch(cur)
    assert [m.remote_id for m in batch.items] == [st.id]
    await src.close()


async def test_revoked_token_and_missing_scope_are_actionable(fake: FakeMastodon,
                                                              us: Account) -> None:
    src = make(fake, token="not-a-token")
    with pytest.raises(AuthError, match="wrong or revoked Mastodon token"):
        await src.fetch(None)
    res = await src.check()
    assert not res.ok and "wrong or revoked" in res.summary
    assert "not-a-token" not in res.summary
    await src.close()
    fake.add_account("limited", token="tok-limited", scopes={"read:accounts", "write"})
    limited = make(fake, token="tok-limited")
    res = await limited.check()
    assert not res.ok and "token lacks read:notifications" in res.summary
    with pytest.raises(AuthError, match="token lacks read:notifications"):
        await limited.fetch(None)
    await limited.close()
    ok = await make(fake).check()
    assert ok.ok and "@support" in ok.summary
    assert any("500 characters" in d for d in ok.details)


async def test_write_scope_missing_on_send(fake: FakeMastodon, carol: Account) -> None:
    fake.add_account("support", token="tok-ro", scopes={"read"})
    src = make(fake, token="tok-ro")
    cur = (await src.fetch(None)).cursor
    fake.post(carol, "@support hi")
    (m,) = (await src.fetch(cur)).items
    with pytest.raises(AuthError, match="token lacks write:statuses"):
        await src.send(reply(m, "hello"))
    await src.close()


async def test_own_replies_from_other_apps_come_back_outbound(fake: FakeMastodon, us: Account,
                                                             carol: Account) -> None:
    src = make(fake)
    cur = (await src.fetch(None)).cursor
    q = fake.post(carol, "@support where is my parcel?")
    b = await src.fetch(cur)
    ans = fake.post(us, "@carol it arrives Monday", in_reply_to=q.id)  # from the web app
    fake.post(us, "Unrelated announcement")  # answers nobody: not fetched
    b2 = await make(fake).fetch(b.cursor)
    assert [(m.remote_id, m.direction, m.thread_key) for m in b2.items] == [
        (ans.id, Direction.OUT, f"post:{q.id}")]


async def test_hostile_text_arrives_inert(fake: FakeMastodon, us: Account,
                                          carol: Account) -> None:
    samples = [json.loads(line)["text"] for line in HOSTILE.read_text().splitlines() if line]
    src = make(fake)
    cur = (await src.fetch(None)).cursor
    for text in samples:
        fake.post(carol, "@support " + text)
    evil = fake.add_account("evil", display_name="\x1b]8;;http://x\x07Bad\x1b[31m")
    fake.post(evil, "@support \u202eoops")
    items = (await make(fake, page_limit=80).fetch(cur)).items
    assert len(items) == len(samples) + 1
    for m in items:
        assert is_inert(m.text) and is_inert(m.author.name) and is_inert(m.author.handle)
    assert items[-1].author.name == "Bad"
    await src.close()


def test_from_config_refuses_plain_http_and_keeps_the_secret_lazy(tmp_path: Path) -> None:
    table = SourceTable({"instance": "http://mastodon.example", "token": "env:NOPE"},
                        "sources[0]", "cfg.toml")
    table.name = "m"
    with pytest.raises(ConfigError, match=r"sources\[0\]\.instance: expected an https"):
        MastodonSource.from_config(table)
    table = SourceTable({"instance": "https://mastodon.example", "token": "env:NOPE"},
                        "sources[0]", "cfg.toml")
    table.name = "m"
    src = MastodonSource.from_config(table)  # env var not set: fine until first use
    assert src.instance == "https://mastodon.example" and "token" not in repr(src)


async def test_unset_secret_is_an_auth_error_not_a_traceback(monkeypatch: Any) -> None:
    monkeypatch.delenv("REPLYDECK_TEST_NOPE", raising=False)
    src = MastodonSource("m", instance="https://127.0.0.1:1",
                         token=Secret.parse("env:REPLYDECK_TEST_NOPE"))
    with pytest.raises(AuthError, match="REPLYDECK_TEST_NOPE is not set"):
        await src.fetch(None)


def test_link_header_paging_keeps_filters() -> None:
    # The fake's Link header carries types[] and include_filtered like Mastodon's does.
    fake = FakeMastodon().start()
    try:
        import httpx

        us = fake.add_account("support", token="t")
        c = fake.add_account("c")
        for i in range(3):
            fake.post(c, f"@support {i}")
        r = httpx.get(f"{fake.base_url}/api/v1/notifications",
                      params={"types[]": "mention", "limit": "2", "min_id": "1"},
                      headers={"Authorization": "Bearer t"})
        prev = r.headers["Link"].split(", ")[1]
        q = parse_qs(prev[prev.index("?") + 1:prev.index(">")])
        assert q["types[]"] == ["mention"] and q["min_id"] == [r.json()[0]["id"]]
        assert datetime.fromisoformat(r.headers["X-RateLimit-Reset"].replace("Z", "+00:00"))
        assert us.id != c.id
    finally:
        fake.stop()


# -- through the real store, poller and outbox ------------------------------------------
async def test_pipeline_rate_limit_lost_answer_and_own_reply_stored_once(
        tmp_path: Path, fake: FakeMastodon, us: Account, carol: Account) -> None:
    import asyncio
    from datetime import timedelta

    from replydeck.inbox.model import ReplyState, utcnow
    from replydeck.inbox.outbox import Outbox
    from replydeck.inbox.poller import PolledSource, Poller
    from replydeck.inbox.store import Store

    offset = [timedelta()]

    def clock() -> datetime:
        return utcnow() + offset[0]

    store = Store(tmp_path / "replydeck.db")
    src = make(fake, timeout=0.3)
    poller = Poller(store, [PolledSource(src, interval=60)], owner="t", clock=clock)
    outbox = Outbox(store, {"masto": src}, owner="t", clock=clock)
    try:
        await poller.run_once()  # start point
        st = fake.post(carol, "@support my parcel is lost")
        reset = "2031-01-01T00:00:00.000000Z"
        fake.server.inject(Fault(FakeResponse(429, {"error": "Too many requests"}, {
            "X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset})), when=lambda r: r.path == "/api/v1/notifications")
        (out,) = await poller.run_once()
        assert out.error and "rate limit" in out.error
        assert out.next_at == datetime(2031, 1, 1, 0, 0, 1, tzinfo=out.next_at.tzinfo)
        await poller.poll(poller.sources[0])  # the poller comes back: nothing lost
        conv_id = store.find_conversation("masto", f"post:{st.id}")
        assert conv_id is not None
        assert [m.remote_id for m in store.messages(conv_id)] == [st.id]

        # The status is created but the answer is lost: the resend reuses the key.
        fake.server.inject(Fault(hang_s=0.8, then_handle=True),
                           when=lambda r: r.method == "POST" and r.path == "/api/v1/statuses")
        reply_row = store.queue_reply(conv_id, "Found it, arriving tomorrow.")
        report = await outbox.run_once()
        assert report.retrying == [reply_row.id]
        for _ in range(100):
            if any(s.account.id == us.id for s in fake.statuses.values()):
                break
            await asyncio.sleep(0.02)
        offset[0] = timedelta(minutes=10)
        report = await outbox.run_once()
        assert report.sent == [reply_row.id]
        ours = [s for s in fake.statuses.values() if s.account.id == us.id]
        assert len(ours) == 1 and ours[0].text == "@carol Found it, arriving tomorrow."
        stored = store.reply(reply_row.id)
        assert stored is not None and stored.state == ReplyState.SENT
        assert stored.remote_id == ours[0].id
        # Our reply also comes back from our own timeline: stored once, outbound.
        offset[0] = timedelta(minutes=20)
        await poller.run_once()
        assert [(m.remote_id, m.direction) for m in store.messages(conv_id)] == [
            (st.id, Direction.IN), (ours[0].id, Direction.OUT)]
    finally:
        await src.close()
        store.close()


async def test_empty_first_run_then_a_burst_loses_nothing(fake: FakeMastodon, us: Account,
                                                          carol: Account) -> None:
    src = make(fake, page_limit=3, max_pages=2)
    first = await src.fetch(None)
    assert first.items == [] and src.limits.max_length == 500
    burst = [fake.post(carol, f"@support {i}") for i in range(10)]
    seen: list[str] = []
    cursor = first.cursor
    for _ in range(5):
        b = await src.fetch(cursor)
        seen += [m.remote_id for m in b.items]
        cursor = b.cursor
        if not b.more:
            break
    assert seen == [s.id for s in burst]
    await src.close()


async def test_retry_after_the_key_expired_finds_the_earlier_post() -> None:
    from datetime import timedelta, timezone

    now = [datetime.now(timezone.utc)]
    fake = FakeMastodon(clock=lambda: now[0]).start()
    try:
        us = fake.add_account("support", token="tok-support")
        carol = fake.add_account("carol")
        src = make(fake)
        cur = (await src.fetch(None)).cursor
        fake.post(carol, "@support hi")
        (m,) = (await src.fetch(cur)).items
        queued = datetime.now(timezone.utc) - timedelta(hours=2)
        rep = Reply(id=1, conversation_id=1, source="masto", body="On its way!",
                    private=False, idempotency_key="old-key", reply_to=m,
                    thread_key=m.thread_key, created_at=queued)
        first = await src.send(rep)
        now[0] += timedelta(hours=2)  # the server has forgotten the key by now
        again = await make(fake).send(rep)
        assert again.remote_id == first.remote_id
        assert [s.text for s in fake.statuses.values() if s.account.id == us.id] == [
            "@carol On its way!"]
        await src.close()
    finally:
        fake.stop()


async def test_reply_to_an_invisible_parent_uses_the_parent_as_root(
        fake: FakeMastodon, us: Account, carol: Account) -> None:
    src = make(fake)
    cur = (await src.fetch(None)).cursor
    hidden = fake.post(carol, "@support private start", visibility="direct")
    hidden.visibility = "public"
    st = fake.post(carol, "@support follow-up", in_reply_to=hidden.id)
    fake.notifications = [n for n in fake.notifications if n.status is st]
    fake.server.inject(Fault(FakeResponse(404, {"error": "Record not found"})),
                       when=lambda r: r.path.endswith("/context"))
    (m,) = (await src.fetch(cur)).items
    assert m.thread_key == f"post:{hidden.id}" and m.in_reply_to == hidden.id
    await src.close()
