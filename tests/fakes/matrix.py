"""A small stateful Matrix homeserver (client-server API v3) for adapter unit tests.

Only what the adapter uses: /sync (since tokens, filter timeline limit and rooms, limited
timelines with prev_batch), /rooms/{id}/messages (backwards paging), /send with txnId
dedupe per access token, /joined_members, /join, /directory/room, /account/whoami,
/joined_rooms. Errors use Matrix's own shape ``{"errcode", "error"}``. The adapter is
also tested against a real Synapse (tests/e2e/test_matrix_e2e.py), which is the
reference for the shapes used here.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.httpfake import FakeHTTPServer, FakeRequest, FakeResponse

API = "/_matrix/client/v3"


@dataclass
class Room:
    room_id: str
    members: list[str]
    invited: list[str] = field(default_factory=list)
    alias: str | None = None
    #: (stream position, event)
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


class FakeMatrix:
    def __init__(self, server_name: str = "example.org") -> None:
        self.server_name = server_name
        self.tokens: dict[str, str] = {}  # token -> user id
        self.rooms: dict[str, Room] = {}
        self.txns: dict[tuple[str, str], str] = {}  # (token, txnId) -> event id
        self.account_data: dict[tuple[str, str], Any] = {}  # (user, type) -> content
        self._pos = itertools.count(1)
        self._ids = itertools.count(1)
        self.ts = int(time.time() * 1000)  # servers stamp events with their own clock
        self.http = FakeHTTPServer()
        self._routes()

    # -- state -------------------------------------------------------------------------
    def add_user(self, user_id: str, token: str) -> None:
        self.tokens[token] = user_id

    def add_room(self, members: list[str], *, invited: list[str] | None = None,
                 alias: str | None = None) -> str:
        room_id = f"!room{next(self._ids)}:{self.server_name}"
        room = Room(room_id, list(members), list(invited or []), alias)
        self.rooms[room_id] = room
        for user in members:
            self._append(room, {"type": "m.room.member", "sender": user, "state_key": user,
                                "content": {"membership": "join",
                                            "displayname": self.display_name(user)}})
        return room_id

    @staticmethod
    def display_name(user_id: str) -> str:
        return user_id[1:].split(":")[0]

    def _append(self, room: Room, event: dict[str, Any]) -> dict[str, Any]:
        self.ts += 1000
        event = {"event_id": f"$ev{next(self._ids)}", "origin_server_ts": self.ts,
                 "room_id": room.room_id, **event}
        room.events.append((next(self._pos), event))
        return event

    def say(self, room_id: str, sender: str, body: str | None = None, **content: Any) -> str:
        if body is not None:
            content = {"msgtype": "m.text", "body": body, **content}
        ev = self._append(self.rooms[room_id], {"type": "m.room.message", "sender": sender,
                                                "content": content})
        return ev["event_id"]

    def messages_in(self, room_id: str, sender: str | None = None) -> list[dict[str, Any]]:
        return [e for _, e in self.rooms[room_id].events
                if e["type"] == "m.room.message" and (sender is None or e["sender"] == sender)]

    # -- HTTP --------------------------------------------------------------------------
    def start(self) -> FakeMatrix:
        self.http.start()
        return self

    def stop(self) -> None:
        self.http.stop()

    @property
    def url(self) -> str:
        return self.http.base_url

    @staticmethod
    def error(status: int, errcode: str, error: str, **extra: Any) -> FakeResponse:
        return FakeResponse(status, {"errcode": errcode, "error": error, **extra})

    def _user(self, req: FakeRequest) -> str | FakeResponse:
        auth = req.header("authorization") or ""
        if not auth.startswith("Bearer "):
            return self.error(401, "M_MISSING_TOKEN", "Missing access token")
        user = self.tokens.get(auth[7:])
        if user is None:
            return self.error(401, "M_UNKNOWN_TOKEN", "Unknown access token",
                              soft_logout=False)
        return user

    def _routes(self) -> None:
        route = self.http.route

        def authed(handler):
            def wrapped(req: FakeRequest) -> FakeResponse:
                user = self._user(req)
                if isinstance(user, FakeResponse):
                    return user
                return handler(req, user)
            return wrapped

        @route("GET", API + "/account/whoami")
        @authed
        def whoami(req: FakeRequest, user: str) -> FakeResponse:
            return FakeResponse(200, {"user_id": user, "device_id": "FAKEDEVICE"})

        @route("GET", API + r"/user/(?P<user>[^/]+)/account_data/(?P<type>[^/]+)")
        @authed
        def get_account_data(req: FakeRequest, user: str) -> FakeResponse:
            data = self.account_data.get((user, req.params["type"]))
            if data is None:
                return self.error(404, "M_NOT_FOUND", "Account data not found")
            return FakeResponse(200, data)

        @route("PUT", API + r"/user/(?P<user>[^/]+)/account_data/(?P<type>[^/]+)")
        @authed
        def put_account_data(req: FakeRequest, user: str) -> FakeResponse:
            self.account_data[(user, req.params["type"])] = req.json()
            return FakeResponse(200, {})

        @route("POST", API + "/createRoom")
        @authed
        def create_room(req: FakeRequest, user: str) -> FakeResponse:
            body = req.json()
            room_id = self.add_room([user], invited=list(body.get("invite", [])))
            return FakeResponse(200, {"room_id": room_id})

        @route("GET", API + "/joined_rooms")
        @authed
        def joined_rooms(req: FakeRequest, user: str) -> FakeResponse:
            return FakeResponse(200, {"joined_rooms": [r.room_id for r in self.rooms.values()
                                                       if user in r.members]})

        @route("GET", API + r"/directory/room/(?P<alias>[^/]+)")
        def directory(req: FakeRequest) -> FakeResponse:
            from urllib.parse import unquote

            alias = unquote(req.params["alias"])
            for room in self.rooms.values():
                if room.alias == alias:
                    return FakeResponse(200, {"room_id": room.room_id, "servers": []})
            return self.error(404, "M_NOT_FOUND", f"Room alias {alias} not found")

        @route("GET", API + r"/rooms/(?P<room>[^/]+)/joined_members")
        @authed
        def joined_members(req: FakeRequest, user: str) -> FakeResponse:
            room = self._room(req)
            if room is None or user not in room.members:
                return self.error(403, "M_FORBIDDEN", "You are not in this room")
            return FakeResponse(200, {"joined": {m: {"display_name": self.display_name(m),
                                                     "avatar_url": None}
                                                 for m in room.members}})

        @route("POST", API + r"/join/(?P<room>[^/]+)")
        @authed
        def join(req: FakeRequest, user: str) -> FakeResponse:
            room = self._room(req)
            if room is None or user not in room.invited:
                return self.error(403, "M_FORBIDDEN", "You are not invited to this room.")
            room.invited.remove(user)
            room.members.append(user)
            self._append(room, {"type": "m.room.member", "sender": user, "state_key": user,
                                "content": {"membership": "join",
                                            "displayname": self.display_name(user)}})
            return FakeResponse(200, {"room_id": room.room_id})

        @route("PUT", API + r"/rooms/(?P<room>[^/]+)/send/m\.room\.message/(?P<txn>[^/]+)")
        @authed
        def send(req: FakeRequest, user: str) -> FakeResponse:
            room = self._room(req)
            if room is None or user not in room.members:
                return self.error(403, "M_FORBIDDEN", "You are not in this room")
            if len(req.body) > 65536:
                return self.error(413, "M_TOO_LARGE", "event too large")
            key = (req.header("authorization") or "", req.params["txn"])
            if key not in self.txns:
                ev = self._append(room, {"type": "m.room.message", "sender": user,
                                         "content": req.json()})
                self.txns[key] = ev["event_id"]
            return FakeResponse(200, {"event_id": self.txns[key]})

        @route("GET", API + r"/rooms/(?P<room>[^/]+)/messages")
        @authed
        def messages(req: FakeRequest, user: str) -> FakeResponse:
            room = self._room(req)
            if room is None or user not in room.members:
                return self.error(403, "M_FORBIDDEN", "You are not in this room")
            start = int((req.arg("from") or "t0").lstrip("t"))
            limit = int(req.arg("limit") or 10)
            older = [e for pos, e in room.events if pos < start]
            types = json.loads(req.arg("filter") or "{}").get("types")
            page = older[-limit:][::-1]
            chunk = [e for e in page if not types or e["type"] in types]
            first_pos = min((p for p, e in room.events if e in page), default=0)
            body: dict[str, Any] = {"chunk": chunk, "start": f"t{start}"}
            if len(older) > limit:
                body["end"] = f"t{first_pos}"
            return FakeResponse(200, body)

        @route("GET", API + "/sync")
        @authed
        def sync(req: FakeRequest, user: str) -> FakeResponse:
            since = int(req.arg("since") or 0)
            filt = json.loads(req.arg("filter") or "{}").get("room", {})
            limit = filt.get("timeline", {}).get("limit", 10)
            types = filt.get("timeline", {}).get("types")
            only = filt.get("rooms")
            now = max((p for r in self.rooms.values() for p, _ in r.events), default=0)
            join: dict[str, Any] = {}
            invite: dict[str, Any] = {}
            for room in self.rooms.values():
                if only is not None and room.room_id not in only:
                    continue
                if user in room.invited:
                    invite[room.room_id] = {"invite_state": {"events": []}}
                    continue
                if user not in room.members:
                    continue
                # a room joined after `since` is new to this client: show its recent past
                joined_at = max(p for p, e in room.events if e["type"] == "m.room.member"
                                and e.get("state_key") == user)
                lower = 0 if joined_at > since else since
                new = [(p, e) for p, e in room.events if p > lower
                       and (not types or e["type"] in types)]
                if not new:
                    continue
                shown = new[-limit:]
                join[room.room_id] = {
                    # /sync events carry no room_id (ClientEventWithoutRoomID)
                    "timeline": {"events": [{k: v for k, v in e.items() if k != "room_id"}
                                            for _, e in shown],
                                 "limited": len(new) > limit,
                                 "prev_batch": f"t{shown[0][0]}"},
                    "state": {"events": []},
                    "summary": {},
                    "ephemeral": {"events": []},
                    "account_data": {"events": []},
                    "unread_notifications": {},
                }
            # Synapse leaves out empty sections
            rooms = {k: v for k, v in (("join", join), ("invite", invite)) if v}
            return FakeResponse(200, {"next_batch": str(now),
                                      **({"rooms": rooms} if rooms else {})})

    def _room(self, req: FakeRequest) -> Room | None:
        from urllib.parse import unquote

        return self.rooms.get(unquote(req.params["room"]))
