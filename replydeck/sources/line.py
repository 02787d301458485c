"""LINE Messaging API: messages arrive only by webhook; replies by reply token or push.

Inbound is the webhook receiver (``replydeck webhooks``), which checks
``X-Line-Signature`` with ``channel_secret`` and hands the body to
:meth:`LineSource.webhook_messages`. :meth:`fetch` has nothing to poll and returns an
empty batch (its default interval is an hour).

Threads: a 1:1 chat is ``dm:<userId>``, a group ``group:<groupId>``, a multi-person chat
``room:<roomId>``. Display names come from ``GET /v2/bot/profile/{userId}`` (cached).

Replies:

* within the reply token's minute, on the first attempt, ``POST /v2/bot/message/reply``
  (free; the token is single-use);
* after that ``POST /v2/bot/message/push`` with ``X-Line-Retry-Key``, a UUID derived from
  ``reply.idempotency_key``: LINE accepts one push per key and answers a repeat with 409,
  which means it was already sent. The outbox may therefore resend after a crash.

One case can still duplicate: a crash during the first, reply-token call (the reply API
takes no retry key), if LINE carried it out; the retry then pushes. The window for this is
the duration of one HTTP call.

Config (``type = "line"``): ``token`` (secret: the channel access token),
``channel_secret`` (secret: verifies webhook signatures), ``api_base`` (default
``https://api.line.me``), ``timeout`` (30 s).
"""

from __future__ import annotations

import logging
import uuid
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
    SourceError,
    TransientError,
    describe_json,
)
from replydeck.sources.http import new_client

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.line.me"
#: The reply token must be used within one minute [U: as quoted, not in the OpenAPI text];
#: a margin keeps a slow call from arriving late.
REPLY_TOKEN_TTL = timedelta(seconds=50)
#: LINE sends no Retry-After; its rate limits are per second or per minute.
DEFAULT_BACKOFF = timedelta(seconds=60)
#: Fixed namespace so the same idempotency key always gives the same retry key.
RETRY_KEY_NAMESPACE = uuid.UUID("6f1d3c2e-8d2a-4b7e-9a57-3c1f0e5d4b21")
MEDIA_TYPES = ("image", "video", "audio", "file", "location", "sticker")


def retry_key(idempotency_key: str) -> str:
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, idempotency_key))


