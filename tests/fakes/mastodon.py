"""A stateful fake Mastodon server speaking the documented REST API (PLATFORMS.md §1).

Only the endpoints replydeck uses, with Mastodon's wire details: string snowflake-like
ids, ``Link`` paging (``min_id``/``max_id``/``since_id``), ``X-RateLimit-*`` headers with
an ISO-8601 reset, 429 ``{"error":"Too many requests"}`` without Retry-After, 401
``{"error":"The access token is invalid"}``, scope checks, ``Idempotency-Key`` dedupe for
one hour, HTML content, visibility, the thread context and the v2 instance.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from tests.fakes.httpfake import FakeHTTPServer, FakeRequest, FakeResponse

UTC = timezone.utc
DOMAIN = "social.example"
IDEMPOTENCY_TTL = timedelta(hours=1)
_MENTION_RE = re.compile(r"@([A-Za-z0-9_]+)(?:@([A-Za-z0-9.-]+\w))?")
_URL_RE = re.compile(r"https?://[^\s<]+")


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def id_key(i: str) -> tuple[int, str]:
    return (len(i), i)


@dataclass
class Account:
    id: str
    username: str
    token: str | None = None
    scopes: set[str] = field(default_factory=lambda: {"read", "write"})
    display_name: str = ""
    followers_count: int = 0
    domain: str | None = None  # None: local to this instance

    @property
    def acct(self) -> str:
        return f"{self.username}@{self.domain}" if self.domain else self.username

    @property
    def url(self) -> str:
        return f"https://{self.domain or DOMAIN}/@{self.username}"

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id, "username": self.username, "acct": self.acct,
            "display_name": self.display_name, "locked": False, "bot": False,
            "discoverable": True, "group": False, "created_at": "2024-01-01T00:00:00.000Z",
            "note": "", "url": self.url,
            "avatar": f"https://{DOMAIN}/avatars/original/missing.png",
            "avatar_static": f"https://{DOMAIN}/avatars/original/missing.png",
            "header": f"https://{DOMAIN}/headers/original/missing.png",
            "header_static": f"https://{DOMAIN}/headers/original/missing.png",
            "followers_count": self.followers_count, "following_count": 0,
            "statuses_count": 0, "last_status_at": None, "emojis": [], "fields": [],
        }


@dataclass
class Status:
    id: str
    account: Account
    text: str
    visibility: str
    created_at: datetime
    in_reply_to_id: str | None = None
    in_reply_to_account_id: str | None = None
    mentions: list[Account] = field(default_factory=list)
    spoiler_text: str = ""
    content_html: str | None = None  # raw HTML override for tests

    def html(self) -> str:
        if self.content_html is not None:
            return self.content_html
        by_name = {m.acct.lower(): m for m in self.mentions}

        def render(segment: str) -> str:
            out, pos = [], 0
            for m in _MENTION_RE.finditer(segment):
                out.append(html.escape(segment[pos:m.start()]))
                acct = m.group(1) + (f"@{m.group(2)}" if m.group(2) else "")
                acc = by_name.get(acct.lower())
                if acc is None:
                    out.append(html.escape(m.group(0)))
                else:
                    out.append(f'<span class="h-card" translate="no"><a href="{acc.url}" '
                               f'class="u-url mention">@<span>{html.escape(acc.username)}'
                               "</span></a></span>")
                pos = m.end()
            out.append(html.escape(segment[pos:]))
            return "".join(out)

        def para(p: str) -> str:
            parts, pos = [], 0
            for u in _URL_RE.finditer(p):
                parts.append(render(p[pos:u.start()]))
                url = u.group(0)
                scheme, rest = url.split("://", 1)
                parts.append(f'<a href="{html.escape(url)}" rel="nofollow noopener" '
                             f'target="_blank"><span class="invisible">{scheme}://</span>'
                             f'<span class="ellipsis">{html.escape(rest[:30])}</span>'
                             f'<span class="invisible">{html.escape(rest[30:])}</span></a>')
                pos = u.end()
            parts.append(render(p[pos:]))
            return "<br />".join("".join(parts).split("\n"))

        return "".join(f"<p>{para(p)}</p>" for p in self.text.split("\n\n"))

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id, "created_at": iso(self.created_at),
            "in_reply_to_id": self.in_reply_to_id,
            "in_reply_to_account_id": self.in_reply_to_account_id,
            "sensitive": bool(self.spoiler_text), "spoiler_text": self.spoiler_text,
            "visibility": self.visibility, "language": "en",
            "uri": f"https://{DOMAIN}/users/{self.account.username}/statuses/{self.id}",
            "url": f"https://{DOMAIN}/@{self.account.username}/{self.id}",
            "replies_count": 0, "reblogs_count": 0, "favourites_count": 0,
            "edited_at": None, "favourited": False, "reblogged": False, "muted": False,
            "bookmarked": False, "content": self.html(), "reblog": None,
            "application": {"name": "Web", "website": None},
            "account": self.account.json(), "media_attachments": [],
            "mentions": [{"id": m.id, "username": m.username, "url": m.url, "acct": m.acct}
                         for m in self.mentions],
            "tags": [], "emojis": [], "card": None, "poll": None,
        }


@dataclass
class Notification:
    id: str
    account_id: str  # recipient
    type: str
    from_account: Account
    status: Status | None
    created_at: datetime
    filtered: bool = False

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "created_at": iso(self.created_at),
                "group_key": f"ungrouped-{self.id}", "account": self.from_account.json(),
                "status": self.status.json() if self.status else None}


class FakeMastodon:
    def __init__(self, *, first_id: int = 113_000_000_000_000_000, max_characters: int = 500,
                 rate_limit: int = 300, clock: Callable[[], datetime] | None = None) -> None:
        self.server = FakeHTTPServer()
        self.clock = clock or (lambda: datetime.now(UTC))
        self._next_id = first_id
        self._lock = threading.RLock()
        self.max_characters = max_characters
        self.rate_limit = rate_limit
        self.window = timedelta(minutes=5)
        self._used: dict[str, tuple[datetime, int]] = {}
        self.accounts: dict[str, Account] = {}
        self.statuses: dict[str, Status] = {}
        self.notifications: list[Notification] = []
        self._idempotency: dict[tuple[str, str], tuple[datetime, str]] = {}
        self._routes()

    # -- state helpers (used by tests) -------------------------------------------------
    def new_id(self) -> str:
        with self._lock:
            self._next_id += 1
            return str(self._next_id)

    def add_account(self, username: str, *, token: str | None = None,
                    scopes: set[str] | None = None, display_name: str = "",
                    followers: int = 0, domain: str | None = None) -> Account:
        acc = Account(self.new_id(), username, token, scopes or {"read", "write"},
                      display_name or username.title(), followers, domain)
        self.accounts[acc.id] = acc
        return acc

    def by_token(self, token: str) -> Account | None:
        return next((a for a in self.accounts.values() if a.token == token), None)

    def post(self, author: Account, text: str, *, visibility: str = "public",
             in_reply_to: str | None = None, spoiler_text: str = "",
             content_html: str | None = None, filtered_for: set[str] | None = None) -> Status:
        """Create a status as ``author`` would, notifying every mentioned local account."""
        with self._lock:
            mentioned: list[Account] = []
            for m in _MENTION_RE.finditer(text):
                acct = m.group(1) + (f"@{m.group(2)}" if m.group(2) else "")
                if m.group(2) == DOMAIN:
                    acct = m.group(1)
                acc = next((a for a in self.accounts.values()
                            if a.acct.lower() == acct.lower()), None)
                if acc and acc not in mentioned:
                    mentioned.append(acc)
            parent = self.statuses.get(in_reply_to) if in_reply_to else None
            st = Status(self.new_id(), author, text, visibility, self.clock(),
                        in_reply_to_id=parent.id if parent else None,
                        in_reply_to_account_id=parent.account.id if parent else None,
                        mentions=mentioned, spoiler_text=spoiler_text,
                        content_html=content_html)
            self.statuses[st.id] = st
            for acc in mentioned:
                if acc.id != author.id and acc.domain is None:
                    self.notifications.append(Notification(
                        self.new_id(), acc.id, "mention", author, st, self.clock(),
                        filtered=acc.id in (filtered_for or set())))
            return st

    def notify(self, recipient: Account, type_: str, from_account: Account) -> Notification:
        n = Notification(self.new_id(), recipient.id, type_, from_account, None, self.clock())
        self.notifications.append(n)
        return n

    # -- wire helpers ------------------------------------------------------------------
    def _rate_headers(self, token: str) -> tuple[dict[str, str], bool]:
        now = self.clock()
        with self._lock:
            start, used = self._used.get(token, (now, 0))
            if now - start >= self.window:
                start, used = now, 0
            used += 1
            self._used[token] = (start, used)
        reset = start + self.window
        headers = {"X-RateLimit-Limit": str(self.rate_limit),
                   "X-RateLimit-Remaining": str(max(0, self.rate_limit - used)),
                   "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        return headers, used > self.rate_limit

    def _auth(self, req: FakeRequest, scope: str | None
              ) -> tuple[Account | None, FakeResponse | None, dict[str, str]]:
        auth = req.header("authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else ""
        acc = self.by_token(token) if token else None
        if acc is None:
            return None, FakeResponse(401, {"error": "The access token is invalid"}), {}
        headers, limited = self._rate_headers(token)
        if limited:
            return None, FakeResponse(429, {"error": "Too many requests"}, headers), headers
        if scope:
            top = scope.split(":")[0]
            if scope not in acc.scopes and top not in acc.scopes:
                return None, FakeResponse(
                    403, {"error": "This action is outside the authorized scopes"},
                    headers), headers
        return acc, None, headers

    def _paged(self, req: FakeRequest, entries: list[Any], path: str,
               extra: dict[str, list[str]]) -> tuple[list[Any], dict[str, str]]:
        """Mastodon paging over entries sorted newest first (each has ``.id``)."""
        limit = min(int(req.arg("limit", "40") or 40), 80)
        max_id, since_id, min_id = req.arg("max_id"), req.arg("since_id"), req.arg("min_id")
        items = sorted(entries, key=lambda e: id_key(e.id), reverse=True)
        if max_id:
            items = [e for e in items if id_key(e.id) < id_key(max_id)]
        if since_id:
            items = [e for e in items if id_key(e.id) > id_key(since_id)]
        if min_id:
            # The page immediately newer than min_id, still returned newest first.
            newer = [e for e in items if id_key(e.id) > id_key(min_id)]
            page = list(reversed(list(reversed(newer))[:limit]))
        else:
            page = items[:limit]
        links = []
        if page:
            base = f"{self.server.base_url}{path}"
            keep = [(k, v) for k, vs in extra.items() for v in vs]
            nxt = urlencode([*keep, ("limit", str(limit)), ("max_id", page[-1].id)])
            prv = urlencode([*keep, ("limit", str(limit)), ("min_id", page[0].id)])
            links = [f'<{base}?{nxt}>; rel="next"', f'<{base}?{prv}>; rel="prev"']
        return page, ({"Link": ", ".join(links)} if links else {})

    # -- routes ------------------------------------------------------------------------
    def _routes(self) -> None:
        s = self.server

        @s.route("GET", r"/api/v1/accounts/verify_credentials")
        def verify(req: FakeRequest) -> FakeResponse:
            acc, err, headers = self._auth(req, "read:accounts")
            if err:
                return err
            assert acc is not None
            body = acc.json() | {"source": {"privacy": "public", "sensitive": False,
                                            "language": "", "note": "", "fields": []}}
            return FakeResponse(200, body, headers)

        @s.route("GET", r"/api/v2/instance")
        def instance(req: FakeRequest) -> FakeResponse:
            return FakeResponse(200, self.instance_json())

        @s.route("GET", r"/api/v1/notifications")
        def notifications(req: FakeRequest) -> FakeResponse:
            acc, err, headers = self._auth(req, "read:notifications")
            if err:
                return err
            assert acc is not None
            types = req.query.get("types[]", [])
            include_filtered = req.arg("include_filtered") == "true"
            with self._lock:
                entries = [n for n in self.notifications if n.account_id == acc.id
                           and (not types or n.type in types)
                           and (include_filtered or not n.filtered)]
            extra = {k: v for k, v in req.query.items()
                     if k in ("types[]", "include_filtered")}
            page, links = self._paged(req, entries, "/api/v1/notifications", extra)
            return FakeResponse(200, [n.json() for n in page], headers | links)

        @s.route("GET", r"/api/v1/accounts/(?P<id>[^/]+)/statuses")
        def account_statuses(req: FakeRequest) -> FakeResponse:
            acc, err, headers = self._auth(req, "read:statuses")
            if err:
                return err
            assert acc is not None
            owner = self.accounts.get(req.params["id"])
            if owner is None:
                return FakeResponse(404, {"error": "Record not found"}, headers)
            with self._lock:
                entries = [st for st in self.statuses.values() if st.account.id == owner.id
                           and (st.visibility != "direct" or owner.id == acc.id)]
            extra = {k: v for k, v in req.query.items() if k == "exclude_reblogs"}
            page, links = self._paged(req, entries, f"/api/v1/accounts/{owner.id}/statuses",
                                      extra)
            return FakeResponse(200, [st.json() for st in page], headers | links)

        @s.route("GET", r"/api/v1/statuses/(?P<id>[^/]+)/context")
        def context(req: FakeRequest) -> FakeResponse:
            acc, err, headers = self._auth(req, "read:statuses")
            if err:
                return err
            assert acc is not None
            st = self.statuses.get(req.params["id"])
            if st is None or not self._visible(st, acc):
                return FakeResponse(404, {"error": "Record not found"}, headers)
            ancestors: list[Status] = []
            cur = st
            while cur.in_reply_to_id and cur.in_reply_to_id in self.statuses:
                cur = self.statuses[cur.in_reply_to_id]
                if self._visible(cur, acc):
                    ancestors.insert(0, cur)
            descendants = self._descendants(st, acc)
            return FakeResponse(200, {"ancestors": [a.json() for a in ancestors],
                                      "descendants": [d.json() for d in descendants]}, headers)

        @s.route("POST", r"/api/v1/statuses")
        def create(req: FakeRequest) -> FakeResponse:
            acc, err, headers = self._auth(req, "write:statuses")
            if err:
                return err
            assert acc is not None
            ctype = req.header("content-type") or ""
            if ctype.startswith("application/json"):
                form = {k: str(v) for k, v in (req.json() or {}).items() if v is not None}
            else:
                form = {k: v[0] for k, v in req.form().items()}
            key = req.header("idempotency-key")
            now = self.clock()
            with self._lock:
                if key:
                    hit = self._idempotency.get((acc.id, key))
                    if hit and now - hit[0] < IDEMPOTENCY_TTL:
                        return FakeResponse(200, self.statuses[hit[1]].json(), headers)
                text = form.get("status", "")
                if not text.strip():
                    return FakeResponse(422, {"error": "Validation failed: Text can't be blank"},
                                        headers)
                if self.length(text) > self.max_characters:
                    return FakeResponse(422, {"error": "Validation failed: Text character "
                                              f"limit of {self.max_characters} exceeded"},
                                        headers)
                visibility = form.get("visibility", "public")
                if visibility not in ("public", "unlisted", "private", "direct"):
                    return FakeResponse(422, {"error": "Validation failed: Visibility is "
                                              "not included in the list"}, headers)
                parent_id = form.get("in_reply_to_id")
                if parent_id and parent_id not in self.statuses:
                    return FakeResponse(404, {"error": "Record not found"}, headers)
                st = self.post(acc, text, visibility=visibility, in_reply_to=parent_id)
                if key:
                    self._idempotency[(acc.id, key)] = (now, st.id)
            return FakeResponse(200, st.json(), headers)

    def _visible(self, st: Status, acc: Account) -> bool:
        return st.visibility != "direct" or st.account.id == acc.id or acc in st.mentions

    def _descendants(self, st: Status, acc: Account) -> list[Status]:
        out: list[Status] = []
        for child in sorted(self.statuses.values(), key=lambda x: id_key(x.id)):
            if child.in_reply_to_id == st.id and self._visible(child, acc):
                out.append(child)
                out.extend(self._descendants(child, acc))
        return out

    @staticmethod
    def length(text: str) -> int:
        text = _URL_RE.sub("x" * 23, text)
        text = re.sub(r"(@\w+)@[\w.-]+\w", r"\1", text)
        return len(text)

    def instance_json(self) -> dict[str, Any]:
        return {
            "domain": DOMAIN, "title": "Fake Social", "version": "4.3.0",
            "source_url": "https://github.com/mastodon/mastodon",
            "description": "A fake instance for replydeck tests",
            "usage": {"users": {"active_month": len(self.accounts)}},
            "thumbnail": {"url": f"https://{DOMAIN}/packs/media/images/preview.png"},
            "languages": ["en"],
            "configuration": {
                "urls": {"streaming": f"wss://{DOMAIN}"},
                "accounts": {"max_featured_tags": 10},
                "statuses": {"max_characters": self.max_characters,
                             "max_media_attachments": 4,
                             "characters_reserved_per_url": 23},
                "media_attachments": {"supported_mime_types": ["image/png"],
                                      "image_size_limit": 16777216},
                "polls": {"max_options": 4, "max_characters_per_option": 50,
                          "min_expiration": 300, "max_expiration": 2629746},
                "translation": {"enabled": False},
            },
            "registrations": {"enabled": False, "approval_required": False, "message": None},
            "contact": {"email": f"staff@{DOMAIN}", "account": None},
            "rules": [],
        }

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> FakeMastodon:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def base_url(self) -> str:
        return self.server.base_url
