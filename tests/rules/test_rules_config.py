"""[[rules]] compile at load; every mistake is a ConfigError naming the rule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.replies import parse as parse_replies
from replydeck.config.rules import parse
from replydeck.config.table import Table
from replydeck.inbox.model import Urgency

REPLIES = parse_replies(Table({"replies": [
    {"name": "faq-hours", "body": "We're open 9-18."},
    {"name": "out-of-hours", "body": "We're closed now."},
]}, "", "c.toml"), ".")


def compile_rules(*rules: dict):
    return parse(Table({"rules": list(rules)}, "", "c.toml"), REPLIES)


def error(*rules: dict) -> str:
    with pytest.raises(ConfigError) as err:
        compile_rules(*rules)
    return str(err.value)


def test_full_rule_compiles():
    [rule] = compile_rules({
        "name": "refunds", "stop": True,
        "when": {"platform": ["x", "instagram"], "kind": "public", "text": ["refund", "返金"],
                 "text_all": ["order"], "text_regex": r"#\d{5}", "language": ["en", "ja-JP"],
                 "followers_gte": 1000, "vip": False, "sentiment": "negative",
                 "urgency": "high", "business_hours": "inside", "contact": "repeat"},
        "then": {"tags": ["billing"], "raise_urgency": "urgent", "assign": "aiko",
                 "snooze": "2h", "auto_reply": "faq-hours", "auto_reply_every": "12h",
                 "view": "billing"},
    })
    assert rule.name == "refunds" and rule.stop and rule.index == 0
    assert rule.label == 'rules[0] (name "refunds")'
    assert rule.when.platforms == {"x", "instagram"}
    assert rule.when.languages == {"en", "ja"}
    assert rule.when.urgency == Urgency.HIGH
    assert rule.then.snooze == timedelta(hours=2)
    assert rule.then.auto_reply.name == "faq-hours"
    assert rule.then.auto_reply_every == timedelta(hours=12)
    assert rule.then.views == ("billing",)


def test_auto_reply_every_defaults():
    day, night = compile_rules(
        {"name": "faq", "then": {"auto_reply": "faq-hours"}},
        {"name": "ack", "when": {"business_hours": "outside"},
         "then": {"auto_reply": "out-of-hours"}},
    )
    assert day.then.auto_reply_every == timedelta(hours=24)
    assert night.then.auto_reply_every is None  # once per off-hours period


def test_bad_regex_names_the_rule():
    assert error({"name": "ok", "then": {"tags": ["a"]}},
                 {"name": "ok2", "then": {"tags": ["a"]}},
                 {"name": "spam", "when": {"text_regex": "(crypto|forex"},
                  "then": {"done": True}}) == (
        'c.toml: rules[2] (name "spam").when.text_regex: invalid regular expression '
        "'(crypto|forex': missing ), unterminated subpattern at position 0")


def test_unknown_condition_names_the_rule():
    assert error({"name": "vip", "when": {"follower_gte": 5}, "then": {"tags": ["a"]}}) == (
        'c.toml: rules[0] (name "vip").when.follower_gte: unknown key (known keys here: '
        "business_hours, contact, followers_gte, kind, language, platform, sentiment, "
        "sentiment_above, sentiment_below, text, text_all, text_regex, urgency, vip)")


def test_unknown_action_names_the_rule():
    assert error({"name": "r", "then": {"tag": ["a"]}}) == (
        'c.toml: rules[0] (name "r").then.tag: unknown key (known keys here: assign, '
        "auto_reply, auto_reply_every, done, raise_urgency, snooze, tags, urgency, view)")


def test_unknown_saved_reply():
    assert error({"name": "faq", "then": {"auto_reply": "faq-hour"}}) == (
        'c.toml: rules[0] (name "faq").then.auto_reply: no saved reply named \'faq-hour\' '
        "(saved replies: 'faq-hours', 'out-of-hours')")


@pytest.mark.parametrize(("rule", "message"), [
    ({"then": {"done": True}}, 'c.toml: rules[0].name: missing; expected a string'),
    ({"name": "r"}, 'c.toml: rules[0] (name "r").then: missing; expected a table of '
     "actions ([rules.then])"),
    ({"name": "r", "then": {}}, 'c.toml: rules[0] (name "r").then: has no action (tags, '
     "urgency, raise_urgency, assign, snooze, done, auto_reply or view)"),
    ({"name": "r", "when": {"kind": "tweet"}, "then": {"done": True}},
     'c.toml: rules[0] (name "r").when.kind: expected one of \'public\', \'private\', '
     "'mention', 'comment', 'dm', 'reply', 'email', 'review' (or an array of them), found "
     "string 'tweet'"),
    ({"name": "r", "when": {"sentiment": "angry"}, "then": {"done": True}},
     'c.toml: rules[0] (name "r").when.sentiment: expected one of \'negative\', '
     "'neutral', 'positive', found string 'angry'"),
    ({"name": "r", "when": {"sentiment_below": 3}, "then": {"done": True}},
     'c.toml: rules[0] (name "r").when.sentiment_below: expected a number from -1 to 1, '
     "found integer 3"),
    ({"name": "r", "when": {"urgency": "severe"}, "then": {"done": True}},
     'c.toml: rules[0] (name "r").when.urgency: expected one of \'crisis\', \'urgent\', '
     "'high', 'normal', 'low', found string 'severe'"),
    ({"name": "r", "when": {"business_hours": "after"}, "then": {"done": True}},
     'c.toml: rules[0] (name "r").when.business_hours: expected one of \'inside\', '
     "'outside', found string 'after'"),
    ({"name": "r", "when": {"contact": "new"}, "then": {"done": True}},
     'c.toml: rules[0] (name "r").when.contact: expected one of \'first\', \'repeat\', '
     "found string 'new'"),
    ({"name": "r", "when": {"followers_gte": -1}, "then": {"done": True}},
     'c.toml: rules[0] (name "r").when.followers_gte: expected an integer ≥ 0, found '
     "integer -1"),
    ({"name": "r", "when": {"text": []}, "then": {"done": True}},
     'c.toml: rules[0] (name "r").when.text: expected a string or an array of strings, '
     "found array of 0 items"),
    ({"name": "r", "then": {"snooze": "soon"}},
     'c.toml: rules[0] (name "r").then.snooze: expected a duration like "30m", "2h" or '
     "\"1d\", found string 'soon'"),
    ({"name": "r", "then": {"snooze": "2h", "done": True}},
     'c.toml: rules[0] (name "r").then.snooze: a rule cannot both snooze and mark done'),
    ({"name": "r", "then": {"urgency": "low", "raise_urgency": "high"}},
     'c.toml: rules[0] (name "r").then.raise_urgency: give either urgency (set) or '
     "raise_urgency, not both"),
    ({"name": "r", "then": {"tags": ["a"], "auto_reply_every": "1h"}},
     'c.toml: rules[0] (name "r").then.auto_reply_every: only applies with auto_reply'),
    ({"name": "r", "then": {"assign": " "}},
     'c.toml: rules[0] (name "r").then.assign: expected an agent name, found an empty '
     "string"),
    ({"name": "r", "then": {"done": True}, "stop": "yes"},
     'c.toml: rules[0] (name "r").stop: expected true or false, found string \'yes\''),
    ({"name": "r", "then": {"done": True}, "enabled": False},
     'c.toml: rules[0] (name "r").enabled: unknown key (known keys here: name, stop, then, '
     "when)"),
])
def test_rule_errors(rule, message):
    assert error(rule) == message


def test_duplicate_rule_names():
    assert error({"name": "r", "then": {"done": True}},
                 {"name": "r", "then": {"done": True}}) == (
        "c.toml: rules[1].name: another rule is already named 'r'")


def test_no_rules():
    assert parse(Table({}, "", "c.toml"), REPLIES) == []


def test_rules_through_the_config_loader(tmp_path):
    from replydeck.config.loader import load_config
    path = tmp_path / "config.toml"
    path.write_text("""
[agent]
name = "Aiko"
brand = "Example Coffee"

[[replies]]
name = "faq"
body = "Hi {customer.name|there}!"

[[rules]]
name = "hello"
when = { text = ["hello"] }
then = { auto_reply = "faq" }
""", encoding="utf-8")
    config = load_config(path, data_dir=tmp_path)
    assert [r.name for r in config.rules] == ["hello"]
    assert config.rules[0].then.auto_reply is config.replies.get("faq")
