"""Notifications: bell, sanitised OSC desktop text, and a hook that can never block."""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from replydeck.config.sla import NotifyConfig, from_mapping
from replydeck.inbox import notify as notify_mod
from replydeck.inbox.notify import Notifier, osc_safe

EVENT = {"type": "breach", "conversation_id": 42, "platform": "x", "urgency": "urgent",
         "author": "@casey", "due_at": datetime(2026, 11, 18, 12, 0, tzinfo=timezone.utc)}


def make(cfg: NotifyConfig, **kw: Any) -> tuple[Notifier, list[str]]:
    written: list[str] = []
    return Notifier(cfg, write=written.append, **kw), written


def test_bell_by_default() -> None:
    n, written = make(from_mapping({}).notifications)
    n.notify(EVENT)
    assert written == ["\a"]


def test_nothing_written_when_bell_and_desktop_are_off() -> None:
    n, written = make(NotifyConfig(bell=False))
    n.notify(EVENT)
    assert written == []


def test_only_configured_events_notify() -> None:
    n, written = make(NotifyConfig(events=frozenset({"reply_failed"})))
    n.notify(EVENT)
    assert written == []
    n.notify({"type": "reply_failed", "conversation_id": 1})
    assert written == ["\a"]


def test_unknown_event_type_is_ignored_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    n, written = make(NotifyConfig())
    with caplog.at_level(logging.WARNING, "replydeck.notify"):
        n.notify({"type": "fire"})
    assert written == []
    assert "unknown event type 'fire'" in caplog.text


HOSTILE = "@evil\x1b]0;owned\x07;rm -rf\x1b\\\x9d8;;http://x\x9c\nline2\u202eabc"


def _osc_payload(data: str, prefix: str) -> str:
    assert data.startswith(prefix)
    # Exactly one terminator, at the very end, and no other ESC anywhere.
    body = data[len(prefix):]
    assert body.endswith("\x07")
    body = body[:-1]
    for bad in ("\x1b", "\x07", "\x9c", "\x9d", "\n", "\u202e"):
        assert bad not in body
    return body


def test_osc9_desktop_notification_is_sanitised() -> None:
    n, written = make(NotifyConfig(bell=False, desktop=True))
    n.notify({**EVENT, "author": HOSTILE})
    assert len(written) == 1
    body = _osc_payload(written[0], "\x1b]9;")
    assert ";" not in body
    assert body.startswith("replydeck: Response target missed: @evil")
    assert "(#42)" in body


def test_osc777_has_exactly_its_own_separators() -> None:
    n, written = make(NotifyConfig(bell=True, desktop=True, desktop_style="osc777"))
    n.notify({"type": "new_urgent", "urgency": "crisis", "author": HOSTILE,
              "conversation_id": 5, "platform": "bluesky"})
    data = written[0]
    assert data.endswith("\a")  # the bell after the notification
    payload = _osc_payload(data[:-1], "\x1b]777;notify;")
    title, body = payload.split(";")
    assert title == "replydeck: New crisis conversation"
    assert body.startswith("@evil") and body.endswith("on bluesky (#5)")


def test_osc_safe_limits_length() -> None:
    assert len(osc_safe("x" * 1000)) == 200
    assert osc_safe("a;b\x07c\x1bd e") == "a,bc e"  # ESC d is a whole sequence


def _writer_hook(path: Path) -> list[str]:
    return [sys.executable, "-c",
            "import sys, pathlib; pathlib.Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())",
            str(path)]


def test_hook_receives_the_event_as_json(tmp_path: Path) -> None:
    out = tmp_path / "event.json"
    n, written = make(NotifyConfig(on_event=_writer_hook(out)))
    n.notify(EVENT)
    assert written == ["\a"]
    assert n.wait_idle(20)
    event = json.loads(out.read_text())
    assert event == {**EVENT, "due_at": "2026-11-18T12:00:00+00:00"}
    n.close()


def test_hook_as_shell_string(tmp_path: Path) -> None:
    out = tmp_path / "type.txt"
    n, _ = make(NotifyConfig(on_event=f"cat > '{out}'"))
    n.notify({"type": "sla_warning", "conversation_id": 9})
    assert n.wait_idle(20)
    assert json.loads(out.read_text()) == {"type": "sla_warning", "conversation_id": 9}


