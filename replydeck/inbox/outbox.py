"""The durable reply queue: send, retry, never lose, never send twice.

A reply is a row (state ``queued``) before anything goes out. To send it, the outbox
first commits ``sending`` (with a claim that expires), then calls the source, then
records the result. If the process dies in between, the reply is found later still in
``sending`` with an expired claim, and is recovered by what the platform allows:

* idempotent sources (Mastodon Idempotency-Key, Matrix txnId, Bluesky rkey, jsonl and
  command sources) are simply sent again with the same key;
* sources that can look at their own recent posts reconcile (``find_sent``);
* for the rest nothing can tell whether it went out, so the reply is held as
  ``unconfirmed`` for a person to check instead of being sent blindly a second time.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from replydeck.inbox import textlen
from replydeck.inbox.model import Reply, utcnow
from replydeck.inbox.store import Store
from replydeck.sources.base import (
    AuthError,
    Limits,
    PermanentError,
    Receipt,
    SourceError,
    TransientError,
)

log = logging.getLogger(__name__)

RETRY_BASE_S = 10.0
RETRY_MAX_S = 30 * 60.0
MAX_ATTEMPTS = 8
#: How often a reply blocked by rejected credentials tries again (it never gives up).
AUTH_RETRY_S = 5 * 60.0
UNCONFIRMED_HINT = (
    "replydeck stopped while sending this reply and {platform} cannot tell whether it went "
    "out. Check the thread there, then mark it sent or send it again."
)


@dataclass
class OutboxReport:
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    unconfirmed: list[int] = field(default_factory=list)

    def merge(self, other: OutboxReport) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        self.unconfirmed += other.unconfirmed


def limits_for(source: Any, platform: str) -> Limits:
    """A multi-platform source (the demo) has limits per platform."""
    per_platform = getattr(source, "limits_for", None)
    return per_platform(platform) if callable(per_platform) else source.limits


def length_problem(reply: Reply, source: Any, platform: str) -> str | None:
    limits = limits_for(source, platform)
    if reply.private and not limits.supports_private:
        return f"{platform} has no private replies here"
    if not reply.private and not limits.supports_public:
        return f"{platform} allows only private replies here"
    check = textlen.check_reply(reply.body, limits, reply.private)
    if not check.ok:
        return f"too long for {platform}: {check.describe()}"
    return None


class Outbox:
    def __init__(self, store: Store, sources: dict[str, Any], *, owner: str,
                 clock: Callable[[], datetime] = utcnow,
                 claim_for: timedelta = timedelta(minutes=5),
                 send_timeout: float = 60.0, max_attempts: int = MAX_ATTEMPTS,
                 rng: random.Random | None = None,
                 on_report: Callable[[OutboxReport], None] | None = None) -> None:
        self.store = store
        self.sources = sources
        self.owner = owner
        self.clock = clock
        self.claim_for = claim_for
        self.send_timeout = send_timeout
        self.max_attempts = max_attempts
        self.rng = rng or random.Random()
        self.on_report = on_report
        self.wake = asyncio.Event()

    async def run_once(self) -> OutboxReport:
        """Send everything due now (and recover what a crash left mid-send)."""
        report = OutboxReport()
        while True:
            now = self.clock()
            due, stale = await asyncio.to_thread(
                self.store.claim_replies, self.owner, lease_until=now + self.claim_for, now=now)
            if not due and not stale:
                break
            for reply in stale:
                await self._recover(reply, report)
            await asyncio.gather(*(self._send(r, report) for r in due))
        if self.on_report and (report.sent or report.failed or report.unconfirmed
                               or report.retrying):
            self.on_report(report)
        return report

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # the queue lives in the store; keep the loop alive
                log.exception("outbox round failed")
            self.wake.clear()
            stop_wait = asyncio.ensure_future(stop.wait())
            wake_wait = asyncio.ensure_future(self.wake.wait())
            await asyncio.wait({stop_wait, wake_wait}, timeout=interval,
                               return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            wake_wait.cancel()

    def _platform(self, reply: Reply) -> str:
        conv = self.store.conversation(reply.conversation_id)
        return conv.platform if conv else ""

    async def _recover(self, reply: Reply, report: OutboxReport) -> None:
        source = self.sources.get(reply.source)
        if source is None:
            return  # not ours to send from this process's config; the claim will lapse
        if getattr(source, "idempotent_send", False):
            log.info("reply %s: resending after a crash with the same idempotency key", reply.id)
            await self._send(reply, report)
            return
        if getattr(source, "can_reconcile", False):
            try:
                receipt = await asyncio.wait_for(source.find_sent(reply), self.send_timeout)
            except (SourceError, asyncio.TimeoutError) as exc:
                await self._retry(reply, f"checking whether it was sent: {exc}", None, report)
                return
            if receipt is not None:
                await self._sent(reply, receipt, report)
            else:
                await self._send(reply, report)
            return
        await asyncio.to_thread(self.store.mark_unconfirmed, reply.id,
                                UNCONFIRMED_HINT.format(platform=self._platform(reply)))
        report.unconfirmed.append(reply.id)

    async def _send(self, reply: Reply, report: OutboxReport) -> None:
        source = self.sources.get(reply.source)
        if source is None:
            await asyncio.to_thread(self.store.mark_failed, reply.id,
                                    f"source {reply.source!r} is not in the config any more")
            report.failed.append((reply.id, "source missing"))
            return
        problem = length_problem(reply, source, self._platform(reply))
        if problem:
            await asyncio.to_thread(self.store.mark_failed, reply.id, problem)
            report.failed.append((reply.id, problem))
            return
        try:
            receipt = await asyncio.wait_for(source.send(reply), self.send_timeout)
        except asyncio.TimeoutError:
            await self._ambiguous(reply, source, f"no answer within {self.send_timeout:.0f} s",
                                  report)
        except AuthError as exc:
            # Credentials are fixed outside replydeck (a new token in the keyring, the env):
            # the reply waits in the queue and goes out once they work, without the person
            # having to find it and retry it.
            await asyncio.to_thread(
                self.store.mark_retry, reply.id, f"waiting for working credentials: {exc}",
                next_attempt_at=self.clock() + timedelta(seconds=AUTH_RETRY_S))
            report.retrying.append(reply.id)
        except PermanentError as exc:
            await asyncio.to_thread(self.store.mark_failed, reply.id, str(exc))
            report.failed.append((reply.id, str(exc)))
        except TransientError as exc:
            if exc.maybe_sent:
                await self._ambiguous(reply, source, str(exc), report)
            else:
                await self._retry(reply, str(exc), exc.retry_at, report)
        except SourceError as exc:
            await self._retry(reply, str(exc), None, report)
        except Exception as exc:
            log.exception("reply %s: unexpected error while sending", reply.id)
            await self._ambiguous(reply, source, f"internal error ({type(exc).__name__})",
                                  report)
        else:
            await self._sent(reply, receipt, report)

    async def _ambiguous(self, reply: Reply, source: Any, error: str,
                         report: OutboxReport) -> None:
        """The request may have gone out. Only a safe path may send it again."""
        if getattr(source, "idempotent_send", False) or getattr(source, "can_reconcile", False):
            # Retrying is safe: the key dedupes, or find_sent runs first on recovery.
            await self._retry(reply, error, None, report, recover=True)
            return
        await asyncio.to_thread(self.store.mark_unconfirmed, reply.id,
                                f"{error}. " + UNCONFIRMED_HINT.format(
                                    platform=self._platform(reply)))
        report.unconfirmed.append(reply.id)

    async def _retry(self, reply: Reply, error: str, retry_at: datetime | None,
                     report: OutboxReport, *, recover: bool = False) -> None:
        if reply.attempts >= self.max_attempts:
            msg = f"gave up after {reply.attempts} attempts: {error}"
            await asyncio.to_thread(self.store.mark_failed, reply.id, msg)
            report.failed.append((reply.id, msg))
            return
        now = self.clock()
        ceiling = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** max(0, reply.attempts - 1))
        when = now + timedelta(seconds=self.rng.uniform(ceiling / 2, ceiling))
        if retry_at is not None:
            when = max(retry_at, now)
        if recover:
            # Leave it in 'sending' with a claim that lapses at `when`: the next round
            # takes the recovery path (find_sent / same key) instead of a blind resend.
            await asyncio.to_thread(self.store.defer_claim, reply.id, error, when)
        else:
            await asyncio.to_thread(self.store.mark_retry, reply.id, error,
                                    next_attempt_at=when)
        report.retrying.append(reply.id)

    async def _sent(self, reply: Reply, receipt: Receipt, report: OutboxReport) -> None:
        await asyncio.to_thread(self.store.mark_sent, reply.id, remote_id=receipt.remote_id,
                                sent_at=receipt.sent_at, message=receipt.message)
        report.sent.append(reply.id)
