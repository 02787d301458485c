"""Make text from strangers inert before it is stored or shown.

Removes every terminal escape sequence (CSI, OSC, DCS, SOS/PM/APC, and two-byte ESC
forms, terminated or not), C0 and C1 control characters except newline and tab, bidi
embedding/override/isolate controls, and turns Unicode line/paragraph separators into
newlines. Zero-width joiners are kept (emoji sequences need them); other invisible format
characters that only serve to disguise text are removed.

Markup is a separate concern: stored text keeps ``[bold]`` literally, and screens render it
as plain ``Text``/``Content``, never through a markup parser.
"""

from __future__ import annotations

import re

# ESC-introduced sequences. String-type (OSC, DCS, SOS, PM, APC) run to BEL or ST (ESC \).
# An unterminated one loses only its introducer (the two-byte rule), so the words after it
# survive as inert text instead of vanishing. CSI runs to its final byte.
_ESC_SEQ = re.compile(
    r"""
      \x1b\[ [0-?]* [ -/]* [@-~]?             # CSI
    | \x1b[\]PX^_] .*? (?:\x07|\x1b\\)         # OSC / DCS / SOS / PM / APC
    | \x1b [ -/]* [0-~]?                       # two-byte forms (ESC c, ESC 7, charset)
    """,
    re.VERBOSE | re.DOTALL,
)
# C1 string introducers as single code points (0x90 DCS, 0x9D OSC, 0x98 SOS, 0x9E PM,
# 0x9F APC) run to ST (0x9C) or BEL; 0x9B CSI runs to its final byte.
_C1_SEQ = re.compile(r"[\x90\x98\x9d\x9e\x9f].*?(?:\x9c|\x07)|\x9b[0-?]*[ -/]*[@-~]?",
                     re.DOTALL)

_LINE_SEPARATORS = {"\u2028": "\n", "\u2029": "\n", "\x85": "\n", "\r\n": "\n", "\r": "\n"}
_LINE_SEP_RE = re.compile("\r\n|[\r\u2028\u2029\x85]")

# Bidi controls (LRE RLE PDF LRO RLO, LRI RLI FSI PDI, LRM RLM ALM) and invisible
# characters that only disguise text (word joiner, invisible operators, BOM, soft hyphen is
# harmless and kept). ZWJ U+200D and ZWNJ U+200C stay: emoji and some scripts need them.
_INVISIBLE = re.compile(
    "[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u200b\u2060-\u2064\ufeff\ufff9-\ufffb]"
)
# Lone surrogates (valid in JSON, not in UTF-8) would crash every encoder downstream.
_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 except \t \n, DEL, and the rest of C1.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
# Every character any pattern above starts with: text without one (most text) is returned
# as it is, after one scan instead of six.
_ANY_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f"
    "\u061c\u200b\u2060-\u2064\ufeff\ufff9-\ufffb\ud800-\udfff]"
)


def sanitize_text(text: str) -> str:
    """The text with nothing left that a terminal would act on."""
    if not text:
        return ""
    # Every character removed or replaced here is in a Unicode category that
    # ``isprintable`` rejects (Cc, Cf, Cs, Zl, Zp), so one fast C scan clears most
    # one-line text. Text with a newline or tab takes the regex scan.
    if text.isprintable() or _ANY_UNSAFE.search(text) is None:
        return text
    return _strip(text)


def _strip(text: str) -> str:
    text = _ESC_SEQ.sub("", text)
    text = _C1_SEQ.sub("", text)
    text = _LINE_SEP_RE.sub(lambda m: _LINE_SEPARATORS[m.group(0)], text)
    text = _INVISIBLE.sub("", text)
    text = _SURROGATE.sub("\ufffd", text)
    return _CONTROL.sub("", text)


def sanitize_line(text: str) -> str:
    """For one-line fields (names, handles, subjects): also folds newlines and tabs."""
    return " ".join(sanitize_text(text).split())


def is_inert(text: str) -> bool:
    """True when ``text`` holds no character :func:`sanitize_text` would remove."""
    return sanitize_text(text) == text
