"""Rules at ingest: every condition and action, ordering, stop, and the auto-reply guards."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from replydeck.config.replies import parse as parse_replies
from replydeck.config.rules import parse as parse_rules
from replydeck.config.sla import from_mapping
from replydeck.config.table import Table
from replydeck.inbox.assess import Decision, PlainAssessor, ThreadFacts
from replydeck.inbox.model import Author, Direction, Kind, Message, Status, Urgency
from replydeck.inbox.rules import RulesAssessor, build_assessor
from replydeck.inbox.sanitize import sanitize_line

UTC = timezone.utc
# A Wednesday, 10:00 in Tokyo (open) and 22:00 in Tokyo (closed).
OPEN = datetime(2026, 11, 18, 1, 0, tzinfo=UTC)
CLOSED = datetime(2026, 11, 18, 13, 0, tzinfo=UTC)

REPLIES = parse_replies(Table({"replies": [
    {"name": "out-of-hours", "body": "Hi {customer.name|there}, we're closed; back at 9:00.",
     "variants": {"x": "Closed now {customer.handle}, back at 9:00!"}},
    {"name": "faq-shipping", "body": "Hi {customer.name|there}, orders ship in 2 days. "
     "- {agent.name}"},
    {"name": "faq-hours", "body": "We're open 9-18 JST."},
]}, "", "c.toml"), ".")

SLA = from_mapping({
    "business_hours": {"timezone": "Asia/Tokyo",
                       **{d: ["09:00-18:00"] for d in
                          ("monday", "tuesday", "wednesday", "thursday", "friday")}},
    "sla": {"triage": {"vip": {"x": ["@bigfan"]}}},
})

ALICE = Author(id="1", handle="alice", name="Alice", followers=120)


def msg(text: str, *, at: datetime = OPEN, platform: str = "x", kind: Kind = Kind.MENTION,
        direction: Direction = Direction.IN, author: Author = ALICE,
        language: str | None = None, automated: bool = False) -> Message:
    return Message(source="s", remote_id=f"m{hash((text, at))}", platform=platform, kind=kind,
                   author=author, text=text, created_at=at, direction=direction,
                   language=language, automated=automated)


def facts(*texts: str, platform: str = "x", kind: Kind = Kind.MENTION,
          author: Author = ALICE, now: datetime = OPEN, tags: list[str] | None = None,
          language: str | None = None, earlier: list[Message] = (), **extra) -> ThreadFacts:
    new = [msg(t, at=now, platform=platform, kind=kind, author=author, language=language)
           for t in texts]
    values = dict(
        conversation_id=1, source="s", platform=platform, kind=kind, status=Status.OPEN,
        author=author, messages=[*earlier, *new], new_messages=new, tags=tags or [],
        assignee=None, waiting_since=now if new else None, first_response_at=None,
        last_human_reply_at=None, last_auto_reply_at=None, is_new=True, reopened=False,
    )
    values.update(extra)
    return ThreadFacts(**values)


def assessor(*rules: dict, inner=None, sla=SLA, sentiment_fn=None,
             brand: str = "Example Coffee") -> RulesAssessor:
    compiled = parse_rules(Table({"rules": list(rules)}, "", "c.toml"), REPLIES)
    return RulesAssessor(inner or PlainAssessor(), compiled, sla=sla, brand=brand,
                         sentiment_fn=sentiment_fn)


def rule(name: str = "r", when: dict | None = None, **then) -> dict:
    return {"name": name, "when": when or {}, "then": then or {"tags": [name]}}


def fired(a: RulesAssessor, f: ThreadFacts, now: datetime = OPEN) -> list[str]:
    return a.assess(f, now).fired_rules


# -- conditions --------------------------------------------------------------------------

def test_platform_and_kind_conditions():
    a = assessor(rule("x-only", {"platform": "x"}), rule("ig-or-fb", {"platform":
                 ["instagram", "facebook"]}), rule("dms", {"kind": "dm"}),
                 rule("private", {"kind": "private"}), rule("public", {"kind": "public"}))
    assert fired(a, facts("hello")) == ["x-only", "public"]
    assert fired(a, facts("hi", platform="instagram", kind=Kind.DM)) == \
        ["ig-or-fb", "dms", "private"]
    assert fired(a, facts("hi", platform="email", kind=Kind.EMAIL)) == ["private"]


@pytest.mark.parametrize(("text", "hit"), [
    ("I want a refund for order 123", True),
    ("Refunds take forever here", True),
    ("was it refunded yet?", True),
    ("ＲＥＦＵＮＤ please", True),               # full-width Latin
    ("REFUND!!!", True),
    ("the ticket is nonrefundable", False),       # not a whole word
    ("can I get my money   back?", True),         # phrase across extra spaces
    ("money\nback guarantee?", True),             # and across a line break
    ("返金してください", True),                    # Japanese substring
    ("ﾍﾝｷﾝ", False),                              # katakana reading is another word
    ("where is my parcel", False),
])
def test_text_words_and_phrases(text, hit):
    a = assessor(rule("refund", {"text": ["refund", "money back", "返金"]}))
    assert (fired(a, facts(text)) == ["refund"]) is hit


def test_half_width_katakana_matches_full_width():
    a = assessor(rule("login", {"text": "ログイン"}), rule("login-hw", {"text": "ﾛｸﾞｲﾝ"}))
    assert fired(a, facts("ﾛｸﾞｲﾝできません")) == ["login", "login-hw"]
    assert fired(a, facts("ログインできません")) == ["login", "login-hw"]


def test_apostrophes_do_not_matter():
    a = assessor(rule("cant-login", {"text": "can't log in"}))
    assert fired(a, facts("I cant log in since yesterday")) == ["cant-login"]
    assert fired(a, facts("I can’t log in")) == ["cant-login"]


def test_text_all_needs_every_word():
    a = assessor(rule("order-refund", {"text_all": ["refund", "order"]}))
    assert fired(a, facts("refund my order please")) == ["order-refund"]
    assert fired(a, facts("refund please")) == []


def test_text_regex_is_case_and_width_insensitive():
    a = assessor(rule("order-no", {"text_regex": r"order\s*#?\d{5}"}),
                 rule("spam", {"text_regex": ["(crypto|forex) signals", "ﾌｫﾛﾜｰ|フォロワー購入"]}))
    assert fired(a, facts("ORDER #48213 never came")) == ["order-no"]
    assert fired(a, facts("ｏｒｄｅｒ ４８２１３ never came")) == ["order-no"]  # full-width
    assert fired(a, facts("Best CRYPTO SIGNALS here")) == ["spam"]
    assert fired(a, facts("ﾌｫﾛﾜｰ購入はこちら")) == ["spam"]


def test_text_conditions_read_only_new_customer_messages():
    old = msg("refund now", at=OPEN - timedelta(hours=2))
    a = assessor(rule("refund", {"text": "refund"}))
    assert fired(a, facts("thanks, all sorted", earlier=[old])) == []
    # Our own outgoing message says "refund": not the customer's words.
    ours = facts("We have issued your refund")
    ours.new_messages[0].direction = Direction.OUT
    assert fired(a, ours) == []


def test_re_assessment_reads_the_latest_customer_message():
    a = assessor(rule("refund", {"text": "refund"}))
    f = facts(earlier=[msg("I need a refund", at=OPEN - timedelta(hours=1))])
    assert f.new_messages == []
    assert a.explain(f, OPEN) == [("refund", ["tag +refund"])]


def test_language_condition_uses_tag_then_script():
    a = assessor(rule("ja", {"language": "ja"}), rule("en", {"language": "en"}))
    assert fired(a, facts("届いていません")) == ["ja"]
    assert fired(a, facts("where is it")) == ["en"]
    assert fired(a, facts("ok", language="ja-JP")) == ["ja"]


def test_followers_condition():
    a = assessor(rule("big", {"followers_gte": 10_000}))
    assert fired(a, facts("hi", author=Author(id="2", handle="c", followers=25_000))) == ["big"]
    assert fired(a, facts("hi", author=Author(id="2", handle="c", followers=9_999))) == []
    assert fired(a, facts("hi", author=Author(id="2", handle="c"))) == []  # unknown


def test_vip_condition_from_config_and_tag():
    a = assessor(rule("vip", {"vip": True}), rule("not-vip", {"vip": False}))
    assert fired(a, facts("hi", author=Author(id="9", handle="BigFan"))) == ["vip"]
    assert fired(a, facts("hi", tags=["vip"])) == ["vip"]
    assert fired(a, facts("hi")) == ["not-vip"]


def test_sentiment_conditions():
    scores = {"this is awful": -0.7, "ok": 0.0, "love it": 0.8}
    a = assessor(rule("neg", {"sentiment": "negative"}), rule("neu", {"sentiment": "neutral"}),
                 rule("pos", {"sentiment": "positive"}), rule("very-neg",
                 {"sentiment_below": -0.5}), rule("very-pos", {"sentiment_above": 0.5}),
                 sentiment_fn=lambda text, lang: scores[text])
    assert fired(a, facts("this is awful")) == ["neg", "very-neg"]
    assert fired(a, facts("ok")) == ["neu"]
    assert fired(a, facts("love it")) == ["pos", "very-pos"]


def test_one_angry_message_makes_the_change_negative():
    scores = {"hi": 0.0, "this is awful": -0.7, "love it": 0.8}
    a = assessor(rule("neg", {"sentiment": "negative"}), rule("pos", {"sentiment": "positive"}),
                 *ack_rules(), sentiment_fn=lambda text, lang: scores[text])
    d = a.assess(facts("love it", "this is awful", now=CLOSED), CLOSED)
    assert d.fired_rules == ["neg", "ack"]
    assert d.auto_reply is None and "auto-reply skipped: negative sentiment" in d.reasons


def test_sentiment_with_the_real_scorer():
    a = RulesAssessor(PlainAssessor(), parse_rules(Table({"rules": [
        rule("neg", {"sentiment": "negative"})]}, "", "c"), REPLIES), sla=SLA)
    assert a.sentiment_fn is not None
    assert fired(a, facts("This is the worst service ever, absolutely terrible")) == ["neg"]
    assert fired(a, facts("最悪です。本当にひどい対応")) == ["neg"]
    assert fired(a, facts("Thank you so much, wonderful coffee!")) == []


class FixedUrgency:
    def __init__(self, urgency: Urgency) -> None:
        self.urgency = urgency

    def assess(self, facts, now):
        return Decision(urgency=self.urgency)


def test_urgency_condition_is_at_least():
    a = assessor(rule("high+", {"urgency": "high"}), inner=FixedUrgency(Urgency.URGENT))
    assert fired(a, facts("down")) == ["high+"]
    a = assessor(rule("high+", {"urgency": "high"}), inner=FixedUrgency(Urgency.NORMAL))
    assert fired(a, facts("down")) == []


def test_urgency_condition_sees_earlier_rules():
    a = assessor(rule("legal", {"text": "lawyer"}, raise_urgency="crisis"),
                 rule("page-lead", {"urgency": "crisis"}, assign="lead"))
    assert fired(a, facts("my lawyer will call you")) == ["legal", "page-lead"]


def test_business_hours_condition():
    a = assessor(rule("in", {"business_hours": "inside"}),
                 rule("out", {"business_hours": "outside"}))
    assert fired(a, facts("hi", now=OPEN), OPEN) == ["in"]
    assert fired(a, facts("hi", now=CLOSED), CLOSED) == ["out"]
    saturday = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)  # 11:00 Saturday in Tokyo
    assert fired(a, facts("hi", now=saturday), saturday) == ["out"]


def test_contact_condition():
    a = assessor(rule("first", {"contact": "first"}), rule("repeat", {"contact": "repeat"}))
    assert fired(a, facts("hi")) == ["first"]
    assert fired(a, facts("hi", earlier_conversations=2)) == ["repeat"]
    assert fired(a, facts("hi again", reopened=True, is_new=False)) == ["repeat"]


def test_all_conditions_must_hold():
    a = assessor(rule("x-dm-refund", {"platform": "x", "kind": "dm", "text": "refund"}))
    assert fired(a, facts("refund", kind=Kind.DM)) == ["x-dm-refund"]
    assert fired(a, facts("refund", kind=Kind.MENTION)) == []
    assert fired(a, facts("hello", kind=Kind.DM)) == []


# -- actions -----------------------------------------------------------------------------

def test_tags_assign_view_actions():
    a = assessor(rule("billing", {"text": ["refund", "charged twice"]}, tags=["billing",
                 "money"], assign="aiko", view=["billing", "today"]),
                 rule("vipview", {"text": "refund"}, tags=["billing"], view="billing"))
    d = a.assess(facts("I was charged twice and want a refund"), OPEN)
    assert d.add_tags == ["billing", "money"]
    assert d.assign == "aiko"
    assert d.views == ["billing", "today"]
    assert d.fired_rules == ["billing", "vipview"]


def test_set_and_raise_urgency_with_due_times_recomputed():
    a = assessor(rule("praise", {"text": "love"}, urgency="low"),
                 rule("outage", {"text": ["down", "障害"]}, raise_urgency="urgent"))
    # A public X mention normally gets 4 h; urgent gets 1 h (built-in policies).
    d = a.assess(facts("is the app down?"), OPEN)
    assert d.urgency == Urgency.URGENT
    assert d.due_at == OPEN + timedelta(hours=1)
    assert d.warn_at == OPEN + timedelta(minutes=45)
    assert "rule 'outage': urgency raised to urgent" in d.reasons
    d = a.assess(facts("love the new roast"), OPEN)
    assert d.urgency == Urgency.LOW
    assert d.due_at == OPEN + timedelta(hours=4)


def test_raise_never_lowers():
    a = assessor(rule("r", raise_urgency="high"), inner=FixedUrgency(Urgency.CRISIS))
    assert a.assess(facts("x"), OPEN).urgency == Urgency.CRISIS


def test_done_and_snooze():
    a = assessor(rule("spam", {"text_regex": "crypto signals"}, done=True, tags=["spam"]),
                 rule("later", {"text": "next week"}, snooze="2h"))
    d = a.assess(facts("free crypto signals"), OPEN)
    assert d.status == Status.DONE and d.snooze_until is None and d.add_tags == ["spam"]
    d = a.assess(facts("let's talk next week"), OPEN)
    assert d.status == Status.SNOOZED and d.snooze_until == OPEN + timedelta(hours=2)


def test_rules_apply_in_order_later_overrides():
    a = assessor(rule("first", assign="aiko"), rule("second", assign="ben"))
    assert a.assess(facts("x"), OPEN).assign == "ben"


def test_stop_ends_the_list():
    a = assessor({"name": "spam", "when": {"text": "giveaway"}, "then": {"done": True},
                  "stop": True},
                 rule("everything", tags=["seen"]))
    d = a.assess(facts("crypto giveaway!!"), OPEN)
    assert d.fired_rules == ["spam"] and "seen" not in d.add_tags
    assert a.assess(facts("hello"), OPEN).fired_rules == ["everything"]


def test_inner_decision_is_kept():
    class Inner:
        def assess(self, facts, now):
            return Decision(urgency=Urgency.HIGH, score=30, reasons=["phrase: refund"],
                            add_tags=["billing"])
    d = assessor(rule("tag", tags=["billing", "x"]), inner=Inner()).assess(facts("a"), OPEN)
    assert d.reasons[0] == "phrase: refund" and d.score == 30
    assert d.add_tags == ["billing", "x"]


def test_explain_lists_rules_and_actions_without_side_effects():
    a = assessor(rule("refund", {"text": "refund"}, tags=["billing"], raise_urgency="high",
                      auto_reply="faq-hours"),
                 {"name": "spam", "when": {"text": "crypto"}, "then": {"done": True},
                  "stop": True}, sentiment_fn=neutral)
    f = facts("refund please")
    assert a.explain(f, OPEN) == [("refund", ["tag +billing", "raise urgency to at least "
                                              "high", "auto-reply 'faq-hours'"])]
    assert a.explain(facts("crypto"), OPEN) == [("spam", ["mark done", "stop"])]
    assert f.tags == []


def test_explain_a_stored_conversation_as_if_its_messages_were_new():
    a = assessor(*ack_rules(), sentiment_fn=neutral)
    ours = msg("Thanks, all done", at=CLOSED - timedelta(hours=3), direction=Direction.OUT)
    stored = facts(now=CLOSED, earlier=[msg("refund?", at=CLOSED - timedelta(hours=4)), ours,
                                        msg("one more question", at=CLOSED)])
    assert a.explain(stored, CLOSED) == [
        ("ack", ["auto-reply 'out-of-hours' skipped: no new customer message"])]
    assert a.explain(stored, CLOSED, as_if_new=True) == [("ack", ["auto-reply 'out-of-hours'"])]
    assert stored.new_messages == []


# -- auto-replies and guards -------------------------------------------------------------

def ack_rules(**then) -> list[dict]:
    return [{"name": "ack", "when": {"business_hours": "outside"},
             "then": {"auto_reply": "out-of-hours", **then}}]


def neutral(text, lang):
    return 0.0


def test_out_of_hours_ack_is_rendered_with_variant_and_marked():
    a = assessor(*ack_rules(), sentiment_fn=neutral)
    d = a.assess(facts("where is my order?", now=CLOSED), CLOSED)
    assert d.auto_reply.body == "Closed now @alice, back at 9:00!"
    assert d.auto_reply.saved_reply == "out-of-hours"
    assert d.auto_reply.private is False
    dm = a.assess(facts("hi", platform="instagram", kind=Kind.DM, now=CLOSED), CLOSED)
    assert dm.auto_reply.body == "Hi Alice, we're closed; back at 9:00."
    assert dm.auto_reply.private is True


def test_agent_name_in_an_automated_reply_is_the_brand():
    a = assessor(rule("faq", {"text": "shipping"}, auto_reply="faq-shipping"),
                 sentiment_fn=neutral)
    d = a.assess(facts("how long is shipping?", platform="mastodon"), OPEN)
    assert d.auto_reply.body == "Hi Alice, orders ship in 2 days. - Example Coffee"


def test_ack_once_per_off_hours_period():
    a = assessor(*ack_rules(), sentiment_fn=neutral)
    first_ack = CLOSED
    later_same_night = CLOSED + timedelta(hours=3)
    d = a.assess(facts("hello?", now=later_same_night, last_auto_reply_at=first_ack),
                 later_same_night)
    assert d.auto_reply is None
    assert "auto-reply skipped: already acknowledged in this off-hours period" in d.reasons
    # Next evening (the business was open in between): a new period, a new ack, even
    # though less than 24 h passed.
    next_evening = CLOSED + timedelta(hours=20)
    d = a.assess(facts("hello again", now=next_evening, last_auto_reply_at=first_ack),
                 next_evening)
    assert d.auto_reply is not None


def test_ack_over_a_weekend_is_one_period():
    a = assessor(*ack_rules(), sentiment_fn=neutral)
    friday_night = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)   # 21:00 Friday JST
    sunday = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)          # 12:00 Sunday JST
    d = a.assess(facts("anyone?", now=sunday, last_auto_reply_at=friday_night), sunday)
    assert d.auto_reply is None


def test_at_most_once_every_n_hours():
    a = assessor(rule("faq", {"text": "shipping"}, auto_reply="faq-shipping",
                      auto_reply_every="6h"), sentiment_fn=neutral)
    d = a.assess(facts("shipping?", last_auto_reply_at=OPEN - timedelta(hours=2)), OPEN)
    assert d.auto_reply is None
    assert "auto-reply skipped: auto-replied 2h ago (at most once every 6h)" in d.reasons
    d = a.assess(facts("shipping?", last_auto_reply_at=OPEN - timedelta(hours=7)), OPEN)
    assert d.auto_reply is not None


def test_default_every_is_24h():
    a = assessor(rule("faq", {"text": "shipping"}, auto_reply="faq-shipping"),
                 sentiment_fn=neutral)
    assert a.assess(facts("shipping?", last_auto_reply_at=OPEN - timedelta(hours=23)),
                    OPEN).auto_reply is None
    assert a.assess(facts("shipping?", last_auto_reply_at=OPEN - timedelta(hours=25)),
                    OPEN).auto_reply is not None


@pytest.mark.parametrize(("inner", "reason"), [
    (FixedUrgency(Urgency.CRISIS), "urgency is crisis"),
    (FixedUrgency(Urgency.URGENT), "urgency is urgent"),
])
def test_never_auto_reply_to_crisis_or_urgent(inner, reason):
    a = assessor(*ack_rules(), inner=inner, sentiment_fn=neutral)
    d = a.assess(facts("our data leaked", now=CLOSED), CLOSED)
    assert d.auto_reply is None
    assert f"auto-reply skipped: {reason}" in d.reasons


def test_urgency_raised_by_a_later_rule_blocks_the_reply():
    a = assessor(*ack_rules(), rule("outage", {"text": "障害"}, raise_urgency="urgent"),
                 sentiment_fn=neutral)
    d = a.assess(facts("障害ですか？", now=CLOSED), CLOSED)
    assert d.auto_reply is None and "auto-reply skipped: urgency is urgent" in d.reasons
    assert a.explain(facts("障害ですか？", now=CLOSED), CLOSED)[0] == (
        "ack", ["auto-reply 'out-of-hours' skipped: urgency is urgent"])


def test_never_auto_reply_to_negative_sentiment_real_scorer():
    a = RulesAssessor(PlainAssessor(), parse_rules(Table({"rules": ack_rules()}, "", "c"),
                                                   REPLIES), sla=SLA)
    d = a.assess(facts("Worst company ever. Absolutely furious, never again.", now=CLOSED),
                 CLOSED)
    assert d.auto_reply is None and "auto-reply skipped: negative sentiment" in d.reasons
    d = a.assess(facts("本当に最悪。二度と使わない", now=CLOSED), CLOSED)
    assert d.auto_reply is None and "auto-reply skipped: negative sentiment" in d.reasons
    d = a.assess(facts("Hi! Quick question about beans", now=CLOSED), CLOSED)
    assert d.auto_reply is not None


def test_never_auto_reply_to_vips():
    a = assessor(*ack_rules(), sentiment_fn=neutral)
    d = a.assess(facts("hi", author=Author(id="5", handle="bigfan"), now=CLOSED), CLOSED)
    assert d.auto_reply is None and "auto-reply skipped: VIP" in d.reasons


def test_never_auto_reply_once_a_person_answered():
    a = assessor(*ack_rules(), sentiment_fn=neutral)
    d = a.assess(facts("one more thing", now=CLOSED,
                       last_human_reply_at=CLOSED - timedelta(days=3)), CLOSED)
    assert d.auto_reply is None
    assert "auto-reply skipped: a person has answered this conversation" in d.reasons


def test_no_auto_reply_without_a_new_customer_message():
    a = assessor(*ack_rules(), sentiment_fn=neutral)
    f = facts(now=CLOSED, earlier=[msg("hi", at=CLOSED - timedelta(minutes=5))])
    d = a.assess(f, CLOSED)
    assert d.auto_reply is None and "auto-reply skipped: no new customer message" in d.reasons
    # Our own automated message arriving back through the source is not a customer message.
    echo = facts("Closed now", now=CLOSED)
    echo.new_messages[0].automated = True
    assert a.assess(echo, CLOSED).auto_reply is None


def test_no_auto_reply_to_what_a_rule_closed():
    a = assessor({"name": "spam", "when": {"text": "giveaway"}, "then": {"done": True}},
                 *ack_rules(), sentiment_fn=neutral)
    d = a.assess(facts("giveaway!!", now=CLOSED), CLOSED)
    assert d.status == Status.DONE and d.auto_reply is None


def test_without_sentiment_analysis_auto_replies_are_held_back():
    a = RulesAssessor(PlainAssessor(), parse_rules(Table({"rules": ack_rules()}, "", "c"),
                                                   REPLIES), sla=SLA, load_sentiment=False)
    d = a.assess(facts("hi", now=CLOSED), CLOSED)
    assert d.auto_reply is None
    assert "auto-reply skipped: sentiment cannot be checked" in d.reasons


def test_only_one_auto_reply_per_change():
    a = assessor(rule("faq", {"text": "shipping"}, auto_reply="faq-shipping"),
                 rule("hours", {"text": "open"}, auto_reply="faq-hours"), sentiment_fn=neutral)
    d = a.assess(facts("are you open? and how long is shipping?"), OPEN)
    assert d.auto_reply.saved_reply == "faq-shipping"
    assert "auto-reply skipped: another auto-reply ('faq-shipping') was chosen" in d.reasons


def test_a_blocked_rule_lets_a_later_one_reply():
    a = assessor({"name": "ack", "when": {"business_hours": "outside", "text": "hours"},
                  "then": {"auto_reply": "out-of-hours"}},
                 rule("faq", {"text": "hours"}, auto_reply="faq-hours", auto_reply_every="1h"),
                 sentiment_fn=neutral)
    d = a.assess(facts("what are your hours", now=CLOSED + timedelta(hours=2),
                       last_auto_reply_at=CLOSED), CLOSED + timedelta(hours=2))
    assert d.auto_reply.saved_reply == "faq-hours"


# -- wiring --------------------------------------------------------------------------------

def test_build_assessor_combines_triage_and_rules(tmp_path):
    from replydeck.config.loader import load_config
    path = tmp_path / "config.toml"
    path.write_text("""
