"""The LINE fake answers with exactly the field names and types of the documented examples,
and the adapter reads the documented webhook example."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from replydeck.config.secrets import Secret
from replydeck.inbox.model import Kind
from replydeck.sources.line import LineSource
from tests.fakes.line import FakeLine
from tests.fakes.shapes import differences, load, shape


@pytest.fixture
def fake() -> Iterator[FakeLine]:
    fake = FakeLine().start()
    yield fake
    fake.stop()


def call(fake: FakeLine, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.request(method, fake.base_url + path, json=body, timeout=5,
                         headers={"Authorization": f"Bearer {fake.token}", **(headers or {})})


def same(fixture: str, body: Any) -> None:
    problems = differences(shape(load("line", fixture)), shape(body))
    assert problems == [], f"{fixture}: " + "; ".join(problems)


def test_webhook_event_shape(fake: FakeLine) -> None:
    user = fake.add_user("Yuki")
    same("webhook.json", json.loads(fake.webhook_body(fake.message_event(user, "hi"))))


def test_api_answers(fake: FakeLine) -> None:
    user = fake.add_user("Yuki")
    same("profile.json", call(fake, "GET", f"/v2/bot/profile/{user.user_id}").json())
    same("bot_info.json", call(fake, "GET", "/v2/bot/info").json())
    event = fake.message_event(user, "hi")
    text = [{"type": "text", "text": "hello"}]
    resp = call(fake, "POST", "/v2/bot/message/reply",
                {"replyToken": event["replyToken"], "messages": text})
    same("sent_messages.json", resp.json())
    resp = call(fake, "POST", "/v2/bot/message/reply",
                {"replyToken": event["replyToken"], "messages": text})
    assert resp.status_code == 400  # single use
    same("error_invalid_reply_token.json", resp.json())
    stale = fake.message_event(user, "old", at=time.time() - 61)
    resp = call(fake, "POST", "/v2/bot/message/reply",
                {"replyToken": stale["replyToken"], "messages": text})
    assert resp.status_code == 400  # one minute
    key = {"X-Line-Retry-Key": "123e4567-e89b-12d3-a456-426614174000"}
    resp = call(fake, "POST", "/v2/bot/message/push", {"to": user.user_id, "messages": text},
                key)
    same("sent_messages.json", resp.json())
    resp = call(fake, "POST", "/v2/bot/message/push", {"to": user.user_id, "messages": text},
                key)
    assert resp.status_code == 409 and resp.headers["x-line-accepted-request-id"]
    same("error_409_retry_key.json", resp.json())
    resp = call(fake, "POST", "/v2/bot/message/push",
                {"to": user.user_id, "messages": [{"type": "text", "text": "x" * 5001}]})
    assert resp.status_code == 400
    same("error_400_details.json", resp.json())


async def test_documented_webhook_is_read(fake: FakeLine) -> None:
    src = LineSource("line", token=Secret.literal(fake.token),
                     channel_secret=Secret.literal(fake.channel_secret),
                     api_base=fake.base_url)
    [msg] = await src.webhook_messages(load("line", "webhook.json"))
    assert (msg.remote_id, msg.text, msg.kind) == ("14353798921116", "Hello, world", Kind.DM)
    assert msg.thread_key == "dm:U80696558e1aa831..."
    assert msg.raw["reply_token"] == "757913772c4646b784d4b7ce46d12671"
    assert msg.raw["webhook_event_id"] == "01FZ74A0TDDPYRVKNK77XKC3ZR"
    await src.close()
