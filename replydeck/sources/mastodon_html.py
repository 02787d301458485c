"""Mastodon status HTML to readable plain text (stdlib ``html.parser``).

Mastodon sends ``content`` as sanitised HTML: paragraphs, ``<br>``, links whose visible
text is shortened with ``invisible``/``ellipsis`` spans, mentions as ``h-card`` links and
hashtags as ``rel=tag`` links. We keep what a person needs to read and answer: line and
paragraph breaks, the full link target, mentions as ``@acct`` (remote accounts with their
domain, so the reply can address them) and hashtags as ``#tag``.
"""

from __future__ import annotations

from collections.abc import Mapping
from html.parser import HTMLParser

_BLOCK = {"p", "div", "blockquote", "pre", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6"}
_SKIP = {"script", "style", "template"}


class _TextBuilder(HTMLParser):
    def __init__(self, mention_urls: Mapping[str, str]) -> None:
        super().__init__(convert_charrefs=True)
        self.mention_urls = mention_urls
        self.out: list[str] = []
        self._skip = 0
        # Inside an <a>: what we will write instead of its text (None = keep the text).
        self._link: list[tuple[str | None, list[str]]] = []

    # Text goes to the innermost open link's buffer, or straight out.
    def _emit(self, text: str) -> None:
        if self._link:
            self._link[-1][1].append(text)
        else:
            self.out.append(text)

    def _break(self, n: int) -> None:
        """Ensure the output ends with at least ``n`` newlines (never at the very start)."""
        if self._link:
            self._link[-1][1].append("\n")
            return
        text = "".join(self.out)
        if not text.strip():
            return
        have = len(text) - len(text.rstrip("\n"))
        if have < n:
            self.out.append("\n" * (n - have))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
            return
        if tag == "br":
            self._emit("\n")
        elif tag in _BLOCK:
            self._break(2)
        elif tag == "li":
            self._break(1)
            self._emit("- ")
        elif tag == "a":
            self._link.append((self._replacement(dict(attrs)), []))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._emit("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
            return
        if tag in _BLOCK:
            self._break(2)
        elif tag == "a" and self._link:
            replacement, parts = self._link.pop()
            self._emit(replacement if replacement is not None else "".join(parts))

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._emit(data)

    def _replacement(self, attrs: dict[str, str | None]) -> str | None:
        href = attrs.get("href") or ""
        classes = (attrs.get("class") or "").split()
        rel = (attrs.get("rel") or "").split()
        if "hashtag" in classes or "tag" in rel:
            return None  # visible text is already "#tag"
        if "mention" in classes or "u-url" in classes:
            acct = self.mention_urls.get(href)
            return f"@{acct}" if acct else None
        if href.startswith(("http://", "https://")):
            # The visible text is shortened with hidden spans; the href is the real link.
            return href
        return None


def html_to_text(html: str, mentions: list[Mapping[str, object]] | None = None) -> str:
    """Plain text of a status ``content``. ``mentions`` is the status's ``mentions`` list,
    used to write each mention as ``@acct`` (with the remote domain) rather than ``@user``."""
    urls: dict[str, str] = {}
    for m in mentions or []:
        url, acct = m.get("url"), m.get("acct")
        if isinstance(url, str) and isinstance(acct, str):
            urls[url] = acct
    parser = _TextBuilder(urls)
    parser.feed(html or "")
    parser.close()
    # A link left open by broken HTML still keeps its text.
    while parser._link:
        replacement, parts = parser._link.pop()
        parser._emit(replacement if replacement is not None else "".join(parts))
    text = "".join(parser.out)
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)
