"""``[[rules]]``: automation rules, compiled when the config loads.

::

    [[rules]]
    name = "spam"
    stop = true                         # later rules are not tried when this one fires
    [rules.when]
    text_regex = "(crypto|forex) (signals|giveaway)"
    [rules.then]
    done = true
    tags = ["spam"]

Conditions (all given ones must hold; an array means any of its items):

- ``platform``: a platform name or an array of them.
- ``kind``: ``mention``, ``comment``, ``dm``, ``reply``, ``email``, ``review``, or the
  classes ``public`` / ``private``.
- ``text``: words or phrases, any of which occurs in the customer's new messages;
  ``text_all``: all of them occur; ``text_regex``: a Python regular expression (or an
  array, any matches). Matching is case- and width-insensitive: text and words are
  NFKC-normalised and case-folded, so ``ＲＥＦＵＮＤ`` matches ``refund`` and ``ﾛｸﾞｲﾝ``
  matches ``ログイン``. Words in Latin script match whole words and their plain English
  endings (``refund`` matches ``refunds``, ``refunded`` but not ``nonrefundable``); words
  in Japanese or Chinese script match anywhere, as those languages have no spaces.
  ``text_regex`` runs (case-insensitively) on the NFKC-normalised text, where full-width
  letters are ASCII and half-width katakana are full-width: write patterns that way.
- ``language``: a language code (``ja``, ``en``) or an array; the platform's tag, else a
  guess from the script.
- ``followers_gte``: the author has at least this many followers.
- ``vip``: true or false (the VIP list is ``[sla.triage] vip``).
- ``sentiment``: ``negative`` (a new message scores -0.2 or less), ``positive`` (one
  scores 0.3 or more and none is negative) or ``neutral``; or ``sentiment_below`` (the
  worst message scores below) / ``sentiment_above`` (the best scores above) with a number
  from -1 to 1.
- ``urgency``: at least this level (``high`` matches high, urgent and crisis), after
  triage and the rules before this one.
- ``business_hours``: ``inside`` or ``outside`` ``[business_hours]``.
- ``contact``: ``first`` (the author's first conversation) or ``repeat`` (they have had
  one before, or wrote into a closed conversation and reopened it).

Actions: ``tags`` (added), ``urgency`` (set) or ``raise_urgency`` (at least), ``assign``,
``snooze`` (a duration such as ``"2h"``), ``done = true``, ``auto_reply`` (a saved reply's
name) with ``auto_reply_every`` (default ``"24h"``; for rules with
``business_hours = "outside"`` the default is once per off-hours period), and ``view`` (a
view name or an array).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from replydeck.config.errors import describe
from replydeck.config.sla import KIND_CLASSES, format_duration, parse_duration
from replydeck.config.table import Table
from replydeck.inbox.model import Kind, Urgency
from replydeck.inbox.replies import SavedReply

SENTIMENTS = ("negative", "neutral", "positive")
BUSINESS_HOURS = ("inside", "outside")
CONTACTS = ("first", "repeat")
_URGENCIES = tuple(u.value for u in Urgency)
_DURATION_EXPECTED = 'a duration like "30m", "2h" or "1d"'
_CJK = re.compile("[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
                  "\uac00-\ud7af]")
_SPACE = re.compile(r"\s+")
_APOSTROPHE = re.compile("['\u2019\u02bc]")
_ENDINGS = "(?:s|es|d|ed|ing)?"
DEFAULT_AUTO_REPLY_EVERY = timedelta(hours=24)


def normalise_text(text: str) -> str:
    """NFKC, case-folded, apostrophes dropped (``can't`` = ``cant``), white space runs as
    one space: what ``text`` words see."""
    text = _APOSTROPHE.sub("", unicodedata.normalize("NFKC", text).casefold())
    return _SPACE.sub(" ", text).strip()


def _word_pattern(word: str) -> re.Pattern[str]:
    norm = normalise_text(word)
    escaped = re.escape(norm).replace(r"\ ", r"\s+")
    if _CJK.search(norm):
        return re.compile(escaped)
    start = r"(?<!\w)" if norm[:1].isalnum() else ""
    end = _ENDINGS + r"(?!\w)" if norm[-1:].isalnum() else ""
    return re.compile(start + escaped + end)


@dataclass(frozen=True)
class Words:
    """Words/phrases as written in the config, with the patterns that find them."""

    words: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]

    def any_in(self, text: str) -> str | None:
        for word, pattern in zip(self.words, self.patterns, strict=True):
            if pattern.search(text):
                return word
        return None

    def all_in(self, text: str) -> bool:
        return all(p.search(text) for p in self.patterns)


@dataclass(frozen=True)
class When:
    platforms: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    text: Words | None = None
    text_all: Words | None = None
    text_regex: tuple[re.Pattern[str], ...] = ()
    languages: frozenset[str] = frozenset()
    followers_gte: int | None = None
    vip: bool | None = None
    sentiment: str | None = None
    sentiment_below: float | None = None
    sentiment_above: float | None = None
    urgency: Urgency | None = None
    business_hours: str | None = None
    contact: str | None = None

    @property
    def uses_text(self) -> bool:
        return bool(self.text or self.text_all or self.text_regex)


@dataclass(frozen=True)
class Then:
    tags: tuple[str, ...] = ()
    urgency: Urgency | None = None
    raise_urgency: Urgency | None = None
    assign: str | None = None
    snooze: timedelta | None = None
    done: bool = False
    auto_reply: SavedReply | None = None
    #: None: once per off-hours period (rules on ``business_hours = "outside"`` only).
    auto_reply_every: timedelta | None = DEFAULT_AUTO_REPLY_EVERY
    views: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        """The actions in words, for ``replydeck rules test``."""
        out = [f"tag +{t}" for t in self.tags]
        if self.urgency:
            out.append(f"set urgency {self.urgency}")
        if self.raise_urgency:
            out.append(f"raise urgency to at least {self.raise_urgency}")
        if self.assign:
            out.append(f"assign to {self.assign}")
        if self.snooze:
            out.append(f"snooze {format_duration(self.snooze)}")
        if self.done:
            out.append("mark done")
        out.extend(f"move to view {v!r}" for v in self.views)
        return out


@dataclass(frozen=True)
class Rule:
    index: int
    name: str
    when: When
    then: Then
    stop: bool = False
    file: str | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        return f'rules[{self.index}] (name "{self.name}")'


def _str_or_list(t: Table, name: str, choices: tuple[str, ...] = ()) -> tuple[str, ...]:
    value = t.raw(name, None)
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    expected = "a string or an array of strings"
    if choices:
        expected = "one of " + ", ".join(repr(c) for c in choices) + " (or an array of them)"
    if (not isinstance(items, list) or not items
            or not all(isinstance(v, str) and v.strip() for v in items)):
        raise t.error(name, f"expected {expected}, found {describe(value)}")
    for v in items:
        if choices and v not in choices:
            raise t.error(name, f"expected {expected}, found {describe(v)}")
    return tuple(items)


def _words(t: Table, name: str) -> Words | None:
    words = _str_or_list(t, name)
    if not words:
        return None
    return Words(words, tuple(_word_pattern(w) for w in words))


def _regexes(t: Table, name: str) -> tuple[re.Pattern[str], ...]:
    out = []
    for pattern in _str_or_list(t, name):
        try:
            out.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise t.error(name, f"invalid regular expression {pattern!r}: {exc}") from None
    return tuple(out)


def _duration(t: Table, name: str) -> timedelta | None:
    value = t.raw(name, None)
    if value is None:
        return None
    parsed = parse_duration(value) if isinstance(value, str) else None
    if parsed is None or parsed <= timedelta(0):
        raise t.error(name, f"expected {_DURATION_EXPECTED}, found {describe(value)}")
    return parsed


def _urgency(t: Table, name: str) -> Urgency | None:
    value = t.str(name, None, choices=_URGENCIES)
    return Urgency(value) if value is not None else None


def _sentiment_bound(t: Table, name: str) -> float | None:
    value = t.number(name, None, min=-1.0)
    if value is not None and value > 1:
        raise t.error(name, f"expected a number from -1 to 1, found {describe(t.raw(name))}")
    return value


def _parse_when(t: Table) -> When:
    when = When(
        platforms=frozenset(_str_or_list(t, "platform")),
        kinds=frozenset(_str_or_list(t, "kind", KIND_CLASSES + tuple(k.value for k in Kind))),
        text=_words(t, "text"),
        text_all=_words(t, "text_all"),
        text_regex=_regexes(t, "text_regex"),
        languages=frozenset(x.replace("_", "-").split("-")[0].casefold()
                            for x in _str_or_list(t, "language")),
        followers_gte=t.int("followers_gte", None, min=0),
        vip=t.bool("vip", None),
        sentiment=t.str("sentiment", None, choices=SENTIMENTS),
        sentiment_below=_sentiment_bound(t, "sentiment_below"),
        sentiment_above=_sentiment_bound(t, "sentiment_above"),
        urgency=_urgency(t, "urgency"),
        business_hours=t.str("business_hours", None, choices=BUSINESS_HOURS),
        contact=t.str("contact", None, choices=CONTACTS),
    )
    t.reject_unknown()
    return when


def _parse_then(t: Table, when: When, replies: Any) -> Then:
    urgency = _urgency(t, "urgency")
    raise_urgency = _urgency(t, "raise_urgency")
    if urgency and raise_urgency:
        raise t.error("raise_urgency", "give either urgency (set) or raise_urgency, not both")
    snooze = _duration(t, "snooze")
    done = t.bool("done", False)
    if done and snooze:
        raise t.error("snooze", "a rule cannot both snooze and mark done")
    reply_name = t.str("auto_reply", None)
    reply = None
    if reply_name is not None:
        reply = replies.get(reply_name) if replies is not None else None
        if reply is None:
            known = ", ".join(repr(n) for n in (replies.names if replies else [])) or "none"
            raise t.error("auto_reply", f"no saved reply named {reply_name!r} "
                          f"(saved replies: {known})")
    every = _duration(t, "auto_reply_every")
    if every is not None and reply is None:
        raise t.error("auto_reply_every", "only applies with auto_reply")
    if every is None and when.business_hours != "outside":
        every = DEFAULT_AUTO_REPLY_EVERY
    assign = t.str("assign", None)
    if assign is not None and not assign.strip():
        raise t.error("assign", "expected an agent name, found an empty string")
    then = Then(
        tags=tuple(t.str_list("tags", [])), urgency=urgency, raise_urgency=raise_urgency,
        assign=assign, snooze=snooze, done=done, auto_reply=reply, auto_reply_every=every,
        views=_str_or_list(t, "view"),
    )
    t.reject_unknown()
    if not (then.tags or then.urgency or then.raise_urgency or then.assign or then.snooze
            or then.done or then.auto_reply or then.views):
        raise t.error(None, "has no action (tags, urgency, raise_urgency, assign, snooze, "
                      "done, auto_reply or view)")
    return then


def parse(root: Table, replies: Any = None) -> list[Rule]:
    """Compile every ``[[rules]]`` table; ``replies`` is the parsed saved reply library."""
    rules: list[Rule] = []
    names: set[str] = set()
    for index, raw in enumerate(root.tables("rules")):
        name = raw.str("name")
        if not name.strip():
            raise raw.error("name", "expected a non-empty string, found an empty string")
        if name in names:
            raise raw.error("name", f"another rule is already named {name!r}")
        names.add(name)
        # Re-root the table so every error below names the rule: rules[2] (name "spam").
        t = Table(raw.data, f'{raw.path} (name "{name}")', raw.file)
        t.str("name")
        if not t.has("then"):
            raise t.error("then", "missing; expected a table of actions ([rules.then])")
        when = _parse_when(t.table("when"))
        then = _parse_then(t.table("then", required=True), when, replies)
        stop = t.bool("stop", False)
        t.reject_unknown()
        rules.append(Rule(index, name, when, then, stop, raw.file))
    return rules
