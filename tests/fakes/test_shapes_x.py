"""The X fake answers with exactly the field names and types of the documented examples."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.shapes import differences, load, shape
from tests.fakes.x import FakeX, User

MENTION_PARAMS = {
    "expansions": "author_id,referenced_tweets.id",
    "tweet.fields": "author_id,created_at,conversation_id,in_reply_to_user_id,"
                    "referenced_tweets,public_metrics,entities",
    "user.fields": "username,name,public_metrics,verified",
}


@pytest.fixture
def fake() -> Iterator[FakeX]:
    fake = FakeX().start()
    yield fake
    fake.stop()


def call(fake: FakeX, method: str, path: str, token: str | None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, fake.base_url + path, headers=headers, timeout=5, **kw)


def assert_same_shape(fixture: str, body: Any) -> None:
    problems = differences(shape(load("x", fixture)), shape(body))
    assert problems == [], f"{fixture}: " + "; ".join(problems)


def people(fake: FakeX) -> tuple[User, User, str]:
    me = fake.add_user("TwitterDev", "X Dev", followers=10, verified=True)
    customer = fake.add_user("a_customer", "Customer", followers=120)
    return me, customer, fake.issue_token(me)


def test_mentions_page(fake: FakeX) -> None:
    me, customer, token = people(fake)
    for i in range(4):
        fake.post(customer, f"older {i}", mentions=[me])
    root = fake.post(customer, "my order never arrived", mentions=[me])
    fake.post(customer, "still waiting", reply_to=root.id, mentions=[me])
    resp = call(fake, "GET", f"/2/users/{me.id}/mentions", token,
                params={**MENTION_PARAMS, "max_results": 5})
    assert resp.status_code == 200
    assert_same_shape("mentions.json", resp.json())


def test_dm_events(fake: FakeX) -> None:
    me, customer, token = people(fake)
    fake.dm(customer, me, "Hi, my parcel is late.")
    resp = call(fake, "GET", "/2/dm_events", token, params={
        "dm_event.fields": "id,text,event_type,created_at,dm_conversation_id,sender_id",
        "expansions": "sender_id", "user.fields": "username,name,public_metrics,verified"})
    assert resp.status_code == 200
    assert_same_shape("dm_events.json", resp.json())
    conv = resp.json()["data"][0]["dm_conversation_id"]
    assert conv == "-".join(sorted((me.id, customer.id), key=int))


def test_users_me(fake: FakeX) -> None:
    _me, _customer, token = people(fake)
    resp = call(fake, "GET", "/2/users/me", token,
                params={"user.fields": "username,name,public_metrics,verified"})
    assert_same_shape("users_me.json", resp.json())


def test_create_post_and_dm(fake: FakeX) -> None:
    _me, customer, token = people(fake)
    resp = call(fake, "POST", "/2/tweets", token, json={"text": "Are you excited?"})
    assert resp.status_code == 201
    assert_same_shape("create_post.json", resp.json())
    resp = call(fake, "POST", f"/2/dm_conversations/with/{customer.id}/messages", token,
                json={"text": "hello"})
    assert resp.status_code == 201
    assert_same_shape("create_dm.json", resp.json())


def test_token_refresh(fake: FakeX) -> None:
    me, _customer, _token = people(fake)
    refresh = fake.issue_refresh_token(me, "cid")
    resp = httpx.post(fake.base_url + "/2/oauth2/token", timeout=5, data={
        "grant_type": "refresh_token", "refresh_token": refresh, "client_id": "cid"})
    assert resp.status_code == 200
    assert_same_shape("token_refresh.json", resp.json())


def test_errors(fake: FakeX) -> None:
    me, customer, token = people(fake)
    fake.exhaust("mentions", me)
    resp = call(fake, "GET", f"/2/users/{me.id}/mentions", token)
    assert resp.status_code == 429
    assert_same_shape("error_429.json", resp.json())
    assert resp.headers["x-rate-limit-remaining"] == "0"
    assert int(resp.headers["x-rate-limit-reset"]) > 0
    assert "retry-after" not in resp.headers

    resp = call(fake, "GET", "/2/users/me", "xat-wrong")
    assert resp.status_code == 401
    assert_same_shape("error_401.json", resp.json())

    post = fake.post(customer, "no mention of anyone")
    resp = call(fake, "POST", "/2/tweets", token,
                json={"text": "hi", "reply": {"in_reply_to_tweet_id": post.id}})
    assert resp.status_code == 403
    assert resp.json() == load("x", "error_403_reply_rule.json")
