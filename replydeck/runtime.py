"""Wiring: from a loaded config to a store, the sources, the poller, the outbox and the sweep.

The CLI (`replydeck poll`) and the TUI both run the same services through
:func:`run_services`; only what they do with the outcomes differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from replydeck.config.loader import Config
from replydeck.inbox.assess import Assessor, PlainAssessor
from replydeck.inbox.outbox import Outbox, OutboxReport
from replydeck.inbox.poller import PolledSource, Poller, PollOutcome
from replydeck.inbox.store import Store

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 15.0
#: How soon a stored message joins the search index (search finds it before, more slowly).
INDEX_INTERVAL_S = 5.0


def process_owner() -> str:
    """Identifies this process in leases and claims (host, pid, and a random part)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def build_assessor(config: Config) -> Assessor:
    """Triage + SLA + rules when this build has them, else fixed default targets."""
    if importlib.util.find_spec("replydeck.inbox.rules") is not None:
        from replydeck.inbox import rules

        return rules.build_assessor(config)
    return PlainAssessor()


def open_store(config: Config) -> Store:
    return Store(config.database, assessor=build_assessor(config))


def polled_sources(config: Config) -> list[PolledSource]:
    out = []
    for table in config.sources:
        source = table.source
        timeout = float(getattr(source, "fetch_timeout", 120.0))
        out.append(PolledSource(source=source, interval=table.poll_interval,
                                fetch_timeout=timeout))
    return out


@dataclass
class ServiceHooks:
    """What the caller wants to hear about (all optional, all called on the event loop)."""

    on_poll: Callable[[PollOutcome], None] | None = None
    on_outbox: Callable[[OutboxReport], None] | None = None
    on_sweep: Callable[[dict[str, list[int]]], None] | None = None


class NotificationRouter:
    """Turns what the services report into notifier events (bell, desktop, hook).

    new_urgent when ingest makes a waiting conversation urgent or crisis; sla_warning and
    breach from the sweep; reply_failed from the outbox.
    """

    def __init__(self, store: Store, notifier: Any) -> None:
        self.store = store
        self.notifier = notifier

    def _emit(self, kind: str, conv_id: int, **extra: Any) -> None:
        from replydeck.inbox.notify import conversation_event

        conv = self.store.conversation(conv_id)
        if conv is not None:
            self.notifier.notify(conversation_event(kind, conv, **extra))

    def on_poll(self, outcome: PollOutcome) -> None:
        if outcome.ingest is not None:
            for conv_id in outcome.ingest.became_urgent:
                self._emit("new_urgent", conv_id)

    def on_sweep(self, changed: dict[str, list[int]]) -> None:
        for conv_id in changed.get("warned", []):
            self._emit("sla_warning", conv_id)
        for conv_id in changed.get("breached", []):
            self._emit("breach", conv_id)

    def on_outbox(self, report: OutboxReport) -> None:
        for reply_id, error in report.failed:
            reply = self.store.reply(reply_id)
            if reply is not None:
                self._emit("reply_failed", reply.conversation_id, reply_id=reply_id,
                           error=error)


def make_notifier(config: Config, write: Callable[[str], None] | None = None) -> Any:
    """The configured notifier, or None when this build has no notifications module."""
    if config.sla is None or importlib.util.find_spec("replydeck.inbox.notify") is None:
        return None
    from replydeck.inbox.notify import Notifier

    return Notifier(config.sla, write=write)


def chain(*hooks: ServiceHooks) -> ServiceHooks:
    """One ServiceHooks calling each given hook in turn."""
    def fan(name: str) -> Callable[[Any], None] | None:
        fns = [getattr(h, name) for h in hooks if getattr(h, name) is not None]
        if not fns:
            return None

        def call(value: Any) -> None:
            for fn in fns:
                try:
                    fn(value)
                except Exception:
                    log.exception("hook %s failed", name)
        return call

    return ServiceHooks(on_poll=fan("on_poll"), on_outbox=fan("on_outbox"),
                        on_sweep=fan("on_sweep"))


def notification_hooks(store: Store, notifier: Any) -> ServiceHooks:
    if notifier is None:
        return ServiceHooks()
    router = NotificationRouter(store, notifier)
    return ServiceHooks(on_poll=router.on_poll, on_outbox=router.on_outbox,
                        on_sweep=router.on_sweep)


@dataclass
class Services:
    store: Store
    poller: Poller
    outbox: Outbox
    sources: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        for source in self.sources.values():
            try:
                await source.close()
            except Exception:
                log.exception("closing source %s", getattr(source, "name", "?"))


#: Seconds after a dead process took a reply before a reconciling source may look for it:
#: its request may still be in flight at the platform (seen with Meta at 1-2 s).
RECONCILE_GRACE_S = 20.0


def recovery_grace(source: Any) -> float:
    """Idempotent sources may resend at once (the key dedupes); reconcilers must wait."""
    if source is None or getattr(source, "idempotent_send", False):
        return 0.0
    return RECONCILE_GRACE_S if getattr(source, "can_reconcile", False) else 0.0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def build_services(config: Config, store: Store, hooks: ServiceHooks | None = None,
                   owner: str | None = None) -> Services:
    hooks = hooks or ServiceHooks()
    owner = owner or process_owner()
    store.checkpoint_in_background()
    polled = polled_sources(config)
    sources = {ps.name: ps.source for ps in polled}
    # A previous run on this machine that was killed (kill -9, SSH drop) may still hold
    # leases and reply claims: free them now so recovery starts at once.
    freed = store.release_dead_claims(socket.gethostname(), pid_alive,
                                      lambda name: recovery_grace(sources.get(name)))
    if freed:
        log.info("recovered %d lease(s)/claim(s) left by stopped processes", freed)
    poller = Poller(store, polled, owner=owner, on_result=hooks.on_poll)
    outbox = Outbox(store, sources, owner=owner, on_report=hooks.on_outbox)
    return Services(store, poller, outbox, sources)


async def run_once(services: Services, hooks: ServiceHooks | None = None
                   ) -> tuple[list[PollOutcome], OutboxReport]:
    """Fetch every source once, send everything queued (auto-replies included), sweep."""
    outcomes = await services.poller.run_once()
    report = await services.outbox.run_once()
    changed = await asyncio.to_thread(services.store.sweep)
    if hooks and hooks.on_sweep and any(changed.values()):
        hooks.on_sweep(changed)
    await index_all(services.store)
    return outcomes, report


async def index_all(store: Store) -> int:
    """Add every stored message to the search index, one short transaction at a time
    (other writers get their turn between them); returns how many."""
    total = 0
    while added := await asyncio.to_thread(store.index_pending):
        total += added
    return total


async def run_forever(services: Services, stop: asyncio.Event,
                      hooks: ServiceHooks | None = None) -> None:
    hooks = hooks or ServiceHooks()

    async def sweep_loop() -> None:
        while not stop.is_set():
            try:
                changed = await asyncio.to_thread(services.store.sweep)
                if hooks.on_sweep and any(changed.values()):
                    hooks.on_sweep(changed)
            except Exception:
                log.exception("sweep failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), SWEEP_INTERVAL_S)

    async def index_loop() -> None:
        # Any process's messages: webhooks, another poller, replies sent from a TUI.
        while not stop.is_set():
            try:
                await index_all(services.store)
            except Exception:
                log.exception("search indexing failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), INDEX_INTERVAL_S)

    await asyncio.gather(services.poller.run(stop), services.outbox.run(stop), sweep_loop(),
                         index_loop())
