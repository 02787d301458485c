"""Facebook Page (Graph API): Messenger conversations and comments on the Page's posts.

Inbound (polling; webhooks through ``replydeck webhooks`` make it near-instant, and then
polling slows to a safety net of ``poll_interval`` × :data:`WEBHOOK_POLL_FACTOR`):

* Messenger: ``GET /{page-id}/conversations?platform=messenger`` with each
  conversation's latest messages. Conversations come newest first; Graph has no
  time-based paging, so reading stops at the last ``updated_time`` the cursor saw. A
  conversation is thread ``dm:<conversation id>``; messages from the Page itself (sent
  from Business Suite or the Messenger app) are direction OUT. Graph returns at most the
  20 newest messages of a conversation [U], so more than 20 messages in one conversation
  between two polls lose the oldest (webhooks do not have this limit).
* Comments on the Page's recent posts: ``GET /{page-id}/posts``, then for each post
  ``GET /{post-id}/comments?filter=stream&order=reverse_chronological`` down to the
  newest comment time the cursor remembers for that post. A top-level comment and its
  replies are one conversation, ``comment:<top-level id>``.

Replies:

* public, to a comment: ``POST /{top-level comment}/comments`` (Facebook keeps two levels);
* private, to a comment: ``POST /{page-id}/messages`` with ``recipient.comment_id``, once
  per comment and within 7 days, checked before calling (``can_reply_privately``);
* in a Messenger conversation: the Send API with ``messaging_type: RESPONSE`` within 24 h
  of the customer's last message; after that only with ``reply.options["tag"] ==
  "HUMAN_AGENT"`` (7 days, ``MESSAGE_TAG``). :meth:`reply_window` tells the composer.

Graph has no idempotency key. After a crash mid-send :meth:`find_sent` looks for our text
among the Page's latest messages in the conversation / replies under the comment.

Config (``[[sources]] type = "facebook"``): ``page_id`` (string of digits), ``token``
(secret: a Page access token with pages_messaging, pages_read_engagement,
pages_read_user_content, pages_manage_engagement), ``graph_version`` (default
``v25.0``), ``api_base`` (default ``https://graph.facebook.com``), and optionally
``posts_limit`` (recent posts whose comments are read, default 10), ``messages`` /
``comments`` (true), ``webhooks`` (false; true slows polling ×10), ``timeout`` (30 s).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from abc import abstractmethod
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

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
    SourceError,
    TransientError,
    describe_json,
)
from replydeck.sources.meta_graph import (
    DEFAULT_API_BASE,
    DEFAULT_GRAPH_VERSION,
    PERMISSIONS,
    GraphClient,
    WindowInfo,
    format_time,
    id_of,
    parse_time,
    reply_window,
    text_of,
)

log = logging.getLogger(__name__)

#: With webhooks on, polling only catches what a lost webhook missed.
WEBHOOK_POLL_FACTOR = 10
MESSAGE_FIELDS = "id,created_time,from,to,message"
CONVERSATION_FIELDS = f"id,updated_time,participants,messages.limit(20){{{MESSAGE_FIELDS}}}"
#: Pages of conversations read in one fetch (25 each); the first fetch reads one.
MAX_CONVERSATION_PAGES = 20
MAX_COMMENT_PAGES = 5
#: How far back find_sent looks before the reply was queued (clock skew).
RECONCILE_SLACK = timedelta(minutes=5)


class MetaMessagingSource(BaseSource):
    """What Facebook Pages and Instagram share: the conversations edge, the Send API with
    its 24-hour window, private replies to comments, the cursor, and reconciliation."""

    idempotent_send = False
    can_reconcile = True
    default_poll_interval = 120
    conversation_platform = "messenger"

    def __init__(self, name: str, *, token: Any, account_id: str, api_base: str,
                 graph_version: str, timeout: float, webhooks: bool = False) -> None:
        super().__init__(name)
        self.account_id = account_id
        self.webhooks = webhooks
        self.graph = GraphClient(platform=self.platform, token=token, api_base=api_base,
                                 graph_version=graph_version, timeout=timeout)
        #: Comments this process answered privately (Graph refuses a second one anyway).
        self._private_replied: set[str] = set()
        #: Customer id -> conversation id, for webhook events (which carry no thread id).
        self._conversation_ids: dict[str, str] = {}
        self._people: dict[str, Author] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.account_id!r})"

    @property
    def perms(self) -> dict[str, str]:
        return PERMISSIONS[self.platform]

    @property
    def inbox_id(self) -> str:
        """The node whose ``/conversations`` and ``/messages`` edges hold the DMs."""
        return self.account_id

    @property
    def own_ids(self) -> set[str]:
        return {self.account_id}

    async def close(self) -> None:
        await self.graph.close()

    # -- fetch: conversations ----------------------------------------------------------
    async def _fetch_conversations(self, state: MetaCursor) -> list[Message]:
        since = state.dm
        newest = since
        out: list[Message] = []
        params = {"platform": self.conversation_platform, "fields": CONVERSATION_FIELDS,
                  "limit": 25}
        pages = self.graph.pages(f"/{self.inbox_id}/conversations", what="conversations",
                                 permission=self.perms["messages"], params=params,
                                 max_pages=1 if since is None else MAX_CONVERSATION_PAGES)
        async for page in pages:
            reached = False
            for conv in page:
                conv_id = id_of(conv.get("id"))
                if not conv_id:
                    raise self._malformed("a conversation", conv)
                updated = parse_time(conv.get("updated_time"), self.graph.label)
                if since is not None and updated < since.at:
                    reached = True
                    break
                for msg in _data(conv.get("messages")):
                    message = self._dm_message(conv_id, msg)
                    if since is None or since.is_new(message.created_at, message.remote_id):
                        out.append(message)
                        newest = Mark.advance(newest, message.created_at, message.remote_id)
                        if message.direction == Direction.IN:
                            self._conversation_ids[message.author.id] = conv_id
                            self._people[message.author.id] = message.author
            if reached:
                break
        state.dm = newest
        return out

    def _dm_message(self, conv_id: str, m: dict[str, Any]) -> Message:
        mid = id_of(m.get("id"))
        sender = m.get("from")
        if not mid or not isinstance(sender, dict) or not id_of(sender.get("id")):
            raise self._malformed("a message", m)
        sender_id = sender["id"]
        outbound = sender_id in self.own_ids
        recipients = _data(m.get("to"))
        customer = sender_id if not outbound else \
            next((id_of(r.get("id")) for r in recipients if id_of(r.get("id"))), "")
        return Message(
            source=self.name, remote_id=mid, platform=self.platform, kind=Kind.DM,
            author=self._person(sender),
            text=sanitize_text(text_of(m.get("message"))),
            created_at=parse_time(m.get("created_time"), self.graph.label),
            direction=Direction.OUT if outbound else Direction.IN,
            thread_key=f"dm:{conv_id}",
            raw={"mid": mid, "conversation_id": conv_id, "recipient_id": customer},
        )

    def _person(self, who: dict[str, Any]) -> Author:
        handle = sanitize_line(text_of(who.get("username")))
        return Author(id=id_of(who.get("id")), handle=handle,
                      name=sanitize_line(text_of(who.get("name"))) or handle)

    def _malformed(self, what: str, value: Any) -> TransientError:
        return TransientError(f"malformed answer from {self.graph.label}: {what} is "
                              f"{describe_json(value)}")

    # -- window ------------------------------------------------------------------------
    def reply_window(self, reply_to: Message | None, now: datetime | None = None, *,
                     private: bool | None = None, thread_key: str | None = None,
                     tag: str | None = None) -> WindowInfo:
        """Whether a reply to ``reply_to`` may go out at ``now`` (for the composer).

        ``private`` defaults to the kind of thread: a DM thread is private, a comment
        thread public (pass ``private=True`` for a private reply to the comment).
        """
        if private is None:
            thread = thread_key or (reply_to.thread_key if reply_to is not None else "")
            private = (thread or "").startswith("dm:")
        comment_id = _comment_id(reply_to) if reply_to is not None else ""
        replied = comment_id in self._private_replied or (
            reply_to is not None and reply_to.raw.get("can_reply_privately") is False)
        return reply_window(reply_to, now or utcnow(), private=private,
                            thread_key=thread_key, tag=tag, private_replied=replied)

    # -- send --------------------------------------------------------------------------
    def _is_dm(self, reply: Reply) -> bool:
        thread = reply.thread_key or (reply.reply_to.thread_key if reply.reply_to else "")
        return (thread or "").startswith("dm:")

    def _check_length(self, reply: Reply, private: bool) -> None:
        result = textlen.check_reply(reply.body, self.limits, private)
        if not result.ok:
            what = "message" if private else "comment"
            raise PermanentError(f"too long for a {self.graph.label} {what}: "
                                 f"{result.describe()}")
        if not reply.body.strip():
            raise PermanentError(f"an empty reply cannot be sent to {self.graph.label}")

    async def send(self, reply: Reply) -> Receipt:
        target = reply.reply_to
        if target is None:
            raise PermanentError(f"nothing to reply to: the conversation has no customer "
                                 f"message from {self.graph.label}")
        if self._is_dm(reply):
            self._check_length(reply, True)
            return await self._send_dm(reply, target)
        self._check_length(reply, reply.private)
        if reply.private:
            return await self._private_reply(reply, target)
        return await self._public_reply(reply, target)

    async def _send_dm(self, reply: Reply, target: Message) -> Receipt:
        tag = reply.options.get("tag") if isinstance(reply.options, dict) else None
        if tag is not None and tag != "HUMAN_AGENT":
            raise PermanentError(f"the message tag {sanitize_line(str(tag))[:40]!r} is not "
                                 "for replies; only HUMAN_AGENT is")
        window = self.reply_window(target, utcnow(), private=True,
                                   thread_key=reply.thread_key, tag=tag)
        if not window.open:
            raise PermanentError(f"not sent: {window.reason}")
        recipient = id_of(target.raw.get("recipient_id")) or (
            target.author.id if target.direction == Direction.IN else "")
        if not recipient:
            raise PermanentError("cannot tell whom to message in this conversation")
        body: dict[str, Any] = {"recipient": {"id": recipient},
                                "message": {"text": reply.body}}
        in_window = utcnow() - target.created_at <= timedelta(hours=24)
        if tag == "HUMAN_AGENT" and not in_window:
            body.update(messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
        else:
            body["messaging_type"] = "RESPONSE"
        data = await self.graph.call("POST", f"/{self.inbox_id}/messages", what="send message",
                                     permission=self.perms["messages"], body=body)
        mid = id_of(data.get("message_id"))
        if not mid:
            raise TransientError(f"malformed answer from {self.graph.label} send message: "
                                 f"{describe_json(data)}", maybe_sent=True)
        conv_id = id_of(target.raw.get("conversation_id")) or \
            (reply.thread_key or "")[3:]
        return self._dm_receipt(reply, mid, conv_id, recipient, utcnow())

    def _dm_receipt(self, reply: Reply, mid: str, conv_id: str, recipient: str,
                    at: datetime) -> Receipt:
        message = Message(
            source=self.name, remote_id=mid, platform=self.platform, kind=Kind.DM,
            author=self._own_author(), text=reply.body, created_at=at,
            direction=Direction.OUT, thread_key=reply.thread_key or f"dm:{conv_id}",
            raw={"mid": mid, "conversation_id": conv_id, "recipient_id": recipient},
        )
        return Receipt(mid, None, at, message)

    def _own_author(self) -> Author:
        return Author(id=self.account_id)

    async def _private_reply(self, reply: Reply, target: Message) -> Receipt:
        comment_id = _comment_id(target)
        if not comment_id:
            raise PermanentError("cannot tell which comment to answer privately")
        await self._check_private_reply(target, comment_id)
        window = self.reply_window(target, utcnow(), private=True,
                                   thread_key=reply.thread_key)
        if not window.open:
            raise PermanentError(f"not sent: {window.reason}")
        data = await self.graph.call(
            "POST", f"/{self.inbox_id}/messages", what="private reply",
            permission=self.perms["messages"],
            body={"recipient": {"comment_id": comment_id}, "message": {"text": reply.body}})
        mid = id_of(data.get("message_id"))
        if not mid:
            raise TransientError(f"malformed answer from {self.graph.label} private reply: "
                                 f"{describe_json(data)}", maybe_sent=True)
        self._private_replied.add(comment_id)
        at = utcnow()
        message = Message(
            source=self.name, remote_id=mid, platform=self.platform, kind=Kind.DM,
            author=self._own_author(), text=reply.body, created_at=at,
            direction=Direction.OUT, thread_key=reply.thread_key or target.thread_key,
            in_reply_to=target.remote_id,
            raw={"mid": mid, "private_reply_to": comment_id,
                 "recipient_id": id_of(data.get("recipient_id"))},
        )
        return Receipt(mid, None, at, message)

    async def _check_private_reply(self, target: Message, comment_id: str) -> None:
        """Hook: a platform that can ask Graph whether the comment still takes one."""

    #: The raw key naming what a comment is on (a Page post, an Instagram media).
    parent_key = "post_id"

    def _comment_receipt(self, reply: Reply, target: Message, cid: str, root: str,
                         at: datetime) -> Receipt:
        """Our public reply as it will show in the comment thread."""
        message = Message(
            source=self.name, remote_id=cid, platform=self.platform, kind=Kind.REPLY,
            author=self._own_author(), text=reply.body, created_at=at,
            direction=Direction.OUT, thread_key=reply.thread_key or f"comment:{root}",
            in_reply_to=root,
            raw={"comment_id": cid, "root_id": root, "parent_id": root,
                 self.parent_key: target.raw.get(self.parent_key)},
        )
        return Receipt(cid, None, at, message)

    @abstractmethod
    async def _public_reply(self, reply: Reply, target: Message) -> Receipt:
        """Answer a comment in public (Facebook and Instagram use different calls)."""

    async def find_sent(self, reply: Reply) -> Receipt | None:
        """After a crash mid-send: is our text among the Page's latest messages in the
        conversation, or our replies under the comment, since the reply was queued?

        A private reply to a comment is not looked up: Graph accepts only one per comment,
        so sending it again cannot produce a second message (it is refused instead).
        """
        target = reply.reply_to
        if target is None or (reply.private and not self._is_dm(reply)):
            return None
        since = (reply.created_at or utcnow() - timedelta(days=7)) - RECONCILE_SLACK
        wanted = _comparable(reply.body)
        if self._is_dm(reply):
            conv_id = id_of(target.raw.get("conversation_id")) or (reply.thread_key or "")[3:]
            data = await self.graph.call(
                "GET", f"/{conv_id}/messages", what="conversation messages",
                permission=self.perms["messages"],
                params={"fields": MESSAGE_FIELDS, "limit": 20})
            for m in _data(data):
                sender = m.get("from") if isinstance(m.get("from"), dict) else {}
                if id_of(sender.get("id")) in self.own_ids \
                        and _comparable(text_of(m.get("message"))) == wanted \
                        and parse_time(m.get("created_time"), self.graph.label) >= since:
                    return self._dm_receipt(reply, id_of(m.get("id")), conv_id,
                                            id_of(target.raw.get("recipient_id")),
                                            parse_time(m.get("created_time"),
                                                       self.graph.label))
            return None
        return await self._find_public_reply(reply, target, since, wanted)

    @abstractmethod
    async def _find_public_reply(self, reply: Reply, target: Message, since: datetime,
                                 wanted: str) -> Receipt | None:
        """Our public reply with ``wanted`` text under the comment since ``since``, if any."""

    # -- webhooks ------------------------------------------------------------------------
    async def _messaging_events(self, entry: dict[str, Any]) -> list[Message]:
        """The DMs in one webhook ``entry`` (Messenger and Instagram share the shape)."""
        out: list[Message] = []
        for event in entry.get("messaging") or []:
            if isinstance(event, dict):
                with _skip_malformed(self.name):
                    msg = await self.messaging_event(event)
                    if msg is not None:
                        out.append(msg)
        return out

    async def messaging_event(self, event: dict[str, Any]) -> Message | None:
        """A Messenger / Instagram ``messaging`` webhook event as a Message (None for
        events that are not a text message: reads, deliveries, reactions...).

        Webhook events name the customer, not the conversation: its id is looked up once
        (``conversations?user_id=``) so the message joins the thread polling builds.
        """
        message = event.get("message")
        sender = event.get("sender")
        recipient = event.get("recipient")
        if not isinstance(message, dict) or not isinstance(sender, dict) \
                or not isinstance(recipient, dict):
            return None
        mid = id_of(message.get("mid"))
        sender_id = id_of(sender.get("id"))
        recipient_id = id_of(recipient.get("id"))
        stamp = event.get("timestamp")
        if not mid or not sender_id or not isinstance(stamp, int) or isinstance(stamp, bool):
            raise ValueError("messaging event without mid, sender or timestamp")
        outbound = message.get("is_echo") is True or sender_id in self.own_ids
        customer = recipient_id if outbound else sender_id
        conv_id = await self.conversation_for(customer)
        person = self._people.get(customer) or Author(id=customer)
        text = text_of(message.get("text"))
        if not text and isinstance(message.get("attachments"), list):
            kinds = {sanitize_line(text_of(a.get("type"))) for a in message["attachments"]
                     if isinstance(a, dict)}
            text = "[" + ", ".join(sorted(k for k in kinds if k)) + "]"
        return Message(
            source=self.name, remote_id=mid, platform=self.platform, kind=Kind.DM,
            author=self._own_author() if outbound else person,
            text=sanitize_text(text),
            created_at=datetime.fromtimestamp(stamp / 1000, tz=UTC),
            direction=Direction.OUT if outbound else Direction.IN,
            thread_key=f"dm:{conv_id}",
            raw={"mid": mid, "conversation_id": conv_id, "recipient_id": customer},
        )

    async def conversation_for(self, customer_id: str) -> str:
        if customer_id in self._conversation_ids:
            return self._conversation_ids[customer_id]
        data = await self.graph.call(
            "GET", f"/{self.inbox_id}/conversations", what="conversation lookup",
            permission=self.perms["messages"],
            params={"platform": self.conversation_platform, "user_id": customer_id,
                    "fields": "id,participants"})
        convs = _data(data)
        conv_id = id_of(convs[0].get("id")) if convs else ""
        if not conv_id:
            raise TransientError(f"{self.graph.label} knows no conversation with this "
                                 "sender yet")
        # The participants name the customer, which the webhook event does not.
        for who in _data(convs[0].get("participants")):
            if id_of(who.get("id")) == customer_id:
                self._people[customer_id] = self._person(who)
        self._conversation_ids[customer_id] = conv_id
        return conv_id

    # -- doctor --------------------------------------------------------------------------
    @abstractmethod
    async def _check_calls(self) -> list[str]:
        """The platform's own `doctor` checks; returns the problems found."""

    async def check(self) -> CheckResult:
        try:
            details = await self._check_calls()
        except RateLimited as exc:
            return CheckResult(True, f"reachable but rate limited: {exc}")
        except (SourceError, ValueError) as exc:
            return CheckResult(False, str(exc))
        return CheckResult(True, details[0], details[1:])


