"""BlueskySource against a real local AT Protocol network (@atproto/dev-env: PLC, PDS, AppView).

alice.test is our account (the adapter signs in as alice with its password); bob.test is the
customer, using the PDS directly as his app would. The network may be reused between runs,
so every test starts from the adapter's own cursor and uses fresh idempotency keys.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from replydeck.config.secrets import Secret
from replydeck.inbox.model import Direction, Kind, Message, Reply
from replydeck.sources.base import Batch
from replydeck.sources.bluesky import BlueskySource
from replydeck.sources.bluesky_richtext import tid_from_key

pytestmark = pytest.mark.e2e


def alice_source(net: Any, password: str | None = None, handle: str = "alice.test"
                 ) -> BlueskySource:
    pw = password or net.accounts["alice.test"][0]
    return BlueskySource("bsky-e2e", service=net.pds, handle=handle,
                         app_password=Secret.literal(pw))


def bob_posts_mention(net: Any, text: str) -> dict[str, Any]:
    token, did = net.login("bob.test")
    alice_did = net.accounts["alice.test"][1]
    needle = b"@alice.test"
    start = text.encode().index(needle)
    return net.xrpc("POST", "com.atproto.repo.createRecord", token, json={
        "repo": did, "collection": "app.bsky.feed.post", "record": {
            "$type": "app.bsky.feed.post", "text": text,
            "createdAt": _now(),
            "facets": [{"index": {"byteStart": start, "byteEnd": start + len(needle)},
                        "features": [{"$type": "app.bsky.richtext.facet#mention",
                                      "did": alice_did}]}]}})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def fetch_until(src: BlueskySource, cursor: str | None,
                      pred: Callable[[Message], bool], timeout: float = 20) -> tuple[
                          list[Message], str | None]:
    """Poll like the poller does until an item matching ``pred`` arrives (the AppView
    indexes asynchronously), returning everything fetched on the way and the cursor."""
    got: list[Message] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        batch: Batch = await src.fetch(cursor)
        got += batch.items
        cursor = batch.cursor
        if any(pred(m) for m in got) or loop.time() > deadline:
            return got, cursor
        await asyncio.sleep(0.3)


def bob_reply_notifications(net: Any, subject: str) -> list[dict[str, Any]]:
    token, _ = net.login("bob.test")
    notes = net.xrpc("GET", "app.bsky.notification.listNotifications", token,
                     params={"limit": 100})["notifications"]
    return [n for n in notes if n["reason"] == "reply" and n.get("reasonSubject") == subject]


async def wait_for(check: Callable[[], bool], timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.3)


async def test_mention_fetched_once_and_reply_lands_in_thread_once(bsky_network: Any) -> None:
    net = bsky_network
    src = alice_source(net)
    start = await src.fetch(None)
    tag = uuid.uuid4().hex[:8]
    post = bob_posts_mention(net, f"@alice.test my order {tag} is late 📦 — 注文はどこ？")

    got, cursor = await fetch_until(src, start.cursor, lambda m: m.remote_id == post["uri"])
    mine = [m for m in got if m.remote_id == post["uri"]]
    assert len(mine) == 1, "the mention must arrive exactly once"
    m = mine[0]
    assert m.kind == Kind.MENTION and m.direction == Direction.IN
    assert m.author.handle == "bob.test" and m.author.id == net.accounts["bob.test"][1]
    assert m.author.followers == 0  # from getProfiles on the AppView
    assert m.thread_key == f"post:{post['uri']}" and m.text.endswith("注文はどこ？")
    again = await src.fetch(cursor)
    assert post["uri"] not in [x.remote_id for x in again.items]

    key = str(uuid.uuid4())
    body = f"@bob.test 申し訳ありません 🙏 it ships today ({tag}): https://acme.example/track/{tag}"
    rep = Reply(id=1, conversation_id=1, source=src.name, body=body, private=False,
                idempotency_key=key, reply_to=m, thread_key=m.thread_key,
                created_at=datetime.now(timezone.utc))
    receipt = await src.send(rep)
    assert receipt.remote_id.endswith("/" + tid_from_key(key, rep.created_at))
    assert receipt.message is not None and receipt.message.thread_key == m.thread_key
    await wait_for(lambda: len(bob_reply_notifications(net, post["uri"])) >= 1)

    # A crash between send and record: a new process sends the same reply again.
    src2 = alice_source(net)
    receipt2 = await src2.send(rep)
    assert receipt2.remote_id == receipt.remote_id
    await asyncio.sleep(1.0)  # give a (wrong) second post time to be indexed
    notes = bob_reply_notifications(net, post["uri"])
    assert len(notes) == 1
    (note,) = notes
    assert note["uri"] == receipt.remote_id
    assert note["author"]["handle"] == "alice.test"
    record = note["record"]
    assert record["reply"]["parent"]["uri"] == post["uri"]
    assert record["reply"]["root"]["uri"] == post["uri"]
    data = record["text"].encode()
    spans = {data[f["index"]["byteStart"]:f["index"]["byteEnd"]].decode(): f["features"][0]
             for f in record["facets"]}
    # UTF-8 byte offsets after Japanese and emoji text still cut out exactly the link; bob
    # gets no mention facet (the AppView would then report a mention, not a reply).
    assert spans == {f"https://acme.example/track/{tag}": {
        "$type": "app.bsky.richtext.facet#link", "uri": f"https://acme.example/track/{tag}"}}
    assert src.sessions_created == 1 and src2.sessions_created == 1
    await src.close()
    await src2.close()


async def test_check_reports_account_password_and_dm_availability(bsky_network: Any) -> None:
    net = bsky_network
    good = alice_source(net)
    res = await good.check()
    # dev-env has no chat service: DMs are off with a reason, public items still work.
    assert res.ok, res.summary
    assert "DMs off" in res.summary and good.dm_notice is not None
    assert any(d.startswith("DMs: off") for d in res.details)
    assert good.limits.supports_public
    batch = await good.fetch(None)  # and fetching does not crash on the missing chat
    assert batch.cursor
    await good.close()

    bad = alice_source(net, password="not-the-password")
    res = await bad.check()
    assert not res.ok and "wrong handle or app password for @alice.test" in res.summary
    assert "not-the-password" not in res.summary
    await bad.close()

    ghost = alice_source(net, handle="nobody.test")
    res = await ghost.check()
    assert not res.ok and "account not found: @nobody.test" in res.summary
    await ghost.close()


async def test_our_reply_from_another_app_comes_back_outbound(bsky_network: Any) -> None:
    net = bsky_network
    src = alice_source(net)
    start = await src.fetch(None)
    post = bob_posts_mention(net, f"@alice.test question {uuid.uuid4().hex[:6]}")
    got, cursor = await fetch_until(src, start.cursor, lambda m: m.remote_id == post["uri"])
    assert post["uri"] in [m.remote_id for m in got]
    # alice answers in the Bluesky app, not through replydeck.
    token, did = net.login("alice.test")
    ref = {"uri": post["uri"], "cid": post["cid"]}
    answer = net.xrpc("POST", "com.atproto.repo.createRecord", token, json={
        "repo": did, "collection": "app.bsky.feed.post", "record": {
            "$type": "app.bsky.feed.post", "text": "answered from the app",
            "createdAt": _now(), "reply": {"root": ref, "parent": ref}}})
    more, _ = await fetch_until(src, cursor, lambda m: m.remote_id == answer["uri"])
    (out,) = [m for m in more if m.remote_id == answer["uri"]]
    assert out.direction == Direction.OUT and out.thread_key == f"post:{post['uri']}"
    await src.close()
