"""How long a reply is, by each platform's own counting rule.

Rules (the names sources put in :class:`~replydeck.sources.base.Limits`):

* ``chars``: Unicode code points after NFC normalisation (Mastodon, Telegram, Matrix...).
* ``x_weighted``: X / twitter-text v3. Text is NFC-normalised; code points in
  0-4351, 8192-8205, 8208-8223 and 8242-8247 weigh 1, all others 2; an emoji (including a
  whole ZWJ sequence, a flag, a keycap or a skin-tone modified emoji) weighs 2 in total;
  every URL weighs 23 whatever its length.
* ``graphemes``: extended grapheme clusters (Bluesky's 300-grapheme limit).
* ``utf8_bytes``: UTF-8 bytes of the text as it will be sent (Instagram DMs, Matrix).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

import regex

if TYPE_CHECKING:
    from replydeck.sources.base import Limits

RULES = ("chars", "x_weighted", "graphemes", "utf8_bytes")
RULE_UNITS = {
    "chars": "characters",
    "x_weighted": "weighted characters",
    "graphemes": "characters",
    "utf8_bytes": "bytes",
}

#: twitter-text v3 config: ranges of weight 1 (scale 100 -> weight 100), default 2.
_X_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
X_URL_WEIGHT = 23

_GRAPHEME = regex.compile(r"\X")

# A grapheme cluster twitter-text's emoji parser would take as one emoji: anything with an
# emoji-presentation code point, a text-default pictograph made emoji by VS16 (U+FE0F), a
# keycap (U+20E3) or a regional-indicator flag. Bare text-style symbols such as "©" are
# not emoji there and keep their per-code-point weight.
_EMOJI_CLUSTER = regex.compile(
    r"\p{Emoji_Presentation}|\p{Extended_Pictographic}\uFE0F|\u20E3|\p{Regional_Indicator}"
)

# twitter-text's URL extractor is a large grammar with the full TLD list; this follows its
# main cases: anything with http(s)://, and bare domains ending in a known gTLD or in any
# two-letter ccTLD. A bare ccTLD domain without a path needs a label longer than 2
# characters (twitter-text's "invalid short domain" rule: "ab.de" is text, "ab.de/x" a
# URL), except .co and .tv ("special ccTLDs", so "t.co" is a URL). Less common gTLDs
# written without a scheme may be missed [uncertain].
_GTLDS = (
    "com|net|org|info|biz|edu|gov|mil|int|app|dev|xyz|online|site|shop|"
    "store|tech|blog|news|cloud|page|link|live|social|club|space|website|email|help|"
    "support|company|network|media|agency|design|studio|world|today|life|top|pro|mobi|"
    "name|asia|travel|jobs|museum|aero|coop|cat|tel|xxx|post"
)
_URL = regex.compile(
    rf"""
    (?<![\w@#$.\-/])                      # not inside a word, a mention or another URL
    (?:
        https?://[^\s<>"]+
      | (?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+
        (?:
            (?P<gtld>{_GTLDS})(?![a-z0-9\-])(?:[/?#][^\s<>"]*)?
          | (?P<cctld>[a-z]{{2}})(?![a-z0-9\-])(?P<path>[/?#][^\s<>"]*)?
        )
    )
    """,
    regex.VERBOSE | regex.IGNORECASE,
)
# Punctuation a sentence puts right after a URL is not part of it.
_URL_TRAILING = ".,:;!?'\")]}…"
_SHORT_CCTLD_DOMAIN = regex.compile(r"^[a-z0-9]{1,2}\.(?!co$|tv$)[a-z]{2}$", regex.IGNORECASE)


@dataclass(frozen=True)
class LengthCheck:
    count: int
    limit: int
    ok: bool
    over: int
    rule: str = "chars"

    @property
    def unit(self) -> str:
        return RULE_UNITS.get(self.rule, "characters")

    def describe(self) -> str:
        """``312/280 weighted characters (32 over)``: for the composer and refusals."""
        text = f"{self.count}/{self.limit} {self.unit}"
        return text if self.ok else f"{text} ({self.over} over)"


def count(text: str, rule: str) -> int:
    """The length of ``text`` under ``rule`` (one of :data:`RULES`)."""
    if rule == "chars":
        return len(unicodedata.normalize("NFC", text))
    if rule == "x_weighted":
        return x_weighted(text)
    if rule == "graphemes":
        return len(_GRAPHEME.findall(unicodedata.normalize("NFC", text)))
    if rule == "utf8_bytes":
        return len(text.encode("utf-8", errors="surrogatepass"))
    raise ValueError(f"unknown length rule {rule!r}; expected one of {', '.join(RULES)}")


def check(text: str, limit: int, rule: str) -> LengthCheck:
    n = count(text, rule)
    return LengthCheck(count=n, limit=limit, ok=n <= limit, over=max(0, n - limit), rule=rule)


def limit_for(limits: Limits, private: bool) -> tuple[int, str]:
    """``(max_length, rule)`` for a public reply or a DM on a source with ``limits``."""
    return limits.for_reply(private)


def check_reply(text: str, limits: Limits, private: bool) -> LengthCheck:
    limit, rule = limit_for(limits, private)
    return check(text, limit, rule)


# -- X weighting -----------------------------------------------------------------------
def _code_point_weight(ch: str) -> int:
    cp = ord(ch)
    for start, end in _X_LIGHT_RANGES:
        if start <= cp <= end:
            return 1
    return 2


def x_urls(text: str) -> list[tuple[int, int]]:
    """Spans of the URLs twitter-text would count as 23, in ``text`` (already NFC)."""
    spans: list[tuple[int, int]] = []
    for m in _URL.finditer(text):
        start, end = m.span()
        while end > start and text[end - 1] in _URL_TRAILING:
            # Keep a closing bracket that closes one opened inside the URL (Wikipedia links).
            if text[end - 1] == ")" and text[start:end].count("(") >= text[start:end].count(")"):
                break
            end -= 1
        url = text[start:end]
        if m.group("cctld") and not m.group("path") and _SHORT_CCTLD_DOMAIN.match(url):
            continue
        if end > start:
            spans.append((start, end))
    return spans


def x_weighted(text: str) -> int:
    text = unicodedata.normalize("NFC", text)
    total = 0
    pos = 0
    for start, end in x_urls(text):
        total += _weigh_plain(text[pos:start]) + X_URL_WEIGHT
        pos = end
    return total + _weigh_plain(text[pos:])


def _weigh_plain(text: str) -> int:
    total = 0
    for cluster in _GRAPHEME.findall(text):
        if _EMOJI_CLUSTER.search(cluster):
            total += 2
        else:
            total += sum(_code_point_weight(ch) for ch in cluster)
    return total
