"""Turn a raw RFC 5322 message into what a person needs to answer it.

Pure functions, no I/O: the body as plain text (text/plain preferred, HTML converted),
quoted history and signatures collapsed (the full text is kept separately), attachments
listed by name and size, RFC 2047 headers decoded, and the threading keys
(Message-ID / In-Reply-To / References). Every string that leaves this module for a
:class:`~replydeck.inbox.model.Message` still goes through ``sanitize`` in the adapter.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from html.parser import HTMLParser

# RFC 5322 msg-ids are printable ASCII: anything else (escape codes, bidi controls) in a
# hostile header is not an id, so it can never reach a remote id or a thread key.
_MSGID = re.compile(r"<[!-;=?-~]+>")
# "Re:", "RE:", "Re[2]:", "AW:", "Sv:", "Fwd:" and the Japanese "返信:" / "転送:" prefixes.
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|antw|fw|fwd)(?:\[\d+\])?\s*[:：]|返信\s*[:：]|"
                           r"転送\s*[:：])\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Attachment:
    name: str
    size: int
    content_type: str


@dataclass
class ParsedEmail:
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    subject: str
    from_name: str
    from_addr: str
    reply_to_addr: str | None
    to_addrs: list[str]
    cc_addrs: list[str]
    date: datetime | None
    #: The new part of the message: quoted history and signature removed.
    text: str
    #: The whole body as text, quotes and signature included.
    full_text: str
    attachments: list[Attachment] = field(default_factory=list)
    #: What was removed from ``text``: "quote", "signature".
    collapsed: list[str] = field(default_factory=list)
    html_only: bool = False
    #: Sent by a machine (RFC 3834 Auto-Submitted, bulk/list Precedence, bounces): an
    #: automation must never answer these, or two robots mail each other forever.
    automated: bool = False

    @property
    def thread_root(self) -> str | None:
        """The conversation's root Message-ID as the headers name it, if they do."""
        if self.references:
            return self.references[0]
        return self.in_reply_to


# -- headers ---------------------------------------------------------------------------
def decode_header_value(value: object) -> str:
    """A header as text, RFC 2047 words decoded; never raises on broken encodings."""
    if value is None:
        return ""
    text = str(value)
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
        return text


def message_ids(value: str | None) -> list[str]:
    """All ``<id@host>`` tokens in a header, in order, without duplicates."""
    if not value:
        return []
    seen: list[str] = []
    for mid in _MSGID.findall(value):
        if mid not in seen:
            seen.append(mid)
    return seen


def normalise_subject(subject: str) -> str:
    """The subject without reply/forward prefixes and folded whitespace, lower-cased."""
    s = subject
    while True:
        stripped = _REPLY_PREFIX.sub("", s, count=1)
        if stripped == s:
            break
        s = stripped
    return " ".join(s.split()).casefold()


def reply_subject(subject: str) -> str:
    """``Re: <subject>``, never ``Re: Re:``."""
    clean = " ".join(subject.split())
    if re.match(r"^\s*re(?:\[\d+\])?\s*[:：]", clean, re.IGNORECASE):
        return clean
    return f"Re: {clean}" if clean else "Re:"


