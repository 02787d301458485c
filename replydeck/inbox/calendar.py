"""Business hours: when the response clock runs, and arithmetic on business time.

A :class:`BusinessCalendar` is a time zone, weekly windows of local wall-clock time (several
per day; a window whose end is not after its start runs past midnight into the next day) and
holidays (local dates on which nothing is open, whatever the windows say).

All inputs and outputs are aware datetimes; results are in UTC. The open set is built in
local wall time and converted instant by instant, so a window on a DST-change day has its
real length (09:00-17:00 is 8 h on any day; 01:00-05:00 on the spring-forward night is 3 h).
A wall time that does not exist (inside a spring-forward gap) means the first instant after
the gap; an ambiguous wall time (a fall-back hour) means its first occurrence when a window
opens and its second when it closes, so a window covers every instant the clock shows a time
inside it.

Open intervals are half-open ``[start, end)``: at the closing instant the calendar is closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

UTC = timezone.utc
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: How far :meth:`BusinessCalendar.next_open` looks before giving up (all-holiday calendars).
SEARCH_DAYS = 800
_ZERO = timedelta(0)


@dataclass(frozen=True)
class Window:
    """Local wall-clock ``start``-``end``; ``end_minutes`` may be 1440 (24:00)."""

    start_minutes: int
    end_minutes: int

    @property
    def crosses_midnight(self) -> bool:
        return self.end_minutes <= self.start_minutes

    def __str__(self) -> str:
        return f"{_fmt(self.start_minutes)}-{_fmt(self.end_minutes)}"


def _fmt(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _local_to_utc(naive: datetime, tz: tzinfo, *, closing: bool) -> datetime:
    """The UTC instant of a local wall time (see the module docstring for gaps and folds)."""
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) != naive:
        # Inside a gap: fold=1 maps before the transition, fold=0 after it. The wall time
        # "starts" at the transition itself, found by bisection between the two readings.
        lo, hi = min(first, second), max(first, second)
        before = lo.astimezone(tz).utcoffset()
        while hi - lo > timedelta(seconds=1):
            mid = lo + (hi - lo) / 2
            if mid.astimezone(tz).utcoffset() == before:
                lo = mid
            else:
                hi = mid
        return hi.replace(microsecond=0) if hi.microsecond else hi
    if first != second:
        # Ambiguous: the first occurrence opens a window, the second closes it.
        return max(first, second) if closing else min(first, second)
    return first


def _as_utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("business-hours arithmetic needs aware datetimes, got a naive one")
    return t.astimezone(UTC)


class BusinessCalendar:
    """Open hours in one zone. Build it from ``[business_hours]`` or with :meth:`always`."""

    def __init__(
        self,
        timezone_name: str = "UTC",
        windows: Mapping[int, Sequence[Window]] | None = None,
        holidays: Iterable[date] = (),
        *,
        _always: bool = False,
    ) -> None:
        self.timezone_name = timezone_name
        self.tz: tzinfo = UTC if timezone_name == "UTC" else ZoneInfo(timezone_name)
        self.windows: dict[int, tuple[Window, ...]] = {
            d: tuple(sorted((windows or {}).get(d, ()), key=lambda w: w.start_minutes))
            for d in range(7)
        }
        self.holidays = frozenset(holidays)
        self._always = _always
        if not _always and not any(self.windows.values()):
            raise ValueError("business hours have no open window on any weekday")

    @classmethod
    def always(cls) -> BusinessCalendar:
        """Open around the clock: business time is plain elapsed time."""
        return cls("UTC", {d: (Window(0, 1440),) for d in range(7)}, _always=True)

    @property
    def is_always(self) -> bool:
        return self._always

    def __repr__(self) -> str:
        if self._always:
            return "BusinessCalendar.always()"
        days = {WEEKDAYS[d]: [str(w) for w in ws] for d, ws in self.windows.items() if ws}
        return (f"BusinessCalendar({self.timezone_name!r}, {days}, "
                f"holidays={sorted(str(h) for h in self.holidays)})")

    # The open set, as merged UTC intervals -------------------------------------------

    def _day_start(self, d: date) -> datetime:
        return _local_to_utc(datetime.combine(d, time()), self.tz, closing=False)

    def _raw_intervals(self, d: date) -> list[tuple[datetime, datetime]]:
        """Intervals of the windows that open on local date ``d``, holidays cut out."""
        out: list[tuple[datetime, datetime]] = []
        for w in self.windows[d.weekday()]:
            start = _local_to_utc(datetime.combine(d, time()) + timedelta(minutes=w.start_minutes),
                                  self.tz, closing=False)
            end_day = d + timedelta(days=1) if w.crosses_midnight else d
            end = _local_to_utc(datetime.combine(end_day, time()) + timedelta(minutes=w.end_minutes),
                                self.tz, closing=True)
            pieces = [(start, end)]
            # A window reaches at most into the next day (plus 24:00 = the day after's 00:00).
            for h in (d, d + timedelta(days=1)):
                if h in self.holidays:
                    hs, he = self._day_start(h), self._day_start(h + timedelta(days=1))
                    cut: list[tuple[datetime, datetime]] = []
                    for s, e in pieces:
                        if s < hs:
                            cut.append((s, min(e, hs)))
                        if e > he:
                            cut.append((max(s, he), e))
                    pieces = cut
            out.extend((s, e) for s, e in pieces if e > s)
        return out

    def _intervals_from(self, t: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals in time order, from the one that ends after ``t``.

        Overlapping and touching windows are merged; a period open for days on end comes in
        adjacent pieces (callers that need whole periods join them).
        """
        d = t.astimezone(self.tz).date() - timedelta(days=1)
        pending: list[tuple[datetime, datetime]] = []
        previous_boundary = self._day_start(d)
        quiet_days = 0
        while True:
            raw = self._raw_intervals(d)
            quiet_days = 0 if raw else quiet_days + 1
            if quiet_days > SEARCH_DAYS:
                raise ValueError(
                    f"business hours: no open time within {SEARCH_DAYS} days of {t.isoformat()}")
            pending.extend(raw)
            pending.sort()
            d += timedelta(days=1)
            # Nothing generated later can start before the next local midnight, so merged
            # intervals that end before it are final.
            boundary = self._day_start(d)
            merged: list[tuple[datetime, datetime]] = []
            for s, e in pending:
                if merged and s <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], e))
                else:
                    merged.append((s, e))
            pending = []
            for s, e in merged:
                if e < boundary:
                    if e > t:
                        yield s, e
                elif s < previous_boundary:
                    # Open around the clock for days on end: hand out what is final so
                    # far as a piece, so an always-open week cannot stall the scan.
                    if previous_boundary > t:
                        yield s, previous_boundary
                    pending.append((previous_boundary, e))
                else:
                    pending.append((s, e))
            previous_boundary = boundary

    # Public arithmetic -----------------------------------------------------------------

    def is_open(self, t: datetime) -> bool:
        t = _as_utc(t)
        if self._always:
            return True
        for s, _e in self._intervals_from(t):
            return s <= t
        return False  # pragma: no cover - the generator either yields or raises

    def next_open(self, t: datetime) -> datetime:
        """``t`` itself when open, else the next opening instant (UTC)."""
        t = _as_utc(t)
        if self._always:
            return t
        for s, _e in self._intervals_from(t):
            return max(s, t)
        raise AssertionError("unreachable")  # pragma: no cover

    def next_close(self, t: datetime) -> datetime:
        """The end of the open period containing ``t``, or of the next one."""
        t = _as_utc(t)
        if self._always:
            raise ValueError("an always-open calendar never closes")
        end: datetime | None = None
        for s, e in self._intervals_from(t):
            if end is not None and s > end:
                return end
            if end is not None and e - t > timedelta(days=SEARCH_DAYS):
                raise ValueError(f"business hours: no closing time within {SEARCH_DAYS} "
                                 f"days of {t.isoformat()}")
            end = e
        raise AssertionError("unreachable")  # pragma: no cover

    def add(self, start: datetime, d: timedelta) -> datetime:
        """``start`` plus ``d`` of business time.

        The clock starts at the next opening when ``start`` is closed, and the result is
        never inside a closed period: a duration that runs out exactly at a closing instant
        ends there (due at 17:00, not at the next morning's opening).
        """
        start = _as_utc(start)
        if d < _ZERO:
            raise ValueError("business-time addition needs a duration ≥ 0")
        if self._always:
            return start + d
        left = d
        for s, e in self._intervals_from(start):
            s = max(s, start)
            if left <= e - s:
                return s + left
            left -= e - s
        raise AssertionError("unreachable")  # pragma: no cover

    def between(self, a: datetime, b: datetime) -> timedelta:
        """Business time from ``a`` to ``b`` (negative when ``b`` is before ``a``)."""
        a, b = _as_utc(a), _as_utc(b)
        if b < a:
            return -self.between(b, a)
        if self._always:
            return b - a
        total = _ZERO
        for s, e in self._intervals_from(a):
            if s >= b:
                break
            total += min(e, b) - max(s, a)
        return total

    def intervals(self, a: datetime, b: datetime) -> list[tuple[datetime, datetime]]:
        """The open intervals overlapping ``[a, b)``, clipped to it (for display and tests)."""
        a, b = _as_utc(a), _as_utc(b)
        if self._always:
            return [(a, b)] if b > a else []
        out: list[tuple[datetime, datetime]] = []
        for s, e in self._intervals_from(a):
            if s >= b:
                break
            s, e = max(s, a), min(e, b)
            if out and out[-1][1] == s:  # pieces of one long open period
                out[-1] = (out[-1][0], e)
            else:
                out.append((s, e))
        return out
