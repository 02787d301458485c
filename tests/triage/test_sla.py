"""Response-time targets: the defaults customers expect, policies, business hours."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from replydeck.config.sla import SlaConfig, from_mapping
from replydeck.inbox.model import Kind, Urgency
from replydeck.inbox.sla import (
    due_times,
    format_remaining,
    is_breached,
    remaining,
    target_for,
)

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday
H = timedelta(hours=1)


@pytest.mark.parametrize(("platform", "kind", "urgency", "tags", "expected", "policy"), [
    ("x", Kind.MENTION, Urgency.NORMAL, ["complaint"], H, "x-public-complaint"),
    ("x", Kind.REPLY, Urgency.HIGH, ["complaint", "billing"], H, "x-public-complaint"),
    ("x", Kind.MENTION, Urgency.NORMAL, [], 4 * H, "public"),
    ("mastodon", Kind.MENTION, Urgency.NORMAL, ["complaint"], 4 * H, "public"),
    ("x", Kind.DM, Urgency.NORMAL, [], H, "private"),
    ("instagram", Kind.DM, Urgency.LOW, [], H, "private"),
    ("email", Kind.EMAIL, Urgency.NORMAL, [], H, "private"),
    ("facebook", Kind.COMMENT, Urgency.URGENT, [], H, "urgent-or-crisis"),
    ("bluesky", Kind.MENTION, Urgency.CRISIS, [], H, "urgent-or-crisis"),
    ("bluesky", Kind.MENTION, Urgency.LOW, [], 4 * H, "public"),
    ("facebook", Kind.REVIEW, Urgency.HIGH, [], 4 * H, "public"),
])
def test_default_targets(platform: str, kind: Kind, urgency: Urgency, tags: list[str],
                         expected: timedelta, policy: str) -> None:
    cfg = SlaConfig()
    for answered in (False, True):
        target = target_for(cfg, platform=platform, kind=kind, urgency=urgency,
                            answered_before=answered, tags=tags)
        assert target.duration == expected
        assert target.policy is not None and target.policy.name == policy
        assert not target.business_hours
    assert target.reason.startswith("next response ")


def test_due_and_warning_at_75_percent() -> None:
    due, warn = due_times(SlaConfig(), waiting_since=T0, platform="x", kind=Kind.DM,
                          urgency=Urgency.NORMAL, answered_before=False)
    assert due == T0 + H
    assert warn == T0 + timedelta(minutes=45)


def test_nothing_waiting_means_nothing_due() -> None:
    assert due_times(SlaConfig(), waiting_since=None, platform="x", kind=Kind.DM,
                     urgency=Urgency.URGENT, answered_before=True) == (None, None)


def test_reason_names_the_policy_and_target() -> None:
    t = target_for(SlaConfig(), platform="x", kind=Kind.MENTION, urgency=Urgency.NORMAL,
                   answered_before=False, tags=["complaint"])
    assert t.reason == ("first response 1h (policy 'x-public-complaint': x, public, "
                        "tag complaint)")


def test_user_policy_comes_before_the_defaults_and_next_response_differs() -> None:
    cfg = from_mapping({"sla": {"policies": [
        {"name": "vip", "tags": ["vip"], "first_response": "15m", "next_response": "30m"},
    ]}})
    first = target_for(cfg, platform="x", kind=Kind.DM, urgency=Urgency.NORMAL,
                       answered_before=False, tags=["vip"])
    nxt = target_for(cfg, platform="x", kind=Kind.DM, urgency=Urgency.NORMAL,
                     answered_before=True, tags=["vip"])
    assert (first.duration, nxt.duration) == (timedelta(minutes=15), timedelta(minutes=30))
    other = target_for(cfg, platform="x", kind=Kind.DM, urgency=Urgency.NORMAL,
                       answered_before=False)
    assert other.policy is not None and other.policy.name == "private"


def test_max_caps_the_builtin_targets() -> None:
    cfg = from_mapping({"sla": {"max": "2h"}})
    t = target_for(cfg, platform="mastodon", kind=Kind.MENTION, urgency=Urgency.LOW,
                   answered_before=False)
    assert t.duration == 2 * H


def test_no_matching_policy_falls_back_to_max() -> None:
    cfg = from_mapping({"sla": {"defaults": False, "policies": [
        {"platform": "x", "first_response": "1h"}]}})
    t = target_for(cfg, platform="email", kind=Kind.EMAIL, urgency=Urgency.NORMAL,
                   answered_before=False)
    assert t.duration == 24 * H and t.policy is None
    assert "no policy matched" in t.reason


def test_business_hours_policy_friday_afternoon_is_due_monday() -> None:
    cfg = from_mapping({
        "sla": {"policies": [{"name": "office", "kind": "public", "first_response": "30m",
                              "business_hours": True}]},
        "business_hours": {"timezone": "Europe/Berlin",
                           **{d: ["09:00-17:00"] for d in
                              ("monday", "tuesday", "wednesday", "thursday", "friday")}},
    })
    friday = datetime(2026, 11, 20, 16, 45, tzinfo=BERLIN)
    due, warn = due_times(cfg, waiting_since=friday, platform="x", kind=Kind.MENTION,
                          urgency=Urgency.NORMAL, answered_before=False)
    assert due == datetime(2026, 11, 23, 9, 15, tzinfo=BERLIN)
    # 75 % of 30 min = 22.5 min: 15 on Friday, 7.5 on Monday.
    assert warn == datetime(2026, 11, 23, 9, 7, 30, tzinfo=BERLIN)
    # DMs still use the around-the-clock default.
    due_dm, _ = due_times(cfg, waiting_since=friday, platform="x", kind=Kind.DM,
                          urgency=Urgency.NORMAL, answered_before=False)
    assert due_dm == friday + H


def test_sla_business_hours_default_applies_to_builtin_policies() -> None:
    cfg = from_mapping({"sla": {"business_hours": True},
                        "business_hours": {"timezone": "UTC", "monday": ["09:00-17:00"]}})
    sunday = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)
    due, _ = due_times(cfg, waiting_since=sunday, platform="x", kind=Kind.DM,
                       urgency=Urgency.NORMAL, answered_before=False)
    assert due == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_remaining_and_breach() -> None:
    due = T0 + H
    assert remaining(due, T0 + timedelta(minutes=20)) == timedelta(minutes=40)
    assert remaining(due, T0 + timedelta(minutes=70)) == timedelta(minutes=-10)
    assert remaining(None, T0) is None
    assert not is_breached(due, T0 + timedelta(minutes=59))
    assert is_breached(due, due)
    assert format_remaining(timedelta(minutes=65)) == "1h05m"
    assert format_remaining(timedelta(minutes=-3)) == "-3m"
    assert format_remaining(timedelta(days=1, hours=2)) == "1d02h"


def test_remaining_in_business_time_skips_the_weekend() -> None:
    cfg = from_mapping({"business_hours": {"timezone": "Europe/Berlin",
                                           "friday": ["09:00-17:00"],
                                           "monday": ["09:00-17:00"]}})
    now = datetime(2026, 11, 20, 16, 45, tzinfo=BERLIN)
    due = datetime(2026, 11, 23, 9, 15, tzinfo=BERLIN)
    assert remaining(due, now, cfg.calendar) == timedelta(minutes=30)
