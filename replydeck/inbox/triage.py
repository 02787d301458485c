"""Urgency: a score from weighted signals, a level from the score, and the reasons kept.

Signals (weights in ``[sla.triage]``, see :mod:`replydeck.config.sla`):

* phrases by severity, English and Japanese (legal threat, security, public backlash,
  outage, billing, cancellation), matched width- and case-insensitively; each group counts
  once however many of its phrases appear;
* negative sentiment of the worst waiting message (and positive sentiment lowering it);
* author reach (follower thresholds) and a VIP list of handles per platform;
* engagement the platform reports (likes, reposts, replies);
* repeat contact: the customer wrote again while unanswered, or reopened a closed thread;
* time waited against the response-time target.

The text judged is what waits for an answer: the customer messages since
``waiting_since`` (the latest customer message when nothing waits). Triage runs when a
conversation changes, never at paint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from replydeck.config.sla import PhraseGroup, SlaConfig, format_duration
from replydeck.inbox import sla as sla_mod
from replydeck.inbox.assess import Decision, ThreadFacts
from replydeck.inbox.model import Direction, Message, Urgency
from replydeck.inbox.sentiment import Sentiment, cached_analysis, normalize

#: A message this negative (or worse) makes the conversation a complaint.
COMPLAINT_SENTIMENT = -0.35
#: Sentiment signals start counting beyond these.
NEGATIVE_FROM = -0.2
POSITIVE_FROM = 0.3
_SHARE_KEYS = frozenset({"reposts", "retweets", "shares", "boosts", "reblogs", "quotes"})


@dataclass
class Assessment:
    urgency: Urgency
    score: float
    reasons: list[str]
    tags: list[str] = field(default_factory=list)
    sentiment: float = 0.0


def _fmt_weight(w: float) -> str:
    return f"{w:+.1f}".replace(".0", "") if w != int(w) else f"{int(w):+d}"


def _fmt_count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M".replace(".0M", "M")
    if n >= 10_000:
        return f"{n // 1000}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    return str(n)


@lru_cache(maxsize=64)
def _group_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    r"""One regex per group: Latin phrases as whole words, Japanese ones as substrings.

    Longest phrases first, so where several begin at the same place the longest wins.
    Each phrase starts with its first character as a literal, the word-boundary check
    right after it (``l(?<![\w']l)awyer`` tests what ``(?<![\w'])lawyer`` does): the regex
    engine then skips places no phrase starts at and tries only the phrases beginning with
    the character it is at (grouped by it, order kept), instead of running every phrase's
    look-behind at every character (ten times slower).
    """
    by_first: dict[str, list[str]] = {}
    for p in sorted({normalize(p).casefold().strip() for p in phrases}, key=len, reverse=True):
        if not p:
            continue
        body = re.escape(p).replace(r"\ ", r"\s+")
        head = re.escape(p[0])
        tail = re.escape(p[1:]).replace(r"\ ", r"\s+")
        if head + tail != body:  # cannot happen (re.escape works per character); be safe
            return _plain_group_pattern(phrases)
        rest = rf"(?<![\w']{head}){tail}(?![\w'])" if p.isascii() else tail
        by_first.setdefault(head, []).append(rest)
    parts = [head + (rests[0] if len(rests) == 1 else f"(?:{'|'.join(rests)})")
             for head, rests in by_first.items()]
    return re.compile("|".join(parts)) if parts else None


def _plain_group_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    """:func:`_group_pattern` written the obvious way (slower: a look-behind per phrase)."""
    parts = []
    for p in sorted({normalize(p).casefold().strip() for p in phrases}, key=len, reverse=True):
        if not p:
            continue
        body = re.escape(p).replace(r"\ ", r"\s+")
        parts.append(rf"(?<![\w']){body}(?![\w'])" if p.isascii() else body)
    return re.compile("|".join(parts)) if parts else None


def match_phrase(group: PhraseGroup, text: str) -> str | None:
    """The first phrase of ``group`` found in ``text`` (already normalised), or None."""
    pattern = _group_pattern(group.phrases)
    if pattern is None:
        return None
    m = pattern.search(text)
    return m.group(0) if m else None


def prepare(text: str) -> str:
    """Text as phrase matching sees it: NFKC (width), casefolded, one space between words."""
    return " ".join(normalize(text).casefold().split())


class _PhraseMatcher:
    """The phrase groups of one config, strongest first, with what each message contains.

    A conversation is judged again on every change while its older messages stay the same,
    so the groups found in a message's (prepared) text are remembered for recent texts.
    """

    def __init__(self, groups: tuple[PhraseGroup, ...]) -> None:
        self.groups = groups
        self.ordered = sorted(groups, key=lambda g: -g.weight)
        # A group of weight 0 never counts: no need to look for it.
        self._patterns = [None if g.weight == 0 else _group_pattern(g.phrases)
                          for g in self.ordered]
        self.hits = lru_cache(maxsize=_CACHED_TEXTS)(self._hits)

    def _hits(self, text: str) -> tuple[str | None, ...]:
        """For each group in :attr:`ordered`, its first phrase found in ``text``, or None."""
        out: list[str | None] = []
        for pattern in self._patterns:
            m = pattern.search(text) if pattern is not None else None
            out.append(m.group(0) if m else None)
        return tuple(out)


#: Texts remembered per cache (prepared texts, phrases found): recent messages.
_CACHED_TEXTS = 4096
_matchers: dict[int, _PhraseMatcher] = {}


def _matcher(groups: tuple[PhraseGroup, ...]) -> _PhraseMatcher:
    """The matcher of a config's phrase groups, built once per (immutable) tuple of groups."""
    if type(groups) is not tuple:  # a list could change under a cached matcher
        return _PhraseMatcher(tuple(groups))
    found = _matchers.get(id(groups))
    if found is None or found.groups is not groups:
        if len(_matchers) >= 16:
            _matchers.clear()
        # The matcher holds the tuple, so its id is not reused while the entry exists.
        found = _matchers[id(groups)] = _PhraseMatcher(groups)
    return found


