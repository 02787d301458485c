"""Bluesky rich text: facets with UTF-8 byte offsets, link expansion, TID record keys.

Facet ``index.byteStart``/``byteEnd`` count UTF-8 bytes of the post text (start inclusive,
end exclusive), not characters: with Japanese or emoji text the two differ a lot.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

# As the Bluesky app detects them: after the start, a space or "(".
_MENTION_RE = re.compile(r"(?:^|(?<=[\s(]))@([a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?)")
_URL_RE = re.compile(r"(?:^|(?<=[\s(]))(https?://[^\s]+)")
_URL_TRAILING = ".,;:!?'\")]}…"

MENTION = "app.bsky.richtext.facet#mention"
LINK = "app.bsky.richtext.facet#link"

_S32 = "234567abcdefghijklmnopqrstuvwxyz"
# Without a queue time, keys fall in 2024: a past year, so they cannot collide with keys the
# Bluesky app makes from the current clock. The AppView does not notify for records whose
# key is that old, though (measured on dev-env 0.6.7), so callers pass the reply's time.
_TID_EPOCH_US = int(datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp() * 1_000_000)
_TID_SPAN_US = 366 * 24 * 3600 * 1_000_000

@dataclass(frozen=True)
class Span:
    kind: str  # "mention" or "link"
    value: str  # handle (without @) or URL
    byte_start: int
    byte_end: int


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def find_spans(text: str) -> list[Span]:
    """Mentions of handles (``@name.domain``) and http(s) links, with UTF-8 byte ranges."""
    spans: list[Span] = []
    for m in _MENTION_RE.finditer(text):
        handle = m.group(1)
        if "." not in handle or handle.endswith("."):
            continue  # "@support" alone is not a Bluesky handle
        start, end = m.start(), m.end()
        spans.append(Span("mention", handle.lower(), _byte_offset(text, start),
                          _byte_offset(text, end)))
    for m in _URL_RE.finditer(text):
        url = m.group(1)
        end = m.end()
        while url and url[-1] in _URL_TRAILING:
            # A ")" closing an opening one inside the URL belongs to it (Wikipedia links).
            if url[-1] == ")" and url.count("(") >= url.count(")"):
                break
            url, end = url[:-1], end - 1
        if len(url) > len("https://"):
            spans.append(Span("link", url, _byte_offset(text, m.start(1)),
                              _byte_offset(text, end)))
    return sorted(spans, key=lambda s: s.byte_start)


def build_facets(spans: list[Span], dids: Mapping[str, str]) -> list[dict[str, Any]]:
    """Facets for the spans; mentions whose handle did not resolve get none (plain text)."""
    facets: list[dict[str, Any]] = []
    for s in spans:
        if s.kind == "mention":
            did = dids.get(s.value)
            if not did:
                continue
            feature: dict[str, Any] = {"$type": MENTION, "did": did}
        else:
            feature = {"$type": LINK, "uri": s.value}
        facets.append({"index": {"byteStart": s.byte_start, "byteEnd": s.byte_end},
                       "features": [feature]})
    return facets


def expand_links(text: str, facets: Any) -> str:
    """The post text with each shortened link (``example.com/abc...``) replaced by the
    full URL from its #link facet. Facets with bad ranges are ignored, never trusted."""
    if not isinstance(facets, list) or not facets:
        return text
    # Lone surrogates can arrive as JSON escapes; keep them for sanitize_text to replace.
    data = text.encode("utf-8", errors="surrogatepass")
    edits: list[tuple[int, int, str]] = []
    for facet in facets:
        if not isinstance(facet, dict):
            continue
        index, features = facet.get("index"), facet.get("features")
        if not isinstance(index, dict) or not isinstance(features, list):
            continue
        start, end = index.get("byteStart"), index.get("byteEnd")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(data)):
            continue
        uri = next((f.get("uri") for f in features if isinstance(f, dict)
                    and f.get("$type") == LINK and isinstance(f.get("uri"), str)), None)
        if uri and uri.startswith(("http://", "https://")):
            edits.append((start, end, uri))
    out, pos = bytearray(), 0
    for start, end, uri in sorted(edits):
        if start < pos:
            continue  # overlapping facets: keep the first
        try:
            shown = data[start:end].decode("utf-8", errors="surrogatepass")
        except UnicodeDecodeError:
            continue  # a range that cuts a character in two is not a real link
        out += data[pos:start]
        out += (uri if shown != uri else shown).encode("utf-8")
        pos = end
    out += data[pos:]
    return out.decode("utf-8", errors="surrogatepass")


def s32encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        chars.append(_S32[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def tid_from_key(key: str, at: datetime | None = None) -> str:
    """A valid TID (13 chars, base32-sortable) that depends only on ``key`` and ``at``.

    ``at`` is when the reply was queued (stored with it, so it is the same on every retry):
    its whole seconds, plus sub-second digits and a clock id taken from the key's hash, so
    the same reply always gets the same record key and a resend hits the record already
    written, while the key's time stays close to the post's own time.
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    h = int.from_bytes(digest[:8], "big")
    if at is not None:
        micros = int(at.timestamp()) * 1_000_000 + (h >> 10) % 1_000_000
    else:
        micros = _TID_EPOCH_US + (h >> 10) % _TID_SPAN_US
    clock_id = h & 0x3FF
    return s32encode((micros << 10) | clock_id, 13)


TID_RE = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
