"""[sla], [business_hours], [notifications]: parsed from real TOML; errors name the key."""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.sla import from_mapping, parse
from replydeck.config.table import Table
from replydeck.inbox.model import Urgency

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FULL = """
[sla]
business_hours = true
warn_at = 0.8

[[sla.policies]]
name = "x-dm-fast"
platform = "x"
kind = "dm"
first_response = "30m"
next_response = "1h30m"

[sla.triage]
levels = { crisis = 90, urgent = 50, high = 25, low = -8 }
vip = { x = ["@BigCustomer", "acme_ceo"] }
reach = [{ followers = 5000, weight = 7 }]

[sla.triage.weights]
negative_sentiment = 30
engagement = [{ at = 50, weight = 6 }]

[sla.triage.phrases.legal]
weight = 60
add = ["small claims court"]

[sla.triage.phrases.shipping]
label = "delivery problem"
weight = 15
phrases = ["never arrived", "届かない"]

[business_hours]
timezone = "Asia/Tokyo"
monday = ["09:00-12:00", "13:00-18:00"]
friday = "09:00-17:00"
saturday = ["22:00-06:00"]
holidays = ["2026-12-31", 2027-01-01]

[notifications]
bell = false
desktop = true
desktop_style = "osc777"
on_event = ["notify-hook", "--json"]
hook_timeout = "5s"
events = ["breach", "reply_failed"]
"""


def load(text: str) -> Any:
    return parse(Table(tomllib.loads(text), "", "replydeck.toml"))


def test_full_config_is_read() -> None:
    cfg = load(FULL)
    assert cfg.warn_fraction == 0.8
    assert cfg.policies[0].name == "x-dm-fast"
    assert cfg.policies[0].first_response == timedelta(minutes=30)
    assert cfg.policies[0].next_response == timedelta(minutes=90)
    assert all(p.business_hours for p in cfg.policies)
    assert [p.name for p in cfg.policies[1:]] == [
        "urgent-or-crisis", "x-public-complaint", "private", "public"]

    cal = cfg.calendar
    assert cal.timezone_name == "Asia/Tokyo"
    assert [str(w) for w in cal.windows[0]] == ["09:00-12:00", "13:00-18:00"]
    assert [str(w) for w in cal.windows[4]] == ["09:00-17:00"]
    assert cal.windows[1] == ()
    assert cal.holidays == {date(2026, 12, 31), date(2027, 1, 1)}
    # Saturday 22:00 JST to Sunday 06:00 JST is open.
    assert cal.is_open(datetime(2026, 11, 21, 14, 0, tzinfo=timezone.utc))  # Sat 23:00 JST

    tri = cfg.triage
    assert tri.level_for(89.9) == Urgency.URGENT and tri.level_for(90) == Urgency.CRISIS
    assert tri.level_for(-8) == Urgency.LOW
    assert tri.is_vip("x", "@bigcustomer") and tri.is_vip("x", "ACME_CEO")
    assert not tri.is_vip("mastodon", "bigcustomer")
    assert tri.negative_sentiment == 30
    assert [(s.followers, s.weight) for s in tri.reach] == [(5000, 7)]
    assert [(s.at, s.weight) for s in tri.engagement] == [(50, 6)]
    groups = {g.name: g for g in tri.phrases}
    assert groups["legal"].weight == 60
    assert "small claims court" in groups["legal"].phrases
    assert "lawsuit" in groups["legal"].phrases  # add extends, it does not replace
    assert groups["shipping"].phrases == ("never arrived", "届かない")
    assert groups["shipping"].label == "delivery problem"

    n = cfg.notifications
    assert (n.bell, n.desktop, n.desktop_style) == (False, True, "osc777")
    assert n.on_event == ["notify-hook", "--json"]
    assert n.hook_timeout == timedelta(seconds=5)
    assert n.events == {"breach", "reply_failed"}


def test_empty_config_gives_the_defaults() -> None:
    cfg = load("")
    assert [p.name for p in cfg.policies] == [
        "urgent-or-crisis", "x-public-complaint", "private", "public"]
    assert cfg.warn_fraction == 0.75
    assert cfg.max_target == timedelta(hours=24)
    assert cfg.notifications.bell and not cfg.notifications.desktop
    assert cfg.notifications.on_event is None
    # Monday-Friday 09:00-17:00 UTC when [business_hours] is absent.
    assert [str(w) for w in cfg.calendar.windows[0]] == ["09:00-17:00"]
    assert cfg.calendar.windows[5] == ()