_prepared = lru_cache(maxsize=_CACHED_TEXTS)(prepare)


def waiting_messages(facts: ThreadFacts) -> list[Message]:
    inbound = [m for m in (facts.messages or facts.new_messages) if m.direction == Direction.IN]
    if facts.waiting_since is not None:
        waiting = [m for m in inbound if m.created_at >= facts.waiting_since]
        if waiting:
            return waiting
    return inbound[-1:]


def _engagement_points(messages: Iterable[Message]) -> tuple[int, dict[str, int]]:
    totals: dict[str, int] = {}
    for m in messages:
        for k, v in m.engagement.items():
            if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                totals[k] = totals.get(k, 0) + v
    points = sum(v * (2 if k in _SHARE_KEYS else 1) for k, v in totals.items())
    return points, totals


def _evaluate(facts: ThreadFacts, cfg: SlaConfig, now: datetime) -> Assessment:
    tc = cfg.triage
    score = 0.0
    reasons: list[str] = []
    tags: list[str] = []
    complaint = False

    def add(weight: float, reason: str) -> None:
        nonlocal score
        score += weight
        reasons.append(f"{reason} {_fmt_weight(weight)}")

    waiting = waiting_messages(facts)
    matcher = _matcher(tc.phrases)
    found = [matcher.hits(_prepared(m.text)) for m in waiting]

    # Phrases by severity: each group once, strongest groups first in the reasons.
    for k, group in enumerate(matcher.ordered):
        hit = next((h[k] for h in found if h[k]), None)
        if hit is None or group.weight == 0:
            continue
        add(group.weight, f"phrase {hit!r} ({group.label})")
        if group.tag:
            tags.append(group.tag)
        complaint = complaint or group.complaint

    # Sentiment: the worst waiting message decides how upset the customer is.
    judged: list[Sentiment] = [cached_analysis(m.text) for m in waiting]  # read only
    worst = min(judged, key=lambda s: s.score, default=Sentiment(0.0))
    best = max(judged, key=lambda s: s.score, default=Sentiment(0.0))
    if worst.score <= NEGATIVE_FROM and tc.negative_sentiment:
        words = ", ".join(repr(t) for t, v in sorted(worst.terms, key=lambda x: x[1])[:3]
                          if v < 0)
        add(round(tc.negative_sentiment * -worst.score, 1),
            f"negative sentiment {worst.score:+.2f}" + (f" ({words})" if words else ""))
    elif best.score >= POSITIVE_FROM and tc.positive_sentiment:
        add(-round(tc.positive_sentiment * best.score, 1),
            f"positive sentiment {best.score:+.2f}")
    if worst.score <= COMPLAINT_SENTIMENT:
        complaint = True

    # Who is asking: VIPs and people many others listen to.
    author = facts.author
    if tc.vip_weight and (tc.is_vip(facts.platform, author.handle)
                          or tc.is_vip(facts.platform, author.id)):
        add(tc.vip_weight, f"VIP @{author.handle.lstrip('@') or author.id}")
        tags.append("vip")
    high_reach = False
    if author.followers is not None:
        step = next((s for s in reversed(tc.reach) if author.followers >= s.followers), None)
        if step is not None and step.weight:
            add(step.weight, f"{_fmt_count(author.followers)} followers")
            high_reach = True

    points, totals = _engagement_points(waiting)
    step_e = next((s for s in reversed(tc.engagement) if points >= s.at), None)
    if step_e is not None and step_e.weight:
        detail = ", ".join(f"{k} {_fmt_count(v)}" for k, v in sorted(totals.items()))
        add(step_e.weight, f"engagement {_fmt_count(points)} ({detail})")
        high_reach = True
    if high_reach:
        tags.append("high-reach")

    # Repeat contact.
    if facts.waiting_since is not None and tc.repeat_contact:
        extra = len(waiting) - 1
        if extra > 0:
            add(min(extra * tc.repeat_contact, tc.repeat_contact_max),
                f"wrote {extra + 1} times while waiting")
    if facts.reopened and tc.repeat_contact:
        add(tc.repeat_contact, "wrote again after it was closed")

    if complaint:
        tags.append("complaint")

    # Time waited against the target of the urgency the other signals give.
    if facts.waiting_since is not None and (tc.waited_warning or tc.waited_breach):
        provisional = tc.level_for(score)
        target = sla_mod.target_for(
            cfg, platform=facts.platform, kind=facts.kind, urgency=provisional,
            answered_before=facts.answered_before, tags=[*facts.tags, *tags])
        used = sla_mod.elapsed_fraction(cfg, target, facts.waiting_since, now)
        target_text = format_duration(target.duration)
        if used >= 1.0 and tc.waited_breach:
            add(tc.waited_breach, f"waited past the {target_text} target")
        elif used >= cfg.warn_fraction and tc.waited_warning:
            add(tc.waited_warning, f"waited {used:.0%} of the {target_text} target")

    score = round(score, 1)
    urgency = tc.level_for(score)
    if urgency == Urgency.CRISIS:
        tags.append("crisis")
    return Assessment(urgency, score, reasons, list(dict.fromkeys(tags)), worst.score)