[agent]
brand = "Example Coffee"

[business_hours]
timezone = "Asia/Tokyo"
monday = ["09:00-18:00"]

[[replies]]
name = "ack"
body = "Thanks {customer.name|there}, {agent.name} will answer soon."

[[rules]]
name = "ack"
when = { business_hours = "outside" }
then = { auto_reply = "ack", tags = ["after-hours"] }
""", encoding="utf-8")
    config = load_config(path, data_dir=tmp_path)
    a = build_assessor(config)
    assert isinstance(a, RulesAssessor)
    assert type(a.inner).__name__ in ("TriageAssessor", "PlainAssessor")
    d = a.assess(facts("quick question about beans", now=CLOSED), CLOSED)
    assert d.add_tags[-1] == "after-hours"
    assert d.auto_reply.body == "Thanks Alice, Example Coffee will answer soon."
    # Triage sees "lawsuit" as a legal threat: never answered by a machine.
    d = a.assess(facts("I'm filing a lawsuit against you", now=CLOSED), CLOSED)
    assert d.auto_reply is None


def test_hostile_text_and_names_stay_inert(tmp_path):
    import json
    from pathlib import Path
    corpus = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "hostile-text.jsonl"
    if not corpus.exists():
        pytest.skip("shared corpus not beside the project")
    a = assessor(rule("any", {"text_regex": ".", "text": ["bold", "ログイン"]}, tags=["t"]),
                 *ack_rules(), sentiment_fn=neutral)
    for line in corpus.read_text("utf-8").splitlines():
        text = json.loads(line)["text"]
        # As ingest stores it: every name from a platform goes through sanitize_line.
        who = Author(id="h", handle="h", name=sanitize_line(text[:200]))
        d = a.assess(facts(text, author=who, now=CLOSED), CLOSED)
        # The name is pasted into the reply as it is: no markup or template is expanded.
        assert d.auto_reply is None or d.auto_reply.body == (
            "Closed now @h, back at 9:00!")
        dm = a.assess(facts(text, author=who, kind=Kind.DM, platform="instagram", now=CLOSED),
                      CLOSED)
        if dm.auto_reply is not None:
            assert dm.auto_reply.body == \
                f"Hi {who.name.strip() or 'there'}, we're closed; back at 9:00."
