"""A stateful fake of the Telegram Bot API for adapter tests, over real HTTP on loopback.

Wire format as in PLATFORMS.md §5 and fixtures/telegram/: ``POST /bot<TOKEN>/<method>``
with JSON, form or query parameters; answers ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "...", "parameters"?: {...}}`` with the
same HTTP status.

What it enforces:
* the token: a malformed one gives 404 "Not Found", an unknown one 401 "Unauthorized";
* getUpdates offset confirmation: asking with ``offset`` forgets every update below it
  (they are never delivered again); ``limit`` 1-100; ``allowed_updates`` is remembered
  between calls as Telegram does; ``timeout`` long-polls until an update arrives; a
  second concurrent getUpdates or a set webhook gives 409 Conflict;
* group privacy mode (default on): in groups the bot receives only messages that mention
  it, reply to one of its messages or are commands; ``privacy=False`` delivers all;
* a bot never receives its own messages;
* sendMessage: a known chat, 1-4096 characters, ``reply_parameters`` (or the pre-7.0
  ``reply_to_message_id``) naming a message of that chat unless
  ``allow_sending_without_reply``; flood control (``flood()``) answers 429 with
  ``parameters.retry_after``; a user who never started the bot cannot be messaged (403).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.httpfake import FakeHTTPServer, FakeRequest, FakeResponse

TOKEN_FORMAT = re.compile(r"\d+:[A-Za-z0-9_-]{30,}")
#: Telegram keeps unconfirmed updates this long.
KEEP_S = 24 * 3600


def error(code: int, description: str, **parameters: Any) -> FakeResponse:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return FakeResponse(code, body)


def ok(result: Any) -> FakeResponse:
    return FakeResponse(200, {"ok": True, "result": result})


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class TgUser:
    id: int
    first_name: str
    username: str | None = None
    last_name: str | None = None
    is_bot: bool = False
    started_bot: bool = True

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "is_bot": self.is_bot,
                               "first_name": self.first_name}
        if self.last_name:
            out["last_name"] = self.last_name
        if self.username:
            out["username"] = self.username
        if not self.is_bot:
            out["language_code"] = "en"
        return out


@dataclass
class Chat:
    id: int
    type: str  # private | group | supergroup
    title: str | None = None
    username: str | None = None
    user: TgUser | None = None  # the other side of a private chat
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    ids: Any = field(default_factory=lambda: itertools.count(1))

    def render(self) -> dict[str, Any]:
        if self.type == "private" and self.user is not None:
            out = {"id": self.id, "first_name": self.user.first_name, "type": "private"}
            if self.user.last_name:
                out["last_name"] = self.user.last_name
            if self.user.username:
                out["username"] = self.user.username
            return out
        out = {"id": self.id, "title": self.title or "", "type": self.type}
        if self.username:
            out["username"] = self.username
        return out


class FakeTelegram:
    def __init__(self, *, bot_username: str = "AcmeHelpBot", privacy: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.privacy = privacy
        self.server = FakeHTTPServer()
        self.bot = TgUser(7_000_000_001, "Acme Help", bot_username, is_bot=True)
        self.token = f"{self.bot.id}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
        self.users: dict[int, TgUser] = {}
        self.chats: dict[int, Chat] = {}
        self.updates: list[dict[str, Any]] = []
        self.update_ids = itertools.count(850_000_000)
        self.allowed_updates: list[str] | None = None
        self.webhook_url = ""
        #: Every offset getUpdates was called with, in order (None when omitted).
        self.offsets: list[int | None] = []
        self._polling = 0
        self._floods: dict[int, int] = {}
        self._cond = threading.Condition()
        self._user_ids = itertools.count(100_000_001)
        self._group_ids = itertools.count(1)
        self._routes()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> FakeTelegram:
        self.server.start()
        return self

    def stop(self) -> None:
        # The server loop notices a stop only every 0.5 s: do not make each test wait.
        threading.Thread(target=self.server.stop, daemon=True).start()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    # -- state helpers for tests -------------------------------------------------------
    def add_user(self, first_name: str, username: str | None = None, *,
                 last_name: str | None = None, started_bot: bool = True) -> TgUser:
        user = TgUser(next(self._user_ids), first_name, username, last_name,
                      started_bot=started_bot)
        self.users[user.id] = user
        return user

    def private_chat(self, user: TgUser) -> Chat:
        chat = self.chats.get(user.id)
        if chat is None:
            chat = Chat(user.id, "private", user=user)
            self.chats[chat.id] = chat
        return chat

    def group(self, title: str, *, username: str | None = None,
              supergroup: bool = True) -> Chat:
        n = next(self._group_ids)
        chat_id = -(1_000_000_000_000 + 5_000 + n) if supergroup else -(400_000 + n)
        chat = Chat(chat_id, "supergroup" if supergroup else "group", title, username)
        self.chats[chat.id] = chat
        return chat

    def say(self, chat: Chat, user: TgUser, text: str, *, reply_to: int | None = None,
            mention_bot: bool = False, thread_id: int | None = None,
            photo: bool = False) -> dict[str, Any]:
        """A person writes in ``chat``; an update is queued if the bot would receive it."""
        if mention_bot and f"@{self.bot.username}" not in text:
            text = f"@{self.bot.username} {text}"
        entities = []
        for m in re.finditer(r"@\w+", text):
            entities.append({"offset": utf16_len(text[:m.start()]),
                             "length": utf16_len(m.group(0)), "type": "mention"})
        for m in re.finditer(r"(?<!\S)/\w+(?:@\w+)?", text):
            entities.append({"offset": utf16_len(text[:m.start()]),
                             "length": utf16_len(m.group(0)), "type": "bot_command"})
        message: dict[str, Any] = {
            "message_id": next(chat.ids), "from": user.render(), "chat": chat.render(),
            "date": int(self.clock()),
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
        if photo:
            message["photo"] = [{"file_id": "AgAD", "file_unique_id": "AQAD", "width": 90,
                                 "height": 90, "file_size": 1200}]
            message["caption"] = text
            if entities:
                message["caption_entities"] = entities
        else:
            message["text"] = text
            if entities:
                message["entities"] = entities
        parent = chat.messages.get(reply_to) if reply_to is not None else None
        if parent is not None:
            # Telegram does not nest: the parent comes without its own reply_to_message.
            message["reply_to_message"] = {k: v for k, v in parent.items()
                                           if k != "reply_to_message"}
        with self._cond:
            chat.messages[message["message_id"]] = message
            if self._delivered(chat, message):
                self.updates.append({"update_id": next(self.update_ids), "message": message,
                                     "_at": self.clock()})
                self._cond.notify_all()
        return message

    def bot_says(self, chat: Chat, text: str) -> dict[str, Any]:
        """A message from the bot sent by some other program: never an update for it."""
        message = {"message_id": next(chat.ids), "from": self.bot.render(),
                   "chat": chat.render(), "date": int(self.clock()), "text": text}
        chat.messages[message["message_id"]] = message
        return message

    def _delivered(self, chat: Chat, message: dict[str, Any]) -> bool:
        if chat.type == "private" or not self.privacy:
            return True
        text = message.get("text") or message.get("caption") or ""
        if f"@{self.bot.username}".lower() in text.lower() or text.startswith("/"):
            return True
        parent = message.get("reply_to_message")
        return bool(parent and parent["from"]["id"] == self.bot.id)

    def flood(self, chat: Chat, retry_after: int) -> None:
        """The next sendMessage to ``chat`` gets 429 with ``retry_after``."""
        self._floods[chat.id] = retry_after

    def bot_messages(self, chat: Chat) -> list[dict[str, Any]]:
        return [m for m in chat.messages.values() if m["from"]["id"] == self.bot.id]

    def pending(self) -> list[int]:
        return [u["update_id"] for u in self.updates]

    # -- HTTP ----------------------------------------------------------------------------
    @staticmethod
    def _params(req: FakeRequest) -> dict[str, Any]:
        params: dict[str, Any] = {k: v[0] for k, v in req.query.items()}
        ctype = req.header("content-type", "") or ""
        if req.body and "json" in ctype:
            body = req.json()
            if isinstance(body, dict):
                params.update(body)
        elif req.body:
            params.update({k: v[0] for k, v in parse_qs(req.body.decode()).items()})
        return params

    def _routes(self) -> None:
        @self.server.route("POST", r"/bot(?P<token>[^/]*)/(?P<method>\w+)")
        def dispatch(req: FakeRequest) -> FakeResponse:
            return self._dispatch(req)

        @self.server.route("GET", r"/bot(?P<token>[^/]*)/(?P<method>\w+)")
        def dispatch_get(req: FakeRequest) -> FakeResponse:
            return self._dispatch(req)

    def _dispatch(self, req: FakeRequest) -> FakeResponse:
        token = req.params["token"]
        if not TOKEN_FORMAT.fullmatch(token):
            return error(404, "Not Found")
        if token != self.token:
            return error(401, "Unauthorized")
        method = req.params["method"]
        try:
            params = self._params(req)
        except ValueError:
            return error(400, "Bad Request: can't parse JSON object")
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return error(404, "Not Found")
        return handler(params)

    def _m_getMe(self, params: dict[str, Any]) -> FakeResponse:
        me = self.bot.render()
        me.update({"can_join_groups": True, "can_read_all_group_messages": not self.privacy,
                   "supports_inline_queries": False})
        return ok(me)

    def _m_getWebhookInfo(self, params: dict[str, Any]) -> FakeResponse:
        return ok({"url": self.webhook_url, "has_custom_certificate": False,
                   "pending_update_count": len(self.updates)})

    def _m_deleteWebhook(self, params: dict[str, Any]) -> FakeResponse:
        self.webhook_url = ""
        return ok(True)

    def _m_getUpdates(self, params: dict[str, Any]) -> FakeResponse:
        if self.webhook_url:
            return error(409, "Conflict: can't use getUpdates method while webhook is "
                              "active; use deleteWebhook to delete the webhook first")
        try:
            offset = int(params["offset"]) if params.get("offset") is not None else None
            limit = int(params.get("limit", 100))
            timeout = float(params.get("timeout", 0))
        except (TypeError, ValueError):
            return error(400, "Bad Request: invalid parameters")
        if not 1 <= limit <= 100:
            limit = max(1, min(limit, 100))  # Telegram clamps
        allowed = params.get("allowed_updates")
        if isinstance(allowed, str):
            allowed = json.loads(allowed)
        with self._cond:
            if self._polling:
                return error(409, "Conflict: terminated by other getUpdates request; make "
                                  "sure that only one bot instance is running")
            self._polling += 1
            try:
                self.offsets.append(offset)
                if allowed is not None:
                    self.allowed_updates = list(allowed)
                deadline = time.monotonic() + timeout
                while True:
                    self._confirm(offset)
                    ready = self._ready(limit)
                    left = deadline - time.monotonic()
                    if ready or left <= 0:
                        break
                    self._cond.wait(min(left, 0.05))
            finally:
                self._polling -= 1
        return ok([{k: v for k, v in u.items() if k != "_at"} for u in ready])

    def _confirm(self, offset: int | None) -> None:
        """Asking with ``offset`` forgets the updates below it, for good."""
        now = self.clock()
        self.updates = [u for u in self.updates if now - u["_at"] < KEEP_S]
        if offset is None:
            return
        if offset < 0:
            self.updates = self.updates[offset:]
        else:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]

    def _ready(self, limit: int) -> list[dict[str, Any]]:
        allowed = self.allowed_updates or ["message", "edited_message", "channel_post",
                                           "edited_channel_post", "callback_query"]
        out = []
        for u in self.updates:
            kinds = [k for k in u if k not in ("update_id", "_at")]
            if any(k in allowed for k in kinds):
                out.append(u)
            if len(out) >= limit:
                break
        return out

    def _m_sendMessage(self, params: dict[str, Any]) -> FakeResponse:
        try:
            chat_id = int(params.get("chat_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return error(400, "Bad Request: chat not found")
        chat = self.chats.get(chat_id)
        if chat is None:
            user = self.users.get(chat_id)
            if user is None:
                return error(400, "Bad Request: chat not found")
            if not user.started_bot:
                return error(403, "Forbidden: bot can't initiate conversation with a user")
            chat = self.private_chat(user)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return error(400, "Bad Request: message is too long")
        retry_after = self._floods.pop(chat.id, None)
        if retry_after is not None:
            return error(429, f"Too Many Requests: retry after {retry_after}",
                         retry_after=retry_after)
        reply_params = params.get("reply_parameters")
        if isinstance(reply_params, str):
            reply_params = json.loads(reply_params)
        if reply_params is None and params.get("reply_to_message_id") is not None:
            reply_params = {"message_id": params["reply_to_message_id"]}
        parent = None
        if isinstance(reply_params, dict):
            parent = chat.messages.get(reply_params.get("message_id"))
            if parent is None and not reply_params.get("allow_sending_without_reply"):
                return error(400, "Bad Request: message to be replied not found")
        message: dict[str, Any] = {"message_id": next(chat.ids), "from": self.bot.render(),
                                   "chat": chat.render(), "date": int(self.clock()),
                                   "text": text}
        if parent is not None:
            message["reply_to_message"] = {k: v for k, v in parent.items()
                                           if k != "reply_to_message"}
        # Entities would be parsed here with parse_mode; without it the text is literal.
        chat.messages[message["message_id"]] = message
        return ok(message)
