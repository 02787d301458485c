"""Triage through the real store: ingest -> urgency, reasons, tags and due times stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from replydeck.config.sla import from_mapping
from replydeck.inbox.model import Author, Direction, Kind, Message, Urgency
from replydeck.inbox.notify import SWEEP_EVENTS
from replydeck.inbox.store import Store
from replydeck.inbox.triage import TriageAssessor

UTC = timezone.utc
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # Friday 16:00 in Berlin
CFG = from_mapping({
    "sla": {"policies": [{"name": "public-office-hours", "kind": "public",
                          "urgency": ["normal", "low", "high"], "first_response": "2h",
                          "business_hours": True}]},
    "business_hours": {"timezone": "Europe/Berlin",
                       **{d: ["09:00-17:00"] for d in
                          ("monday", "tuesday", "wednesday", "thursday", "friday")}},
})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "replydeck.db", assessor=TriageAssessor(CFG))
    yield s
    s.close()


def message(remote_id: str, text: str, *, platform: str = "mastodon",
            kind: Kind = Kind.MENTION, followers: int | None = None,
            minutes_ago: int = 0, thread: str | None = None) -> Message:
    return Message(source="main", remote_id=remote_id, platform=platform, kind=kind,
                   author=Author("u1", "casey", "Casey", followers), text=text,
                   created_at=NOW - timedelta(minutes=minutes_ago), thread_key=thread,
                   direction=Direction.IN)


def test_urgent_japanese_complaint_is_stored_with_reasons_and_a_one_hour_clock(
        store: Store) -> None:
    result = store.ingest("main", [message("1", "ログインできない！返金してください。最悪です")],
                          None, now=NOW)
    conv = store.conversation(result.new_conversations[0])
    assert conv is not None
    assert conv.urgency in (Urgency.URGENT, Urgency.CRISIS)
    assert conv.reasons[:2] == ["phrase 'ログインできない' (outage) +30",
                                "phrase '返金' (billing) +20"]
    assert {"outage", "billing", "complaint"} <= set(conv.tags)
    assert conv.due_at == NOW + timedelta(hours=1)  # urgent: around the clock
    assert conv.warn_at == NOW + timedelta(minutes=45)


def test_calm_question_runs_on_business_hours(store: Store) -> None:
    result = store.ingest("main", [message("2", "Do you ship to Norway?")], None, now=NOW)
    conv = store.conversation(result.new_conversations[0])
    assert conv is not None and conv.urgency == Urgency.NORMAL
    # 2 h of business time from Friday 16:00 Berlin: 1 h on Friday, 1 h from Monday 09:00.
    assert conv.due_at == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 10:00 Berlin
    assert conv.reasons == []


def test_sweep_breaches_what_triage_made_due(store: Store) -> None:
    result = store.ingest("main", [message("3", "The site is down", platform="x",
                                           followers=50_000)], None, now=NOW)
    conv_id = result.new_conversations[0]
    changed = store.sweep(NOW + timedelta(hours=2))
    assert changed["breached"] == [conv_id]
    assert [SWEEP_EVENTS[k] for k, ids in changed.items() if ids and k in SWEEP_EVENTS] == [
        "breach"]
    conv = store.conversation(conv_id)
    assert conv is not None and "breached" in conv.tags


def test_repeat_messages_raise_urgency_on_the_next_ingest(store: Store) -> None:
    first = store.ingest("main", [message("4", "hello, where is my order?", thread="t",
                                          minutes_ago=30)], None, now=NOW)
    conv_id = first.new_conversations[0]
    before = store.conversation(conv_id)
    store.ingest("main", [message("5", "hello??", thread="t", minutes_ago=20),
                          message("6", "anyone there? still nothing", thread="t",
                                  minutes_ago=10)], None, now=NOW)
    after = store.conversation(conv_id)
    assert before is not None and after is not None
    assert after.score > before.score
    assert "wrote 3 times while waiting +16" in after.reasons
