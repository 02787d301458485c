"""Small hand-built worlds for the report tests, made through the real Store API.

Every timestamp is chosen so each figure is known in advance; the expected values are
worked out in the comments of the tests that use them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from replydeck.config.sla import SlaConfig, from_mapping
from replydeck.inbox.assess import Decision, ThreadFacts
from replydeck.inbox.model import Author, Direction, Kind, Message, Status
from replydeck.inbox.store import Store
from replydeck.inbox.triage import TriageAssessor

UTC = timezone.utc
SOURCE = "src"


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def berlin_config() -> SlaConfig:
    """Built-in policies on business hours: Mon-Fri 09:00-17:00 Europe/Berlin."""
    return from_mapping({"sla": {"business_hours": True},
                         "business_hours": {"timezone": "Europe/Berlin"}})


class RuleAssessor:
    """Triage plus two rules, as the rules engine applies them through the assess contract:
    "crypto" is spam (tag + done), a bare "thanks" is closed without a reply."""

    def __init__(self, cfg: SlaConfig) -> None:
        self.inner = TriageAssessor(cfg)

    def assess(self, facts: ThreadFacts, now: datetime) -> Decision:
        d = self.inner.assess(facts, now)
        text = " ".join(m.text for m in facts.new_messages if m.direction == Direction.IN)
        if "crypto" in text:
            d.status, d.fired_rules = Status.DONE, ["spam"]
            d.add_tags = [*d.add_tags, "spam"]
        elif text.strip() == "thanks":
            d.status, d.fired_rules = Status.DONE, ["thanks"]
        return d


class World:
    def __init__(self, path: Path, cfg: SlaConfig) -> None:
        self.cfg = cfg
        self.store = Store(path, assessor=RuleAssessor(cfg))
        self._n = 0

    def close(self) -> None:
        self.store.close()

    def _id(self) -> str:
        self._n += 1
        return f"m{self._n}"

    def customer(self, thread: str, at: datetime, text: str = "hello there", *,
                 platform: str = "x", kind: Kind = Kind.DM) -> int:
        msg = Message(source=SOURCE, remote_id=self._id(), platform=platform, kind=kind,
                      author=Author(id=f"u-{thread}", handle=f"user_{thread}"), text=text,
                      created_at=at, thread_key=thread)
        self.store.ingest(SOURCE, [msg], None, now=at)
        conv = self.store.find_conversation(SOURCE, thread)
        assert conv is not None
        return conv

    def external_reply(self, conv: int, at: datetime) -> None:
        """A reply typed in the platform's own app, seen by the poller."""
        c = self.store.conversation(conv)
        assert c is not None
        msg = Message(source=SOURCE, remote_id=self._id(), platform=c.platform, kind=c.kind,
                      author=Author(id="brand", handle="brand"), text="answered in the app",
                      created_at=at, direction=Direction.OUT, thread_key=c.thread_key)
        self.store.ingest(SOURCE, [msg], None, now=at)

    def reply(self, conv: int, at: datetime, agent: str, *, automated: bool = False) -> int:
        r = self.store.queue_reply(conv, "thanks for writing", agent=agent, automated=automated,
                                   now=at - timedelta(seconds=20))
        due, _stale = self.store.claim_replies("w", lease_until=at + timedelta(minutes=5),
                                               now=at - timedelta(seconds=10))
        assert [x.id for x in due] == [r.id]
        self.store.mark_sent(r.id, remote_id=f"out-{r.id}", sent_at=at, now=at)
        return r.id

    def failed_then_retried(self, conv: int, agent: str, queued: datetime,
                            failed: datetime, retried: datetime, sent: datetime,
                            sweep_at: datetime | None = None) -> int:
        r = self.store.queue_reply(conv, "sorry for the wait", agent=agent, now=queued)
        due, _ = self.store.claim_replies("w", lease_until=failed + timedelta(minutes=5),
                                          now=queued)
        assert [x.id for x in due] == [r.id]
        self.store.mark_failed(r.id, "HTTP 503", now=failed)
        if sweep_at is not None:
            self.store.sweep(sweep_at)
        self.store.requeue_reply(r.id, actor=agent, now=retried)
        due, _ = self.store.claim_replies("w", lease_until=sent + timedelta(minutes=5), now=sent)
        assert [x.id for x in due] == [r.id]
        self.store.mark_sent(r.id, remote_id=f"out-{r.id}", sent_at=sent, now=sent)
        return r.id

    def resolve(self, conv: int, at: datetime, actor: str = "ana") -> None:
        self.store.set_status([conv], Status.DONE, actor=actor, now=at)
