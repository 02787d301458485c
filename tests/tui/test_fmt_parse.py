"""Formatting of rows and parsing of prompts (no Textual)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from rich.cells import cell_len

from replydeck.inbox.model import Kind, Status, Urgency
from replydeck.inbox.store import InboxFilter
from replydeck.tui import fmt
from replydeck.tui.parse import parse_filter, parse_snooze
from replydeck.tui.widgets.inbox_list import columns, header_text

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)  # a Friday


@pytest.mark.parametrize("seconds, text", [
    (5, "5s"), (240, "4m"), (4320, "1h12m"), (3600, "1h"), (2 * 86400, "2d"),
    (2 * 86400 + 3 * 3600, "2d3h"), (9 * 86400, "9d"), (-5, "0s"),
])
def test_short_duration(seconds, text):
    assert fmt.short_duration(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize("n, text", [(999, "999"), (1500, "1.5k"), (12_345, "12k"),
                                     (250_000, "250k"), (1_200_000, "1.2M"), (None, "")])
def test_count(n, text):
    assert fmt.count(n) == text


@pytest.mark.parametrize("text", ["障害が発生しています", "family 👨‍👩‍👧‍👦 flag 🇯🇵",
                                  "plain ascii text that is long", "ｻｰﾋﾞｽ", ""])
@pytest.mark.parametrize("width", [1, 5, 12, 40])
def test_fit_is_exactly_the_width_in_cells(text, width):
    assert cell_len(fmt.fit(text, width)) == width
    assert cell_len(fmt.fit_right(text, width)) == width


def test_columns_fill_the_width():
    for width in (60, 80, 100, 120, 160, 240):
        cols = columns(width)
        assert sum(w for _, w in cols) + len(cols) <= width + 1
        assert cell_len(header_text(width)) == width
    assert "assignee" not in dict(columns(80)) and "assignee" in dict(columns(160))


def test_snooze_durations_and_times():
    assert parse_snooze("2h", NOW) == NOW + timedelta(hours=2)
    assert parse_snooze("1d 3h", NOW) == NOW + timedelta(days=1, hours=3)
    assert parse_snooze("30m", NOW) == NOW + timedelta(minutes=30)
    assert parse_snooze("reply", NOW) is None
    assert parse_snooze("", NOW) is None
    assert parse_snooze("tomorrow", NOW) == datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc)
    assert parse_snooze("tomorrow 14:30", NOW) == datetime(2026, 11, 21, 14, 30,
                                                           tzinfo=timezone.utc)
    assert parse_snooze("17:30", NOW) == datetime(2026, 11, 20, 17, 30, tzinfo=timezone.utc)
    assert parse_snooze("9:00", NOW) == datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc)
    assert parse_snooze("mon", NOW) == datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
    assert parse_snooze("friday 8am", NOW) == datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)
    assert parse_snooze("2026-12-01 10:00", NOW) == datetime(2026, 12, 1, 10, 0,
                                                             tzinfo=timezone.utc)


@pytest.mark.parametrize("bad", ["soon", "25:00", "0h", "2020-01-01 10:00", "tomorrow 7:99",
                                 ])
def test_snooze_nonsense_is_an_error(bad):
    with pytest.raises(ValueError):
        parse_snooze(bad, NOW)


def test_filter_expressions():
    base = InboxFilter(needs_reply=True)
    f = parse_filter("platform:x,instagram kind:dm status:open,done tag:billing "
                     "assignee:me urgency:high unread", base, "sam")
    assert f.platforms == ("x", "instagram") and f.kinds == (Kind.DM,)
    assert f.statuses == (Status.OPEN, Status.DONE) and f.tags == ("billing",)
    assert f.assignee == "sam" and f.min_urgency == Urgency.HIGH and f.unread
    assert f.needs_reply  # the view's own conditions stay
    assert parse_filter("assignee:none", base, "sam").assignee == ""
    assert parse_filter("", base, "sam") == base
    for bad in ("colour:red", "kind:fax", "status:closed", "urgency:meh", "platform:",
                "sparkly"):
        with pytest.raises(ValueError):
            parse_filter(bad, base, "sam")
