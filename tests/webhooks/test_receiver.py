"""The webhook receiver over real HTTP on 127.0.0.1: signatures, handshake, limits, and
events stored once through the same idempotent ingest as polling."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from replydeck.config.secrets import Secret
from replydeck.config.table import Table
from replydeck.inbox.model import Direction
from replydeck.inbox.store import Store
from replydeck.sources.facebook import FacebookSource
from replydeck.sources.instagram import InstagramSource
from replydeck.sources.line import LineSource
from replydeck.webhooks import WebhookConfig, WebhookReceiver, parse_config
from tests.fakes.line import FakeLine
from tests.fakes.meta import FakeMeta, Page

APP_SECRET = "app-secret-4d2f"
VERIFY_TOKEN = "verify-me-91"


@dataclass
class Env:
    url: str
    store: Store
    meta: FakeMeta
    line: FakeLine
    page: Page
    fb: FacebookSource
    ig: InstagramSource
    receiver: WebhookReceiver


@pytest.fixture
def fakes() -> Iterator[tuple[FakeMeta, FakeLine]]:
    meta, line = FakeMeta().start(), FakeLine().start()
    yield meta, line
    meta.stop()
    line.stop()


@pytest.fixture
async def env(fakes: tuple[FakeMeta, FakeLine], tmp_path: Path) -> AsyncIterator[Env]:
    meta, line = fakes
    page = meta.add_page()
    token = Secret.literal(meta.issue_token(page))
    fb = FacebookSource("fb", token=token, page_id=page.id, api_base=meta.base_url,
                        timeout=2.0)
    ig = InstagramSource("ig", token=token, ig_user_id=page.ig_user_id or "",
                         api_base=meta.base_url, timeout=2.0)
    ln = LineSource("line", token=Secret.literal(line.token),
                    channel_secret=Secret.literal(line.channel_secret), api_base=line.base_url)
    store = Store(tmp_path / "db.sqlite")
    config = WebhookConfig("127.0.0.1", 0, 4096, Secret.literal(APP_SECRET),
                           Secret.literal(VERIFY_TOKEN))
    receiver = WebhookReceiver(store, [fb, ig, ln], config)
    host, port = await receiver.start()
    yield Env(f"http://{host}:{port}", store, meta, line, page, fb, ig, receiver)
    await receiver.stop()
    for src in (fb, ig, ln):
        await src.close()
    store.close()


def meta_sig(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.post(url, content=body,
                                 headers={"Content-Type": "application/json", **headers})


def messenger_body(env: Env, psid: str, mid: str, text: str) -> bytes:
    ms = int(time.time() * 1000)
    return json.dumps({"object": "page", "entry": [{
        "id": env.page.id, "time": ms,
        "messaging": [{"sender": {"id": psid}, "recipient": {"id": env.page.id},
                       "timestamp": ms, "message": {"mid": mid, "text": text}}]}]}).encode()


def count(store: Store, source: str) -> int:
    return store.conn.execute("SELECT count(*) FROM messages WHERE source=?",
                              (source,)).fetchone()[0]


# -- Meta handshake --------------------------------------------------------------------
async def test_verification_handshake(env: Env) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        ok = await client.get(env.url + "/webhooks/meta", params={
            "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1158201444"})
        wrong = await client.get(env.url + "/webhooks/meta", params={
            "hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"})
        no_mode = await client.get(env.url + "/webhooks/meta", params={
            "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"})
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert wrong.status_code == 403 and wrong.text != "1"
    assert no_mode.status_code == 400


# -- Meta events -----------------------------------------------------------------------
async def test_messenger_event_is_stored_once_and_polling_adds_nothing(env: Env) -> None:
    jane = env.meta.add_person("Jane")
    msg = env.meta.dm(env.page, jane, "where is my parcel?")
    body = messenger_body(env, jane.id, msg.id, "where is my parcel?")
    resp = await post(env.url + "/webhooks/meta", body, {"X-Hub-Signature-256": meta_sig(body)})
    assert resp.status_code == 200
    conv_id = next(iter(env.meta.conversations))
    conv = env.store.find_conversation("fb", f"dm:{conv_id}")
    assert conv is not None
    [stored] = env.store.messages(conv)
    assert (stored.remote_id, stored.text, stored.direction) == \
        (msg.id, "where is my parcel?", Direction.IN)
    assert stored.author.name == "Jane"  # from the conversation's participants
    assert env.store.unindexed() == 0  # searchable through the index, no poller needed
    # A replay of the same signed body, and Meta's redelivery, add nothing.
    for _ in range(2):
        again = await post(env.url + "/webhooks/meta", body,
                           {"X-Hub-Signature-256": meta_sig(body)})
        assert again.status_code == 200
    assert count(env.store, "fb") == 1
    # The polling safety net sees the same mid: still one message, in the same thread.
    batch = await env.fb.fetch(None)
    env.store.ingest("fb", batch.items, batch.cursor)
    assert count(env.store, "fb") == 1
    assert env.receiver.stored == 1


async def test_feed_comment_and_instagram_comment_events(env: Env) -> None:
    post_ = env.meta.page_post(env.page, "launch")
    bob = env.meta.add_person("Bob")
    comment = env.meta.comment(post_, bob, "when does it ship?")
    now = int(time.time())
    feed = json.dumps({"object": "page", "entry": [{"id": env.page.id, "time": now,
        "changes": [{"field": "feed", "value": {
            "from": {"id": bob.id, "name": "Bob"}, "post_id": post_.id,
            "comment_id": comment.id, "parent_id": post_.id, "created_time": now,
            "item": "comment", "verb": "add", "message": "when does it ship?"}}]}]}).encode()
    resp = await post(env.url + "/webhooks/meta", feed, {"X-Hub-Signature-256": meta_sig(feed)})
    assert resp.status_code == 200
    conv = env.store.find_conversation("fb", f"comment:{comment.id}")
    assert conv is not None
    [stored] = env.store.messages(conv)
    assert stored.author.name == "Bob" and stored.text == "when does it ship?"

    media = env.meta.ig_media(env.page, "summer")
    ana = env.meta.add_person("Ana", "ana.s")
    igc = env.meta.comment(media, ana, "love it")
    body = json.dumps({"object": "instagram", "entry": [{
        "id": env.page.ig_user_id, "time": now, "changes": [{"field": "comments", "value": {
            "from": {"id": ana.id, "username": "ana.s"},
            "media": {"id": media.id, "media_product_type": "FEED"},
            "id": igc.id, "text": "love it"}}]}]}).encode()
    resp = await post(env.url + "/webhooks/meta", body, {"X-Hub-Signature-256": meta_sig(body)})
    assert resp.status_code == 200
    conv = env.store.find_conversation("ig", f"comment:{igc.id}")
    assert conv is not None
    assert [m.author.handle for m in env.store.messages(conv)] == ["ana.s"]
    # Polling finds the same comment: nothing twice.
    batch = await env.ig.fetch(None)
    env.store.ingest("ig", batch.items, batch.cursor)
    assert count(env.store, "ig") == 1


async def test_unsigned_wrongly_signed_and_replayed_with_other_body_are_refused(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    jane = env.meta.add_person("Jane")
    msg = env.meta.dm(env.page, jane, "SECRET-CONTENT-123")
    body = messenger_body(env, jane.id, msg.id, "SECRET-CONTENT-123")
    caplog.set_level(logging.INFO, logger="replydeck.webhooks")
    unsigned = await post(env.url + "/webhooks/meta", body, {})
    wrong = await post(env.url + "/webhooks/meta", body,
                       {"X-Hub-Signature-256": meta_sig(body, "not-the-secret")})
    # A signature captured from one body does not carry over to another.
    tampered = body.replace(b"SECRET-CONTENT-123", b"SECRET-CONTENT-999")
    replayed = await post(env.url + "/webhooks/meta", tampered,
                          {"X-Hub-Signature-256": meta_sig(body)})
    assert (unsigned.status_code, wrong.status_code, replayed.status_code) == (401, 403, 403)
    assert count(env.store, "fb") == 0
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "X-Hub-Signature-256" in logged
    assert "SECRET-CONTENT" not in logged and APP_SECRET not in logged
    assert env.receiver.refused == 3


async def test_oversized_and_malformed_bodies(env: Env,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="replydeck.webhooks")
    big = b'{"object":"page","entry":[],"pad":"' + b"x" * 5000 + b'"}'
    resp = await post(env.url + "/webhooks/meta", big, {"X-Hub-Signature-256": meta_sig(big)})
    assert resp.status_code == 413
    junk = b"{not json at all"
    resp = await post(env.url + "/webhooks/meta", junk, {"X-Hub-Signature-256": meta_sig(junk)})
    assert resp.status_code == 400
    wrong_shape = b'{"object":"user","entry":{}}'
    resp = await post(env.url + "/webhooks/meta", wrong_shape,
                      {"X-Hub-Signature-256": meta_sig(wrong_shape)})
    assert resp.status_code == 400
    async with httpx.AsyncClient(timeout=5) as client:
        assert (await client.get(env.url + "/elsewhere")).status_code == 404
        assert (await client.put(env.url + "/webhooks/meta", content=b"{}")).status_code == 405
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "xxxxxxxx" not in logged and "not json at all" not in logged


async def test_a_bad_event_inside_a_valid_body_does_not_block_the_others(env: Env) -> None:
    jane = env.meta.add_person("Jane")
    msg = env.meta.dm(env.page, jane, "hi")
    ms = int(time.time() * 1000)
    body = json.dumps({"object": "page", "entry": [
        {"id": "999", "time": ms, "messaging": []},  # an account we do not serve
        {"id": env.page.id, "time": ms, "messaging": [
            {"sender": {"id": jane.id}, "recipient": {"id": env.page.id}, "timestamp": ms,
             "read": {"watermark": ms}},  # not a message: ignored
            {"sender": {"id": jane.id}, "recipient": {"id": env.page.id}, "timestamp": ms,
             "message": {"mid": msg.id, "text": "hi"}}]}]}).encode()
    resp = await post(env.url + "/webhooks/meta", body, {"X-Hub-Signature-256": meta_sig(body)})
    assert resp.status_code == 200
    assert count(env.store, "fb") == 1


# -- LINE ------------------------------------------------------------------------------
async def test_line_events_signed_stored_once_and_redelivery_ignored(env: Env) -> None:
    yuki = env.line.add_user("Yuki")
    event = env.line.message_event(yuki, "返品したいです")
    body = env.line.webhook_body(event)
    resp = await post(env.url + "/webhooks/line", body,
                      {"X-Line-Signature": env.line.sign(body)})
    assert resp.status_code == 200
    conv = env.store.find_conversation("line", f"dm:{yuki.user_id}")
    assert conv is not None
    [stored] = env.store.messages(conv)
    assert (stored.text, stored.author.name) == ("返品したいです", "Yuki")
    redelivered = env.line.webhook_body({**event, "deliveryContext": {"isRedelivery": True}})
    resp = await post(env.url + "/webhooks/line", redelivered,
                      {"X-Line-Signature": env.line.sign(redelivered)})
    assert resp.status_code == 200
    assert count(env.store, "line") == 1
    # Stored messages can be answered with the reply token they carry.
    reply = env.store.queue_reply(conv, "Sure, here is how")
    from replydeck.inbox.outbox import Outbox

    src = next(s for s in env.receiver.sources if s.name == "line")
    report = await Outbox(env.store, {"line": src}, owner="t").run_once()
    assert report.sent == [reply.id]
    assert [s.via for s in env.line.sent_to(yuki.user_id)] == ["reply"]


async def test_line_bad_signatures(env: Env) -> None:
    yuki = env.line.add_user("Yuki")
    body = env.line.webhook_body(env.line.message_event(yuki, "hi"))
    none = await post(env.url + "/webhooks/line", body, {})
    wrong = await post(env.url + "/webhooks/line", body,
                       {"X-Line-Signature": env.line.sign(body, "other-secret")})
    garbage = await post(env.url + "/webhooks/line", body, {"X-Line-Signature": "%%%"})
    assert (none.status_code, wrong.status_code, garbage.status_code) == (401, 403, 403)
    assert count(env.store, "line") == 0


# -- config ----------------------------------------------------------------------------
def test_webhooks_config_table() -> None:
    root = Table({"webhooks": {"listen": "0.0.0.0:9000", "max_body": 2048,
                               "meta": {"app_secret": "env:A", "verify_token": "env:V"}}},
                 "", "c.toml")
    config = parse_config(root)
    assert (config.host, config.port, config.max_body) == ("0.0.0.0", 9000, 2048)
    assert config.app_secret.reference == "env:A"
    defaults = parse_config(Table({}, "", "c.toml"))
    assert (defaults.host, defaults.port, defaults.max_body) == ("127.0.0.1", 8787, 1_000_000)
    from replydeck.config.errors import ConfigError

    with pytest.raises(ConfigError, match="listen"):
        parse_config(Table({"webhooks": {"listen": "nowhere"}}, "", "c.toml"))
    with pytest.raises(ConfigError, match="app_secret"):
        parse_config(Table({"webhooks": {"meta": {"app_secret": "literal"}}}, "", "c.toml"))


async def test_an_event_not_stored_is_stored_when_meta_delivers_it_again(env: Env) -> None:
    from tests.fakes.httpfake import FakeResponse, Fault

    jane = env.meta.add_person("Jane")
    msg = env.meta.dm(env.page, jane, "hello?")
    body = messenger_body(env, jane.id, msg.id, "hello?")
    # The conversation lookup fails (Graph is down): answered, not stored, not remembered.
    env.meta.server.inject(Fault(response=FakeResponse(503, "down")),
                           when=lambda r: r.path.endswith("/conversations"))
    resp = await post(env.url + "/webhooks/meta", body, {"X-Hub-Signature-256": meta_sig(body)})
    assert resp.status_code == 200 and count(env.store, "fb") == 0
    resp = await post(env.url + "/webhooks/meta", body, {"X-Hub-Signature-256": meta_sig(body)})
    assert resp.status_code == 200 and count(env.store, "fb") == 1


async def test_a_malformed_event_is_skipped_and_the_rest_stored(env: Env) -> None:
    yuki = env.line.add_user("Yuki")
    good = env.line.message_event(yuki, "fine")
    broken = {**env.line.message_event(yuki, "x"), "timestamp": "yesterday"}
    body = env.line.webhook_body(broken, good)
    resp = await post(env.url + "/webhooks/line", body, {"X-Line-Signature": env.line.sign(body)})
    assert resp.status_code == 200
    assert count(env.store, "line") == 1
