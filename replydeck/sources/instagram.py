"""Instagram (Graph API, professional account): DMs, comments on recent media, mentions.

Inbound (polling; ``replydeck webhooks`` makes DMs and comments near-instant and polling
then slows to ``poll_interval`` × :data:`~replydeck.sources.facebook.WEBHOOK_POLL_FACTOR`):

* DMs: ``GET /{id}/conversations?platform=instagram`` as for Messenger, where ``{id}`` is
  the linked Facebook Page (``page_id``, Instagram API with Facebook Login) or the
  Instagram account (Instagram Login). Thread ``dm:<conversation id>``.
* comments: ``GET /{ig-user-id}/media`` (the recent media), then for each
  ``GET /{media-id}/comments`` with the replies nested (``replies{...}``). A top-level
  comment and its replies are one conversation, ``comment:<top-level id>``. The order of
  the comments edge is not documented clearly [U]: every item is compared with the mark
  the cursor keeps per media, and reading stops at a page that holds nothing newer.
* mentions: media in which the account is tagged, ``GET /{ig-user-id}/tags`` (kind
  mention, thread ``mention:<media id>``). @mentions in captions and comments of other
  accounts cannot be polled; the ``mentions`` webhook announces them (``{media_id,
  comment_id?}``) and the receiver reads them through ``mentioned_comment`` /
  ``mentioned_media`` (threads ``mention:<media id>:<comment id>`` /
  ``mention:<media id>``). Whether ``username`` is available on ``mentioned_comment``
  is not clear from the docs [U]; without it the author shows as "Instagram user".

Replies: to a comment with ``POST /{top-level comment}/replies`` (only top-level comments
take replies, hidden ones none), to a tagged media with ``POST /{ig-user-id}/mentions``,
privately to a comment with ``recipient.comment_id`` (once, within 7 days), and DMs with
the Send API inside the 24-hour window (``HUMAN_AGENT`` for 7 days), as for Facebook.
DMs are limited to 1000 UTF-8 bytes, comments to 2200 characters.

Config (``type = "instagram"``): ``ig_user_id``, ``token`` (secret; instagram_basic,
instagram_manage_comments, instagram_manage_messages), ``graph_version`` (``v25.0``),
``api_base`` (``https://graph.facebook.com``; ``https://graph.instagram.com`` with an
Instagram Login token), and optionally ``page_id`` (the linked Page, whose
``/conversations`` and ``/messages`` edges carry the DMs with Facebook Login),
``media_limit`` (10), ``messages`` / ``comments`` / ``mentions`` (true), ``webhooks``
(false), ``timeout`` (30 s).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from replydeck.inbox.model import UTC, Author, Direction, Kind, Message, Reply, utcnow
from replydeck.inbox.sanitize import sanitize_line, sanitize_text
from replydeck.sources.base import (
    AuthError,
    Batch,
    Cursor,
    Limits,
    PermanentError,
    Receipt,
    TransientError,
    describe_json,
)
from replydeck.sources.facebook import (
    WEBHOOK_POLL_FACTOR,
    Mark,
    MetaCursor,
    MetaMessagingSource,
    _comparable,
    _data,
    _root_id,
    _skip_malformed,
    _version,
)
from replydeck.sources.meta_graph import (
    DEFAULT_API_BASE,
    DEFAULT_GRAPH_VERSION,
    format_time,
    id_of,
    parse_time,
    text_of,
)

log = logging.getLogger(__name__)

COMMENT_FIELDS = "id,text,timestamp,username,from,parent_id,hidden"
MEDIA_FIELDS = "id,caption,timestamp,permalink,comments_count"
MAX_COMMENT_PAGES = 5


class InstagramSource(MetaMessagingSource):
    type_name = "instagram"
    platform = "instagram"
    parent_key = "media_id"
    conversation_platform = "instagram"
    limits = Limits(max_length=2200, counting="chars", private_max_length=1000,
                    private_counting="utf8_bytes", private_window_hours=24)

    def __init__(self, name: str, *, token: Any, ig_user_id: str, page_id: str | None = None,
                 api_base: str = DEFAULT_API_BASE, graph_version: str = DEFAULT_GRAPH_VERSION,
                 timeout: float = 30.0, media_limit: int = 10, comments: bool = True,
                 messages: bool = True, mentions: bool = True, webhooks: bool = False) -> None:
        super().__init__(name, token=token, account_id=ig_user_id, api_base=api_base,
                         graph_version=graph_version, timeout=timeout, webhooks=webhooks)
        self.ig_user_id = ig_user_id
        self.page_id = page_id
        self.media_limit = media_limit
        self.comments = comments
        self.messages = messages
        self.mentions = mentions
        self.username: str = ""

    @classmethod
    def from_config(cls, table: Any) -> InstagramSource:
        ig_user_id = table.str("ig_user_id")
        if not ig_user_id.isdigit():
            raise table.error("ig_user_id", f"expected the numeric Instagram professional "
                              f"account id as a string, found {ig_user_id!r}")
        page_id = table.str("page_id", None)
        if page_id is not None and not page_id.isdigit():
            raise table.error("page_id", f"expected the numeric id of the linked Facebook "
                              f"Page as a string, found {page_id!r}")
        webhooks = table.bool("webhooks", False)
        if webhooks:
            table.poll_interval *= WEBHOOK_POLL_FACTOR
        return cls(
            table.name, token=table.secret("token"), ig_user_id=ig_user_id, page_id=page_id,
            api_base=table.str("api_base", DEFAULT_API_BASE), graph_version=_version(table),
            timeout=table.number("timeout", 30.0, min=0.05),
            media_limit=table.int("media_limit", 10, min=1, max=100),
            comments=table.bool("comments", True), messages=table.bool("messages", True),
            mentions=table.bool("mentions", True), webhooks=webhooks,
        )

    @property
    def inbox_id(self) -> str:
        return self.page_id or self.ig_user_id

    @property
    def own_ids(self) -> set[str]:
        return {i for i in (self.ig_user_id, self.page_id) if i}

    def _own_author(self) -> Author:
        return Author(id=self.ig_user_id, handle=self.username, name=self.username,
                      url=f"https://www.instagram.com/{self.username}/" if self.username
                      else None)

    def _person(self, who: dict[str, Any]) -> Author:
        author = super()._person(who)
        handle = author.handle
        return Author(id=author.id, handle=handle, name=author.name or handle,
                      url=f"https://www.instagram.com/{handle}/" if handle else None)

    # -- fetch -------------------------------------------------------------------------
    async def fetch(self, cursor: Cursor | None) -> Batch:
        state = MetaCursor.load(cursor, self.graph.label)
        items: list[Message] = []
        if self.messages:
            items += await self._fetch_conversations(state)
        if self.comments:
            items += await self._fetch_comments(state)
        if self.mentions:
            items += await self._fetch_tags(state)
        return Batch(items, state.dump(), not_before=self.graph.take_not_before())

    async def _fetch_comments(self, state: MetaCursor) -> list[Message]:
        media: list[dict[str, Any]] = []
        async for page in self.graph.pages(
                f"/{self.ig_user_id}/media", what="media", permission=self.perms["read"],
                params={"fields": MEDIA_FIELDS, "limit": self.media_limit}, max_pages=1):
            media = page
        out: list[Message] = []
        seen: dict[str, Mark | None] = {}
        fields = f"{COMMENT_FIELDS},replies{{{COMMENT_FIELDS}}}"
        for item in media:
            media_id = id_of(item.get("id"))
            if not media_id:
                raise self._malformed("a media item", item)
            permalink = text_of(item.get("permalink")) or None
            since = state.objects.get(media_id)
            newest = since
            async for page in self.graph.pages(
                    f"/{media_id}/comments", what="comments", permission=self.perms["read"],
                    params={"fields": fields, "limit": 50}, max_pages=MAX_COMMENT_PAGES):
                page_newest: datetime | None = None
                for c in page:
                    for msg in [self._comment_message(media_id, c, permalink)] + [
                            self._comment_message(media_id, r, permalink)
                            for r in _data(c.get("replies"))]:
                        page_newest = max(page_newest or msg.created_at, msg.created_at)
                        if since is None or since.is_new(msg.created_at, msg.remote_id):
                            newest = Mark.advance(newest, msg.created_at, msg.remote_id)
                            out.append(msg)
                if since is not None and (page_newest is None or page_newest < since.at):
                    break
            seen[media_id] = newest
        state.objects = seen
        return out

    def _comment_message(self, media_id: str, c: dict[str, Any],
                         permalink: str | None) -> Message:
        cid = id_of(c.get("id"))
        if not cid:
            raise self._malformed("a comment", c)
        parent_id = id_of(c.get("parent_id")) or None
        root = parent_id or cid
        who = c.get("from") if isinstance(c.get("from"), dict) else {}
        if not who.get("username") and c.get("username"):
            who = {**who, "username": c.get("username")}
        author = self._person(who) if who else Author(id="unknown", name="Instagram user")
        outbound = author.id in self.own_ids or (
            bool(self.username) and author.handle.lower() == self.username.lower())
        return Message(
            source=self.name, remote_id=cid, platform=self.platform,
            kind=Kind.REPLY if outbound else Kind.COMMENT,
            author=self._own_author() if outbound else author,
            text=sanitize_text(text_of(c.get("text"))),
            created_at=parse_time(c.get("timestamp"), self.graph.label),
            direction=Direction.OUT if outbound else Direction.IN,
            thread_key=f"comment:{root}", in_reply_to=parent_id, url=permalink,
            raw={"comment_id": cid, "media_id": media_id, "root_id": root,
                 "parent_id": parent_id, "hidden": c.get("hidden") is True},
        )

    async def _fetch_tags(self, state: MetaCursor) -> list[Message]:
        since = Mark.load(state.extra.get("tags"), self.graph.label) \
            if state.extra.get("tags") else None
        newest = since
        out: list[Message] = []
        async for page in self.graph.pages(
                f"/{self.ig_user_id}/tags", what="tagged media", permission=self.perms["read"],
                params={"fields": "id,caption,timestamp,username,permalink,media_type",
                        "limit": 25}, max_pages=1 if since is None else 4):
            reached = False
            for item in page:
                media_id = id_of(item.get("id"))
                if not media_id:
                    raise self._malformed("a tagged media item", item)
                at = parse_time(item.get("timestamp"), self.graph.label)
                if since is not None and at < since.at:
                    reached = True
                    break
                if since is not None and not since.is_new(at, media_id):
                    continue
                newest = Mark.advance(newest, at, media_id)
                handle = sanitize_line(text_of(item.get("username")))
                out.append(Message(
                    source=self.name, remote_id=media_id, platform=self.platform,
                    kind=Kind.MENTION,
                    author=Author(id=f"ig:{handle}" if handle else "unknown", handle=handle,
                                  name=handle,
                                  url=f"https://www.instagram.com/{handle}/" if handle
                                  else None),
                    text=sanitize_text(text_of(item.get("caption"))), created_at=at,
                    thread_key=f"mention:{media_id}",
                    url=text_of(item.get("permalink")) or None,
                    raw={"media_id": media_id, "mention": True},
                ))
            if reached:
                break
        if newest is not None:
            state.extra["tags"] = newest.dump()
        return out

    # -- send --------------------------------------------------------------------------
    async def _public_reply(self, reply: Reply, target: Message) -> Receipt:
        thread = reply.thread_key or target.thread_key or ""
        if thread.startswith("mention:"):
            media_id = id_of(target.raw.get("media_id")) or thread.split(":")[1]
            return await self._mention_reply(reply, target, media_id)
        root = _root_id(reply, target)
        if target.raw.get("hidden") is True and id_of(target.raw.get("comment_id")) == root:
            raise PermanentError("Instagram does not allow replies to a hidden comment; "
                                 "unhide it in the Instagram app first")
        data = await self.graph.call("POST", f"/{root}/replies", what="comment reply",
                                     permission=self.perms["comment"],
                                     body={"message": reply.body})
        cid = id_of(data.get("id"))
        if not cid:
            raise TransientError(f"malformed answer from Instagram comment reply: "
                                 f"{describe_json(data)}", maybe_sent=True)
        return self._comment_receipt(reply, target, cid, root, utcnow())

    async def _mention_reply(self, reply: Reply, target: Message, media_id: str) -> Receipt:
        body = {"media_id": media_id, "message": reply.body}
        comment_id = id_of(target.raw.get("comment_id"))
        if comment_id:
            body["comment_id"] = comment_id
        data = await self.graph.call(
            "POST", f"/{self.ig_user_id}/mentions", what="mention reply",
            permission=self.perms["comment"], body=body)
        cid = id_of(data.get("id"))
        if not cid:
            raise TransientError(f"malformed answer from Instagram mention reply: "
                                 f"{describe_json(data)}", maybe_sent=True)
        at = utcnow()
        message = Message(
            source=self.name, remote_id=cid, platform=self.platform, kind=Kind.REPLY,
            author=self._own_author(), text=reply.body, created_at=at,
            direction=Direction.OUT, thread_key=reply.thread_key or f"mention:{media_id}",
            in_reply_to=media_id, raw={"comment_id": cid, "media_id": media_id},
        )
        return Receipt(cid, None, at, message)

    async def _find_public_reply(self, reply: Reply, target: Message, since: datetime,
                                 wanted: str) -> Receipt | None:
        if (reply.thread_key or "").startswith("mention:"):
            return None  # [U] no documented way to list our comments on others' media
        root = _root_id(reply, target)
        data = await self.graph.call("GET", f"/{root}/replies", what="comment replies",
                                     permission=self.perms["read"],
                                     params={"fields": COMMENT_FIELDS, "limit": 50})
        for c in _data(data):
            who = c.get("from") if isinstance(c.get("from"), dict) else {}
            at = parse_time(c.get("timestamp"), self.graph.label)
            if id_of(who.get("id")) in self.own_ids and at >= since \
                    and _comparable(text_of(c.get("text"))) == wanted:
                return self._comment_receipt(reply, target, id_of(c.get("id")), root, at)
        return None

    # -- webhooks ------------------------------------------------------------------------
    async def webhook_messages(self, entry: dict[str, Any]) -> list[Message]:
        """Messages from one ``entry`` of an ``instagram`` webhook (DMs and comments)."""
        out: list[Message] = await self._messaging_events(entry)
        stamp = entry.get("time")
        for change in entry.get("changes") or []:
            if not isinstance(change, dict) or change.get("field") not in (
                    "comments", "live_comments", "mentions"):
                continue
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            if change.get("field") == "mentions":
                with _skip_malformed(self.name):
                    try:
                        out.append(await self._mention_message(value))
                    except AuthError:
                        raise  # fixable: the delivery counts as not stored
                    except PermanentError as exc:
                        # Deleted meanwhile, or not a mention after all: nothing to store.
                        log.warning("Instagram mention for %s skipped: %s", self.name, exc)
                continue
            with _skip_malformed(self.name):
                media = value.get("media") if isinstance(value.get("media"), dict) else {}
                media_id = id_of(media.get("id"))
                if not id_of(value.get("id")) or not media_id or not isinstance(stamp, int):
                    raise ValueError("comments change without id, media id or entry time")
                comment = {**value, "timestamp": format_time(
                    datetime.fromtimestamp(stamp / 1000 if stamp > 10**11 else stamp, UTC))}
                out.append(self._comment_message(media_id, comment, None))
        return out

    async def _mention_message(self, value: dict[str, Any]) -> Message:
        """A caption or comment @mention announced by webhook, read through Graph."""
        media_id = id_of(value.get("media_id"))
        comment_id = id_of(value.get("comment_id"))
        if not media_id:
            raise ValueError("mentions change without media_id")
        media_fields = "id,permalink,username"
        if comment_id:
            edge = "mentioned_comment"
            fields = (f"{edge}.comment_id({comment_id}){{id,text,timestamp,username,"
                      f"media{{{media_fields}}}}}")
        else:
            edge = "mentioned_media"
            fields = f"{edge}.media_id({media_id}){{id,caption,timestamp,{media_fields}}}"
        data = await self.graph.call("GET", f"/{self.ig_user_id}", what="mention",
                                     permission=self.perms["comment"],
                                     params={"fields": fields})
        item = data.get(edge)
        if not isinstance(item, dict):
            raise self._malformed("a mention", data)
        media = item.get("media") if isinstance(item.get("media"), dict) else item
        handle = sanitize_line(text_of(item.get("username")))
        return Message(
            source=self.name, remote_id=comment_id or media_id, platform=self.platform,
            kind=Kind.MENTION,
            author=Author(id=f"ig:{handle}" if handle else "unknown", handle=handle,
                          name=handle or "Instagram user",
                          url=f"https://www.instagram.com/{handle}/" if handle else None),
            text=sanitize_text(text_of(item.get("text" if comment_id else "caption"))),
            created_at=parse_time(item.get("timestamp"), self.graph.label),
            thread_key=f"mention:{media_id}:{comment_id}" if comment_id
            else f"mention:{media_id}",
            url=text_of(media.get("permalink")) or None,
            raw={"media_id": media_id, "comment_id": comment_id or None, "mention": True},
        )

    # -- doctor --------------------------------------------------------------------------
    async def _check_calls(self) -> list[str]:
        me = await self.graph.call("GET", f"/{self.ig_user_id}", what="account",
                                   permission=self.perms["read"],
                                   params={"fields": "id,username,followers_count"})
        if id_of(me.get("id")) != self.ig_user_id:
            raise AuthError(f"Instagram answered for another account; check ig_user_id "
                            f"{self.ig_user_id}")
        self.username = sanitize_line(text_of(me.get("username")))
        details = [f"Instagram @{self.username} (id {self.ig_user_id})"]
        if self.messages:
            await self.graph.call("GET", f"/{self.inbox_id}/conversations",
                                  what="conversations", permission=self.perms["messages"],
                                  params={"platform": "instagram", "limit": 1, "fields": "id"})
            details.append("DMs readable (instagram_manage_messages)")
        if self.comments:
            await self.graph.call("GET", f"/{self.ig_user_id}/media", what="media",
                                  permission=self.perms["read"],
                                  params={"limit": 1, "fields": "id"})
            details.append("media and comments readable")
        return details
