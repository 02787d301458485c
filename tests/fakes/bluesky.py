"""A stateful fake Bluesky PDS (+ the chat service behind its proxy) for adapter tests.

Speaks what replydeck uses, in the shapes the real @atproto/dev-env PDS answers (see
fixtures/bluesky/, captured from it): sessions with access/refresh JWT expiry
(400 ``ExpiredToken``), ``listNotifications`` newest first with ``cursor`` paging and the
``reasons`` filter, ``getProfiles`` (at most 25 actors), ``getAuthorFeed``,
``createRecord`` with caller-chosen ``rkey`` (an existing rkey gets the 500 the real PDS
gives), 300-grapheme and facet byte-range validation, ``getRecord``, ``resolveHandle``,
rate limits with ``RateLimit-*`` (epoch reset) and 429 + ``Retry-After``, and the chat
methods through ``atproto-proxy``; app passwords without DM access get
401 ``InvalidToken``/"Bad token scope" there.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import regex

from tests.fakes.httpfake import FakeHTTPServer, FakeRequest, FakeResponse

UTC = timezone.utc
CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"
POST = "app.bsky.feed.post"
_S32 = "234567abcdefghijklmnopqrstuvwxyz"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def err(status: int, error: str, message: str, headers: dict[str, str] | None = None
        ) -> FakeResponse:
    return FakeResponse(status, {"error": error, "message": message}, headers or {})


@dataclass
class Account:
    did: str
    handle: str
    passwords: dict[str, bool]  # app password -> has DM access
    display_name: str = ""
    followers: int = 0

    def basic(self) -> dict[str, Any]:
        out: dict[str, Any] = {"did": self.did, "handle": self.handle}
        if self.display_name:
            out["displayName"] = self.display_name
        out |= {"associated": {"activitySubscription": {"allowSubscriptions": "followers"}},
                "viewer": {"muted": False, "mutedOnlyReposts": False,
                           "mutedOnlyQuoteposts": False, "blockedBy": False},
                "labels": []}
        return out

    def detailed(self) -> dict[str, Any]:
        out = self.basic()
        out["associated"] = {"lists": 0, "feedgens": 0, "starterPacks": 0, "labeler": False,
                             "activitySubscription": {"allowSubscriptions": "followers"}}
        return out | {"followersCount": self.followers, "followsCount": 0, "postsCount": 0}


@dataclass
class Token:
    did: str
    kind: str  # "access" or "refresh"
    expires: datetime
    dm: bool
    revoked: bool = False


@dataclass
class Record:
    uri: str
    cid: str
    value: dict[str, Any]
    indexed_at: datetime


@dataclass
class Notification:
    recipient: str
    record: Record
    author: Account
    reason: str
    reason_subject: str | None

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uri": self.record.uri, "cid": self.record.cid,
                               "author": self.author.basic(), "reason": self.reason}
        if self.reason_subject:
            out["reasonSubject"] = self.reason_subject
        return out | {"record": self.record.value, "isRead": False,
                      "indexedAt": iso(self.record.indexed_at), "labels": []}


@dataclass
class ChatMessage:
    id: str
    rev: str
    convo_id: str
    sender: str
    text: str
    sent_at: datetime

    def view(self) -> dict[str, Any]:
        return {"$type": "chat.bsky.convo.defs#messageView", "id": self.id, "rev": self.rev,
                "text": self.text, "sender": {"did": self.sender}, "sentAt": iso(self.sent_at)}


@dataclass
class Convo:
    id: str
    members: list[str]
    messages: list[ChatMessage] = field(default_factory=list)


class FakeBluesky:
    def __init__(self, *, clock: Callable[[], datetime] | None = None,
                 access_ttl: timedelta = timedelta(hours=2),
                 refresh_ttl: timedelta = timedelta(days=90), rate_limit: int = 3000) -> None:
        self.server = FakeHTTPServer()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.access_ttl, self.refresh_ttl = access_ttl, refresh_ttl
        self.rate_limit = rate_limit
        self.window = timedelta(minutes=5)
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._tid_last = 0
        self.accounts: dict[str, Account] = {}
        self.tokens: dict[str, Token] = {}
        self.records: dict[str, Record] = {}
        self.notifications: list[Notification] = []
        self.convos: dict[str, Convo] = {}
        self.chat_log: list[tuple[str, ChatMessage]] = []  # (rev, message)
        self.create_session_calls = 0
        self._used: tuple[datetime, int] | None = None
        self._routes()

    # -- helpers for tests -------------------------------------------------------------
    def add_account(self, handle: str, password: str, *, dm: bool = True,
                    display_name: str = "", followers: int = 0) -> Account:
        did = "did:plc:" + hashlib.sha256(handle.encode()).hexdigest()[:24]
        acc = Account(did, handle, {password: dm}, display_name, followers)
        self.accounts[did] = acc
        return acc

    def tid(self) -> str:
        with self._lock:
            micros = max(int(self.clock().timestamp() * 1_000_000), self._tid_last + 1)
            self._tid_last = micros
        value, chars = (micros << 10) | 7, []
        for _ in range(13):
            chars.append(_S32[value & 31])
            value >>= 5
        return "".join(reversed(chars))

    def post(self, author: Account, text: str, *, reply_to: Record | None = None,
             facets: list[dict[str, Any]] | None = None, rkey: str | None = None,
             at: datetime | None = None, quote: Record | None = None) -> Record:
        value: dict[str, Any] = {"text": text, "$type": POST}
        if facets:
            value["facets"] = facets
        if quote is not None:
            value["embed"] = {"$type": "app.bsky.embed.record",
                              "record": {"uri": quote.uri, "cid": quote.cid}}
        if reply_to is not None:
            root = (reply_to.value.get("reply") or {}).get("root") or {
                "uri": reply_to.uri, "cid": reply_to.cid}
            value["reply"] = {"root": root, "parent": {"uri": reply_to.uri,
                                                       "cid": reply_to.cid}}
        value["createdAt"] = iso(at or self.clock())
        return self._store(author, value, rkey, at)

    def mention(self, author: Account, target: Account, text: str, **kw: Any) -> Record:
        """A post with a proper mention facet for ``@target.handle`` in ``text``."""
        needle = f"@{target.handle}"
        start = text.encode().index(needle.encode())
        facet = {"index": {"byteStart": start, "byteEnd": start + len(needle.encode())},
                 "features": [{"$type": "app.bsky.richtext.facet#mention", "did": target.did}]}
        return self.post(author, text, facets=[facet], **kw)

    def expire_access_tokens(self) -> None:
        for t in self.tokens.values():
            if t.kind == "access":
                t.expires = self.clock() - timedelta(seconds=1)

    def revoke_sessions(self) -> None:
        for t in self.tokens.values():
            t.revoked = True

    def expire_refresh_tokens(self) -> None:
        for t in self.tokens.values():
            if t.kind == "refresh":
                t.expires = self.clock() - timedelta(seconds=1)

    def dm(self, sender: Account, to: Account, text: str) -> ChatMessage:
        convo = self._convo_for([sender.did, to.did])
        return self._add_message(convo, sender.did, text)

    def posts_by(self, acc: Account) -> list[Record]:
        return [r for r in self.records.values() if r.uri.startswith(f"at://{acc.did}/")]

    # -- internals ---------------------------------------------------------------------
    def _store(self, author: Account, value: dict[str, Any], rkey: str | None,
               at: datetime | None = None) -> Record:
        with self._lock:
            rkey = rkey or self.tid()
            uri = f"at://{author.did}/{POST}/{rkey}"
            cid = "bafyrei" + hashlib.sha256(repr((uri, value)).encode()).hexdigest()[:52]
            rec = Record(uri, cid, value, at or self.clock())
            self.records[uri] = rec
            notified: set[str] = set()
            parent_uri = ((value.get("reply") or {}).get("parent") or {}).get("uri")
            if parent_uri and parent_uri in self.records:
                parent_did = parent_uri.removeprefix("at://").split("/")[0]
                if parent_did != author.did:
                    self.notifications.append(Notification(
                        parent_did, rec, author, "reply", parent_uri))
                    notified.add(parent_did)
            quoted = (((value.get("embed") or {}).get("record") or {}).get("uri") or "")
            if quoted in self.records:
                quoted_did = quoted.removeprefix("at://").split("/")[0]
                if quoted_did != author.did and quoted_did not in notified:
                    self.notifications.append(Notification(quoted_did, rec, author, "quote",
                                                           quoted))
                    notified.add(quoted_did)
            for facet in value.get("facets") or []:
                for feat in facet.get("features") or []:
                    did = feat.get("did")
                    if feat.get("$type", "").endswith("#mention") and did in self.accounts \
                            and did != author.did and did not in notified:
                        self.notifications.append(Notification(did, rec, author, "mention",
                                                               None))
                        notified.add(did)
            return rec

    def _convo_for(self, members: list[str]) -> Convo:
        key = sorted(set(members))
        for c in self.convos.values():
            if sorted(c.members) == key:
                return c
        c = Convo(f"convo{next(self._seq)}", key)
        self.convos[c.id] = c
        return c

    def _add_message(self, convo: Convo, sender: str, text: str) -> ChatMessage:
        with self._lock:
            rev = self.tid()
            m = ChatMessage(f"msg{next(self._seq)}", rev, convo.id, sender, text, self.clock())
            convo.messages.append(m)
            self.chat_log.append((rev, m))
            return m

    def _new_token(self, did: str, kind: str, dm: bool) -> str:
        token = f"{kind}-{next(self._seq)}-{hashlib.sha256(did.encode()).hexdigest()[:8]}"
        ttl = self.access_ttl if kind == "access" else self.refresh_ttl
        self.tokens[token] = Token(did, kind, self.clock() + ttl, dm)
        return token

    def _session_body(self, acc: Account, dm: bool) -> dict[str, Any]:
        return {"accessJwt": self._new_token(acc.did, "access", dm),
                "refreshJwt": self._new_token(acc.did, "refresh", dm),
                "did": acc.did, "handle": acc.handle, "email": f"{acc.handle}@example.com",
                "emailConfirmed": False, "active": True}

    def _rate(self) -> tuple[dict[str, str], bool]:
        now = self.clock()
        with self._lock:
            start, used = self._used or (now, 0)
            if now - start >= self.window:
                start, used = now, 0
            used += 1
            self._used = (start, used)
        reset = start + self.window
        headers = {"RateLimit-Limit": str(self.rate_limit),
                   "RateLimit-Remaining": str(max(0, self.rate_limit - used)),
                   "RateLimit-Reset": str(int(reset.timestamp())),
                   "RateLimit-Policy": f"{self.rate_limit};w={int(self.window.total_seconds())}"}
        if used > self.rate_limit:
            headers["Retry-After"] = str(max(1, int((reset - now).total_seconds())))
            return headers, True
        return headers, False

    def _auth(self, req: FakeRequest, kind: str = "access"
              ) -> tuple[Token | None, FakeResponse | None, dict[str, str]]:
        headers, limited = self._rate()
        if limited:
            return None, err(429, "RateLimitExceeded", "Rate Limit Exceeded", headers), headers
        auth = req.header("authorization") or ""
        tok = self.tokens.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") \
            else None
        if not auth:
            return None, err(401, "AuthenticationRequired", "Authentication Required",
                             headers), headers
        if tok is None or tok.kind != kind or tok.revoked:
            return None, err(400, "InvalidToken", "Token could not be verified", headers), \
                headers
        if tok.expires <= self.clock():
            return None, err(400, "ExpiredToken", "Token has expired", headers), headers
        return tok, None, headers

    def _chat_auth(self, req: FakeRequest) -> tuple[Token | None, FakeResponse | None,
                                                      dict[str, str]]:
        tok, bad, headers = self._auth(req)
        if bad:
            return None, bad, headers
        assert tok is not None
        if req.header("atproto-proxy") != CHAT_PROXY:
            return None, err(400, "InvalidRequest", "no service proxy for chat", headers), \
                headers
        if not tok.dm:
            return None, err(401, "InvalidToken", "Bad token scope", headers), headers
        return tok, None, headers

    def _page(self, req: FakeRequest, items: list[Any], key: Callable[[Any], str]
              ) -> tuple[list[Any], str | None]:
        limit = int(req.arg("limit", "50") or 50)
        cursor = req.arg("cursor")
        if cursor:
            items = [i for i in items if key(i) < cursor]
        page = items[:limit]
        return page, (key(page[-1]) if len(items) > limit and page else None)

    # -- routes ------------------------------------------------------------------------
    def _routes(self) -> None:
        s = self.server

        @s.route("POST", r"/xrpc/com.atproto.server.createSession")
        def create_session(req: FakeRequest) -> FakeResponse:
            headers, limited = self._rate()
            if limited:
                return err(429, "RateLimitExceeded", "Rate Limit Exceeded", headers)
            self.create_session_calls += 1
            body = req.json() or {}
            ident, pw = body.get("identifier"), body.get("password")
            acc = next((a for a in self.accounts.values()
                        if ident in (a.handle, a.did) and pw in a.passwords), None)
            if acc is None:
                return err(401, "AuthenticationRequired", "Invalid identifier or password",
                           headers)
            return FakeResponse(200, self._session_body(acc, acc.passwords[pw]), headers)

        @s.route("POST", r"/xrpc/com.atproto.server.refreshSession")
        def refresh_session(req: FakeRequest) -> FakeResponse:
            tok, bad, headers = self._auth(req, "refresh")
            if bad:
                return bad
            assert tok is not None
            tok.revoked = True  # refresh tokens rotate
            return FakeResponse(200, self._session_body(self.accounts[tok.did], tok.dm),
                                headers)

        @s.route("GET", r"/xrpc/com.atproto.identity.resolveHandle")
        def resolve_handle(req: FakeRequest) -> FakeResponse:
            handle = (req.arg("handle") or "").lower()
            acc = next((a for a in self.accounts.values() if a.handle == handle), None)
            if acc is None:
                return err(400, "HandleNotFound", "Unable to resolve handle")
            return FakeResponse(200, {"did": acc.did})

        @s.route("GET", r"/xrpc/app.bsky.notification.listNotifications")
        def list_notifications(req: FakeRequest) -> FakeResponse:
            tok, bad, headers = self._auth(req)
            if bad:
                return bad
            assert tok is not None
            reasons = req.query.get("reasons") or []
            items = sorted((n for n in self.notifications if n.recipient == tok.did
                            and (not reasons or n.reason in reasons)),
                           key=lambda n: (iso(n.record.indexed_at), n.record.cid), reverse=True)
            page, cursor = self._page(req, items,
                                      lambda n: f"{iso(n.record.indexed_at)}::{n.record.cid}")
            body: dict[str, Any] = {"notifications": [n.json() for n in page]}
            if cursor:
                body["cursor"] = cursor
            body |= {"priority": False, "seenAt": iso(self.clock())}
            return FakeResponse(200, body, headers)

        @s.route("GET", r"/xrpc/app.bsky.actor.getProfiles")
        def get_profiles(req: FakeRequest) -> FakeResponse:
            _tok, bad, headers = self._auth(req)
            if bad:
                return bad
            actors = req.query.get("actors") or []
            if len(actors) > 25:
                return err(400, "InvalidRequest", "Array too long: actors must not have "
                           "more than 25 elements", headers)
            found = [a for a in self.accounts.values() if a.did in actors or a.handle in actors]
            return FakeResponse(200, {"profiles": [a.detailed() for a in found]}, headers)

        @s.route("GET", r"/xrpc/app.bsky.feed.getAuthorFeed")
        def author_feed(req: FakeRequest) -> FakeResponse:
            _tok, bad, headers = self._auth(req)
            if bad:
                return bad
            actor = req.arg("actor") or ""
            acc = next((a for a in self.accounts.values() if actor in (a.did, a.handle)), None)
            if acc is None:
                return err(400, "InvalidRequest", "Profile not found", headers)
            posts = sorted(self.posts_by(acc), key=lambda r: (iso(r.indexed_at), r.cid),
                           reverse=True)
            page, cursor = self._page(req, posts, lambda r: f"{iso(r.indexed_at)}::{r.cid}")
            feed = [{"post": {"uri": r.uri, "cid": r.cid, "author": acc.basic(),
                              "record": r.value, "replyCount": 0, "repostCount": 0,
                              "likeCount": 0, "quoteCount": 0, "indexedAt": iso(r.indexed_at),
                              "viewer": {"threadMuted": False, "embeddingDisabled": False},
                              "labels": []}} for r in page]
            body: dict[str, Any] = {"feed": feed}
            if cursor:
                body["cursor"] = cursor
            return FakeResponse(200, body, headers)

        @s.route("POST", r"/xrpc/com.atproto.repo.createRecord")
        def create_record(req: FakeRequest) -> FakeResponse:
            tok, bad, headers = self._auth(req)
            if bad:
                return bad
            assert tok is not None
            body = req.json() or {}
            if body.get("repo") != tok.did or body.get("collection") != POST:
                return err(400, "InvalidRequest", "Input/repo must be your own DID", headers)
            rec = body.get("record") or {}
            text = rec.get("text", "")
            if len(regex.findall(r"\X", text)) > 300 or len(text.encode()) > 3000:
                return err(400, "InvalidRequest", "Invalid app.bsky.feed.post record: "
                           "Record/text must not be longer than 300 graphemes", headers)
            size = len(text.encode())
            for f in rec.get("facets") or []:
                ix = f.get("index") or {}
                if not (0 <= ix.get("byteStart", -1) < ix.get("byteEnd", -1) <= size):
                    return err(400, "InvalidRequest", "Invalid facet byte range", headers)
            rkey = body.get("rkey")
            if rkey is not None and not regex.fullmatch(
                    r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}", rkey):
                return err(400, "InvalidRequest", "Invalid TID", headers)
            with self._lock:
                if rkey and f"at://{tok.did}/{POST}/{rkey}" in self.records:
                    # What the real PDS answers for an existing key (captured from dev-env).
                    return err(500, "InternalServerError", "Internal Server Error", headers)
                value = dict(rec)
                value.setdefault("$type", POST)
                stored = self._store(self.accounts[tok.did], value, rkey)
            return FakeResponse(200, {"uri": stored.uri, "cid": stored.cid,
                                      "commit": {"cid": "bafyreicommit", "rev": self.tid()},
                                      "validationStatus": "valid"}, headers)

        @s.route("GET", r"/xrpc/com.atproto.repo.getRecord")
        def get_record(req: FakeRequest) -> FakeResponse:
            uri = f"at://{req.arg('repo')}/{req.arg('collection')}/{req.arg('rkey')}"
            rec = self.records.get(uri)
            if rec is None:
                return err(400, "RecordNotFound", f"Could not locate record: {uri}")
            return FakeResponse(200, {"uri": rec.uri, "cid": rec.cid, "value": rec.value})

        # -- chat, through the PDS proxy ---------------------------------------------
        @s.route("GET", r"/xrpc/chat.bsky.convo.getLog")
        def get_log(req: FakeRequest) -> FakeResponse:
            tok, bad, headers = self._chat_auth(req)
            if bad:
                return bad
            assert tok is not None
            cursor = req.arg("cursor") or ""
            logs = []
            last = cursor
            for rev, m in self.chat_log:
                if rev <= cursor or tok.did not in self.convos[m.convo_id].members:
                    continue
                related = [self.accounts[d].basic() for d in self.convos[m.convo_id].members]
                logs.append({"$type": "chat.bsky.convo.defs#logCreateMessage", "rev": rev,
                             "convoId": m.convo_id, "message": m.view(),
                             "relatedProfiles": related})
                last = rev
            body: dict[str, Any] = {"logs": logs}
            if last:
                body["cursor"] = last
            return FakeResponse(200, body, headers)

        @s.route("GET", r"/xrpc/chat.bsky.convo.listConvos")
        def list_convos(req: FakeRequest) -> FakeResponse:
            tok, bad, headers = self._chat_auth(req)
            if bad:
                return bad
            assert tok is not None
            mine = [c for c in self.convos.values() if tok.did in c.members]
            return FakeResponse(200, {"convos": [{"id": c.id, "rev": "", "members": [
                self.accounts[d].basic() for d in c.members], "muted": False,
                "unreadCount": 0} for c in mine]}, headers)

        @s.route("GET", r"/xrpc/chat.bsky.convo.getConvoForMembers")
        def convo_for(req: FakeRequest) -> FakeResponse:
            tok, bad, headers = self._chat_auth(req)
            if bad:
                return bad
            assert tok is not None
            members = req.query.get("members") or []
            if any(m not in self.accounts for m in members):
                return err(400, "InvalidRequest", "Unknown member", headers)
            c = self._convo_for([tok.did, *members])
            return FakeResponse(200, {"convo": {"id": c.id, "rev": "", "members": [
                self.accounts[d].basic() for d in c.members], "muted": False,
                "unreadCount": 0}}, headers)

        @s.route("GET", r"/xrpc/chat.bsky.convo.getMessages")
        def get_messages(req: FakeRequest) -> FakeResponse:
            tok, bad, headers = self._chat_auth(req)
            if bad:
                return bad
            assert tok is not None
            c = self.convos.get(req.arg("convoId") or "")
            if c is None or tok.did not in c.members:
                return err(400, "InvalidConvo", "Convo not found", headers)
            limit = int(req.arg("limit", "50") or 50)
            msgs = list(reversed(c.messages))[:limit]
            return FakeResponse(200, {"messages": [m.view() for m in msgs]}, headers)

        @s.route("POST", r"/xrpc/chat.bsky.convo.sendMessage")
        def send_message(req: FakeRequest) -> FakeResponse:
            tok, bad, headers = self._chat_auth(req)
            if bad:
                return bad
            assert tok is not None
            body = req.json() or {}
            c = self.convos.get(body.get("convoId") or "")
            if c is None or tok.did not in c.members:
                return err(400, "InvalidConvo", "Convo not found", headers)
            text = (body.get("message") or {}).get("text") or ""
            if len(regex.findall(r"\X", text)) > 1000:
                return err(400, "InvalidRequest", "Message is too long", headers)
            m = self._add_message(c, tok.did, text)
            return FakeResponse(200, m.view(), headers)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> FakeBluesky:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def base_url(self) -> str:
        return self.server.base_url
