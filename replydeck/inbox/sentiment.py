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


@dataclass
class Sentiment:
    score: float
    #: The words that counted, with what each contributed (after negation and boosting).
    terms: list[tuple[str, float]] = field(default_factory=list)


def normalize(text: str) -> str:
    """NFKC with typographic apostrophes made plain, so lexicon lookups see one form."""
    return unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")


def sentiment(text: str, language: str | None = None) -> float:
    """The sentiment of ``text`` in [-1, 1] (0 = neutral or unknown).

    ``language`` is accepted from callers that know it, but both lexicons always run:
    posts mix scripts (最悪 wtf), and each lexicon only matches its own script.
    """
    return analyze(text, language).score


def analyze(text: str, language: str | None = None) -> Sentiment:
    """:func:`sentiment` with the contributing terms, for triage reasons."""
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


# English ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _en_phrases() -> dict[tuple[str, ...], float]:
    return {tuple(p.split()): v for p, v in en.PHRASES.items()}


def _is_negator(word: str) -> bool:
    return word in en.NEGATORS or word in _EXTRA_NEGATORS or word.endswith("n't")


def _score_english(text: str) -> list[tuple[str, float]]:
    raw = [m.group(0) for m in _EN_TOKEN.finditer(text) if m.group(0).isascii()]
    if not raw:
        return []
    lower = [t.lower() for t in raw]
    letters = [t for t in raw if t.isalpha()]
    shouting_everywhere = bool(letters) and all(t.isupper() for t in letters)
    phrases = _en_phrases()
    longest = max(len(k) for k in phrases)

    items: list[tuple[int, int, str, float]] = []  # (start, end, term, value)
    i = 0
    while i < len(lower):
        for n in range(min(longest, len(lower) - i), 1, -1):
            key = tuple(lower[i:i + n])
            if key in phrases:
                items.append((i, i + n, " ".join(key), phrases[key]))
                i += n
                break
        else:
            if lower[i] in en.WORDS:
                items.append((i, i + 1, lower[i], en.WORDS[lower[i]]))
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


def _ja_matches(text: str) -> list[tuple[int, int, str, str, float]]:
    entries, longest = _ja_index()
    found: list[tuple[int, int, str, str, float]] = []
    i = 0
    n = len(text)
    while i < n:
        if text[i].isascii():
            i += 1
            continue
        for size in range(min(longest, n - i), 0, -1):
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


def _score_emoji(text: str) -> list[tuple[str, float]]:
    return [(ch, en.EMOJI[ch]) for ch in text if ch in en.EMOJI]
