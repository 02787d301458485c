"""Telegram (Bot API): private chats with the bot, and group messages addressed to it.

Inbound is ``getUpdates`` long polling. The cursor is the ``offset`` to ask with next
(the last ``update_id`` + 1), and asking with it is what tells Telegram to forget the
updates before it. The adapter keeps no offset of its own: it only ever asks with the
cursor the poller hands it, which the poller saves together with the batch, so an update
is confirmed only once it is stored. Updates are kept by Telegram for 24 hours.

Which messages become items:

* private chats: every message (kind ``dm``, thread ``chat:<chat_id>``);
* groups: messages that mention the bot (an ``@username`` or ``text_mention`` entity, or
  a ``/command@botname``) or reply to one of its messages (kind ``mention``). The thread
  is ``chat:<chat_id>:<message_thread_id>`` when Telegram gives one, else the message
  itself starts ``chat:<chat_id>:<message_id>``; a reply to the bot's message without a
  thread id names that message in ``in_reply_to`` so it joins the same conversation.

Telegram never delivers a bot's own messages to it, so replies sent from elsewhere
cannot be seen as outbound. ``sendMessage`` has no idempotency key and no way to list
what the bot sent, so a crash mid-send leaves the reply ``unconfirmed`` for a person.
Text is sent without ``parse_mode``: it arrives exactly as typed.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import httpx

from replydeck.inbox import textlen
from replydeck.inbox.model import UTC, Author, Direction, Kind, Message, Reply, utcnow
from replydeck.inbox.sanitize import sanitize_line, sanitize_text
from replydeck.sources.base import (
    AuthError,
    BaseSource,
    Batch,
    CheckResult,
    Cursor,
    Limits,
    PermanentError,
    RateLimited,
    Receipt,
    TransientError,
    describe_json,
)
from replydeck.sources.http import new_client

DEFAULT_API_BASE = "https://api.telegram.org"
BATCH_LIMIT = 100
WEBHOOK_HELP = ("a webhook is set for this bot, and Telegram does not allow getUpdates "
                "while one is: remove it with the Bot API method deleteWebhook (open "
                "https://api.telegram.org/bot<TOKEN>/deleteWebhook) or stop the other "
                "program that set it")
OTHER_POLLER_HELP = ("another program is reading this bot's updates with getUpdates "
                     "(Telegram allows only one at a time): stop it, or give replydeck its "
                     "own bot")
#: Placeholders for messages without text, so the person sees that something arrived.
MEDIA_KINDS = ("photo", "video", "voice", "audio", "document", "sticker", "animation",
               "video_note", "location", "contact", "poll")


class TelegramSource(BaseSource):
    type_name = "telegram"
    platform = "telegram"
    # [U] whether the 4096 limit counts code points or UTF-16 units; code points is the
    # reading of "1-4096 characters after entities parsing".
    limits = Limits(max_length=4096, counting="chars")
    idempotent_send = False
    can_reconcile = False
    #: getUpdates waits on the server (long polling): ask again right away.
    default_poll_interval = 1

    def __init__(self, name: str, *, token: Any, api_base: str = DEFAULT_API_BASE,
                 long_poll: int = 25, timeout: float = 30.0) -> None:
        super().__init__(name)
        self._token = token
        self.api_base = api_base.rstrip("/")
        self.long_poll = long_poll
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._bot: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"TelegramSource({self.name!r}, api_base={self.api_base!r})"

    @classmethod
    def from_config(cls, table: Any) -> TelegramSource:
        return cls(
            table.name,
            token=table.secret("token"),
            api_base=table.str("api_base", DEFAULT_API_BASE),
            long_poll=table.int("long_poll", 25, min=0, max=50),
            timeout=table.number("timeout", 30.0, min=0.05),
        )

    # -- HTTP ------------------------------------------------------------------------
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(timeout=self.timeout)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _call(self, method: str, params: dict[str, Any], *,
                    wait: float = 0.0) -> Any:
        """One Bot API call; returns ``result``. ``wait`` extends the timeout for long polls."""
        try:
            token = self._token.resolve()
        except Exception as exc:  # ConfigError names the reference, never the value
            raise AuthError(f"Telegram token: {exc}") from None
        # The token is part of the URL: never let httpx's errors (which quote the URL)
        # reach a message.
        url = f"{self.api_base}/bot{token}/{method}"
        # A sendMessage that may have reached Telegram may have been delivered: maybe_sent
        # makes the outbox hold it as unconfirmed instead of sending it twice.
        mutating = method == "sendMessage"
        try:
            resp = await self._http().post(url, json=params,
                                           timeout=httpx.Timeout(self.timeout + wait))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientError(f"cannot reach Telegram at {self.api_base} "
                                 f"({type(exc).__name__})") from None
        except httpx.TimeoutException:
            raise TransientError(f"Telegram did not answer {method} within "
                                 f"{self.timeout + wait:g} s", maybe_sent=mutating) from None
        except httpx.HTTPError as exc:
            raise TransientError(f"lost the connection to Telegram at {self.api_base} "
                                 f"({type(exc).__name__})", maybe_sent=mutating) from None
        return self._decode(method, resp, mutating=mutating)

    def _decode(self, method: str, resp: httpx.Response, *, mutating: bool = False) -> Any:
        status = resp.status_code
        try:
            data = resp.json()
        except ValueError:
            data = None
        description = ""
        params: dict[str, Any] = {}
        if isinstance(data, dict):
            description = sanitize_line(str(data.get("description") or ""))[:300]
            if isinstance(data.get("parameters"), dict):
                params = data["parameters"]
        if status == 429 or (isinstance(data, dict) and data.get("error_code") == 429):
            retry_after = params.get("retry_after")
            seconds = retry_after if isinstance(retry_after, int) and retry_after >= 0 else 30
            retry_at = utcnow() + timedelta(seconds=seconds)
            raise RateLimited(f"Telegram asked to wait {seconds} s ({method})",
                              retry_at=retry_at)
        if status >= 500:
            raise TransientError(f"Telegram server error {status} on {method}",
                                 maybe_sent=mutating)
        if status == 401 or (status == 404 and description.lower() == "not found"):
            # A malformed token gives 404 "Not Found" for every method, a revoked one 401.
            raise AuthError("Telegram: bot token rejected (check the token from @BotFather; "
                            "it looks like 123456789:AA…)")
        if status == 409:
            if "webhook" in description.lower():
                raise PermanentError(f"Telegram: {WEBHOOK_HELP}")
            raise PermanentError(f"Telegram: {OTHER_POLLER_HELP}")
        if status >= 400 or (isinstance(data, dict) and data.get("ok") is False):
            raise PermanentError(f"Telegram refused {method}: "
                                 f"{description or f'error {status}'}")
        if not isinstance(data, dict) or data.get("ok") is not True or "result" not in data:
            raise TransientError(f"malformed answer from Telegram {method}: "
                                 f"{describe_json(data) if data is not None else 'not JSON'}",
                                 maybe_sent=mutating)
        return data["result"]

    async def _me(self) -> dict[str, Any]:
        if self._bot is None:
            result = await self._call("getMe", {})
            if not isinstance(result, dict) or not isinstance(result.get("id"), int):
                raise TransientError(f"malformed answer from Telegram getMe: "
                                     f"{describe_json(result)}")
            self._bot = result
        return self._bot

    # -- fetch -----------------------------------------------------------------------
    async def fetch(self, cursor: Cursor | None) -> Batch:
        offset = _load_offset(cursor)
        bot = await self._me()
        params: dict[str, Any] = {"limit": BATCH_LIMIT, "timeout": self.long_poll,
                                  "allowed_updates": ["message"]}
        if offset is not None:
            params["offset"] = offset
        result = await self._call("getUpdates", params, wait=self.long_poll)
        if not isinstance(result, list):
            raise TransientError(f"malformed answer from Telegram getUpdates: "
                                 f"{describe_json(result)}")
        items: list[Message] = []
        newest = offset - 1 if offset is not None else None
        for update in result:
            if not isinstance(update, dict) or not isinstance(update.get("update_id"), int) \
                    or isinstance(update.get("update_id"), bool):
                raise TransientError("malformed answer from Telegram getUpdates: an update "
                                     f"is {describe_json(update)}")
            newest = max(newest, update["update_id"]) if newest is not None \
                else update["update_id"]
            message = update.get("message")
            if message is None:
                continue  # another update type (only "message" is asked for)
            msg = self._message(message, bot)
            if msg is not None:
                items.append(msg)
        next_cursor = str(newest + 1) if newest is not None else cursor
        return Batch(items, next_cursor, more=len(result) >= BATCH_LIMIT)

    def _message(self, m: Any, bot: dict[str, Any]) -> Message | None:
        if not isinstance(m, dict) or not isinstance(m.get("message_id"), int) \
                or not isinstance(m.get("chat"), dict) \
                or not isinstance(m["chat"].get("id"), int) \
                or not isinstance(m.get("date"), int):
            raise TransientError(f"malformed answer from Telegram getUpdates: a message is "
                                 f"{describe_json(m)}")
        chat = m["chat"]
        chat_id = chat["id"]
        message_id = m["message_id"]
        text = m.get("text") if isinstance(m.get("text"), str) else None
        entities = m.get("entities")
        if text is None:
            caption = m.get("caption")
            text = caption if isinstance(caption, str) else ""
            entities = m.get("caption_entities")
            kind = next((k for k in MEDIA_KINDS if k in m), None)
            if kind:
                text = f"[{kind}] {text}".strip()
        if not text:
            return None  # a service message (member joined, pin...): nothing to answer
        entities = [e for e in entities if isinstance(e, dict)] \
            if isinstance(entities, list) else []
        parent = m.get("reply_to_message") if isinstance(m.get("reply_to_message"), dict) \
            else None
        parent_id = parent.get("message_id") if parent else None
        private = chat.get("type") == "private"
        replies_to_bot = bool(parent and isinstance(parent.get("from"), dict)
                              and parent["from"].get("id") == bot["id"])
        if not private and not (replies_to_bot or _mentions(text, entities, bot)):
            return None  # group chatter not addressed to us (bot with privacy mode off)
        thread_id = m.get("message_thread_id")
        in_reply_to = f"{chat_id}:{parent_id}" if isinstance(parent_id, int) else None
        if private:
            thread_key: str | None = f"chat:{chat_id}"
        elif isinstance(thread_id, int):
            thread_key = f"chat:{chat_id}:{thread_id}"
        elif replies_to_bot:
            thread_key = None  # joins the conversation of the bot message it answers
        else:
            thread_key = f"chat:{chat_id}:{message_id}"
        return Message(
            source=self.name,
            remote_id=f"{chat_id}:{message_id}",
            platform=self.platform,
            kind=Kind.DM if private else Kind.MENTION,
            author=_author(m),
            text=sanitize_text(text),
            created_at=datetime.fromtimestamp(m["date"], UTC),
            direction=Direction.IN,
            thread_key=thread_key,
            in_reply_to=in_reply_to,
            url=_message_url(chat, message_id),
            raw={"chat_id": chat_id, "message_id": message_id,
                 "chat_type": sanitize_line(str(chat.get("type") or "")),
                 "message_thread_id": thread_id if isinstance(thread_id, int) else None},
        )

    # -- send ------------------------------------------------------------------------
    async def send(self, reply: Reply) -> Receipt:
        result = textlen.check_reply(reply.body, self.limits, reply.private)
        if not result.ok:
            raise PermanentError(f"too long for a Telegram message: {result.describe()}")
        if not reply.body.strip():
            raise PermanentError("an empty reply cannot be sent to Telegram")
        target = reply.reply_to
        if target is None or not isinstance(target.raw.get("chat_id"), int):
            raise PermanentError("nothing to reply to: the conversation has no Telegram "
                                 "message with a chat id")
        chat_id = target.raw["chat_id"]
        params: dict[str, Any] = {"text": reply.body}
        group = target.raw.get("chat_type") != "private"
        if reply.private and group:
            # A private answer to a group message goes to the person's chat with the bot;
            # Telegram refuses it (403) unless they have started the bot.
            try:
                params["chat_id"] = int(target.author.id)
            except ValueError:
                raise PermanentError("cannot tell whom to message privately") from None
        else:
            params["chat_id"] = chat_id
            if isinstance(target.raw.get("message_id"), int):
                params["reply_parameters"] = {"message_id": target.raw["message_id"],
                                              "allow_sending_without_reply": True}
        sent = await self._call("sendMessage", params)
        if not isinstance(sent, dict) or not isinstance(sent.get("message_id"), int) \
                or not isinstance(sent.get("chat"), dict):
            raise TransientError(f"malformed answer from Telegram sendMessage: "
                                 f"{describe_json(sent)}", maybe_sent=True)
        at = datetime.fromtimestamp(sent["date"], UTC) if isinstance(sent.get("date"), int) \
            else utcnow()
        sent_chat = sent["chat"].get("id", params["chat_id"])
        remote_id = f"{sent_chat}:{sent['message_id']}"
        url = _message_url(sent["chat"], sent["message_id"])
        bot = self._bot or {}
        message = Message(
            source=self.name, remote_id=remote_id, platform=self.platform,
            kind=Kind.DM if (reply.private or not group) else Kind.REPLY,
            author=Author(id=str(bot.get("id", "")), handle=str(bot.get("username") or ""),
                          name=str(bot.get("first_name") or "")),
            text=reply.body, created_at=at, direction=Direction.OUT,
            thread_key=reply.thread_key or target.thread_key,
            in_reply_to=target.remote_id if "reply_parameters" in params else None,
            url=url,
            raw={"chat_id": sent_chat, "message_id": sent["message_id"],
                 "chat_type": sanitize_line(str(sent["chat"].get("type") or ""))},
        )
        return Receipt(remote_id, url, at, message)

    # -- doctor ----------------------------------------------------------------------
    async def check(self) -> CheckResult:
        try:
            bot = await self._me()
            handle = sanitize_line(str(bot.get("username") or ""))
            details = [f"bot @{handle} (id {bot['id']})"]
            if bot.get("can_read_all_group_messages") is False:
                details.append("group privacy mode is on: in groups the bot sees only "
                               "mentions, replies to it and commands (that is all replydeck "
                               "needs)")
            info = await self._call("getWebhookInfo", {})
            if isinstance(info, dict) and info.get("url"):
                return CheckResult(False, f"Telegram: {WEBHOOK_HELP}", details)
        except RateLimited as exc:
            return CheckResult(True, f"reachable but rate limited: {exc}")
        except (TransientError, PermanentError) as exc:
            return CheckResult(False, str(exc))
        return CheckResult(True, details[0], details[1:])


# -- helpers ---------------------------------------------------------------------------
def _load_offset(cursor: Cursor | None) -> int | None:
    if not cursor:
        return None
    try:
        value = json.loads(cursor)
    except ValueError:
        value = None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PermanentError("the saved Telegram cursor is unreadable; reset this source's "
                             "cursor (pending updates are then read from the oldest)")
    return value


def _utf16_slice(text: str, offset: Any, length: Any) -> str:
    """Entity offsets count UTF-16 code units, not Python characters."""
    if not isinstance(offset, int) or not isinstance(length, int):
        return ""
    units = text.encode("utf-16-le")
    return units[offset * 2:(offset + length) * 2].decode("utf-16-le", errors="replace")


def _mentions(text: str, entities: list[dict[str, Any]], bot: dict[str, Any]) -> bool:
    username = str(bot.get("username") or "").lower()
    for entity in entities:
        kind = entity.get("type")
        if kind == "text_mention":
            user = entity.get("user")
            if isinstance(user, dict) and user.get("id") == bot["id"]:
                return True
        elif kind in ("mention", "bot_command") and username:
            part = _utf16_slice(text, entity.get("offset"), entity.get("length")).lower()
            if (kind == "mention" and part == f"@{username}") or \
                    (kind == "bot_command" and part.endswith(f"@{username}")):
                return True
    return False


def _author(m: dict[str, Any]) -> Author:
    sender = m.get("from") if isinstance(m.get("from"), dict) else None
    if sender is None or (sender.get("is_bot") and isinstance(m.get("sender_chat"), dict)):
        # Anonymous group admins and channels post as a chat.
        chat = m.get("sender_chat") if isinstance(m.get("sender_chat"), dict) else m["chat"]
        handle = sanitize_line(str(chat.get("username") or ""))
        return Author(id=str(chat.get("id", "")), handle=handle,
                      name=sanitize_line(str(chat.get("title") or handle)),
                      url=f"https://t.me/{handle}" if handle else None)
    handle = sanitize_line(str(sender.get("username") or ""))
    name = " ".join(str(sender.get(k) or "") for k in ("first_name", "last_name")).strip()
    return Author(id=str(sender.get("id", "")), handle=handle, name=sanitize_line(name),
                  url=f"https://t.me/{handle}" if handle else None)


def _message_url(chat: dict[str, Any], message_id: int) -> str | None:
    username = chat.get("username")
    if isinstance(username, str) and username and chat.get("type") != "private":
        return f"https://t.me/{sanitize_line(username)}/{message_id}"
    chat_id = chat.get("id")
    if chat.get("type") == "supergroup" and isinstance(chat_id, int) \
            and str(chat_id).startswith("-100"):
        return f"https://t.me/c/{str(chat_id)[4:]}/{message_id}"
    return None
