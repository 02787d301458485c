"""The Facebook Page adapter against the stateful Graph API fake over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.secrets import Secret
from replydeck.config.sources import parse_sources
from replydeck.config.table import Table
from replydeck.inbox.model import Direction, Kind, Message, Reply, ReplyState, utcnow
from replydeck.inbox.outbox import Outbox
from replydeck.inbox.poller import PolledSource, Poller
from replydeck.inbox.sanitize import is_inert
from replydeck.inbox.store import Store
from replydeck.sources.base import AuthError, PermanentError, RateLimited, TransientError
from replydeck.sources.facebook import FacebookSource
from tests.fakes.httpfake import FakeResponse, Fault
from tests.fakes.meta import FakeMeta, Page, graph_error

HOSTILE = Path("/work/shared/corpus/hostile-text.jsonl")
HOUR = 3600.0


@pytest.fixture
def fake() -> Iterator[FakeMeta]:
    fake = FakeMeta().start()
    yield fake
    fake.stop()


def source(fake: FakeMeta, page: Page, token: str | None = None,
           **kw: object) -> FacebookSource:
    kw.setdefault("timeout", 2.0)
    return FacebookSource("fb", token=Secret.literal(token or fake.issue_token(page)),
                          page_id=page.id, api_base=fake.base_url,
                          **kw)  # type: ignore[arg-type]


def reply_to(msg: Message, body: str, *, private: bool = False,
             options: dict | None = None) -> Reply:
    return Reply(id=1, conversation_id=1, source="fb", body=body, private=private,
                 idempotency_key="k-1", reply_to=msg, thread_key=msg.thread_key,
                 options=options or {}, created_at=utcnow())


def posts(fake: FakeMeta, path_end: str, method: str = "POST") -> list:
    return [r for r in fake.server.requests if r.method == method and r.path.endswith(path_end)]


# -- fetch ---------------------------------------------------------------------------
async def test_messenger_conversation_with_our_own_answer(fake: FakeMeta) -> None:
    page = fake.add_page()
    jane = fake.add_person("Jane Doe")
    m1 = fake.dm(page, jane, "my order is late", at=time.time() - 60)
    m2 = fake.dm(page, jane, "We're on it", from_page=True, at=time.time() - 30)
    src = source(fake, page)
    batch = await src.fetch(None)
    await src.close()
    by_id = {m.remote_id: m for m in batch.items}
    assert set(by_id) == {m1.id, m2.id}
    conv = next(iter(fake.conversations.values()))
    inbound, outbound = by_id[m1.id], by_id[m2.id]
    assert inbound.kind == Kind.DM and inbound.direction == Direction.IN
    assert inbound.thread_key == outbound.thread_key == f"dm:{conv.id}"
    assert (inbound.author.id, inbound.author.name) == (jane.id, "Jane Doe")
    assert inbound.raw["recipient_id"] == jane.id
    assert outbound.direction == Direction.OUT and outbound.raw["recipient_id"] == jane.id
    # The token travels as a parameter: it must be access_token, never in a header.
    assert all("access_token" in r.query for r in fake.server.requests)


async def test_incremental_fetch_across_a_restart_without_gaps_or_duplicates(
        fake: FakeMeta) -> None:
    page = fake.add_page()
    people = [fake.add_person(f"P{i}") for i in range(30)]
    now = time.time()
    for i, p in enumerate(people):  # 30 conversations: more than one page of 25
        fake.dm(page, p, f"first {i}", at=now - 1000 + i)
    src = source(fake, page, comments=False)
    first = await src.fetch(None)
    await src.close()
    # The first fetch reads the newest page only (no history import beyond it).
    assert len(first.items) == 25
    # Then 27 conversations get a new message: they span two pages.
    for i, p in enumerate(people[:27]):
        fake.dm(page, p, f"again {i}", at=now - 100 + i)
    restarted = source(fake, page, comments=False)
    second = await restarted.fetch(first.cursor)
    await restarted.close()
    texts = sorted(m.text for m in second.items)
    assert texts == sorted(f"again {i}" for i in range(27))
    third = await source(fake, page, comments=False).fetch(second.cursor)
    assert third.items == []


async def test_comments_thread_by_top_level_comment_with_our_reply_outbound(
        fake: FakeMeta) -> None:
    page = fake.add_page()
    post = fake.page_post(page, "New product!")
    bob = fake.add_person("Bob")
    top = fake.comment(post, bob, "does it ship to Norway?", at=time.time() - 50)
    ours = fake.comment(post, fake.page_as_person(page), "Yes!", parent=top,
                        at=time.time() - 40)
    again = fake.comment(post, bob, "great, thanks", parent=top, at=time.time() - 30)
    other = fake.comment(post, bob, "another question", at=time.time() - 20)
    src = source(fake, page, messages=False)
    batch = await src.fetch(None)
    await src.close()
    by_id = {m.remote_id: m for m in batch.items}
    assert set(by_id) == {top.id, ours.id, again.id, other.id}
    assert {by_id[i].thread_key for i in (top.id, ours.id, again.id)} == {f"comment:{top.id}"}
    assert by_id[other.id].thread_key == f"comment:{other.id}"
    assert by_id[ours.id].direction == Direction.OUT and by_id[ours.id].kind == Kind.REPLY
    assert by_id[top.id].kind == Kind.COMMENT and by_id[top.id].author.name == "Bob"
    assert by_id[again.id].in_reply_to == top.id
    assert by_id[top.id].url and "comment_id=" in by_id[top.id].url


async def test_new_comments_only_after_restart(fake: FakeMeta) -> None:
    page = fake.add_page()
    post = fake.page_post(page, "p")
    bob = fake.add_person("Bob")
    fake.comment(post, bob, "one", at=time.time() - 100)
    first = await source(fake, page, messages=False).fetch(None)
    assert [m.text for m in first.items] == ["one"]
    fake.comment(post, bob, "two", at=time.time() - 50)
    newer = fake.page_post(page, "q")
    fake.comment(newer, bob, "three", at=time.time() - 40)
    second = await source(fake, page, messages=False).fetch(first.cursor)
    assert sorted(m.text for m in second.items) == ["three", "two"]


async def test_hostile_text_arrives_inert(fake: FakeMeta) -> None:
    page = fake.add_page()
    cases = [json.loads(line) for line in HOSTILE.read_text().splitlines() if line.strip()]
    for i, case in enumerate(cases):
        person = fake.add_person(case["text"][:60])
        fake.dm(page, person, case["text"], at=time.time() - 500 + i)
    src = source(fake, page, comments=False)
    items: list[Message] = []
    cursor = None
    # Conversations come 25 a page; the first fetch reads one page, so add them in rounds.
    batch = await src.fetch(cursor)
    items += batch.items
    await src.close()
    assert items
    for msg in items:
        assert is_inert(msg.text)
        assert is_inert(msg.author.name) and "\n" not in msg.author.name


# -- replies -------------------------------------------------------------------------
async def test_public_reply_lands_under_the_top_level_comment_once(fake: FakeMeta) -> None:
    page = fake.add_page()
    post = fake.page_post(page, "p")
    bob = fake.add_person("Bob")
    top = fake.comment(post, bob, "question", at=time.time() - 60)
    nested = fake.comment(post, bob, "and another thing", parent=top, at=time.time() - 30)
    src = source(fake, page, messages=False)
    batch = await src.fetch(None)
    latest = next(m for m in batch.items if m.remote_id == nested.id)
    receipt = await src.send(reply_to(latest, "Here is the answer"))
    [ours] = [c for c in fake.replies_to(top) if c.author.id == page.id]
    assert receipt.remote_id == ours.id and ours.message == "Here is the answer"
    assert receipt.message is not None and receipt.message.thread_key == f"comment:{top.id}"
    assert receipt.message.direction == Direction.OUT
    # Polling brings it back with the same id: the store keeps it once.
    again = await src.fetch(batch.cursor)
    assert [m.remote_id for m in again.items if m.direction == Direction.OUT] == [ours.id]
    await src.close()


async def test_private_reply_once_per_comment_checked_before_calling(fake: FakeMeta) -> None:
    page = fake.add_page()
    post = fake.page_post(page, "p")
    bob = fake.add_person("Bob")
    top = fake.comment(post, bob, "my account number is wrong", at=time.time() - 60)
    src = source(fake, page, messages=False)
    [msg] = (await src.fetch(None)).items
    assert src.reply_window(msg, private=True).open
    public = src.reply_window(msg)  # a comment thread: public by default, no time limit
    assert public.open and "public" in public.reason
    receipt = await src.send(reply_to(msg, "Let's sort it out in private", private=True))
    [dm] = fake.messages_to(bob)
    assert receipt.remote_id == dm.id and dm.text == "Let's sort it out in private"
    window = src.reply_window(msg, private=True)
    assert not window.open and "already" in window.reason
    with pytest.raises(PermanentError, match="already got its one private reply"):
        await src.send(reply_to(msg, "second try", private=True))
    assert len(posts(fake, f"/{page.id}/messages")) == 1
    # A fresh process learns it from Graph (can_reply_privately) before calling.
    fresh = source(fake, page, messages=False)
    with pytest.raises(PermanentError, match="already"):
        await fresh.send(reply_to(msg, "third try", private=True))
    assert len(posts(fake, f"/{page.id}/messages")) == 1
    assert top.private_replied
    await src.close()
    await fresh.close()


async def test_private_reply_after_seven_days_is_refused_with_the_reason(
        fake: FakeMeta) -> None:
    page = fake.add_page()
    post = fake.page_post(page, "p")
    bob = fake.add_person("Bob")
    fake.comment(post, bob, "old complaint", at=time.time() - 8 * 86400)
    src = source(fake, page, messages=False)
    [msg] = (await src.fetch(None)).items
    with pytest.raises(PermanentError, match="within 7 days"):
        await src.send(reply_to(msg, "sorry", private=True))
    assert posts(fake, "/messages") == []
    await src.close()


async def test_dm_reply_inside_the_window_uses_response(fake: FakeMeta) -> None:
    page = fake.add_page()
    jane = fake.add_person("Jane")
    fake.dm(page, jane, "hello?", at=time.time() - 2 * HOUR)
    src = source(fake, page, comments=False)
    [msg] = (await src.fetch(None)).items
    window = src.reply_window(msg, utcnow())
    assert window.open and "21 h 59 min left" in window.reason
    receipt = await src.send(reply_to(msg, "Hi Jane!"))
    [call] = posts(fake, f"/{page.id}/messages")
    body = call.json()
    assert body["messaging_type"] == "RESPONSE" and "tag" not in body
    assert body["recipient"] == {"id": jane.id} and body["message"] == {"text": "Hi Jane!"}
    assert receipt.remote_id == fake.messages_to(jane)[0].id
    assert receipt.message is not None and receipt.message.thread_key == msg.thread_key
    await src.close()


async def test_dm_outside_the_window_is_refused_unless_human_agent(fake: FakeMeta) -> None:
    page = fake.add_page()
    jane = fake.add_person("Jane")
    fake.dm(page, jane, "anyone there?", at=time.time() - 30 * HOUR)
    token = fake.issue_token(page, human_agent=True)
    src = source(fake, page, token, comments=False)
    [msg] = (await src.fetch(None)).items
    window = src.reply_window(msg, utcnow())
    assert not window.open and window.allowed_tags == ["HUMAN_AGENT"]
    assert "24-hour window closed" in window.reason
    with pytest.raises(PermanentError, match="HUMAN_AGENT"):
        await src.send(reply_to(msg, "sorry for the wait"))
    assert posts(fake, "/messages") == []
    await src.send(reply_to(msg, "sorry for the wait", options={"tag": "HUMAN_AGENT"}))
    [call] = posts(fake, f"/{page.id}/messages")
    assert call.json()["messaging_type"] == "MESSAGE_TAG"
    assert call.json()["tag"] == "HUMAN_AGENT"
    # After 7 days even the tag is not allowed.
    late = Message(**{**msg.__dict__, "created_at": utcnow() - timedelta(days=8)})
    window = src.reply_window(late, utcnow(), tag="HUMAN_AGENT")
    assert not window.open and window.allowed_tags == []
    with pytest.raises(PermanentError, match="7 days"):
        await src.send(reply_to(late, "x", options={"tag": "HUMAN_AGENT"}))
    await src.close()


async def test_graph_window_refusal_is_permanent_with_the_reason(fake: FakeMeta) -> None:
    page = fake.add_page()
    jane = fake.add_person("Jane")
    fake.dm(page, jane, "hi", at=time.time() - 2 * HOUR)
    src = source(fake, page, comments=False)
    [msg] = (await src.fetch(None)).items
    # Our clock says inside, Graph says outside (e.g. the app lost a message): keep the
    # platform's reason.
    fake.server.inject(Fault(response=graph_error(
        "(#10) This message is sent outside of allowed window.", 10, subcode=2018278)))
    with pytest.raises(PermanentError, match="outside the 24-hour reply window"):
        await src.send(reply_to(msg, "hello"))
    await src.close()


async def test_length_is_checked_before_calling(fake: FakeMeta) -> None:
    page = fake.add_page()
    jane = fake.add_person("Jane")
    fake.dm(page, jane, "hi")
    src = source(fake, page, comments=False)
    [msg] = (await src.fetch(None)).items
    with pytest.raises(PermanentError, match="2000"):
        await src.send(reply_to(msg, "x" * 2001))
    assert posts(fake, "/messages") == []
    await src.send(reply_to(msg, "é" * 2000))
    await src.close()


# -- errors --------------------------------------------------------------------------
async def test_usage_above_80_percent_slows_down_and_100_percent_waits(
        fake: FakeMeta) -> None:
    page = fake.add_page()
    src = source(fake, page)
    fake.usage_pct = 85
    batch = await src.fetch(None)
    assert batch.not_before is not None
    assert timedelta(minutes=4) < batch.not_before - utcnow() <= timedelta(minutes=5)
    fake.usage_pct = 100
    fake.regain_minutes = 7
    with pytest.raises(RateLimited) as info:
        await src.fetch(batch.cursor)
    assert info.value.retry_at is not None
    assert timedelta(minutes=6) < info.value.retry_at - utcnow() <= timedelta(minutes=7)
    calls = len(fake.server.requests)
    fake.usage_pct, fake.regain_minutes = 5, 0
    with pytest.raises(RateLimited):  # blocked client-side until the named time
        await src.fetch(batch.cursor)
    assert len(fake.server.requests) == calls
    await src.close()


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001, 80006])
async def test_rate_limit_error_codes(fake: FakeMeta, code: int) -> None:
    page = fake.add_page()
    src = source(fake, page)
    fake.server.inject(Fault(response=graph_error("(#4) Application request limit reached",
                                                  code)))
    with pytest.raises(RateLimited) as info:
        await src.fetch(None)
    assert info.value.retry_at is not None and info.value.retry_at > utcnow()
    await src.close()


async def test_server_errors_timeouts_and_malformed_answers_are_transient(
        fake: FakeMeta) -> None:
    page = fake.add_page()
    jane = fake.add_person("Jane")
    fake.dm(page, jane, "hi")
    src = source(fake, page, timeout=0.3)
    fake.server.inject(Fault(response=FakeResponse(429, "slow down")))
    with pytest.raises(RateLimited) as limited:
        await src.fetch(None)
    assert limited.value.retry_at is not None and limited.value.retry_at > utcnow()
    fake.server.inject(Fault(response=FakeResponse(503, "<html>down</html>")))
    with pytest.raises(TransientError, match="server error 503"):
        await src.fetch(None)
    fake.server.inject(Fault(response=graph_error("An unknown error occurred", 1,
                                                  type_="OAuthException", status=500)))
    with pytest.raises(TransientError, match="temporary problem"):
        await src.fetch(None)
    fake.server.inject(Fault(hang_s=0.6))
    with pytest.raises(TransientError, match="did not answer"):
        await src.fetch(None)
    fake.server.inject(Fault(response=FakeResponse(200, {"data": "nope"})))
    with pytest.raises(TransientError, match="malformed"):
        await src.fetch(None)
    fake.server.inject(Fault(response=FakeResponse(200, b"not json")))
    with pytest.raises(TransientError, match="malformed"):
        await src.fetch(None)
    fake.server.inject(Fault(response=FakeResponse(200, {"data": [
        {"id": "t_1", "updated_time": "yesterday"}]})))
    with pytest.raises(TransientError, match="malformed"):
        await src.fetch(None)
    batch = await src.fetch(None)  # and then it simply works
    assert len(batch.items) == 1
    await src.close()


async def test_expired_token_and_missing_permission_are_actionable(fake: FakeMeta) -> None:
    page = fake.add_page()
    token = fake.issue_token(page)
    src = source(fake, page, token)
    fake.expire_tokens()
    with pytest.raises(AuthError, match="expired") as info:
        await src.fetch(None)
    assert token not in str(info.value)
    limited = fake.issue_token(page, permissions=frozenset({"pages_read_engagement",
                                                            "pages_read_user_content"}))
    src2 = source(fake, page, limited)
    with pytest.raises(AuthError, match="pages_messaging"):
        await src2.fetch(None)
    await src.close()
    await src2.close()


async def test_user_unavailable_is_permanent(fake: FakeMeta) -> None:
    page = fake.add_page()
    jane = fake.add_person("Jane")
    fake.dm(page, jane, "hi")
    src = source(fake, page, comments=False)
    [msg] = (await src.fetch(None)).items
    fake.server.inject(Fault(response=graph_error("(#551) This person isn't available "
                                                  "right now.", 551)))
    with pytest.raises(PermanentError, match="isn't available") as info:
        await src.send(reply_to(msg, "hello"))
    assert not isinstance(info.value, AuthError)
    await src.close()


async def test_lost_answer_is_reconciled_by_find_sent(fake: FakeMeta) -> None:
    page = fake.add_page()
    jane = fake.add_person("Jane")
    fake.dm(page, jane, "hi")
    src = source(fake, page, comments=False, timeout=0.3)
    [msg] = (await src.fetch(None)).items
    reply = reply_to(msg, "Your refund is on its way")
    assert await src.find_sent(reply) is None
    fake.server.inject(Fault(hang_s=0.6, then_handle=True),
                       when=lambda r: r.method == "POST")
    with pytest.raises(TransientError) as info:
        await src.send(reply)
    assert info.value.maybe_sent
    await asyncio.sleep(0.5)
    found = await src.find_sent(reply)
    [sent] = fake.messages_to(jane)
    assert found is not None and found.remote_id == sent.id
    assert found.message is not None and found.message.thread_key == msg.thread_key
    await src.close()


# -- config and doctor -----------------------------------------------------------------
def test_from_config_reads_keys_and_slows_polling_with_webhooks() -> None:
    table = Table({"sources": [{"type": "facebook", "name": "fb", "page_id": "12345",
                                "token": "env:FB_TOKEN", "webhooks": True}]}, "", "c.toml")
    [st] = parse_sources(table.tables("sources"), None)
    src = st.source
    assert isinstance(src, FacebookSource)
    assert src.graph.graph_version == "v25.0"
    assert src.graph.api_base == "https://graph.facebook.com"
    assert st.poll_interval == 120 * 10
    bad = Table({"sources": [{"type": "facebook", "name": "fb", "page_id": "acme",
                              "token": "env:FB_TOKEN"}]}, "", "c.toml")
    with pytest.raises(ConfigError, match="page_id"):
        parse_sources(bad.tables("sources"), None)


async def test_check_names_the_page_and_a_wrong_token(fake: FakeMeta) -> None:
    page = fake.add_page("Acme Support")
    src = source(fake, page)
    result = await src.check()
    assert result.ok and "Acme Support" in result.summary
    other = fake.add_page("Other Page")
    wrong = source(fake, page, fake.issue_token(other))
    result = await wrong.check()
    assert not result.ok and "not to Page" in result.summary
    await src.close()
    await wrong.close()


# -- end to end through the store, poller and outbox ----------------------------------
async def test_out_of_window_reply_fails_in_the_outbox_and_keeps_the_text(
        fake: FakeMeta, tmp_path: Path) -> None:
    page = fake.add_page()
    jane = fake.add_person("Jane")
    fake.dm(page, jane, "still waiting", at=time.time() - 26 * HOUR)
    src = source(fake, page, comments=False)
    store = Store(tmp_path / "db.sqlite")
    try:
        await Poller(store, [PolledSource(src, interval=60)], owner="t").run_once()
        conv = store.find_conversation("fb", f"dm:{next(iter(fake.conversations))}")
        assert conv is not None
        queued = store.queue_reply(conv, "So sorry, here is your refund")
        report = await Outbox(store, {"fb": src}, owner="t").run_once()
        [(rid, reason)] = report.failed
        assert rid == queued.id
        stored = store.reply(queued.id)
        assert stored is not None and stored.state == ReplyState.FAILED
        assert stored.body == "So sorry, here is your refund"
        assert "24-hour window" in (stored.last_error or "") and "HUMAN_AGENT" in reason
        assert posts(fake, "/messages") == []
    finally:
        store.close()
        await src.close()


async def test_comment_reply_end_to_end_survives_a_lost_answer(
        fake: FakeMeta, tmp_path: Path) -> None:
    page = fake.add_page()
    post = fake.page_post(page, "p")
    bob = fake.add_person("Bob")
    top = fake.comment(post, bob, "broken on arrival", at=time.time() - 60)
    src = source(fake, page, messages=False, timeout=0.3)
    store = Store(tmp_path / "db.sqlite")

    class Clock:
        offset = timedelta()

        def __call__(self):  # type: ignore[no-untyped-def]
            return utcnow() + self.offset

    clock = Clock()
    try:
        poller = Poller(store, [PolledSource(src, interval=60)], owner="t", clock=clock)
        outbox = Outbox(store, {"fb": src}, owner="t", clock=clock)
        await poller.run_once()
        conv = store.find_conversation("fb", f"comment:{top.id}")
        assert conv is not None
        fake.server.inject(Fault(hang_s=0.6, then_handle=True),
                           when=lambda r: r.method == "POST")
        queued = store.queue_reply(conv, "A replacement is on its way")
        report = await outbox.run_once()
        assert report.retrying == [queued.id]
        await asyncio.sleep(0.5)
        clock.offset = timedelta(minutes=10)
        report = await outbox.run_once()
        assert report.sent == [queued.id]
        [ours] = [c for c in fake.replies_to(top) if c.author.id == page.id]
        assert len(posts(fake, f"/{top.id}/comments")) == 1  # never sent twice
        stored = store.reply(queued.id)
        assert stored is not None and stored.remote_id == ours.id
        clock.offset = timedelta(minutes=20)
        await poller.run_once()
        assert [m.remote_id for m in store.messages(conv)] == [top.id, ours.id]
    finally:
        store.close()
        await src.close()


async def test_the_token_never_reaches_the_logs(fake: FakeMeta,
                                                caplog: pytest.LogCaptureFixture) -> None:
    page = fake.add_page()
    token = fake.issue_token(page)
    caplog.set_level(logging.DEBUG)
    # The CLI quiets httpx (tests that ran it may have done so in this process): this test
    # checks the adapter's own masking, so let httpx log at INFO as a library user's app may.
    caplog.set_level(logging.DEBUG, logger="httpx")
    src = source(fake, page, token)
    await src.fetch(None)
    await src.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "access_token=<redacted>" in logged  # httpx logged the request...
    assert token not in logged  # ...without the token
