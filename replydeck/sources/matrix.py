"""Matrix: room messages in through ``/sync``, replies out with a txnId (PLATFORMS.md §5).

* Inbound: ``GET /_matrix/client/v3/sync`` with ``since`` = the saved ``next_batch`` and an
  inline filter (messages and memberships only, no presence or receipts). The first sync
  takes only the last few timeline events of each room, so what was written before the
  first poll arrives without pulling whole histories. A limited (gappy) incremental
  timeline is backfilled with ``/messages`` back to the previous sync.
* Rooms: the configured ids/aliases, or every joined room. Invites are accepted (a customer
  opening a DM invites us), unless ``rooms`` names a fixed set that does not include them.
* Conversations: a room of two members is a DM (``dm:<room>``); in a shared room a thread
  (``m.thread``) is its own conversation (``thread:<room>|<root>``), the rest of the room
  one more (``room:<room>``). Our own events come back as outbound messages.
* Replies: ``PUT /rooms/{room}/send/m.room.message/{txnId}`` with txnId = the reply's
  idempotency key: a retransmit with the same access token returns the original event id,
  so a repeat after a crash cannot post twice. A private reply to someone in a shared room
  goes to our direct chat with them (found in ``m.direct``, or created and recorded there).
* Rate limits: ``M_LIMIT_EXCEEDED`` with ``Retry-After`` (v1.10+) or the older
  ``retry_after_ms``.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from replydeck.config.errors import ConfigError
from replydeck.config.secrets import Secret
from replydeck.inbox.model import UTC, Author, Direction, Kind, Message, Reply, utcnow
from replydeck.inbox.sanitize import sanitize_line, sanitize_text
from replydeck.inbox.textlen import check_reply
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
from replydeck.sources.email import is_loopback
from replydeck.sources.http import new_client

log = logging.getLogger(__name__)
API = "/_matrix/client/v3"
#: Whole events may not exceed 65536 bytes; leave room for the envelope and relations.
MAX_EVENT_BYTES = 65_536
MAX_BODY_BYTES = 60_000
INCREMENTAL_LIMIT = 100
MAX_BACKFILL_PAGES = 5
#: Server clocks and ours differ: backfill reaches back this far before the last sync.
BACKFILL_MARGIN_MS = 60_000
FALLBACK_RETRY = timedelta(seconds=5)
_MEDIA = {"m.image": "image", "m.file": "file", "m.video": "video", "m.audio": "audio",
          "m.sticker": "sticker"}


class _Malformed(Exception):
    pass


def _matrix_to(*parts: str) -> str:
    return "https://matrix.to/#/" + "/".join(quote(p, safe="@:!$") for p in parts)


def _strip_reply_fallback(body: str) -> str:
    """Drop the legacy rich-reply fallback (``> <@user> quoted`` lines and a blank line)."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> <"):
        return body
    i = 0
    while i < len(lines) and lines[i].startswith(">"):
        i += 1
    if i < len(lines) and lines[i] == "":
        i += 1
    return "\n".join(lines[i:])


