"""Runs every source on its own schedule, concurrently, and stores what they fetch.

Each source has its own task: a source that hangs or fails never delays another. A fetch
is bounded by a timeout; transient errors back off exponentially with jitter; rate limits
are waited out until the time the platform named. A lease row in the database makes sure
two processes sharing one database never poll the same source at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from replydeck.inbox.model import utcnow
from replydeck.inbox.store import IngestResult, Store
from replydeck.sources.base import (
    Batch,
    PermanentError,
    RateLimited,
    SourceError,
    TransientError,
)

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 5.0
BACKOFF_MAX_S = 15 * 60.0
PERMANENT_RETRY_S = 10 * 60.0
#: After this many transient failures in a row, "degraded" becomes "failing".
FAILING_AFTER = 3


class Health:
    NEW = "new"
    OK = "ok"
    DEGRADED = "degraded"
    FAILING = "failing"


@dataclass
class PolledSource:
    """A source and its schedule, as the poller runs it."""

    source: object  # a Source (sources/base.py); kept loose so any protocol object fits
    interval: float
    fetch_timeout: float = 120.0
    next_at: datetime = field(default_factory=utcnow)
    failures: int = 0
    health: str = Health.NEW
    last_error: str | None = None

    @property
    def name(self) -> str:
        return str(self.source.name)  # type: ignore[attr-defined]


@dataclass
class PollOutcome:
    source: str
    health: str
    new_messages: int = 0
    error: str | None = None
    next_at: datetime | None = None
    ingest: IngestResult | None = None
    skipped: bool = False  # another process holds the lease


def backoff_delay(failures: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: a random delay in [base/2, base*2^n]."""
    rng = rng or random.Random()
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * (2 ** max(0, failures - 1)))
    return rng.uniform(min(BACKOFF_BASE_S / 2, ceiling), ceiling)


class Poller:
    def __init__(self, store: Store, sources: list[PolledSource], *, owner: str,
                 clock: Callable[[], datetime] = utcnow,
                 on_result: Callable[[PollOutcome], None] | None = None,
                 rng: random.Random | None = None) -> None:
        self.store = store
        self.sources = sources
        self.owner = owner
        self.clock = clock
        self.on_result = on_result
        self.rng = rng or random.Random()
        for ps in sources:
            src = ps.source
            store.register_source(ps.name, getattr(src, "type_name", ""),
                                  getattr(src, "platform", ""))
            state = store.source_state(ps.name)
            if state and state.next_poll_at and state.health != Health.OK:
                # Keep honouring a back-off or rate limit recorded by an earlier run.
                ps.next_at = max(ps.next_at, state.next_poll_at)
                ps.failures = state.failures

    def _lease_for(self, ps: PolledSource) -> timedelta:
        return timedelta(seconds=ps.fetch_timeout + 60)

    async def poll(self, ps: PolledSource) -> PollOutcome:
        """Fetch one source once, store the batch and its cursor, schedule the next poll."""
        now = self.clock()
        if not await asyncio.to_thread(self.store.acquire_lease, ps.name, self.owner,
                                       now + self._lease_for(ps), now):
            ps.next_at = now + timedelta(seconds=ps.interval)
            return PollOutcome(ps.name, ps.health, skipped=True, next_at=ps.next_at)
        cursor = await asyncio.to_thread(self.store.cursor, ps.name)
        outcome: PollOutcome
        try:
            batch: Batch = await asyncio.wait_for(
                ps.source.fetch(cursor),  # type: ignore[attr-defined]
                timeout=ps.fetch_timeout)
            result = await asyncio.to_thread(self.store.ingest, ps.name, batch.items,
                                             batch.cursor)
            now = self.clock()
            ps.failures = 0
            # A source that works only in part (Bluesky without DM access) says why.
            notice = getattr(ps.source, "notice", None)
            ps.health = Health.DEGRADED if notice else Health.OK
            ps.last_error = str(notice) if notice else None
            if batch.more:
                ps.next_at = now
            else:
                ps.next_at = now + timedelta(seconds=ps.interval)
            if batch.not_before is not None:
                ps.next_at = max(ps.next_at, batch.not_before)
            outcome = PollOutcome(ps.name, ps.health, result.new_messages, error=ps.last_error,
                                  next_at=ps.next_at, ingest=result)
        except asyncio.TimeoutError:
            outcome = self._transient(ps, f"no answer within {ps.fetch_timeout:.0f} s", None)
        except RateLimited as exc:
            outcome = self._transient(ps, f"rate limited: {exc}", exc.retry_at, count=False)
        except TransientError as exc:
            outcome = self._transient(ps, str(exc), exc.retry_at)
        except PermanentError as exc:
            ps.failures += 1
            ps.health, ps.last_error = Health.FAILING, str(exc)
            ps.next_at = self.clock() + timedelta(seconds=PERMANENT_RETRY_S)
            outcome = PollOutcome(ps.name, ps.health, error=str(exc), next_at=ps.next_at)
        except SourceError as exc:
            outcome = self._transient(ps, str(exc), None)
        except Exception as exc:  # a bug in an adapter must not stop the others
            log.exception("source %s: unexpected error while fetching", ps.name)
            outcome = self._transient(ps, f"internal error in the {ps.name} adapter "
                                      f"({type(exc).__name__}); see the log", None)
        await asyncio.to_thread(self.store.record_poll, ps.name, health=outcome.health,
                                error=outcome.error, next_poll_at=outcome.next_at)
        if self.on_result:
            self.on_result(outcome)
        return outcome

    def _transient(self, ps: PolledSource, error: str, retry_at: datetime | None, *,
                   count: bool = True) -> PollOutcome:
        now = self.clock()
        if count:
            ps.failures += 1
        delay = timedelta(seconds=backoff_delay(max(ps.failures, 1), self.rng))
        ps.next_at = now + delay
        if retry_at is not None:
            # The platform said when: wait exactly that long (plus a second of slack).
            ps.next_at = max(retry_at + timedelta(seconds=1), now + timedelta(seconds=1))
        ps.health = Health.FAILING if ps.failures >= FAILING_AFTER else Health.DEGRADED
        ps.last_error = error
        log.warning("source %s: %s (next try %s)", ps.name, error, ps.next_at.isoformat())
        return PollOutcome(ps.name, ps.health, error=error, next_at=ps.next_at)

    async def run_once(self) -> list[PollOutcome]:
        """Fetch every source once, concurrently, draining sources that say more is waiting."""
        async def drain(ps: PolledSource) -> PollOutcome:
            outcome = await self.poll(ps)
            total = outcome.new_messages
            for _ in range(1000):
                if ps.failures or ps.next_at > self.clock():
                    break
                outcome = await self.poll(ps)
                total += outcome.new_messages
            outcome.new_messages = total
            return outcome

        return list(await asyncio.gather(*(drain(ps) for ps in self.sources)))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every source on its own schedule until ``stop`` is set."""
        tasks = [asyncio.create_task(self._loop(ps, stop), name=f"poll:{ps.name}")
                 for ps in self.sources]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for ps in self.sources:
                await asyncio.to_thread(self.store.release_lease, ps.name, self.owner)

    async def _loop(self, ps: PolledSource, stop: asyncio.Event) -> None:
        while not stop.is_set():
            wait = (ps.next_at - self.clock()).total_seconds()
            if wait > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
                    return
            await self.poll(ps)

    def poll_now(self, name: str | None = None) -> None:
        """Make a source (or all) due at once; the running loops pick it up within a tick."""
        for ps in self.sources:
            if name is None or ps.name == name:
                ps.next_at = self.clock()
