"""A stateful fake of the LINE Messaging API over real HTTP on loopback.

Wire formats follow PLATFORMS.md §5 and fixtures/line/: bearer channel access tokens,
``{"message": ..., "details": [...]}`` error bodies, ``sentMessages[{id, quoteToken}]``
answers, and webhook bodies ``{destination, events[]}`` signed with ``X-Line-Signature``
(base64 HMAC-SHA256 of the raw body with the channel secret).

It enforces: the token, reply tokens single-use and valid for one minute (-> 400 "Invalid
reply token"), 1-5 messages per call, 5000 characters per text, ``X-Line-Retry-Key`` as a
UUID, a repeated retry key -> 409 with ``x-line-accepted-request-id``, and profiles only
for users who added the bot (else 404).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.httpfake import FakeHTTPServer, FakeRequest, FakeResponse

REPLY_TOKEN_TTL_S = 60.0


@dataclass
class LineUser:
    user_id: str
    display_name: str
    picture_url: str = "https://profile.line-scdn.net/0h-example"


@dataclass
class Sent:
    id: str
    to: str
    text: str
    via: str  # reply | push
    retry_key: str | None = None


@dataclass
class LineState:
    reply_tokens: dict[str, tuple[float, str, bool]] = field(default_factory=dict)
    retry_keys: dict[str, tuple[float, str, list[dict[str, str]]]] = field(
        default_factory=dict)


class FakeLine:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.server = FakeHTTPServer()
        self.token = "line-" + secrets.token_urlsafe(16)
        self.channel_secret = secrets.token_hex(16)
        self.bot_user_id = "U" + secrets.token_hex(16)
        self.users: dict[str, LineUser] = {}
        self.sent: list[Sent] = []
        self.state = LineState()
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._routes()

    # -- helpers for tests -------------------------------------------------------------
    def add_user(self, name: str) -> LineUser:
        user = LineUser("U" + secrets.token_hex(16), name)
        self.users[user.user_id] = user
        return user

    def message_event(self, user: LineUser, text: str, *, group_id: str | None = None,
                      at: float | None = None, redelivery: bool = False) -> dict[str, Any]:
        """A webhook message event, its reply token registered as issued at ``at``."""
        at = self.clock() if at is None else at
        token = secrets.token_hex(16)
        source: dict[str, Any] = {"type": "user", "userId": user.user_id}
        if group_id:
            source = {"type": "group", "groupId": group_id, "userId": user.user_id}
        with self._lock:
            self.state.reply_tokens[token] = (at, group_id or user.user_id, False)
        return {
            "type": "message",
            "message": {"type": "text", "id": str(500_000_000_000_000 + next(self._ids)),
                        "quoteToken": "q" + secrets.token_urlsafe(12), "text": text},
            "webhookEventId": "01H" + secrets.token_hex(12).upper()[:23],
            "deliveryContext": {"isRedelivery": redelivery},
            "timestamp": int(at * 1000),
            "source": source,
            "replyToken": token,
            "mode": "active",
        }

    def webhook_body(self, *events: dict[str, Any]) -> bytes:
        # ASCII escapes keep lone surrogates (valid JSON, not valid UTF-8) sendable.
        return json.dumps({"destination": self.bot_user_id, "events": list(events)}).encode()

    def sign(self, body: bytes, secret: str | None = None) -> str:
        digest = hmac.new((secret or self.channel_secret).encode(), body,
                          hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def sent_to(self, to: str) -> list[Sent]:
        return [s for s in self.sent if s.to == to]

    # -- HTTP --------------------------------------------------------------------------
    def start(self) -> FakeLine:
        self.server.start()
        return self

    def stop(self) -> None:
        threading.Thread(target=self.server.stop, daemon=True).start()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def _auth(self, req: FakeRequest) -> FakeResponse | None:
        if req.header("authorization") != f"Bearer {self.token}":
            return FakeResponse(401, {"message": "Authentication failed. Confirm that the "
                                                 "access token in the authorization header "
                                                 "is valid."})
        return None

    def _messages(self, body: Any) -> list[dict[str, str]] | FakeResponse:
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
            return FakeResponse(400, {"message": "The request body has 1 error(s)",
                                      "details": [{"message": "Size must be between 1 and 5",
                                                   "property": "messages"}]})
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("type") != "text" \
                    or not isinstance(m.get("text"), str) or not m["text"]:
                return FakeResponse(400, {"message": "The request body has 1 error(s)",
                                          "details": [{"message": "must be specified",
                                                       "property": f"messages[{i}].text"}]})
            if len(m["text"]) > 5000:
                return FakeResponse(400, {"message": "The request body has 1 error(s)",
                                          "details": [{"message": "Length must be between 0 "
                                                                  "and 5000",
                                                       "property": f"messages[{i}].text"}]})
        return messages

    def _record(self, to: str, messages: list[dict[str, str]], via: str,
                key: str | None = None) -> list[dict[str, str]]:
        out = []
        for m in messages:
            sent = Sent(str(600_000_000_000_000 + next(self._ids)), to, m["text"], via, key)
            self.sent.append(sent)
            out.append({"id": sent.id, "quoteToken": "q" + secrets.token_urlsafe(12)})
        return out

    def _routes(self) -> None:
        route = self.server.route

        @route("POST", r"/v2/bot/message/reply")
        def reply(req: FakeRequest) -> FakeResponse:
            denied = self._auth(req)
            if denied:
                return denied
            body = req.json()
            messages = self._messages(body)
            if isinstance(messages, FakeResponse):
                return messages
            token = body.get("replyToken")
            with self._lock:
                entry = self.state.reply_tokens.get(token) if isinstance(token, str) else None
                if entry is None or entry[2] or self.clock() - entry[0] > REPLY_TOKEN_TTL_S:
                    return FakeResponse(400, {"message": "Invalid reply token"})
                self.state.reply_tokens[token] = (entry[0], entry[1], True)
                sent = self._record(entry[1], messages, "reply")
            return FakeResponse(200, {"sentMessages": sent},
                                {"x-line-request-id": str(uuid.uuid4())})

        @route("POST", r"/v2/bot/message/push")
        def push(req: FakeRequest) -> FakeResponse:
            denied = self._auth(req)
            if denied:
                return denied
            key = req.header("x-line-retry-key")
            if key is not None:
                try:
                    uuid.UUID(key)
                except ValueError:
                    return FakeResponse(400, {"message": "The retry key is invalid"})
            body = req.json()
            messages = self._messages(body)
            if isinstance(messages, FakeResponse):
                return messages
            to = body.get("to")
            if not isinstance(to, str) or not to:
                return FakeResponse(400, {"message": "The request body has 1 error(s)",
                                          "details": [{"message": "must be specified",
                                                       "property": "to"}]})
            with self._lock:
                if key is not None and key in self.state.retry_keys:
                    _at, request_id, sent = self.state.retry_keys[key]
                    return FakeResponse(409, {"message": "The retry key is already accepted",
                                              "sentMessages": sent},
                                        {"x-line-accepted-request-id": request_id})
                sent = self._record(to, messages, "push", key)
                request_id = str(uuid.uuid4())
                if key is not None:
                    self.state.retry_keys[key] = (self.clock(), request_id, sent)
            return FakeResponse(200, {"sentMessages": sent}, {"x-line-request-id": request_id})

        @route("GET", r"/v2/bot/profile/(?P<user>[^/]+)")
        def profile(req: FakeRequest) -> FakeResponse:
            denied = self._auth(req)
            if denied:
                return denied
            user = self.users.get(req.params["user"])
            if user is None:
                return FakeResponse(404, {"message": "Not found"})
            return FakeResponse(200, {"displayName": user.display_name,
                                      "userId": user.user_id, "language": "en",
                                      "pictureUrl": user.picture_url,
                                      "statusMessage": "Hello, LINE!"})

        @route("GET", r"/v2/bot/info")
        def info(req: FakeRequest) -> FakeResponse:
            denied = self._auth(req)
            if denied:
                return denied
            return FakeResponse(200, {"userId": self.bot_user_id, "basicId": "@216ru...",
                                      "displayName": "Acme Support",
                                      "pictureUrl": "https://profile.line-scdn.net/abcdefg",
                                      "chatMode": "bot", "markAsReadMode": "auto"})
