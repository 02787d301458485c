"""Telling a person that something needs them: bell, desktop notification, hook command.

Events are dicts with at least ``type`` (``new_urgent``, ``sla_warning``, ``breach``,
``reply_failed``) and usually ``conversation_id``, ``platform``, ``urgency``, ``author``,
``due_at``. :meth:`Notifier.notify` never blocks: the bell and the OSC sequence are one
short write; the ``on_event`` hook runs in a background worker with a timeout, receiving
the event as JSON on stdin. Failures are logged with the event type and conversation id
only: never message text, never the hook's output (it may echo what it was given).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from replydeck.config.sla import EVENTS, NotifyConfig, SlaConfig
from replydeck.inbox.model import Conversation, Urgency
from replydeck.inbox.sanitize import sanitize_line

log = logging.getLogger("replydeck.notify")

#: Events waiting for the hook beyond this are dropped (and logged): a hook that cannot
#: keep up must not grow memory without bound.
QUEUE_LIMIT = 100
_OSC_UNSAFE = str.maketrans({";": ",", "\x07": "", "\x1b": "", "\x9c": "", "\x9d": ""})
_MAX_DESKTOP_TEXT = 200

_TITLES = {
    "new_urgent": "New {urgency} conversation",
    "sla_warning": "Response due soon",
    "breach": "Response target missed",
    "reply_failed": "Reply failed",
}


def osc_safe(text: str) -> str:
    """Text that cannot end or extend an OSC sequence: sanitised, one line, no ; BEL ESC ST."""
    cleaned = sanitize_line(text).translate(_OSC_UNSAFE)
    if len(cleaned) > _MAX_DESKTOP_TEXT:
        cleaned = cleaned[: _MAX_DESKTOP_TEXT - 1] + "…"
    return cleaned


def describe_event(event: Mapping[str, Any]) -> tuple[str, str]:
    """(title, body) for a desktop notification, from the event's fields."""
    kind = str(event.get("type", "event"))
    title = "replydeck: " + _TITLES.get(kind, kind).format(urgency=event.get("urgency", "urgent"))
    parts = []
    if event.get("author"):
        parts.append(str(event["author"]))
    if event.get("platform"):
        parts.append(f"on {event['platform']}")
    if event.get("conversation_id") is not None:
        parts.append(f"(#{event['conversation_id']})")
    if kind == "reply_failed" and event.get("error"):
        parts.append(f"- {event['error']}")
    return title, " ".join(parts) or kind


def _default_write(data: str) -> None:
    stream = sys.__stdout__
    if stream is None or not stream.isatty():
        return
    stream.write(data)
    stream.flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


Runner = Callable[[dict[str, Any]], None]


def conversation_event(kind: str, conv: Conversation, **extra: Any) -> dict[str, Any]:
    """The event dict for ``conv``: what a hook needs to act without querying the store."""
    def iso(t: datetime | None) -> str | None:
        return t.isoformat() if t else None

    return {
        "type": kind, "conversation_id": conv.id, "source": conv.source,
        "platform": conv.platform, "kind": str(conv.kind), "urgency": str(conv.urgency),
        "score": conv.score, "author": sanitize_line(conv.author.label), "url": conv.url,
        "tags": list(conv.tags), "reasons": list(conv.reasons),
        "waiting_since": iso(conv.waiting_since), "warn_at": iso(conv.warn_at),
        "due_at": iso(conv.due_at), "snippet": conv.snippet, **extra,
    }


def became_urgent(before: Urgency | None, after: Urgency) -> bool:
    """True when a conversation has just reached urgent or crisis (``new_urgent``)."""
    threshold = Urgency.URGENT.rank
    return after.rank <= threshold and (before is None or before.rank > threshold)


#: The store's sweep reports ids under these keys; the events they fire.
SWEEP_EVENTS = {"warned": "sla_warning", "breached": "breach"}


