"""X (API v2): mentions, replies in their conversations, and direct messages.

Inbound:
* mentions from ``GET /2/users/:id/mentions`` with ``since_id`` (the last ``newest_id``),
  following ``next_token`` to the end so a burst between polls is not lost (the first poll
  takes the newest page only: reads are billed per post);
* our own replies from other apps (``GET /2/users/:id/tweets``), direction OUT, but only
  in conversations where a customer mentioned us, so unrelated posts do not clutter the
  inbox;
* direct messages from ``GET /2/dm_events``, which has no ``since_id``: page 1 is read
  each time and de-duplicated against the ids in the cursor.

Replies go out with ``POST /2/tweets`` (``reply.in_reply_to_tweet_id``) and DMs with
``POST /2/dm_conversations/...``. X has no idempotency key, so :meth:`find_sent` looks at
our recent posts / DM events after a crash mid-send.

The self-serve plans only allow a reply to a post whose author mentioned or quoted us;
:meth:`send` checks that first, so the person sees why instead of a 403.

The docs use two families of field names (``tweet.fields``/``referenced_tweets``/
``tweet_count`` in prose, ``post.fields``/``referenced_posts``/``post_count`` in
openapi.json); the adapter sends the tweet names and reads both.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
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

DEFAULT_API_BASE = "https://api.x.com"
TWEET_FIELDS = ("author_id,created_at,conversation_id,in_reply_to_user_id,referenced_tweets,"
                "public_metrics,entities")
USER_FIELDS = "username,name,public_metrics,verified"
DM_FIELDS = "id,text,event_type,created_at,dm_conversation_id,sender_id,participant_ids"
#: How many DM event ids the cursor remembers; page 1 holds at most 100.
DM_SEEN_KEEP = 400
#: How much older than the newest seen DM an unseen event may be and still count as new.
DM_LATE_MARGIN = timedelta(hours=1)
#: Conversations the cursor remembers, to pick our own replies from other apps.
CONVERSATIONS_KEEP = 500
#: Pages of mentions followed in one fetch (X keeps only the 800 newest: 8 pages of 100).
MAX_MENTION_PAGES = 8
#: DM pages read while every event on a page is new (a burst of more than 100).
MAX_DM_PAGES = 3
#: When X answers 429 without a reset header (not documented), wait this long.
DEFAULT_BACKOFF = timedelta(seconds=60)
REPLY_RULE_MESSAGE = (
    "X only allows replies (on self-serve plans) to posts that mention or quote this "
    "account; this post does neither. Answer by DM instead, or reply from the X app."
)


class XSource(BaseSource):
    type_name = "x"
    platform = "x"
    limits = Limits(max_length=280, counting="x_weighted",
                    private_max_length=10000, private_counting="chars")
    idempotent_send = False
    can_reconcile = True
    #: GET /2/dm_events allows 15 calls per 15 minutes per user.
    default_poll_interval = 90

    def __init__(self, name: str, *, token: Any, user_id: str | None = None,
                 refresh_token: Any = None, client_id: str | None = None,
                 client_secret: Any = None, api_base: str = DEFAULT_API_BASE,
                 dms: bool = True, timeout: float = 30.0) -> None:
        super().__init__(name)
        self._token = token
        self._refresh_token = refresh_token
        self._client_id = client_id
        self._client_secret = client_secret
        self.user_id = user_id
        self.api_base = api_base.rstrip("/")
        self.dms = dms
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._refresh_lock = asyncio.Lock()
        #: Endpoint -> time before which it is not called (x-rate-limit-remaining hit 0).
        self._blocked_until: dict[str, datetime] = {}
        self._username: str | None = None

    def __repr__(self) -> str:
        return f"XSource({self.name!r}, user_id={self.user_id!r}, api_base={self.api_base!r})"

    @classmethod
    def from_config(cls, table: Any) -> XSource:
        user_id = table.str("user_id", None)
        if user_id is not None and not user_id.isdigit():
            raise table.error("user_id", f"expected the numeric X user id as a string, "
                              f"found {user_id!r}")
        return cls(
            table.name,
            token=table.secret("token"),
            refresh_token=table.secret("refresh_token", None),
            client_id=table.str("client_id", None),
            client_secret=table.secret("client_secret", None),
            user_id=user_id,
            api_base=table.str("api_base", DEFAULT_API_BASE),
            dms=table.bool("dms", True),
            timeout=table.number("timeout", 30.0, min=0.05),
        )

    # -- HTTP ------------------------------------------------------------------------
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(self.api_base, timeout=self.timeout)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _access_token(self) -> str:
        try:
            return self._token.resolve()
        except Exception as exc:  # ConfigError names the reference, never the value
            raise AuthError(f"X token: {exc}") from None

    async def _call(self, method: str, path: str, *, endpoint: str,
                    params: dict[str, Any] | None = None,
                    body: dict[str, Any] | None = None) -> Any:
        """One API call with a token refresh on 401; returns the decoded JSON body."""
        for attempt in (1, 2):
            token = self._access_token()
            resp = await self._send_http(method, path, params=params, body=body,
                                         headers={"Authorization": f"Bearer {token}"})
            self._note_rate_limit(endpoint, resp)
            if resp.status_code == 401 and attempt == 1:
                await self._refresh(token)
                continue
            return self._decode(resp, endpoint, mutating=method != "GET")
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_http(self, method: str, path: str, *, params: Any = None, body: Any = None,
                         headers: dict[str, str] | None = None, data: Any = None,
                         auth: Any = None) -> httpx.Response:
        # A POST that may have reached X before the failure may have created the post:
        # maybe_sent tells the outbox to reconcile (find_sent) before sending again.
        mutating = method != "GET"
        try:
            return await self._http().request(method, path, params=params, json=body,
                                              headers=headers, data=data, auth=auth)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientError(f"cannot reach X at {self.api_base} "
                                 f"({type(exc).__name__})") from None
        except httpx.TimeoutException:
            raise TransientError(f"X did not answer within {self.timeout:g} s",
                                 maybe_sent=mutating) from None
        except httpx.HTTPError as exc:
            raise TransientError(f"lost the connection to X at {self.api_base} "
                                 f"({type(exc).__name__})", maybe_sent=mutating) from None

    def _note_rate_limit(self, endpoint: str, resp: httpx.Response) -> None:
        reset = _reset_time(resp)
        remaining = resp.headers.get("x-rate-limit-remaining")
        if resp.status_code == 429 or (remaining is not None and remaining.strip() == "0"):
            self._blocked_until[endpoint] = reset or utcnow() + DEFAULT_BACKOFF

    def _decode(self, resp: httpx.Response, endpoint: str, *, mutating: bool = False) -> Any:
        status = resp.status_code
        try:
            data = resp.json()
        except ValueError:
            data = None
        if status == 429:
            retry_at = self._blocked_until.get(endpoint) or utcnow() + DEFAULT_BACKOFF
            raise RateLimited(f"X rate limit reached for {endpoint} "
                              f"(until {retry_at:%H:%M:%S} UTC)", retry_at=retry_at)
        if status >= 500:
            raise TransientError(f"X server error {status} on {endpoint}", maybe_sent=mutating)
        if status == 401:
            raise AuthError("X rejected the access token even after a refresh; "
                            "authorise replydeck again and update the token")
        if status == 403:
            detail = _problem(data)
            low = detail.lower()
            if "reply to this conversation is not allowed" in low:
                raise PermanentError(f"{REPLY_RULE_MESSAGE} (X said: {detail})")
            if "scope" in low or "client-forbidden" in low or "unsupported-authentication" in low \
                    or "forbidden" in _problem_type(data):
                hint = " (or set dms = false to read mentions only)" \
                    if endpoint.startswith("dm") else ""
                raise AuthError(f"X refused {endpoint}: {detail} (check the app's access "
                                "level and that the token has the scopes tweet.read "
                                "tweet.write users.read dm.read dm.write offline.access"
                                f"{hint})")
            raise PermanentError(f"X refused {endpoint}: {detail}")
        if status == 404:
            raise PermanentError(f"X: not found on {endpoint}: {_problem(data)}")
        if status >= 400:
            raise PermanentError(f"X rejected {endpoint} ({status}): {_problem(data)}")
        if not isinstance(data, dict):
            raise TransientError(f"malformed answer from X on {endpoint}: "
                                 f"{describe_json(data) if data is not None else 'not JSON'}",
                                 maybe_sent=mutating)
        return data

    async def _refresh(self, failed_token: str) -> None:
        """Trade the refresh token for a new pair and store both where they came from."""
        async with self._refresh_lock:
            if self._access_token() != failed_token:
                return  # another task refreshed while this one waited
            if self._refresh_token is None or not self._client_id:
                raise AuthError(
                    "X rejected the access token (expired or revoked). OAuth 2.0 user "
                    "tokens last 2 hours: configure refresh_token and client_id (authorise "
                    "with the offline.access scope) so replydeck can renew it, or renew it "
                    "yourself")
            for secret, key in ((self._token, "token"), (self._refresh_token, "refresh_token")):
                if not secret.writable:
                    # Refreshing would rotate the refresh token we cannot save: the next start
                    # would then hold a dead one. Refuse before spending it.
                    raise AuthError(
                        f"the X access token expired and replydeck could refresh it, but "
                        f"the refreshed token cannot be saved to {secret.reference} "
                        f"({key} uses {secret.scheme}:, which is read-only). Configure "
                        f"token and refresh_token as keyring:SERVICE/USER or file:PATH")
            try:
                refresh = self._refresh_token.resolve()
            except Exception as exc:
                raise AuthError(f"X refresh_token: {exc}") from None
            auth = None
            if self._client_secret is not None:
                try:
                    auth = httpx.BasicAuth(self._client_id, self._client_secret.resolve())
                except Exception as exc:
                    raise AuthError(f"X client_secret: {exc}") from None
            resp = await self._send_http(
                "POST", "/2/oauth2/token", auth=auth,
                data={"grant_type": "refresh_token", "refresh_token": refresh,
                      "client_id": self._client_id},
            )
            if resp.status_code >= 500:
                raise TransientError(f"X token endpoint error {resp.status_code}")
            if resp.status_code == 429:
                raise RateLimited("X rate limit on token refresh",
                                  retry_at=_reset_time(resp) or utcnow() + DEFAULT_BACKOFF)
            try:
                data = resp.json()
            except ValueError:
                data = None
            if resp.status_code != 200:
                raise AuthError(
                    "X refused to refresh the access token ("
                    f"{_oauth_error(data)}); authorise replydeck again and store the new "
                    "token and refresh_token")
            if not isinstance(data, dict) or not isinstance(data.get("access_token"), str) \
                    or not data["access_token"]:
                raise TransientError("malformed answer from X token refresh: "
                                     f"{describe_json(data)}")
            new_refresh = data.get("refresh_token")
            try:
                # The refresh token first: it is the one that cannot be recovered.
                if isinstance(new_refresh, str) and new_refresh:
                    self._refresh_token.store(new_refresh)
                self._token.store(data["access_token"])
            except Exception as exc:
                raise AuthError(f"X refreshed the token but it could not be saved: {exc}"
                                ) from None

    # -- fetch -----------------------------------------------------------------------
    async def _me(self, *, need_username: bool = False) -> str:
        if self.user_id is None or (need_username and self._username is None):
            data = await self._call("GET", "/2/users/me", endpoint="users/me",
                                    params={"user.fields": USER_FIELDS})
            user = data.get("data")
            if not isinstance(user, dict) or not isinstance(user.get("id"), str):
                raise TransientError(f"malformed answer from X users/me: {describe_json(data)}")
            if self.user_id is None:
                self.user_id = user["id"]
            self._username = sanitize_line(_str(user.get("username")))
        return self.user_id

    def _blocked(self, endpoint: str) -> datetime | None:
        until = self._blocked_until.get(endpoint)
        if until is not None and until > utcnow():
            return until
        return None

    async def fetch(self, cursor: Cursor | None) -> Batch:
        state = _CursorState.load(cursor)
        me = await self._me()
        items: list[Message] = []

        blocked = self._blocked("mentions")
        if blocked:
            raise RateLimited("X mentions rate limit reached", retry_at=blocked)
        mentions, newest = await self._fetch_mentions(me, state.mention_since)
        items.extend(mentions)
        if newest is not None:
            state.mention_since = newest
        for m in mentions:
            state.remember_conversation(m.raw.get("conversation_id"))

        # Own posts and DMs have tighter rate limits than mentions: a 429 there skips them
        # this round (the endpoint stays blocked until its reset) instead of holding back
        # the mentions already read.
        if not self._blocked("tweets"):
            try:
                own, own_newest = await self._fetch_own(me, state)
            except RateLimited:
                own, own_newest = [], None
            items.extend(own)
            if own_newest is not None:
                state.own_since = own_newest
            elif state.own_since is None:
                # No own posts yet: any snowflake of "now" marks where to start (ids grow
                # with time), so our first reply after this poll is not taken as history.
                state.own_since = state.mention_since

        if self.dms and not self._blocked("dm_events"):
            with contextlib.suppress(RateLimited):
                items.extend(await self._fetch_dms(me, state))

        return Batch(items, state.dump(), not_before=self._blocked("mentions"))

    async def _fetch_mentions(self, me: str, since: str | None
                              ) -> tuple[list[Message], str | None]:
        params: dict[str, Any] = {
            "max_results": 100,
            "expansions": "author_id,referenced_tweets.id,referenced_tweets.id.author_id",
            "tweet.fields": TWEET_FIELDS,
            "user.fields": USER_FIELDS,
        }
        if since:
            params["since_id"] = since
        out: list[Message] = []
        newest: str | None = None
        for _page in range(MAX_MENTION_PAGES):
            data = await self._call("GET", f"/2/users/{me}/mentions", endpoint="mentions",
                                    params=params)
            page = _Page.parse(data, "mentions")
            newest = _max_id(newest, page.meta_str("newest_id"))
            for post in page.items:
                newest = _max_id(newest, post["id"])
                out.append(self._post_message(post, page, me))
            token = page.meta_str("next_token")
            if not token or not since:
                break  # the first poll reads the newest page only
            params["pagination_token"] = token
        return out, newest

    async def _fetch_own(self, me: str, state: _CursorState
                         ) -> tuple[list[Message], str | None]:
        params: dict[str, Any] = {
            "max_results": 100 if state.own_since else 5,
            "exclude": "retweets",
            "expansions": "author_id",
            "tweet.fields": TWEET_FIELDS,
            "user.fields": USER_FIELDS,
        }
        if state.own_since:
            params["since_id"] = state.own_since
        data = await self._call("GET", f"/2/users/{me}/tweets", endpoint="tweets",
                                params=params)
        page = _Page.parse(data, "own posts")
        newest = page.meta_str("newest_id")
        out = []
        for post in page.items:
            newest = _max_id(newest, post["id"])
            if state.own_since and post.get("conversation_id") in state.conversations:
                out.append(self._post_message(post, page, me))
        return out, newest

    async def _fetch_dms(self, me: str, state: _CursorState) -> list[Message]:
        params: dict[str, Any] = {
            "max_results": 100,
            "event_types": "MessageCreate",
            "dm_event.fields": DM_FIELDS,
            "expansions": "sender_id",
            "user.fields": USER_FIELDS,
        }
        out: list[Message] = []
        first_run = state.dm_seen is None
        seen = set(state.dm_seen or ())
        new_ids: list[str] = []
        for _page in range(MAX_DM_PAGES):
            data = await self._call("GET", "/2/dm_events", endpoint="dm_events", params=params)
            page = _Page.parse(data, "dm_events")
            fresh = [e for e in page.items if e["id"] not in seen
                     and not state.dm_is_old(_time(e.get("created_at")))]
            for event in fresh:
                msg = self._dm_message(event, page, me)
                if msg is not None:
                    out.append(msg)
                new_ids.append(event["id"])
                seen.add(event["id"])
                state.dm_saw(_time(event.get("created_at")))
            token = page.meta_str("next_token")
            if first_run or not token or len(fresh) < len(page.items) or not page.items:
                break
            params["pagination_token"] = token
        state.remember_dms(new_ids)
        return out

    # -- parsing ---------------------------------------------------------------------
    def _author(self, user: dict[str, Any] | None, user_id: str) -> Author:
        if not user:
            return Author(id=user_id)
        handle = sanitize_line(_str(user.get("username")))
        metrics = user.get("public_metrics") if isinstance(user.get("public_metrics"), dict) \
            else {}
        followers = metrics.get("followers_count")
        return Author(
            id=user_id,
            handle=handle,
            name=sanitize_line(_str(user.get("name"))),
            followers=followers if isinstance(followers, int) and followers >= 0 else None,
            url=f"https://x.com/{handle}" if handle else None,
            verified=user.get("verified") is True,
        )

    def _post_message(self, post: dict[str, Any], page: _Page, me: str) -> Message:
        post_id = post["id"]
        author_id = _str(post.get("author_id"))
        user = page.users.get(author_id)
        author = self._author(user, author_id)
        refs = _refs(post)
        conversation = _str(post.get("conversation_id")) or post_id
        parent = next((r["id"] for r in refs if r["type"] == "replied_to"), None)
        entities = post.get("entities") if isinstance(post.get("entities"), dict) else {}
        mentions = entities.get("mentions") if isinstance(entities.get("mentions"), list) else []
        mentioned_ids = [m["id"] for m in mentions
                         if isinstance(m, dict) and isinstance(m.get("id"), str)]
        mentioned_names = [m["username"].lower() for m in mentions
                           if isinstance(m, dict) and isinstance(m.get("username"), str)]
        quoted_authors = []
        for ref in refs:
            if ref["type"] == "quoted":
                quoted = page.posts.get(ref["id"]) or {}
                quoted_authors.append(_str(quoted.get("author_id")))
        metrics = post.get("public_metrics") if isinstance(post.get("public_metrics"), dict) \
            else {}
        engagement = {
            name: value for name, key in (("likes", "like_count"), ("reposts", "retweet_count"),
                                          ("replies", "reply_count"), ("quotes", "quote_count"))
            if isinstance(value := metrics.get(key), int)
        }
        outbound = author_id == me
        return Message(
            source=self.name,
            remote_id=post_id,
            platform=self.platform,
            kind=Kind.REPLY if outbound else Kind.MENTION,
            author=author,
            text=sanitize_text(html.unescape(_str(post.get("text")))),
            created_at=_time(post.get("created_at")),
            direction=Direction.OUT if outbound else Direction.IN,
            thread_key=f"post:{conversation}",
            in_reply_to=parent,
            url=(f"https://x.com/{author.handle}/status/{post_id}" if author.handle
                 else f"https://x.com/i/web/status/{post_id}"),
            engagement=engagement,
            raw={
                "id": post_id,
                "conversation_id": conversation,
                "author_id": author_id,
                "in_reply_to_user_id": _str(post.get("in_reply_to_user_id")) or None,
                "referenced": refs,
                "mentioned_ids": mentioned_ids,
                "mentioned_usernames": mentioned_names,
                "quoted_author_ids": quoted_authors,
            },
        )

    def _dm_message(self, event: dict[str, Any], page: _Page, me: str) -> Message | None:
        if event.get("event_type", "MessageCreate") != "MessageCreate":
            return None
        conversation = _str(event.get("dm_conversation_id"))
        sender = _str(event.get("sender_id"))
        if not conversation or not sender:
            raise TransientError(f"malformed answer from X dm_events: event {event['id']} "
                                 "has no dm_conversation_id or sender_id")
        participants = [p for p in event.get("participant_ids") or [] if isinstance(p, str)]
        if not participants:
            # 1:1 conversation ids are "<low id>-<high id>".
            participants = [p for p in conversation.split("-") if p.isdigit()]
        return Message(
            source=self.name,
            remote_id=f"dm:{event['id']}",
            platform=self.platform,
            kind=Kind.DM,
            author=self._author(page.users.get(sender), sender),
            text=sanitize_text(html.unescape(_str(event.get("text")))),
            created_at=_time(event.get("created_at")),
            direction=Direction.OUT if sender == me else Direction.IN,
            thread_key=f"dm:{conversation}",
            raw={"dm_event_id": event["id"], "dm_conversation_id": conversation,
                 "sender_id": sender, "participant_ids": participants},
        )

    # -- send ------------------------------------------------------------------------
    def _check_length(self, reply: Reply) -> None:
        result = textlen.check_reply(reply.body, self.limits, reply.private)
        if not result.ok:
            what = "DM" if reply.private else "post"
            raise PermanentError(f"too long for an X {what}: {result.describe()}")
        if not reply.body.strip():
            raise PermanentError("an empty reply cannot be sent to X")

    async def _check_reply_rule(self, target: Message, me: str) -> None:
        raw = target.raw
        if me in (raw.get("mentioned_ids") or []) or me in (raw.get("quoted_author_ids") or []):
            return
        names = raw.get("mentioned_usernames") or []
        if names:
            # Mention entities normally carry ids; match the username when one does not.
            await self._me(need_username=True)
            if self._username and self._username.lower() in names:
                return
        raise PermanentError(REPLY_RULE_MESSAGE)

    async def send(self, reply: Reply) -> Receipt:
        self._check_length(reply)
        for endpoint in ("post create", "dm create"):
            blocked = self._blocked(endpoint)
            if blocked and (endpoint == "dm create") == self._is_dm(reply):
                raise RateLimited(f"X rate limit reached for {endpoint}", retry_at=blocked)
        target = reply.reply_to
        if target is None:
            raise PermanentError("nothing to reply to: the conversation has no customer "
                                 "message from X")
        if self._is_dm(reply):
            return await self._send_dm(reply, target)
        me = await self._me()
        await self._check_reply_rule(target, me)
        parent = _str(target.raw.get("id")) or target.remote_id
        data = await self._call("POST", "/2/tweets", endpoint="post create",
                                body={"text": reply.body,
                                      "reply": {"in_reply_to_tweet_id": parent}})
        created = data.get("data")
        if not isinstance(created, dict) or not isinstance(created.get("id"), str):
            raise TransientError(f"malformed answer from X post create: {describe_json(data)}",
                                 maybe_sent=True)
        return self._post_receipt(reply, target, created["id"], utcnow(), me)

    def _post_receipt(self, reply: Reply, target: Message, post_id: str, at: datetime,
                      me: str) -> Receipt:
        conversation = _str(target.raw.get("conversation_id")) or target.remote_id
        url = f"https://x.com/i/web/status/{post_id}"
        message = Message(
            source=self.name, remote_id=post_id, platform=self.platform, kind=Kind.REPLY,
            author=Author(id=me, handle=self._username or ""), text=reply.body,
            created_at=at, direction=Direction.OUT,
            thread_key=reply.thread_key or f"post:{conversation}",
            in_reply_to=target.remote_id, url=url,
            raw={"id": post_id, "conversation_id": conversation, "author_id": me},
        )
        return Receipt(post_id, url, at, message)

    @staticmethod
    def _is_dm(reply: Reply) -> bool:
        thread = reply.thread_key or (reply.reply_to.thread_key if reply.reply_to else None)
        return reply.private or (thread or "").startswith("dm:")

    def _dm_path(self, target: Message, thread_key: str | None) -> tuple[str, str | None]:
        conversation = _str(target.raw.get("dm_conversation_id"))
        if not conversation and thread_key and thread_key.startswith("dm:"):
            conversation = thread_key[3:]
        if conversation:
            return f"/2/dm_conversations/{conversation}/messages", conversation
        if target.author.id:
            return f"/2/dm_conversations/with/{target.author.id}/messages", None
        raise PermanentError("cannot tell which X conversation to send this DM to")

    async def _send_dm(self, reply: Reply, target: Message) -> Receipt:
        me = await self._me()
        path, conversation = self._dm_path(target, reply.thread_key)
        data = await self._call("POST", path, endpoint="dm create", body={"text": reply.body})
        created = data.get("data")
        if not isinstance(created, dict) or not isinstance(created.get("dm_event_id"), str):
            raise TransientError(f"malformed answer from X dm create: {describe_json(data)}",
                                 maybe_sent=True)
        conversation = _str(created.get("dm_conversation_id")) or conversation or ""
        return self._dm_receipt(reply, created["dm_event_id"], conversation, utcnow(), me)

    def _dm_receipt(self, reply: Reply, event_id: str, conversation: str, at: datetime,
                    me: str) -> Receipt:
        message = Message(
            source=self.name, remote_id=f"dm:{event_id}", platform=self.platform,
            kind=Kind.DM, author=Author(id=me, handle=self._username or ""), text=reply.body,
            created_at=at, direction=Direction.OUT,
            thread_key=reply.thread_key or f"dm:{conversation}",
            raw={"dm_event_id": event_id, "dm_conversation_id": conversation, "sender_id": me},
        )
        return Receipt(f"dm:{event_id}", None, at, message)

    async def find_sent(self, reply: Reply) -> Receipt | None:
        """After a crash mid-send: is this reply among our recent posts / DM events?"""
        target = reply.reply_to
        if target is None:
            return None
        me = await self._me()
        since = (reply.created_at or utcnow() - timedelta(hours=24)) - timedelta(minutes=5)
        wanted = _comparable(reply.body)
        if self._is_dm(reply):
            conversation = self._dm_path(target, reply.thread_key)[1]
            path = (f"/2/dm_conversations/{conversation}/dm_events" if conversation
                    else f"/2/dm_conversations/with/{target.author.id}/dm_events")
            data = await self._call("GET", path, endpoint="dm_events", params={
                "max_results": 50, "event_types": "MessageCreate",
                "dm_event.fields": DM_FIELDS})
            page = _Page.parse(data, "dm_events")
            for event in page.items:
                at = _time(event.get("created_at"))
                if event.get("sender_id") == me and at >= since \
                        and _comparable(_str(event.get("text"))) == wanted:
                    return self._dm_receipt(reply, event["id"],
                                            _str(event.get("dm_conversation_id")), at, me)
            return None
        parent = _str(target.raw.get("id")) or target.remote_id
        data = await self._call("GET", f"/2/users/{me}/tweets", endpoint="tweets", params={
            "max_results": 100, "tweet.fields": TWEET_FIELDS,
            "start_time": since.strftime("%Y-%m-%dT%H:%M:%SZ")})
        page = _Page.parse(data, "own posts")
        for post in page.items:
            parents = [r["id"] for r in _refs(post) if r["type"] == "replied_to"]
            if parent in parents and _comparable(_str(post.get("text"))) == wanted:
                return self._post_receipt(reply, target, post["id"],
                                          _time(post.get("created_at")), me)
        return None

    # -- doctor ----------------------------------------------------------------------
    async def check(self) -> CheckResult:
        details: list[str] = []
        try:
            data = await self._call("GET", "/2/users/me", endpoint="users/me",
                                    params={"user.fields": USER_FIELDS})
            user = data.get("data")
            if not isinstance(user, dict) or not isinstance(user.get("id"), str):
                return CheckResult(False, f"malformed answer from X users/me: "
                                   f"{describe_json(data)}")
            handle = sanitize_line(_str(user.get("username")))
            if self.user_id and user["id"] != self.user_id:
                return CheckResult(False, f"the token belongs to @{handle} (id {user['id']}), "
                                   f"not to user_id {self.user_id}: fix user_id or the token")
            self.user_id = user["id"]
            self._username = handle or None
            details.append(f"signed in as @{handle} (id {user['id']})")
            if self.dms:
                await self._call("GET", "/2/dm_events", endpoint="dm_events",
                                 params={"max_results": 1, "dm_event.fields": "id"})
                details.append("direct messages readable (dm.read)")
        except AuthError as exc:
            return CheckResult(False, str(exc), details)
        except RateLimited as exc:
            return CheckResult(True, f"reachable but rate limited: {exc}", details)
        except (TransientError, PermanentError) as exc:
            return CheckResult(False, str(exc), details)
        return CheckResult(True, details[0], details[1:])


# -- helpers ---------------------------------------------------------------------------
class _Page:
    """One list answer: ``data`` items (dicts with a string ``id``), ``includes`` and
    ``meta``, validated so parsing below cannot raise KeyError/TypeError."""

    def __init__(self, items: list[dict[str, Any]], users: dict[str, dict[str, Any]],
                 posts: dict[str, dict[str, Any]], meta: dict[str, Any]) -> None:
        self.items = items
        self.users = users
        self.posts = posts
        self.meta = meta

    @classmethod
    def parse(cls, data: dict[str, Any], what: str) -> _Page:
        items = data.get("data", [])
        includes = data.get("includes", {})
        meta = data.get("meta", {})
        if not isinstance(items, list) or not isinstance(includes, dict) \
                or not isinstance(meta, dict):
            raise TransientError(f"malformed answer from X {what}: {describe_json(data)}")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) \
                    or not isinstance(item.get("text", ""), str):
                raise TransientError(f"malformed answer from X {what}: an item is "
                                     f"{describe_json(item)}")
            _time(item.get("created_at"))  # validates, raising TransientError
        users = {u["id"]: u for u in includes.get("users") or []
                 if isinstance(u, dict) and isinstance(u.get("id"), str)}
        posts = {p["id"]: p for p in (includes.get("tweets") or includes.get("posts") or [])
                 if isinstance(p, dict) and isinstance(p.get("id"), str)}
        return cls(items, users, posts, meta)

    def meta_str(self, key: str) -> str | None:
        value = self.meta.get(key)
        return value if isinstance(value, str) and value else None


class _CursorState:
    """What the cursor remembers: the newest mention and own post ids, recent DM event
    ids (dm_events has no since_id) and the conversations customers started with us."""

    def __init__(self) -> None:
        self.mention_since: str | None = None
        self.own_since: str | None = None
        self.dm_seen: list[str] | None = None
        self.dm_newest: datetime | None = None
        self.conversations: list[str] = []

    @classmethod
    def load(cls, cursor: Cursor | None) -> _CursorState:
        state = cls()
        if not cursor:
            return state
        try:
            data = json.loads(cursor)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            # An unreadable cursor would silently restart from scratch: say so instead.
            raise PermanentError("the saved X cursor is unreadable; reset this source's "
                                 "cursor to start again from the newest items")
        state.mention_since = _id_or_none(data.get("mentions"))
        state.own_since = _id_or_none(data.get("own"))
        dms = data.get("dms")
        state.dm_seen = [d for d in dms if isinstance(d, str)] if isinstance(dms, list) else None
        newest = data.get("dm_newest")
        if isinstance(newest, str):
            try:
                state.dm_newest = datetime.fromisoformat(newest).astimezone(UTC)
            except ValueError:
                state.dm_newest = None
        convs = data.get("conversations")
        state.conversations = [c for c in convs if isinstance(c, str)] \
            if isinstance(convs, list) else []
        return state

    def remember_conversation(self, conversation: Any) -> None:
        if isinstance(conversation, str) and conversation not in self.conversations:
            self.conversations.append(conversation)
            del self.conversations[:-CONVERSATIONS_KEEP]

    def dm_is_old(self, at: datetime) -> bool:
        """An unseen event well before the newest one seen was read before and has left
        the bounded id list: not new. The margin allows for events X lists late."""
        return self.dm_newest is not None and at < self.dm_newest - DM_LATE_MARGIN

    def dm_saw(self, at: datetime) -> None:
        if self.dm_newest is None or at > self.dm_newest:
            self.dm_newest = at

    def remember_dms(self, ids: list[str]) -> None:
        seen = (self.dm_seen or []) + [i for i in ids if i not in (self.dm_seen or [])]
        self.dm_seen = seen[-DM_SEEN_KEEP:]

    def dump(self) -> str:
        return json.dumps({"mentions": self.mention_since, "own": self.own_since,
                           "dms": self.dm_seen, "conversations": self.conversations,
                           "dm_newest": self.dm_newest.isoformat() if self.dm_newest else None},
                          separators=(",", ":"))


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _id_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value.isdigit() else None


def _max_id(a: str | None, b: str | None) -> str | None:
    """Post ids are snowflakes: compare them as numbers, keep them as strings."""
    if not b or not b.isdigit():
        return a
    if not a or int(b) > int(a):
        return b
    return a


def _refs(post: dict[str, Any]) -> list[dict[str, str]]:
    refs = post.get("referenced_tweets")
    if refs is None:
        refs = post.get("referenced_posts")
    if not isinstance(refs, list):
        return []
    return [{"type": r["type"], "id": r["id"]} for r in refs
            if isinstance(r, dict) and isinstance(r.get("type"), str)
            and isinstance(r.get("id"), str)]


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TransientError(f"malformed answer from X: created_at is {describe_json(value)}")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise TransientError(f"malformed answer from X: created_at {value[:40]!r}") from None


def _reset_time(resp: httpx.Response) -> datetime | None:
    value = resp.headers.get("x-rate-limit-reset")
    try:
        return datetime.fromtimestamp(int(value), UTC) if value else None
    except (ValueError, OverflowError, OSError):
        return None


def _problem(data: Any) -> str:
    """The human part of an X error body (problem+json or ``errors[]``), sanitised."""
    text = ""
    if isinstance(data, dict):
        if isinstance(data.get("detail"), str):
            text = data["detail"]
        elif isinstance(data.get("errors"), list) and data["errors"] \
                and isinstance(data["errors"][0], dict):
            text = _str(data["errors"][0].get("message") or data["errors"][0].get("detail"))
        elif isinstance(data.get("title"), str):
            text = data["title"]
    text = sanitize_line(text)[:300]
    return text or "no details given"


def _problem_type(data: Any) -> str:
    return _str(data.get("type")).lower() if isinstance(data, dict) else ""


def _oauth_error(data: Any) -> str:
    if isinstance(data, dict):
        parts = [sanitize_line(_str(data.get(k)))[:200] for k in ("error", "error_description")]
        text = ": ".join(p for p in parts if p)
        if text:
            return text
    return "no details given"


_URLISH = re.compile(r"https?://\S+")
_LEADING_MENTIONS = re.compile(r"^(?:@\w+\s+)+")


def _comparable(text: str) -> str:
    """Text as X would echo it back, for matching: entities unescaped, the reply's leading
    @mentions (added by X) dropped, links (wrapped in t.co) and whitespace folded."""
    text = _LEADING_MENTIONS.sub("", html.unescape(text).strip())
    return " ".join(_URLISH.sub("<url>", text).split())