class MatrixSource(BaseSource):
    type_name = "matrix"
    platform = "matrix"
    limits = Limits(max_length=MAX_BODY_BYTES, counting="utf8_bytes")
    idempotent_send = True
    # fetch() long-polls for ``sync_timeout`` seconds, so a short interval costs nothing.
    default_poll_interval = 5

    def __init__(self, name: str, *, homeserver: str, user_id: str, token: Secret,
                 rooms: list[str] | None = None, sync_timeout: float = 30.0,
                 timeout: float = 30.0, initial_limit: int = 20,
                 accept_invites: bool = True) -> None:
        super().__init__(name)
        self.homeserver = homeserver.rstrip("/")
        self.user_id = user_id
        self._token = token
        self.rooms = rooms or None
        self.sync_timeout = sync_timeout
        self.timeout = timeout
        self.initial_limit = initial_limit
        self.accept_invites = accept_invites
        self._client: httpx.AsyncClient | None = None
        self._room_ids: set[str] | None = None
        self._members: dict[str, int] = {}
        self._names: dict[tuple[str, str], str] = {}
        #: The server's clock (its Date header): backfill compares server times only.
        self._server_ms: int | None = None

    def __repr__(self) -> str:
        return f"MatrixSource(name={self.name!r}, homeserver={self.homeserver!r}, " \
               f"user_id={self.user_id!r})"

    # -- config ------------------------------------------------------------------------
    @classmethod
    def from_config(cls, table: Any) -> MatrixSource:
        homeserver = table.str("homeserver").strip()
        parts = urlsplit(homeserver)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise table.error("homeserver", "expected the homeserver's client URL such as "
                              f"'https://matrix.example.org', found {homeserver!r}")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise table.error("homeserver", "http:// sends the token unencrypted and is "
                              "only allowed for loopback hosts; use https://")
        user_id = table.str("user_id").strip()
        if not re.fullmatch(r"@[^:\s]+:\S+", user_id):
            raise table.error("user_id", "expected a full Matrix user id like "
                              f"'@support:example.org', found {user_id!r}")
        rooms = table.str_list("rooms", [])
        for i, room in enumerate(rooms):
            if not re.fullmatch(r"[!#][^:\s]+:\S+", room):
                raise table.error("rooms", f"entry {i + 1}: expected a room id "
                                  f"('!abc:example.org') or alias ('#support:example.org'), "
                                  f"found {room!r}")
        return cls(
            table.name or "matrix",
            homeserver=homeserver,
            user_id=user_id,
            token=table.secret("token"),
            rooms=rooms,
            sync_timeout=table.number("sync_timeout", 30.0, min=0),
            timeout=table.number("timeout", 30.0, min=1),
            initial_limit=table.int("initial_history", 20, min=1, max=1000),
            accept_invites=table.bool("accept_invites", True),
        )

    # -- HTTP --------------------------------------------------------------------------
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            try:
                token = self._token.resolve()
            except ConfigError as exc:
                raise AuthError(f"cannot read the Matrix token: {exc}") from None
            self._client = new_client(
                self.homeserver, timeout=self.timeout,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _call(self, method: str, path: str, *, what: str, params: Any = None,
                    json_body: Any = None, timeout: float | None = None,
                    sending: bool = False) -> Any:
        """One API call, Matrix errors mapped to source errors; returns the JSON body.

        ``sending``: a failure after the request went out sets ``maybe_sent`` (the txnId
        makes the retry safe either way)."""
        try:
            resp = await self._http().request(
                method, API + path, params=params,
                content=_encode(json_body) if json_body is not None else None,
                headers={"Content-Type": "application/json"} if json_body is not None
                else None,
                timeout=timeout if timeout is not None else self.timeout)
        except httpx.TimeoutException as exc:
            raise TransientError(f"{self.homeserver} did not answer in time ({what})",
                                 maybe_sent=sending and not isinstance(exc, httpx.ConnectTimeout)
                                 ) from None
        except httpx.HTTPError as exc:
            raise TransientError(f"cannot reach {self.homeserver} ({what}): "
                                 f"{type(exc).__name__}",
                                 maybe_sent=sending and not isinstance(exc, httpx.ConnectError)
                                 ) from None
        self._server_ms = _date_ms(resp.headers.get("Date")) or self._server_ms
        try:
            body = resp.json()
        except ValueError:
            body = None
        status = resp.status_code
        if status < 300:
            if not isinstance(body, dict):
                found = describe_json(body if body is not None else resp.text[:80])
                raise TransientError("malformed answer from matrix: expected a JSON object, "
                                     f"found {found} ({what})")
            return body
        errcode = body.get("errcode") if isinstance(body, dict) else None
        error = sanitize_line(str(body.get("error") or ""))[:200] if isinstance(body, dict) \
            else ""
        if status == 429 or errcode == "M_LIMIT_EXCEEDED":
            retry_at = self._retry_at(resp, body)
            raise RateLimited(f"Matrix rate limit reached ({what}); allowed again at "
                              f"{retry_at:%H:%M:%S} UTC", retry_at=retry_at)
        if errcode in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN") or status == 401:
            soft = isinstance(body, dict) and body.get("soft_logout") is True
            raise AuthError(
                f"token rejected by {self.homeserver} ({errcode or status}"
                f"{', soft logout' if soft else ''}): log in again and put a new access "
                f"token in the config ({what})")
        if status >= 500:
            raise TransientError(f"Matrix server error {status} ({what})", maybe_sent=sending)
        if errcode == "M_TOO_LARGE" or status == 413:
            raise PermanentError(f"the message is too large for a Matrix event ({what})")
        if status == 403:
            raise PermanentError(f"Matrix refused {what}: {errcode or 403} {error}".rstrip())
        raise PermanentError(f"Matrix refused {what}: {status} {errcode or ''} "
                             f"{error}".rstrip())

    @staticmethod
    def _retry_at(resp: httpx.Response, body: Any) -> datetime:
        now = utcnow()
        header = (resp.headers.get("Retry-After") or "").strip()
        if header:
            if header.isdigit():
                return now + timedelta(seconds=int(header))
            try:
                when = parsedate_to_datetime(header)
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                return when.astimezone(UTC)
            except (TypeError, ValueError, IndexError):
                pass
        ms = body.get("retry_after_ms") if isinstance(body, dict) else None
        if isinstance(ms, int) and not isinstance(ms, bool) and ms >= 0:
            return now + timedelta(milliseconds=ms)
        return now + FALLBACK_RETRY

    # -- rooms -------------------------------------------------------------------------
    async def _configured_rooms(self) -> set[str] | None:
        """The configured rooms as ids (aliases resolved once), or None for all joined."""
        if self.rooms is None:
            return None
        if self._room_ids is None:
            ids: set[str] = set()
            for room in self.rooms:
                if room.startswith("#"):
                    body = await self._call("GET", f"/directory/room/{quote(room, safe='')}",
                                            what=f"resolving room alias {room}")
                    room_id = body.get("room_id")
                    if not isinstance(room_id, str):
                        raise TransientError("malformed answer from matrix: alias lookup "
                                             f"gave {describe_json(body)}")
                    ids.add(room_id)
                else:
                    ids.add(room)
            self._room_ids = ids
        return self._room_ids

    async def _is_dm(self, room_id: str) -> bool:
        if room_id not in self._members:
            try:
                body = await self._call("GET",
                                        f"/rooms/{quote(room_id, safe='')}/joined_members",
                                        what="room members")
            except AuthError:
                raise
            except PermanentError as exc:
                # e.g. we left meanwhile: treat it as shared (never leaks as a DM) and go on
                log.warning("matrix %s: members of %s unknown: %s", self.name, room_id, exc)
                return False
            joined = body.get("joined")
            if not isinstance(joined, dict):
                raise TransientError("malformed answer from matrix: joined_members gave "
                                     f"{describe_json(body)}")
            self._members[room_id] = len(joined)
        return self._members[room_id] <= 2

    # -- fetch -------------------------------------------------------------------------
    def _filter(self, rooms: set[str] | None, initial: bool) -> dict[str, Any]:
        room_filter: dict[str, Any] = {
            "timeline": {"limit": self.initial_limit if initial else INCREMENTAL_LIMIT,
                         "types": ["m.room.message", "m.room.encrypted", "m.room.member"]},
            "state": {"types": ["m.room.member"], "lazy_load_members": True},
            "ephemeral": {"types": []},
            "account_data": {"types": []},
        }
        if rooms is not None:
            room_filter["rooms"] = sorted(rooms)
        return {"room": room_filter, "presence": {"types": []},
                "account_data": {"types": []}}

    async def fetch(self, cursor: Cursor | None) -> Batch:
        since, last_ms = _parse_cursor(cursor)
        rooms = await self._configured_rooms()
        params: dict[str, Any] = {
            "filter": json.dumps(self._filter(rooms, since is None), separators=(",", ":")),
            "timeout": int(self.sync_timeout * 1000) if since else 0,
        }
        if since:
            params["since"] = since
        body = await self._call("GET", "/sync", params=params, what="sync",
                                timeout=self.timeout + (self.sync_timeout if since else 0))
        try:
            next_batch = body["next_batch"]
            if not isinstance(next_batch, str):
                raise _Malformed(f"next_batch is {describe_json(next_batch)}")
            joined = _dict(_dict(body.get("rooms")).get("join"))
            invited = _dict(_dict(body.get("rooms")).get("invite"))
        except (KeyError, _Malformed) as exc:
            raise TransientError(f"malformed answer from matrix: /sync gave "
                                 f"{describe_json(body)} ({exc})") from None
        items: list[Message] = []
        seen: set[str] = set()
        newest_ms = last_ms
        for room_id, room in joined.items():
            if rooms is not None and room_id not in rooms:
                continue
            events = await self._room_events(room_id, _dict(room), since, last_ms)
            for ev in events:
                msg = await self._to_message(room_id, ev)
                if msg is not None and msg.remote_id not in seen:
                    seen.add(msg.remote_id)
                    items.append(msg)
                ts = ev.get("origin_server_ts")
                if isinstance(ts, int) and (newest_ms is None or ts > newest_ms):
                    newest_ms = ts
        more = await self._accept_invites(invited, rooms)
        # Where the next backfill may stop: server time of this sync (never our clock).
        stamp = max(newest_ms or 0, self._server_ms or 0) or None
        return Batch(items=items, cursor=json.dumps({"since": next_batch, "ts": stamp}),
                     more=more)

    async def _room_events(self, room_id: str, room: dict[str, Any], since: str | None,
                           last_ms: int | None) -> list[dict[str, Any]]:
        timeline = _dict(room.get("timeline"))
        events = [e for e in _list(timeline.get("events")) if isinstance(e, dict)]
        state = [e for e in _list(_dict(room.get("state")).get("events"))
                 if isinstance(e, dict)]
        summary = _dict(room.get("summary"))
        count = summary.get("m.joined_member_count")
        # Member events in the timeline are changes; in the state section they are only
        # news after a gap or on the first sync (lazy loading repeats them otherwise).
        changed = bool(timeline.get("limited")) or since is None
        for ev in state:
            if ev.get("type") == "m.room.member":
                self._remember_member(room_id, ev, changed=changed)
        for ev in events:
            if ev.get("type") == "m.room.member":
                self._remember_member(room_id, ev, changed=True)
        if isinstance(count, int) and not isinstance(count, bool):
            self._members[room_id] = count
        if timeline.get("limited") and since and last_ms is not None:
            prev = timeline.get("prev_batch")
            if isinstance(prev, str):
                events = await self._backfill(room_id, prev, last_ms) + events
        return events

    def _remember_member(self, room_id: str, ev: dict[str, Any], *, changed: bool) -> None:
        user = ev.get("state_key")
        content = _dict(ev.get("content"))
        if isinstance(user, str):
            name = content.get("displayname")
            if isinstance(name, str) and name:
                self._names[(room_id, user)] = sanitize_line(name)
            if changed:  # someone joined or left: decide DM/shared again
                self._members.pop(room_id, None)

    async def _backfill(self, room_id: str, token: str, last_ms: int
                        ) -> list[dict[str, Any]]:
        """Events the limited timeline skipped, back to the previous sync (oldest first)."""
        got: list[dict[str, Any]] = []
        stop_ms = last_ms - BACKFILL_MARGIN_MS
        for _ in range(MAX_BACKFILL_PAGES):
            body = await self._call(
                "GET", f"/rooms/{quote(room_id, safe='')}/messages", what="room history",
                params={"from": token, "dir": "b", "limit": INCREMENTAL_LIMIT,
                        "filter": json.dumps({"types": ["m.room.message",
                                                        "m.room.encrypted"]})})
            chunk = [e for e in _list(body.get("chunk")) if isinstance(e, dict)]
            older = [e for e in chunk if not (isinstance(e.get("origin_server_ts"), int)
                                              and e["origin_server_ts"] < stop_ms)]
            got.extend(older)
            end = body.get("end")
            if len(older) < len(chunk) or not chunk or not isinstance(end, str):
                break
            token = end
        else:
            log.warning("matrix %s: more than %d messages arrived in %s while away; the "
                        "oldest of them were not fetched", self.name,
                        MAX_BACKFILL_PAGES * INCREMENTAL_LIMIT, room_id)
        got.reverse()
        return got

    async def _accept_invites(self, invited: dict[str, Any], rooms: set[str] | None) -> bool:
        if not self.accept_invites:
            return False
        joined_any = False
        for room_id in invited:
            if rooms is not None and room_id not in rooms:
                continue
            try:
                await self._call("POST", f"/join/{quote(room_id, safe='')}", json_body={},
                                 what="accepting an invite")
            except AuthError:
                raise
            except PermanentError as exc:
                # A withdrawn invite or a vanished room must not block the whole source.
                log.warning("matrix %s: cannot join %s: %s", self.name, room_id, exc)
                continue
            joined_any = True
        # The joined room's recent timeline comes with the next sync: ask for it now.
        return joined_any

    def _text(self, content: dict[str, Any], sender_name: str) -> str | None:
        msgtype = content.get("msgtype")
        body = content.get("body")
        if not isinstance(body, str):
            body = ""
        if msgtype in _MEDIA:
            name = content.get("filename") if isinstance(content.get("filename"), str) \
                else body
            return f"[{_MEDIA[msgtype]}: {name or 'unnamed'}]"
        if msgtype == "m.location":
            return f"[location: {body}]"
        if msgtype == "m.emote":
            return f"* {sender_name} {body}"
        if "m.in_reply_to" in _dict(content.get("m.relates_to")):
            body = _strip_reply_fallback(body)
        if msgtype in ("m.text", "m.notice") or body:
            return body
        return None

    async def _to_message(self, room_id: str, ev: dict[str, Any]) -> Message | None:
        etype = ev.get("type")
        event_id, sender, ts = ev.get("event_id"), ev.get("sender"), ev.get("origin_server_ts")
        if etype not in ("m.room.message", "m.room.encrypted"):
            return None
        if not (isinstance(event_id, str) and isinstance(sender, str)
                and isinstance(ts, int) and not isinstance(ts, bool)):
            raise TransientError(f"malformed answer from matrix: event {describe_json(ev)}")
        content = _dict(ev.get("content"))
        if not content:  # redacted
            return None
        relates = _dict(content.get("m.relates_to"))
        if relates.get("rel_type") == "m.replace":
            return None  # an edit; the original message is already in the thread
        name = self._names.get((room_id, sender), "")
        if etype == "m.room.encrypted":
            text: str | None = "[encrypted message: replydeck cannot read end-to-end " \
                               "encrypted rooms]"
        else:
            text = self._text(content, name or sender)
        if text is None:
            return None
        thread_root = relates.get("event_id") if relates.get("rel_type") == "m.thread" \
            else None
        if not isinstance(thread_root, str):
            thread_root = None
        parent = _dict(relates.get("m.in_reply_to")).get("event_id")
        if not isinstance(parent, str):
            parent = thread_root
        if await self._is_dm(room_id):
            kind, thread_key = Kind.DM, f"dm:{room_id}"
        else:
            kind = Kind.MENTION if self._mentions_us(content) else Kind.COMMENT
            thread_key = f"thread:{room_id}|{thread_root}" if thread_root else \
                f"room:{room_id}"
        own = sender == self.user_id
        return Message(
            source=self.name,
            remote_id=event_id,
            platform=self.platform,
            kind=kind,
            author=Author(id=sanitize_line(sender), handle=sanitize_line(sender), name=name,
                          url=_matrix_to(sender)),
            text=sanitize_text(text),
            created_at=datetime.fromtimestamp(ts / 1000, UTC),
            direction=Direction.OUT if own else Direction.IN,
            thread_key=thread_key,
            in_reply_to=parent,
            url=_matrix_to(room_id, event_id),
            raw={"room_id": room_id, "event_id": event_id, "sender": sender,
                 "thread_root": thread_root, "msgtype": content.get("msgtype")},
        )

    def _mentions_us(self, content: dict[str, Any]) -> bool:
        mentions = _dict(content.get("m.mentions")).get("user_ids")
        if isinstance(mentions, list) and self.user_id in mentions:
            return True
        body = content.get("body")
        return isinstance(body, str) and self.user_id in body

    # -- send --------------------------------------------------------------------------
    async def send(self, reply: Reply) -> Receipt:
        parent = reply.reply_to
        raw = parent.raw if parent else {}
        room_id = raw.get("room_id") or _room_from_key(reply.thread_key)
        if not isinstance(room_id, str) or not room_id:
            raise PermanentError("cannot tell which Matrix room this conversation is in")
        sender = raw.get("sender")
        # A private answer to someone in a shared room goes to a direct chat with them.
        to_dm = reply.private and parent is not None and parent.kind is not Kind.DM
        if to_dm and (not isinstance(sender, str) or sender == self.user_id):
            raise PermanentError("cannot tell whom to answer privately in this Matrix room")
        length = check_reply(reply.body, self.limits, reply.private)
        if not length.ok:
            raise PermanentError(f"the reply is too long for a Matrix event: "
                                 f"{length.describe()}")
        if not reply.body.strip():
            raise PermanentError("the reply is empty")
        content: dict[str, Any] = {"msgtype": "m.text", "body": reply.body}
        parent_event = raw.get("event_id")
        thread_root = raw.get("thread_root")
        if to_dm:
            # The parent lives in another room: a relation to it would dangle.
            parent_event = thread_root = None
        if isinstance(parent_event, str):
            relates: dict[str, Any] = {"m.in_reply_to": {"event_id": parent_event}}
            if isinstance(thread_root, str):
                # Thread-aware clients show it in the thread; others see a plain reply.
                relates.update({"rel_type": "m.thread", "event_id": thread_root,
                                "is_falling_back": True})
            content["m.relates_to"] = relates
        if isinstance(sender, str) and sender != self.user_id:
            content["m.mentions"] = {"user_ids": [sender]}
        if len(_encode(content)) > MAX_EVENT_BYTES - 2048:
            raise PermanentError("the reply is too long for a Matrix event (65536 bytes "
                                 "including its encoding)")
        if to_dm:
            room_id = await self._direct_room_with(str(sender))
        path = (f"/rooms/{quote(room_id, safe='')}/send/m.room.message/"
                f"{quote(reply.idempotency_key, safe='')}")
        body = await self._call("PUT", path, json_body=content, what="sending the reply",
                                sending=True)
        event_id = body.get("event_id")
        if not isinstance(event_id, str):
            raise TransientError(f"malformed answer from matrix: send gave "
                                 f"{describe_json(body)}")
        sent_at = utcnow()
        thread_key = reply.thread_key or (parent.thread_key if parent else None)
        message = Message(
            source=self.name,
            remote_id=event_id,
            platform=self.platform,
            kind=parent.kind if parent else Kind.DM,
            author=Author(id=self.user_id, handle=self.user_id, url=_matrix_to(self.user_id)),
            text=sanitize_text(reply.body),
            created_at=sent_at,
            direction=Direction.OUT,
            thread_key=thread_key,
            in_reply_to=parent_event if isinstance(parent_event, str) else None,
            url=_matrix_to(room_id, event_id),
            raw={"room_id": room_id, "event_id": event_id, "sender": self.user_id,
                 "thread_root": thread_root if isinstance(thread_root, str) else None,
                 "msgtype": "m.text", "private": to_dm},
        )
        return Receipt(remote_id=event_id, url=message.url, sent_at=sent_at, message=message)

    async def _direct_room_with(self, user: str) -> str:
        """Our direct chat with ``user``: the one in m.direct we are still in, or a new one.

        m.direct is written right after the room is created, so a retry after a crash
        finds the room again and the txnId dedupes the message; at worst a crash between
        the two leaves one empty extra room, never a second message."""
        me = quote(self.user_id, safe="")
        try:
            direct = await self._call("GET", f"/user/{me}/account_data/m.direct",
                                      what="reading direct chats")
        except AuthError:
            raise
        except PermanentError:  # M_NOT_FOUND: no direct chats yet
            direct = {}
        joined = await self._call("GET", "/joined_rooms", what="joined rooms")
        joined_ids = set(_list(joined.get("joined_rooms")))
        rooms = [r for r in _list(direct.get(user)) if isinstance(r, str)]
        for room in rooms:
            if room in joined_ids:
                return room
        body = await self._call("POST", "/createRoom", what="starting a direct chat",
                                json_body={"preset": "trusted_private_chat",
                                           "is_direct": True, "invite": [user]})
        room_id = body.get("room_id")
        if not isinstance(room_id, str):
            raise TransientError(f"malformed answer from matrix: createRoom gave "
                                 f"{describe_json(body)}")
        updated = {k: v for k, v in direct.items() if isinstance(v, list)}
        updated[user] = [*rooms, room_id]
        await self._call("PUT", f"/user/{me}/account_data/m.direct", json_body=updated,
                         what="recording the direct chat")
        self._members[room_id] = 1
        return room_id

    # -- doctor ------------------------------------------------------------------------
    async def check(self) -> CheckResult:
        try:
            body = await self._call("GET", "/account/whoami", what="whoami")
            who = body.get("user_id")
            if who != self.user_id:
                shown = sanitize_line(str(who))[:100]
                return CheckResult(False, f"the token belongs to {shown}, not "
                                   f"{self.user_id}: use a token of {self.user_id} or fix "
                                   f"user_id")
            joined = await self._call("GET", "/joined_rooms", what="joined rooms")
            joined_ids = {r for r in _list(joined.get("joined_rooms")) if isinstance(r, str)}
            details = [f"{len(joined_ids)} joined rooms"]
            rooms = await self._configured_rooms()
            if rooms is not None:
                missing = sorted(rooms - joined_ids)
                if missing:
                    return CheckResult(False, f"{self.user_id} is not in configured room(s) "
                                       f"{', '.join(missing)}: join them or accept the "
                                       "invites", details)
        except (PermanentError, TransientError) as exc:
            return CheckResult(False, str(exc))
        return CheckResult(True, f"signed in as {self.user_id} on {self.homeserver}", details)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _parse_cursor(cursor: Cursor | None) -> tuple[str | None, int | None]:
    if not cursor:
        return None, None
    try:
        data = json.loads(cursor)
    except ValueError:
        return cursor, None  # a bare next_batch token
    if not isinstance(data, dict) or not isinstance(data.get("since"), str):
        return None, None
    ts = data.get("ts")
    return data["since"], ts if isinstance(ts, int) else None


def _encode(body: Any) -> bytes:
    """JSON as UTF-8 (not \\u escapes), so its size is what the event size limit counts."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _date_ms(header: str | None) -> int | None:
    if not header:
        return None
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _room_from_key(thread_key: str | None) -> str | None:
    if not thread_key:
        return None
    kind, _, rest = thread_key.partition(":")
    if kind in ("dm", "room"):
        return rest
    if kind == "thread":
        return rest.partition("|")[0]
    return None