class Notifier:
    """Bell, optional OSC 9/777 desktop notification, optional hook, per ``[notifications]``.

    ``write`` sends text to the terminal on the thread that calls :meth:`notify` (the TUI
    passes a writer that hands it to its driver safely); ``run``
    replaces the hook runner (tests, or a caller with its own executor) and is called in
    the worker thread with the event.
    """

    def __init__(self, cfg: NotifyConfig | SlaConfig, write: Callable[[str], None] | None = None,
                 run: Runner | None = None) -> None:
        # The whole SLA config is accepted too: it is what the loader hands around.
        self.cfg: NotifyConfig = cfg.notifications if isinstance(cfg, SlaConfig) else cfg
        cfg = self.cfg
        self.write = write or _default_write
        self._run = run or self._run_hook
        self._has_hook = run is not None or cfg.on_event is not None
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_LIMIT)
        self._worker: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._closed = False
        # Events queued or running, for wait_idle().
        self._pending = 0
        self._idle = threading.Condition(self._lock)

    # The caller's side: quick and never raising ------------------------------------

    def notify(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind not in EVENTS:
            log.warning("notify: unknown event type %r ignored", kind)
            return
        if kind not in self.cfg.events:
            return
        try:
            self._terminal(event)
        except (OSError, ValueError) as exc:
            log.warning("notify: terminal write failed for %s: %s", kind, type(exc).__name__)
        if self._has_hook:
            self._enqueue(dict(event))

    def _terminal(self, event: Mapping[str, Any]) -> None:
        out = ""
        if self.cfg.desktop:
            title, body = describe_event(event)
            title, body = osc_safe(title), osc_safe(body)
            if self.cfg.desktop_style == "osc777":
                out += f"\x1b]777;notify;{title};{body}\x07"
            else:
                out += f"\x1b]9;{title}: {body}\x07"
        if self.cfg.bell:
            out += "\a"
        if out:
            self.write(out)

    def _enqueue(self, event: dict[str, Any]) -> None:
        if self._closed:
            return
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="replydeck-notify",
                                                daemon=True)
                self._worker.start()
        try:
            with self._lock:
                self._queue.put_nowait(event)
                self._pending += 1
        except queue.Full:
            log.warning("notify: hook queue full; dropped %s for conversation %s",
                        event.get("type"), event.get("conversation_id"))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every queued hook has run (for shutdown and tests); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    # The worker's side ----------------------------------------------------------------

    def _work(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                self._run(event)
            except Exception as exc:  # the worker must survive any hook runner problem
                log.warning("notify: hook for %s (conversation %s) failed: %s",
                            event.get("type"), event.get("conversation_id"),
                            type(exc).__name__)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _run_hook(self, event: dict[str, Any]) -> None:
        cmd = self.cfg.on_event
        if cmd is None:
            return
        payload = json.dumps(event, default=_json_default, ensure_ascii=False).encode()
        ids = (event.get("type"), event.get("conversation_id"))
        timeout = self.cfg.hook_timeout.total_seconds()
        if isinstance(cmd, list):
            cmd = [os.path.expanduser(cmd[0]), *cmd[1:]]
        try:
            proc = subprocess.Popen(
                cmd, shell=isinstance(cmd, str), stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            log.warning("notify: on_event hook for %s (conversation %s) could not start: %s",
                        *ids, exc.strerror or type(exc).__name__)
            return
        with self._lock:
            self._proc = proc
        try:
            try:
                proc.communicate(payload, timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill(proc)
                log.warning("notify: on_event hook for %s (conversation %s) timed out "
                            "after %gs; stopped it", *ids, timeout)
                return
            if proc.returncode != 0:
                log.warning("notify: on_event hook for %s (conversation %s) exited with "
                            "status %s", *ids, proc.returncode)
        finally:
            with self._lock:
                self._proc = None

    def close(self, wait: float = 1.0) -> None:
        """Stop the worker: a running hook is stopped, queued events are dropped."""
        self._closed = True
        with self._lock:
            proc, worker = self._proc, self._worker
        if proc is not None:
            _kill(proc)
        with self._idle:
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
                self._pending -= 1
            self._idle.notify_all()
        if worker is not None and worker.is_alive():
            self._queue.put(None)
            worker.join(wait)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Stop the hook and anything it started (it runs in its own session)."""
    if not hasattr(os, "killpg"):  # pragma: no cover - Windows: no process groups
        proc.kill()
        proc.wait()
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(1)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, 9)
        proc.wait()
