"""Lexicon-based sentiment for English and Japanese customer messages, in [-1, 1].

English is tokenised into words; each lexicon word or phrase contributes its value,
turned around by a negator in the three words before it ("not happy"), strengthened or
dampened by a booster just before it ("very", "slightly") and by SHOUTING. Japanese has no
spaces: after NFKC normalisation (full-width → half-width, half-width kana → full-width)
lexicon stems are found as substrings, longest first; a negation written right after a
word (嬉しくない, 満足していません) turns it around and a booster right before it (とても,
全然) strengthens it. In both languages a positive word negated becomes clearly negative,
while a negative word negated becomes only mildly positive ("not bad" is not praise), and
what follows a contrast ("but", けど) weighs more than what precedes it.

The sum is squashed into (-1, 1) the way VADER does (x / sqrt(x² + 15)), so one strong word
gives about ±0.6 and several push towards ±1.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from replydeck.inbox.lexicon import en, ja

_ALPHA = 15.0
_NEGATE_POSITIVE = -0.74
_NEGATE_NEGATIVE = -0.3
_CAPS_BOOST = 0.733
_EXCLAIM = 0.292
_EXTRA_NEGATORS = frozenset({"dont", "doesnt", "didnt", "cant", "wont", "isnt", "arent",
                             "wasnt", "werent", "couldnt", "wouldnt", "shouldnt", "havent"})
_EN_TOKEN = re.compile(r"[a-z0-9][a-z0-9'\-]*|[.,;:!?]", re.IGNORECASE)
_CLAUSE_END = frozenset(".,;:!?")
_JA_STOP = frozenset("。、,.!?\n ")
_JA_WINDOW = 8
_RECENT = 256
_CACHED_MESSAGES = 4096


@dataclass
class Sentiment:
    score: float
    #: The words that counted, with what each contributed (after negation and boosting).
    terms: list[tuple[str, float]] = field(default_factory=list)


def _normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")


# Triage normalises a message for its phrases and again here for its sentiment, one call
# after the other: a few recent results save the second pass.
_normalize_recent = lru_cache(maxsize=_RECENT)(_normalize)


def normalize(text: str) -> str:
    """NFKC with typographic apostrophes made plain, so lexicon lookups see one form."""
    return _normalize_recent(text) if type(text) is str else _normalize(text)


def sentiment(text: str, language: str | None = None) -> float:
    """The sentiment of ``text`` in [-1, 1] (0 = neutral or unknown).

    ``language`` is accepted from callers that know it, but both lexicons always run:
    posts mix scripts (最悪 wtf), and each lexicon only matches its own script.
    """
    return cached_analysis(text).score


def analyze(text: str, language: str | None = None) -> Sentiment:
    """:func:`sentiment` with the contributing terms, for triage reasons."""
    shared = cached_analysis(text)
    return Sentiment(shared.score, list(shared.terms))


def cached_analysis(text: str) -> Sentiment:
    """:func:`analyze`, remembered for the latest messages: a conversation is judged again on
    every change, and its older messages have not changed. The result is shared between
    callers: read it, do not modify it."""
    return _analysis_cached(text) if type(text) is str else _analysis(text)


def _analysis(text: str) -> Sentiment:
    if not text or not text.strip():
        return Sentiment(0.0)
    norm = normalize(text)
    terms = _score_english(norm) + _score_japanese(norm) + _score_emoji(norm)
    total = sum(v for _t, v in terms)
    if total:
        bangs = min(norm.count("!") + norm.count("‼") * 2, 4)
        total += math.copysign(bangs * _EXCLAIM, total)
    score = total / math.sqrt(total * total + _ALPHA)
    return Sentiment(max(-1.0, min(1.0, score)), terms)


#: Bounded: a few thousand recent messages (about a megabyte), enough for every open
#: conversation a poll or a person's action touches again soon after.
_analysis_cached = lru_cache(maxsize=_CACHED_MESSAGES)(_analysis)


# English ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _en_phrases() -> dict[tuple[str, ...], float]:
    return {tuple(p.split()): v for p, v in en.PHRASES.items()}


@lru_cache(maxsize=1)
def _en_phrase_starts() -> tuple[frozenset[str], int]:
    """The words a phrase can begin with (most words begin none) and the longest phrase."""
    phrases = _en_phrases()
    return frozenset(k[0] for k in phrases if k), max(len(k) for k in phrases)


def _is_negator(word: str) -> bool:
    return word in en.NEGATORS or word in _EXTRA_NEGATORS or word.endswith("n't")


def _score_english(text: str) -> list[tuple[str, float]]:
    raw = [t for t in _EN_TOKEN.findall(text) if t.isascii()]
    if not raw:
        return []
    lower = [t.lower() for t in raw]
    letters = [t for t in raw if t.isalpha()]
    shouting_everywhere = bool(letters) and all(t.isupper() for t in letters)
    phrases = _en_phrases()
    starts, longest = _en_phrase_starts()
    words = en.WORDS

    items: list[tuple[int, int, str, float]] = []  # (start, end, term, value)
    i = 0
    count = len(lower)
    while i < count:
        word = lower[i]
        if word in starts:
            for n in range(min(longest, count - i), 1, -1):
                key = tuple(lower[i:i + n])
                if key in phrases:
                    items.append((i, i + n, " ".join(key), phrases[key]))
                    i += n
                    break
            else:
                if word in words:
                    items.append((i, i + 1, word, words[word]))
                i += 1
            continue
        if word in words:
            items.append((i, i + 1, word, words[word]))
        i += 1

    contrast_at = max((k for k, w in enumerate(lower) if w in en.CONTRAST), default=-1)
    out: list[tuple[str, float]] = []
    for start, end, term, value in items:
        v = value
        # Boosters right before the word (one or two words back).
        for back, scale in ((1, 1.0), (2, 0.95)):
            j = start - back
            if j >= 0 and lower[j] in en.BOOSTERS and lower[j] not in _CLAUSE_END:
                v += en.BOOSTERS[lower[j]] * scale * 4 / 3 * (1 if v > 0 else -1)
                break
        if (not shouting_everywhere and end - start == 1 and raw[start].isupper()
                and len(raw[start]) > 1):
            v += math.copysign(_CAPS_BOOST, v)
        # A negator up to three words back, within the same clause.
        negated = False
        for j in range(start - 1, max(start - 4, -1), -1):
            if lower[j] in _CLAUSE_END:
                break
            if _is_negator(lower[j]):
                negated = True
                break
        if negated and not _contains_negation(term):
            v *= _NEGATE_POSITIVE if v > 0 else _NEGATE_NEGATIVE
            # "not happy at all": the negation is emphatic.
            if lower[end:end + 2] == ["at", "all"]:
                v *= 1.4
        if contrast_at >= 0:
            v *= 0.5 if start < contrast_at else 1.5
        out.append((term, v))
    return out


def _contains_negation(term: str) -> bool:
    return any(_is_negator(w) for w in term.split())


# Japanese --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _ja_index() -> tuple[dict[str, tuple[str, float]], int]:
    entries: dict[str, tuple[str, float]] = {}
    for w, v in ja.WORDS.items():
        entries[normalize(w)] = ("word", v)
    for w, v in ja.BOOSTERS.items():
        entries.setdefault(normalize(w), ("booster", v))
    return entries, max(len(k) for k in entries)


@lru_cache(maxsize=1)
def _ja_starts() -> tuple[dict[str, tuple[int, ...]], re.Pattern[str] | None]:
    """For each character an entry can begin with, the entry lengths there (longest first),
    and a pattern finding such characters: the scan jumps between them.

    Entries beginning with an ASCII character are left out: matching starts only at
    non-ASCII characters.
    """
    entries, _longest = _ja_index()
    sizes: dict[str, set[int]] = {}
    for key in entries:
        if key and not key[0].isascii():
            sizes.setdefault(key[0], set()).add(len(key))
    starts = {ch: tuple(sorted(s, reverse=True)) for ch, s in sizes.items()}
    if not starts:
        return starts, None
    return starts, re.compile("[" + "".join(re.escape(ch) for ch in sorted(starts)) + "]")


def _ja_matches(text: str) -> list[tuple[int, int, str, str, float]]:
    """Lexicon entries in ``text``, left to right, the longest at each place."""
    entries, _longest = _ja_index()
    starts, pattern = _ja_starts()
    found: list[tuple[int, int, str, str, float]] = []
    if pattern is None:
        return found
    n = len(text)
    i = 0
    search = pattern.search
    while (m := search(text, i)) is not None:
        i = m.start()
        for size in starts[text[i]]:
            if size > n - i:
                continue
            hit = entries.get(text[i:i + size])
            if hit is not None:
                found.append((i, i + size, text[i:i + size], hit[0], hit[1]))
                i += size
                break
        else:
            i += 1
    return found


def _score_japanese(text: str) -> list[tuple[str, float]]:
    matches = _ja_matches(text)
    if not matches:
        return []
    contrast_at = max((text.rfind(c) for c in ja.CONTRAST), default=-1)
    out: list[tuple[str, float]] = []
    for k, (start, end, term, kind, value) in enumerate(matches):
        if kind != "word" or value == 0:
            continue
        v = value
        prev = matches[k - 1] if k else None
        if prev and prev[3] == "booster" and start - prev[1] <= 3:
            v += prev[4] * 4 / 3 * (1 if v > 0 else -1)
        limit = min(matches[k + 1][0] if k + 1 < len(matches) else len(text),
                    end + _JA_WINDOW)
        after = text[end:limit]
        for stop, ch in enumerate(after):
            if ch in _JA_STOP:
                after = after[:stop]
                break
        if any(m in after for m in ja.NEGATION_MARKERS):
            v *= _NEGATE_POSITIVE if v > 0 else _NEGATE_NEGATIVE
        if any(text.startswith(e, end) for e in ja.EMPHASIS):
            v += math.copysign(0.5, v)
        if contrast_at >= 0:
            v *= 0.5 if start < contrast_at else 1.5
        out.append((term, v))
    return out


@lru_cache(maxsize=1)
def _emoji_pattern() -> re.Pattern[str] | None:
    """The lexicon's emoji (those of one character: the scan goes character by character)."""
    singles = sorted(ch for ch in en.EMOJI if len(ch) == 1)
    return re.compile("[" + "".join(re.escape(ch) for ch in singles) + "]") if singles else None


def _score_emoji(text: str) -> list[tuple[str, float]]:
    pattern = _emoji_pattern()
    if pattern is None:
        return []
    return [(ch, en.EMOJI[ch]) for ch in pattern.findall(text)]