# -- body ------------------------------------------------------------------------------
_BLOCK_TAGS = {"p", "div", "section", "article", "header", "footer", "table", "tr", "ul",
               "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "hr", "address", "center"}
_SKIP_TAGS = {"script", "style", "head", "title", "template", "noscript"}


class _HTMLText(HTMLParser):
    """HTML mail to readable plain text: block breaks, list bullets, link targets kept,
    ``<blockquote>`` turned into ``> `` lines so quote collapsing treats it like text mail."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0
        self._pre = 0
        self._quote = 0
        self._href: list[str | None] = []
        self._link_text: list[int] = []

    def _newline(self, n: int = 1) -> None:
        self.out.append("\n" * n)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "br":
            self._newline()
        elif tag == "li":
            self._newline()
            self.out.append("- ")
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag == "blockquote":
            self._quote += 1
            self._newline()
        elif tag == "pre":
            self._pre += 1
            self._newline()
        elif tag in _BLOCK_TAGS:
            self._newline()
        if tag == "a":
            self._href.append(dict(attrs).get("href"))
            self._link_text.append(len(self.out))
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.out.append(f"[{alt}]")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "img", "hr"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag == "blockquote":
            self._quote = max(0, self._quote - 1)
            self._newline()
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
            self._newline()
        elif tag in _BLOCK_TAGS:
            self._newline()
        elif tag == "a" and self._href:
            href = self._href.pop()
            start = self._link_text.pop()
            shown = "".join(self.out[start:]).strip()
            # Show where a link goes unless the text already says it (or it is a mailto).
            if href and href.startswith(("http://", "https://")) and href not in shown:
                self.out.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if not self._pre:
            data = re.sub(r"\s+", " ", data)
        if self._quote:
            data = data.replace("\n", "\n" + "> " * self._quote)
            if not self.out or self.out[-1].endswith("\n"):
                data = "> " * self._quote + data.lstrip()
        self.out.append(data)

    def text(self) -> str:
        lines = [line.strip() if not line.startswith(">") else line.rstrip()
                 for line in "".join(self.out).split("\n")]
        text = "\n".join(lines)
        return re.sub(r"\n{3,}", "\n\n", text).strip()


def html_to_text(html: str) -> str:
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # pathological markup: keep what was parsed
        pass
    return parser.text()


def _part_text(part: Message) -> str:
    """A text part's content as str, tolerating unknown or lying charsets."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload() or "")
    charset = part.get_content_charset() or "us-ascii"
    for cs in (charset, "utf-8", "latin-1"):
        try:
            return payload.decode(cs)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("utf-8", errors="replace")  # pragma: no cover - latin-1 never fails


def _is_attachment(part: Message) -> bool:
    disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    if disposition == "attachment":
        return True
    return part.get_filename() is not None and part.get_content_maintype() != "text"


def _attachment(part: Message) -> Attachment:
    name = decode_header_value(part.get_filename() or "") or "(unnamed)"
    payload = part.get_payload(decode=True)
    size = len(payload) if isinstance(payload, bytes) else 0
    return Attachment(name=name, size=size, content_type=part.get_content_type())


def _body(msg: Message) -> tuple[str, bool, list[Attachment]]:
    """(plain text, came from HTML only, attachments)."""
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        if _is_attachment(part):
            attachments.append(_attachment(part))
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain":
            plain.append(_part_text(part))
        elif ctype == "text/html":
            html.append(_part_text(part))
        elif ctype.startswith("message/") or part.get_content_maintype() != "text":
            attachments.append(_attachment(part))
    if plain:
        return "\n".join(p.strip("\n") for p in plain), False, attachments
    if html:
        return "\n\n".join(html_to_text(h) for h in html), True, attachments
    return "", False, attachments


# -- quotes and signatures ---------------------------------------------------------------
# An attribution line ("On Mon, 1 Jan 2024, Ann <a@b> wrote:") may wrap onto two lines.
_ATTRIBUTION = re.compile(
    r"^(?:On\s.+wrote:|Le\s.+a écrit\s?:|Am\s.+schrieb.+:|El\s.+escribió:"
    r"|.+(?:のメッセージ|のメール|さんは書きました|は書きました|wrote)\s*[:：]"
    # Gmail in Japanese: "2026年1月9日(金) 10:00 Name <addr>:"
    r"|.*\d.*<[^<>\s]+@[^<>\s]+>\s*[:：])\s*$",
    re.IGNORECASE,
)
# Header blocks that Outlook-style clients put above the forwarded/quoted original.
_HEADER_BLOCK = re.compile(
    r"^\s*(?:-{2,}\s*(?:Original Message|Forwarded message|元のメッセージ|転送メッセージ)"
    r"\s*-{2,}|_{10,})\s*$",
    re.IGNORECASE,
)
_HEADER_FIELD = re.compile(r"^\s*(?:From|差出人|送信者|Sent|Date|送信日時|日時|To|宛先|Subject|件名)"
                           r"\s*[:：]", re.IGNORECASE)
_FROM_FIELD = re.compile(r"^\s*(?:From|差出人|送信者)\s*[:：]", re.IGNORECASE)


def _is_header_block(lines: list[str], i: int) -> bool:
    """``From:``/``差出人:`` followed by other header fields: a quoted original begins."""
    if not _FROM_FIELD.match(lines[i]):
        return False
    following = [ln for ln in lines[i + 1:i + 5] if ln.strip()]
    return sum(1 for ln in following if _HEADER_FIELD.match(ln)) >= 2


def collapse(text: str) -> tuple[str, list[str]]:
    """(the new text, what was collapsed) with quoted history and signature removed.

    Top-posted replies lose everything from the attribution / header block on; inline
    (bottom-posted) answers keep their own lines and lose only the ``>`` lines.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    collapsed: list[str] = []
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line in ("-- ", "--") or line.rstrip() == "-- ":
            collapsed.append("signature")
            break
        if _HEADER_BLOCK.match(line) or _is_header_block(lines, i):
            collapsed.append("quote")
            break
        two = line + " " + lines[i + 1] if i + 1 < len(lines) else line
        if _ATTRIBUTION.match(line.strip()) or (
            line.strip() and not line.startswith(">") and _ATTRIBUTION.match(two.strip())
            and i + 2 < len(lines) and lines[i + 2].startswith(">")
        ):
            # An attribution only counts when quoted lines (or nothing) follow it.
            j = i + (1 if _ATTRIBUTION.match(line.strip()) else 2)
            rest = [ln for ln in lines[j:] if ln.strip()]
            if not rest or rest[0].startswith(">"):
                if "quote" not in collapsed:
                    collapsed.append("quote")
                i = j
                continue
        if line.startswith(">"):
            if "quote" not in collapsed:
                collapsed.append("quote")
            i += 1
            continue
        out.append(line)
        i += 1
    new = "\n".join(out)
    new = re.sub(r"\n{3,}", "\n\n", new).strip()
    return new, collapsed


# -- the whole message -----------------------------------------------------------------
def _date(msg: Message) -> datetime | None:
    value = msg.get("Date")
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:  # "-0000" means "zone unknown": UTC is the best guess
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _addresses(msg: Message, name: str) -> list[str]:
    values = [decode_header_value(v) for v in msg.get_all(name, [])]
    return [addr.lower() for _, addr in getaddresses(values) if addr]


def parse_bytes(raw: bytes) -> ParsedEmail:
    """Parse a raw message. Never raises on malformed mail: missing parts stay empty."""
    # compat32 keeps headers as raw strings, so a broken header cannot raise on access;
    # decoding is done explicitly below.
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    from_name, from_addr = parseaddr(decode_header_value(msg.get("From", "")))
    reply_to = parseaddr(decode_header_value(msg.get("Reply-To", "")))[1] or None
    body, html_only, attachments = _body(msg)
    text, collapsed = collapse(body)
    mid = message_ids(str(msg.get("Message-ID", "")))
    irt = message_ids(str(msg.get("In-Reply-To", "")))
    return ParsedEmail(
        message_id=mid[0] if mid else None,
        in_reply_to=irt[0] if irt else None,
        references=message_ids(str(msg.get("References", ""))),
        subject=decode_header_value(msg.get("Subject", "")),
        from_name=from_name,
        from_addr=from_addr.lower(),
        reply_to_addr=reply_to.lower() if reply_to else None,
        to_addrs=_addresses(msg, "To"),
        cc_addrs=_addresses(msg, "Cc"),
        date=_date(msg),
        text=text,
        full_text=body.strip(),
        attachments=attachments,
        collapsed=collapsed,
        html_only=html_only,
        automated=_automated(msg, from_addr),
    )


def _automated(msg: Message, from_addr: str) -> bool:
    auto = str(msg.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(msg.get("Precedence", "")).strip().lower()
    local = from_addr.lower().partition("@")[0]
    return (auto not in ("", "no") or precedence in ("bulk", "junk", "list")
            or local in ("mailer-daemon", "postmaster")
            or msg.get("List-Id") is not None)


def content_id(raw: bytes) -> str:
    """A stable id for mail without a Message-ID: a hash of its bytes.

    Unlike ``uidvalidity:uid`` it survives a UIDVALIDITY change, so a resync cannot
    duplicate such a message.
    """
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:32]


def format_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


__all__ = ["Attachment", "ParsedEmail", "collapse", "content_id",
           "decode_header_value", "format_size", "html_to_text", "message_ids",
           "normalise_subject", "parse_bytes", "reply_subject"]
