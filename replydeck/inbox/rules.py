"""Automation rules applied at ingest, and the guards around automatic replies.

:class:`RulesAssessor` wraps the triage assessor: triage decides urgency and due times
first, then each ``[[rules]]`` entry is tried in order against the conversation and the
customer's new messages, and the actions of those that fire are merged into the
:class:`~replydeck.inbox.assess.Decision` (``stop = true`` ends the list). The assessor
does no I/O; the store applies the decision in the same transaction as the ingest.

Automatic replies are guarded. A rule's ``auto_reply`` is sent only when the change brought
a new customer message, and never when the conversation is crisis or urgent (after triage
and every rule), the new messages read as negative, the author is a VIP, a person has
already answered the conversation, or a rule closed it; and at most once per conversation
per ``auto_reply_every`` (default 24 h). An out-of-hours rule (``business_hours =
"outside"``) acknowledges once per off-hours period: not again until the business has been
open in between. A blocked auto-reply leaves a reason such as ``auto-reply skipped: VIP``.

What an automation sends is queued by the store as ``Reply(automated=True)`` and stored as
``Message(automated=True)``; it never ends ``waiting_since`` and never counts as a first
response in metrics (automated replies do not stop the clock, as in Zendesk and Chatwoot).
"""

from __future__ import annotations

import importlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from replydeck.config.rules import Rule, Words, normalise_text
from replydeck.config.sla import format_duration
from replydeck.inbox.assess import Assessor, AutoReply, Decision, PlainAssessor, ThreadFacts
from replydeck.inbox.model import Direction, Message, Status, Urgency
from replydeck.inbox.replies import render
from replydeck.inbox.suggest import guess_language, primary_language

#: A message at or below this reads as negative, at or above POSITIVE_FROM as positive
#: (the thresholds triage uses).
NEGATIVE_BELOW = -0.2
POSITIVE_FROM = 0.3

SentimentFn = Callable[[str, "str | None"], float]


def _load_sentiment() -> SentimentFn | None:
    try:
        return importlib.import_module("replydeck.inbox.sentiment").sentiment
    except ImportError:
        return None


def _latest_customer_run(messages: list[Message]) -> list[Message]:
    run: list[Message] = []
    for m in reversed(messages):
        if m.direction != Direction.IN:
            break
        run.append(m)
    return run[::-1]


def customer_messages(facts: ThreadFacts) -> list[Message]:
    """The customer messages rules look at: the new ones, else the latest one."""
    inbound = [m for m in facts.new_messages if m.direction == Direction.IN and not m.automated]
    if inbound or facts.new_messages:
        return inbound
    earlier = [m for m in facts.messages if m.direction == Direction.IN and not m.automated]
    return earlier[-1:]


# What the rules read of a text, remembered for recent texts: a conversation is assessed
# again on every change, mostly with the same customer messages.
_CACHED_TEXTS = 1024
_normalised = lru_cache(maxsize=_CACHED_TEXTS)(normalise_text)


@lru_cache(maxsize=_CACHED_TEXTS)
def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


_LOOKBEHIND = r"(?<!\w)"
_QUANTIFIERS = frozenset("*+?{")


def _literal_first(pattern: re.Pattern[str]) -> re.Pattern[str]:
    r"""``pattern`` with a leading ``(?<!\w)c`` written ``c(?<!\wc)``: the same test, but a
    pattern that begins with a literal lets the regex engine jump to where that character
    is instead of running the look-behind at every character (several times faster).

    Only for the shape word patterns have (default flags; the look-behind followed by a
    letter or digit that no quantifier applies to); anything else is returned as it is.
    """
    src = pattern.pattern
    if not isinstance(src, str) or not src.startswith(_LOOKBEHIND) \
            or pattern.flags != re.UNICODE:
        return pattern
    first, after = src[len(_LOOKBEHIND):len(_LOOKBEHIND) + 1], src[len(_LOOKBEHIND) + 1:]
    if not first.isalnum() or after[:1] in _QUANTIFIERS:
        return pattern
    try:
        return re.compile(rf"{first}(?<!\w{first}){after}")
    except re.error:
        return pattern


_fast_words: dict[int, tuple[Words, tuple[re.Pattern[str], ...]]] = {}