def test_slow_hook_does_not_block_notify(tmp_path: Path) -> None:
    done = tmp_path / "done"
    n, written = make(NotifyConfig(on_event=f"sleep 10; touch '{done}'"))
    n.notify(EVENT)
    n.notify({**EVENT, "conversation_id": 43})
    # Both calls have returned, the bell rang twice, and the hook is still asleep.
    assert written == ["\a", "\a"]
    assert not done.exists()
    assert not n.wait_idle(0.05)
    n.close()
    assert n.wait_idle(5)
    assert not done.exists()  # close() stopped the hook and dropped the queued event


def test_hook_timeout_kills_it_and_logs_ids_only(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    done = tmp_path / "done"
    n, _ = make(NotifyConfig(on_event=f"sleep 10; touch '{done}'",
                             hook_timeout=timedelta(milliseconds=300)))
    with caplog.at_level(logging.WARNING, "replydeck.notify"):
        n.notify({**EVENT, "snippet": "my card number is 4111"})
        assert n.wait_idle(10)
    assert "on_event hook for breach (conversation 42) timed out after 0.3s" in caplog.text
    assert "4111" not in caplog.text and "casey" not in caplog.text
    assert not done.exists()


def test_failing_hook_is_logged_without_its_output(caplog: pytest.LogCaptureFixture) -> None:
    n, _ = make(NotifyConfig(on_event="cat; echo oops-token >&2; exit 3"))
    with caplog.at_level(logging.WARNING, "replydeck.notify"):
        n.notify({**EVENT, "snippet": "private words"})
        assert n.wait_idle(20)
    assert "on_event hook for breach (conversation 42) exited with status 3" in caplog.text
    assert "private words" not in caplog.text and "oops-token" not in caplog.text


def test_missing_hook_program_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    n, _ = make(NotifyConfig(on_event=["/nonexistent/replydeck-hook"]))
    with caplog.at_level(logging.WARNING, "replydeck.notify"):
        n.notify(EVENT)
        assert n.wait_idle(20)
    assert "could not start" in caplog.text


def test_custom_runner_gets_events_off_the_calling_thread() -> None:
    seen: list[tuple[str, int]] = []

    def runner(event: dict[str, Any]) -> None:
        seen.append((event["type"], threading.get_ident()))

    n, _ = make(NotifyConfig(), run=runner)
    n.notify(EVENT)
    assert n.wait_idle(5)
    assert seen == [("breach", seen[0][1])]
    assert seen[0][1] != threading.get_ident()


def test_full_queue_drops_and_logs(monkeypatch: pytest.MonkeyPatch,
                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(notify_mod, "QUEUE_LIMIT", 2)
    release = threading.Event()
    n, _ = make(NotifyConfig(), run=lambda e: release.wait(5))
    with caplog.at_level(logging.WARNING, "replydeck.notify"):
        for i in range(6):
            n.notify({"type": "new_urgent", "conversation_id": i})
    release.set()
    assert n.wait_idle(5)
    assert "hook queue full; dropped new_urgent" in caplog.text


def _conv(**kw: Any) -> Any:
    from replydeck.inbox.model import Author, Conversation, Kind, Status, Urgency

    base: dict[str, Any] = dict(
        id=3, source="main", thread_key="t", platform="x", kind=Kind.MENTION,
        status=Status.OPEN, urgency=Urgency.URGENT, author=Author("1", "casey\x1b[31m", "Casey"),
        snippet="where is my order", last_message_at=T, message_count=1, waiting_since=T,
        warn_at=T + timedelta(minutes=45), due_at=T + timedelta(hours=1),
    )
    base.update(kw)
    return Conversation(**base)


T = datetime(2026, 11, 18, 12, 0, tzinfo=timezone.utc)


def test_conversation_event_carries_ids_times_and_a_clean_author() -> None:
    event = notify_mod.conversation_event("new_urgent", _conv(), reason="phrase")
    assert event["type"] == "new_urgent" and event["conversation_id"] == 3
    assert event["author"] == "Casey (@casey)"
    assert event["due_at"] == "2026-11-18T13:00:00+00:00"
    assert event["reason"] == "phrase"
    json.dumps(event)  # serialisable as is


def test_became_urgent_only_on_the_way_up() -> None:
    from replydeck.inbox.model import Urgency

    assert notify_mod.became_urgent(None, Urgency.CRISIS)
    assert notify_mod.became_urgent(Urgency.HIGH, Urgency.URGENT)
    assert not notify_mod.became_urgent(Urgency.URGENT, Urgency.CRISIS)
    assert not notify_mod.became_urgent(Urgency.NORMAL, Urgency.HIGH)
