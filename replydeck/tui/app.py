"""The replydeck Textual app and its entry point :func:`run`.

Three threads: the UI (reads the store on its own connection), one writer (every write a
person makes, in order, on a second connection) and the services (poller, outbox and
sweep on their own loop and store). The UI polls the store's change marker, so whatever
any of them, or another process, commits shows up without a key press.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from textual.app import App
from textual.binding import Binding

from replydeck.config.keys import KeysConfig
from replydeck.config.loader import Config
from replydeck.inbox.model import Author, Conversation, Urgency, utcnow
from replydeck.inbox.store import Store
from replydeck.sources.base import Limits
from replydeck.tui.keymap import keymap
from replydeck.tui.screens.inbox import InboxScreen, make_screen
from replydeck.tui.screens.prompt import ConfirmScreen

T = TypeVar("T")
log = logging.getLogger(__name__)

#: How often the store is asked whether anything changed, and how often timers repaint.
CHANGE_POLL_S = 0.5
TICK_S = 5.0


def _log_failure(future: Any) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("a background write failed: %s", exc)


def _actions_provider() -> Any:
    # Imported when the palette first opens, not on the way to the first frame.
    from replydeck.tui.commands import ActionsProvider

    return ActionsProvider


class ReplydeckApp(App[int]):
    # Absolute, so subclasses defined elsewhere (tests, the bench) find it too.
    CSS_PATH = Path(__file__).with_name("app.tcss")
    COMMANDS = App.COMMANDS | {_actions_provider}
    BINDINGS = [Binding("ctrl+q", "quit", "quit", show=False, priority=True)]
    ENABLE_COMMAND_PALETTE = True

    def __init__(self, config: Config, *, store: Store | None = None,
                 clock: Callable[[], datetime] = utcnow, start_services: bool = True,
                 title: str = "replydeck") -> None:
        super().__init__()
        self.config = config
        self.keys: KeysConfig = config.keys or KeysConfig()
        self.title = title
        self.clock = clock
        # The UI's own connection only reads, so it needs no triage: the writer thread
        # builds the configured assessor (rules, triage) off the path to the first frame.
        self._given_store = store is not None
        self.store = store if store is not None else Store(config.database)
        self.start_services = start_services
        self.session_drafts: set[int] = set()
        #: Events the notifier was given (bell, desktop), for the status line and tests.
        self.notified: list[dict[str, Any]] = []
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="replydeck-write")
        self._write_store: Store | None = None
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="replydeck-read")
        self._read_store: Store | None = None
        self._closing = False
        self._told_error = False
        self._services: Any = None
        self._marker: tuple[int, int] | None = None
        self._suggester: Any = None
        self._notifier: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def on_mount(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.keys.ui.theme:
            self.theme = self.keys.ui.theme
        self.set_keymap(keymap(self.keys))
        self.push_screen(make_screen(self.keys.views))
        self._marker = self.store.change_marker()
        self.set_interval(CHANGE_POLL_S, self._poll_changes)
        self.set_interval(TICK_S, self._tick)
        if self.start_services:
            self.call_after_refresh(self._start_services)

    def _start_services(self) -> None:
        from replydeck.tui.services import ServiceThread

        self._services = ServiceThread(self.config, self._urgent_from_services,
                                       self._event_from_services)
        self.run_worker(self._services.run, thread=True, name="services", group="services",
                        exit_on_error=False)

    def on_unmount(self) -> None:
        self._closing = True
        if self._services is not None:
            self._services.stop()
        # Pending writes (the last draft) finish before the process goes.
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True, cancel_futures=True)
        for store in (self._write_store, self._read_store):
            if store is not None:
                store.close()

    @property
    def inbox_screen(self) -> InboxScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, InboxScreen):
                return screen
        return None

    # -- store access ------------------------------------------------------------------
    async def write(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn(store)`` on the writer thread (one connection, one write at a time)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, functools.partial(self._in_writer, fn))

    def write_soon(self, fn: Callable[[Store], Any]) -> None:
        """Queue a write now, in order with every later one (a draft saved just before
        its reply is sent must not land after the send and bring the draft back)."""
        future = self._writer.submit(self._in_writer, fn)
        future.add_done_callback(_log_failure)

    def _in_writer(self, fn: Callable[[Store], T]) -> T:
        if self._write_store is None:
            if self._given_store:
                self._write_store = Store(self.store.path, assessor=self.store.assessor)
            else:
                from replydeck.runtime import open_store

                self._write_store = open_store(self.config)
        return fn(self._write_store)

    async def read(self, fn: Callable[[Store], T]) -> T:
        """Run a slow read (counts over the whole inbox) on the reader thread."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reader,
                                              functools.partial(self._in_reader, fn))
        except RuntimeError:
            if self._closing:
                # The app is closing: whoever wanted this read is going away too.
                raise asyncio.CancelledError from None
            raise

    def _in_reader(self, fn: Callable[[Store], T]) -> T:
        if self._read_store is None:
            self._read_store = Store(self.store.path)
        return fn(self._read_store)

    def _poll_changes(self) -> None:
        marker = self.store.change_marker()
        if marker != self._marker:
            self._marker = marker
            screen = self.inbox_screen
            if screen is not None and screen.is_mounted:
                screen.background(screen.data_changed, group="refresh", exclusive=True)

    def _tick(self) -> None:
        services = self._services
        if services is not None and services.error is not None and not self._told_error:
            self._told_error = True
            self.notify(f"Background polling and sending stopped ({type(services.error).__name__}"
                        f": {services.error}). Replies stay queued; restart replydeck.",
                        severity="error", timeout=30, markup=False)
        screen = self.inbox_screen
        if screen is not None and screen.is_mounted:
            screen.tick()

    def wake_outbox(self) -> None:
        """A reply was queued or retried: the outbox in the services thread sends it now."""
        if self._services is not None:
            self._services.wake_outbox()

    # -- notifications -----------------------------------------------------------------
    def _urgent_from_services(self, ids: list[int]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.urgent_arrived, ids)

    def _event_from_services(self, event: dict[str, Any]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.event_arrived, event)

    def event_arrived(self, event: dict[str, Any]) -> None:
        """An SLA warning, a breach or a failed reply: bell, desktop, hook per config."""
        self.notified.append(event)
        notifier = self._get_notifier()
        if notifier is not None:
            notifier.notify(event)

    def urgent_arrived(self, ids: Iterable[int]) -> None:
        """New urgent conversations: ring the bell ([ui] bell) and tell the notifier."""
        for conv_id in ids:
            conv = self.store.conversation(conv_id)
            if conv is None or conv.urgency not in (Urgency.CRISIS, Urgency.URGENT):
                continue
            event = {"type": "new_urgent", "conversation_id": conv_id,
                     "platform": conv.platform, "urgency": str(conv.urgency),
                     "author": conv.author.label}
            self.notified.append(event)
            notifier = self._get_notifier()
            if notifier is not None:
                notifier.notify(event)
            elif self.keys.ui.bell:
                self.bell()

    def _get_notifier(self) -> Any:
        if self._notifier is None:
            cfg = getattr(self.config.sla, "notifications", None)
            if cfg is None:
                return None
            from dataclasses import replace

            from replydeck.inbox.notify import Notifier

            self._notifier = Notifier(replace(cfg, bell=cfg.bell and self.keys.ui.bell),
                                      write=self._terminal_write)
        return self._notifier

    def _terminal_write(self, data: str) -> None:
        if self._driver is not None:
            self._driver.write(data)

    # -- helpers the screens use -------------------------------------------------------
    def source_for(self, conv: Conversation) -> Any:
        for table in self.config.sources:
            if table.name == conv.source:
                return table.source
        return None

    def reply_window(self, conv: Conversation, private: bool, tag: str | None) -> Any:
        """The platform's reply window for this reply (Meta's 24 hours), or None."""
        source = self.source_for(conv)
        check = getattr(source, "reply_window", None)
        if check is None:
            return None
        latest = next((m for m in reversed(self.store.messages(conv.id))
                       if str(m.direction) == "in"), None)
        try:
            return check(latest, self.clock(), private=private, thread_key=conv.thread_key,
                         tag=tag)
        except Exception:  # a window we cannot judge must not break the composer
            log.exception("reply window check failed for #%s", conv.id)
            return None

    def limits_for(self, conv: Conversation) -> Limits:
        for table in self.config.sources:
            if table.name == conv.source and table.source is not None:
                # As the outbox does (outbox.limits_for): multi-platform sources such as
                # the demo have limits per platform.
                per_platform = getattr(table.source, "limits_for", None)
                if callable(per_platform):
                    return per_platform(conv.platform)
                return table.source.limits
        return Limits()

    @property
    def saved_replies(self) -> list[Any]:
        return list(self.config.replies or [])

    def suggest(self, messages: list[str]) -> list[str]:
        replies = self.saved_replies
        if not replies or not messages:
            return []
        if self._suggester is None:
            from replydeck.inbox.suggest import Suggester

            self._suggester = Suggester(replies)
        return [s.name for s in self._suggester.suggest(messages)]

    def render_saved(self, reply: Any, conv: Conversation) -> str:
        from replydeck.inbox.replies import render

        author = conv.author if conv.author else Author(id="")
        return render(reply, platform=conv.platform, customer=author,
                      agent_name=self.config.agent_name, brand=self.config.brand)

    def known_agents(self) -> list[str]:
        return self.store.assignees()

    def known_tags(self) -> list[str]:
        return sorted({t for c in self.store.window(limit=200) for t in c.tags})

    async def run_inbox_action(self, action: str) -> None:
        screen = self.inbox_screen
        if screen is not None:
            await self.run_action(action, screen)

    # -- quitting ----------------------------------------------------------------------
    def unsent_summary(self) -> str:
        """Why quitting now might surprise: unsent drafts and replies not yet out."""
        parts = []
        screen = self.inbox_screen
        drafts = set(self.store.drafts()) & self.session_drafts
        if screen is not None and screen.composing and screen.composer.body.strip():
            assert screen.composer.conversation is not None
            drafts.add(screen.composer.conversation.id)
        if drafts:
            parts.append(f"{len(drafts)} unsent draft{'s' * (len(drafts) > 1)} (kept for "
                         "next time)")
        counts = self.store.outbox_counts()
        waiting = counts.get("queued", 0) + counts.get("sending", 0)
        if waiting:
            parts.append(f"{waiting} repl{'ies' if waiting > 1 else 'y'} still queued")
        return "; ".join(parts)

    async def action_quit(self) -> None:
        summary = self.unsent_summary()
        if not summary:
            await self._save_and_exit()
            return

        async def answer(yes: bool | None) -> None:
            if yes:
                await self._save_and_exit()

        self.push_screen(ConfirmScreen("Quit replydeck?", summary + "."), answer)

    async def _save_and_exit(self) -> None:
        screen = self.inbox_screen
        if screen is not None and screen.composing and screen.composer.conversation:
            conv_id = screen.composer.conversation.id
            body, private = screen.composer.body, screen.composer.private
            await self.write(lambda s: s.save_draft(conv_id, body, private))
        self.exit(0)


def run(config: Config, *, title: str = "replydeck") -> int:
    """Open the inbox on ``config``'s sources until the person quits. Returns an exit code."""
    app = ReplydeckApp(config, title=title)
    try:
        result = app.run()
    finally:
        app.store.close()
    return int(result or 0)