class FacebookSource(MetaMessagingSource):
    type_name = "facebook"
    platform = "facebook"
    # Comments: 8000 characters [U]; Messenger text: 2000 characters.
    limits = Limits(max_length=8000, counting="chars", private_max_length=2000,
                    private_counting="chars", private_window_hours=24)

    def __init__(self, name: str, *, token: Any, page_id: str,
                 api_base: str = DEFAULT_API_BASE, graph_version: str = DEFAULT_GRAPH_VERSION,
                 timeout: float = 30.0, posts_limit: int = 10, comments: bool = True,
                 messages: bool = True, webhooks: bool = False) -> None:
        super().__init__(name, token=token, account_id=page_id, api_base=api_base,
                         graph_version=graph_version, timeout=timeout, webhooks=webhooks)
        self.page_id = page_id
        self.posts_limit = posts_limit
        self.comments = comments
        self.messages = messages

    @classmethod
    def from_config(cls, table: Any) -> FacebookSource:
        page_id = table.str("page_id")
        if not page_id.isdigit():
            raise table.error("page_id", f"expected the numeric Page id as a string, "
                              f"found {page_id!r}")
        webhooks = table.bool("webhooks", False)
        if webhooks:
            table.poll_interval *= WEBHOOK_POLL_FACTOR
        return cls(
            table.name, token=table.secret("token"), page_id=page_id,
            api_base=table.str("api_base", DEFAULT_API_BASE),
            graph_version=_version(table), timeout=table.number("timeout", 30.0, min=0.05),
            posts_limit=table.int("posts_limit", 10, min=1, max=100),
            comments=table.bool("comments", True), messages=table.bool("messages", True),
            webhooks=webhooks,
        )

    # -- fetch -------------------------------------------------------------------------
    async def fetch(self, cursor: Cursor | None) -> Batch:
        state = MetaCursor.load(cursor, self.graph.label)
        items: list[Message] = []
        if self.messages:
            items += await self._fetch_conversations(state)
        if self.comments:
            items += await self._fetch_comments(state)
        return Batch(items, state.dump(), not_before=self.graph.take_not_before())

    async def _fetch_comments(self, state: MetaCursor) -> list[Message]:
        posts: list[dict[str, Any]] = []
        async for page in self.graph.pages(
                f"/{self.page_id}/posts", what="posts", permission=self.perms["read"],
                params={"fields": "id,message,created_time,permalink_url",
                        "limit": self.posts_limit}, max_pages=1):
            posts = page
        out: list[Message] = []
        seen: dict[str, Mark | None] = {}
        for post in posts:
            post_id = id_of(post.get("id"))
            if not post_id:
                raise self._malformed("a post", post)
            since = state.objects.get(post_id)
            newest = since
            async for page in self.graph.pages(
                    f"/{post_id}/comments", what="comments", permission=self.perms["read"],
                    params={"filter": "stream", "order": "reverse_chronological",
                            "fields": COMMENT_FIELDS, "limit": 100},
                    max_pages=MAX_COMMENT_PAGES):
                reached = False
                for c in page:
                    msg = self._comment_message(post_id, c)
                    if since is not None and msg.created_at < since.at:
                        reached = True
                        break
                    if since is None or since.is_new(msg.created_at, msg.remote_id):
                        newest = Mark.advance(newest, msg.created_at, msg.remote_id)
                        out.append(msg)
                if reached:
                    break
            seen[post_id] = newest
        # Only the recent posts are remembered; older ones left the listing.
        state.objects = seen
        return out

    def _comment_message(self, post_id: str, c: dict[str, Any]) -> Message:
        cid = id_of(c.get("id"))
        if not cid:
            raise self._malformed("a comment", c)
        parent = c.get("parent") if isinstance(c.get("parent"), dict) else {}
        parent_id = id_of(parent.get("id")) or None
        root = parent_id or cid
        who = c.get("from") if isinstance(c.get("from"), dict) else None
        # `from` is left out when the token lacks pages_read_user_content.
        author = self._person(who) if who else Author(id="unknown", name="Facebook user")
        outbound = author.id == self.page_id
        count = c.get("comment_count")
        return Message(
            source=self.name, remote_id=cid, platform=self.platform,
            kind=Kind.REPLY if outbound else Kind.COMMENT, author=author,
            text=sanitize_text(text_of(c.get("message"))),
            created_at=parse_time(c.get("created_time"), self.graph.label),
            direction=Direction.OUT if outbound else Direction.IN,
            thread_key=f"comment:{root}", in_reply_to=parent_id,
            url=text_of(c.get("permalink_url")) or None,
            engagement={"replies": count} if isinstance(count, int) else {},
            raw={"comment_id": cid, "post_id": post_id, "root_id": root,
                 "parent_id": parent_id,
                 "can_reply_privately": c.get("can_reply_privately")
                 if isinstance(c.get("can_reply_privately"), bool) else None},
        )

    # -- send --------------------------------------------------------------------------
    async def _check_private_reply(self, target: Message, comment_id: str) -> None:
        data = await self.graph.call(
            "GET", f"/{comment_id}", what="comment", permission=self.perms["read"],
            params={"fields": "id,created_time,can_reply_privately"})
        if data.get("can_reply_privately") is False:
            self._private_replied.add(comment_id)

    async def _public_reply(self, reply: Reply, target: Message) -> Receipt:
        root = _root_id(reply, target)
        data = await self.graph.call("POST", f"/{root}/comments", what="comment reply",
                                     permission=self.perms["comment"],
                                     body={"message": reply.body})
        cid = id_of(data.get("id"))
        if not cid:
            raise TransientError(f"malformed answer from Facebook comment reply: "
                                 f"{describe_json(data)}", maybe_sent=True)
        return self._comment_receipt(reply, target, cid, root, utcnow())

    async def _find_public_reply(self, reply: Reply, target: Message, since: datetime,
                                 wanted: str) -> Receipt | None:
        root = _root_id(reply, target)
        data = await self.graph.call(
            "GET", f"/{root}/comments", what="comment replies", permission=self.perms["read"],
            params={"fields": "id,message,created_time,from", "filter": "stream",
                    "order": "reverse_chronological", "limit": 50})
        for c in _data(data):
            who = c.get("from") if isinstance(c.get("from"), dict) else {}
            at = parse_time(c.get("created_time"), "Facebook")
            if id_of(who.get("id")) == self.page_id and at >= since \
                    and _comparable(text_of(c.get("message"))) == wanted:
                return self._comment_receipt(reply, target, id_of(c.get("id")), root, at)
        return None

    # -- webhooks ------------------------------------------------------------------------
    async def webhook_messages(self, entry: dict[str, Any]) -> list[Message]:
        """Messages from one ``entry`` of a ``page`` webhook (Messenger and feed)."""
        out: list[Message] = await self._messaging_events(entry)
        for change in entry.get("changes") or []:
            if isinstance(change, dict) and change.get("field") == "feed":
                with _skip_malformed(self.name):
                    msg = self._feed_change(change.get("value"))
                    if msg is not None:
                        out.append(msg)
        return out

    def _feed_change(self, value: Any) -> Message | None:
        if not isinstance(value, dict) or value.get("item") != "comment" \
                or value.get("verb") not in ("add", "edited"):
            return None
        cid = id_of(value.get("comment_id"))
        post_id = id_of(value.get("post_id"))
        stamp = value.get("created_time")
        if not cid or not post_id or not isinstance(stamp, int):
            raise ValueError("feed comment without comment_id, post_id or created_time")
        # For a top-level comment Facebook sends the post id as parent_id.
        parent = id_of(value.get("parent_id"))
        parent_id = parent if parent and parent != post_id else None
        who = value.get("from") if isinstance(value.get("from"), dict) else {}
        comment = {"id": cid, "message": value.get("message"), "from": who or None,
                   "created_time": format_time(datetime.fromtimestamp(stamp, tz=UTC)),
                   "parent": {"id": parent_id} if parent_id else None}
        return self._comment_message(post_id, comment)

    # -- doctor --------------------------------------------------------------------------
    async def _check_calls(self) -> list[str]:
        me = await self.graph.call("GET", "/me", what="token owner",
                                   permission=self.perms["read"], params={"fields": "id,name"})
        owner = id_of(me.get("id"))
        name = sanitize_line(text_of(me.get("name")))
        if owner != self.page_id:
            raise AuthError(f"the token belongs to {name or owner!r} (id {owner}), not to "
                            f"Page {self.page_id}: use a Page access token of that Page")
        details = [f"Page {name!r} (id {owner})"]
        if self.messages:
            await self.graph.call("GET", f"/{self.page_id}/conversations", what="conversations",
                                  permission=self.perms["messages"],
                                  params={"platform": "messenger", "limit": 1,
                                          "fields": "id"})
            details.append("Messenger conversations readable (pages_messaging)")
        if self.comments:
            await self.graph.call("GET", f"/{self.page_id}/posts", what="posts",
                                  permission=self.perms["read"],
                                  params={"limit": 1, "fields": "id"})
            details.append("posts and comments readable")
        if self.webhooks:
            details.append(f"webhooks on: polling every poll_interval × "
                           f"{WEBHOOK_POLL_FACTOR} as a safety net")
        return details