@pytest.mark.parametrize(("data", "message"), [
    ({"business_hours": {"monday": ["09:00-17:00", "9-5"]}},
     'business_hours.monday[1]: expected "HH:MM-HH:MM", found string \'9-5\''),
    ({"business_hours": {"monday": ["09:00-25:00"]}},
     'business_hours.monday[0]: expected "HH:MM-HH:MM" with real times (00:00 to 24:00), '
     "found string '09:00-25:00'"),
    ({"business_hours": {"monday": ["09:00-09:00"]}},
     'business_hours.monday[0]: expected "HH:MM-HH:MM" with different start and end '
     '(use "00:00-24:00" for the whole day), found string \'09:00-09:00\''),
    ({"business_hours": {"tuesday": 5}},
     'business_hours.tuesday: expected an array of "HH:MM-HH:MM" windows, found integer 5'),
    ({"business_hours": {"timezone": "Mars/Olympus"}},
     'business_hours.timezone: expected an IANA time zone such as "Europe/Berlin", '
     "found string 'Mars/Olympus'"),
    ({"business_hours": {"holidays": ["25.12.2026"]}},
     'business_hours.holidays[0]: expected a date like "2026-12-25", '
     "found string '25.12.2026'"),
    ({"business_hours": {"monday": []}},
     'business_hours: no open hours on any weekday; give at least one window such as '
     'monday = ["09:00-17:00"]'),
    ({"business_hours": {"mondays": ["09:00-17:00"]}},
     "business_hours.mondays: unknown key (known keys here: friday, holidays, monday, "
     "saturday, sunday, thursday, timezone, tuesday, wednesday)"),
    ({"sla": {"policies": [{"first_response": "soon"}]}},
     'sla.policies[0].first_response: expected a duration like "30m", "1h" or "1h30m", '
     "found string 'soon'"),
    ({"sla": {"policies": [{"first_response": 60}]}},
     'sla.policies[0].first_response: expected a duration like "30m", "1h" or "1h30m", '
     "found integer 60"),
    ({"sla": {"policies": [{"name": "slow", "first_response": "48h"}]}},
     "sla.policies[0].first_response: expected a duration no longer than sla.max (24h), "
     "found 48h"),
    ({"sla": {"policies": [{"first_response": "1h"}, {"kind": "tweet", "first_response": "1h"}]}},
     "sla.policies[1].kind: expected one of 'public', 'private', 'mention', 'comment', 'dm', "
     "'reply', 'email', 'review' (or an array of them), found string 'tweet'"),
    ({"sla": {"policies": [{"urgency": ["urgent", "severe"], "first_response": "1h"}]}},
     "sla.policies[0].urgency: expected one of 'crisis', 'urgent', 'high', 'normal', 'low' "
     "(or an array of them), found string 'severe'"),
    ({"sla": {"policies": [{"name": "x"}]}},
     'sla.policies[0].first_response: missing; expected a duration like "30m", "1h" or "1h30m"'),
    ({"sla": {"policies": [{"first_response": "1h", "buisness_hours": True}]}},
     "sla.policies[0].buisness_hours: unknown key (known keys here: business_hours, "
     "first_response, kind, name, next_response, platform, tags, urgency)"),
    ({"sla": {"warn_at": 75}},
     "sla.warn_at: expected a fraction between 0 and 1 such as 0.75, found integer 75"),
    ({"sla": {"defaults": False}},
     "sla.defaults: is false but no [[sla.policies]] are given; add at least one policy"),
    ({"sla": {"triage": {"levels": {"crisis": 10}}}},
     "sla.triage.levels: expected crisis > urgent > high > low, found crisis = 10, "
     "urgent = 45, high = 20, low = -5"),
    ({"sla": {"triage": {"weights": {"vip": "lots"}}}},
     "sla.triage.weights.vip: expected a number, found string 'lots'"),
    ({"sla": {"triage": {"reach": [{"followers": "many", "weight": 3}]}}},
     "sla.triage.reach[0].followers: expected an integer ≥ 0, found string 'many'"),
    ({"sla": {"triage": {"phrases": {"shipping": {"weight": 10}}}}},
     "sla.triage.phrases.shipping: a new phrase group needs phrases = [...] (built-in groups: "
     "legal, security, backlash, outage, billing, churn)"),
    ({"sla": {"triage": {"vip": {"x": "@ceo"}}}},
     "sla.triage.vip.x: expected an array of strings, found string '@ceo'"),
    ({"notifications": {"desktop": "yes"}},
     'notifications.desktop: expected true, false, "osc9" or "osc777", found string \'yes\''),
    ({"notifications": {"on_event": 5}},
     "notifications.on_event: expected a command string or a non-empty array of strings, "
     "found integer 5"),
    ({"notifications": {"events": ["breach", "fire"]}},
     "notifications.events: expected an array of 'new_urgent', 'sla_warning', 'breach', "
     "'reply_failed', found string 'fire'"),
    ({"notifications": {"hook_timeout": "0s"}},
     "notifications.hook_timeout: expected a duration longer than zero, found string '0s'"),
])
def test_config_errors_name_the_key_and_what_was_found(data: dict[str, Any],
                                                       message: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_mapping(data, "replydeck.toml")
    assert str(err.value) == f"replydeck.toml: {message}"


def test_toml_date_holidays_and_24_00_windows() -> None:
    cfg = load('[business_hours]\nsunday = ["20:00-24:00"]\nholidays = [2026-11-29]\n')
    sunday = datetime(2026, 11, 22, 21, 0, tzinfo=timezone.utc)
    assert cfg.calendar.is_open(sunday)
    assert not cfg.calendar.is_open(sunday + timedelta(days=7))  # the holiday
    # Three hours end exactly at 24:00; a fourth waits two weeks (the next Sunday is a holiday).
    assert cfg.calendar.add(sunday, timedelta(hours=3)) == sunday + timedelta(hours=3)
    assert cfg.calendar.add(sunday, timedelta(hours=4)) == sunday + timedelta(days=14)


def test_documented_toml_shape_parses() -> None:
    """The example in config/sla.py's docstring (copied into the README) stays valid."""
    import textwrap

    from replydeck.config import sla as sla_config

    doc = sla_config.__doc__ or ""
    example = textwrap.dedent(doc.split("::", 1)[1].split('\n"""', 1)[0])
    cfg = load(example)
    assert cfg.policies[0].name == "vip-dm"
    assert cfg.policies[0].first_response == timedelta(minutes=30)
    assert cfg.calendar.timezone_name == "Europe/Berlin"
    assert cfg.triage.is_vip("mastodon", "@CEO@example.social")
    assert cfg.notifications.events == {"new_urgent", "sla_warning", "breach", "reply_failed"}


def test_desktop_can_name_its_sequence() -> None:
    n = from_mapping({"notifications": {"desktop": "osc777"}}).notifications
    assert (n.desktop, n.desktop_style) == (True, "osc777")
