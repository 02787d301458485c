"""Test data for the TUI: realistic EN/JA conversations and the hostile corpus.

Ingested straight into a Store with a deterministic assessor, at a frozen "now".
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from replydeck.inbox.assess import Decision, PlainAssessor, ThreadFacts
from replydeck.inbox.model import Author, Direction, Kind, Message, Urgency
from replydeck.inbox.store import Store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
SOURCE = "social"
HOSTILE = Path("/work/shared/corpus/hostile-text.jsonl")
AGENT = "sam"

_WORDS = (
    ("lawsuit", Urgency.CRISIS, "legal threat"),
    ("hacked", Urgency.CRISIS, "security"),
    ("down", Urgency.URGENT, "outage"),
    ("障害", Urgency.URGENT, "outage (ja)"),
    ("refund", Urgency.HIGH, "refund"),
    ("返金", Urgency.HIGH, "refund (ja)"),
    ("thanks", Urgency.LOW, "thanks"),
)


class KeywordAssessor(PlainAssessor):
    """Urgency from a few words in the thread; due times from PlainAssessor."""

    def assess(self, facts: ThreadFacts, now: datetime) -> Decision:
        d = super().assess(facts, now)
        text = " ".join(m.text.lower() for m in facts.messages if m.direction == Direction.IN)
        for word, urgency, reason in _WORDS:
            if word in text:
                d.urgency = urgency
                d.reasons = [f"mentions {reason}"]
                break
        if facts.author.followers and facts.author.followers >= 100_000:
            d.reasons.append(f"{facts.author.followers:,} followers")
            if d.urgency.rank > Urgency.HIGH.rank:
                d.urgency = Urgency.HIGH
        return d


def msg(rid: str, platform: str, kind: Kind, author: Author, text: str, minutes_ago: float,
        *, thread: str | None = None, direction: Direction = Direction.IN,
        url: str | None = None) -> Message:
    return Message(source=SOURCE, remote_id=rid, platform=platform, kind=kind, author=author,
                   text=text, created_at=NOW - timedelta(minutes=minutes_ago),
                   direction=direction, thread_key=thread or rid,
                   url=url or f"https://{platform}.example/{rid}")


MAYA = Author("u-maya", "maya_codes", "Maya Okafor", followers=820)
GRACE = Author("u-grace", "gadgetgrace", "Grace Liu | Tech Reviews", followers=250_000,
               verified=True)
YUKI = Author("u-yuki", "yuki_tanaka", "田中 由紀", followers=1200)
KENJI = Author("u-kenji", "kenji_sato", "佐藤 健二", followers=90)
DAN = Author("u-dan", "dwhitfield", "Dan Whitfield", followers=15)
PRIYA = Author("u-priya", "priya@example.com", "Priya Sharma")
HANNAH = Author("u-hannah", "hannah.kim", "Hannah Kim", followers=3100)
EMOJI = Author("u-emoji", "party_parrot", "🎉 Party 🦜 Parrot 👨‍👩‍👧‍👦", followers=45_000)


def realistic() -> list[Message]:
    me = Author("me", "kestrel_help", "Kestrel Support")
    return [
        msg("x1", "x", Kind.MENTION, GRACE, "@kestrel_help your app has been down all "
            "morning and nobody answers. 250k people are watching.", 50),
        msg("x2", "x", Kind.DM, MAYA, "Hi! I was charged twice for order #4411, can I get "
            "a refund for one of them?", 130, thread="dm-maya"),
        msg("x2b", "x", Kind.DM, MAYA, "Also the receipt email never arrived.", 125,
            thread="dm-maya"),
        msg("m1", "mastodon", Kind.MENTION, DAN, "Loving the new update, thanks team!", 300),
        msg("b1", "bluesky", Kind.MENTION, HANNAH, "Is the sync feature coming to the "
            "iPad app? Asking for a friend.", 20),
        msg("ig1", "instagram", Kind.COMMENT, YUKI, "アプリに障害が発生しています。ログイン"
            "できません", 8),
        msg("ig2", "instagram", Kind.DM, KENJI, "注文した商品がまだ届きません。返金して"
            "いただけますか？", 240, thread="dm-kenji"),
        msg("fb1", "facebook", Kind.COMMENT, EMOJI, "Best coffee in town ☕☕ 🎉", 2900),
        msg("e1", "email", Kind.EMAIL, PRIYA, "Subject: invoice\n\nCould you resend the "
            "invoice for October? Our accountant needs it.", 70, thread="mail-priya"),
        msg("x3", "x", Kind.MENTION, MAYA, "@kestrel_help my account was hacked, please "
            "lock it now", 3),
        msg("x4", "x", Kind.MENTION, DAN, "@kestrel_help where do I change my password?",
            15, thread="x4"),
        msg("x4r", "x", Kind.REPLY, me, "Settings → Account → Password. Thanks Dan!", 10,
            thread="x4", direction=Direction.OUT),
    ]


def hostile() -> list[Message]:
    out = []
    for i, line in enumerate(HOSTILE.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        item = json.loads(line)
        name = item["text"][:40]
        author = Author(f"h-{i}", f"[bold]h{i}[/]", name, followers=100_000 * (i % 3))
        out.append(msg(f"h{i}", ("x", "mastodon", "bluesky", "email")[i % 4], Kind.MENTION,
                       author, item["text"], 5 + i))
    return out


def make_store(path: Path, messages: list[Message]) -> Store:
    store = Store(path, assessor=KeywordAssessor())
    store.register_source(SOURCE, "tuifake", "demo")
    store.ingest(SOURCE, messages, None, now=NOW)
    return store


def bulk(n: int, start: int = 0) -> list[Message]:
    """``n`` plain conversations (for scale tests and the bench)."""
    people = [MAYA, YUKI, DAN, HANNAH, KENJI, PRIYA, EMOJI, GRACE]
    texts = ["Where is my order?", "ログインできません", "Love it!", "refund please",
             "the app is down", "返金をお願いします", "How do I export my data?", "thanks!"]
    platforms = [("x", Kind.MENTION), ("instagram", Kind.DM), ("mastodon", Kind.MENTION),
                 ("email", Kind.EMAIL), ("bluesky", Kind.MENTION), ("facebook", Kind.COMMENT)]
    out = []
    for i in range(start, start + n):
        platform, kind = platforms[i % len(platforms)]
        person = people[i % len(people)]
        out.append(msg(f"bulk{i}", platform, kind, person, f"{texts[i % len(texts)]} #{i}",
                       (i * 7) % 5000 + 1))
    return out
