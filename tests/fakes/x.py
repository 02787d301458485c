"""A stateful fake of the X API v2 for adapter tests, over real HTTP on loopback.

It speaks the wire formats of PLATFORMS.md §3 and the examples in fixtures/x/: ids are
strings (snowflake-sized, beyond 2**53), list answers are ``{data, includes, meta}`` with
``newest_id``/``oldest_id``/``result_count``/``next_token``, fields appear only when asked
for through ``tweet.fields``/``user.fields``/``dm_event.fields``/``expansions`` (defaults as
documented: posts ``id, text, edit_history_tweet_ids``; DM events ``id, event_type,
text``), errors are problem+json, and rate limits carry ``x-rate-limit-limit/remaining/
reset`` (epoch seconds) with a 429 body ``{"errors":[{"code":88,...}]}``.

It enforces: OAuth 2.0 bearer tokens with scopes and expiry, refresh with rotation (the
old refresh token dies), the self-serve reply rule (a reply only to a post that mentions
or quotes the replying user), duplicate-text refusal [U], 280 weighted characters for
posts, 10,000 characters for DMs [U], ``max_results`` ranges, and paging.

Uncertain details are marked [U]: the exact 403 body for a missing scope, whether
duplicate text is refused, and the DM length limit.
"""

from __future__ import annotations

import html
import itertools
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from replydeck.inbox import textlen
from tests.fakes.httpfake import FakeHTTPServer, FakeRequest, FakeResponse

ALL_SCOPES = frozenset({"tweet.read", "tweet.write", "users.read", "dm.read", "dm.write",
                        "offline.access"})
DEFAULT_POST_FIELDS = ("id", "text", "edit_history_tweet_ids")
DEFAULT_DM_FIELDS = ("id", "event_type", "text")
DEFAULT_USER_FIELDS = ("id", "name", "username")
#: Rate limits per 15-minute window per user (PLATFORMS.md §3).
DEFAULT_LIMITS = {"mentions": 300, "tweets": 900, "dm_events": 15, "post create": 100,
                  "dm create": 15, "users/me": 75}
WINDOW_S = 15 * 60
REPLY_RULE_DETAIL = ("Reply to this conversation is not allowed because you have not been "
                     "mentioned or otherwise engaged by the author of the post you are "
                     "replying to.")
_SNOWFLAKE_BASE = 1_860_000_000_000_000_000
_LEADING_MENTIONS = re.compile(r"^(?:@\w+\s+)+")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def problem(status: int, title: str, detail: str, type_: str = "about:blank") -> FakeResponse:
    return FakeResponse(status, {"title": title, "type": type_, "status": status,
                                 "detail": detail})


@dataclass
class User:
    id: str
    username: str
    name: str
    followers: int = 0
    verified: bool = False
    posts: int = 0

    def render(self, fields: set[str], post_names: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "username": self.username}
        if "public_metrics" in fields:
            out["public_metrics"] = {
                "followers_count": self.followers, "following_count": 10,
                ("post_count" if post_names else "tweet_count"): self.posts,
                "listed_count": 0, "like_count": 0,
            }
        if "verified" in fields:
            out["verified"] = self.verified
        return out


@dataclass
class Post:
    id: str
    text: str
    author_id: str
    created_at: float
    conversation_id: str
    in_reply_to_user_id: str | None = None
    referenced: list[dict[str, str]] = field(default_factory=list)
    mentions: list[dict[str, Any]] = field(default_factory=list)
    likes: int = 0
    reposts: int = 0
    replies: int = 0
    quotes: int = 0

    def render(self, fields: set[str], post_names: bool = False) -> dict[str, Any]:
        # X returns post text with &, < and > HTML-escaped [U: long-standing behaviour
        # reported by API users, not in the v2 reference].
        out: dict[str, Any] = {"id": self.id, "text": html.escape(self.text, quote=False),
                               ("edit_history_post_ids" if post_names
                                else "edit_history_tweet_ids"): [self.id]}
        if "author_id" in fields:
            out["author_id"] = self.author_id
        if "created_at" in fields:
            out["created_at"] = iso(self.created_at)
        if "conversation_id" in fields:
            out["conversation_id"] = self.conversation_id
        if "in_reply_to_user_id" in fields and self.in_reply_to_user_id:
            out["in_reply_to_user_id"] = self.in_reply_to_user_id
        if ("referenced_tweets" in fields or "referenced_posts" in fields) and self.referenced:
            out["referenced_posts" if post_names else "referenced_tweets"] = [
                dict(r) for r in self.referenced]
        if "public_metrics" in fields:
            out["public_metrics"] = {"retweet_count": self.reposts, "reply_count": self.replies,
                                     "like_count": self.likes, "quote_count": self.quotes,
                                     "bookmark_count": 0, "impression_count": 0}
        if "entities" in fields and self.mentions:
            out["entities"] = {"mentions": [dict(m) for m in self.mentions]}
        return out


