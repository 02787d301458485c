"""A stateful fake of the Meta Graph API (Facebook Pages, Messenger, Instagram) over real
HTTP on loopback, for the facebook / instagram adapters and the webhook tests.

Wire formats follow PLATFORMS.md §4 and the documented examples in fixtures/meta/:
``/{version}/...`` paths, ``access_token`` as a parameter, ids as strings, times as
``2026-11-22T10:00:00+0000``, lists as ``{data, paging:{cursors:{before,after}, next}}``
(``next`` only when there is a next page), only the requested ``fields`` (with nested
``messages.limit(n){...}`` / ``replies{...}`` / ``parent{id}``), errors as Graph error
objects ``{"error": {message, type, code, error_subcode, fbtrace_id}}`` and usage headers
``X-App-Usage`` / ``X-Business-Use-Case-Usage`` on every answer.

It enforces: tokens (unknown or expired -> 190, subcode 463 when expired), permissions per
edge (-> 200 "Requires ... permission"), the 24-hour window for ``RESPONSE`` messages
(-> code 10, subcode 2018278), ``HUMAN_AGENT`` for 7 days only when the app has it, one
private reply per comment within 7 days (second -> 10900 [U]), Messenger 2000 characters,
Instagram DMs 1000 UTF-8 bytes and comments 2200 characters, IG replies only to
top-level comments, and usage quotas (``usage_pct`` ≥ 100 -> error 80001/80002/80006 with
``estimated_time_to_regain_access``).

Uncertain details are marked [U].
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tests.fakes.httpfake import FakeHTTPServer, FakeRequest, FakeResponse

VERSION_RX = r"/v\d+\.\d+"
ALL_PERMISSIONS = frozenset({
    "pages_messaging", "pages_read_engagement", "pages_read_user_content",
    "pages_manage_engagement", "pages_show_list", "instagram_basic",
    "instagram_manage_comments", "instagram_manage_messages"})
WINDOW_S = 24 * 3600
SEVEN_DAYS_S = 7 * 86400


def gtime(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")


def graph_error(message: str, code: int, *, subcode: int | None = None,
                type_: str = "OAuthException", status: int = 400) -> FakeResponse:
    err: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if subcode is not None:
        err["error_subcode"] = subcode
    err["fbtrace_id"] = "A" + secrets.token_hex(10)
    return FakeResponse(status, {"error": err})


# -- the fields parameter ----------------------------------------------------------------
@dataclass
class FieldSpec:
    name: str
    limit: int | None = None
    sub: dict[str, FieldSpec] | None = None
    #: ``mentioned_comment.comment_id(123)`` -> {"comment_id": "123"}
    args: dict[str, str] = field(default_factory=dict)


def parse_fields(text: str) -> dict[str, FieldSpec]:
    """``id,messages.limit(20){id,from},parent{id}`` -> specs (nested)."""
    out: dict[str, FieldSpec] = {}
    for part in _split_top(text):
        m = re.fullmatch(r"(\w+)((?:\.\w+\([^)]*\))*)(?:\{(.*)\})?", part.strip(), re.DOTALL)
        if not m:
            continue
        args = dict(re.findall(r"\.(\w+)\(([^)]*)\)", m.group(2)))
        sub = parse_fields(m.group(3)) if m.group(3) is not None else None
        limit = int(args["limit"]) if args.get("limit", "").isdigit() else None
        out[m.group(1)] = FieldSpec(m.group(1), limit, sub, args)
    return out


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


# -- state -------------------------------------------------------------------------------
@dataclass
class Person:
    id: str  # PSID (Messenger), IGSID (Instagram DMs) or app-scoped id (comments)
    name: str
    username: str = ""


@dataclass
class Page:
    id: str
    name: str
    ig_user_id: str | None = None
    ig_username: str = ""
    ig_followers: int = 0


@dataclass
class DMessage:
    id: str
    created: float
    from_id: str
    to_id: str
    text: str


@dataclass
class Conversation:
    id: str
    page_id: str
    platform: str  # messenger | instagram
    user: Person
    messages: list[DMessage] = field(default_factory=list)

    @property
    def updated(self) -> float:
        return max((m.created for m in self.messages), default=0.0)


@dataclass
class Post:
    id: str
    owner_id: str  # page id, or IG user id for media
    message: str
    created: float
    platform: str = "facebook"
    tagged_by: Person | None = None  # IG media of someone else that tags us


@dataclass
class Comment:
    id: str
    object_id: str  # post or media
    author: Person
    message: str
    created: float
    parent_id: str | None = None
    hidden: bool = False
    private_replied: bool = False


@dataclass
class Token:
    owner_id: str  # page id (also covers its linked IG account)
    expires_at: float
    permissions: frozenset[str] = ALL_PERMISSIONS
    human_agent: bool = False


class FakeMeta:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.server = FakeHTTPServer()
        self.pages: dict[str, Page] = {}
        self.people: dict[str, Person] = {}
        self.conversations: dict[str, Conversation] = {}
        self.posts: dict[str, Post] = {}
        self.comments: dict[str, Comment] = {}
        self.tokens: dict[str, Token] = {}
        #: Usage reported in the headers (percent); ≥ 100 refuses calls with a quota error.
        self.usage_pct = 5.0
        self.regain_minutes = 0
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._routes()

    # -- state helpers ---------------------------------------------------------------
    def _num(self) -> str:
        return str(10_000_000 + next(self._ids))

    def add_page(self, name: str = "Acme Support", *, instagram: bool = True,
                 ig_username: str = "acme", ig_followers: int = 1500) -> Page:
        page = Page(str(100_000_000_000_000 + next(self._ids)), name)
        if instagram:
            page.ig_user_id = str(17_841_400_000_000_000 + next(self._ids))
            page.ig_username = ig_username
            page.ig_followers = ig_followers
        self.pages[page.id] = page
        return page

    def add_person(self, name: str, username: str = "") -> Person:
        person = Person(str(24_000_000_000_000_000 + next(self._ids)), name, username)
        self.people[person.id] = person
        return person

    def issue_token(self, page: Page, *, ttl: float = 60 * 86400,
                    permissions: frozenset[str] = ALL_PERMISSIONS,
                    human_agent: bool = False) -> str:
        token = "EAAG" + secrets.token_urlsafe(16)
        self.tokens[token] = Token(page.id, self.clock() + ttl, permissions, human_agent)
        return token

    def expire_tokens(self) -> None:
        for token in self.tokens.values():
            token.expires_at = self.clock() - 1

    def _conversation(self, page: Page, person: Person, platform: str) -> Conversation:
        for conv in self.conversations.values():
            if conv.page_id == page.id and conv.user.id == person.id \
                    and conv.platform == platform:
                return conv
        prefix = "t_" if platform == "messenger" else "aWdfZAG06"
        conv = Conversation(prefix + self._num(), page.id, platform, person)
        self.conversations[conv.id] = conv
        return conv

    def dm(self, page: Page, person: Person, text: str, *, platform: str = "messenger",
           at: float | None = None, from_page: bool = False) -> DMessage:
        """A message in the page's inbox, written in Messenger/Instagram (or by the page
        from another app when ``from_page``)."""
        with self._lock:
            conv = self._conversation(page, person, platform)
            me = page.id if platform == "messenger" else (page.ig_user_id or page.id)
            prefix = "m_" if platform == "messenger" else "aWdfZAG1faXRlbTo"
            msg = DMessage(prefix + secrets.token_urlsafe(12), self.clock() if at is None
                           else at, me if from_page else person.id,
                           person.id if from_page else me, text)
            conv.messages.append(msg)
            return msg

    def page_post(self, page: Page, message: str, *, at: float | None = None) -> Post:
        with self._lock:
            post = Post(f"{page.id}_{self._num()}", page.id, message,
                        self.clock() if at is None else at)
            self.posts[post.id] = post
            return post

    def ig_media(self, page: Page, caption: str, *, at: float | None = None,
                 tagged_by: Person | None = None) -> Post:
        with self._lock:
            owner = page.ig_user_id or ""
            media = Post(str(17_900_000_000_000_000 + next(self._ids)),
                         owner if tagged_by is None else tagged_by.id, caption,
                         self.clock() if at is None else at, "instagram", tagged_by)
            if tagged_by is not None:
                media.owner_id = f"tag:{owner}"
            self.posts[media.id] = media
            return media

    def comment(self, obj: Post, author: Person, message: str, *, parent: Comment | None = None,
                at: float | None = None) -> Comment:
        with self._lock:
            if obj.platform == "facebook":
                cid = f"{obj.id.split('_')[-1]}_{self._num()}"
            else:
                cid = str(17_850_000_000_000_000 + next(self._ids))
            c = Comment(cid, obj.id, author, message, self.clock() if at is None else at,
                        parent.id if parent else None)
            self.comments[c.id] = c
            return c

    def foreign_media(self, author: Person, caption: str, *, at: float | None = None) -> Post:
        """Instagram media of another account (which may @mention us in its caption or
        comments)."""
        with self._lock:
            media = Post(str(17_900_000_000_000_000 + next(self._ids)), author.id, caption,
                         self.clock() if at is None else at, "instagram", author)
            self.posts[media.id] = media
            return media

    def _mentions(self, page: Page, media: Post, comment: Comment | None) -> bool:
        handle = f"@{page.ig_username}".lower()
        if media.owner_id == f"tag:{page.ig_user_id}":
            return True
        text = comment.message if comment is not None else media.message
        return handle in text.lower()

    def page_as_person(self, page: Page, platform: str = "facebook") -> Person:
        if platform == "instagram":
            return Person(page.ig_user_id or "", page.ig_username, page.ig_username)
        return Person(page.id, page.name)

    def replies_to(self, comment: Comment) -> list[Comment]:
        return [c for c in self.comments.values() if c.parent_id == comment.id]

    def messages_to(self, person: Person) -> list[DMessage]:
        return [m for conv in self.conversations.values() if conv.user.id == person.id
                for m in conv.messages if m.to_id == person.id]

    # -- HTTP plumbing -----------------------------------------------------------------
    def start(self) -> FakeMeta:
        self.server.start()
        return self

    def stop(self) -> None:
        threading.Thread(target=self.server.stop, daemon=True).start()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def usage_headers(self, owner: str) -> dict[str, str]:
        pct = int(self.usage_pct)
        return {
            "X-App-Usage": json.dumps({"call_count": pct, "total_cputime": max(1, pct // 2),
                                       "total_time": max(1, pct // 2)}),
            "X-Business-Use-Case-Usage": json.dumps({owner: [{
                "type": "pages", "call_count": pct, "total_cputime": max(1, pct // 3),
                "total_time": max(1, pct // 3),
                "estimated_time_to_regain_access": self.regain_minutes}]}),
        }

    def _auth(self, req: FakeRequest, permission: str | tuple[str, ...] = ()
              ) -> Token | FakeResponse:
        value = req.arg("access_token")
        if value is None and req.method == "POST":
            try:
                body = req.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("access_token"), str):
                value = body["access_token"]
        if not value:
            return graph_error("An active access token must be used to query information "
                               "about the current user.", 2500)
        token = self.tokens.get(value)
        if token is None:
            return graph_error("Invalid OAuth access token - Cannot parse access token", 190)
        if token.expires_at <= self.clock():
            stamp = datetime.fromtimestamp(token.expires_at, timezone.utc)
            return graph_error(f"Error validating access token: Session has expired on "
                               f"{stamp:%A, %d-%b-%y %H:%M:%S} PST.", 190, subcode=463)
        perms = (permission,) if isinstance(permission, str) else permission
        missing = [p for p in perms if p not in token.permissions]
        if missing:
            return graph_error(f"(#200) Requires {missing[0]} permission to manage the "
                               "object", 200, status=403)
        if self.usage_pct >= 100:
            return graph_error("There have been too many calls to this Page account. Wait a "
                               "bit and try again.", 80001, type_="OAuthException")
        return token

    def _owns(self, token: Token, owner_id: str) -> bool:
        page = self.pages.get(token.owner_id)
        return page is not None and owner_id in (page.id, page.ig_user_id)

    def _list(self, req: FakeRequest, items: list[Any], render: Callable[[Any], dict],
              default_limit: int = 25) -> dict[str, Any]:
        limit = int(req.arg("limit") or default_limit)
        start = 0
        after = req.arg("after")
        if after:
            try:
                start = int(json.loads(bytes.fromhex(after))["o"])
            except (ValueError, KeyError, TypeError):
                raise _Answer(graph_error("(#100) Invalid after cursor", 100)) from None
        chunk = items[start:start + limit]
        body: dict[str, Any] = {"data": [render(i) for i in chunk]}
        if chunk:
            paging: dict[str, Any] = {"cursors": {
                "before": json.dumps({"o": start}).encode().hex(),
                "after": json.dumps({"o": start + len(chunk)}).encode().hex()}}
            if start + limit < len(items):
                # Like Graph, the next URL repeats the token: adapters must not log it.
                paging["next"] = (f"https://graph.facebook.com/v25.0{req.path}?access_token="
                                  f"{req.arg('access_token')}&limit={limit}&after="
                                  f"{paging['cursors']['after']}")
            body["paging"] = paging
        return body

    # -- rendering ---------------------------------------------------------------------
    def _person(self, pid: str, platform: str, *, with_email: bool = True) -> dict[str, Any]:
        page = self.pages.get(pid) or next((p for p in self.pages.values()
                                            if p.ig_user_id == pid), None)
        if platform == "instagram":
            if page is not None:
                return {"username": page.ig_username, "id": pid}
            person = self.people.get(pid)
            return {"username": person.username if person else "", "id": pid}
        name = page.name if page else (self.people[pid].name if pid in self.people else "")
        out = {"name": name, "email": f"{pid}@facebook.com", "id": pid}
        if not with_email:
            out.pop("email")
        return out

    def _render_dm(self, msg: DMessage, spec: dict[str, FieldSpec], platform: str) -> dict:
        out: dict[str, Any] = {"id": msg.id}
        if "created_time" in spec:
            out["created_time"] = gtime(msg.created)
        if "from" in spec:
            out["from"] = self._person(msg.from_id, platform)
        if "to" in spec:
            out["to"] = {"data": [self._person(msg.to_id, platform)]}
        if "message" in spec:
            out["message"] = msg.text
        return out

    def _render_conv(self, conv: Conversation, spec: dict[str, FieldSpec]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": conv.id}
        me = conv.page_id if conv.platform == "messenger" else \
            (self.pages[conv.page_id].ig_user_id or conv.page_id)
        if "updated_time" in spec:
            out["updated_time"] = gtime(conv.updated)
        if "participants" in spec:
            out["participants"] = {"data": [self._person(conv.user.id, conv.platform),
                                            self._person(me, conv.platform)]}
        if "messages" in spec:
            sub = spec["messages"]
            # Newest first, 20 at most [U: the cap is reported, not documented].
            msgs = sorted(conv.messages, key=lambda m: m.created, reverse=True)
            msgs = msgs[:min(sub.limit or 20, 20)]
            fields = sub.sub or {"id": FieldSpec("id"), "created_time": FieldSpec("created_time")}
            out["messages"] = {"data": [self._render_dm(m, fields, conv.platform)
                                        for m in msgs]}
            if msgs:
                # Nested edges page like top-level ones; only the cursors are kept here.
                out["messages"]["paging"] = {"cursors": {"before": "QVFIUmRlZAZDZD",
                                                         "after": "QVFIUmFmdGVyZAZDZD"}}
        return out

    def _render_comment(self, c: Comment, spec: dict[str, FieldSpec]) -> dict[str, Any]:
        obj = self.posts[c.object_id]
        out: dict[str, Any] = {}
        if obj.platform == "facebook":
            if "created_time" in spec:
                out["created_time"] = gtime(c.created)
            if "from" in spec:
                out["from"] = {"name": c.author.name, "id": c.author.id}
            if "message" in spec:
                out["message"] = c.message
            if "parent" in spec and c.parent_id:
                out["parent"] = {"id": c.parent_id} if spec["parent"].sub is None or \
                    list(spec["parent"].sub) == ["id"] else self._render_comment(
                        self.comments[c.parent_id], spec["parent"].sub)
            if "comment_count" in spec:
                out["comment_count"] = len(self.replies_to(c))
            if "can_reply_privately" in spec:
                out["can_reply_privately"] = (not c.private_replied
                                              and self.clock() - c.created <= SEVEN_DAYS_S
                                              and c.author.id != obj.owner_id)
            if "permalink_url" in spec:
                out["permalink_url"] = (f"https://www.facebook.com/{obj.id.replace('_', '/posts/')}"
                                        f"?comment_id={c.id}")
            out["id"] = c.id
            return out
        if "timestamp" in spec:
            out["timestamp"] = gtime(c.created)
        if "text" in spec:
            out["text"] = c.message
        if "username" in spec:
            out["username"] = c.author.username
        if "from" in spec:
            out["from"] = {"id": c.author.id, "username": c.author.username}
        if "parent_id" in spec and c.parent_id:
            out["parent_id"] = c.parent_id
        if "hidden" in spec:
            out["hidden"] = c.hidden
        if "like_count" in spec:
            out["like_count"] = 0
        if "replies" in spec and c.parent_id is None:
            replies = sorted(self.replies_to(c), key=lambda r: r.created)
            if replies:
                out["replies"] = {"data": [self._render_comment(r, spec["replies"].sub or {})
                                           for r in replies]}
        out["id"] = c.id
        return out

    def _render_post(self, p: Post, spec: dict[str, FieldSpec]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if p.platform == "facebook":
            if "created_time" in spec:
                out["created_time"] = gtime(p.created)
            if "message" in spec:
                out["message"] = p.message
            if "permalink_url" in spec:
                out["permalink_url"] = f"https://www.facebook.com/{p.id.replace('_', '/posts/')}"
            out["id"] = p.id
            return out
        if "caption" in spec:
            out["caption"] = p.message
        if "timestamp" in spec:
            out["timestamp"] = gtime(p.created)
        if "permalink" in spec:
            out["permalink"] = f"https://www.instagram.com/p/C{p.id[-8:]}/"
        if "username" in spec:
            out["username"] = p.tagged_by.username if p.tagged_by else \
                next((pg.ig_username for pg in self.pages.values()
                      if pg.ig_user_id == p.owner_id), "")
        if "comments_count" in spec:
            out["comments_count"] = sum(1 for c in self.comments.values()
                                        if c.object_id == p.id)
        if "media_type" in spec:
            out["media_type"] = "IMAGE"
        out["id"] = p.id
        return out

    # -- routes ------------------------------------------------------------------------
    def _routes(self) -> None:
        route = self.server.route

        def wrap(handler: Callable[[FakeRequest], FakeResponse]
                 ) -> Callable[[FakeRequest], FakeResponse]:
            def run(req: FakeRequest) -> FakeResponse:
                try:
                    with self._lock:
                        resp = handler(req)
                except _Answer as answer:
                    resp = answer.response
                owner = next(iter(self.pages), "0")
                resp.headers = {**self.usage_headers(owner), **resp.headers}
                return resp
            return run

        def fields(req: FakeRequest) -> dict[str, FieldSpec]:
            return parse_fields(req.arg("fields") or "")

        def body_of(req: FakeRequest) -> dict[str, Any]:
            merged: dict[str, Any] = {k: v[0] for k, v in req.query.items()}
            if req.body:
                ctype = req.header("content-type", "") or ""
                if "json" in ctype:
                    try:
                        data = req.json()
                    except ValueError:
                        raise _Answer(graph_error("(#100) Invalid JSON body", 100)) from None
                    if isinstance(data, dict):
                        merged.update(data)
                else:
                    merged.update({k: v[0] for k, v in req.form().items()})
            for key in ("recipient", "message"):
                if isinstance(merged.get(key), str) and merged[key].startswith("{"):
                    merged[key] = json.loads(merged[key])
            return merged

        @route("GET", VERSION_RX + r"/me")
        @wrap
        def me(req: FakeRequest) -> FakeResponse:
            token = self._auth(req)
            if isinstance(token, FakeResponse):
                return token
            page = self.pages[token.owner_id]
            return FakeResponse(200, {"name": page.name, "id": page.id})

        @route("GET", VERSION_RX + r"/(?P<page>\d+)/conversations")
        @wrap
        def conversations(req: FakeRequest) -> FakeResponse:
            platform = req.arg("platform") or "messenger"
            perm = "pages_messaging" if platform == "messenger" else \
                "instagram_manage_messages"
            token = self._auth(req, perm)
            if isinstance(token, FakeResponse):
                return token
            if not self._owns(token, req.params["page"]):
                return graph_error("(#100) Unsupported get request.", 100)
            page = self.pages[token.owner_id]
            convs = [c for c in self.conversations.values()
                     if c.page_id == page.id and c.platform == platform]
            if req.arg("user_id"):
                convs = [c for c in convs if c.user.id == req.arg("user_id")]
            convs.sort(key=lambda c: c.updated, reverse=True)
            spec = fields(req)
            return FakeResponse(200, self._list(req, convs,
                                                lambda c: self._render_conv(c, spec)))

        @route("GET", VERSION_RX + r"/(?P<page>\d+)/posts")
        @wrap
        def posts(req: FakeRequest) -> FakeResponse:
            token = self._auth(req, "pages_read_engagement")
            if isinstance(token, FakeResponse):
                return token
            if not self._owns(token, req.params["page"]):
                return graph_error("(#100) Unsupported get request.", 100)
            items = sorted((p for p in self.posts.values()
                            if p.owner_id == req.params["page"]),
                           key=lambda p: p.created, reverse=True)
            spec = fields(req)
            return FakeResponse(200, self._list(req, items,
                                                lambda p: self._render_post(p, spec)))

        @route("GET", VERSION_RX + r"/(?P<ig>\d+)/(?P<edge>media|tags)")
        @wrap
        def media(req: FakeRequest) -> FakeResponse:
            token = self._auth(req, "instagram_basic")
            if isinstance(token, FakeResponse):
                return token
            ig = req.params["ig"]
            if not self._owns(token, ig):
                return graph_error("(#100) Unsupported get request.", 100)
            owner = ig if req.params["edge"] == "media" else f"tag:{ig}"
            items = sorted((p for p in self.posts.values() if p.owner_id == owner),
                           key=lambda p: p.created, reverse=True)
            spec = fields(req)
            return FakeResponse(200, self._list(req, items,
                                                lambda p: self._render_post(p, spec)))

        @route("GET", VERSION_RX + r"/(?P<obj>[\d_]+)/comments")
        @wrap
        def comments(req: FakeRequest) -> FakeResponse:
            obj = self.posts.get(req.params["obj"])
            perm = "pages_read_user_content" if obj is None or obj.platform == "facebook" \
                else "instagram_manage_comments"
            token = self._auth(req, perm)
            if isinstance(token, FakeResponse):
                return token
            parent = self.comments.get(req.params["obj"])
            if obj is None and parent is not None:
                # The comments edge of a comment: its replies (Facebook).
                items = sorted(self.replies_to(parent), key=lambda c: (c.created, c.id),
                               reverse=req.arg("order") == "reverse_chronological")
                spec = fields(req)
                return FakeResponse(200, self._list(req, items,
                                                    lambda c: self._render_comment(c, spec)))
            if obj is None:
                return graph_error(f"(#100) Object with ID '{req.params['obj']}' does not "
                                   "exist", 100, subcode=33, type_="GraphMethodException")
            if not self._owns(token, obj.owner_id):
                return graph_error("(#10) Permission denied", 10, status=403)
            items = [c for c in self.comments.values() if c.object_id == obj.id]
            if obj.platform == "facebook":
                if req.arg("filter") != "stream":
                    items = [c for c in items if c.parent_id is None]
                reverse = req.arg("order") == "reverse_chronological"
            else:
                items = [c for c in items if c.parent_id is None]
                reverse = True  # [U] IG returns the newest comments first
            items.sort(key=lambda c: (c.created, c.id), reverse=reverse)
            spec = fields(req)
            return FakeResponse(200, self._list(req, items,
                                                lambda c: self._render_comment(c, spec)))

        @route("GET", VERSION_RX + r"/(?P<comment>\d+)/replies")
        @wrap
        def ig_replies(req: FakeRequest) -> FakeResponse:
            token = self._auth(req, "instagram_manage_comments")
            if isinstance(token, FakeResponse):
                return token
            parent = self.comments.get(req.params["comment"])
            if parent is None:
                return graph_error("(#100) Object does not exist", 100, subcode=33)
            items = sorted(self.replies_to(parent), key=lambda c: (c.created, c.id))
            spec = fields(req)
            return FakeResponse(200, self._list(req, items,
                                                lambda c: self._render_comment(c, spec)))

        @route("GET", VERSION_RX + r"/(?P<conv>t_\d+|aWdfZAG06\d+)/messages")
        @wrap
        def conversation_messages(req: FakeRequest) -> FakeResponse:
            conv = self.conversations.get(req.params["conv"])
            perm = "instagram_manage_messages" if conv and conv.platform == "instagram" \
                else "pages_messaging"
            token = self._auth(req, perm)
            if isinstance(token, FakeResponse):
                return token
            if conv is None or conv.page_id != token.owner_id:
                return graph_error("(#100) Object does not exist", 100, subcode=33)
            items = sorted(conv.messages, key=lambda m: m.created, reverse=True)
            spec = fields(req)
            return FakeResponse(200, self._list(
                req, items, lambda m: self._render_dm(m, spec, conv.platform)))

        @route("GET", VERSION_RX + r"/(?P<node>\d+|\d+_\d+)")
        @wrap
        def node(req: FakeRequest) -> FakeResponse:
            token = self._auth(req)
            if isinstance(token, FakeResponse):
                return token
            nid = req.params["node"]
            spec = fields(req)
            if nid in self.comments:
                return FakeResponse(200, self._render_comment(self.comments[nid], spec))
            if nid in self.pages:
                page = self.pages[nid]
                out: dict[str, Any] = {"name": page.name, "id": page.id}
                if "instagram_business_account" in spec and page.ig_user_id:
                    out["instagram_business_account"] = {"id": page.ig_user_id}
                return FakeResponse(200, out)
            for page in self.pages.values():
                if page.ig_user_id == nid:
                    if "mentioned_comment" in spec or "mentioned_media" in spec:
                        return self._mentioned_impl(page, spec)
                    return FakeResponse(200, {"username": page.ig_username,
                                              "followers_count": page.ig_followers,
                                              "id": nid})
            if nid in self.people:
                person = self.people[nid]
                return FakeResponse(200, {"name": person.name, "id": nid})
            return graph_error(f"(#100) Object with ID '{nid}' does not exist", 100,
                               subcode=33, type_="GraphMethodException")

        @route("POST", VERSION_RX + r"/(?P<comment>\d+_\d+)/comments")
        @wrap
        def reply_comment(req: FakeRequest) -> FakeResponse:
            token = self._auth(req, "pages_manage_engagement")
            if isinstance(token, FakeResponse):
                return token
            parent = self.comments.get(req.params["comment"])
            if parent is None:
                return graph_error("(#100) Object does not exist", 100, subcode=33)
            text = body_of(req).get("message")
            if not isinstance(text, str) or not text.strip():
                return graph_error("(#100) The parameter message is required", 100)
            if len(text) > 8000:  # [U] Facebook comment limit
                return graph_error("(#100) Comment text is too long", 100)
            page = self.pages[token.owner_id]
            # Facebook keeps two levels: a reply to a reply joins the top-level comment.
            root = parent.parent_id or parent.id
            c = self.comment(self.posts[parent.object_id], self.page_as_person(page), text,
                             parent=self.comments[root])
            return FakeResponse(200, {"id": c.id})

        @route("POST", VERSION_RX + r"/(?P<comment>\d+)/replies")
        @wrap
        def ig_reply(req: FakeRequest) -> FakeResponse:
            token = self._auth(req, "instagram_manage_comments")
            if isinstance(token, FakeResponse):
                return token
            parent = self.comments.get(req.params["comment"])
            if parent is None:
                return graph_error("(#100) Object does not exist", 100, subcode=33)
            if parent.parent_id is not None:
                return graph_error("(#100) Replies can only be made to top-level comments",
                                   100)  # [U] wording
            if parent.hidden:
                return graph_error("(#100) Cannot reply to a hidden comment", 100)
            text = body_of(req).get("message")
            if not isinstance(text, str) or not text.strip():
                return graph_error("(#100) The parameter message is required", 100)
            if len(text) > 2200:
                return graph_error("(#100) The comment is too long", 100)
            page = self.pages[token.owner_id]
            c = self.comment(self.posts[parent.object_id],
                             self.page_as_person(page, "instagram"), text, parent=parent)
            return FakeResponse(200, {"id": c.id})

        @route("POST", VERSION_RX + r"/(?P<ig>\d+)/mentions")
        @wrap
        def ig_mention_reply(req: FakeRequest) -> FakeResponse:
            token = self._auth(req, "instagram_manage_comments")
            if isinstance(token, FakeResponse):
                return token
            body = body_of(req)
            media = self.posts.get(str(body.get("media_id")))
            page = self.pages[token.owner_id]
            parent = self.comments.get(str(body.get("comment_id"))) \
                if body.get("comment_id") else None
            if media is None or page.ig_user_id != req.params["ig"] or \
                    (body.get("comment_id") and (parent is None
                                                 or parent.object_id != media.id)) or \
                    not self._mentions(page, media, parent):
                return graph_error("(#100) Invalid media_id or comment_id: no mention of "
                                   "this account", 100)
            text = body.get("message")
            if not isinstance(text, str) or not text.strip() or len(text) > 2200:
                return graph_error("(#100) Invalid message", 100)
            c = self.comment(media, self.page_as_person(page, "instagram"), text,
                             parent=parent)
            return FakeResponse(200, {"id": c.id})

        @route("POST", VERSION_RX + r"/(?P<page>\d+)/messages")
        @wrap
        def send(req: FakeRequest) -> FakeResponse:
            body = body_of(req)
            page_id = req.params["page"]
            instagram = any(p.ig_user_id == page_id for p in self.pages.values()) or \
                body.get("platform") == "instagram"
            recipient = body.get("recipient")
            token = self._auth(req, "instagram_manage_messages" if instagram
                               else "pages_messaging")
            if isinstance(token, FakeResponse):
                return token
            if not self._owns(token, page_id):
                return graph_error("(#200) Page not owned by this token", 200, status=403)
            page = self.pages[token.owner_id]
            message = body.get("message")
            if not isinstance(recipient, dict) or not isinstance(message, dict) \
                    or not isinstance(message.get("text"), str):
                return graph_error("(#100) param recipient and message[text] are required",
                                   100)
            text = message["text"]
            comment_id = recipient.get("comment_id")
            if comment_id is not None:
                comment = self.comments.get(str(comment_id))
                if comment is None:
                    return graph_error("(#100) No matching comment", 100)
                instagram = self.posts[comment.object_id].platform == "instagram"
            elif not instagram:
                # Instagram with Facebook Login sends through the Page: the recipient's
                # IGSID tells the platform.
                instagram = any(c.platform == "instagram" and c.page_id == page.id
                                and c.user.id == str(recipient.get("id"))
                                for c in self.conversations.values())
            if instagram and len(text.encode("utf-8")) > 1000:
                return graph_error("(#100) Length of param message[text] must be less than "
                                   "or equal to 1000", 100)
            if not instagram and len(text) > 2000:
                return graph_error("(#100) Length of param message[text] must be less than "
                                   "or equal to 2000", 100)
            platform = "instagram" if instagram else "messenger"
            now = self.clock()
            if comment_id is not None:
                if comment.private_replied:
                    return graph_error("(#10900) Activity already replied to", 10900)
                if now - comment.created > SEVEN_DAYS_S:
                    return graph_error("(#10) This message is sent outside of allowed window.",
                                       10, subcode=2018278)
                comment.private_replied = True
                msg = self.dm(page, comment.author, text, platform=platform, from_page=True)
                return FakeResponse(200, {"recipient_id": comment.author.id,
                                          "message_id": msg.id})
            person = self.people.get(str(recipient.get("id")))
            if person is None:
                return graph_error("(#100) No matching user found", 100, subcode=2018001)
            conv = self._conversation(page, person, platform)
            last_user = max((m.created for m in conv.messages if m.from_id == person.id),
                            default=None)
            kind = body.get("messaging_type", "RESPONSE")
            tag = body.get("tag")
            if kind == "MESSAGE_TAG":
                if tag != "HUMAN_AGENT":
                    return graph_error("(#100) Unsupported tag", 100)
                if not token.human_agent:
                    return graph_error("(#10) Application does not have the capability to "
                                       "make this API call.", 10, subcode=2018065)
                allowed = SEVEN_DAYS_S
            elif kind in ("RESPONSE", "UPDATE"):
                allowed = WINDOW_S
            else:
                return graph_error("(#100) Invalid messaging_type", 100)
            if last_user is None or now - last_user > allowed:
                return graph_error("(#10) This message is sent outside of allowed window.",
                                   10, subcode=2018278)
            msg = self.dm(page, person, text, platform=platform, from_page=True)
            return FakeResponse(200, {"recipient_id": person.id, "message_id": msg.id})


    def _mentioned_impl(self, page: Page, spec: dict[str, FieldSpec]) -> FakeResponse:
        out: dict[str, Any] = {}
        if "mentioned_comment" in spec:
            fs = spec["mentioned_comment"]
            c = self.comments.get(fs.args.get("comment_id", ""))
            if c is None or not self._mentions(page, self.posts[c.object_id], c):
                return graph_error("(#100) Invalid comment_id: no mention of this account",
                                   100)
            sub = fs.sub or {"id": FieldSpec("id")}
            item: dict[str, Any] = {}
            if "timestamp" in sub:
                item["timestamp"] = gtime(c.created)
            if "text" in sub:
                item["text"] = c.message
            if "username" in sub:
                item["username"] = c.author.username  # [U] documented for mentioned_comment
            if "media" in sub:
                item["media"] = self._render_post(self.posts[c.object_id],
                                                  sub["media"].sub or {})
            item["id"] = c.id
            out["mentioned_comment"] = item
        if "mentioned_media" in spec:
            fs = spec["mentioned_media"]
            media = self.posts.get(fs.args.get("media_id", ""))
            if media is None or not self._mentions(page, media, None):
                return graph_error("(#100) Invalid media_id: no mention of this account", 100)
            out["mentioned_media"] = self._render_post(media, fs.sub or {})
        out["id"] = page.ig_user_id
        return FakeResponse(200, out)


class _Answer(Exception):
    def __init__(self, response: FakeResponse) -> None:
        self.response = response
