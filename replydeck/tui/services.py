"""Poller, outbox and sweep in a thread of their own, with their own loop and store.

The UI thread never waits on the network or on the services' writes: it reads the store
on its own connection and notices their work through the store's change marker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from replydeck.config.loader import Config
from replydeck.inbox.model import Urgency
from replydeck.inbox.poller import PollOutcome
from replydeck.runtime import (
    NotificationRouter,
    ServiceHooks,
    build_services,
    open_store,
    run_forever,
)

log = logging.getLogger(__name__)

#: How long a stop may take before the services' tasks are cancelled.
STOP_GRACE_S = 2.0
URGENT = (Urgency.CRISIS, Urgency.URGENT)


def urgent_new(outcome: PollOutcome) -> list[int]:
    """New conversations in a poll that triage found urgent or worse."""
    ingest = outcome.ingest
    if ingest is None:
        return []
    return [cid for cid in ingest.new_conversations
            if (d := ingest.decisions.get(cid)) is not None and d.urgency in URGENT]


class _Forward:
    """Stands in for the notifier on the services thread: hands each event to the UI."""

    def __init__(self, deliver: Callable[[dict[str, Any]], None]) -> None:
        self.deliver = deliver

    def notify(self, event: dict[str, Any]) -> None:
        self.deliver(dict(event))


class ServiceThread:
    """Runs ``run_forever`` until :meth:`stop`; ``on_urgent`` gets new urgent ids."""

    def __init__(self, config: Config, on_urgent: Callable[[list[int]], None],
                 on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.config = config
        self.on_urgent = on_urgent
        #: SLA warnings, breaches and failed replies, as notifier events for the UI.
        self.on_event = on_event
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = threading.Event()
        self.error: BaseException | None = None
        self._outbox_wake: asyncio.Event | None = None
        #: Where the webhook receiver listens, when [webhooks] is configured.
        self.webhook_address: tuple[str, int] | None = None
        self.webhook_error: str | None = None

    def run(self) -> None:
        """The thread's body (a Textual thread worker calls it)."""
        if self._stopping.is_set():
            return
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(loop))
        except BaseException as exc:  # reported on the status line, never a traceback
            self.error = exc
            log.exception("background services stopped")
        finally:
            loop.close()

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stop = asyncio.Event()
        self._loop = loop
        if self._stopping.is_set():
            return
        store = open_store(self.config)
        hooks = ServiceHooks(on_poll=self._polled)
        if self.on_event is not None:
            # New urgent conversations come through on_urgent; the router adds the sweep's
            # warnings and breaches and the outbox's failures, built on this thread's store.
            router = NotificationRouter(store, _Forward(self.on_event))
            hooks = ServiceHooks(on_poll=self._polled, on_sweep=router.on_sweep,
                                 on_outbox=router.on_outbox)
        services = build_services(self.config, store, hooks)
        self._outbox_wake = services.outbox.wake
        task = asyncio.ensure_future(run_forever(services, self._stop, hooks))
        receiver = await self._start_webhooks(store, services.sources.values())
        try:
            stop_wait = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_S)
            except asyncio.TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            if receiver is not None:
                await receiver.stop()
            await services.close()
            store.close()

    async def _start_webhooks(self, store: Any, sources: Any) -> Any:
        """With a ``[webhooks]`` table, the TUI receives webhooks too (no separate process)."""
        if "webhooks" not in self.config.root.data:
            return None
        from replydeck.webhooks import WebhookReceiver, parse_config

        hooks_cfg = parse_config(self.config.root)
        receiver = WebhookReceiver(store, list(sources), hooks_cfg)
        try:
            self.webhook_address = await receiver.start()
        except OSError as exc:
            self.webhook_error = (f"webhooks: cannot listen on {hooks_cfg.host}:{hooks_cfg.port}"
                                  f": {exc.strerror or exc}")
            log.warning("%s", self.webhook_error)
            return None
        return receiver

    def _polled(self, outcome: PollOutcome) -> None:
        ids = urgent_new(outcome)
        if ids:
            self.on_urgent(ids)

    def wake_outbox(self) -> None:
        """A reply was queued: send it now rather than at the outbox's next round."""
        loop, wake = self._loop, self._outbox_wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def stop(self) -> None:
        self._stopping.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
