"""Business-hours arithmetic: examples a support team depends on, and properties."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from replydeck.inbox.calendar import BusinessCalendar, Window

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS_9_TO_5 = {d: (Window(9 * 60, 17 * 60),) for d in range(5)}


def hm(text: str) -> Window:
    a, b = text.split("-")
    return Window(int(a[:2]) * 60 + int(a[3:]), int(b[:2]) * 60 + int(b[3:]))


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


# Examples --------------------------------------------------------------------------------


def test_friday_1645_with_30_minute_target_is_due_monday_0915() -> None:
    cal = BusinessCalendar("Europe/Berlin", WEEKDAYS_9_TO_5)
    friday = berlin(2026, 11, 20, 16, 45)
    due = cal.add(friday, timedelta(minutes=30))
    assert due == berlin(2026, 11, 23, 9, 15)
    assert cal.between(friday, due) == timedelta(minutes=30)


def test_target_ending_exactly_at_close_is_due_at_close_not_next_morning() -> None:
    cal = BusinessCalendar("Europe/Berlin", WEEKDAYS_9_TO_5)
    assert cal.add(berlin(2026, 11, 20, 16, 45), timedelta(minutes=15)) == berlin(2026, 11, 20, 17)
    assert not cal.is_open(berlin(2026, 11, 20, 17))
    assert cal.is_open(berlin(2026, 11, 20, 16, 59))


def test_message_while_closed_starts_the_clock_at_opening() -> None:
    cal = BusinessCalendar("Europe/Berlin", WEEKDAYS_9_TO_5)
    saturday = berlin(2026, 11, 21, 11, 0)
    assert cal.next_open(saturday) == berlin(2026, 11, 23, 9)
    assert cal.add(saturday, timedelta(hours=1)) == berlin(2026, 11, 23, 10)
    assert cal.add(saturday, timedelta(0)) == berlin(2026, 11, 23, 9)


def test_several_windows_a_day_skip_the_lunch_break() -> None:
    cal = BusinessCalendar("Europe/Berlin", {0: (hm("09:00-12:00"), hm("13:00-17:00"))})
    due = cal.add(berlin(2026, 11, 23, 11, 30), timedelta(hours=1))
    assert due == berlin(2026, 11, 23, 13, 30)
    assert not cal.is_open(berlin(2026, 11, 23, 12, 30))


def test_holiday_closes_the_day() -> None:
    cal = BusinessCalendar("Europe/Berlin", WEEKDAYS_9_TO_5,
                           holidays=[date(2026, 12, 25), date(2026, 12, 28)])
    # Thursday 24th 16:45 + 30 min: Friday 25th and Monday 28th are holidays.
    due = cal.add(berlin(2026, 12, 24, 16, 45), timedelta(minutes=30))
    assert due == berlin(2026, 12, 29, 9, 15)
    assert not cal.is_open(berlin(2026, 12, 25, 10))


def test_window_crossing_midnight() -> None:
    # Night shift Friday 22:00 to Saturday 06:00 only.
    cal = BusinessCalendar("Europe/Berlin", {4: (hm("22:00-06:00"),)})
    assert cal.is_open(berlin(2026, 11, 21, 5, 59))  # Saturday morning
    assert not cal.is_open(berlin(2026, 11, 21, 6, 0))
    assert cal.add(berlin(2026, 11, 21, 5, 30), timedelta(hours=1)) == berlin(2026, 11, 27, 22, 30)
    assert cal.between(berlin(2026, 11, 20, 0), berlin(2026, 11, 22, 0)) == timedelta(hours=8)


def test_holiday_cuts_the_part_of_an_overnight_window_on_that_date() -> None:
    cal = BusinessCalendar("Europe/Berlin", {3: (hm("22:00-06:00"),)},
                           holidays=[date(2026, 12, 25)])
    # Thursday 24th 22:00 - Friday 25th 06:00: only the two hours on the 24th count.
    total = cal.between(berlin(2026, 12, 24), berlin(2026, 12, 26))
    assert total == timedelta(hours=2)


@pytest.mark.parametrize(("zone", "day", "hours"), [
    ("Europe/Berlin", date(2026, 3, 29), 3),        # spring forward 02:00 -> 03:00
    ("Europe/Berlin", date(2026, 10, 25), 5),       # fall back 03:00 -> 02:00
    ("America/New_York", date(2026, 3, 8), 3),
    ("America/New_York", date(2026, 11, 1), 5),
    ("Europe/Berlin", date(2026, 3, 22), 4),        # an ordinary Sunday
])
def test_night_window_on_dst_change_day_has_its_real_length(zone: str, day: date,
                                                            hours: int) -> None:
    tz = ZoneInfo(zone)
    cal = BusinessCalendar(zone, {6: (hm("01:00-05:00"),)})
    start = datetime.combine(day, datetime.min.time(), tz)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tz)
    assert cal.between(start, end) == timedelta(hours=hours)
    # A 3 h target from opening ends at the real instant 3 hours later.
    opening = cal.next_open(start)
    assert cal.add(opening, timedelta(hours=2)) == opening + timedelta(hours=2)


def test_working_day_on_dst_change_is_still_eight_hours() -> None:
    cal = BusinessCalendar("America/New_York", {6: (hm("09:00-17:00"),)})
    sunday = datetime(2026, 3, 8, tzinfo=NEW_YORK)
    assert cal.between(sunday, sunday + timedelta(days=1)) == timedelta(hours=8)
    assert cal.next_open(sunday) == datetime(2026, 3, 8, 9, tzinfo=NEW_YORK)
    assert cal.next_open(sunday).utcoffset() == timedelta(0)  # results are UTC
    assert cal.next_open(sunday) == datetime(2026, 3, 8, 13, tzinfo=UTC)  # EDT = UTC-4


def test_window_opening_inside_the_spring_forward_gap_opens_after_the_gap() -> None:
    cal = BusinessCalendar("Europe/Berlin", {6: (hm("02:30-04:00"),)})
    opening = cal.next_open(berlin(2026, 3, 29, 0))
    assert opening == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert cal.between(berlin(2026, 3, 29, 0), berlin(2026, 3, 30, 0)) == timedelta(hours=1)


def test_window_closing_inside_the_repeated_fall_back_hour_closes_at_its_second_pass() -> None:
    # 25 Oct 2026: Berlin clocks show 02:00-03:00 twice. 00:00-02:30 covers every instant
    # the clock shows a time before 02:30: from 22:00 UTC to 01:30 UTC, 3.5 hours.
    cal = BusinessCalendar("Europe/Berlin", {6: (hm("00:00-02:30"),)})
    day = cal.intervals(berlin(2026, 10, 25), berlin(2026, 10, 26))
    assert day == [(datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 1, 30,
                                                                      tzinfo=UTC))]


def test_a_configured_24_7_week_does_not_stall() -> None:
    cal = BusinessCalendar("Europe/Berlin", {d: (hm("00:00-24:00"),) for d in range(7)})
    t = berlin(2026, 3, 20, 10).astimezone(UTC)  # UTC: "+ 10 days" in real time
    assert cal.is_open(t)
    # Across the spring-forward night: 10 days of business time is 10 days of real time.
    assert cal.add(t, timedelta(days=10)) == t + timedelta(days=10)
    assert cal.between(t, t + timedelta(days=30)) == timedelta(days=30)
    assert cal.intervals(t, t + timedelta(days=5)) == [(t, t + timedelta(days=5))]
    with pytest.raises(ValueError, match="no closing time"):
        cal.next_close(t)


def test_next_close_joins_an_open_period_across_midnight() -> None:
    cal = BusinessCalendar("Europe/Berlin", {0: (hm("20:00-24:00"),), 1: (hm("00:00-02:00"),)})
    assert cal.next_close(berlin(2026, 11, 23, 21)) == berlin(2026, 11, 24, 2)
    assert cal.next_close(berlin(2026, 11, 24, 12)) == berlin(2026, 11, 24, 2) + timedelta(weeks=1)


def test_always_is_plain_elapsed_time() -> None:
    cal = BusinessCalendar.always()
    t = datetime(2026, 11, 20, 16, 45, tzinfo=UTC)
    assert cal.is_open(t)
    assert cal.add(t, timedelta(minutes=30)) == t + timedelta(minutes=30)
    assert cal.between(t, t + timedelta(days=3)) == timedelta(days=3)


def test_naive_datetimes_are_refused() -> None:
    cal = BusinessCalendar("UTC", WEEKDAYS_9_TO_5)
    with pytest.raises(ValueError, match="aware"):
        cal.is_open(datetime(2026, 1, 1))


def test_calendar_without_windows_is_refused() -> None:
    with pytest.raises(ValueError, match="no open window"):
        BusinessCalendar("UTC", {})


def test_calendar_that_never_opens_says_so_instead_of_looping() -> None:
    monday = date(2026, 1, 5)
    cal = BusinessCalendar("UTC", {0: (hm("09:00-17:00"),)},
                           holidays=[monday + timedelta(weeks=k) for k in range(200)])
    with pytest.raises(ValueError, match="no open time"):
        cal.next_open(datetime(2026, 1, 1, tzinfo=UTC))


# Properties ------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney",
         "Australia/Lord_Howe", "America/Santiago"]
# Around the 2026 DST changes of the zones above, and ordinary days.
ANCHORS = [datetime(2026, m, d, tzinfo=UTC) for m, d in
           [(3, 7), (3, 28), (4, 4), (9, 5), (10, 3), (10, 24), (10, 31), (6, 15), (12, 24)]]


@st.composite
def windows_st(draw: st.DrawFn, quarter_hours_only: bool = False) -> Window:
    step = 15 if quarter_hours_only else 5
    start = draw(st.integers(0, 1440 // step - 1)) * step
    end = draw(st.integers(0, 1440 // step)) * step
    assume(start != end)
    return Window(start, end)


@st.composite
def calendars(draw: st.DrawFn, zones: list[str] = ZONES,
              quarter_hours_only: bool = False) -> BusinessCalendar:
    zone = draw(st.sampled_from(zones))
    windows = draw(st.dictionaries(
        st.integers(0, 6), st.lists(windows_st(quarter_hours_only), min_size=1, max_size=3),
        min_size=1, max_size=7))
    holidays = draw(st.lists(st.dates(date(2026, 1, 1), date(2026, 12, 31)), max_size=6))
    return BusinessCalendar(zone, windows, holidays)


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    anchor = draw(st.sampled_from(ANCHORS))
    return anchor + timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))


durations = st.integers(0, 60 * 60).map(lambda m: timedelta(minutes=m))
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(calendars(), instants(), durations)
def test_add_then_between_gives_back_the_duration(cal: BusinessCalendar, start: datetime,
                                                  d: timedelta) -> None:
    due = cal.add(start, d)
    assert cal.between(start, due) == d


@PROPS
@given(calendars(), instants(), durations)
def test_add_never_lands_inside_closed_hours(cal: BusinessCalendar, start: datetime,
                                             d: timedelta) -> None:
    due = cal.add(start, d)
    # Open at the result, or the result is the closing instant of an open period.
    assert cal.is_open(due) or cal.is_open(due - timedelta(microseconds=1))
    if d == timedelta(0):
        assert due == cal.next_open(start)


@PROPS
@given(calendars(), instants(), durations, durations)
def test_add_is_monotonic_and_additive(cal: BusinessCalendar, start: datetime,
                                       d1: timedelta, d2: timedelta) -> None:
    first = cal.add(start, d1)
    both = cal.add(start, d1 + d2)
    assert first <= both
    if d1 > timedelta(0) and d2 > timedelta(0):
        assert cal.add(first, d2) == both


@PROPS
@given(calendars(), instants(), st.lists(st.integers(0, 4 * 24 * 60), min_size=2, max_size=2))
def test_between_is_additive_and_antisymmetric(cal: BusinessCalendar, a: datetime,
                                               offsets: list[int]) -> None:
    b, c = (a + timedelta(minutes=m) for m in sorted(offsets))
    assert cal.between(a, b) + cal.between(b, c) == cal.between(a, c)
    assert cal.between(c, a) == -cal.between(a, c)
    assert timedelta(0) <= cal.between(a, c) <= c - a


def _oracle_open(cal: BusinessCalendar, t: datetime) -> bool:
    """Independent definition: the local wall clock shows a time inside a window."""
    local = t.astimezone(cal.tz)
    day = local.date()
    if day in cal.holidays:
        return False
    wall = local.hour * 60 + local.minute
    for w in cal.windows[day.weekday()]:
        if (w.crosses_midnight and wall >= w.start_minutes) or (
                not w.crosses_midnight and w.start_minutes <= wall < w.end_minutes):
            return True
    prev = (day - timedelta(days=1)).weekday()
    return any(w.crosses_midnight and wall < w.end_minutes for w in cal.windows[prev])


# Window edges on the quarter hour, and zones whose clocks change only between 01:00 and
# 03:00 so that (with edges outside the repeated hour) the wall-clock oracle is exact.
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calendars(["Europe/Berlin", "America/New_York", "Asia/Tokyo"], quarter_hours_only=True),
       instants(), st.integers(60, 2 * 24 * 60))
def test_between_matches_a_minute_by_minute_count(cal: BusinessCalendar, start: datetime,
                                                  minutes: int) -> None:
    edges = {m for ws in cal.windows.values() for w in ws
             for m in (w.start_minutes, w.end_minutes)}
    assume(not any(60 <= m <= 180 for m in edges))
    expected = sum(_oracle_open(cal, start + timedelta(minutes=k)) for k in range(minutes))
    assert cal.between(start, start + timedelta(minutes=minutes)) == timedelta(minutes=expected)
    probe = start + timedelta(minutes=minutes // 2)
    assert cal.is_open(probe) == _oracle_open(cal, probe)


@PROPS
@given(calendars(), instants())
def test_next_open_is_open_and_nothing_before_it_is(cal: BusinessCalendar,
                                                    t: datetime) -> None:
    nxt = cal.next_open(t)
    assert nxt >= t
    assert cal.is_open(nxt)
    assert cal.between(t, nxt) == timedelta(0)