def assess_urgency(facts: ThreadFacts, cfg: SlaConfig,
                   now: datetime) -> tuple[Urgency, float, list[str]]:
    """The urgency level, the score and the reasons (``"phrase 'lawsuit' (legal threat) +45"``)."""
    a = _evaluate(facts, cfg, now)
    return a.urgency, a.score, a.reasons


class TriageAssessor:
    """The store's :class:`~replydeck.inbox.assess.Assessor`: urgency, tags and due times."""

    def __init__(self, cfg: SlaConfig) -> None:
        self.cfg = cfg

    def assess(self, facts: ThreadFacts, now: datetime) -> Decision:
        a = _evaluate(facts, self.cfg, now)
        all_tags = [*facts.tags, *a.tags]
        due_at, warn_at = sla_mod.due_times(
            self.cfg, waiting_since=facts.waiting_since, platform=facts.platform,
            kind=facts.kind, urgency=a.urgency, answered_before=facts.answered_before,
            tags=all_tags)
        new_tags = [t for t in a.tags if t not in facts.tags]
        if sla_mod.is_breached(due_at, now) and "breached" not in facts.tags:
            new_tags.append("breached")
        return Decision(urgency=a.urgency, score=a.score, reasons=a.reasons,
                        due_at=due_at, warn_at=warn_at, add_tags=new_tags)
