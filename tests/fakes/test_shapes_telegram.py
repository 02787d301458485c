"""The Telegram fake answers with exactly the field names and types of the documented
examples."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.shapes import differences, load, shape
from tests.fakes.telegram import FakeTelegram


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


def call(fake: FakeTelegram, method: str, token: str | None = None, **params: Any
         ) -> httpx.Response:
    return httpx.post(f"{fake.base_url}/bot{token or fake.token}/{method}", json=params,
                      timeout=5)


def assert_same_shape(fixture: str, body: Any) -> None:
    problems = differences(shape(load("telegram", fixture)), shape(body))
    assert problems == [], f"{fixture}: " + "; ".join(problems)


def test_get_updates(fake: FakeTelegram) -> None:
    alice = fake.add_user("Alice", "alice_s", last_name="Smith")
    bob = fake.add_user("Bob", "bobby")
    fake.say(fake.private_chat(alice), alice, "Hi, my order is late")
    group = fake.group("Acme Community")
    bot_msg = fake.bot_says(group, "How can we help?")
    fake.say(group, bob, "the app crashes on start", mention_bot=True,
             reply_to=bot_msg["message_id"], thread_id=bot_msg["message_id"])
    resp = call(fake, "getUpdates", allowed_updates=["message"], timeout=0)
    assert resp.status_code == 200
    assert len(resp.json()["result"]) == 2
    assert_same_shape("getUpdates.json", resp.json())


def test_send_message(fake: FakeTelegram) -> None:
    alice = fake.add_user("Alice", "alice_s", last_name="Smith")
    chat = fake.private_chat(alice)
    first = fake.say(chat, alice, "Hi, my order is late")
    resp = call(fake, "sendMessage", chat_id=chat.id, text="Sorry! It ships today.",
                reply_parameters={"message_id": first["message_id"],
                                  "allow_sending_without_reply": True})
    assert resp.status_code == 200
    assert_same_shape("sendMessage.json", resp.json())


def test_get_me_and_webhook_info(fake: FakeTelegram) -> None:
    assert_same_shape("getMe.json", call(fake, "getMe").json())
    assert_same_shape("getWebhookInfo.json", call(fake, "getWebhookInfo").json())


def test_errors(fake: FakeTelegram) -> None:
    alice = fake.add_user("Alice")
    chat = fake.private_chat(alice)
    fake.flood(chat, 7)
    resp = call(fake, "sendMessage", chat_id=chat.id, text="hi")
    assert resp.status_code == 429
    assert resp.json() == load("telegram", "error_429.json")

    bad = f"{fake.bot.id}:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    resp = call(fake, "getMe", token=bad)
    assert resp.status_code == 401
    assert resp.json() == load("telegram", "error_401.json")
    assert call(fake, "getMe", token="not-a-token").status_code == 404

    fake.webhook_url = "https://example.com/hook"
    resp = call(fake, "getUpdates")
    assert resp.status_code == 409
    assert resp.json() == load("telegram", "error_409_webhook.json")


def test_offset_confirms_and_forgets(fake: FakeTelegram) -> None:
    alice = fake.add_user("Alice")
    chat = fake.private_chat(alice)
    for i in range(3):
        fake.say(chat, alice, f"m{i}")
    ids = [u["update_id"] for u in call(fake, "getUpdates").json()["result"]]
    assert len(ids) == 3
    # Asking again without a higher offset re-delivers; a higher offset forgets for good.
    assert [u["update_id"] for u in call(fake, "getUpdates").json()["result"]] == ids
    assert [u["update_id"] for u in
            call(fake, "getUpdates", offset=ids[1]).json()["result"]] == ids[1:]
    assert [u["update_id"] for u in call(fake, "getUpdates").json()["result"]] == ids[1:]
