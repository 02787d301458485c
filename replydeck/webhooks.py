"""The webhook receiver: Meta (Messenger, Instagram, Page feed) and LINE push events in.

A small HTTP/1.1 server on asyncio streams (the standard library; a webhook endpoint needs
three routes and strict limits, not a web framework):

* ``GET  /webhooks/meta``: Meta's verification handshake (``hub.mode=subscribe``,
  ``hub.verify_token`` compared in constant time, answer ``hub.challenge``);
* ``POST /webhooks/meta``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body
  with the app secret>``; ``object: page`` entries go to the ``facebook`` source whose
  ``page_id`` is the entry id, ``object: instagram`` ones to the ``instagram`` source
  with that ``ig_user_id``;
* ``POST /webhooks/line``: ``X-Line-Signature``, base64 HMAC-SHA256 of the raw body with
  the channel secret of one of the configured ``line`` sources (which one signed it
  decides where the events go).

Every signature is checked in constant time over the raw bytes before anything is parsed.
Unsigned (401), wrongly signed (403), oversized (413, refused from ``Content-Length``
before reading the body) and malformed (400) requests are refused and logged with the
reason, peer and size only, never their content or headers.

Events become Messages through the sources' own parsers and are stored with the same
idempotent ingest as polling (``Store.ingest(..., save_cursor=False)``): a redelivered or
replayed webhook finds its message ids (mid, comment id, LINE message id) already stored
and adds nothing. Storing happens before the answer when it is quick; after
:data:`ANSWER_WITHIN` seconds the 200 goes out and storing finishes in the background, so
the platform never times out and retries for a slow lookup.

With webhooks on, a Facebook/Instagram source should be configured with
``webhooks = true``: its polling then slows to a safety net (``poll_interval`` × 10).

Config::

    [webhooks]
    listen = "127.0.0.1:8787"        # behind an HTTPS reverse proxy
    max_body = 1000000               # bytes; larger requests get 413
    [webhooks.meta]
    app_secret = "env:META_APP_SECRET"
    verify_token = "env:META_VERIFY_TOKEN"

Meta callback URL: ``https://<host>/webhooks/meta``; LINE: ``https://<host>/webhooks/line``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from replydeck.config.table import Table
from replydeck.inbox.model import Message

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:8787"
DEFAULT_MAX_BODY = 1_000_000
MAX_HEADER_BYTES = 16_384
MAX_HEADERS = 100
READ_TIMEOUT = 10.0
#: Store before answering when it takes at most this long; else answer and keep going.
ANSWER_WITHIN = 2.0
#: Recently processed bodies (by digest) and LINE webhookEventIds, to skip replays early.
RECENT_KEEP = 2048

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
            411: "Length Required", 413: "Payload Too Large",
            431: "Request Header Fields Too Large", 500: "Internal Server Error"}


@dataclass
class WebhookConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    max_body: int = DEFAULT_MAX_BODY
    #: Meta app secret and verify token (Secret refs, resolved when first needed).
    app_secret: Any = None
    verify_token: Any = None


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8787`` for IPv6) -> (host, port); ValueError when not."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT such as {DEFAULT_LISTEN}, found {value!r}")
    return host, int(port)


def parse_config(root: Table) -> WebhookConfig:
    """The ``[webhooks]`` table: ``listen``, ``max_body`` and ``[webhooks.meta]``
    ``app_secret`` / ``verify_token`` (secret references)."""
    table = root.table("webhooks")
    listen = table.str("listen", DEFAULT_LISTEN)
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise table.error("listen", str(exc)) from None
    max_body = table.int("max_body", DEFAULT_MAX_BODY, min=1024)
    meta = table.table("meta")
    config = WebhookConfig(host, port, max_body, meta.secret("app_secret", None),
                           meta.secret("verify_token", None))
    meta.reject_unknown()
    table.reject_unknown()
    return config


class Refused(Exception):
    """A request refused with ``status``; ``reason`` is logged (never the content)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


