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

from replydeck.config.sla import EVENTS, NotifyConfig
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


class Notifier:
    """Bell, optional OSC 9/777 desktop notification, optional hook, per ``[notifications]``.

    ``write`` sends bytes to the terminal (the TUI passes its driver's writer); ``run``
    replaces the hook runner (tests, or a caller with its own executor) and is called in
    the worker thread with the event.
    """

    def __init__(self, cfg: NotifyConfig, write: Callable[[str], None] | None = None,
                 run: Runner | None = None) -> None:
        self.cfg = cfg
        self.write = write or _default_write
        self._run = run or self._run_hook
        self._has_hook = run is not None or cfg.on_event is not None
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_LIMIT)
        self._worker: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._closed = False

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
            self._queue.put_nowait(event)
        except queue.Full:
            log.warning("notify: hook queue full; dropped %s for conversation %s",
                        event.get("type"), event.get("conversation_id"))

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

    def _run_hook(self, event: dict[str, Any]) -> None:
        cmd = self.cfg.on_event
        if cmd is None:
            return
        payload = json.dumps(event, default=_json_default, ensure_ascii=False).encode()
        ids = (event.get("type"), event.get("conversation_id"))
        timeout = self.cfg.hook_timeout.total_seconds()
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
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if worker is not None and worker.is_alive():
            self._queue.put(None)
            worker.join(wait)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Stop the hook and anything it started (it runs in its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(1)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, 9)
        proc.wait()
