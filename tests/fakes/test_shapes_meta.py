"""The Meta fake answers with exactly the field names and types of the documented examples,
and the adapters read the documented webhook examples."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from replydeck.config.secrets import Secret
from replydeck.inbox.model import Direction, Kind
from replydeck.sources.facebook import COMMENT_FIELDS, CONVERSATION_FIELDS, FacebookSource
from replydeck.sources.instagram import InstagramSource
from replydeck.sources.meta_graph import parse_usage
from tests.fakes.meta import FakeMeta, Page
from tests.fakes.shapes import differences, load, shape

IG_COMMENT_FIELDS = "id,text,timestamp,username,from,parent_id,hidden"


@pytest.fixture
def fake() -> Iterator[FakeMeta]:
    fake = FakeMeta().start()
    yield fake
    fake.stop()


def get(fake: FakeMeta, token: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{fake.base_url}/v25.0{path}", params={**params, "access_token": token},
                     timeout=5)


def post(fake: FakeMeta, token: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{fake.base_url}/v25.0{path}", params={"access_token": token},
                      json=body, timeout=5)


def same(fixture: str, body: Any) -> None:
    problems = differences(shape(load("meta", fixture)), shape(body))
    assert problems == [], f"{fixture}: " + "; ".join(problems)


def setup(fake: FakeMeta) -> tuple[Page, str]:
    page = fake.add_page()
    return page, fake.issue_token(page)


def test_conversations(fake: FakeMeta) -> None:
    page, token = setup(fake)
    for name in ("Jane", "Joe"):
        fake.dm(page, fake.add_person(name), "hi")
    resp = get(fake, token, f"/{page.id}/conversations", platform="messenger",
               fields=CONVERSATION_FIELDS, limit=1)
    assert resp.status_code == 200
    same("conversations.json", resp.json())
    ana = fake.add_person("Ana", "ana.s")
    fake.dm(page, ana, "hi", platform="instagram")
    resp = get(fake, token, f"/{page.ig_user_id}/conversations", platform="instagram",
               fields=CONVERSATION_FIELDS)
    same("ig_conversations.json", resp.json())


def test_posts_and_comments(fake: FakeMeta) -> None:
    page, token = setup(fake)
    post_ = fake.page_post(page, "winter")
    bob = fake.add_person("Bob")
    top = fake.comment(post_, bob, "ship to Norway?", at=time.time() - 60)
    fake.comment(post_, bob, "thanks", parent=top)
    same("posts.json", get(fake, token, f"/{page.id}/posts",
                           fields="id,message,created_time,permalink_url").json())
    same("comments.json", get(fake, token, f"/{post_.id}/comments", filter="stream",
                              order="reverse_chronological", fields=COMMENT_FIELDS).json())
    same("comment_reply.json",
         post(fake, token, f"/{top.id}/comments", {"message": "Yes"}).json())


def test_send_and_errors(fake: FakeMeta) -> None:
    page, token = setup(fake)
    jane = fake.add_person("Jane")
    fake.dm(page, jane, "hi")
    resp = post(fake, token, f"/{page.id}/messages", {
        "recipient": {"id": jane.id}, "messaging_type": "RESPONSE", "message": {"text": "x"}})
    same("send_message.json", resp.json())
    late = fake.add_person("Late")
    fake.dm(page, late, "hi", at=time.time() - 2 * 86400)
    resp = post(fake, token, f"/{page.id}/messages", {
        "recipient": {"id": late.id}, "messaging_type": "RESPONSE", "message": {"text": "x"}})
    assert resp.status_code == 400
    same("error_outside_window.json", resp.json())
    limited = fake.issue_token(page, permissions=frozenset({"pages_read_engagement"}))
    resp = get(fake, limited, f"/{page.id}/conversations", platform="messenger")
    same("error_200_permission.json", resp.json())
    fake.usage_pct = 100
    resp = get(fake, token, f"/{page.id}/posts")
    same("error_rate_limit.json", resp.json())
    fake.usage_pct = 5
    fake.expire_tokens()
    resp = get(fake, token, f"/{page.id}/posts")
    same("error_190_expired.json", resp.json())


def test_usage_headers(fake: FakeMeta) -> None:
    _page, token = setup(fake)
    resp = get(fake, token, "/me")
    headers = {k: json.loads(resp.headers[k]) for k in ("X-App-Usage",
                                                        "X-Business-Use-Case-Usage")}
    documented = load("meta", "usage_headers.json")
    buc = {"<id>": next(iter(headers["X-Business-Use-Case-Usage"].values()))}
    doc_buc = {"<id>": next(iter(documented["X-Business-Use-Case-Usage"].values()))}
    assert differences(shape(documented["X-App-Usage"]), shape(headers["X-App-Usage"])) == []
    assert differences(shape(doc_buc), shape(buc)) == []
    usage = parse_usage(httpx.Headers({k: json.dumps(v) for k, v in documented.items()}))
    assert (usage.percent, usage.regain_minutes) == (100.0, 19.0)


def test_instagram_media_comments_and_tags(fake: FakeMeta) -> None:
    page, token = setup(fake)
    media = fake.ig_media(page, "summer")
    ana = fake.add_person("Ana", "ana.s")
    top = fake.comment(media, ana, "price?")
    fake.comment(media, fake.page_as_person(page, "instagram"), "29 EUR", parent=top)
    fake.ig_media(page, "tagged", tagged_by=ana)
    same("ig_media.json", get(fake, token, f"/{page.ig_user_id}/media",
                              fields="id,caption,timestamp,permalink,comments_count").json())
    same("ig_comments.json", get(
        fake, token, f"/{media.id}/comments",
        fields=f"{IG_COMMENT_FIELDS},replies{{{IG_COMMENT_FIELDS}}}").json())
    same("ig_tags.json", get(fake, token, f"/{page.ig_user_id}/tags",
                             fields="id,caption,timestamp,username,permalink,media_type").json())
    same("comment_reply.json",
         post(fake, token, f"/{top.id}/replies", {"message": "thanks"}).json())


async def test_documented_webhooks_are_read() -> None:
    fb = FacebookSource("fb", token=Secret.literal("unused"), page_id="104620000000001",
                        api_base="http://127.0.0.1:9")
    body = load("meta", "webhook_messenger.json")
    # The conversation of this sender is known (as after a poll): no lookup needed.
    fb._conversation_ids["24890000000000001"] = "t_10161207351561234"
    [dm] = await fb.webhook_messages(body["entry"][0])
    assert (dm.remote_id, dm.thread_key, dm.direction, dm.kind) == (
        "m_pBq2xYz9K0aT3uLqR7sVwX", "dm:t_10161207351561234", Direction.IN, Kind.DM)
    assert dm.text == "Hi, my order has not arrived"
    [comment] = await fb.webhook_messages(load("meta", "webhook_feed_comment.json")["entry"][0])
    assert (comment.remote_id, comment.thread_key, comment.author.name) == (
        "10000001_10000003", "comment:10000001_10000003", "Bob Smith")
    assert comment.in_reply_to is None
    ig = InstagramSource("ig", token=Secret.literal("unused"), ig_user_id="17841400000000001",
                         api_base="http://127.0.0.1:9")
    [igc] = await ig.webhook_messages(load("meta", "webhook_ig_comment.json")["entry"][0])
    assert (igc.remote_id, igc.thread_key, igc.author.handle, igc.raw["media_id"]) == (
        "17870913679156914", "comment:17870913679156914", "ana.s", "17895695668004550")
    await fb.close()
    await ig.close()


def test_instagram_mentioned_comment(fake: FakeMeta) -> None:
    page, token = setup(fake)
    ana = fake.add_person("Ana", "ana.s")
    media = fake.foreign_media(ana, "haul")
    comment = fake.comment(media, ana, f"@{page.ig_username} the zip broke")
    resp = get(fake, token, f"/{page.ig_user_id}", fields=(
        f"mentioned_comment.comment_id({comment.id}){{id,text,timestamp,username,"
        "media{id,permalink,username}}"))
    same("ig_mentioned_comment.json", resp.json())
    body = load("meta", "webhook_ig_mention.json")
    assert body["entry"][0]["changes"][0]["value"].keys() == {"media_id", "comment_id"}
