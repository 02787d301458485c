"""Sentiment of real-looking customer messages in English and Japanese."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replydeck.inbox.sentiment import analyze, sentiment


@pytest.mark.parametrize("text", [
    "This is the worst customer service I have ever dealt with. Three days and no reply.",
    "Your app keeps crashing and I lost my entire draft. Absolutely useless.",
    "I'm not happy at all with how this was handled",
    "Charged twice for the same order?! This is a rip off",
    "Still waiting for my refund, this is ridiculous",
    "最悪です。二度と使いません",
    "アプリが全然使えない。本当にがっかりしました",
    "対応がひどすぎる！返金してください",
    "満足していません",
    "サービスに不満があります",
    "ＷＯＲＳＴ ＳＵＰＰＯＲＴ ＥＶＥＲ",  # full-width
    "Nice design but it doesn't work at all",
    "😡😡 where is my package",
])
def test_negative_messages(text: str) -> None:
    assert sentiment(text) <= -0.3, analyze(text)


@pytest.mark.parametrize("text", [
    "Thanks so much for the quick help, works great now!",
    "Love the new update, well done team 👍",
    "Great job, the support was excellent",
    "ありがとうございます！とても助かりました",
    "最高のアプリです。おすすめします",
    "迅速に対応していただき感謝しています",
    "ｻｲｺｳ！ありがとう",  # half-width katakana
])
def test_positive_messages(text: str) -> None:
    assert sentiment(text) >= 0.3, analyze(text)


@pytest.mark.parametrize("text", [
    "Hi, what are your opening hours on Saturday?",
    "Can you send me the invoice for order 4471?",
    "注文番号は12345です",
    "明日の営業時間を教えてください",
    "",
    "   ",
])
def test_neutral_questions_are_near_zero(text: str) -> None:
    assert abs(sentiment(text)) < 0.2, analyze(text)


def test_negation_turns_praise_into_complaint() -> None:
    assert sentiment("I am happy") > 0.2
    assert sentiment("I am not happy") < -0.2
    assert sentiment("not happy at all") < sentiment("not happy")
    assert sentiment("the fix isn't good") < 0


def test_negated_complaint_is_not_strongly_negative() -> None:
    assert sentiment("not bad") > -0.1
    assert sentiment("It's not terrible") > -0.1
    assert sentiment("Works without any problems") > 0


def test_intensifiers_strengthen_and_dampeners_weaken() -> None:
    assert sentiment("very disappointed") < sentiment("disappointed") < sentiment(
        "slightly disappointed") < 0
    assert sentiment("extremely good") > sentiment("good") > 0
    assert sentiment("disappointed!!!") < sentiment("disappointed")
    assert sentiment("this is TERRIBLE") < sentiment("this is terrible")


def test_japanese_negation_after_a_positive_word() -> None:
    assert sentiment("嬉しい") > 0.2
    assert sentiment("嬉しくない") < -0.2
    assert sentiment("良かった") > 0.2
    assert sentiment("良くなかった") < -0.2
    assert sentiment("満足です") > 0.2
    assert sentiment("満足していません") < -0.2


def test_zenzen_mondai_nai_is_not_a_complaint() -> None:
    assert sentiment("全然問題ないです") > 0
    assert sentiment("全然問題ない、ありがとう") > 0.2
    assert sentiment("問題があります") < 0


def test_japanese_intensifiers() -> None:
    assert sentiment("本当に最悪") < sentiment("最悪") < 0
    assert sentiment("とても嬉しい") > sentiment("嬉しい") > 0
    assert sentiment("全然良くない") < sentiment("良くない") < 0


def test_width_is_normalised() -> None:
    assert sentiment("ＴＨＡＮＫ ＹＯＵ") == pytest.approx(sentiment("THANK YOU"))
    assert sentiment("ﾀﾞﾒ") == pytest.approx(sentiment("ダメ"))


def test_contrast_weighs_what_comes_after() -> None:
    assert sentiment("The app looks nice but it is useless") < 0
    assert sentiment("デザインは良いけど、全く使えない") < 0
    assert sentiment("It was slow, but the support was excellent") > 0


def test_terms_explain_the_score() -> None:
    result = analyze("Worst service, I want a refund")
    assert [t for t, _v in result.terms] == ["worst service", "refund"]
    assert all(v < 0 for _t, v in result.terms)


def test_mixed_scripts_are_both_scored() -> None:
    assert sentiment("最悪 wtf") < sentiment("最悪")


@given(st.text(max_size=300))
def test_any_text_scores_within_bounds(text: str) -> None:
    assert -1.0 <= sentiment(text) <= 1.0


def _label(score: float) -> str:
    return "neg" if score <= -0.2 else "pos" if score >= 0.2 else "neu"


def _accuracy(data: list[tuple[str, str]]) -> float:
    return sum(_label(sentiment(t)) == label for t, label in data) / len(data)


def test_accuracy_on_labelled_messages() -> None:
    from tests.triage.sentiment_labelled import HELD_OUT, LABELLED

    # LABELLED guided the lexicons (0.90 when first measured, 0.99 now). HELD_OUT was
    # written later: 0.79 when first measured, 0.88 after fixes partly prompted by its
    # misses (a substring false positive, "no reply" phrasings), so it is no longer unseen.
    assert _accuracy(LABELLED) >= 0.95
    assert _accuracy(HELD_OUT) >= 0.8


def test_negation_holds_for_every_english_lexicon_word() -> None:
    from replydeck.inbox.lexicon import en

    for word, value in en.WORDS.items():
        plain, negated = sentiment(f"it is {word}"), sentiment(f"it is not {word}")
        if value > 0:
            assert negated < 0, word
        else:
            assert plain < negated and negated > -0.3, word


def test_negation_holds_for_japanese_adjective_stems() -> None:
    # Stems that conjugate with く: 嬉し-くない, 楽し-くない, 良-くない ...
    for stem in ("嬉し", "楽し", "うれし", "使いやす", "わかりやす"):
        assert sentiment(stem + "い") > 0.2, stem
        assert sentiment(stem + "くない") < -0.2, stem
    for noun in ("満足", "便利", "快適", "安心"):
        assert sentiment(noun + "です") > 0.2, noun
        assert sentiment(noun + "ではありません") < -0.2, noun