class LineSource(BaseSource):
    type_name = "line"
    platform = "line"
    limits = Limits(max_length=5000, counting="chars")
    idempotent_send = True
    can_reconcile = False
    #: Nothing to poll: messages come by webhook.
    default_poll_interval = 3600

    def __init__(self, name: str, *, token: Any, channel_secret: Any,
                 api_base: str = DEFAULT_API_BASE, timeout: float = 30.0) -> None:
        super().__init__(name)
        self._token = token
        self.channel_secret = channel_secret
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._names: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"LineSource({self.name!r}, api_base={self.api_base!r})"

    @classmethod
    def from_config(cls, table: Any) -> LineSource:
        return cls(table.name, token=table.secret("token"),
                   channel_secret=table.secret("channel_secret"),
                   api_base=table.str("api_base", DEFAULT_API_BASE),
                   timeout=table.number("timeout", 30.0, min=0.05))

    # -- HTTP --------------------------------------------------------------------------
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(self.api_base, timeout=self.timeout)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _call(self, method: str, path: str, *, what: str, body: Any = None,
                    headers: dict[str, str] | None = None) -> tuple[int, Any]:
        try:
            token = self._token.resolve()
        except Exception as exc:  # ConfigError names the reference, never the value
            raise AuthError(f"LINE token: {exc}") from None
        mutating = method != "GET"
        try:
            resp = await self._http().request(
                method, path, json=body,
                headers={"Authorization": f"Bearer {token}", **(headers or {})})
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientError(f"cannot reach LINE at {self.api_base} "
                                 f"({type(exc).__name__})") from None
        except httpx.TimeoutException:
            raise TransientError(f"LINE did not answer {what} within {self.timeout:g} s",
                                 maybe_sent=mutating) from None
        except httpx.HTTPError as exc:
            raise TransientError(f"lost the connection to LINE on {what} "
                                 f"({type(exc).__name__})", maybe_sent=mutating) from None
        try:
            data = resp.json()
        except ValueError:
            data = None
        status = resp.status_code
        detail = _detail(data)
        if status == 429:
            if "monthly" in detail.lower() or "quota" in detail.lower():
                raise PermanentError(f"LINE refused {what}: the monthly message quota is "
                                     f"used up ({detail}); replies by reply token still work")
            raise RateLimited(f"LINE rate limit on {what} ({detail})",
                              retry_at=utcnow() + DEFAULT_BACKOFF)
        if status >= 500:
            raise TransientError(f"LINE server error {status} on {what}", maybe_sent=mutating)
        if status == 401:
            raise AuthError("LINE rejected the channel access token (expired or revoked): "
                            "issue a new one in the LINE Developers console (Messaging API "
                            "tab) and store it where the config's token points")
        if status == 403:
            raise AuthError(f"LINE refused {what}: this channel is not allowed to ({detail})")
        if status == 409:
            return status, data  # the retry key was already accepted
        if status >= 400:
            return status, data
        if not isinstance(data, dict):
            raise TransientError(f"malformed answer from LINE on {what}: "
                                 f"{describe_json(data) if data is not None else 'not JSON'}",
                                 maybe_sent=mutating)
        return status, data

    # -- fetch -------------------------------------------------------------------------
    async def fetch(self, cursor: Cursor | None) -> Batch:
        """Nothing to poll: LINE delivers only by webhook (``replydeck webhooks``)."""
        return Batch([], cursor)

    async def display_name(self, user_id: str) -> str:
        if user_id in self._names:
            return self._names[user_id]
        try:
            status, data = await self._call("GET", f"/v2/bot/profile/{user_id}",
                                            what="profile")
        except SourceError:
            return ""  # a name is nice to have; the message matters more
        name = sanitize_line(str(data.get("displayName") or "")) \
            if status == 200 and isinstance(data, dict) else ""
        self._names[user_id] = name
        return name

    async def webhook_messages(self, body: dict[str, Any]) -> list[Message]:
        """Messages from a verified webhook body ``{destination, events[]}``."""
        events = body.get("events")
        if not isinstance(events, list):
            raise ValueError("LINE webhook body without an events list")
        out: list[Message] = []
        for event in events:
            if not isinstance(event, dict) or event.get("type") != "message":
                continue
            try:
                msg = await self._event_message(event)
            except ValueError as exc:
                # One malformed event (shape named, never content) must not drop the rest.
                log.warning("LINE webhook event for %s skipped: %s", self.name, exc)
                continue
            if msg is not None:
                out.append(msg)
        return out

    async def _event_message(self, event: dict[str, Any]) -> Message | None:
        message = event.get("message")
        src = event.get("source")
        stamp = event.get("timestamp")
        if not isinstance(message, dict) or not isinstance(src, dict) \
                or not isinstance(stamp, int) or not isinstance(message.get("id"), str):
            raise ValueError("LINE message event without message id, source or timestamp")
        kind_of_chat = src.get("type")
        user_id = src.get("userId") if isinstance(src.get("userId"), str) else ""
        if kind_of_chat == "group" and isinstance(src.get("groupId"), str):
            to, thread, kind = src["groupId"], f"group:{src['groupId']}", Kind.MENTION
        elif kind_of_chat == "room" and isinstance(src.get("roomId"), str):
            to, thread, kind = src["roomId"], f"room:{src['roomId']}", Kind.MENTION
        elif user_id:
            to, thread, kind = user_id, f"dm:{user_id}", Kind.DM
        else:
            raise ValueError("LINE message event with an unknown source")
        mtype = message.get("type")
        text = message.get("text") if mtype == "text" and isinstance(message.get("text"), str) \
            else f"[{mtype if mtype in MEDIA_TYPES else 'message'}]"
        name = await self.display_name(user_id) if user_id else ""
        token = event.get("replyToken")
        return Message(
            source=self.name, remote_id=message["id"], platform=self.platform, kind=kind,
            author=Author(id=user_id or "unknown", name=name),
            text=sanitize_text(text),
            created_at=datetime.fromtimestamp(stamp / 1000, UTC),
            thread_key=thread,
            raw={"to": to, "reply_token": token if isinstance(token, str) else None,
                 "event_ms": stamp,
                 "webhook_event_id": event.get("webhookEventId")
                 if isinstance(event.get("webhookEventId"), str) else None,
                 "quote_token": message.get("quoteToken")
                 if isinstance(message.get("quoteToken"), str) else None},
        )

    # -- send --------------------------------------------------------------------------
    async def send(self, reply: Reply) -> Receipt:
        result = textlen.check_reply(reply.body, self.limits, reply.private)
        if not result.ok:
            raise PermanentError(f"too long for a LINE message: {result.describe()}")
        if not reply.body.strip():
            raise PermanentError("an empty reply cannot be sent to LINE")
        target = reply.reply_to
        to = target.raw.get("to") if target is not None else None
        if target is None or not isinstance(to, str) or not to:
            raise PermanentError("nothing to reply to: the conversation has no LINE message "
                                 "with a chat id")
        messages = [{"type": "text", "text": reply.body}]
        token = target.raw.get("reply_token")
        event_ms = target.raw.get("event_ms")
        fresh = isinstance(token, str) and isinstance(event_ms, int) and \
            utcnow() - datetime.fromtimestamp(event_ms / 1000, UTC) < REPLY_TOKEN_TTL
        if fresh and reply.attempts <= 1:
            status, data = await self._call("POST", "/v2/bot/message/reply", what="reply",
                                            body={"replyToken": token, "messages": messages})
            if status == 200:
                return self._receipt(reply, target, data, to)
            if "reply token" not in _detail(data).lower():
                raise PermanentError(f"LINE refused the reply: {_detail(data)}")
            # The token expired on the way: push instead (below).
        key = retry_key(reply.idempotency_key)
        status, data = await self._call("POST", "/v2/bot/message/push", what="push",
                                        body={"to": to, "messages": messages},
                                        headers={"X-Line-Retry-Key": key})
        if status in (200, 409):
            # 409: this retry key was already accepted: an earlier attempt went out.
            return self._receipt(reply, target, data, to, fallback=f"push:{key}")
        raise PermanentError(f"LINE refused the push message: {_detail(data)}")

    def _receipt(self, reply: Reply, target: Message, data: Any, to: str,
                 fallback: str | None = None) -> Receipt:
        sent = data.get("sentMessages") if isinstance(data, dict) else None
        first = sent[0] if isinstance(sent, list) and sent and isinstance(sent[0], dict) \
            else {}
        remote_id = first.get("id") if isinstance(first.get("id"), str) else None
        remote_id = remote_id or fallback or f"reply:{retry_key(reply.idempotency_key)}"
        at = utcnow()
        message = Message(
            source=self.name, remote_id=remote_id, platform=self.platform,
            kind=Kind.DM if target.kind == Kind.DM else Kind.REPLY,
            author=Author(id="bot"), text=reply.body, created_at=at,
            direction=Direction.OUT, thread_key=reply.thread_key or target.thread_key,
            in_reply_to=target.remote_id, raw={"to": to},
        )
        return Receipt(remote_id, None, at, message)

    # -- doctor --------------------------------------------------------------------------
    async def check(self) -> CheckResult:
        try:
            self.channel_secret.resolve()
        except Exception as exc:
            return CheckResult(False, f"LINE channel_secret: {exc}")
        try:
            status, data = await self._call("GET", "/v2/bot/info", what="bot info")
        except RateLimited as exc:
            return CheckResult(True, f"reachable but rate limited: {exc}")
        except SourceError as exc:
            return CheckResult(False, str(exc))
        if status != 200 or not isinstance(data, dict):
            return CheckResult(False, f"LINE refused bot info: {_detail(data)}")
        name = sanitize_line(str(data.get("displayName") or ""))
        basic = sanitize_line(str(data.get("basicId") or ""))
        return CheckResult(True, f"LINE bot {name!r} ({basic})",
                           ["messages arrive by webhook only: run `replydeck webhooks` and "
                            "set the webhook URL in the LINE Developers console"])


def _detail(data: Any) -> str:
    if isinstance(data, dict):
        text = sanitize_line(str(data.get("message") or ""))[:300]
        details = data.get("details")
        if isinstance(details, list) and details and isinstance(details[0], dict):
            extra = sanitize_line(str(details[0].get("message") or ""))[:200]
            if extra:
                text = f"{text} ({extra})" if text else extra
        return text or "no details given"
    return "no details given"
