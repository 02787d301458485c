"""Poller, outbox and sweep in a thread of their own, with their own loop and store.

The UI thread never waits on the network or on the services' writes: it reads the store
on its own connection and notices their work through the store's change marker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from replydeck.config.loader import Config
from replydeck.inbox.model import Urgency
from replydeck.inbox.poller import PollOutcome
from replydeck.runtime import ServiceHooks, build_services, open_store, run_forever

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


class ServiceThread:
    """Runs ``run_forever`` until :meth:`stop`; ``on_urgent`` gets new urgent ids."""

    def __init__(self, config: Config, on_urgent: Callable[[list[int]], None]) -> None:
        self.config = config
        self.on_urgent = on_urgent
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = threading.Event()
        self.error: BaseException | None = None
        self._outbox_wake: asyncio.Event | None = None

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
        services = build_services(self.config, store, hooks)
        self._outbox_wake = services.outbox.wake
        task = asyncio.ensure_future(run_forever(services, self._stop, hooks))
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
            await services.close()
            store.close()

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