@dataclass
class DMEvent:
    id: str
    text: str
    sender_id: str
    dm_conversation_id: str
    created_at: float
    event_type: str = "MessageCreate"

    def render(self, fields: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "event_type": self.event_type, "text": self.text}
        if "created_at" in fields:
            out["created_at"] = iso(self.created_at)
        if "dm_conversation_id" in fields:
            out["dm_conversation_id"] = self.dm_conversation_id
        if "sender_id" in fields:
            out["sender_id"] = self.sender_id
        return out


@dataclass
class Token:
    user_id: str
    expires_at: float
    scopes: frozenset[str] = ALL_SCOPES


class FakeX:
    """The fake platform: users, posts, DM events, tokens and rate limits.

    ``clock`` returns epoch seconds; tests can replace it to age tokens or windows.
    ``post_names=True`` answers with the openapi.json names (``referenced_posts`` ...).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time,
                 post_names: bool = False) -> None:
        self.clock = clock
        self.post_names = post_names
        self.server = FakeHTTPServer()
        self.users: dict[str, User] = {}
        self.posts: dict[str, Post] = {}
        self.dm_events: list[DMEvent] = []
        self.tokens: dict[str, Token] = {}
        self.refresh_tokens: dict[str, tuple[str, str]] = {}  # token -> (user id, client id)
        self.limits = dict(DEFAULT_LIMITS)
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self.enforce_reply_rule = True
        self._routes()

    # -- state helpers for tests -----------------------------------------------------
    def next_id(self) -> str:
        return str(_SNOWFLAKE_BASE + next(self._ids) * 4096)

    def add_user(self, username: str, name: str | None = None, *, followers: int = 0,
                 verified: bool = False) -> User:
        user = User(self.next_id(), username, name or username, followers, verified)
        self.users[user.id] = user
        return user

    def issue_token(self, user: User, *, ttl: float = 7200,
                    scopes: frozenset[str] = ALL_SCOPES) -> str:
        token = "xat-" + secrets.token_urlsafe(12)
        self.tokens[token] = Token(user.id, self.clock() + ttl, scopes)
        return token

    def issue_refresh_token(self, user: User, client_id: str) -> str:
        token = "xrt-" + secrets.token_urlsafe(12)
        self.refresh_tokens[token] = (user.id, client_id)
        return token

    def expire_tokens(self) -> None:
        for token in self.tokens.values():
            token.expires_at = self.clock() - 1

    def post(self, author: User, text: str, *, reply_to: str | None = None,
             quote: str | None = None, mentions: list[User] = (), at: float | None = None,
             likes: int = 0) -> Post:
        """A post as someone wrote it in the X app (no reply rule, no length check)."""
        with self._lock:
            post_id = self.next_id()
            parent = self.posts.get(reply_to) if reply_to else None
            refs = []
            if parent:
                refs.append({"type": "replied_to", "id": parent.id})
                parent.replies += 1
            if quote:
                refs.append({"type": "quoted", "id": quote})
            ents = []
            for user in mentions:
                at_name = f"@{user.username}"
                start = text.find(at_name)
                if start < 0:
                    text = f"{at_name} {text}"
                    start = 0
                ents.append({"start": start, "end": start + len(at_name),
                             "username": user.username, "id": user.id})
            p = Post(post_id, text, author.id, self.clock() if at is None else at,
                     parent.conversation_id if parent else post_id,
                     parent.author_id if parent else None, refs, ents, likes=likes)
            self.posts[post_id] = p
            author.posts += 1
            return p

    def dm(self, sender: User, recipient: User, text: str, *, at: float | None = None
           ) -> DMEvent:
        with self._lock:
            low, high = sorted((sender.id, recipient.id), key=int)
            event = DMEvent(self.next_id(), text, sender.id, f"{low}-{high}",
                            self.clock() if at is None else at)
            self.dm_events.append(event)
            return event

    def replies_by(self, user: User, parent: str) -> list[Post]:
        return [p for p in self.posts.values() if p.author_id == user.id
                and {"type": "replied_to", "id": parent} in p.referenced]

    def dms_from(self, user: User) -> list[DMEvent]:
        return [e for e in self.dm_events if e.sender_id == user.id]

    # -- HTTP plumbing ---------------------------------------------------------------
    def start(self) -> FakeX:
        self.server.start()
        return self

    def stop(self, *, wait: bool = False) -> None:
        """Stop serving. By default in the background: the server's loop notices only
        every 0.5 s, which would otherwise add half a second to every test."""
        if wait:
            self.server.stop()
        else:
            threading.Thread(target=self.server.stop, daemon=True).start()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def _auth(self, req: FakeRequest, scopes: tuple[str, ...]) -> Token | FakeResponse:
        header = req.header("authorization", "")
        token = self.tokens.get(header[7:]) if header.startswith("Bearer ") else None
        if token is None or token.expires_at <= self.clock():
            return problem(401, "Unauthorized", "Unauthorized")
        missing = [s for s in scopes if s not in token.scopes]
        if missing:
            # [U] the exact body for a token lacking a scope.
            return problem(403, "Forbidden", "You are not permitted to perform this action. "
                           f"Missing scope: {', '.join(missing)}",
                           "https://api.twitter.com/2/problems/client-forbidden")
        return token

    def _rate(self, endpoint: str, user_id: str) -> tuple[dict[str, str], bool]:
        """Count one call; return the headers and whether the window is exhausted."""
        limit = self.limits[endpoint]
        now = self.clock()
        with self._lock:
            reset, used = self._windows.get((endpoint, user_id), (now + WINDOW_S, 0))
            if reset <= now:
                reset, used = now + WINDOW_S, 0
            over = used >= limit
            if not over:
                used += 1
            self._windows[(endpoint, user_id)] = (reset, used)
        headers = {"x-rate-limit-limit": str(limit),
                   "x-rate-limit-remaining": str(max(0, limit - used)),
                   "x-rate-limit-reset": str(int(reset))}
        return headers, over

    def exhaust(self, endpoint: str, user: User, *, reset_in: float = 600) -> None:
        """Use up ``endpoint``'s window for ``user`` (the next call gets a 429)."""
        self._windows[(endpoint, user.id)] = (self.clock() + reset_in, self.limits[endpoint])

    def _guard(self, req: FakeRequest, endpoint: str, scopes: tuple[str, ...]
               ) -> tuple[Token, dict[str, str]] | FakeResponse:
        auth = self._auth(req, scopes)
        if isinstance(auth, FakeResponse):
            return auth
        headers, over = self._rate(endpoint, auth.user_id)
        if over:
            return FakeResponse(429, {"errors": [{"code": 88,
                                                  "message": "Rate limit exceeded"}]}, headers)
        return auth, headers

    @staticmethod
    def _fields(req: FakeRequest, name: str) -> set[str]:
        alt = name.replace("tweet.", "post.") if name.startswith("tweet.") else name
        value = req.arg(name) or req.arg(alt) or ""
        return {f for f in value.split(",") if f}

    @staticmethod
    def _max_results(req: FakeRequest, low: int, high: int, default: int
                     ) -> int | FakeResponse:
        raw = req.arg("max_results")
        if raw is None:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            return FakeResponse(400, {
                "errors": [{"parameters": {"max_results": [raw]},
                            "message": f"The `max_results` query parameter value [{raw}] is "
                                       f"not between {low} and {high}"}],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request"})
        return int(raw)

    def _page(self, req: FakeRequest, items: list[Any], size: int) -> tuple[list[Any], dict]:
        """Newest-first paging with opaque next_token values."""
        start = 0
        token = req.arg("pagination_token")
        if token:
            if not token.startswith("pg") or not token[2:].isdigit():
                raise _BadRequest("pagination_token", token)
            start = int(token[2:])
        chunk = items[start:start + size]
        meta: dict[str, Any] = {"result_count": len(chunk)}
        if chunk:
            meta["newest_id"] = chunk[0].id
            meta["oldest_id"] = chunk[-1].id
        if start + size < len(items):
            meta["next_token"] = f"pg{start + size}"
        if start:
            meta["previous_token"] = f"pg{max(0, start - size)}"
        return chunk, meta

    def _post_list(self, req: FakeRequest, posts: list[Post]) -> dict[str, Any]:
        fields = self._fields(req, "tweet.fields")
        expansions = self._fields(req, "expansions")
        user_fields = self._fields(req, "user.fields")
        size = self._max_results(req, 5, 100, 10)
        if isinstance(size, FakeResponse):
            raise _Answer(size)
        since, until = req.arg("since_id"), req.arg("until_id")
        if since:
            posts = [p for p in posts if int(p.id) > int(since)]
        if until:
            posts = [p for p in posts if int(p.id) < int(until)]
        start_time = req.arg("start_time")
        if start_time:
            cutoff = datetime.fromisoformat(start_time.replace("Z", "+00:00")).timestamp()
            posts = [p for p in posts if p.created_at >= cutoff]
        posts = sorted(posts, key=lambda p: int(p.id), reverse=True)[:800]
        chunk, meta = self._page(req, posts, size)
        if "author_id" in expansions:
            fields = fields | {"author_id"}
        body: dict[str, Any] = {}
        if chunk:
            body["data"] = [p.render(fields, self.post_names) for p in chunk]
        includes: dict[str, list[Any]] = {}
        user_ids: list[str] = []
        if "author_id" in expansions:
            user_ids += [p.author_id for p in chunk]
        if "referenced_tweets.id" in expansions or "referenced_posts.id" in expansions:
            refs = [self.posts[r["id"]] for p in chunk for r in p.referenced
                    if r["id"] in self.posts]
            if refs:
                includes["posts" if self.post_names else "tweets"] = [
                    r.render(fields, self.post_names) for r in _unique(refs)]
            if "referenced_tweets.id.author_id" in expansions:
                user_ids += [r.author_id for r in refs]
        users = [self.users[u] for u in dict.fromkeys(user_ids) if u in self.users]
        if users:
            includes["users"] = [u.render(user_fields, self.post_names) for u in users]
        if includes:
            body["includes"] = includes
        body["meta"] = meta
        return body

    def _routes(self) -> None:
        route = self.server.route

        def wrap(handler: Callable[[FakeRequest], FakeResponse]
                 ) -> Callable[[FakeRequest], FakeResponse]:
            def run(req: FakeRequest) -> FakeResponse:
                try:
                    return handler(req)
                except _Answer as answer:
                    return answer.response
                except _BadRequest as bad:
                    return FakeResponse(400, {
                        "errors": [{"parameters": {bad.name: [bad.value]},
                                    "message": f"The `{bad.name}` query parameter value "
                                               f"[{bad.value}] is not valid"}],
                        "title": "Invalid Request",
                        "detail": "One or more parameters to your request was invalid.",
                        "type": "https://api.twitter.com/2/problems/invalid-request"})
            return run

        @route("GET", r"/2/users/me")
        @wrap
        def me(req: FakeRequest) -> FakeResponse:
            g = self._guard(req, "users/me", ("users.read", "tweet.read"))
            if isinstance(g, FakeResponse):
                return g
            token, headers = g
            user = self.users[token.user_id]
            return FakeResponse(200, {"data": user.render(self._fields(req, "user.fields"),
                                                          self.post_names)}, headers)

        @route("GET", r"/2/users/(?P<id>[^/]+)/mentions")
        @wrap
        def mentions(req: FakeRequest) -> FakeResponse:
            g = self._guard(req, "mentions", ("tweet.read", "users.read"))
            if isinstance(g, FakeResponse):
                return g
            _token, headers = g
            uid = req.params["id"]
            if uid not in self.users:
                return problem(404, "Not Found Error", f"Could not find user with id: [{uid}].",
                               "https://api.twitter.com/2/problems/resource-not-found")
            with self._lock:
                posts = [p for p in self.posts.values()
                         if any(m["id"] == uid for m in p.mentions)]
                return FakeResponse(200, self._post_list(req, posts), headers)

        @route("GET", r"/2/users/(?P<id>[^/]+)/tweets")
        @wrap
        def timeline(req: FakeRequest) -> FakeResponse:
            g = self._guard(req, "tweets", ("tweet.read", "users.read"))
            if isinstance(g, FakeResponse):
                return g
            _token, headers = g
            uid = req.params["id"]
            with self._lock:
                posts = [p for p in self.posts.values() if p.author_id == uid]
                if "retweets" in (req.arg("exclude") or ""):
                    posts = [p for p in posts
                             if not any(r["type"] == "retweeted" for r in p.referenced)]
                return FakeResponse(200, self._post_list(req, posts), headers)

        def dm_list(req: FakeRequest, events: list[DMEvent], headers: dict[str, str]
                    ) -> FakeResponse:
            size = self._max_results(req, 1, 100, 100)
            if isinstance(size, FakeResponse):
                return size
            types = (req.arg("event_types") or "MessageCreate,ParticipantsJoin,"
                     "ParticipantsLeave").split(",")
            events = [e for e in events if e.event_type in types]
            events = sorted(events, key=lambda e: int(e.id), reverse=True)
            cutoff = self.clock() - 30 * 86400
            events = [e for e in events if e.created_at >= cutoff]
            chunk, meta = self._page(req, events, size)
            meta.pop("newest_id", None)
            meta.pop("oldest_id", None)
            fields = self._fields(req, "dm_event.fields")
            body: dict[str, Any] = {}
            if chunk:
                body["data"] = [e.render(fields) for e in chunk]
            if "sender_id" in self._fields(req, "expansions"):
                users = [self.users[u] for u in dict.fromkeys(e.sender_id for e in chunk)
                         if u in self.users]
                if users:
                    body["includes"] = {"users": [
                        u.render(self._fields(req, "user.fields"), self.post_names)
                        for u in users]}
            body["meta"] = meta
            return FakeResponse(200, body, headers)

        @route("GET", r"/2/dm_events")
        @wrap
        def dm_events(req: FakeRequest) -> FakeResponse:
            g = self._guard(req, "dm_events", ("dm.read", "tweet.read", "users.read"))
            if isinstance(g, FakeResponse):
                return g
            token, headers = g
            with self._lock:
                mine = [e for e in self.dm_events
                        if token.user_id in e.dm_conversation_id.split("-")]
                return dm_list(req, mine, headers)

        @route("GET", r"/2/dm_conversations/(?P<conv>[0-9-]+)/dm_events")
        @wrap
        def conversation_events(req: FakeRequest) -> FakeResponse:
            g = self._guard(req, "dm_events", ("dm.read", "tweet.read", "users.read"))
            if isinstance(g, FakeResponse):
                return g
            token, headers = g
            conv = req.params["conv"]
            if token.user_id not in conv.split("-"):
                return problem(403, "Forbidden", "You are not a participant")
            with self._lock:
                events = [e for e in self.dm_events if e.dm_conversation_id == conv]
                return dm_list(req, events, headers)

        @route("POST", r"/2/tweets")
        @wrap
        def create_post(req: FakeRequest) -> FakeResponse:
            g = self._guard(req, "post create", ("tweet.write", "tweet.read", "users.read"))
            if isinstance(g, FakeResponse):
                return g
            token, headers = g
            try:
                body = req.json()
            except ValueError:
                return problem(400, "Invalid Request", "Request body is not valid JSON")
            text = body.get("text") if isinstance(body, dict) else None
            if not isinstance(text, str) or not text:
                return problem(400, "Invalid Request",
                               "One or more parameters to your request was invalid.",
                               "https://api.twitter.com/2/problems/invalid-request")
            if textlen.count(text, "x_weighted") > 280:
                return problem(400, "Invalid Request", "Your Post text is too long.",
                               "https://api.twitter.com/2/problems/invalid-request")
            me = self.users[token.user_id]
            with self._lock:
                if any(p.author_id == me.id and _LEADING_MENTIONS.sub("", p.text) == text
                       for p in self.posts.values()):
                    # [U] duplicate refusal as v1.1 did it (error 187).
                    return problem(403, "Forbidden", "You are not allowed to create a Tweet "
                                   "with duplicate content.")
                parent_id = (body.get("reply") or {}).get("in_reply_to_tweet_id")
                parent = None
                if parent_id is not None:
                    parent = self.posts.get(parent_id) if isinstance(parent_id, str) else None
                    if parent is None:
                        return problem(403, "Forbidden", "You attempted to reply to a Tweet "
                                       "that is deleted or not visible to you.")
                    if self.enforce_reply_rule and not self._engaged(parent, me):
                        return problem(403, "Forbidden", REPLY_RULE_DETAIL)
                author = self.users[parent.author_id] if parent else None
                # The reply metadata becomes a leading "@author " in the stored text, as in
                # posts read back through v2; the create answer echoes the text sent [U].
                post = self.post(me, text, reply_to=parent.id if parent else None,
                                 mentions=[author] if author and author is not me else [])
            return FakeResponse(201, {"data": {
                "id": post.id, "text": html.escape(text, quote=False),
                ("edit_history_post_ids" if self.post_names else "edit_history_tweet_ids"):
                    [post.id]}}, headers)

        def send_dm(req: FakeRequest, token: Token, headers: dict[str, str],
                    conv: str) -> FakeResponse:
            try:
                body = req.json()
            except ValueError:
                return problem(400, "Invalid Request", "Request body is not valid JSON")
            text = body.get("text") if isinstance(body, dict) else None
            if not isinstance(text, str) or not text:
                return problem(400, "Invalid Request", "text or attachments is required",
                               "https://api.twitter.com/2/problems/invalid-request")
            if textlen.count(text, "chars") > 10000:  # [U] DM limit
                return problem(400, "Invalid Request", "Message text is too long.",
                               "https://api.twitter.com/2/problems/invalid-request")
            with self._lock:
                event = DMEvent(self.next_id(), text, token.user_id, conv, self.clock())
                self.dm_events.append(event)
            return FakeResponse(201, {"data": {"dm_conversation_id": conv,
                                               "dm_event_id": event.id}}, headers)

        @route("POST", r"/2/dm_conversations/(?P<conv>[0-9]+-[0-9]+)/messages")
        @wrap
        def dm_to_conversation(req: FakeRequest) -> FakeResponse:
            g = self._guard(req, "dm create", ("dm.write", "dm.read", "tweet.read",
                                               "users.read"))
            if isinstance(g, FakeResponse):
                return g
            token, headers = g
            conv = req.params["conv"]
            if token.user_id not in conv.split("-"):
                return problem(403, "Forbidden", "You are not a participant in this "
                               "conversation.")
            return send_dm(req, token, headers, conv)

        @route("POST", r"/2/dm_conversations/with/(?P<pid>[0-9]+)/messages")
        @wrap
        def dm_to_participant(req: FakeRequest) -> FakeResponse:
            g = self._guard(req, "dm create", ("dm.write", "dm.read", "tweet.read",
                                               "users.read"))
            if isinstance(g, FakeResponse):
                return g
            token, headers = g
            pid = req.params["pid"]
            if pid not in self.users:
                return problem(404, "Not Found Error", f"Could not find user with id: [{pid}].",
                               "https://api.twitter.com/2/problems/resource-not-found")
            low, high = sorted((token.user_id, pid), key=int)
            return send_dm(req, token, headers, f"{low}-{high}")

        @route("POST", r"/2/oauth2/token")
        @wrap
        def oauth_token(req: FakeRequest) -> FakeResponse:
            form = {k: v[0] for k, v in req.form().items()}
            invalid = FakeResponse(400, {"error": "invalid_request",
                                         "error_description": "Value passed for the token "
                                                              "was invalid."})
            if form.get("grant_type") != "refresh_token":
                return FakeResponse(400, {"error": "unsupported_grant_type",
                                          "error_description": "Unsupported grant type"})
            with self._lock:
                entry = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
                if entry is None:
                    return invalid
                user_id, client_id = entry
                if form.get("client_id") != client_id:
                    self.refresh_tokens[form.get("refresh_token", "")] = entry
                    return FakeResponse(400, {"error": "invalid_request",
                                              "error_description": "Missing valid authorization"
                                                                   " header"})
                user = self.users[user_id]
                access = self.issue_token(user)
                refresh = self.issue_refresh_token(user, client_id)
            return FakeResponse(200, {"token_type": "bearer", "expires_in": 7200,
                                      "access_token": access,
                                      "scope": " ".join(sorted(ALL_SCOPES)),
                                      "refresh_token": refresh})

    def _engaged(self, parent: Post, me: User) -> bool:
        if parent.author_id == me.id:
            return True
        if any(m["id"] == me.id for m in parent.mentions):
            return True
        return any(r["type"] == "quoted" and r["id"] in self.posts
                   and self.posts[r["id"]].author_id == me.id for r in parent.referenced)


class _Answer(Exception):
    def __init__(self, response: FakeResponse) -> None:
        self.response = response


class _BadRequest(Exception):
    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value


def _unique(posts: list[Post]) -> list[Post]:
    return list({p.id: p for p in posts}.values())
