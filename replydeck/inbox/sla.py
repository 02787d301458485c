"""Response-time targets: which policy applies, and when a conversation is due.

``due_at`` is computed from ``waiting_since`` (the oldest unanswered customer message) when
a conversation changes and is stored; screens compute the remaining time at paint with
:func:`remaining`. A policy on business hours runs its clock only while the
:class:`~replydeck.inbox.calendar.BusinessCalendar` is open.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from replydeck.config.sla import Policy, SlaConfig, format_duration
from replydeck.inbox.calendar import BusinessCalendar
from replydeck.inbox.model import Kind, Urgency


@dataclass(frozen=True)
class Target:
    duration: timedelta
    business_hours: bool
    #: The policy that chose it, or None when no policy matched and ``sla.max`` applies.
    policy: Policy | None
    #: "first response" or "next response".
    which: str
    #: A short human explanation: ``first response 1h (policy 'private': private)``.
    reason: str


def target_for(
    cfg: SlaConfig,
    *,
    platform: str,
    kind: Kind,
    urgency: Urgency,
    answered_before: bool,
    tags: Iterable[str] = (),
) -> Target:
    """The first policy that matches, in config order (built-in policies last)."""
    which = "next response" if answered_before else "first response"
    tagset = frozenset(tags)
    for policy in cfg.policies:
        if policy.matches(platform, kind, urgency, tagset):
            d = policy.next_response if answered_before else policy.first_response
            d = min(d, cfg.max_target)
            clock = ", business hours" if policy.business_hours else ""
            return Target(d, policy.business_hours, policy, which,
                          f"{which} {format_duration(d)} (policy {policy.name!r}: "
                          f"{policy.describe()}{clock})")
    return Target(cfg.max_target, False, None, which,
                  f"{which} {format_duration(cfg.max_target)} (no policy matched; sla.max)")


def calendar_for(cfg: SlaConfig, target: Target) -> BusinessCalendar:
    return cfg.calendar if target.business_hours else BusinessCalendar.always()


def due_times(
    cfg: SlaConfig,
    *,
    waiting_since: datetime | None,
    platform: str,
    kind: Kind,
    urgency: Urgency,
    answered_before: bool,
    tags: Iterable[str] = (),
) -> tuple[datetime | None, datetime | None]:
    """``(due_at, warn_at)`` in UTC, or ``(None, None)`` when nothing waits for an answer."""
    if waiting_since is None:
        return None, None
    target = target_for(cfg, platform=platform, kind=kind, urgency=urgency,
                        answered_before=answered_before, tags=tags)
    return due_from(cfg, target, waiting_since)


def due_from(cfg: SlaConfig, target: Target,
             waiting_since: datetime) -> tuple[datetime, datetime]:
    cal = calendar_for(cfg, target)
    due = cal.add(waiting_since, target.duration)
    warn = cal.add(waiting_since, target.duration * cfg.warn_fraction)
    return due, warn


def elapsed_fraction(cfg: SlaConfig, target: Target, waiting_since: datetime,
                     now: datetime) -> float:
    """How much of the target has been used, on the policy's clock (1.0 = due now)."""
    used = calendar_for(cfg, target).between(waiting_since, now)
    return max(0.0, used / target.duration)


def remaining(due_at: datetime | None, now: datetime,
              calendar: BusinessCalendar | None = None) -> timedelta | None:
    """Time left until ``due_at`` (negative when overdue); business time with ``calendar``."""
    if due_at is None:
        return None
    if calendar is None:
        return due_at - now
    return calendar.between(now, due_at)


def is_breached(due_at: datetime | None, now: datetime) -> bool:
    return due_at is not None and now >= due_at


def format_remaining(left: timedelta | None) -> str:
    """``12m``, ``1h05m``, ``-3m`` (overdue), ``""`` when nothing is due: for timers on screen."""
    if left is None:
        return ""
    sign = "-" if left < timedelta(0) else ""
    minutes = int(abs(left.total_seconds()) // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{sign}{days}d{hours:02d}h"
    if hours:
        return f"{sign}{hours}h{mins:02d}m"
    return f"{sign}{mins}m"
