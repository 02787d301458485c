"""What the status line and the conversation parts say, built from store data."""

from __future__ import annotations

from datetime import timedelta

from replydeck.inbox.assess import Decision
from replydeck.inbox.model import Urgency
from replydeck.inbox.poller import PollOutcome
from replydeck.inbox.store import IngestResult, SourceState
from replydeck.tui.services import urgent_new
from replydeck.tui.widgets.conversation import author_card, triage_text
from replydeck.tui.widgets.status_bar import outbox_text, source_text
from tests.tui import data


def test_source_health_with_reason_and_next_poll():
    states = [
        SourceState("x-main", "x", "x", None, "ok", None, data.NOW, data.NOW,
                    data.NOW + timedelta(seconds=40), 0),
        SourceState("mastodon", "mastodon", "mastodon", None, "degraded",
                    "rate limited until 12:05 [bold]x[/]", None, data.NOW,
                    data.NOW + timedelta(minutes=5), 3),
    ]
    text = source_text(states, data.NOW).plain
    assert "x-main ok (next 40s)" in text
    assert "mastodon degraded: rate limited until 12:05 [bold]x[/] (next 5m)" in text


def test_outbox_counts_name_every_waiting_state():
    assert outbox_text({}).plain.strip() == "outbox empty"
    text = outbox_text({"queued": 2, "failed": 1, "unconfirmed": 1}).plain
    assert "2 queued" in text and "1 failed" in text and "1 unconfirmed" in text


def test_author_card_and_sla_details(store):
    grace = store.conversation(store.find_conversation(data.SOURCE, "x1"))
    card = author_card(grace, earlier=2).plain
    assert "Grace Liu | Tech Reviews" in card and "@gadgetgrace" in card
    assert "✓ verified" in card and "followers 250k" in card and "earlier conversations 2" in card
    triage = triage_text(grace, data.NOW, "%H:%M").plain
    assert "URGENT" in triage and "mentions outage" in triage and "250,000 followers" in triage
    assert "waiting since 11:10 (50m)" in triage and "due 15:10 (3h10m left)" in triage
    assert "target 4h" in triage
    late = triage_text(grace, data.NOW + timedelta(hours=4), "%H:%M").plain
    assert "(50m late)" in late


def test_only_new_urgent_conversations_ring():
    ingest = IngestResult(new_conversations=[1, 2, 3],
                          decisions={1: Decision(urgency=Urgency.CRISIS),
                                     2: Decision(urgency=Urgency.NORMAL),
                                     3: Decision(urgency=Urgency.URGENT),
                                     4: Decision(urgency=Urgency.CRISIS)})
    assert urgent_new(PollOutcome("x", "ok", ingest=ingest)) == [1, 3]
    assert urgent_new(PollOutcome("x", "ok")) == []
