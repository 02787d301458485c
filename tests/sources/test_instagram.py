"""The Instagram adapter against the stateful Graph API fake over loopback HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
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
from replydeck.sources.base import AuthError, PermanentError, RateLimited
from replydeck.sources.instagram import InstagramSource
from tests.fakes.httpfake import Fault
from tests.fakes.meta import FakeMeta, Page, graph_error

HOSTILE = Path("/work/shared/corpus/hostile-text.jsonl")
HOUR = 3600.0


@pytest.fixture
def fake() -> Iterator[FakeMeta]:
    fake = FakeMeta().start()
    yield fake
    fake.stop()


def source(fake: FakeMeta, page: Page, token: str | None = None,
           **kw: object) -> InstagramSource:
    kw.setdefault("timeout", 2.0)
    return InstagramSource("ig", token=Secret.literal(token or fake.issue_token(page)),
                           ig_user_id=page.ig_user_id or "", api_base=fake.base_url,
                           **kw)  # type: ignore[arg-type]


def reply_to(msg: Message, body: str, *, private: bool = False,
             options: dict | None = None) -> Reply:
    return Reply(id=1, conversation_id=1, source="ig", body=body, private=private,
                 idempotency_key="k-1", reply_to=msg, thread_key=msg.thread_key,
                 options=options or {}, created_at=utcnow())


def calls(fake: FakeMeta, end: str, method: str = "POST") -> list:
    return [r for r in fake.server.requests if r.method == method and r.path.endswith(end)]


async def test_dms_with_usernames_and_our_own_messages(fake: FakeMeta) -> None:
    page = fake.add_page()
    ana = fake.add_person("Ana", "ana.s")
    m1 = fake.dm(page, ana, "is this in stock?", platform="instagram", at=time.time() - 60)
    m2 = fake.dm(page, ana, "yes!", platform="instagram", from_page=True, at=time.time() - 30)
    src = source(fake, page, comments=False, mentions=False)
    batch = await src.fetch(None)
    by_id = {m.remote_id: m for m in batch.items}
    conv = next(iter(fake.conversations.values()))
    assert by_id[m1.id].author.handle == "ana.s"
    assert by_id[m1.id].author.url == "https://www.instagram.com/ana.s/"
    assert by_id[m1.id].direction == Direction.IN and by_id[m1.id].kind == Kind.DM
    assert by_id[m2.id].direction == Direction.OUT
    assert {m.thread_key for m in batch.items} == {f"dm:{conv.id}"}
    [call] = calls(fake, "/conversations", "GET")
    assert call.arg("platform") == "instagram" and call.path.endswith(
        f"/{page.ig_user_id}/conversations")
    await src.close()


async def test_dms_through_the_linked_page(fake: FakeMeta) -> None:
    page = fake.add_page()
    ana = fake.add_person("Ana", "ana.s")
    fake.dm(page, ana, "hi", platform="instagram")
    src = source(fake, page, comments=False, mentions=False, page_id=page.id)
    [msg] = (await src.fetch(None)).items
    await src.send(reply_to(msg, "hello Ana"))
    [call] = calls(fake, f"/{page.id}/messages")
    assert call.json()["recipient"] == {"id": ana.id}
    assert [m.text for m in fake.messages_to(ana)] == ["hello Ana"]
    await src.close()


async def test_comments_with_nested_replies_and_restart(fake: FakeMeta) -> None:
    page = fake.add_page()
    media = fake.ig_media(page, "summer drop")
    ana = fake.add_person("Ana", "ana.s")
    top = fake.comment(media, ana, "price?", at=time.time() - 100)
    ours = fake.comment(media, fake.page_as_person(page, "instagram"), "29 EUR", parent=top,
                        at=time.time() - 90)
    src = source(fake, page, messages=False, mentions=False)
    first = await src.fetch(None)
    by_id = {m.remote_id: m for m in first.items}
    assert set(by_id) == {top.id, ours.id}
    assert by_id[top.id].thread_key == by_id[ours.id].thread_key == f"comment:{top.id}"
    assert by_id[ours.id].direction == Direction.OUT
    assert by_id[top.id].url and by_id[top.id].url.startswith("https://www.instagram.com/p/")
    await src.close()

    later = fake.comment(media, ana, "thanks", parent=top, at=time.time() - 50)
    other = fake.comment(fake.ig_media(page, "new"), ana, "love it", at=time.time() - 40)
    restarted = source(fake, page, messages=False, mentions=False)
    second = await restarted.fetch(first.cursor)
    assert sorted(m.remote_id for m in second.items) == sorted([later.id, other.id])
    third = await restarted.fetch(second.cursor)
    assert third.items == []
    await restarted.close()


async def test_reply_goes_to_the_top_level_comment(fake: FakeMeta) -> None:
    page = fake.add_page()
    media = fake.ig_media(page, "m")
    ana = fake.add_person("Ana", "ana.s")
    top = fake.comment(media, ana, "q1", at=time.time() - 60)
    nested = fake.comment(media, ana, "q2", parent=top, at=time.time() - 30)
    src = source(fake, page, messages=False, mentions=False)
    batch = await src.fetch(None)
    latest = next(m for m in batch.items if m.remote_id == nested.id)
    receipt = await src.send(reply_to(latest, "answer"))
    [call] = calls(fake, "/replies")
    assert call.path.endswith(f"/{top.id}/replies")
    ours = [c for c in fake.replies_to(top) if c.author.id == page.ig_user_id]
    assert [c.id for c in ours] == [receipt.remote_id]
    await src.close()


async def test_hidden_comment_and_length_limits_are_refused_before_calling(
        fake: FakeMeta) -> None:
    page = fake.add_page()
    media = fake.ig_media(page, "m")
    ana = fake.add_person("Ana", "ana.s")
    top = fake.comment(media, ana, "spam?", at=time.time() - 60)
    top.hidden = True
    fake.dm(page, ana, "hi", platform="instagram")
    src = source(fake, page, mentions=False)
    batch = await src.fetch(None)
    comment = next(m for m in batch.items if m.remote_id == top.id)
    dm = next(m for m in batch.items if m.kind == Kind.DM)
    with pytest.raises(PermanentError, match="hidden"):
        await src.send(reply_to(comment, "hi"))
    top.hidden = False
    visible = Message(**{**comment.__dict__, "raw": {**comment.raw, "hidden": False}})
    with pytest.raises(PermanentError, match="2200"):
        await src.send(reply_to(visible, "x" * 2201))
    # DMs: 1000 UTF-8 bytes, so 334 three-byte characters are too many, 333 fit.
    with pytest.raises(PermanentError, match="1000"):
        await src.send(reply_to(dm, "€" * 334))
    assert calls(fake, "/messages") == [] and calls(fake, "/replies") == []
    await src.send(reply_to(dm, "€" * 333))
    await src.send(reply_to(visible, "x" * 2200))
    await src.close()


async def test_private_reply_once_and_graph_refusal_of_a_second(fake: FakeMeta) -> None:
    page = fake.add_page()
    media = fake.ig_media(page, "m")
    ana = fake.add_person("Ana", "ana.s")
    fake.comment(media, ana, "my order number is 123", at=time.time() - 60)
    src = source(fake, page, messages=False, mentions=False)
    [msg] = (await src.fetch(None)).items
    await src.send(reply_to(msg, "Let's talk in DM", private=True))
    [call] = calls(fake, f"/{page.ig_user_id}/messages")
    assert call.json()["recipient"] == {"comment_id": msg.remote_id}
    with pytest.raises(PermanentError, match="already got its one private reply"):
        await src.send(reply_to(msg, "again", private=True))
    # A fresh process does not know; Graph refuses and the reason is kept.
    fresh = source(fake, page, messages=False, mentions=False)
    with pytest.raises(PermanentError, match="already answered privately"):
        await fresh.send(reply_to(msg, "again", private=True))
    assert len(fake.messages_to(ana)) == 1
    await src.close()
    await fresh.close()


async def test_tagged_media_are_mentions_answered_on_the_media(fake: FakeMeta) -> None:
    page = fake.add_page()
    ana = fake.add_person("Ana", "ana.s")
    media = fake.ig_media(page, "wearing @acme today", tagged_by=ana, at=time.time() - 60)
    src = source(fake, page, messages=False, comments=False)
    first = await src.fetch(None)
    [msg] = first.items
    assert msg.kind == Kind.MENTION and msg.thread_key == f"mention:{media.id}"
    assert msg.author.handle == "ana.s" and msg.text == "wearing @acme today"
    receipt = await src.send(reply_to(msg, "Looks great!"))
    [call] = calls(fake, f"/{page.ig_user_id}/mentions")
    assert call.json()["media_id"] == media.id
    assert receipt.message is not None and receipt.message.thread_key == msg.thread_key
    assert (await src.fetch(first.cursor)).items == []
    await src.close()


async def test_window_refusal_expired_token_and_rate_limit(fake: FakeMeta) -> None:
    page = fake.add_page()
    ana = fake.add_person("Ana", "ana.s")
    fake.dm(page, ana, "hello?", platform="instagram", at=time.time() - 25 * HOUR)
    src = source(fake, page, comments=False, mentions=False)
    [msg] = (await src.fetch(None)).items
    with pytest.raises(PermanentError, match="24-hour window"):
        await src.send(reply_to(msg, "sorry"))
    fake.server.inject(Fault(response=graph_error("(#80002) There have been too many calls "
                                                  "to this Instagram account.", 80002)))
    with pytest.raises(RateLimited):
        await src.fetch(None)
    fake.expire_tokens()
    with pytest.raises(AuthError, match="expired"):
        await src.fetch(None)
    await src.close()


async def test_hostile_comments_arrive_inert(fake: FakeMeta) -> None:
    page = fake.add_page()
    media = fake.ig_media(page, "m")
    cases = [json.loads(line) for line in HOSTILE.read_text().splitlines() if line.strip()]
    for i, case in enumerate(cases[:40]):
        person = fake.add_person(case["text"][:30], case["text"][:30])
        fake.comment(media, person, case["text"], at=time.time() - 500 + i)
    src = source(fake, page, messages=False, mentions=False)
    batch = await src.fetch(None)
    assert len(batch.items) == min(40, len(cases))
    for msg in batch.items:
        assert is_inert(msg.text) and is_inert(msg.author.handle)
        assert "\n" not in msg.author.handle
    await src.close()


def test_from_config() -> None:
    table = Table({"sources": [{"type": "instagram", "name": "ig", "ig_user_id": "178414",
                                "token": "env:IG_TOKEN", "graph_version": "v26.0"}]},
                  "", "c.toml")
    [st] = parse_sources(table.tables("sources"), None)
    assert isinstance(st.source, InstagramSource)
    assert st.source.graph.graph_version == "v26.0"
    bad = Table({"sources": [{"type": "instagram", "name": "ig", "ig_user_id": "178414",
                              "token": "env:IG_TOKEN", "graph_version": "25"}]}, "", "c.toml")
    with pytest.raises(ConfigError, match="graph_version"):
        parse_sources(bad.tables("sources"), None)


async def test_check(fake: FakeMeta) -> None:
    page = fake.add_page(ig_username="acme")
    src = source(fake, page)
    result = await src.check()
    assert result.ok and "@acme" in result.summary
    await src.close()


async def test_out_of_window_dm_fails_in_the_outbox_with_the_draft_kept(
        fake: FakeMeta, tmp_path: Path) -> None:
    page = fake.add_page()
    ana = fake.add_person("Ana", "ana.s")
    fake.dm(page, ana, "hello?", platform="instagram", at=time.time() - 30 * HOUR)
    src = source(fake, page, comments=False, mentions=False)
    store = Store(tmp_path / "db.sqlite")
    try:
        await Poller(store, [PolledSource(src, interval=60)], owner="t").run_once()
        conv = store.find_conversation("ig", f"dm:{next(iter(fake.conversations))}")
        assert conv is not None
        queued = store.queue_reply(conv, "Sorry, we missed this")
        report = await Outbox(store, {"ig": src}, owner="t").run_once()
        assert [rid for rid, _ in report.failed] == [queued.id]
        stored = store.reply(queued.id)
        assert stored is not None and stored.state == ReplyState.FAILED
        assert stored.body == "Sorry, we missed this"
        assert "24-hour window" in (stored.last_error or "")
        assert calls(fake, "/messages") == []
    finally:
        store.close()
        await src.close()


async def test_comment_and_caption_mentions_from_the_webhook(fake: FakeMeta) -> None:
    page = fake.add_page(ig_username="acme")
    ana = fake.add_person("Ana", "ana.s")
    theirs = fake.foreign_media(ana, "my haul from @acme", at=time.time() - 100)
    comment = fake.comment(theirs, ana, "@acme the zip broke", at=time.time() - 50)
    src = source(fake, page)
    entry = {"id": page.ig_user_id, "time": int(time.time()), "changes": [
        {"field": "mentions", "value": {"media_id": theirs.id, "comment_id": comment.id}},
        {"field": "mentions", "value": {"media_id": theirs.id}}]}
    in_comment, in_caption = await src.webhook_messages(entry)
    assert (in_comment.kind, in_comment.remote_id, in_comment.text) == (
        Kind.MENTION, comment.id, "@acme the zip broke")
    assert in_comment.thread_key == f"mention:{theirs.id}:{comment.id}"
    assert in_comment.author.handle == "ana.s"
    assert (in_caption.remote_id, in_caption.thread_key, in_caption.text) == (
        theirs.id, f"mention:{theirs.id}", "my haul from @acme")
    await src.send(reply_to(in_comment, "So sorry! DM us your order number"))
    [call] = calls(fake, f"/{page.ig_user_id}/mentions")
    assert call.json() == {"media_id": theirs.id, "comment_id": comment.id,
                           "message": "So sorry! DM us your order number"}
    [ours] = fake.replies_to(comment)
    assert ours.author.id == page.ig_user_id
    # Graph refuses a media that does not mention us: skipped, the others are kept.
    plain = fake.foreign_media(ana, "no mention here")
    kept = await src.webhook_messages({"id": page.ig_user_id, "changes": [
        {"field": "mentions", "value": {"media_id": plain.id}},
        {"field": "mentions", "value": {"media_id": theirs.id}}]})
    assert [m.remote_id for m in kept] == [theirs.id]
    await src.close()
