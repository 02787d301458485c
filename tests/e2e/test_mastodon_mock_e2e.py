"""MastodonSource against the independent PyPI ``mastodon-mock`` server: a second opinion.

mastodon-mock is NOT Mastodon (no Mastodon server can be installed here); it is a separate
re-implementation of the REST API, so passing against it as well as against our own fake
guards against our fake and our adapter sharing one misreading of the docs. alice_token
is our account, bob_token the customer.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from replydeck.config.secrets import Secret
from replydeck.inbox.model import Direction, Kind, Reply
from replydeck.sources.base import AuthError
from replydeck.sources.mastodon import MastodonSource

pytestmark = pytest.mark.e2e


def api(base: str, method: str, path: str, token: str, **kw: Any) -> Any:
    r = httpx.request(method, base + path, headers={"Authorization": f"Bearer {token}"},
                      timeout=10, **kw)
    r.raise_for_status()
    return r.json()


def make(base: str, token: str = "alice_token") -> MastodonSource:
    return MastodonSource("masto-mock", instance=base, token=Secret.literal(token))


def reply(to: Any, body: str, key: str, private: bool = False) -> Reply:
    return Reply(id=1, conversation_id=1, source="masto-mock", body=body, private=private,
                 idempotency_key=key, reply_to=to, thread_key=to.thread_key)


async def test_mention_reply_and_dm_round_trip(mastodon_mock: str) -> None:
    base = mastodon_mock
    src = make(base)
    check = await src.check()
    assert check.ok, check.summary
    start = await src.fetch(None)
    tag = uuid.uuid4().hex[:6]
    st = api(base, "POST", "/api/v1/statuses", "bob_token", data={
        "status": f"@alice order {tag} <b>late</b> & lost https://example.com/o/{tag}",
        "visibility": "unlisted"})
    batch = await src.fetch(start.cursor)
    mine = [m for m in batch.items if m.remote_id == st["id"]]
    assert len(mine) == 1
    m = mine[0]
    assert m.kind == Kind.MENTION and m.direction == Direction.IN
    assert m.text == f"@alice order {tag} <b>late</b> & lost https://example.com/o/{tag}"
    assert m.author.handle == "bob" and m.thread_key == f"post:{st['id']}"
    assert (await src.fetch(batch.cursor)).items == []  # fetched exactly once

    key = str(uuid.uuid4())
    r1 = await src.send(reply(m, "Sorry! It ships tomorrow.", key))
    r2 = await make(base).send(reply(m, "Sorry! It ships tomorrow.", key))  # after a crash
    assert r1.remote_id == r2.remote_id
    ctx = api(base, "GET", f"/api/v1/statuses/{st['id']}/context", "bob_token")
    ours = [d for d in ctx["descendants"] if d["account"]["acct"] == "alice"]
    assert [d["id"] for d in ours] == [r1.remote_id]
    assert ours[0]["visibility"] == "unlisted" and ours[0]["in_reply_to_id"] == st["id"]
    notes = api(base, "GET", "/api/v1/notifications", "bob_token",
                params={"types[]": "mention"})
    assert [n["status"]["id"] for n in notes].count(r1.remote_id) == 1

    # bob follows up privately in the same thread: a DM conversation.
    dm = api(base, "POST", "/api/v1/statuses", "bob_token", data={
        "status": "@alice my address is 1 Main St", "visibility": "direct",
        "in_reply_to_id": r1.remote_id})
    later = await src.fetch(batch.cursor)
    (d,) = [x for x in later.items if x.remote_id == dm["id"]]
    assert d.kind == Kind.DM and d.thread_key == f"dm:{st['id']}"
    r3 = await src.send(reply(d, "Thanks, updated.", str(uuid.uuid4()), private=True))
    sent = api(base, "GET", f"/api/v1/statuses/{r3.remote_id}", "alice_token")
    assert sent["visibility"] == "direct" and sent["in_reply_to_id"] == dm["id"]
    assert "@bob" in sent["content"]
    await src.close()


async def test_bad_token_is_an_auth_error(mastodon_mock: str) -> None:
    src = make(mastodon_mock, token="not-a-token")
    with pytest.raises(AuthError, match="wrong or revoked Mastodon token"):
        await src.fetch(None)
    res = await src.check()
    assert not res.ok and "not-a-token" not in res.summary
    await src.close()
