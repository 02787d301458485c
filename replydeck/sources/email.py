"""Email over IMAP (fetch) and SMTP (send).

Why stdlib ``imaplib``/``smtplib`` in a worker thread rather than ``aioimaplib``: one short
IMAP session per poll (connect, EXAMINE, UID SEARCH, UID FETCH, logout) and one SMTP
session per reply do not need a persistent async connection, the stdlib clients are the
best-tested implementations of both protocols (STARTTLS, literals, AUTH), and
``asyncio.to_thread`` keeps the event loop free. No extra dependency.

Polling is UID based. The cursor holds, per mailbox, ``(UIDVALIDITY, last UID)``; a poll
asks ``UID SEARCH UID <last+1>:*`` and drops UIDs ≤ last (``n:*`` always matches the
highest UID, even when it is lower than n). When UIDVALIDITY changes, the mailbox is
synced again from the start of the window; the store dedupes by remote id, which is the
Message-ID (or a hash of the bytes, never the UID, which a resync renumbers).

The Sent mailbox is polled too, so replies written in another mail client show up in
the thread as outbound messages and stop the timer. A reply we send gets a Message-ID
derived from its idempotency key and is appended to Sent, so :meth:`find_sent` can tell
after a crash whether it went out.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import ipaddress
import json
import logging
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any, TypeVar

from replydeck.config.errors import ConfigError
from replydeck.config.secrets import Secret
from replydeck.inbox.model import Author, Direction, Kind, Message, Reply
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
    Receipt,
    SourceError,
    TransientError,
)
from replydeck.sources.email_parse import (
    ParsedEmail,
    content_id,
    format_size,
    normalise_subject,
    parse_bytes,
    reply_subject,
)

log = logging.getLogger(__name__)
UTC = timezone.utc
T = TypeVar("T")

SECURITY = ("tls", "starttls", "plain")
IMAP_PORTS = {"tls": 993, "starttls": 143, "plain": 143}
SMTP_PORTS = {"tls": 465, "starttls": 587, "plain": 25}
# Names servers without SPECIAL-USE give their Sent folder.
_SENT_NAMES = ("Sent", "Sent Items", "Sent Messages", "INBOX.Sent", "INBOX/Sent")
_LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?P<delim>"(?:[^"\\]|\\.)*"|NIL) (?P<name>.+)$')
_UID = re.compile(rb"\bUID (\d+)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_MAX_RAW_TEXT = 200_000  # characters of full text kept in raw


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def utf7_encode(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 §5.1.3): "送信済み" -> "&kAFP4W4I-"."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            data = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",")
                       + "-")
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def utf7_decode(name: str) -> str:
    def one(m: re.Match[str]) -> str:
        chunk = m.group(1)
        if not chunk:
            return "&"
        data = chunk.replace(",", "/")
        try:
            return base64.b64decode(data + "=" * (-len(data) % 4)).decode("utf-16-be")
        except (ValueError, UnicodeDecodeError):
            return m.group(0)

    return re.sub(r"&([A-Za-z0-9+,]*)-", one, name)


def _quote_mailbox(name: str) -> str:
    encoded = utf7_encode(name)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquote(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = re.sub(r"\\(.)", r"\1", text[1:-1])
    return utf7_decode(text)


@dataclass
class _BoxState:
    uidvalidity: int
    last_uid: int


@dataclass
class _State:
    boxes: dict[str, _BoxState]
    #: Day of the last successful poll: a resync reaches back at least to here.
    seen: str | None = None

    @classmethod
    def parse(cls, cursor: Cursor | None) -> _State:
        if not cursor:
            return cls({})
        try:
            data = json.loads(cursor)
            boxes = {str(k): _BoxState(int(v["uidvalidity"]), int(v["last_uid"]))
                     for k, v in data.get("boxes", {}).items()}
            seen = data.get("seen")
            return cls(boxes, seen if isinstance(seen, str) else None)
        except (ValueError, TypeError, KeyError, AttributeError):
            # An unreadable cursor means "start over": the window resync cannot duplicate.
            log.warning("email: ignoring an unreadable cursor; resyncing the window")
            return cls({})

    def dump(self) -> str:
        return json.dumps({
            "v": 1,
            "boxes": {k: {"uidvalidity": v.uidvalidity, "last_uid": v.last_uid}
                      for k, v in self.boxes.items()},
            "seen": self.seen,
        }, sort_keys=True)


class _LoginFailed(Exception):
    pass


class _NoStartTLS(Exception):
    """The server does not offer STARTTLS: never fall back to sending the password plain."""


class EmailSource(BaseSource):
    type_name = "email"
    platform = "email"
    # Mail has no length rule worth the name; this only stops pasting a novel by mistake.
    limits = Limits(max_length=100_000, counting="chars", supports_public=False)
    idempotent_send = False
    can_reconcile = True
    default_poll_interval = 120

    def __init__(self, name: str, *, imap_host: str, smtp_host: str, username: str,
                 password: Secret, address: str, security: str = "tls",
                 imap_port: int | None = None, smtp_port: int | None = None,
                 mailbox: str = "INBOX", sent_mailbox: str | None = None,
                 timeout: float = 30.0, initial_days: int = 14, batch_size: int = 50,
                 save_sent: bool = True, ssl_context: ssl.SSLContext | None = None,
                 max_message_bytes: int = 10_000_000,
                 clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(name)
        if security not in SECURITY:
            raise ValueError(f"security must be one of {SECURITY}")
        if security == "plain" and not (is_loopback(imap_host) and is_loopback(smtp_host)):
            # Refused here as well as in from_config, so no code path sends a password
            # in clear text over a network.
            raise ValueError("security 'plain' is only allowed for loopback hosts")
        self.imap_host = imap_host
        self.smtp_host = smtp_host
        self.imap_port = imap_port or IMAP_PORTS[security]
        self.smtp_port = smtp_port or SMTP_PORTS[security]
        self.username = username
        self._password = password
        self.address = address.strip().lower()
        self.security = security
        self.mailbox = mailbox
        self._sent_mailbox = sent_mailbox
        self.timeout = timeout
        self.initial_days = initial_days
        self.batch_size = batch_size
        self.save_sent = save_sent
        self.max_message_bytes = max_message_bytes
        self._ssl_context = ssl_context
        self._clock = clock or (lambda: datetime.now(UTC))

    def __repr__(self) -> str:
        return (f"EmailSource(name={self.name!r}, imap={self.imap_host}:{self.imap_port}, "
                f"smtp={self.smtp_host}:{self.smtp_port}, user={self.username!r})")

    # -- config ------------------------------------------------------------------------
    @classmethod
    def from_config(cls, table: Any) -> EmailSource:
        security = table.str("security", "tls", choices=SECURITY)
        imap_host = table.str("imap_host")
        smtp_host = table.str("smtp_host")
        if security == "plain":
            for key, host in (("imap_host", imap_host), ("smtp_host", smtp_host)):
                if not is_loopback(host):
                    raise table.error(
                        "security",
                        f"'plain' sends the password unencrypted and is only allowed for "
                        f"loopback hosts (127.0.0.1, ::1, localhost); {key} is {host!r}. "
                        f"Use security = \"tls\" or \"starttls\"")
        ssl_context = None
        if table.has("ca_file"):
            # A self-hosted server with a private CA: trust that CA (and still verify).
            ca_file = table.file_path("ca_file")
            try:
                ssl_context = ssl.create_default_context(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise table.error("ca_file", f"cannot load CA certificates from {ca_file} "
                                  f"({type(exc).__name__}: {getattr(exc, 'strerror', '') or exc})"
                                  ) from None
        address = table.str("address")
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", address.strip()):
            raise table.error("address", f"expected an email address like "
                              f"support@example.com, found {address!r}")
        return cls(
            table.name or "email",
            imap_host=imap_host,
            smtp_host=smtp_host,
            imap_port=table.int("imap_port", None, min=1, max=65535),
            smtp_port=table.int("smtp_port", None, min=1, max=65535),
            username=table.str("username"),
            password=table.secret("password"),
            address=address,
            security=security,
            mailbox=table.str("mailbox", "INBOX"),
            sent_mailbox=table.str("sent_mailbox", None),
            timeout=table.number("timeout", 30.0, min=1),
            initial_days=table.int("initial_days", 14, min=0),
            batch_size=table.int("batch_size", 50, min=1, max=1000),
            save_sent=table.bool("save_sent", True),
            ssl_context=ssl_context,
            max_message_bytes=table.int("max_message_bytes", 10_000_000, min=10_000),
        )

    # -- connections -------------------------------------------------------------------
    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    @contextmanager
    def _imap(self) -> Iterator[imaplib.IMAP4]:
        if self.security == "tls":
            im: imaplib.IMAP4 = imaplib.IMAP4_SSL(self.imap_host, self.imap_port,
                                                  ssl_context=self._context(),
                                                  timeout=self.timeout)
        else:
            im = imaplib.IMAP4(self.imap_host, self.imap_port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                if "STARTTLS" not in im.capabilities:
                    raise _NoStartTLS(f"IMAP server {self.imap_host}:{self.imap_port}")
                im.starttls(ssl_context=self._context())
            try:
                im.login(self.username, self._password.resolve())
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error:
                raise _LoginFailed from None
            yield im
        finally:
            with suppress(OSError, imaplib.IMAP4.error):
                im.logout()

    @contextmanager
    def _smtp(self) -> Iterator[smtplib.SMTP]:
        if self.security == "tls":
            s: smtplib.SMTP = smtplib.SMTP_SSL(self.smtp_host, self.smtp_port,
                                               timeout=self.timeout, context=self._context())
        else:
            s = smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout)
        try:
            s.ehlo()
            if self.security == "starttls":
                if not s.has_extn("starttls"):
                    raise _NoStartTLS(f"SMTP server {self.smtp_host}:{self.smtp_port}")
                s.starttls(context=self._context())
                s.ehlo()
            # A loopback sink offers no AUTH; a real submission server always does.
            if s.has_extn("auth"):
                s.login(self.username, self._password.resolve())
            yield s
        finally:
            try:
                s.quit()
            except (OSError, smtplib.SMTPException):
                s.close()

    async def _run(self, what: str, fn: Callable[[], T],
                   in_flight: Callable[[], bool] = lambda: False) -> T:
        """Run blocking protocol code in a thread; map every failure to a SourceError.

        ``in_flight()`` tells whether a mail may have been handed over when the connection
        failed without an answer (``maybe_sent``: the outbox then checks Sent first)."""
        try:
            return await asyncio.to_thread(fn)
        except SourceError:
            raise
        except ConfigError as exc:  # the password reference could not be resolved
            raise AuthError(str(exc)) from None
        except _NoStartTLS as exc:
            raise PermanentError(f"{exc} does not offer STARTTLS; use security = \"tls\" "
                                 f"with the server's TLS port (IMAP 993, SMTP 465)") from None
        except _LoginFailed:
            raise AuthError(f"IMAP login rejected for {self.username!r} on "
                            f"{self.imap_host}: wrong username or password (providers with "
                            f"two-factor sign-in need an app password)") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise AuthError(f"SMTP login rejected for {self.username!r} on "
                            f"{self.smtp_host} ({exc.smtp_code}): wrong username or "
                            f"password, or SMTP submission disabled for the account"
                            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{rcpt}: {code} {_smtp_text(msg)}"
                               for rcpt, (code, msg) in exc.recipients.items())
            if codes and all(400 <= c < 500 for c in codes):
                raise TransientError(f"SMTP recipient temporarily refused ({detail})"
                                     ) from None
            raise PermanentError(f"SMTP recipient refused ({detail})") from None
        except smtplib.SMTPResponseException as exc:
            text = f"SMTP {what} failed: {exc.smtp_code} {_smtp_text(exc.smtp_error)}"
            if 400 <= exc.smtp_code < 500:
                raise TransientError(text) from None
            raise PermanentError(text) from None
        except smtplib.SMTPServerDisconnected:
            raise TransientError(f"SMTP server {self.smtp_host} closed the connection "
                                 f"during {what}", maybe_sent=in_flight()) from None
        except smtplib.SMTPException as exc:
            raise TransientError(f"SMTP {what} failed ({type(exc).__name__})") from None
        except ssl.SSLCertVerificationError as exc:
            raise PermanentError(f"TLS certificate not accepted during {what}: "
                                 f"{exc.verify_message}") from None
        except ssl.SSLError as exc:
            raise TransientError(f"TLS failed during {what} ({exc.reason}); check that "
                                 f"security = {self.security!r} matches the port",
                                 maybe_sent=in_flight()) from None
        except imaplib.IMAP4.abort as exc:
            raise TransientError(f"IMAP connection lost during {what} "
                                 f"({_imap_text(exc)})") from None
        except imaplib.IMAP4.error as exc:
            raise TransientError(f"IMAP {what} failed ({_imap_text(exc)})") from None
        except TimeoutError:
            raise TransientError(f"email server timed out during {what}",
                                 maybe_sent=in_flight()) from None
        except OSError as exc:
            raise TransientError(f"cannot reach the email server during {what} "
                                 f"({type(exc).__name__}: {exc.strerror or exc})",
                                 maybe_sent=in_flight()) from None

    # -- fetch -------------------------------------------------------------------------
    async def fetch(self, cursor: Cursor | None) -> Batch:
        return await self._run("fetch", lambda: self._fetch_sync(cursor))

    def _fetch_sync(self, cursor: Cursor | None) -> Batch:
        state = _State.parse(cursor)
        now = self._clock()
        items: list[Message] = []
        more = False
        with self._imap() as im:
            boxes = [self.mailbox]
            sent = self._find_sent_mailbox(im)
            if sent and sent != self.mailbox:
                boxes.append(sent)
            for box in boxes:
                got, box_more = self._fetch_box(im, box, state, now, required=box == boxes[0])
                items.extend(got)
                more = more or box_more
        state.seen = now.date().isoformat()
        return Batch(items=items, cursor=state.dump(), more=more)

    def _select(self, im: imaplib.IMAP4, box: str) -> tuple[int, int | None]:
        """EXAMINE (read-only: flags stay as the user left them) -> (UIDVALIDITY, UIDNEXT)."""
        typ, data = im.select(_quote_mailbox(box), readonly=True)
        if typ != "OK":
            raise PermanentError(f"mailbox {box!r} not found on {self.imap_host} "
                                 f"({_imap_text(data)}); check the 'mailbox' option")
        _, uv = im.response("UIDVALIDITY")
        _, un = im.response("UIDNEXT")
        try:
            uidvalidity = int(uv[0])
        except (TypeError, ValueError, IndexError):
            raise TransientError(f"malformed answer from IMAP: no UIDVALIDITY for {box!r}"
                                 ) from None
        try:
            uidnext: int | None = int(un[0])
        except (TypeError, ValueError, IndexError):
            uidnext = None
        return uidvalidity, uidnext

    def _search_uids(self, im: imaplib.IMAP4, *criteria: str) -> list[int]:
        typ, data = im.uid("SEARCH", *criteria)
        if typ != "OK":
            raise TransientError(f"IMAP search failed ({_imap_text(data)})")
        out: list[int] = []
        for chunk in data:
            if isinstance(chunk, bytes):
                out.extend(int(x) for x in chunk.split() if x.isdigit())
        return sorted(set(out))

    def _fetch_box(self, im: imaplib.IMAP4, box: str, state: _State, now: datetime,
                   *, required: bool) -> tuple[list[Message], bool]:
        try:
            uidvalidity, uidnext = self._select(im, box)
        except PermanentError:
            if required:
                raise
            log.info("email %s: mailbox %r does not exist (yet); skipping it", self.name, box)
            return [], False
        st = state.boxes.get(box)
        if st is None or st.uidvalidity != uidvalidity:
            if st is not None:
                log.info("email %s: UIDVALIDITY of %r changed (%s -> %s); resyncing",
                         self.name, box, st.uidvalidity, uidvalidity)
            st = _BoxState(uidvalidity, self._window_start(im, uidnext, state.seen, now))
            state.boxes[box] = st
        uids = [u for u in self._search_uids(im, "UID", f"{st.last_uid + 1}:*")
                if u > st.last_uid]
        take, more = uids[: self.batch_size], len(uids) > self.batch_size
        items: list[Message] = []
        for uid, raw, internal, cut in self._fetch_raw(im, take):
            msg = self._to_message(raw, internal, box=box, uid=uid, uidvalidity=uidvalidity,
                                   truncated_size=cut)
            if msg is None:
                continue
            if msg.thread_key and msg.thread_key.startswith("subject:"):
                msg.thread_key = self._earlier_thread(im, msg, uid) or msg.thread_key
            items.append(msg)
        if take:
            st.last_uid = max(take)
        return items, more

    def _window_start(self, im: imaplib.IMAP4, uidnext: int | None, seen: str | None,
                      now: datetime) -> int:
        """The last UID *before* the window a first sync or resync should cover."""
        since = now - timedelta(days=self.initial_days)
        if seen:
            try:
                last_poll = datetime.fromisoformat(seen).replace(tzinfo=UTC)
                since = min(since, last_poll - timedelta(days=1))
            except ValueError:
                pass
        in_window = self._search_uids(im, "SINCE", since.strftime("%d-%b-%Y"))
        if in_window:
            return in_window[0] - 1
        if uidnext is not None:
            return uidnext - 1
        every = self._search_uids(im, "ALL")
        return every[-1] if every else 0

    def _fetch_raw(self, im: imaplib.IMAP4, uids: list[int]
                   ) -> list[tuple[int, bytes, datetime | None, int | None]]:
        """(uid, bytes, internal date, full size if only the start was fetched) per UID.

        Messages over ``max_message_bytes`` (big attachments) are fetched only up to that
        size: the text comes first in practically every mail, and a poll must not pull
        gigabytes into memory."""
        if not uids:
            return []
        sizes = self._sizes(im, uids)
        whole = [u for u in uids if sizes.get(u, 0) <= self.max_message_bytes]
        big = [u for u in uids if u not in whole]
        out = [(u, raw, d, None) for u, raw, d in self._fetch_items(im, whole, "BODY.PEEK[]")]
        partial = f"BODY.PEEK[]<0.{self.max_message_bytes}>"
        out += [(u, raw, d, sizes[u]) for u, raw, d in self._fetch_items(im, big, partial)]
        out.sort(key=lambda t: t[0])
        return out

    def _sizes(self, im: imaplib.IMAP4, uids: list[int]) -> dict[int, int]:
        typ, data = im.uid("FETCH", ",".join(str(u) for u in uids), "(UID RFC822.SIZE)")
        if typ != "OK":
            raise TransientError(f"IMAP fetch failed ({_imap_text(data)})")
        sizes: dict[int, int] = {}
        for line in data:
            if isinstance(line, tuple):
                line = line[0]
            if not isinstance(line, bytes):
                continue
            m, n = _UID.search(line), _SIZE.search(line)
            if m and n:
                sizes[int(m.group(1))] = int(n.group(1))
        return sizes

    def _fetch_items(self, im: imaplib.IMAP4, uids: list[int], body: str
                     ) -> list[tuple[int, bytes, datetime | None]]:
        if not uids:
            return []
        typ, data = im.uid("FETCH", ",".join(str(u) for u in uids),
                           f"(UID INTERNALDATE {body})")
        if typ != "OK":
            raise TransientError(f"IMAP fetch failed ({_imap_text(data)})")
        out: list[tuple[int, bytes, datetime | None]] = []
        for i, item in enumerate(data):
            if not isinstance(item, tuple) or len(item) < 2:
                continue
            head = item[0]
            # Some servers put UID after the literal: look at the closing line too.
            tail = data[i + 1] if i + 1 < len(data) and isinstance(data[i + 1], bytes) else b""
            m = _UID.search(head) or _UID.search(tail)
            if not m:
                continue
            d = _INTERNALDATE.search(head) or _INTERNALDATE.search(tail)
            out.append((int(m.group(1)), item[1], _internaldate(d.group(0)) if d else None))
        return out

    # -- parsing into Messages ---------------------------------------------------------
    def _to_message(self, raw: bytes, internal: datetime | None, *, box: str, uid: int,
                    uidvalidity: int, truncated_size: int | None = None) -> Message | None:
        p = parse_bytes(raw)
        remote_id = p.message_id or content_id(raw)
        own = p.from_addr == self.address
        author = self._author(p) if not own else Author(id=self.address,
                                                         handle=self.address,
                                                         name=sanitize_line(p.from_name))
        text = sanitize_text(p.text or p.full_text)
        if p.attachments:
            listing = "\n".join(
                f"[attachment: {sanitize_line(a.name)} ({format_size(a.size)})]"
                for a in p.attachments)
            text = f"{text}\n\n{listing}" if text else listing
        if truncated_size is not None:
            note = (f"[message of {format_size(truncated_size)}: only the first "
                    f"{format_size(len(raw))} were fetched; open it in a mail client for "
                    f"the rest]")
            text = f"{text}\n\n{note}" if text else note
        raw_fields: dict[str, Any] = {
            "message_id": p.message_id,
            "references": p.references,
            "in_reply_to": p.in_reply_to,
            "subject": sanitize_line(p.subject),
            "from_addr": sanitize_line(p.from_addr),
            "reply_to_addr": sanitize_line(p.reply_to_addr) if p.reply_to_addr else None,
            "to": [sanitize_line(a) for a in p.to_addrs],
            "cc": [sanitize_line(a) for a in p.cc_addrs],
            "mailbox": box,
            "uid": uid,
            "uidvalidity": uidvalidity,
            "attachments": [{"name": sanitize_line(a.name), "size": a.size,
                             "type": a.content_type} for a in p.attachments],
            "collapsed": p.collapsed,
            "html_only": p.html_only,
            "automated": p.automated,
            "full_text": sanitize_text(p.full_text[:_MAX_RAW_TEXT]),
            "truncated_size": truncated_size,
        }
        return Message(
            source=self.name,
            remote_id=remote_id,
            platform=self.platform,
            kind=Kind.EMAIL,
            author=author,
            text=text,
            created_at=p.date or internal or self._clock(),
            direction=Direction.OUT if own else Direction.IN,
            thread_key=self.thread_key(p, remote_id),
            in_reply_to=p.in_reply_to,
            raw=raw_fields,
        )

    def _author(self, p: ParsedEmail) -> Author:
        addr = sanitize_line(p.from_addr)
        return Author(id=addr, handle=addr, name=sanitize_line(p.from_name))

    @staticmethod
    def thread_key(p: ParsedEmail, remote_id: str) -> str:
        """The conversation key (DESIGN.md): the first Message-ID of References, else
        In-Reply-To. A message with neither is the root of its thread, keyed by its own
        Message-ID so that replies naming it join it; only a *reply* without any of these
        headers (some webmail) falls back to sender + normalised subject."""
        root = p.thread_root
        if root:
            return f"email:{root}"
        if normalise_subject(p.subject) != " ".join(p.subject.split()).casefold():
            return f"subject:{p.from_addr}|{normalise_subject(p.subject)}"
        return f"email:{remote_id}"

    def _earlier_thread(self, im: imaplib.IMAP4, msg: Message, uid: int) -> str | None:
        """The thread of an earlier mail from the same sender with the same subject, for a
        reply whose client sent no In-Reply-To/References (some webmail, some phones)."""
        subject = normalise_subject(str(msg.raw.get("subject") or ""))
        sender = str(msg.raw.get("from_addr") or "")
        if not subject or not sender or any(ch in sender for ch in '"\\\r\n'):
            return None
        im.literal = subject.encode("utf-8")  # sent as a literal: any script, any quote
        typ, data = im.uid("SEARCH", "CHARSET", "UTF-8", "FROM", f'"{sender}"', "SUBJECT")
        if typ != "OK":
            return None
        earlier = sorted(int(x) for chunk in data if isinstance(chunk, bytes)
                         for x in chunk.split() if x.isdigit() and int(x) < uid)
        if not earlier:
            return None
        typ, data = im.uid("FETCH", ",".join(str(u) for u in earlier[:20]),
                           "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID IN-REPLY-TO REFERENCES "
                           "SUBJECT FROM)])")
        if typ != "OK":
            return None
        for item in data:  # in UID order: the first match is the oldest
            if not isinstance(item, tuple) or len(item) < 2:
                continue
            p = parse_bytes(item[1])
            if p.from_addr == sender and normalise_subject(p.subject) == subject and (
                    p.message_id or p.thread_root):
                key = self.thread_key(p, p.message_id or "")
                if not key.startswith("subject:"):
                    return key
        return None

    # -- Sent mailbox ------------------------------------------------------------------
    def _find_sent_mailbox(self, im: imaplib.IMAP4) -> str | None:
        if self._sent_mailbox:
            return self._sent_mailbox
        typ, data = im.list()
        if typ != "OK":
            return None
        names: list[str] = []
        for line in data:
            if isinstance(line, tuple):  # a name sent as a literal
                line = line[0] + line[1]
            if not isinstance(line, bytes):
                continue
            m = _LIST_LINE.match(line)
            if not m:
                continue
            name = _unquote(m.group("name"))
            if b"\\sent" in m.group("flags").lower():
                self._sent_mailbox = name
                return name
            names.append(name)
        for candidate in _SENT_NAMES:
            if candidate in names:
                self._sent_mailbox = candidate
                return candidate
        return None

    # -- send --------------------------------------------------------------------------
    def message_id_for(self, idempotency_key: str) -> str:
        key = re.sub(r"[^A-Za-z0-9._-]", "-", idempotency_key)[:100]
        domain = self.address.rpartition("@")[2] or "localhost"
        return f"<replydeck-{key}@{domain}>"

    def build_reply(self, reply: Reply) -> tuple[EmailMessage, str]:
        parent = reply.reply_to
        if parent is None:
            raise PermanentError("nothing to reply to: the conversation has no message "
                                 "from the customer")
        raw = parent.raw or {}
        to_addr = raw.get("reply_to_addr") or raw.get("from_addr") or parent.author.id
        if not isinstance(to_addr, str) or "@" not in to_addr:
            raise PermanentError("the customer's message has no usable sender address")
        to_name = parent.author.name if parent.author.id == to_addr else ""
        parent_id = raw.get("message_id")
        refs = [r for r in raw.get("references") or [] if isinstance(r, str)]
        msg = EmailMessage()
        msg["From"] = self.address
        msg["To"] = formataddr((to_name, to_addr)) if to_name else to_addr
        msg["Subject"] = reply_subject(str(raw.get("subject") or ""))
        msg["Date"] = format_datetime(self._clock())
        msg["Message-ID"] = self.message_id_for(reply.idempotency_key)
        if isinstance(parent_id, str) and parent_id:
            msg["In-Reply-To"] = parent_id
            chain = refs + ([parent_id] if parent_id not in refs else [])
            # RFC 5322 allows trimming long chains: keep the root and the recent tail.
            if len(chain) > 20:
                chain = chain[:1] + chain[-19:]
            msg["References"] = " ".join(chain)
        msg["Auto-Submitted"] = "no"
        msg.set_content(reply.body)
        return msg, to_addr

    async def send(self, reply: Reply) -> Receipt:
        length = check_reply(reply.body, self.limits, True)
        if not length.ok:
            raise PermanentError(f"the reply is too long for this email source: "
                                 f"{length.describe()}")
        if not reply.body.strip():
            raise PermanentError("the reply is empty")
        msg, to_addr = self.build_reply(reply)
        handed_over: list[bool] = []
        await self._run("send", lambda: self._smtp_send(msg, to_addr, handed_over),
                        in_flight=lambda: bool(handed_over))
        if self.save_sent:
            try:
                await self._run("saving to Sent", lambda: self._append_sent(msg))
            except SourceError as exc:
                # The mail is out; failing now would make the outbox send it again.
                log.warning("email %s: reply sent but not saved to Sent: %s", self.name, exc)
        return self._receipt(reply, msg)

    def _smtp_send(self, msg: EmailMessage, to_addr: str, handed_over: list[bool]) -> None:
        with self._smtp() as s:
            # From here on, a connection lost without an SMTP answer may mean "delivered".
            handed_over.append(True)
            s.send_message(msg, from_addr=self.address, to_addrs=[to_addr])

    def _append_sent(self, msg: EmailMessage) -> None:
        with self._imap() as im:
            box = self._find_sent_mailbox(im)
            if box is None:
                box = "Sent"
                im.create(_quote_mailbox(box))
                self._sent_mailbox = box
            def append() -> tuple[str, Any]:
                return im.append(_quote_mailbox(box), r"(\Seen)",
                                 imaplib.Time2Internaldate(time.time()), msg.as_bytes())

            typ, data = append()
            if typ != "OK" and "TRYCREATE" in _imap_text(data).upper():
                # A configured Sent mailbox that does not exist yet.
                im.create(_quote_mailbox(box))
                typ, data = append()
            if typ != "OK":
                raise TransientError(f"IMAP APPEND to {box!r} failed ({_imap_text(data)})")

    def _receipt(self, reply: Reply, msg: EmailMessage) -> Receipt:
        mid = str(msg["Message-ID"])
        sent_at = self._clock()
        parent = reply.reply_to
        out = Message(
            source=self.name,
            remote_id=mid,
            platform=self.platform,
            kind=Kind.EMAIL,
            author=Author(id=self.address, handle=self.address),
            text=sanitize_text(reply.body),
            created_at=sent_at,
            direction=Direction.OUT,
            thread_key=reply.thread_key,
            in_reply_to=parent.remote_id if parent else None,
            raw={"message_id": mid, "subject": sanitize_line(str(msg["Subject"])),
                 "in_reply_to": msg["In-Reply-To"],
                 "references": str(msg["References"] or "").split(),
                 "from_addr": self.address, "to": [str(msg["To"])]},
        )
        return Receipt(remote_id=mid, sent_at=sent_at, message=out)

    async def find_sent(self, reply: Reply) -> Receipt | None:
        mid = self.message_id_for(reply.idempotency_key)
        found = await self._run("find_sent", lambda: self._search_sent(mid))
        if found is None:
            return None
        msg = self._to_message(found[1], found[2], box=found[3], uid=found[0],
                               uidvalidity=found[4])
        if msg is None:  # pragma: no cover - _to_message never drops a message today
            return None
        if reply.thread_key:
            msg.thread_key = reply.thread_key
        return Receipt(remote_id=mid, sent_at=msg.created_at, message=msg)

    def _search_sent(self, mid: str) -> tuple[int, bytes, datetime | None, str, int] | None:
        with self._imap() as im:
            box = self._find_sent_mailbox(im)
            if box is None:
                return None
            uidvalidity, _ = self._select(im, box)
            uids = self._search_uids(im, "HEADER", "Message-ID", _imap_quote(mid))
            for uid, raw, internal, _cut in self._fetch_raw(im, uids):
                # HEADER search is a substring match: confirm the exact id.
                if parse_bytes(raw).message_id == mid:
                    return uid, raw, internal, box, uidvalidity
        return None

    # -- doctor ------------------------------------------------------------------------
    async def check(self) -> CheckResult:
        details: list[str] = []
        try:
            summary = await self._run("check", lambda: self._check_imap(details))
            await self._run("check", self._check_smtp)
        except SourceError as exc:
            return CheckResult(False, str(exc), details)
        details.append(f"SMTP {self.smtp_host}:{self.smtp_port} accepted the login")
        return CheckResult(True, summary, details)

    def _check_imap(self, details: list[str]) -> str:
        with self._imap() as im:
            self._select(im, self.mailbox)
            _, exists = im.response("EXISTS")
            count = exists[-1].decode() if exists and exists[-1] else "?"
            details.append(f"IMAP {self.imap_host}:{self.imap_port} mailbox "
                           f"{self.mailbox!r}: {count} messages")
            sent = self._find_sent_mailbox(im)
            details.append(f"Sent mailbox: {sent!r}" if sent else
                           "no Sent mailbox found: replies will create 'Sent'")
        return f"signed in as {self.username} ({self.security})"

    def _check_smtp(self) -> None:
        with self._smtp() as s:
            s.noop()


def _internaldate(raw: bytes) -> datetime | None:
    parsed = imaplib.Internaldate2tuple(raw)
    if parsed is None:
        return None
    return datetime.fromtimestamp(time.mktime(parsed), UTC)


def _imap_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _imap_text(data: Any) -> str:
    if isinstance(data, list):
        data = b" ".join(d for d in data if isinstance(d, bytes))
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    return sanitize_line(str(data))[:200]


def _smtp_text(data: Any) -> str:
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    return sanitize_line(str(data))[:200]
