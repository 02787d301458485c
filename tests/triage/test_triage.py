"""Urgency signals, reasons and the store-facing assessor, with realistic EN and JA text."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replydeck.config.sla import SlaConfig, from_mapping
from replydeck.inbox.assess import Assessor, ThreadFacts
from replydeck.inbox.model import Author, Direction, Kind, Message, Status, Urgency
from replydeck.inbox.triage import TriageAssessor, assess_urgency

UTC = timezone.utc
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
CFG = SlaConfig()


def msg(text: str, minutes_ago: float = 5, *, direction: Direction = Direction.IN,
        platform: str = "x", kind: Kind = Kind.MENTION, author: Author | None = None,
        engagement: dict[str, int] | None = None, n: list[int] = [0]) -> Message:  # noqa: B006
    n[0] += 1
    return Message(
        source="main", remote_id=f"m{n[0]}", platform=platform, kind=kind,
        author=author or Author("u1", "customer", "Casey"), text=text,
        created_at=NOW - timedelta(minutes=minutes_ago), direction=direction,
        engagement=engagement or {},
    )


def facts(*messages: Message | str, platform: str = "x", kind: Kind = Kind.MENTION,
          followers: int | None = None, handle: str = "customer",
          waiting_since: datetime | str | None = "auto", tags: list[str] | None = None,
          answered_before: bool = False, reopened: bool = False,
          engagement: dict[str, int] | None = None) -> ThreadFacts:
    author = Author("u1", handle, "Casey", followers)
    ms = [m if isinstance(m, Message) else msg(m, platform=platform, kind=kind, author=author,
                                                engagement=engagement)
          for m in messages]
    if waiting_since == "auto":
        inbound = [m for m in ms if m.direction == Direction.IN]
        waiting_since = inbound[0].created_at if inbound else None
    return ThreadFacts(
        conversation_id=7, source="main", platform=platform, kind=kind, status=Status.OPEN,
        author=author, messages=ms, new_messages=ms[-1:], tags=list(tags or []),
        assignee=None, waiting_since=waiting_since,  # type: ignore[arg-type]
        first_response_at=None, last_human_reply_at=None, last_auto_reply_at=None,
        is_new=True, reopened=reopened, answered_before=answered_before,
    )


def run(f: ThreadFacts, cfg: SlaConfig = CFG) -> tuple[Urgency, float, list[str]]:
    return assess_urgency(f, cfg, NOW)


def tags_of(f: ThreadFacts, cfg: SlaConfig = CFG) -> list[str]:
    return TriageAssessor(cfg).assess(f, NOW).add_tags


# Phrases ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "reason", "tag"), [
    ("If this isn't fixed by Friday I'm calling my lawyer.",
     "phrase 'lawyer' (legal threat) +45", "legal"),
    ("@acme expect a lawsuit over the data you sold",
     "phrase 'lawsuit' (legal threat) +45", "legal"),
    ("この件は訴訟も検討しています", "phrase '訴訟' (legal threat) +45", "legal"),
    ("My account got hacked and someone is posting spam from it",
     "phrase 'hacked' (security) +45", "security"),
    ("アカウントが乗っ取られました。至急対応お願いします",
     "phrase '乗っ取られ' (security) +45", "security"),
    ("Is there a data leak? I got a phishing mail with my order number",
     "phrase 'data leak' (security) +45", "security"),
    ("この対応、炎上してますよ", "phrase '炎上' (public backlash) +40", "backlash"),
    ("Your site is down again. Third time this week.",
     "phrase 'is down' (outage) +30", "outage"),
    ("I can't log in since the update", "phrase \"can't log in\" (outage) +30", "outage"),
    ("I can’t log in since the update", "phrase \"can't log in\" (outage) +30", "outage"),
    ("今朝からログインできない", "phrase 'ログインできない' (outage) +30", "outage"),
    ("サーバー障害ですか？", "phrase '障害' (outage) +30", "outage"),
    ("I want a REFUND for this", "phrase 'refund' (billing) +20", "billing"),
    ("ＲＥＦＵＮＤ please", "phrase 'refund' (billing) +20", "billing"),
    ("I'll file a chargeback with my bank", "phrase 'chargeback' (billing) +20", "billing"),
    ("返金をお願いします", "phrase '返金' (billing) +20", "billing"),
    ("How do I cancel my subscription?", "phrase 'cancel' (cancellation) +20", "churn"),
    ("解約したいです", "phrase '解約' (cancellation) +20", "churn"),
])
def test_phrase_signals(text: str, reason: str, tag: str) -> None:
    _u, _s, reasons = run(facts(text))
    assert reason in reasons
    f = facts(text)
    assert tag in tags_of(f)
    assert "complaint" in tags_of(f)


@pytest.mark.parametrize("text", [
    "I was downloading the new version, looks nice",
    "Will you pursue the partnership?",
    "The cancellation policy page has a typo",  # 'cancellation' counts, but not legal
    "ハッカソンに参加します",
])
def test_phrases_match_whole_words_only(text: str) -> None:
    _u, _s, reasons = run(facts(text))
    assert not any("legal" in r or "security" in r or "outage" in r for r in reasons)


def test_each_phrase_group_counts_once() -> None:
    _u, _score, reasons = run(facts("refund refund REFUND, I want a refund and my money back"))
    assert sum("(billing)" in r for r in reasons) == 1


def test_several_groups_add_up_to_crisis() -> None:
    urgency, score, reasons = run(facts(
        "My account was HACKED and now I can't log in. My lawyer will hear about this."))
    assert urgency == Urgency.CRISIS
    assert score >= 75
    assert reasons[:3] == ["phrase 'lawyer' (legal threat) +45",
                           "phrase 'hacked' (security) +45",
                           "phrase \"can't log in\" (outage) +30"]
    assert "crisis" in tags_of(facts("My account was HACKED and now I can't log in. "
                                     "My lawyer will hear about this."))


def test_phrase_weights_and_groups_are_configurable() -> None:
    cfg = from_mapping({"sla": {"triage": {"phrases": {
        "legal": {"weight": 0},
        "shipping": {"label": "delivery problem", "weight": 15, "tag": "shipping",
                     "phrases": ["never arrived", "届かない"]},
    }}}})
    _u, _s, reasons = run(facts("My parcel never arrived, I'll get a lawyer"), cfg)
    assert "phrase 'never arrived' (delivery problem) +15" in reasons
    assert not any("legal" in r for r in reasons)
    _u, _s, reasons = run(facts("荷物が届かないです"), cfg)
    assert "phrase '届かない' (delivery problem) +15" in reasons


# Sentiment -------------------------------------------------------------------------------


def test_negative_sentiment_raises_urgency_and_marks_complaint() -> None:
    f = facts("Honestly the worst support I have ever had. Not happy at all.")
    urgency, score, reasons = run(f)
    neg = [r for r in reasons if r.startswith("negative sentiment")]
    assert len(neg) == 1 and "'worst'" in neg[0]
    assert score > 15
    assert urgency in (Urgency.HIGH, Urgency.URGENT)
    assert "complaint" in tags_of(f)


def test_not_happy_at_all_is_a_complaint() -> None:
    f = facts("I'm not happy at all with this")
    assert any(r.startswith("negative sentiment") for r in run(f)[2])
    assert "complaint" in tags_of(f)


def test_not_bad_is_not_a_complaint() -> None:
    f = facts("Not bad, the new version works")
    urgency, _s, reasons = run(f)
    assert not any(r.startswith("negative sentiment") for r in reasons)
    assert "complaint" not in tags_of(f)
    assert urgency in (Urgency.NORMAL, Urgency.LOW)


def test_zenzen_mondai_nai_is_not_a_complaint() -> None:
    f = facts("全然問題ないです！ありがとうございます")
    urgency, _s, reasons = run(f)
    assert not any(r.startswith("negative sentiment") for r in reasons)
    assert "complaint" not in tags_of(f)
    assert urgency in (Urgency.NORMAL, Urgency.LOW)


def test_japanese_complaint_is_negative() -> None:
    f = facts("対応が遅すぎる。本当に最悪です")
    assert any(r.startswith("negative sentiment") for r in run(f)[2])
    assert "complaint" in tags_of(f)


def test_thanks_lowers_urgency_to_low() -> None:
    urgency, score, reasons = run(facts("Thank you so much, that was excellent help! 🙏"))
    assert urgency == Urgency.LOW
    assert score < 0
    assert reasons[0].startswith("positive sentiment +0.")


def test_sentiment_weight_is_configurable() -> None:
    cfg = from_mapping({"sla": {"triage": {"weights": {"negative_sentiment": 0}}}})
    _u, score, reasons = run(facts("Terrible, awful, useless"), cfg)
    assert score == 0 and reasons == []


# Who is asking ---------------------------------------------------------------------------


@pytest.mark.parametrize(("followers", "reason"), [
    (9_999, None),
    (12_000, "12k followers +10"),
    (250_000, "250k followers +15"),
    (1_200_000, "1.2M followers +25"),
])
def test_reach(followers: int, reason: str | None) -> None:
    f = facts("Where is my order?", followers=followers)
    _u, _s, reasons = run(f)
    if reason is None:
        assert not any("followers" in r for r in reasons)
        assert "high-reach" not in tags_of(f)
    else:
        assert reason in reasons
        assert "high-reach" in tags_of(f)


def test_vip_per_platform() -> None:
    cfg = from_mapping({"sla": {"triage": {"vip": {"x": ["@BigCustomer"]}}}})
    f = facts("Quick question about our plan", handle="@bigcustomer")
    _u, _s, reasons = run(f, cfg)
    assert "VIP @bigcustomer +30" in reasons
    assert "vip" in tags_of(f, cfg)
    on_mastodon = facts("Quick question about our plan", handle="bigcustomer",
                        platform="mastodon")
    assert not any(r.startswith("VIP") for r in run(on_mastodon, cfg)[2])


def test_engagement() -> None:
    f = facts("Your checkout is broken lol", engagement={"likes": 80, "reposts": 20})
    _u, _s, reasons = run(f)
    assert "engagement 120 (likes 80, reposts 20) +10" in reasons
    assert "high-reach" in tags_of(f)
    quiet = facts("Your checkout is broken lol", engagement={"likes": 3})
    assert not any(r.startswith("engagement") for r in run(quiet)[2])


# Repeat contact and waiting ---------------------------------------------------------------


def test_repeat_contact_while_unanswered() -> None:
    author = Author("u1", "customer", "Casey")
    f = facts(msg("hello? is anyone there", 30, author=author),
              msg("???", 20, author=author),
              msg("still nothing", 10, author=author))
    _u, _s, reasons = run(f)
    assert "wrote 3 times while waiting +16" in reasons


def test_answered_messages_do_not_count_as_repeat_or_as_text() -> None:
    author = Author("u1", "customer", "Casey")
    f = facts(msg("I want a refund, this is a scam", 300, author=author),
              msg("We have refunded you.", 200, direction=Direction.OUT),
              msg("Got it, thanks a lot!", 5, author=author),
              waiting_since=NOW - timedelta(minutes=5))
    _u, _s, reasons = run(f)
    assert not any("billing" in r or "security" in r or "wrote" in r for r in reasons)
    assert reasons and reasons[0].startswith("positive sentiment")


def test_reopened_conversation_counts_as_repeat_contact() -> None:
    _u, _s, reasons = run(facts("It's happening again", reopened=True))
    assert "wrote again after it was closed +8" in reasons


def test_time_waited_against_the_target() -> None:
    dm = Kind.DM
    author = Author("u1", "customer", "Casey")
    early = facts(msg("Where is my order?", 10, kind=dm, author=author), kind=dm)
    assert not any(r.startswith("waited") for r in run(early)[2])
    late = facts(msg("Where is my order?", 50, kind=dm, author=author), kind=dm)
    assert "waited 83% of the 1h target +10" in run(late)[2]
    over = facts(msg("Where is my order?", 90, kind=dm, author=author), kind=dm)
    assert "waited past the 1h target +20" in run(over)[2]


# The assessor ----------------------------------------------------------------------------


def test_assessor_sets_due_times_from_the_urgency() -> None:
    assessor: Assessor = TriageAssessor(CFG)
    calm = facts("Do you ship to Canada?", platform="mastodon")
    d = assessor.assess(calm, NOW)
    assert d.urgency == Urgency.NORMAL
    assert d.due_at == NOW - timedelta(minutes=5) + timedelta(hours=4)
    assert d.warn_at == NOW - timedelta(minutes=5) + timedelta(hours=3)

    outage = facts("The whole service is down and I can't log in, we are losing money",
                   platform="mastodon")
    d = assessor.assess(outage, NOW)
    assert d.urgency in (Urgency.URGENT, Urgency.CRISIS)
    assert d.due_at == NOW - timedelta(minutes=5) + timedelta(hours=1)
    assert d.reasons and d.score > 0


def test_public_complaint_on_x_is_due_in_an_hour() -> None:
    d = TriageAssessor(CFG).assess(facts("Meh. Disappointing update, slow and buggy."), NOW)
    assert "complaint" in d.add_tags
    assert d.urgency in (Urgency.NORMAL, Urgency.HIGH)
    assert d.due_at == NOW - timedelta(minutes=5) + timedelta(hours=1)


def test_assessor_adds_only_new_tags_and_breached_when_overdue() -> None:
    f = facts(msg("Charged twice!! I want a refund", 300), tags=["billing"])
    d = TriageAssessor(CFG).assess(f, NOW)
    assert "billing" not in d.add_tags
    assert "complaint" in d.add_tags
    assert "breached" in d.add_tags
    assert d.due_at is not None and d.due_at < NOW


def test_nothing_waiting_means_no_due_time_but_still_an_urgency() -> None:
    f = facts("Our lawyer has the documents now, thanks", waiting_since=None)
    d = TriageAssessor(CFG).assess(f, NOW)
    assert d.due_at is None and d.warn_at is None
    assert any("legal threat" in r for r in d.reasons)


def test_levels_are_configurable() -> None:
    cfg: Any = from_mapping({"sla": {"triage": {"levels": {"crisis": 200, "urgent": 100,
                                                           "high": 10}}}})
    urgency, _s, _r = run(facts("I want a refund"), cfg)
    assert urgency == Urgency.HIGH


# Properties ------------------------------------------------------------------------------

_WORDS = ["refund", "lawsuit", "hacked", "down", "not", "happy", "very", "worst", "thanks",
          "返金", "最悪", "全然", "問題ない", "ログインできない", "嬉しくない", "炎上", "!", "?",
          "order", "please", "ＲＥＦＵＮＤ", "can't log in", "love"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_WORDS), max_size=12).map(" ".join),
                min_size=1, max_size=4),
       st.one_of(st.none(), st.integers(0, 5_000_000)),
       st.integers(0, 5000), st.integers(0, 600))
def test_reasons_add_up_to_the_score_and_the_level_follows_it(
        texts: list[str], followers: int | None, likes: int, minutes: int) -> None:
    author = Author("u1", "customer", "Casey", followers)
    ms = [msg(t, minutes - i, author=author, engagement={"likes": likes}) for i, t in
          enumerate(texts)]
    f = facts(*ms, followers=followers)
    urgency, score, reasons = run(f)
    total = sum(float(r.rsplit(" ", 1)[1]) for r in reasons)
    assert abs(total - score) < 0.05 * max(1, len(reasons))
    assert urgency == CFG.triage.level_for(score)
    d = TriageAssessor(CFG).assess(f, NOW)
    assert (d.urgency, d.score, d.reasons) == (urgency, score, reasons)
    assert d.due_at is not None and d.warn_at is not None and d.warn_at < d.due_at
    assert ("crisis" in d.add_tags) == (urgency == Urgency.CRISIS)