def _word_patterns(words: Words) -> tuple[re.Pattern[str], ...] | None:
    """The faster equivalents of ``words.patterns``, built once per :class:`Words`; None
    when its words and patterns do not pair up (``Words`` itself reports that)."""
    found = _fast_words.get(id(words))
    if found is not None and found[0] is words:
        return found[1]
    if not isinstance(words.patterns, tuple) or len(words.patterns) != len(words.words):
        return None
    if len(_fast_words) >= 256:
        _fast_words.clear()
    # The entry holds ``words``, so its id is not reused while the entry exists.
    fast = tuple(_literal_first(p) for p in words.patterns)
    _fast_words[id(words)] = (words, fast)
    return fast


def _any_in(words: Words, text: str) -> bool:
    """Whether ``words.any_in(text)`` finds a word."""
    patterns = _word_patterns(words)
    if patterns is None:
        return words.any_in(text) is not None
    return any(p.search(text) for p in patterns)


def _all_in(words: Words, text: str) -> bool:
    """``words.all_in(text)``."""
    patterns = _word_patterns(words)
    if patterns is None:
        return words.all_in(text)
    return all(p.search(text) for p in patterns)


@dataclass
class _Context:
    """What conditions read, each worked out once and only when a rule asks."""

    facts: ThreadFacts
    now: datetime
    assessor: RulesAssessor
    _cache: dict[str, Any] = field(default_factory=dict)

    def _get(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def customer(self) -> list[Message]:
        """:func:`customer_messages` of the facts (read it, do not change it)."""
        return self._get("customer", lambda: customer_messages(self.facts))

    @property
    def raw_text(self) -> str:
        return self._get("raw", lambda: "\n".join(m.text for m in self.customer))

    @property
    def text(self) -> str:
        return self._get("text", lambda: _normalised(self.raw_text))

    @property
    def nfkc_text(self) -> str:
        return self._get("nfkc", lambda: _nfkc(self.raw_text))

    @property
    def language(self) -> str | None:
        def compute() -> str | None:
            for m in reversed(self.customer):
                if m.language:
                    return primary_language(m.language)
            return guess_language(self.raw_text) if self.raw_text else None
        return self._get("language", compute)

    @property
    def sentiment(self) -> tuple[float, float] | None:
        """``(worst, best)`` over the customer messages; None when it cannot be measured.

        One angry message among calm ones is an angry conversation, as in triage.
        """
        fn = self.assessor.sentiment_fn
        if fn is None:
            return None

        def compute() -> tuple[float, float]:
            scores = [fn(m.text, self.language) for m in self.customer
                      if m.text.strip()] or [0.0]
            return min(scores), max(scores)
        return self._get("sentiment", compute)

    @property
    def vip(self) -> bool:
        return self._get("vip", lambda: self.assessor.is_vip(self.facts))

    @property
    def is_open(self) -> bool:
        def compute() -> bool:
            cal = self.assessor.calendar
            return True if cal is None else cal.is_open(self.now)
        return self._get("open", compute)


def _matches(rule: Rule, ctx: _Context, decision: Decision) -> bool:
    w, facts = rule.when, ctx.facts
    if w.platforms and facts.platform not in w.platforms:
        return False
    if w.kinds:
        kind = facts.kind.value
        cls = "private" if facts.kind.is_private else "public"
        if kind not in w.kinds and cls not in w.kinds:
            return False
    if w.uses_text and not ctx.customer:
        return False
    if w.text and not _any_in(w.text, ctx.text):
        return False
    if w.text_all and not _all_in(w.text_all, ctx.text):
        return False
    if w.text_regex and not any(p.search(ctx.nfkc_text) for p in w.text_regex):
        return False
    if w.languages and ctx.language not in w.languages:
        return False
    if w.followers_gte is not None and (facts.author.followers or 0) < w.followers_gte:
        return False
    if w.vip is not None and ctx.vip != w.vip:
        return False
    if w.sentiment or w.sentiment_below is not None or w.sentiment_above is not None:
        scores = ctx.sentiment
        if scores is None:
            return False
        worst, best = scores
        negative = worst <= NEGATIVE_BELOW
        positive = best >= POSITIVE_FROM and not negative
        if w.sentiment == "negative" and not negative:
            return False
        if w.sentiment == "positive" and not positive:
            return False
        if w.sentiment == "neutral" and (negative or positive):
            return False
        if w.sentiment_below is not None and not worst < w.sentiment_below:
            return False
        if w.sentiment_above is not None and not best > w.sentiment_above:
            return False
    if w.urgency is not None and decision.urgency.rank > w.urgency.rank:
        return False
    if w.business_hours is not None and ctx.is_open != (w.business_hours == "inside"):
        return False
    if w.contact is not None:
        repeat = facts.earlier_conversations > 0 or facts.reopened
        if repeat != (w.contact == "repeat"):
            return False
    return True


@dataclass
class _Candidate:
    rule: Rule
    actions: list[str]


class RulesAssessor:
    """An :class:`Assessor` that runs ``inner`` (triage) and then the rules."""

    def __init__(self, inner: Assessor | None, rules: list[Rule], *, sla: Any = None,
                 brand: str = "", sentiment_fn: SentimentFn | None = None,
                 load_sentiment: bool = True) -> None:
        self.inner: Assessor = inner or PlainAssessor()
        self.rules = list(rules)
        #: The parsed ``[sla]`` config (replydeck.config.sla.SlaConfig) or None.
        self.sla = sla
        self.brand = brand
        self.sentiment_fn = sentiment_fn or (_load_sentiment() if load_sentiment else None)

    @property
    def calendar(self) -> Any:
        return getattr(self.sla, "calendar", None)

    def is_vip(self, facts: ThreadFacts) -> bool:
        triage = getattr(self.sla, "triage", None)
        author = facts.author
        if triage is not None and any(triage.is_vip(facts.platform, h)
                                      for h in (author.handle, author.id) if h):
            return True
        # Triage tags VIPs too; a tag a person added by hand counts the same.
        return "vip" in (t.lower() for t in facts.tags)

    # -- the Assessor protocol ---------------------------------------------------------
    def assess(self, facts: ThreadFacts, now: datetime) -> Decision:
        decision = self.inner.assess(facts, now)
        self._apply(facts, now, decision)
        return decision

    def explain(self, facts: ThreadFacts, now: datetime, *,
                as_if_new: bool = False) -> list[tuple[str, list[str]]]:
        """Which rules would fire on ``facts`` and what they would do, doing nothing.

        For ``replydeck rules test``; blocked auto-replies show the guard's reason. With
        ``as_if_new`` a stored conversation is judged as if its latest customer messages
        (those after our last reply) had just arrived, as they were at ingest.
        """
        if as_if_new and not facts.new_messages:
            facts = replace(facts, new_messages=_latest_customer_run(facts.messages))
        decision = self.inner.assess(facts, now)
        return self._apply(facts, now, decision)

    # -- rules -------------------------------------------------------------------------
    def _apply(self, facts: ThreadFacts, now: datetime,
               decision: Decision) -> list[tuple[str, list[str]]]:
        ctx = _Context(facts, now, self)
        trace: list[tuple[str, list[str]]] = []
        urgency_before = decision.urgency
        tags_before = list(decision.add_tags)
        candidates: list[_Candidate] = []
        for rule in self.rules:
            if not _matches(rule, ctx, decision):
                continue
            then = rule.then
            actions = then.describe()
            decision.fired_rules.append(rule.name)
            for tag in then.tags:
                if tag not in decision.add_tags:
                    decision.add_tags.append(tag)
            if then.urgency is not None and then.urgency != decision.urgency:
                decision.urgency = then.urgency
                decision.reasons.append(f"rule {rule.name!r}: urgency set to {then.urgency}")
            if then.raise_urgency is not None and \
                    then.raise_urgency.rank < decision.urgency.rank:
                decision.urgency = then.raise_urgency
                decision.reasons.append(f"rule {rule.name!r}: urgency raised to "
                                        f"{then.raise_urgency}")
            if then.assign:
                decision.assign = then.assign
            if then.done:
                decision.status, decision.snooze_until = Status.DONE, None
            if then.snooze:
                decision.status = Status.SNOOZED
                decision.snooze_until = now + then.snooze
            for view in then.views:
                if view not in decision.views:
                    decision.views.append(view)
            trace.append((rule.name, actions))
            if then.auto_reply is not None:
                candidates.append(_Candidate(rule, actions))
            if rule.stop:
                actions.append("stop")
                break
        if decision.urgency != urgency_before or decision.add_tags != tags_before:
            self._recompute_due(facts, decision)
        self._choose_auto_reply(ctx, decision, candidates)
        return trace

    def _recompute_due(self, facts: ThreadFacts, decision: Decision) -> None:
        if self.sla is None or not hasattr(self.sla, "policies"):
            return  # no [sla]: the inner assessor's targets do not depend on urgency
        from replydeck.inbox.sla import due_times
        decision.due_at, decision.warn_at = due_times(
            self.sla, waiting_since=facts.waiting_since, platform=facts.platform,
            kind=facts.kind, urgency=decision.urgency, answered_before=facts.answered_before,
            tags=[*facts.tags, *decision.add_tags])

    # -- auto-replies and their guards -------------------------------------------------
    def _conversation_guard(self, ctx: _Context, decision: Decision) -> str | None:
        facts = ctx.facts
        if not any(m.direction == Direction.IN and not m.automated
                   for m in facts.new_messages):
            return "no new customer message"
        if decision.status == Status.DONE:
            return "a rule closed the conversation"
        if decision.urgency in (Urgency.CRISIS, Urgency.URGENT):
            return f"urgency is {decision.urgency}"
        if facts.last_human_reply_at is not None:
            return "a person has answered this conversation"
        if ctx.vip:
            return "VIP"
        scores = ctx.sentiment
        if scores is None:
            return "sentiment cannot be checked"
        if scores[0] <= NEGATIVE_BELOW:
            return "negative sentiment"
        return None

    def _rule_guard(self, ctx: _Context, rule: Rule) -> str | None:
        last = ctx.facts.last_auto_reply_at
        if last is None:
            return None
        cal = self.calendar
        if rule.when.business_hours == "outside" and cal is not None and \
                cal.between(last, ctx.now) <= timedelta(0):
            return "already acknowledged in this off-hours period"
        every = rule.then.auto_reply_every
        if every is not None and ctx.now - last < every:
            ago = format_duration(max(ctx.now - last, timedelta(minutes=1)))
            return f"auto-replied {ago} ago (at most once every {format_duration(every)})"
        return None

    def _choose_auto_reply(self, ctx: _Context, decision: Decision,
                           candidates: list[_Candidate]) -> None:
        if not candidates:
            return
        blocked = self._conversation_guard(ctx, decision)
        for cand in candidates:
            reply = cand.rule.then.auto_reply
            assert reply is not None
            reason = blocked
            if reason is None and decision.auto_reply is not None:
                reason = f"another auto-reply ({decision.auto_reply.saved_reply!r}) was chosen"
            if reason is None:
                reason = self._rule_guard(ctx, cand.rule)
            if reason is not None:
                cand.actions.append(f"auto-reply {reply.name!r} skipped: {reason}")
                note = f"auto-reply skipped: {reason}"
                if note not in decision.reasons:
                    decision.reasons.append(note)
                continue
            facts = ctx.facts
            body = render(reply, platform=facts.platform, customer=facts.author,
                          agent_name=None, brand=self.brand)
            decision.auto_reply = AutoReply(body=body, private=facts.kind.is_private,
                                            saved_reply=reply.name)
            cand.actions.append(f"auto-reply {reply.name!r}")


def _triage_assessor(config: Any) -> Assessor | None:
    """The triage assessor when that module is part of this build."""
    try:
        module = importlib.import_module("replydeck.inbox.triage")
    except ImportError:
        return None
    cls = getattr(module, "TriageAssessor", None)
    if cls is None:
        return None
    sla = getattr(config, "sla", None)
    if sla is None:
        from replydeck.config.sla import SlaConfig
        sla = SlaConfig()
    return cls(sla)


def build_assessor(config: Any) -> Assessor:
    """Triage (if built) plus the config's rules: what the store should be given.

    ``config`` is a :class:`replydeck.config.loader.Config` (its ``sla``, ``rules`` and
    ``brand`` are used; a missing section means none).
    """
    inner = _triage_assessor(config) or PlainAssessor()
    rules = getattr(config, "rules", None) or []
    return RulesAssessor(inner, rules, sla=getattr(config, "sla", None),
                         brand=getattr(config, "brand", "") or "")
