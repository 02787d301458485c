"""Mastodon: mention notifications and direct statuses in, replies out (PLATFORMS.md §1).

* Inbound: ``GET /api/v1/notifications?types[]=mention&include_filtered=true``, walked
  forward with the ``min_id`` of ``Link rel="prev"`` (``since_id`` would jump to the newest
  page and skip a burst). Our own replies and DMs written in other apps come from our
  account's statuses, walked the same way, as outbound messages.
* Ids are opaque strings: never cast to int; ordered by (length, text).
* Threads: a direct status is a DM conversation ``dm:<root>``, anything else a public
  thread ``post:<root>``, where root is the top of the ``in_reply_to_id`` chain (asked from
  ``/statuses/:id/context`` when the parent is not known yet; roots are cached).
* Replies: ``POST /api/v1/statuses`` with ``Idempotency-Key`` (kept 1 h by the server), the
  visibility of the thread and the ``@acct`` prefixes Mastodon needs to notify people.
* Rate limits: ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` (ISO-8601); a 429 has no
  Retry-After, so the reset header says when to come back.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

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
from replydeck.sources.http import new_client
from replydeck.sources.mastodon_html import html_to_text

DEFAULT_MAX_CHARACTERS = 500
URL_WEIGHT = 23
PAGE_LIMIT = 40
MAX_PAGES_PER_FETCH = 5
ROOT_CACHE_SIZE = 5000
#: Mastodon keeps Idempotency-Keys "up to 1 hour"; older replies are checked before posting.
KEY_TRUST = timedelta(minutes=50)
#: When a 429 carries no usable reset header, wait this long (Mastodon windows are 5 min).
FALLBACK_RETRY = timedelta(seconds=60)

_URL_RE = re.compile(r"https?://\S+")
_REMOTE_MENTION_RE = re.compile(r"(@[\w.]+)@[\w.-]+\w", re.UNICODE)
_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?([^";]+)"?')


def id_key(status_id: str) -> tuple[int, str]:
    """Sort key for Mastodon ids: opaque strings, longer is newer, then lexical."""
    return (len(status_id), status_id)


def newest_id(*ids: str | None) -> str | None:
    present = [i for i in ids if i]
    return max(present, key=id_key) if present else None


def mastodon_length(text: str) -> int:
    """Length as Mastodon counts it: each URL is 23 characters and a remote mention counts
    only its ``@user`` part."""
    text = _URL_RE.sub("x" * URL_WEIGHT, text)
    text = _REMOTE_MENTION_RE.sub(r"\1", text)
    return text_count(text, "chars")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def parse_links(header: str | None) -> dict[str, str]:
    """``Link: <url>; rel="next", <url>; rel="prev"`` -> {rel: url}."""
    out: dict[str, str] = {}
    for url, rels in _LINK_RE.findall(header or ""):
        for rel in rels.split():
            out[rel] = url
    return out


class _Malformed(Exception):
    """An answer did not have the documented shape; becomes a TransientError."""


def _req(obj: Any, key: str, typ: type | tuple[type, ...]) -> Any:
    if not isinstance(obj, dict):
        raise _Malformed(f"expected an object, found {describe_json(obj)}")
    value = obj.get(key)
    if not isinstance(value, typ):
        raise _Malformed(f"field {key!r} missing or of the wrong type in {describe_json(obj)}")
    return value


@dataclass
class _Me:
    id: str
    acct: str
    url: str | None


class MastodonSource(BaseSource):
    type_name = "mastodon"
    platform = "mastodon"
    idempotent_send = True

    def __init__(self, name: str, *, instance: str, token: Secret, timeout: float = 30.0,
                 page_limit: int = PAGE_LIMIT, max_pages: int = MAX_PAGES_PER_FETCH) -> None:
        super().__init__(name)
        self.instance = instance.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.page_limit = page_limit
        self.max_pages = max_pages
        self.limits = Limits(max_length=DEFAULT_MAX_CHARACTERS, counting="chars")
        self._client: httpx.AsyncClient | None = None
        self._me: _Me | None = None
        self._instance_loaded = False
        self._roots: OrderedDict[str, str] = OrderedDict()
        self._not_before: datetime | None = None

    def __repr__(self) -> str:
        return f"MastodonSource(name={self.name!r}, instance={self.instance!r})"

    @classmethod
    def from_config(cls, table: Any) -> MastodonSource:
        instance = table.str("instance")
        split = urlsplit(instance)
        loopback = split.hostname in ("127.0.0.1", "localhost", "::1")
        if not split.hostname or split.scheme not in ("https", "http") or (
                split.scheme == "http" and not loopback):
            raise table.error("instance", "expected an https:// URL such as "
                              f"'https://mastodon.social', found {instance!r}")
        return cls(table.name, instance=instance, token=table.secret("token"))

    # -- HTTP ------------------------------------------------------------------------
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            try:
                token = self._token.resolve()
            except ConfigError as exc:
                raise AuthError(f"cannot read the Mastodon token: {exc}") from None
            self._client = new_client(
                self.instance, timeout=self.timeout,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _call(self, method: str, url: str, *, params: Any = None, data: Any = None,
                    headers: dict[str, str] | None = None, what: str,
                    scope: str | None = None) -> httpx.Response:
        """One API call with Mastodon's errors mapped to source errors."""
        try:
            resp = await self._http().request(method, url, params=params, data=data,
                                              headers=headers)
        except httpx.TimeoutException:
            raise TransientError(f"{self.instance} did not answer within "
                                 f"{self.timeout:g} s ({what})") from None
        except httpx.HTTPError as exc:
            raise TransientError(f"cannot reach {self.instance} ({what}): "
                                 f"{type(exc).__name__}") from None
        reset = parse_time(resp.headers.get("X-RateLimit-Reset"))
        remaining = resp.headers.get("X-RateLimit-Remaining")
        if reset is not None and remaining is not None and remaining.strip() == "0":
            self._not_before = max(self._not_before or reset, reset)
        status = resp.status_code
        if status < 300:
            return resp
        error = self._error_text(resp)
        if status == 429:
            retry_at = reset if reset is not None else utcnow() + FALLBACK_RETRY
            raise RateLimited(f"Mastodon rate limit reached ({what}); "
                              f"allowed again at {retry_at:%H:%M:%S} UTC", retry_at=retry_at)
        if status == 401:
            raise AuthError(f"wrong or revoked Mastodon token for {self.instance} "
                            f"({error or '401'}): create a new access token in "
                            "Preferences > Development")
        if status == 403:
            if scope:
                raise AuthError(f"token lacks {scope} ({what}): create a token with the "
                                "scopes read:notifications read:statuses write:statuses")
            raise AuthError(f"Mastodon refused {what}: {error or '403 Forbidden'}")
        if status >= 500 or status in (408, 425):
            raise TransientError(f"Mastodon server error {status} ({what})")
        raise PermanentError(f"Mastodon refused {what}: {status} {error}".rstrip())

    @staticmethod
    def _error_text(resp: httpx.Response) -> str:
        try:
            body = resp.json()
        except ValueError:
            return ""
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return sanitize_line(body["error"])[:200]
        return ""

    @staticmethod
    def _json(resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise TransientError("malformed answer from Mastodon: not JSON "
                                 f"({describe_json(resp.text[:80])})") from None

    # -- account and instance --------------------------------------------------------
    async def _whoami(self) -> _Me:
        if self._me is None:
            resp = await self._call("GET", "/api/v1/accounts/verify_credentials",
                                    what="verify_credentials")
            body = self._json(resp)
            try:
                self._me = _Me(id=_req(body, "id", str), acct=_req(body, "acct", str),
                               url=body.get("url") if isinstance(body.get("url"), str)
                               else None)
            except _Malformed as exc:
                raise TransientError(f"malformed answer from Mastodon: {exc}") from None
        return self._me

    async def _load_instance(self) -> None:
        """The instance's own post length (``configuration.statuses.max_characters``)."""
        if self._instance_loaded:
            return
        resp = await self._call("GET", "/api/v2/instance", what="instance info")
        body = self._json(resp)
        statuses = ((body.get("configuration") or {}).get("statuses") or {}
                    if isinstance(body, dict) else {})
        max_chars = statuses.get("max_characters") if isinstance(statuses, dict) else None
        if isinstance(max_chars, int) and not isinstance(max_chars, bool) and max_chars > 0:
            self.limits = Limits(max_length=max_chars, counting="chars")
        self._instance_loaded = True

    # -- threads ---------------------------------------------------------------------
    def _remember_root(self, status_id: str, root: str) -> None:
        self._roots[status_id] = root
        self._roots.move_to_end(status_id)
        while len(self._roots) > ROOT_CACHE_SIZE:
            self._roots.popitem(last=False)

    async def _root_of(self, status: dict[str, Any], me: _Me,
                       extra: list[Message]) -> str:
        sid = status["id"]
        if sid in self._roots:
            return self._roots[sid]
        parent = status.get("in_reply_to_id")
        if not isinstance(parent, str) or not parent:
            self._remember_root(sid, sid)
            return sid
        if parent in self._roots:
            root = self._roots[parent]
            self._remember_root(sid, root)
            return root
        try:
            resp = await self._call("GET", f"/api/v1/statuses/{sid}/context",
                                    what="thread context")
        except PermanentError as exc:
            if isinstance(exc, AuthError):
                raise
            # Parent deleted or not visible to us: the parent is the best root we know.
            self._remember_root(sid, parent)
            return parent
        body = self._json(resp)
        ancestors = body.get("ancestors") if isinstance(body, dict) else None
        if not isinstance(ancestors, list):
            raise TransientError("malformed answer from Mastodon: context: "
                                 f"{describe_json(body)}")
        chain = [a for a in ancestors if isinstance(a, dict) and isinstance(a.get("id"), str)]
        root = chain[0]["id"] if chain else parent
        # A reply whose top ancestor itself replies to something invisible keeps that top.
        for anc in chain:
            self._remember_root(anc["id"], root)
            account = anc.get("account")
            if isinstance(account, dict) and account.get("id") == me.id:
                # Our own posts up the chain are part of the conversation (outbound).
                with contextlib.suppress(_Malformed):
                    extra.append(self._message(anc, me, root))
        self._remember_root(sid, root)
        return root

    # -- items -----------------------------------------------------------------------
    def _message(self, status: dict[str, Any], me: _Me, root: str) -> Message:
        sid = _req(status, "id", str)
        account = _req(status, "account", dict)
        author_id = _req(account, "id", str)
        acct = _req(account, "acct", str)
        created = parse_time(status.get("created_at"))
        if created is None:
            raise _Malformed(f"status {sid}: created_at missing or not a time")
        visibility = status.get("visibility") if isinstance(status.get("visibility"), str) \
            else "public"
        mentions = [m for m in (status.get("mentions") or []) if isinstance(m, dict)]
        content = status.get("content") if isinstance(status.get("content"), str) else ""
        text = html_to_text(content, mentions)
        spoiler = status.get("spoiler_text")
        if isinstance(spoiler, str) and spoiler.strip():
            text = f"CW: {spoiler.strip()}\n\n{text}"
        direction = Direction.OUT if author_id == me.id else Direction.IN
        in_reply_to = status.get("in_reply_to_id")
        in_reply_to = in_reply_to if isinstance(in_reply_to, str) and in_reply_to else None
        if visibility == "direct":
            kind, thread = Kind.DM, f"dm:{root}"
        else:
            kind = Kind.REPLY if status.get("in_reply_to_account_id") == me.id else Kind.MENTION
            thread = f"post:{root}"
        followers = account.get("followers_count")
        display = account.get("display_name") if isinstance(account.get("display_name"),
                                                            str) else ""
        author = Author(
            id=author_id,
            handle=sanitize_line(acct),
            name=sanitize_line(display) or sanitize_line(str(account.get("username") or acct)),
            followers=followers if isinstance(followers, int)
            and not isinstance(followers, bool) else None,
            url=account.get("url") if isinstance(account.get("url"), str) else None,
            verified=False,
        )
        engagement = {k: v for k, v in (("replies", status.get("replies_count")),
                                        ("reposts", status.get("reblogs_count")),
                                        ("likes", status.get("favourites_count")))
                      if isinstance(v, int) and not isinstance(v, bool)}
        language = status.get("language") if isinstance(status.get("language"), str) else None
        url = status.get("url") or status.get("uri")
        return Message(
            source=self.name,
            remote_id=sid,
            platform=self.platform,
            kind=kind,
            author=author,
            text=sanitize_text(text),
            created_at=created,
            direction=direction,
            thread_key=thread,
            in_reply_to=in_reply_to,
            url=url if isinstance(url, str) else None,
            language=language,
            engagement=engagement,
            raw={
                "status_id": sid,
                "visibility": visibility,
                "account_id": author_id,
                "acct": acct,
                "mentions": [m["acct"] for m in mentions if isinstance(m.get("acct"), str)],
                "in_reply_to_id": in_reply_to,
                "root": root,
            },
        )

    async def _page(self, path: str, params: dict[str, str], *, what: str,
                    scope: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a timeline-like list and the ``min_id`` of the next newer page, as
        the server's ``Link rel="prev"`` gives it."""
        resp = await self._call("GET", path, params=params, what=what, scope=scope)
        body = self._json(resp)
        if not isinstance(body, list) or not all(isinstance(x, dict) for x in body):
            raise TransientError(f"malformed answer from Mastodon: {what}: "
                                 f"{describe_json(body)}")
        prev = parse_links(resp.headers.get("Link")).get("prev")
        # Only the position is taken from the Link: some servers drop the filters
        # (types[], include_filtered) from it, and our token never follows a URL elsewhere.
        min_id = parse_qs(urlsplit(prev).query).get("min_id", [None])[0] if prev else None
        return body, min_id

    async def _walk(self, path: str, base: dict[str, str], since: str | None, *,
                    what: str, scope: str | None) -> tuple[list[dict[str, Any]], bool]:
        """Everything newer than ``since``, oldest pages first, up to ``max_pages`` pages.

        Returns (entries, more). Without ``since`` only the newest page is read.
        """
        params = dict(base, limit=str(self.page_limit))
        out: list[dict[str, Any]] = []
        position = since
        for _ in range(self.max_pages):
            query = dict(params, min_id=position) if position else params
            page, prev_min = await self._page(path, query, what=what, scope=scope)
            out.extend(page)
            if not since or len(page) < self.page_limit:
                return out, False
            # Walk on from the Link's min_id (the newest of this page); without one, from
            # the newest id we hold.
            nxt = prev_min or newest_id(*(p.get("id") for p in page
                                          if isinstance(p.get("id"), str)))
            if not nxt or nxt == position:
                return out, False
            position = nxt
        return out, True

    async def fetch(self, cursor: Cursor | None) -> Batch:
        state = _load_cursor(cursor)
        self._not_before = None
        me = await self._whoami()
        if not self._instance_loaded:
            # The composer reads limits early; a failure here only delays it to the send.
            with contextlib.suppress(TransientError, PermanentError):
                await self._load_instance()
        try:
            notes, more_n = await self._walk(
                "/api/v1/notifications", {"types[]": "mention", "include_filtered": "true"},
                state.get("n"), what="notifications", scope="read:notifications")
            if state.get("s") is None:
                # First run: start our own timeline at its newest status, emit nothing.
                own_path = f"/api/v1/accounts/{me.id}/statuses"
                page, _ = await self._page(own_path, {"limit": "1"},
                                           what="own statuses", scope="read:statuses")
                own: list[dict[str, Any]] = []
                # "0" (older than any id) when empty: the next run then reads everything.
                own_start = _req(page[0], "id", str) if page else "0"
                more_s = False
            else:
                own, more_s = await self._walk(
                    f"/api/v1/accounts/{me.id}/statuses", {"exclude_reblogs": "true"},
                    state["s"] or None, what="own statuses", scope="read:statuses")
                own_start = state["s"]
            items: list[Message] = []
            newest_n = state.get("n")
            for note in sorted(notes, key=lambda x: id_key(_req(x, "id", str))):
                nid = note["id"]
                newest_n = newest_id(newest_n, nid)
                status = note.get("status")
                if note.get("type") != "mention" or not isinstance(status, dict):
                    continue  # deleted status or another notification type
                _req(status, "id", str)
                root = await self._root_of(status, me, items)
                items.append(self._message(status, me, root))
            newest_s = own_start
            for status in sorted(own, key=lambda x: id_key(_req(x, "id", str))):
                newest_s = newest_id(newest_s, status["id"]) or ""
                if status.get("reblog") or not (status.get("in_reply_to_id")
                                                or status.get("visibility") == "direct"):
                    continue  # a plain post or boost of ours answers nobody
                root = await self._root_of(status, me, items)
                items.append(self._message(status, me, root))
        except _Malformed as exc:
            raise TransientError(f"malformed answer from Mastodon: {exc}") from None
        if newest_n is None:
            newest_n = "0"  # nothing yet: from now on every mention is new, however many
        new_cursor = json.dumps({"n": newest_n, "s": newest_s}, separators=(",", ":"))
        return Batch(items=_dedupe(items), cursor=new_cursor, not_before=self._not_before,
                     more=more_n or more_s)

    # -- send ------------------------------------------------------------------------
    def _prefixes(self, target: Message, me: _Me, body: str) -> str:
        """``@acct`` for the author and everyone else mentioned, except us, unless the body
        already names them (Mastodon notifies only accounts written in the text)."""
        raw = target.raw or {}
        wanted: list[str] = []
        for acct in [raw.get("acct"), *(raw.get("mentions") or [])]:
            if not isinstance(acct, str) or not acct:
                continue
            if acct.lower() in (me.acct.lower(), me.acct.lower().split("@")[0]):
                continue
            if acct.lower() not in [w.lower() for w in wanted]:
                wanted.append(acct)
        present = {m.lower() for m in re.findall(r"@([\w.]+(?:@[\w.-]+\w)?)", body)}
        missing = [a for a in wanted if a.lower() not in present]
        return "".join(f"@{a} " for a in missing)

    async def send(self, reply: Reply) -> Receipt:
        target = reply.reply_to
        if target is None:
            raise PermanentError("nothing to reply to: the conversation has no customer "
                                 "message from this Mastodon account")
        me = await self._whoami()
        await self._load_instance()
        raw = target.raw or {}
        parent_id = raw.get("status_id") or target.remote_id
        parent_vis = raw.get("visibility") or "public"
        if reply.private or parent_vis == "direct":
            # A reply in a DM stays a DM: anything wider would publish a private talk.
            visibility = "direct"
        else:
            visibility = parent_vis if parent_vis in ("public", "unlisted", "private") \
                else "public"
        text = self._prefixes(target, me, reply.body) + reply.body
        length = mastodon_length(text)
        if length > self.limits.max_length:
            raise PermanentError(f"reply too long for {self.instance}: {length}/"
                                 f"{self.limits.max_length} characters (including the "
                                 "@mentions Mastodon needs)")
        queued = reply.created_at
        if queued is not None and utcnow() - queued > KEY_TRUST:
            # The server forgets Idempotency-Keys after an hour: for an older reply (a
            # retry after a long outage), look for it among our recent statuses first.
            found = await self._find_own_reply(me, parent_id, text)
            if found is not None:
                return self._receipt(found, me, raw, parent_id, reply)
        resp = await self._call(
            "POST", "/api/v1/statuses",
            data={"status": text, "in_reply_to_id": parent_id, "visibility": visibility},
            headers={"Idempotency-Key": reply.idempotency_key},
            what="posting the reply", scope="write:statuses")
        return self._receipt(self._json(resp), me, raw, parent_id, reply)

    def _receipt(self, body: Any, me: _Me, raw: dict[str, Any], parent_id: str,
                 reply: Reply) -> Receipt:
        try:
            sid = _req(body, "id", str)
            root = (raw.get("root") if isinstance(raw.get("root"), str) else None) \
                or self._roots.get(parent_id) or parent_id
            self._remember_root(sid, root)
            message = self._message(body, me, root)
        except _Malformed as exc:
            raise TransientError(f"malformed answer from Mastodon: {exc}") from None
        if reply.thread_key:
            message.thread_key = reply.thread_key
        return Receipt(remote_id=sid, url=message.url, sent_at=message.created_at,
                       message=message)

    async def _find_own_reply(self, me: _Me, parent_id: str, text: str
                              ) -> dict[str, Any] | None:
        page, _ = await self._page(f"/api/v1/accounts/{me.id}/statuses",
                                   {"limit": str(PAGE_LIMIT)}, what="own statuses",
                                   scope="read:statuses")
        for status in page:
            if status.get("in_reply_to_id") != parent_id:
                continue
            content = status.get("content") if isinstance(status.get("content"), str) else ""
            mentions = [m for m in status.get("mentions") or [] if isinstance(m, dict)]
            if _same_text(html_to_text(content, mentions), text):
                return status
        return None

    # -- doctor ----------------------------------------------------------------------
    async def check(self) -> CheckResult:
        details: list[str] = []
        try:
            me = await self._whoami()
            details.append(f"signed in as @{sanitize_line(me.acct)} on {self.instance}")
            await self._call("GET", "/api/v1/notifications",
                             params={"types[]": "mention", "limit": "1"},
                             what="notifications", scope="read:notifications")
            await self._call("GET", f"/api/v1/accounts/{me.id}/statuses",
                             params={"limit": "1"}, what="own statuses",
                             scope="read:statuses")
            await self._load_instance()
            details.append(f"replies up to {self.limits.max_length} characters")
            details.append("write:statuses is only verified by the first reply")
        except AuthError as exc:
            return CheckResult(False, str(exc), details)
        except TransientError as exc:
            return CheckResult(False, f"cannot check now: {exc}", details)
        except PermanentError as exc:
            return CheckResult(False, str(exc), details)
        return CheckResult(True, f"ok: @{sanitize_line(me.acct)}", details)


def _same_text(shown: str, sent: str) -> bool:
    """Whether a status's rendered text is the text we sent (whitespace may differ)."""
    return " ".join(shown.split()) == " ".join(sent.split())


def _load_cursor(cursor: Cursor | None) -> dict[str, str | None]:
    if not cursor:
        return {"n": None, "s": None}
    try:
        data = json.loads(cursor)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        # An unreadable cursor must not lose the position silently: say so.
        raise PermanentError("saved Mastodon cursor is unreadable; reset this source's "
                             "cursor to start again from the newest mentions")
    n, s = data.get("n"), data.get("s")
    return {"n": n if isinstance(n, str) and n else None,
            "s": s if isinstance(s, str) else None}


def _dedupe(items: list[Message]) -> list[Message]:
    seen: set[str] = set()
    out: list[Message] = []
    for m in items:
        if m.remote_id not in seen:
            seen.add(m.remote_id)
            out.append(m)
    return out
