"""``[sla]``, ``[business_hours]`` and ``[notifications]``: response-time targets and triage.

The TOML shape (every key optional; the values shown are the defaults)::

    [sla]
    business_hours = false      # default for policies: does the clock run on business hours?
    warn_at = 0.75              # warn when this fraction of the target has passed
    max = "24h"                 # no target may be longer than this
    defaults = true             # keep the built-in policies after your own

    # Policies are tried in order; the first that matches wins. Built-in policies follow
    # yours (unless defaults = false):
    #   urgent-or-crisis   urgency crisis/urgent, anything  1h
    #   x-public-complaint platform x, public, tag complaint 1h
    #   private            DMs and email                    1h
    #   public             everything else                  4h
    [[sla.policies]]
    name = "vip-dm"             # shown in reasons; default "policy N"
    platform = ["x", "instagram"]          # string or array; omitted = any
    kind = "private"            # public | private | mention | comment | dm | reply | email
                                # | review, string or array
    urgency = ["high"]          # crisis | urgent | high | normal | low, string or array
    tags = ["vip"]              # matches when the conversation has any of these tags
    first_response = "30m"      # durations: "45s", "30m", "1h30m", "2d"
    next_response = "1h"        # default: first_response
    business_hours = true       # default: sla.business_hours

    [business_hours]
    timezone = "Europe/Berlin"  # IANA zone; default "UTC"
    monday = ["09:00-12:30", "13:30-17:00"]   # several windows a day
    friday = ["09:00-17:00", "22:00-06:00"]   # end ≤ start: runs past midnight
    saturday = []               # a weekday left out is closed; if none is given at all,
                                # Monday-Friday 09:00-17:00
    holidays = ["2026-12-25", 2026-12-26]     # strings or TOML dates: closed all day

    [sla.triage]
    levels = { crisis = 75, urgent = 45, high = 20, low = -5 }   # score thresholds
    vip = { x = ["@bigcustomer"], mastodon = ["@ceo@example.social"] }
    reach = [{ followers = 10000, weight = 10 }, { followers = 100000, weight = 15 },
             { followers = 1000000, weight = 25 }]

    [sla.triage.weights]
    negative_sentiment = 25     # times how negative (0..1) the worst message is
    positive_sentiment = 10     # subtracted, times how positive the best message is
    vip = 30
    repeat_contact = 8          # per extra customer message while unanswered
    repeat_contact_max = 24
    engagement = [{ at = 20, weight = 5 }, { at = 100, weight = 10 }, { at = 1000, weight = 20 }]
    waited_warning = 10         # waited past warn_at of the target
    waited_breach = 20          # waited past the target

    [sla.triage.phrases.legal]  # built-in groups: legal, security, backlash, outage,
    weight = 45                 # billing, churn; or a new name for a new group
    label = "legal threat"      # shown in reasons
    tag = "legal"               # added to the conversation ("" for none)
    complaint = true            # also tags "complaint"
    add = ["small claims court"]        # extends the list
    # phrases = ["..."]                 # replaces the list

    [notifications]
    bell = true                 # ring the terminal bell (reaches tmux monitor-bell)
    desktop = false             # desktop notification through the terminal (OSC 9/777);
                                # true, or "osc9" / "osc777" to choose the sequence
    desktop_style = "osc9"      # or "osc777" (urxvt, foot, WezTerm ...)
    on_event = ""               # command run for each event, the event as JSON on stdin;
                                # a string runs through the shell, an array is argv
    hook_timeout = "10s"
    events = ["new_urgent", "sla_warning", "breach", "reply_failed"]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from replydeck.config.errors import ConfigError, describe
from replydeck.config.table import Table
from replydeck.inbox.calendar import WEEKDAYS, BusinessCalendar, Window
from replydeck.inbox.lexicon.phrases import DEFAULT_GROUPS
from replydeck.inbox.model import Kind, Urgency

EVENTS = ("new_urgent", "sla_warning", "breach", "reply_failed")
DESKTOP_STYLES = ("osc9", "osc777")
KIND_CLASSES = ("public", "private")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_DURATION_EXPECTED = 'a duration like "30m", "1h" or "1h30m"'


@dataclass(frozen=True)
class Policy:
    name: str
    first_response: timedelta
    next_response: timedelta
    business_hours: bool
    platforms: frozenset[str] = frozenset()
    #: Kind values and/or the classes "public"/"private".
    kinds: frozenset[str] = frozenset()
    urgencies: frozenset[Urgency] = frozenset()
    tags: frozenset[str] = frozenset()
    builtin: bool = False

    def matches(self, platform: str, kind: Kind, urgency: Urgency, tags: frozenset[str]) -> bool:
        if self.platforms and platform not in self.platforms:
            return False
        if self.kinds:
            kind_class = "private" if kind.is_private else "public"
            if kind.value not in self.kinds and kind_class not in self.kinds:
                return False
        if self.urgencies and urgency not in self.urgencies:
            return False
        return not self.tags or bool(self.tags & tags)

    def describe(self) -> str:
        """What the policy matches, for reasons: ``x, public, tag complaint``."""
        parts = [", ".join(sorted(self.platforms))] if self.platforms else []
        if self.kinds:
            parts.append("/".join(sorted(self.kinds)))
        if self.urgencies:
            parts.append("/".join(u.value for u in Urgency if u in self.urgencies))
        if self.tags:
            parts.append("tag " + "/".join(sorted(self.tags)))
        return ", ".join(parts) or "anything"


@dataclass(frozen=True)
class PhraseGroup:
    name: str
    label: str
    weight: float
    tag: str
    complaint: bool
    phrases: tuple[str, ...]


@dataclass(frozen=True)
class ReachStep:
    followers: int
    weight: float


@dataclass(frozen=True)
class EngagementStep:
    at: int
    weight: float


@dataclass
class TriageConfig:
    levels: dict[Urgency, float] = field(default_factory=lambda: {
        Urgency.CRISIS: 75.0, Urgency.URGENT: 45.0, Urgency.HIGH: 20.0, Urgency.LOW: -5.0})
    negative_sentiment: float = 25.0
    positive_sentiment: float = 10.0
    vip_weight: float = 30.0
    repeat_contact: float = 8.0
    repeat_contact_max: float = 24.0
    waited_warning: float = 10.0
    waited_breach: float = 20.0
    engagement: tuple[EngagementStep, ...] = (
        EngagementStep(20, 5.0), EngagementStep(100, 10.0), EngagementStep(1000, 20.0))
    reach: tuple[ReachStep, ...] = (
        ReachStep(10_000, 10.0), ReachStep(100_000, 15.0), ReachStep(1_000_000, 25.0))
    #: platform -> normalised handles (casefolded, without the leading "@").
    vip: dict[str, frozenset[str]] = field(default_factory=dict)
    phrases: tuple[PhraseGroup, ...] = field(default_factory=lambda: tuple(
        PhraseGroup(name, label, float(weight), tag, complaint, phrases)
        for name, (label, weight, tag, complaint, phrases) in DEFAULT_GROUPS.items()))

    def level_for(self, score: float) -> Urgency:
        for level in (Urgency.CRISIS, Urgency.URGENT, Urgency.HIGH):
            if score >= self.levels[level]:
                return level
        return Urgency.LOW if score <= self.levels[Urgency.LOW] else Urgency.NORMAL

    def is_vip(self, platform: str, handle: str) -> bool:
        return normalize_handle(handle) in self.vip.get(platform, frozenset())


@dataclass
class NotifyConfig:
    bell: bool = True
    desktop: bool = False
    desktop_style: str = "osc9"
    #: Shell command (str) or argv (list); None = no hook.
    on_event: str | list[str] | None = None
    hook_timeout: timedelta = timedelta(seconds=10)
    events: frozenset[str] = frozenset(EVENTS)


def _builtin_policies() -> list[Policy]:
    hour = timedelta(hours=1)
    return [
        Policy("urgent-or-crisis", hour, hour, False,
               urgencies=frozenset({Urgency.CRISIS, Urgency.URGENT}), builtin=True),
        Policy("x-public-complaint", hour, hour, False, platforms=frozenset({"x"}),
               kinds=frozenset({"public"}), tags=frozenset({"complaint"}), builtin=True),
        Policy("private", hour, hour, False, kinds=frozenset({"private"}), builtin=True),
        Policy("public", timedelta(hours=4), timedelta(hours=4), False, builtin=True),
    ]


@dataclass
class SlaConfig:
    policies: list[Policy] = field(default_factory=_builtin_policies)
    warn_fraction: float = 0.75
    max_target: timedelta = timedelta(hours=24)
    calendar: BusinessCalendar = field(
        default_factory=lambda: BusinessCalendar("UTC", _default_windows()))
    triage: TriageConfig = field(default_factory=TriageConfig)
    notifications: NotifyConfig = field(default_factory=NotifyConfig)


def normalize_handle(handle: str) -> str:
    return handle.strip().lstrip("@").casefold()


def _default_windows() -> dict[int, tuple[Window, ...]]:
    return {d: (Window(9 * 60, 17 * 60),) for d in range(5)}


# Parsing ---------------------------------------------------------------------------------


def parse_duration(text: str) -> timedelta | None:
    """``"45s"``, ``"30m"``, ``"1h30m"``, ``"2d"`` as a timedelta; None when malformed."""
    m = _DURATION.match(text.strip())
    if not m or not any(m.groups()):
        return None
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return timedelta(days=d, hours=h, minutes=mi, seconds=s)


def _duration(t: Table, name: str, default: timedelta | None) -> timedelta | None:
    value = t.raw(name, None)
    if value is None:
        return default
    parsed = parse_duration(value) if isinstance(value, str) else None
    if parsed is None:
        raise t.error(name, f"expected {_DURATION_EXPECTED}, found {describe(value)}")
    if parsed <= timedelta(0):
        raise t.error(name, f"expected a duration longer than zero, found {describe(value)}")
    return parsed


def _str_or_list(t: Table, name: str, choices: tuple[str, ...] | None = None) -> frozenset[str]:
    value = t.raw(name, None)
    if value is None:
        return frozenset()
    items = [value] if isinstance(value, str) else value
    expected = "a string or an array of strings"
    if choices:
        expected = "one of " + ", ".join(repr(c) for c in choices) + " (or an array of them)"
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise t.error(name, f"expected {expected}, found {describe(value)}")
    if choices:
        for v in items:
            if v not in choices:
                raise t.error(name, f"expected {expected}, found {describe(v)}")
    return frozenset(items)


def _parse_policy(t: Table, index: int, default_bh: bool, max_target: timedelta) -> Policy:
    name = t.str("name", f"policy {index + 1}")
    kinds = _str_or_list(t, "kind", KIND_CLASSES + tuple(k.value for k in Kind))
    urgencies = _str_or_list(t, "urgency", tuple(u.value for u in Urgency))
    first = _duration(t, "first_response", None)
    if first is None:
        raise t.error("first_response", f"missing; expected {_DURATION_EXPECTED}")
    nxt = _duration(t, "next_response", first) or first
    for key, value in (("first_response", first), ("next_response", nxt)):
        if value > max_target:
            raise t.error(key, f"expected a duration no longer than sla.max "
                          f"({_fmt_duration(max_target)}), found {_fmt_duration(value)}")
    policy = Policy(
        name=name, first_response=first, next_response=nxt,
        business_hours=t.bool("business_hours", default_bh),
        platforms=_str_or_list(t, "platform"),
        kinds=kinds,
        urgencies=frozenset(Urgency(u) for u in urgencies),
        tags=frozenset(t.str_list("tags", [])),
    )
    t.reject_unknown()
    return policy


def _fmt_duration(d: timedelta) -> str:
    # Hours rather than days: "24h" is how response targets are talked about.
    hours, rest = divmod(int(d.total_seconds()), 3600)
    minutes, seconds = divmod(rest, 60)
    out = "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (seconds, "s")) if v)
    return out or "0s"


format_duration = _fmt_duration


def _parse_window(t: Table, day: str, index: int, value: Any) -> Window:
    key = f"{t.key(day)}[{index}]"
    expected = 'expected "HH:MM-HH:MM"'
    if not isinstance(value, str):
        raise ConfigError(t.file, key, f"{expected}, found {describe(value)}")
    m = _WINDOW.match(value.strip())
    if not m:
        raise ConfigError(t.file, key, f"{expected}, found {describe(value)}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ConfigError(t.file, key, f"{expected} with real times (00:00 to 24:00), "
                          f"found {describe(value)}")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ConfigError(t.file, key, f"{expected} with different start and end "
                          f'(use "00:00-24:00" for the whole day), found {describe(value)}')
    return Window(start, end)


def parse_business_hours(t: Table) -> BusinessCalendar:
    tz_name = t.str("timezone", "UTC")
    try:
        if tz_name != "UTC":
            ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise t.error("timezone", f"expected an IANA time zone such as \"Europe/Berlin\", "
                      f"found {describe(tz_name)}") from None
    windows: dict[int, tuple[Window, ...]] = {}
    any_day = False
    for d, day in enumerate(WEEKDAYS):
        if not t.has(day):
            t.raw(day)
            continue
        any_day = True
        value = t.raw(day)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise t.error(day, f'expected an array of "HH:MM-HH:MM" windows, found {describe(value)}')
        windows[d] = tuple(_parse_window(t, day, i, v) for i, v in enumerate(value))
    if not any_day:
        windows = _default_windows()
    holidays: set[date] = set()
    raw_holidays = t.raw("holidays", [])
    if not isinstance(raw_holidays, list):
        raise t.error("holidays", f'expected an array of dates like "2026-12-25", '
                      f"found {describe(raw_holidays)}")
    for i, h in enumerate(raw_holidays):
        holidays.add(_parse_date(t, i, h))
    t.reject_unknown()
    try:
        return BusinessCalendar(tz_name, windows, holidays)
    except ValueError:
        raise t.error(None, "no open hours on any weekday; give at least one window "
                      'such as monday = ["09:00-17:00"]') from None


def _parse_date(t: Table, index: int, value: Any) -> date:
    key = f"{t.key('holidays')}[{index}]"
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError(t.file, key, f'expected a date like "2026-12-25", found {describe(value)}')


def _number_steps(t: Table, name: str, key: str) -> list[tuple[int, float]] | None:
    value = t.raw(name, None)
    if value is None:
        return None
    expected = f"an array of tables like {{ {key} = 10000, weight = 10 }}"
    if not isinstance(value, list):
        raise t.error(name, f"expected {expected}, found {describe(value)}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ConfigError(t.file, f"{t.key(name)}[{i}]",
                              f"expected a table like {{ {key} = 10000, weight = 10 }}, "
                              f"found {describe(item)}")
        sub = Table(item, f"{t.key(name)}[{i}]", t.file)
        out.append((sub.int(key, min=0), sub.number("weight")))
        sub.reject_unknown()
    return sorted(out)


def _parse_triage(t: Table) -> TriageConfig:
    cfg = TriageConfig()
    levels = t.table("levels")
    for level in (Urgency.CRISIS, Urgency.URGENT, Urgency.HIGH, Urgency.LOW):
        cfg.levels[level] = levels.number(level.value, cfg.levels[level])
    levels.reject_unknown()
    if not (cfg.levels[Urgency.CRISIS] > cfg.levels[Urgency.URGENT] > cfg.levels[Urgency.HIGH]
            > cfg.levels[Urgency.LOW]):
        raise levels.error(None, "expected crisis > urgent > high > low, found "
                           + ", ".join(f"{u.value} = {cfg.levels[u]:g}" for u in cfg.levels))

    vip = t.table("vip")
    for platform in list(vip.data):
        handles = vip.str_list(platform)
        cfg.vip[platform] = frozenset(normalize_handle(h) for h in handles if h.strip())
    reach = _number_steps(t, "reach", "followers")
    if reach is not None:
        cfg.reach = tuple(ReachStep(f, w) for f, w in reach)

    w = t.table("weights")
    cfg.negative_sentiment = w.number("negative_sentiment", cfg.negative_sentiment)
    cfg.positive_sentiment = w.number("positive_sentiment", cfg.positive_sentiment)
    cfg.vip_weight = w.number("vip", cfg.vip_weight)
    cfg.repeat_contact = w.number("repeat_contact", cfg.repeat_contact)
    cfg.repeat_contact_max = w.number("repeat_contact_max", cfg.repeat_contact_max)
    cfg.waited_warning = w.number("waited_warning", cfg.waited_warning)
    cfg.waited_breach = w.number("waited_breach", cfg.waited_breach)
    engagement = _number_steps(w, "engagement", "at")
    if engagement is not None:
        cfg.engagement = tuple(EngagementStep(a, wt) for a, wt in engagement)
    w.reject_unknown()

    groups = {g.name: g for g in cfg.phrases}
    ptable = t.table("phrases")
    for name in list(ptable.data):
        g = ptable.table(name)
        base = groups.get(name)
        if base is None and not g.has("phrases"):
            raise g.error(None, "a new phrase group needs phrases = [...] "
                          f"(built-in groups: {', '.join(groups)})")
        phrases = tuple(g.str_list("phrases", list(base.phrases) if base else []))
        phrases += tuple(g.str_list("add", []))
        groups[name] = PhraseGroup(
            name=name,
            label=g.str("label", base.label if base else name),
            weight=g.number("weight", base.weight if base else 20.0),
            tag=g.str("tag", base.tag if base else name),
            complaint=g.bool("complaint", base.complaint if base else False),
            phrases=tuple(p for p in phrases if p.strip()),
        )
        g.reject_unknown()
    cfg.phrases = tuple(groups.values())
    t.reject_unknown()
    return cfg


def parse_notifications(t: Table) -> NotifyConfig:
    cfg = NotifyConfig()
    cfg.bell = t.bool("bell", cfg.bell)
    desktop = t.raw("desktop", cfg.desktop)
    if isinstance(desktop, str) and desktop in DESKTOP_STYLES:
        cfg.desktop, cfg.desktop_style = True, desktop
    elif isinstance(desktop, bool):
        cfg.desktop = desktop
    else:
        raise t.error("desktop", 'expected true, false, "osc9" or "osc777", '
                      f"found {describe(desktop)}")
    cfg.desktop_style = t.str("desktop_style", cfg.desktop_style, choices=DESKTOP_STYLES)
    hook = t.raw("on_event", None)
    if isinstance(hook, str):
        cfg.on_event = hook if hook.strip() else None
    elif isinstance(hook, list) and hook and all(isinstance(a, str) for a in hook):
        cfg.on_event = list(hook)
    elif hook is not None:
        raise t.error("on_event", "expected a command string or a non-empty array of "
                      f"strings, found {describe(hook)}")
    cfg.hook_timeout = _duration(t, "hook_timeout", cfg.hook_timeout) or cfg.hook_timeout
    events = t.str_list("events", list(EVENTS))
    for e in events:
        if e not in EVENTS:
            raise t.error("events", "expected an array of "
                          + ", ".join(repr(x) for x in EVENTS) + f", found {describe(e)}")
    cfg.events = frozenset(events)
    t.reject_unknown()
    return cfg


def parse(root: Table) -> SlaConfig:
    """Read ``[sla]``, ``[business_hours]`` and ``[notifications]`` from the config root."""
    sla = root.table("sla")
    cfg = SlaConfig()
    default_bh = sla.bool("business_hours", False)
    warn = sla.number("warn_at", 0.75, min=0.0)
    if not 0 < warn < 1:
        raise sla.error("warn_at", f"expected a fraction between 0 and 1 such as 0.75, "
                        f"found {describe(sla.raw('warn_at'))}")
    cfg.warn_fraction = warn
    cfg.max_target = _duration(sla, "max", cfg.max_target) or cfg.max_target
    policies = [_parse_policy(p, i, default_bh, cfg.max_target)
                for i, p in enumerate(sla.tables("policies"))]
    if sla.bool("defaults", True):
        policies += [
            Policy(p.name, min(p.first_response, cfg.max_target),
                   min(p.next_response, cfg.max_target), default_bh, p.platforms, p.kinds,
                   p.urgencies, p.tags, builtin=True)
            for p in _builtin_policies()
        ]
    elif not policies:
        raise sla.error("defaults", "is false but no [[sla.policies]] are given; "
                        "add at least one policy")
    cfg.policies = policies
    cfg.triage = _parse_triage(sla.table("triage"))
    sla.reject_unknown()
    cfg.calendar = parse_business_hours(root.table("business_hours"))
    cfg.notifications = parse_notifications(root.table("notifications"))
    return cfg


def from_mapping(data: Mapping[str, Any], file: str | None = None) -> SlaConfig:
    """Parse a plain dict (tests, scripts) as if it were the whole config file."""
    return parse(Table(dict(data), "", file))
