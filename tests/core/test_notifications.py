"""The runtime's notification router: sweep and outbox results become notifier events."""

from __future__ import annotations

from datetime import timedelta

from replydeck.inbox.model import Kind
from replydeck.inbox.outbox import OutboxReport
from replydeck.runtime import NotificationRouter
from tests.core.conftest import T0, msg


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def notify(self, event: dict) -> None:
        self.events.append(dict(event))


def test_sweep_warnings_and_breaches_and_failed_replies_are_notified(store):
    store.ingest("src", [msg("a", "where is my refund?", thread="t", kind=Kind.DM,
                             author="maria")], None, now=T0)
    conv_id = store.find_conversation("src", "t")
    recorder = Recorder()
    router = NotificationRouter(store, recorder)
    router.on_sweep(store.sweep(T0 + timedelta(minutes=50)))
    router.on_sweep(store.sweep(T0 + timedelta(hours=2)))
    reply = store.queue_reply(conv_id, "on it", now=T0)
    store.mark_failed(reply.id, "token expired")
    router.on_outbox(OutboxReport(failed=[(reply.id, "token expired")]))
    assert [e["type"] for e in recorder.events] == ["sla_warning", "breach", "reply_failed"]
    assert all(e["conversation_id"] == conv_id for e in recorder.events)
    assert recorder.events[0]["author"] == "Maria (@maria)"
    assert recorder.events[2]["error"] == "token expired"


def test_ingest_reports_conversations_that_became_urgent(store):
    from replydeck.inbox.assess import Decision
    from replydeck.inbox.model import Urgency

    class Judge:
        def assess(self, facts, now):
            text = " ".join(m.text for m in facts.messages)
            return Decision(urgency=Urgency.CRISIS if "lawyer" in text else Urgency.NORMAL)

    store.assessor = Judge()
    first = store.ingest("src", [msg("a", "hi", thread="t")], None, now=T0)
    assert first.became_urgent == []
    second = store.ingest("src", [msg("b", "my lawyer will call", minutes=1, thread="t")],
                          None, now=T0)
    assert second.became_urgent == [store.find_conversation("src", "t")]
    third = store.ingest("src", [msg("c", "lawyer again", minutes=2, thread="t")], None,
                         now=T0)
    assert third.became_urgent == []  # already urgent: no second notification