class WebhookReceiver:
    """Serves the webhook routes and stores what arrives. ``sources`` are the configured
    source objects by name (the receiver picks the facebook / instagram / line ones)."""

    def __init__(self, store: Any, sources: Iterable[Any], config: WebhookConfig) -> None:
        self.store = store
        self.config = config
        self.sources = list(sources)
        self._server: asyncio.AbstractServer | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._recent: OrderedDict[str, None] = OrderedDict()
        #: Counters for tests and the status line.
        self.stored = 0
        self.refused = 0

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        for source in self.sources:
            if getattr(source, "type_name", "") in ("facebook", "instagram", "line"):
                await asyncio.to_thread(self.store.register_source, source.name,
                                        source.type_name, source.platform)
        self._server = await asyncio.start_server(self._connection, self.config.host,
                                                  self.config.port, limit=MAX_HEADER_BYTES)
        host, port = self._server.sockets[0].getsockname()[:2]
        log.info("webhook receiver listening on %s:%s", host, port)
        return host, port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def serve(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # -- HTTP --------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"
        try:
            try:
                request = await asyncio.wait_for(self._read(reader), READ_TIMEOUT)
                status, body = await self._dispatch(request)
            except Refused as refused:
                self.refused += 1
                log.warning("webhook refused (%s) from %s: %s", refused.status, peer_text,
                            refused.reason)
                status, body = refused.status, refused.reason
            except asyncio.TimeoutError:
                self.refused += 1
                log.warning("webhook refused (408) from %s: request not complete within "
                            "%g s", peer_text, READ_TIMEOUT)
                status, body = 408, "request timeout"
            await self._respond(writer, status, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except Exception:
            log.exception("webhook receiver: unexpected error (request content not logged)")
            with contextlib.suppress(Exception):
                await self._respond(writer, 500, "internal error")
        finally:
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> Request:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError:
            raise Refused(431, "request line too long") from None
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise Refused(400, "not an HTTP/1.x request line")
        method, target, _version = parts
        headers: dict[str, str] = {}
        total = len(line)
        while True:
            try:
                raw = await reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError:
                raise Refused(431, "header line too long") from None
            total += len(raw)
            if raw == b"\r\n":
                break
            if total > MAX_HEADER_BYTES or len(headers) >= MAX_HEADERS:
                raise Refused(431, "headers too large")
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep or not name.strip() or name != name.strip():
                raise Refused(400, "malformed header line")
            headers[name.lower()] = value.strip()
        body = b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise Refused(411, "chunked bodies are not accepted; send Content-Length")
        length_text = headers.get("content-length")
        if length_text is not None:
            if not length_text.isdigit():
                raise Refused(400, "malformed Content-Length")
            length = int(length_text)
            if length > self.config.max_body:
                raise Refused(413, f"body of {length} bytes is over the limit of "
                                   f"{self.config.max_body}")
            body = await reader.readexactly(length)
        elif method == "POST":
            raise Refused(411, "POST without Content-Length")
        split = urlsplit(target)
        return Request(method, split.path, parse_qs(split.query, keep_blank_values=True),
                       headers, body)

    async def _respond(self, writer: asyncio.StreamWriter, status: int, body: str) -> None:
        payload = body.encode("utf-8")
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n")
        writer.write(head.encode("latin-1") + payload)
        await writer.drain()

    async def _dispatch(self, req: Request) -> tuple[int, str]:
        path = req.path.rstrip("/")
        if path == "/webhooks/meta":
            if req.method == "GET":
                return self._meta_handshake(req)
            if req.method == "POST":
                return await self._meta_event(req)
            raise Refused(405, f"method {req.method[:10]} not allowed")
        if path == "/webhooks/line":
            if req.method == "POST":
                return await self._line_event(req)
            raise Refused(405, f"method {req.method[:10]} not allowed")
        raise Refused(404, "unknown path")

    # -- Meta ----------------------------------------------------------------------------
    def _meta_handshake(self, req: Request) -> tuple[int, str]:
        if self.config.verify_token is None:
            raise Refused(403, "verification request but no [webhooks.meta] verify_token "
                               "is configured")
        if req.arg("hub.mode") != "subscribe":
            raise Refused(400, "verification request without hub.mode=subscribe")
        given = (req.arg("hub.verify_token") or "").encode()
        expected = _resolve(self.config.verify_token, "verify_token").encode()
        if not hmac.compare_digest(given, expected):
            raise Refused(403, "verification request with a wrong hub.verify_token")
        challenge = req.arg("hub.challenge") or ""
        if not challenge or len(challenge) > 200:
            raise Refused(400, "verification request without a usable hub.challenge")
        log.info("Meta webhook verification answered")
        return 200, challenge

    async def _meta_event(self, req: Request) -> tuple[int, str]:
        if self.config.app_secret is None:
            raise Refused(403, "Meta event but no [webhooks.meta] app_secret is configured")
        header = req.headers.get("x-hub-signature-256")
        if not header:
            raise Refused(401, "Meta event without X-Hub-Signature-256")
        secret = _resolve(self.config.app_secret, "app_secret").encode()
        expected = "sha256=" + hmac.new(secret, req.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(header.strip().lower().encode(), expected.encode()):
            raise Refused(403, "Meta event with a wrong X-Hub-Signature-256")
        data = _json_object(req.body)
        obj = data.get("object")
        entries = data.get("entry")
        if obj not in ("page", "instagram") or not isinstance(entries, list):
            raise Refused(400, "Meta event without object page/instagram and an entry list")
        digest = hashlib.sha256(req.body).hexdigest()
        if self._seen(f"meta:{digest}", remember=False):
            return 200, "ok (already stored)"
        work = [(entry, self._meta_source(obj, entry)) for entry in entries
                if isinstance(entry, dict)]
        await self._process(self._meta_entries(work), f"meta:{digest}")
        return 200, "ok"

    def _meta_source(self, obj: str, entry: dict[str, Any]) -> Any:
        entry_id = entry.get("id")
        for source in self.sources:
            kind = getattr(source, "type_name", "")
            if obj == "page" and kind == "facebook" and source.page_id == entry_id:
                return source
            if obj == "instagram" and kind == "instagram" and entry_id in source.own_ids:
                return source
        return None

    async def _meta_entries(self, work: list[tuple[dict[str, Any], Any]]) -> bool:
        """Store every entry's messages; False when some could not be (then a redelivery
        of the same body is processed again instead of skipped)."""
        complete = True
        for entry, source in work:
            if source is None:
                log.warning("Meta event for an account no source is configured for "
                            "(entry ignored)")
                continue
            try:
                messages = await source.webhook_messages(entry)
            except Exception as exc:
                # A lookup failed or an event was malformed: polling (the safety net)
                # picks these messages up later.
                log.warning("Meta event for %s not stored: %s", source.name,
                            type(exc).__name__ if not _safe(exc) else exc)
                complete = False
                continue
            await self._ingest(source, messages)
        return complete

    # -- LINE ----------------------------------------------------------------------------
    async def _line_event(self, req: Request) -> tuple[int, str]:
        header = req.headers.get("x-line-signature")
        if not header:
            raise Refused(401, "LINE event without X-Line-Signature")
        try:
            given = base64.b64decode(header.strip(), validate=True)
        except ValueError:
            raise Refused(403, "LINE event with a malformed X-Line-Signature") from None
        source = None
        for candidate in self.sources:
            if getattr(candidate, "type_name", "") != "line":
                continue
            secret = _resolve(candidate.channel_secret, "channel_secret").encode()
            digest = hmac.new(secret, req.body, hashlib.sha256).digest()
            if hmac.compare_digest(given, digest):
                source = candidate
                break
        if source is None:
            raise Refused(403, "LINE event with a wrong X-Line-Signature")
        data = _json_object(req.body)
        events = data.get("events")
        if not isinstance(events, list):
            raise Refused(400, "LINE event without an events list")
        # A redelivered event keeps its webhookEventId; drop the ones already handled.
        fresh = []
        for event in events:
            key = event.get("webhookEventId") if isinstance(event, dict) else None
            if isinstance(key, str) and self._seen(f"line:{key}", remember=False):
                continue
            fresh.append(event)
        if not fresh:
            return 200, "ok (already stored)"
        await self._process(self._line_events(source, fresh), None)
        return 200, "ok"

    async def _line_events(self, source: Any, events: list[Any]) -> bool:
        try:
            messages = await source.webhook_messages({"events": events})
        except Exception as exc:
            log.warning("LINE event for %s not stored: %s", source.name,
                        type(exc).__name__ if not _safe(exc) else exc)
            return False
        await self._ingest(source, messages)
        for event in events:
            key = event.get("webhookEventId") if isinstance(event, dict) else None
            if isinstance(key, str):
                self._seen(f"line:{key}")
        return True

    # -- storing -------------------------------------------------------------------------
    async def _process(self, work: Any, done_key: str | None) -> None:
        async def run() -> None:
            complete = await work
            if done_key and complete:
                self._seen(done_key)

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._finished)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), ANSWER_WITHIN)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("storing a webhook failed: %s", type(task.exception()).__name__)

    async def _ingest(self, source: Any, messages: list[Message]) -> None:
        if not messages:
            return
        result = await asyncio.to_thread(self.store.ingest, source.name, messages, None,
                                         save_cursor=False)
        self.stored += result.new_messages
        log.info("webhook: %s new message(s) for %s", result.new_messages, source.name)
        if result.new_messages:
            # `replydeck webhooks` may run without a poller (which indexes otherwise).
            await asyncio.to_thread(self.store.index_pending)

    def _seen(self, key: str, *, remember: bool = True) -> bool:
        if key in self._recent:
            self._recent.move_to_end(key)
            return True
        if remember:
            self._recent[key] = None
            while len(self._recent) > RECENT_KEEP:
                self._recent.popitem(last=False)
        return False


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, f"body of {len(body)} bytes is not JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, "body is not a JSON object")
    return data


def _resolve(secret: Any, what: str) -> str:
    try:
        return secret.resolve()
    except Exception as exc:  # ConfigError names the reference, never the value
        raise Refused(500, f"{what} cannot be resolved: {exc}") from None


def _safe(exc: Exception) -> bool:
    """Our own errors describe shapes, never content; anything else is named by type."""
    from replydeck.sources.base import SourceError

    return isinstance(exc, SourceError)
