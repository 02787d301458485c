"""Rank saved replies by relevance to what the customer just wrote.

An in-memory SQLite FTS5 index over each reply's trigger phrases and text, scored with
bm25 (trigger phrases weigh more than the body, which is written to the customer, not by
them). Text is NFKC-normalised and case-folded first, so full-width ``ＲＥＦＵＮＤ`` and
half-width ``ﾛｸﾞｲﾝ`` find ``refund`` and ``ログイン``. Three indexes, combined by the
language of the message:

- ``porter unicode61`` for words in Latin script, stemmed (``crashes`` finds ``crash``);
- ``trigram`` for unsegmented text (Japanese has no spaces) and for typos in Latin words
  (``refnud`` still shares ``ref`` with ``refund``);
- CJK bigrams (our own segmentation into overlapping character pairs, indexed with
  ``unicode61``), because FTS5's trigram tokenizer cannot match anything shorter than three
  characters, and most Japanese words (返金, 解約, 障害, 配送) are two.

The latest message counts most; the two before it count half and a quarter. Replies in
another language than the message's are kept but ranked lower.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from replydeck.inbox.replies import SavedReply

_CJK = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u3005"
_CJK_RUN = re.compile(f"[{_CJK}]+")
_KANA = re.compile("[\u3040-\u30ff\u31f0-\u31ff]")
_HANGUL = re.compile("[\uac00-\ud7af]")
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")
_LATIN_LETTER = re.compile(r"[a-z]", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+")
_MENTION_OR_URL = re.compile(r"(?:https?://\S+|(?<!\w)@[\w.\-]+)")
_APOSTROPHE = re.compile("['\u2019\u02bc]")
_VARIABLE = re.compile(r"\{[^{}]*\}")

_STOPWORDS = frozenset("""
a an and are as at be been but by do does did for from has have had he her him his i im
if in is it its ive me my of on or our she so that the their them they this to us was we
were what with you your yours just also am ill id hi hey hello please pls thanks thank
hii there hai lol ok okay u ur examplecoffee
""".split())
# "please" and "thanks" are so common that they say nothing about which reply fits,
# except when they are the whole message; the "thanks" reply lists "thank you" anyway.

_TRIGGER_WEIGHT = 4.0
_BODY_WEIGHT = 1.0
_MESSAGE_WEIGHTS = (1.0, 0.5, 0.25)
_OTHER_LANGUAGE_FACTOR = 0.25

_CJK_LANGUAGES = ("ja", "zh", "ko")


def normalise(text: str) -> str:
    """NFKC + casefold, apostrophes dropped (``can't`` and ``cant`` are one word)."""
    return _APOSTROPHE.sub("", unicodedata.normalize("NFKC", text).casefold())


def guess_language(text: str) -> str | None:
    """A script-based guess for messages the platform did not tag.

    Kana means Japanese, Hangul Korean, Han alone Chinese; Latin letters alone are taken
    as English (a guess: replydeck's phrase lists are English and Japanese).
    """
    text = unicodedata.normalize("NFKC", text)
    if _KANA.search(text):
        return "ja"
    if _HANGUL.search(text):
        return "ko"
    if _HAN.search(text):
        return "zh"
    if _LATIN_LETTER.search(text):
        return "en"
    return None


def primary_language(tag: str | None) -> str | None:
    """``en-US`` -> ``en``; None stays None."""
    if not tag:
        return None
    return tag.replace("_", "-").split("-", 1)[0].casefold() or None


def _bigrams(text: str) -> list[str]:
    grams: list[str] = []
    for run in _CJK_RUN.findall(text):
        if len(run) == 1:
            grams.append(run)
        grams.extend(run[i:i + 2] for i in range(len(run) - 1))
    return grams


def _trigrams(run: str) -> list[str]:
    return [run[i:i + 3] for i in range(len(run) - 2)]


def _latin_words(text: str) -> list[str]:
    latin = _CJK_RUN.sub(" ", text)
    return [w for w in _WORD.findall(latin) if w not in _STOPWORDS]


def _or_query(terms: Iterable[str]) -> str:
    # Terms hold only letters, digits and CJK characters, so quoting is enough.
    unique = dict.fromkeys(t.replace('"', "") for t in terms if t)
    return " OR ".join(f'"{t}"' for t in unique if t)


@dataclass(frozen=True)
class Suggestion:
    name: str
    score: float
    reply: SavedReply


class Suggester:
    """Ranks a fixed library of saved replies; build a new one when the library changes."""

    def __init__(self, replies: Iterable[SavedReply]) -> None:
        self._replies = list(replies)
        self._lock = threading.Lock()
        # The TUI may ask from a worker thread; the lock keeps the connection single-user.
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.executescript(
            """
            CREATE VIRTUAL TABLE latin USING fts5(triggers, body,
                tokenize = 'porter unicode61 remove_diacritics 2');
            CREATE VIRTUAL TABLE tri USING fts5(triggers, body, tokenize = 'trigram');
            CREATE VIRTUAL TABLE bi USING fts5(triggers, body, tokenize = 'unicode61');
            """
        )
        for rowid, reply in enumerate(self._replies):
            triggers = normalise(" ; ".join(reply.triggers))
            texts = [reply.body, *reply.variants.values()]
            body = normalise(_VARIABLE.sub(" ", "\n".join(texts)))
            self._db.execute("INSERT INTO latin(rowid, triggers, body) VALUES (?, ?, ?)",
                             (rowid, triggers, body))
            self._db.execute("INSERT INTO tri(rowid, triggers, body) VALUES (?, ?, ?)",
                             (rowid, triggers, body))
            self._db.execute("INSERT INTO bi(rowid, triggers, body) VALUES (?, ?, ?)",
                             (rowid, " ".join(_bigrams(triggers)), " ".join(_bigrams(body))))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _search(self, table: str, query: str) -> dict[int, float]:
        if not query:
            return {}
        rows = self._db.execute(
            f"SELECT rowid, bm25({table}, ?, ?) FROM {table} WHERE {table} MATCH ?",
            (_TRIGGER_WEIGHT, _BODY_WEIGHT, query),
        ).fetchall()
        # bm25() is lower-is-better and negative; flip it so a higher score is better.
        return {rowid: -score for rowid, score in rows}

    def _score_message(self, text: str, cjk: bool) -> dict[int, float]:
        text = normalise(_MENTION_OR_URL.sub(" ", text))
        words = _latin_words(text)
        runs = _CJK_RUN.findall(text)
        tri_terms = [g for run in runs for g in _trigrams(run)]
        tri_terms += [g for w in words if len(w) >= 4 and not w.isdigit()
                      for g in _trigrams(w)]
        weights = (0.5, 0.5, 1.0) if cjk else (1.0, 0.3, 0.5)
        combined: dict[int, float] = {}
        for weight, table, query in (
            (weights[0], "latin", _or_query(w for w in words if not w.isdigit())),
            (weights[1], "tri", _or_query(tri_terms)),
            (weights[2], "bi", _or_query(_bigrams(text))),
        ):
            for rowid, score in self._search(table, query).items():
                combined[rowid] = combined.get(rowid, 0.0) + weight * score
        return combined

    def suggest(self, messages: list[str], language: str | None = None,
                limit: int = 5) -> list[Suggestion]:
        """Saved replies for a customer's messages (oldest first), best first.

        Only replies that match something are returned, so the list may be shorter than
        ``limit`` or empty.
        """
        recent = [m for m in messages if m and m.strip()][-len(_MESSAGE_WEIGHTS):]
        if not recent or limit <= 0:
            return []
        lang = primary_language(language) or guess_language(" ".join(recent))
        cjk = lang in _CJK_LANGUAGES
        totals: dict[int, float] = {}
        with self._lock:
            for weight, text in zip(_MESSAGE_WEIGHTS, reversed(recent), strict=False):
                for rowid, score in self._score_message(text, cjk).items():
                    totals[rowid] = totals.get(rowid, 0.0) + weight * score
        ranked: list[Suggestion] = []
        for rowid, score in totals.items():
            reply = self._replies[rowid]
            reply_lang = primary_language(reply.language)
            if lang and reply_lang and reply_lang != lang:
                score *= _OTHER_LANGUAGE_FACTOR
            if score > 0:
                ranked.append(Suggestion(reply.name, round(score, 4), reply))
        ranked.sort(key=lambda s: (-s.score, s.name))
        return ranked[:limit]
