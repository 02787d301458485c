"""Bluesky (AT Protocol): mentions, replies, quotes and DMs in; replies out (PLATFORMS.md §2).

* Session: ``createSession`` once per source object, ``refreshSession`` with the refresh
  JWT on ``ExpiredToken``, a new session only when the refresh token is dead too. Nothing
  secret ever goes into the cursor.
* Inbound: ``listNotifications`` (newest first) read back to the last seen point
  (``indexedAt`` + the uris seen at that instant), following ``cursor`` to older pages so
  a burst larger than a page is not lost. Our own replies written elsewhere come from
  ``getAuthorFeed`` as outbound messages. Followers from ``getProfiles`` (25 per call).
* DMs: the chat service through the PDS (``atproto-proxy`` header): ``getLog`` with its
  ``rev`` cursor, ``sendMessage``. App passwords without DM access get "Bad token scope":
  DMs are then switched off with a clear notice while public items keep flowing.
* Replies: ``createRecord`` with our own TID ``rkey`` derived from the idempotency key and
  the time the reply was queued; a
  resend hits the existing record (the PDS refuses it, with a 500 in practice), which we
  detect with ``getRecord`` and report as sent.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from replydeck.config.errors import ConfigError
from replydeck.config.secrets import Secret
from replydeck.inbox.model import UTC, Author, Direction, Kind, Message, Reply, utcnow
from replydeck.inbox.sanitize import sanitize_line, sanitize_text
from replydeck.inbox.textlen import count as text_count
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
from replydeck.sources.bluesky_richtext import build_facets, expand_links, find_spans, tid_from_key
from replydeck.sources.http import new_client

log = logging.getLogger(__name__)

DEFAULT_SERVICE = "https://bsky.social"
CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"
POST = "app.bsky.feed.post"
MAX_GRAPHEMES = 300
MAX_BYTES = 3000
DM_MAX_GRAPHEMES = 1000
DM_MAX_BYTES = 10000
PROFILE_BATCH = 25
#: After the chat service failed (not a scope problem), try it again this much later.
DM_RETRY_AFTER = timedelta(minutes=30)
FALLBACK_RETRY = timedelta(seconds=60)
REASONS = ("mention", "reply", "quote")
NO_DM_SCOPE = ("app password without DM access: create an app password with "
               "\"Allow access to your direct messages\" to answer DMs "
               "(public mentions and replies still work)")


class XrpcError(PermanentError):
    """A 4xx answer; ``error`` is the XRPC error name (``RecordNotFound``, ...)."""

    def __init__(self, message: str, *, status: int, error: str, detail: str) -> None:
        super().__init__(message)
        self.status, self.error, self.detail = status, error, detail


class XrpcAuthError(AuthError):
    def __init__(self, message: str, *, status: int, error: str, detail: str) -> None:
        super().__init__(message)
        self.status, self.error, self.detail = status, error, detail


class _Malformed(Exception):
    pass


def _req(obj: Any, key: str, typ: type | tuple[type, ...]) -> Any:
    if not isinstance(obj, dict):
        raise _Malformed(f"expected an object, found {describe_json(obj)}")
    value = obj.get(key)
    if not isinstance(value, typ):
        raise _Malformed(f"field {key!r} missing or of the wrong type in {describe_json(obj)}")
    return value


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def iso_now() -> str:
    now = utcnow()
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def rkey_of(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def did_of(uri: str) -> str:
    return uri.removeprefix("at://").split("/", 1)[0]


@dataclass
class _Session:
    access: str
    refresh: str
    did: str
    handle: str

    def __repr__(self) -> str:  # tokens never shown
        return f"_Session(did={self.did!r}, handle={self.handle!r})"


@dataclass
class _Mark:
    """The newest point seen in a newest-first list: its time and the uris at that time."""

    t: datetime | None
    uris: set[str]

    @classmethod
    def load(cls, t: Any, uris: Any) -> _Mark:
        return cls(parse_time(t), {u for u in uris or [] if isinstance(u, str)})

    def is_seen(self, uri: str, t: datetime) -> bool:
        return self.t is not None and (t < self.t or (t == self.t and uri in self.uris))

    def advance(self, uri: str, t: datetime) -> None:
        if self.t is None or t > self.t:
            self.t, self.uris = t, {uri}
        elif t == self.t:
            self.uris.add(uri)

    def dump(self) -> tuple[str | None, list[str]]:
        if self.t is None:
            return None, []
        return self.t.isoformat().replace("+00:00", "Z"), sorted(self.uris)


class BlueskySource(BaseSource):
    type_name = "bluesky"
    platform = "bluesky"
    idempotent_send = True

    def __init__(self, name: str, *, service: str = DEFAULT_SERVICE, handle: str,
                 app_password: Secret, timeout: float = 30.0, page_limit: int = 100,
                 max_pages: int = 50, chat_proxy: str = CHAT_PROXY) -> None:
        super().__init__(name)
        self.service = service.rstrip("/")
        self.handle = handle.lstrip("@").lower()
        self._password = app_password
        self.timeout = timeout
        self.page_limit = page_limit
        self.max_pages = max_pages
        self.chat_proxy = chat_proxy
        self.limits = Limits(max_length=MAX_GRAPHEMES, counting="graphemes",
                             private_max_length=DM_MAX_GRAPHEMES,
                             private_counting="graphemes")
        self._client: httpx.AsyncClient | None = None
        self._session: _Session | None = None
        self._not_before: datetime | None = None
        self._followers: dict[str, int] = {}
        self._dids: dict[str, str] = {}
        #: Why DMs are off (shown by doctor and the status bar), None while they work.
        self.dm_notice: str | None = None
        self._dm_scope_missing = False
        self._dm_retry_at: datetime | None = None
        self.sessions_created = 0

    def __repr__(self) -> str:
        return f"BlueskySource(name={self.name!r}, handle={self.handle!r})"

    @property
    def notice(self) -> str | None:
        """A short status line for the UI when part of the source is degraded."""
        return f"DMs off: {self.dm_notice}" if self.dm_notice else None

    @classmethod
    def from_config(cls, table: Any) -> BlueskySource:
        service = table.str("service", DEFAULT_SERVICE)
        split = urlsplit(service)
        loopback = split.hostname in ("127.0.0.1", "localhost", "::1")
        if not split.hostname or split.scheme not in ("https", "http") or (
                split.scheme == "http" and not loopback):
            raise table.error("service", "expected an https:// URL such as "
                              f"'https://bsky.social', found {service!r}")
        handle = table.str("handle")
        if "." not in handle.lstrip("@") or any(c.isspace() for c in handle):
            raise table.error("handle", "expected a handle such as 'acme.bsky.social' or "
                              f"a DID, found {handle!r}")
        return cls(table.name, service=service, handle=handle,
                   app_password=table.secret("app_password"))

    # -- HTTP ------------------------------------------------------------------------
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(self.service, timeout=self.timeout,
                                      headers={"Accept": "application/json"})
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _http_call(self, method: str, nsid: str, *, params: Any, body: Any,
                         token: str | None, proxy: bool, what: str) -> httpx.Response:
        headers: dict[str, str] = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if proxy:
            headers["atproto-proxy"] = self.chat_proxy
        try:
            resp = await self._http().request(method, f"/xrpc/{nsid}", params=params,
                                              json=body, headers=headers)
        except httpx.TimeoutException:
            raise TransientError(f"{self.service} did not answer within {self.timeout:g} s "
                                 f"({what})") from None
        except httpx.HTTPError as exc:
            raise TransientError(f"cannot reach {self.service} ({what}): "
                                 f"{type(exc).__name__}") from None
        reset = _epoch(resp.headers.get("RateLimit-Reset"))
        remaining = resp.headers.get("RateLimit-Remaining")
        if reset is not None and remaining is not None and remaining.strip() == "0":
            self._not_before = max(self._not_before or reset, reset)
        if resp.status_code == 429:
            retry_at = _retry_after(resp.headers.get("Retry-After")) or reset \
                or utcnow() + FALLBACK_RETRY
            raise RateLimited(f"Bluesky rate limit reached ({what}); allowed again at "
                              f"{retry_at:%H:%M:%S} UTC", retry_at=retry_at)
        return resp

    @staticmethod
    def _decode(resp: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise TransientError(f"malformed answer from Bluesky ({what}): "
                                 f"{describe_json(body if body is not None else resp.text[:80])}")
        return body

    @staticmethod
    def _error_of(resp: httpx.Response) -> tuple[str, str]:
        try:
            body = resp.json()
        except ValueError:
            return "", ""
        if not isinstance(body, dict):
            return "", ""
        err, msg = body.get("error"), body.get("message")
        return (sanitize_line(err)[:80] if isinstance(err, str) else "",
                sanitize_line(msg)[:200] if isinstance(msg, str) else "")

    def _failure(self, resp: httpx.Response, what: str) -> Exception:
        status = resp.status_code
        err, msg = self._error_of(resp)
        if status >= 500:
            return TransientError(f"Bluesky server error {status} ({what})"
                                  + (f": {err}" if err else ""))
        detail = f"{err}: {msg}" if err and msg else err or msg or str(status)
        if status in (401, 403) or err in ("InvalidToken", "ExpiredToken",
                                           "AuthenticationRequired", "AccountTakedown"):
            return XrpcAuthError(f"Bluesky refused {what} ({detail})", status=status,
                                 error=err, detail=msg)
        return XrpcError(f"Bluesky refused {what} ({detail})", status=status, error=err,
                         detail=msg)

    # -- session ---------------------------------------------------------------------
    async def _create_session(self) -> _Session:
        try:
            password = self._password.resolve()
        except ConfigError as exc:
            raise AuthError(f"cannot read the Bluesky app password: {exc}") from None
        resp = await self._http_call(
            "POST", "com.atproto.server.createSession", params=None,
            body={"identifier": self.handle, "password": password}, token=None,
            proxy=False, what="sign-in")
        if resp.status_code >= 300:
            exc = self._failure(resp, "sign-in")
            if isinstance(exc, XrpcAuthError) or (isinstance(exc, XrpcError)
                                                  and exc.status == 400):
                raise AuthError(f"wrong handle or app password for @{self.handle} on "
                                f"{self.service} ({exc.error or exc.status}): create an "
                                "app password in Settings > Privacy and security") from None
            raise exc
        body = self._decode(resp, "sign-in")
        try:
            self._session = _Session(_req(body, "accessJwt", str), _req(body, "refreshJwt", str),
                                     _req(body, "did", str), _req(body, "handle", str))
        except _Malformed as exc:
            raise TransientError(f"malformed answer from Bluesky (sign-in): {exc}") from None
        self.sessions_created += 1
        return self._session

    async def _refresh_session(self) -> _Session:
        assert self._session is not None
        resp = await self._http_call(
            "POST", "com.atproto.server.refreshSession", params=None, body=None,
            token=self._session.refresh, proxy=False, what="session refresh")
        if resp.status_code >= 300:
            exc = self._failure(resp, "session refresh")
            if isinstance(exc, (XrpcAuthError, XrpcError)):
                # The refresh token expired or was revoked: sign in again.
                self._session = None
                return await self._create_session()
            raise exc
        body = self._decode(resp, "session refresh")
        try:
            self._session = _Session(_req(body, "accessJwt", str), _req(body, "refreshJwt", str),
                                     _req(body, "did", str), _req(body, "handle", str))
        except _Malformed as exc:
            raise TransientError(f"malformed answer from Bluesky (refresh): {exc}") from None
        return self._session

    async def _me(self) -> _Session:
        return self._session or await self._create_session()

    async def _call(self, method: str, nsid: str, *, params: Any = None, body: Any = None,
                    proxy: bool = False, what: str, auth: bool = True) -> dict[str, Any]:
        for attempt in range(2):
            token = (await self._me()).access if auth else None
            resp = await self._http_call(method, nsid, params=params, body=body, token=token,
                                         proxy=proxy, what=what)
            if resp.status_code < 300:
                return self._decode(resp, what)
            exc = self._failure(resp, what)
            if attempt == 0 and auth and isinstance(exc, XrpcAuthError):
                if exc.error == "ExpiredToken":
                    await self._refresh_session()
                    continue
                if exc.error == "InvalidToken" and "scope" not in exc.detail.lower() \
                        and "method" not in exc.detail.lower():
                    # Session revoked on the server: a fresh sign-in may fix it.
                    self._session = None
                    continue
            raise exc
        raise AssertionError("unreachable")

    # -- profiles and handles --------------------------------------------------------
    async def _load_followers(self, dids: Iterable[str]) -> None:
        missing = sorted({d for d in dids if d not in self._followers})
        for i in range(0, len(missing), PROFILE_BATCH):
            batch = missing[i:i + PROFILE_BATCH]
            try:
                body = await self._call("GET", "app.bsky.actor.getProfiles",
                                        params={"actors": batch}, what="profiles")
            except RateLimited:
                raise
            except (TransientError, XrpcError):
                return  # follower counts are a nicety: the items still go through
            for p in body.get("profiles") or []:
                if isinstance(p, dict) and isinstance(p.get("did"), str) \
                        and isinstance(p.get("followersCount"), int):
                    self._followers[p["did"]] = p["followersCount"]

    async def _resolve_handle(self, handle: str) -> str | None:
        if handle not in self._dids:
            try:
                body = await self._call("GET", "com.atproto.identity.resolveHandle",
                                        params={"handle": handle}, what="handle lookup",
                                        auth=False)
            except XrpcError:
                return None  # unknown handle: the text stays plain, without a facet
            did = body.get("did")
            if not isinstance(did, str):
                return None
            self._dids[handle] = did
        return self._dids[handle]

    def _author(self, actor: dict[str, Any]) -> Author:
        did = _req(actor, "did", str)
        handle = sanitize_line(actor["handle"]) if isinstance(actor.get("handle"), str) else ""
        name = actor.get("displayName") if isinstance(actor.get("displayName"), str) else ""
        return Author(
            id=did, handle=handle, name=sanitize_line(name) or handle,
            followers=self._followers.get(did),
            url=f"https://bsky.app/profile/{handle or sanitize_line(did)}")

    # -- posts -----------------------------------------------------------------------
    def _post_message(self, me: _Session, *, uri: str, cid: str, actor: dict[str, Any],
                      record: dict[str, Any], when: datetime, reason: str) -> Message:
        text = record.get("text") if isinstance(record.get("text"), str) else ""
        text = expand_links(text, record.get("facets"))
        ref = {"uri": uri, "cid": cid}
        reply = record.get("reply") if isinstance(record.get("reply"), dict) else {}
        root = reply.get("root") if isinstance(reply.get("root"), dict) else None
        parent = reply.get("parent") if isinstance(reply.get("parent"), dict) else None
        if not (root and isinstance(root.get("uri"), str) and isinstance(root.get("cid"), str)):
            root = ref
        author = self._author(actor)
        direction = Direction.OUT if author.id == me.did else Direction.IN
        kind = Kind.REPLY if reason == "reply" else Kind.MENTION
        langs = record.get("langs")
        return Message(
            source=self.name, remote_id=uri, platform=self.platform, kind=kind, author=author,
            text=sanitize_text(text), created_at=when, direction=direction,
            thread_key=f"post:{root['uri']}",
            in_reply_to=parent.get("uri") if parent and isinstance(parent.get("uri"), str)
            else None,
            url=f"https://bsky.app/profile/{author.handle or author.id}/post/{rkey_of(uri)}",
            language=langs[0] if isinstance(langs, list) and langs
            and isinstance(langs[0], str) else None,
            raw={"uri": uri, "cid": cid, "root": {"uri": root["uri"], "cid": root["cid"]},
                 "author_did": author.id, "reason": reason},
        )

    async def _walk(self, nsid: str, params: dict[str, Any], key: str, mark: _Mark,
                    what: str) -> list[dict[str, Any]]:
        """Newest-first pages back to ``mark`` (only page 1 on the first run)."""
        out: list[dict[str, Any]] = []
        page_cursor: str | None = None
        for _ in range(self.max_pages):
            query = dict(params, limit=self.page_limit)
            if page_cursor:
                query["cursor"] = page_cursor
            body = await self._call("GET", nsid, params=query, what=what)
            entries = body.get(key)
            if not isinstance(entries, list):
                raise TransientError(f"malformed answer from Bluesky ({what}): "
                                     f"{describe_json(body)}")
            reached = False
            for entry in entries:
                item = entry.get("post", entry) if isinstance(entry, dict) else entry
                uri, t = _req(item, "uri", str), parse_time(_req(item, "indexedAt", str))
                if t is None:
                    raise _Malformed(f"{uri}: indexedAt is not a time")
                if mark.is_seen(uri, t):
                    if t < (mark.t or t):
                        reached = True
                        break
                    continue
                out.append(entry)
            nxt = body.get("cursor")
            if reached or mark.t is None or not entries or not isinstance(nxt, str) \
                    or nxt == page_cursor:
                break
            page_cursor = nxt
        return out

    async def _fetch_public(self, me: _Session, state: dict[str, Any]) -> tuple[
            list[Message], dict[str, Any]]:
        mark = _Mark.load(state.get("t"), state.get("u"))
        notes = await self._walk("app.bsky.notification.listNotifications",
                                 {"reasons": list(REASONS)}, "notifications", mark,
                                 "notifications")
        entries = []
        for n in notes:
            if n.get("reason") not in REASONS:
                continue
            record = _req(n, "record", dict)
            entries.append((n, record))
        await self._load_followers(_req(_req(n, "author", dict), "did", str)
                                   for n, _ in entries)
        items: list[Message] = []
        for n in notes:
            mark_t = parse_time(n["indexedAt"])
            assert mark_t is not None
            mark.advance(n["uri"], mark_t)
        for n, record in entries:
            when = parse_time(n["indexedAt"])
            assert when is not None
            items.append(self._post_message(
                me, uri=n["uri"], cid=_req(n, "cid", str), actor=_req(n, "author", dict),
                record=record, when=when, reason=n["reason"]))
        # Our own replies written in other apps: outbound messages in their threads.
        own_mark = _Mark.load(state.get("ot"), state.get("ou"))
        first_own = own_mark.t is None
        feed = await self._walk("app.bsky.feed.getAuthorFeed",
                                {"actor": me.did, "filter": "posts_with_replies"}, "feed",
                                own_mark, "own posts")
        for entry in feed:
            post = _req(entry, "post", dict)
            t = parse_time(post["indexedAt"])
            assert t is not None
            own_mark.advance(post["uri"], t)
            record = _req(post, "record", dict)
            if first_own or entry.get("reason") or not isinstance(record.get("reply"), dict):
                continue  # the first run only sets the start; reposts and top posts answer nobody
            items.append(self._post_message(
                me, uri=post["uri"], cid=_req(post, "cid", str), actor=_req(post, "author", dict),
                record=record, when=t, reason="reply"))
        # An empty first read still ends the first run: from then on everything is new.
        if mark.t is None:
            mark.t = datetime(1970, 1, 1, tzinfo=UTC)
        if own_mark.t is None:
            own_mark.t = datetime(1970, 1, 1, tzinfo=UTC)
        t, u = mark.dump()
        ot, ou = own_mark.dump()
        return items, {"t": t, "u": u, "ot": ot, "ou": ou}

    # -- DMs -------------------------------------------------------------------------
    def _dm_failed(self, exc: Exception) -> None:
        before = self.dm_notice
        self._set_dm_failure(exc)
        if self.dm_notice != before:
            log.warning("source %s: DMs off: %s", self.name, self.dm_notice)

    def _set_dm_failure(self, exc: Exception) -> None:
        detail = getattr(exc, "detail", "") or str(exc)
        if isinstance(exc, (XrpcAuthError, XrpcError)) and (
                "scope" in detail.lower() or "method" in detail.lower()
                or isinstance(exc, XrpcAuthError)):
            self._dm_scope_missing = True
            self.dm_notice = NO_DM_SCOPE
            self.limits = dataclasses.replace(self.limits, supports_private=False)
        else:
            self.dm_notice = (f"the chat service is not available through {self.service} "
                              f"({sanitize_line(str(exc))[:160]})")
            self._dm_retry_at = utcnow() + DM_RETRY_AFTER

    def _dms_usable(self) -> bool:
        if self._dm_scope_missing:
            return False
        return self._dm_retry_at is None or utcnow() >= self._dm_retry_at

    async def _chat(self, method: str, nsid: str, *, params: Any = None, body: Any = None,
                    what: str) -> dict[str, Any]:
        return await self._call(method, nsid, params=params, body=body, proxy=True, what=what)

    def _dm_message(self, me: _Session, convo_id: str, msg: dict[str, Any],
                    profiles: dict[str, dict[str, Any]]) -> Message:
        mid = _req(msg, "id", str)
        sender = _req(_req(msg, "sender", dict), "did", str)
        when = parse_time(msg.get("sentAt")) or utcnow()
        actor = profiles.get(sender) or {"did": sender}
        text = expand_links(msg.get("text") if isinstance(msg.get("text"), str) else "",
                            msg.get("facets"))
        return Message(
            source=self.name, remote_id=f"dm:{convo_id}:{mid}", platform=self.platform,
            kind=Kind.DM, author=self._author(actor), text=sanitize_text(text),
            created_at=when,
            direction=Direction.OUT if sender == me.did else Direction.IN,
            thread_key=f"dm:{convo_id}", url=None,
            raw={"convo_id": convo_id, "message_id": mid, "sender_did": sender,
                 "rev": msg.get("rev")})

    async def _fetch_dms(self, me: _Session, rev: str | None) -> tuple[list[Message], str | None]:
        if not self._dms_usable():
            return [], rev
        items: list[Message] = []
        cursor = rev
        try:
            for _ in range(self.max_pages):
                body = await self._chat("GET", "chat.bsky.convo.getLog",
                                        params={"cursor": cursor} if cursor else None,
                                        what="DM log")
                logs = body.get("logs")
                if not isinstance(logs, list):
                    raise TransientError(f"malformed answer from Bluesky (DM log): "
                                         f"{describe_json(body)}")
                profiles: dict[str, dict[str, Any]] = {}
                pending: list[tuple[str, dict[str, Any]]] = []
                for log in logs:
                    if not isinstance(log, dict) or not str(log.get("$type", "")).endswith(
                            "#logCreateMessage"):
                        continue
                    msg = _req(log, "message", dict)
                    if not str(msg.get("$type", "#messageView")).endswith("#messageView"):
                        continue  # deleted message
                    for p in log.get("relatedProfiles") or []:
                        if isinstance(p, dict) and isinstance(p.get("did"), str):
                            profiles[p["did"]] = p
                    pending.append((_req(log, "convoId", str), msg))
                senders = {_req(_req(m, "sender", dict), "did", str) for _, m in pending}
                await self._load_followers(senders)
                items += [self._dm_message(me, c, m, profiles) for c, m in pending]
                nxt = body.get("cursor")
                if not logs or not isinstance(nxt, str) or nxt == cursor:
                    cursor = nxt if isinstance(nxt, str) else cursor
                    break
                cursor = nxt
        except (RateLimited, _Malformed):
            raise
        except AuthError as exc:
            if not isinstance(exc, XrpcAuthError):
                raise  # the account itself (password changed): not a DM problem
            self._dm_failed(exc)
            return [], rev
        except (TransientError, PermanentError) as exc:
            # The chat service is optional: note why and let the public items through,
            # keeping the DM cursor where it was.
            self._dm_failed(exc)
            return [], rev
        self.dm_notice = None
        self._dm_retry_at = None
        return items, cursor

    # -- fetch -----------------------------------------------------------------------
    async def fetch(self, cursor: Cursor | None) -> Batch:
        state = _load_cursor(cursor)
        self._not_before = None
        me = await self._me()
        try:
            items, public_state = await self._fetch_public(me, state)
            dms, rev = await self._fetch_dms(me, state.get("dm"))
        except _Malformed as exc:
            raise TransientError(f"malformed answer from Bluesky: {exc}") from None
        new_state = dict(public_state, dm=rev)
        seen: set[str] = set()
        unique = []
        for m in [*items, *dms]:
            if m.remote_id not in seen:
                seen.add(m.remote_id)
                unique.append(m)
        unique.sort(key=lambda m: m.created_at)
        return Batch(items=unique, cursor=json.dumps(new_state, separators=(",", ":")),
                     not_before=self._not_before)

    # -- send ------------------------------------------------------------------------
    def _check_length(self, text: str, private: bool) -> None:
        graphemes = text_count(text, "graphemes")
        size = len(text.encode("utf-8", errors="surrogatepass"))
        max_g, max_b = (DM_MAX_GRAPHEMES, DM_MAX_BYTES) if private else (MAX_GRAPHEMES,
                                                                         MAX_BYTES)
        where = "Bluesky DM" if private else "Bluesky post"
        if graphemes > max_g:
            raise PermanentError(f"reply too long for a {where}: {graphemes}/{max_g} "
                                 "characters")
        if size > max_b:
            raise PermanentError(f"reply too long for a {where}: {size}/{max_b} bytes")

    async def send(self, reply: Reply) -> Receipt:
        target = reply.reply_to
        if target is None:
            raise PermanentError("nothing to reply to: the conversation has no customer "
                                 "message from this Bluesky account")
        if reply.private or target.kind == Kind.DM:
            return await self._send_dm(reply, target)
        return await self._send_post(reply, target)

    async def _facets(self, text: str, skip_did: str | None = None) -> list[dict[str, Any]]:
        spans = find_spans(text)
        dids: dict[str, str] = {}
        for s in spans:
            if s.kind == "mention" and s.value not in dids:
                did = await self._resolve_handle(s.value)
                # The AppView turns a reply that also mentions the parent's author into a
                # plain "mention" for them; the reply itself already notifies them.
                if did and did != skip_did:
                    dids[s.value] = did
        return build_facets(spans, dids)

    async def _send_post(self, reply: Reply, target: Message) -> Receipt:
        self._check_length(reply.body, private=False)
        raw = target.raw or {}
        uri, cid = raw.get("uri"), raw.get("cid")
        if not (isinstance(uri, str) and isinstance(cid, str)):
            raise PermanentError("cannot reply on Bluesky: the message has no post uri/cid")
        parent = {"uri": uri, "cid": cid}
        root = raw.get("root") if isinstance(raw.get("root"), dict) else parent
        me = await self._me()
        record: dict[str, Any] = {"$type": POST, "text": reply.body, "createdAt": iso_now(),
                                  "reply": {"root": root, "parent": parent}}
        facets = await self._facets(reply.body, skip_did=did_of(uri))
        if facets:
            record["facets"] = facets
        rkey = tid_from_key(reply.idempotency_key, reply.created_at)
        try:
            body = await self._call("POST", "com.atproto.repo.createRecord",
                                    body={"repo": me.did, "collection": POST, "rkey": rkey,
                                          "record": record}, what="posting the reply")
            new_uri, new_cid = _req(body, "uri", str), _req(body, "cid", str)
            sent_text, sent_at = reply.body, utcnow()
        except (TransientError, XrpcError, _Malformed) as exc:
            # Maybe it is already there (a resend after a crash, or an answer lost on the
            # way back): the record at our rkey says so.
            existing = await self._existing_record(me, rkey)
            if existing is None:
                if isinstance(exc, _Malformed):
                    raise TransientError(f"malformed answer from Bluesky: {exc}") from None
                raise
            new_uri, new_cid, sent_text, sent_at = existing
        msg = Message(
            source=self.name, remote_id=new_uri, platform=self.platform, kind=target.kind,
            author=Author(id=me.did, handle=sanitize_line(me.handle),
                          name=sanitize_line(me.handle),
                          url=f"https://bsky.app/profile/{me.handle}"),
            text=sanitize_text(sent_text), created_at=sent_at, direction=Direction.OUT,
            thread_key=reply.thread_key or f"post:{root['uri']}", in_reply_to=uri,
            url=f"https://bsky.app/profile/{me.handle}/post/{rkey_of(new_uri)}",
            raw={"uri": new_uri, "cid": new_cid, "root": root, "author_did": me.did})
        return Receipt(remote_id=new_uri, url=msg.url, sent_at=sent_at, message=msg)

    async def _existing_record(self, me: _Session, rkey: str
                               ) -> tuple[str, str, str, datetime] | None:
        try:
            body = await self._call("GET", "com.atproto.repo.getRecord",
                                    params={"repo": me.did, "collection": POST, "rkey": rkey},
                                    what="checking for the reply")
        except (TransientError, PermanentError):
            return None
        value = body.get("value") if isinstance(body.get("value"), dict) else {}
        uri, cid = body.get("uri"), body.get("cid")
        if not (isinstance(uri, str) and isinstance(cid, str)):
            return None
        text = value.get("text") if isinstance(value.get("text"), str) else ""
        return uri, cid, text, parse_time(value.get("createdAt")) or utcnow()

    async def _send_dm(self, reply: Reply, target: Message) -> Receipt:
        if self._dm_scope_missing:
            raise AuthError(f"cannot send a Bluesky DM: {NO_DM_SCOPE}")
        self._check_length(reply.body, private=True)
        me = await self._me()
        raw = target.raw or {}
        try:
            convo_id = raw.get("convo_id")
            if not isinstance(convo_id, str):
                author_did = raw.get("author_did") or target.author.id
                body = await self._chat("GET", "chat.bsky.convo.getConvoForMembers",
                                        params={"members": [author_did]}, what="DM lookup")
                convo_id = _req(_req(body, "convo", dict), "id", str)
            # No idempotency key for DMs: a resend first looks for the same text from us.
            since = (reply.created_at or utcnow()) - timedelta(minutes=1)
            existing = await self._find_dm(me, convo_id, reply.body, since)
            if existing is None:
                message: dict[str, Any] = {"text": reply.body}
                facets = await self._facets(reply.body)
                if facets:
                    message["facets"] = facets
                existing = await self._chat("POST", "chat.bsky.convo.sendMessage",
                                            body={"convoId": convo_id, "message": message},
                                            what="sending the DM")
            msg = self._dm_message(me, convo_id, existing, {me.did: {
                "did": me.did, "handle": me.handle}})
        except _Malformed as exc:
            raise TransientError(f"malformed answer from Bluesky: {exc}") from None
        except XrpcError as exc:
            raise PermanentError(f"cannot send a Bluesky DM: {exc}") from None
        except XrpcAuthError as exc:
            if "scope" in exc.detail.lower() or "method" in exc.detail.lower():
                self._dm_failed(exc)
                raise AuthError(f"cannot send a Bluesky DM: {NO_DM_SCOPE}") from None
            raise
        if reply.thread_key:
            msg.thread_key = reply.thread_key
        return Receipt(remote_id=msg.remote_id, url=None, sent_at=msg.created_at, message=msg)

    async def _find_dm(self, me: _Session, convo_id: str, text: str, since: datetime
                       ) -> dict[str, Any] | None:
        body = await self._chat("GET", "chat.bsky.convo.getMessages",
                                params={"convoId": convo_id, "limit": 30},
                                what="recent DMs")
        for m in body.get("messages") or []:
            if not isinstance(m, dict) or m.get("text") != text:
                continue
            sender = m.get("sender")
            sent = parse_time(m.get("sentAt"))
            if isinstance(sender, dict) and sender.get("did") == me.did and sent \
                    and sent >= since:
                return m
        return None

    # -- doctor ----------------------------------------------------------------------
    async def check(self) -> CheckResult:
        details: list[str] = []
        try:
            if not self.handle.startswith("did:"):
                try:
                    await self._call("GET", "com.atproto.identity.resolveHandle",
                                     params={"handle": self.handle}, what="handle lookup",
                                     auth=False)
                except XrpcError as exc:
                    if exc.error == "HandleNotFound" or exc.status == 400:
                        return CheckResult(False, f"account not found: @{self.handle} does "
                                           f"not resolve on {self.service}", details)
                    raise
            me = await self._me()
            details.append(f"signed in as @{sanitize_line(me.handle)} ({me.did})")
            await self._call("GET", "app.bsky.notification.listNotifications",
                             params={"limit": 1}, what="notifications")
            details.append("notifications: readable")
            try:
                await self._chat("GET", "chat.bsky.convo.listConvos", params={"limit": 1},
                                 what="DM access")
                self.dm_notice = None
                details.append("DMs: available")
            except RateLimited:
                raise
            except (TransientError, PermanentError) as exc:
                self._dm_failed(exc)
                details.append(f"DMs: off: {self.dm_notice}")
        except AuthError as exc:
            return CheckResult(False, str(exc), details)
        except TransientError as exc:
            return CheckResult(False, f"cannot check now: {exc}", details)
        except PermanentError as exc:
            return CheckResult(False, str(exc), details)
        summary = f"ok: @{sanitize_line(me.handle)}"
        if self.dm_notice:
            summary += f" (DMs off: {self.dm_notice})"
        return CheckResult(True, summary, details)


def _epoch(value: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(str(value).strip()), UTC) if value else None
    except (ValueError, OverflowError, OSError):
        return None


def _retry_after(value: str | None) -> datetime | None:
    try:
        secs = float(str(value).strip()) if value else None
    except ValueError:
        return None
    return utcnow() + timedelta(seconds=secs) if secs is not None and secs >= 0 else None


def _load_cursor(cursor: Cursor | None) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise PermanentError("saved Bluesky cursor is unreadable; reset this source's "
                             "cursor to start again from the newest notifications")
    return data
