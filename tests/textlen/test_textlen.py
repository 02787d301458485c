"""Length rules as the platforms count them (twitter-text v3, Bluesky graphemes, bytes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replydeck.inbox import textlen
from replydeck.sources.base import Limits

FAMILY = "\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466"  # 👨‍👩‍👧‍👦


# -- X weighted (examples from twitter-text's validate.yml v3 and counting-characters) ----
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello", 5),
        ("", 0),
        # Latin-1, accented and Cyrillic/Greek/Hebrew/Arabic/Devanagari sit below 4352.
        ("Ünïcödé", 7),
        ("Привет мир", 10),
        ("नमस्ते", 6),
        # CJK and full-width punctuation weigh 2 each.
        ("故人西辞黄鹤楼，烟花三月下扬州。", 32),
        ("日本語", 6),
        ("안녕", 4),
        # General punctuation in the light ranges: en dash, curly quotes, prime marks.
        ("\u2013\u201c\u201d\u2032", 4),
        # ... and just outside them: the bullet U+2022 (8226) weighs 2.
        ("\u2022", 2),
        # Emoji: each one 2, ZWJ families, flags, keycaps and skin tones 2 in total.
        ("😷👾😡🔥💩", 10),
        ("H🐱☺" + FAMILY, 7),
        (FAMILY, 2),
        ("🇯🇵", 2),
        ("👍🏽", 2),
        ("1\ufe0f\u20e3", 2),
        ("❤️", 2),
        # A text-style symbol without VS16 keeps its code point weight.
        ("©", 1),
    ],
)
def test_x_weighted_characters(text: str, expected: int) -> None:
    assert textlen.count(text, "x_weighted") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://example.com", 23),
        ("see https://example.com/a/very/long/path/that/goes/on?and=on&on=1#frag", 4 + 23),
        ("http://t.co/abc", 23),
        # Bare domains count as URLs too, and trailing sentence punctuation is not part of it.
        ("go to example.com.", 6 + 23 + 1),
        ("visit twitter.com/help!", 6 + 23 + 1),
        ("docs at www.example.org/x, thanks", 8 + 23 + 8),
        ("日本 https://example.jp/パス", 4 + 1 + 23),
        ("two urls https://a.example.com https://b.example.com/x", 9 + 23 + 1 + 23),
        # Not URLs: a mention, an e-mail's domain after @, a short ccTLD host without a path.
        ("@example", 8),
        ("me@example.com", 14),
        ("ab.de", 5),
        ("ab.de/x", 23),
        ("t.co", 23),  # .co and .tv are twitter-text's special short ccTLDs
        ("e.g. this", 9),
    ],
)
def test_x_urls_weigh_23(text: str, expected: int) -> None:
    assert textlen.count(text, "x_weighted") == expected


def test_x_long_url_does_not_eat_the_limit() -> None:
    text = "a" * 256 + " https://example.com/" + "x" * 500
    assert textlen.count(text, "x_weighted") == 280
    assert textlen.check(text, 280, "x_weighted").ok


def test_x_nfc_before_counting() -> None:
    decomposed = "Cafe\u0301"  # e + combining acute composes to é
    assert textlen.count(decomposed, "x_weighted") == 4
    # A combining mark with no precomposed form stays a separate code point of weight 1.
    assert textlen.count("x\u0301", "x_weighted") == 2


def test_x_280_cjk_boundary() -> None:
    assert textlen.check("鹤" * 140, 280, "x_weighted").ok
    result = textlen.check("鹤" * 141, 280, "x_weighted")
    assert (result.count, result.ok, result.over) == (282, False, 2)
    assert result.describe() == "282/280 weighted characters (2 over)"


# -- chars ---------------------------------------------------------------------------
def test_chars_counts_code_points_after_nfc() -> None:
    assert textlen.count("Cafe\u0301", "chars") == 4
    assert textlen.count("日本語", "chars") == 3
    assert textlen.count(FAMILY, "chars") == 7  # 4 people + 3 joiners
    assert textlen.count("https://example.com/long", "chars") == 24


# -- graphemes (Bluesky) --------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("こんにちは世界", 7),
        ("ﾃｽﾄ", 3),
        ("が", 1),
        ("か\u3099", 1),  # combining voiced mark: one user-perceived character
        (FAMILY, 1),
        ("🇯🇵🇺🇸", 2),
        ("👍🏽 ok", 4),
        ("Cafe\u0301", 4),
        ("\r\n", 1),
        ("नमस्ते", 3),
    ],
)
def test_graphemes(text: str, expected: int) -> None:
    assert textlen.count(text, "graphemes") == expected


def test_bluesky_300_graphemes_of_emoji_fit_although_bytes_do_not() -> None:
    text = FAMILY * 300
    assert textlen.check(text, 300, "graphemes").ok
    assert not textlen.check(text + "!", 300, "graphemes").ok
    assert not textlen.check(text, 3000, "utf8_bytes").ok


# -- bytes ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [("abc", 3), ("é", 2), ("日本", 6), ("😀", 4), (FAMILY, 25), ("", 0)],
)
def test_utf8_bytes(text: str, expected: int) -> None:
    assert textlen.count(text, "utf8_bytes") == expected


def test_instagram_1000_bytes() -> None:
    assert textlen.check("é" * 500, 1000, "utf8_bytes").ok
    over = textlen.check("é" * 501, 1000, "utf8_bytes")
    assert (over.ok, over.over) == (False, 2)
    assert over.describe() == "1002/1000 bytes (2 over)"


# -- check / limit_for ------------------------------------------------------------------
def test_check_fields() -> None:
    assert textlen.check("hello", 5, "chars") == textlen.LengthCheck(5, 5, True, 0, "chars")
    assert textlen.check("hello!", 5, "chars") == textlen.LengthCheck(6, 5, False, 1, "chars")


def test_unknown_rule_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown length rule 'words'"):
        textlen.count("x", "words")


def test_limit_for_public_and_private() -> None:
    x = Limits(max_length=280, counting="x_weighted", private_max_length=10000,
               private_counting="chars")
    assert textlen.limit_for(x, private=False) == (280, "x_weighted")
    assert textlen.limit_for(x, private=True) == (10000, "chars")
    plain = Limits(max_length=500)
    assert textlen.limit_for(plain, private=True) == (500, "chars")
    assert not textlen.check_reply("日" * 141, x, private=False).ok
    assert textlen.check_reply("日" * 141, x, private=True).ok


@given(st.text())
def test_every_rule_counts_any_text(text: str) -> None:
    chars = textlen.count(text, "chars")
    assert 0 <= textlen.count(text, "graphemes") <= chars
    assert textlen.count(text, "utf8_bytes") >= len(text)
    assert textlen.count(text, "x_weighted") >= 0
    assert textlen.check(text, chars, "chars").ok