COMMENT_FIELDS = "id,message,created_time,from,parent{id},comment_count,can_reply_privately," \
                 "permalink_url"


# -- cursor and helpers ----------------------------------------------------------------
class Mark:
    """How far a listing has been read: the newest time seen and the ids seen at exactly
    that time (Graph times have one-second resolution, so two items can share one)."""

    def __init__(self, at: datetime, ids: set[str] | None = None) -> None:
        self.at = at
        self.ids = set(ids or ())

    def is_new(self, at: datetime, item_id: str) -> bool:
        return at > self.at or (at == self.at and item_id not in self.ids)

    @staticmethod
    def advance(mark: Mark | None, at: datetime, item_id: str) -> Mark:
        if mark is None or at > mark.at:
            return Mark(at, {item_id})
        if at == mark.at:
            return Mark(mark.at, mark.ids | {item_id})
        return mark

    def dump(self) -> dict[str, Any]:
        return {"t": format_time(self.at), "ids": sorted(self.ids)}

    @classmethod
    def load(cls, data: Any, label: str) -> Mark | None:
        if data is None:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("ids", []), list):
            raise ValueError
        return cls(parse_time(data.get("t"), label), {str(i) for i in data.get("ids", [])})


class MetaCursor:
    """``dm``: how far the conversations were read; ``objects``: per post / media id, how
    far its comments were read (only for the recent posts still listed)."""

    def __init__(self) -> None:
        self.dm: Mark | None = None
        self.objects: dict[str, Mark | None] = {}
        self.extra: dict[str, Any] = {}

    @classmethod
    def load(cls, cursor: Cursor | None, label: str) -> MetaCursor:
        state = cls()
        if not cursor:
            return state
        try:
            data = json.loads(cursor)
            if not isinstance(data, dict):
                raise ValueError
            state.dm = Mark.load(data.get("dm"), label)
            objects = data.get("objects") or {}
            if not isinstance(objects, dict):
                raise ValueError
            state.objects = {str(k): Mark.load(v, label) for k, v in objects.items()}
            state.extra = {k: v for k, v in data.items() if k not in ("dm", "objects")}
        except (ValueError, TransientError):
            raise PermanentError(f"the saved {label} cursor is unreadable; reset this "
                                 "source's cursor to start again from the newest items"
                                 ) from None
        return state

    def dump(self) -> str:
        data: dict[str, Any] = {
            "dm": self.dm.dump() if self.dm else None,
            "objects": {k: v.dump() if v else None for k, v in self.objects.items()},
            **self.extra,
        }
        return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _version(table: Any) -> str:
    version = table.str("graph_version", DEFAULT_GRAPH_VERSION)
    if not re.fullmatch(r"v\d+\.\d+", version):
        raise table.error("graph_version", f"expected a Graph API version like "
                          f"{DEFAULT_GRAPH_VERSION!r}, found {version!r}")
    return version


@contextlib.contextmanager
def _skip_malformed(source: str) -> Iterator[None]:
    """One malformed webhook event is logged (its shape only) and skipped; the others in
    the same delivery are still stored."""
    try:
        yield
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("webhook event for %s skipped: %s", source,
                    str(exc) if isinstance(exc, ValueError) else type(exc).__name__)


def _data(value: Any) -> list[dict[str, Any]]:
    """The ``data`` list of an edge (``{data: [...]}``), objects only."""
    items = value.get("data") if isinstance(value, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _comment_id(message: Message | None) -> str:
    if message is None:
        return ""
    return id_of(message.raw.get("comment_id")) or message.remote_id


def _root_id(reply: Reply, target: Message) -> str:
    root = id_of(target.raw.get("root_id"))
    if not root and reply.thread_key and reply.thread_key.startswith("comment:"):
        root = reply.thread_key.split(":", 1)[1]
    return root or target.remote_id


def _comparable(text: str) -> str:
    return " ".join(text.split())

