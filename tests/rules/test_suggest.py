"""Suggested saved replies: ranking, language awareness, normalisation, accuracy floor."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from replydeck.config.loader import read_toml
from replydeck.config.replies import parse
from replydeck.config.table import Table
from replydeck.inbox.suggest import Suggester, guess_language, normalise

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def suggester():
    lib = parse(Table(read_toml(DATA / "replies.toml"), "", "replies.toml"), DATA)
    s = Suggester(lib)
    yield s
    s.close()


def names(suggestions):
    return [s.name for s in suggestions]


def test_latest_message_decides(suggester):
    got = suggester.suggest(["my order hasn't arrived",
                             "actually it came, but the bag was torn and beans spilled"], "en")
    assert got[0].name == "damaged-item"
    assert "order-status" in names(got)


def test_scores_descend_and_limit_is_respected(suggester):
    got = suggester.suggest(["I was charged twice and want a refund"], "en", limit=3)
    assert len(got) == 3
    assert [s.score for s in got] == sorted((s.score for s in got), reverse=True)
    assert {"double-charge", "refund"} <= set(names(got))
    assert got[0].reply.name == got[0].name


def test_stemming_matches_inflections(suggester):
    assert suggester.suggest(["the app crashed twice and keeps freezing"], "en")[0].name \
        == "bug-report"


def test_typo_still_finds_the_reply(suggester):
    assert "refund" in names(suggester.suggest(["can I get a refnud"], "en", limit=3))


def test_japanese_two_character_words_match(suggester):
    # 返金 and 解約 are two characters: shorter than a trigram.
    assert suggester.suggest(["返金お願いします"], "ja")[0].name == "refund-ja"
    assert suggester.suggest(["解約したい"], "ja")[0].name == "cancel-subscription-ja"


def test_half_width_katakana_and_full_width_latin_match(suggester):
    assert suggester.suggest(["ﾛｸﾞｲﾝできない"], None)[0].name == "login-help-ja"
    assert suggester.suggest(["ＲＥＦＵＮＤ ｐｌｅａｓｅ"], None)[0].name == "refund"


def test_language_prefers_replies_in_the_same_language(suggester):
    # "login" appears in English and Japanese replies alike; the message is Japanese.
    assert suggester.suggest(["loginできないです"], "ja")[0].name == "login-help-ja"
    assert suggester.suggest(["can't login"], "en")[0].name == "login-help"


def test_language_tag_with_region(suggester):
    assert suggester.suggest(["where is my order"], "en-GB")[0].name == "order-status"


def test_nothing_matching_gives_nothing(suggester):
    assert suggester.suggest(["🙂🙂"], None) == []
    assert suggester.suggest([], "en") == []
    assert suggester.suggest(["   "], "en") == []
    assert suggester.suggest(["refund"], "en", limit=0) == []


def test_mentions_and_urls_do_not_count(suggester):
    # The brand handle is in every mention; a URL's words say nothing about the need.
    a = suggester.suggest(["@examplecoffee where is my order"], "en")
    b = suggester.suggest(["where is my order https://example.coffee/refund/help"], "en")
    assert a[0].name == b[0].name == "order-status"


def test_query_syntax_characters_are_harmless(suggester):
    got = suggester.suggest(['refund" OR NEAR(a b) * ^ AND -x:y'], "en")
    assert got[0].name == "refund"


def test_guess_language_and_normalise():
    assert guess_language("ログインできない") == "ja"
    assert guess_language("where is it") == "en"
    assert guess_language("안녕하세요") == "ko"
    assert guess_language("12345") is None
    assert normalise("ＣＡＮ’Ｔ ﾛｸﾞｲﾝ") == "cant ログイン"


def test_eval_set_is_large_and_labelled_with_known_replies():
    lib = parse(Table(read_toml(DATA / "replies.toml"), "", "replies.toml"), DATA)
    cases = [json.loads(x) for x in (DATA / "suggest_eval.jsonl").read_text("utf-8")
             .splitlines() if x]
    assert len(cases) >= 100
    assert all(lib.get(c["expected"]) is not None for c in cases)
    ja = [c for c in cases if c["expected"].endswith("-ja")]
    assert len(ja) >= 30
    assert {c["kind"] for c in cases} >= {"mention", "dm", "comment", "email"}


def test_accuracy_floor():
    """Regression floor on the labelled set (bench/suggest_accuracy.py prints the figures)."""
    spec = importlib.util.spec_from_file_location("suggest_accuracy",
                                                  ROOT / "bench" / "suggest_accuracy.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    result = bench.evaluate()
    assert result.top3_rate >= 0.9, result.misses
    assert result.top1_rate >= 0.8, result.misses
    assert result.by_language["ja"]["top3"] / result.by_language["ja"]["total"] >= 0.85


def test_empty_library_suggests_nothing():
    s = Suggester([])
    assert s.suggest(["refund please"], "en") == []
    s.close()


HOSTILE = ROOT.parent / "shared" / "corpus" / "hostile-text.jsonl"


@pytest.mark.skipif(not HOSTILE.exists(), reason="shared corpus not beside the project")
def test_hostile_text_never_breaks_suggestions(suggester):
    for line in HOSTILE.read_text("utf-8").splitlines():
        text = json.loads(line)["text"]
        for s in suggester.suggest([text], None):
            assert s.score > 0
