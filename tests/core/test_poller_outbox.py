"""Poller and outbox behaviour under faults, with scripted in-process sources.

The sources here stand in for a platform (what it answers, when it fails); the poller,
outbox and store under test are the real ones. Crash tests with real processes are in
test_crash.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from replydeck.inbox.model import Reply, ReplyState, utcnow
from replydeck.inbox.outbox import Outbox
from replydeck.inbox.poller import Health, PolledSource, Poller
from replydeck.inbox.store import InboxFilter
from replydeck.sources.base import (
    Batch,
    Limits,
    PermanentError,
    RateLimited,
    Receipt,
    TransientError,
)
from tests.core.conftest import T0, msg

X_LIMITS = Limits(max_length=280, counting="x_weighted")


class ScriptedSource:
    """Answers fetch/send from a script of callables; records every call."""

    type_name = "scripted"
    platform = "x"

    def __init__(self, name: str, *, fetches: list[Callable[[str | None], Any]] | None = None,
                 sends: list[Callable[[Reply], Any]] | None = None,
                 idempotent: bool = False, reconcile: bool = False,
                 limits: Limits = X_LIMITS) -> None:
        self.name = name
        self.fetches = list(fetches or [])
        self.sends = list(sends or [])
        self.idempotent_send = idempotent
        self.can_reconcile = reconcile
        self.limits = limits
        self.fetch_calls = 0
        self.sent: list[tuple[str, str]] = []  # (idempotency key, body) actually delivered
        self.send_attempts = 0
        self.find_sent_calls = 0

    async def fetch(self, cursor: str | None) -> Batch:
        self.fetch_calls += 1
        step = self.fetches.pop(0) if self.fetches else (lambda c: Batch([], c))
        result = step(cursor)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    async def send(self, reply: Reply) -> Receipt:
        self.send_attempts += 1
        step = self.sends.pop(0) if self.sends else None
        if step is not None:
            result = step(reply)
            if asyncio.iscoroutine(result):
                await result
        if self.idempotent_send and any(k == reply.idempotency_key for k, _ in self.sent):
            return Receipt(remote_id=f"r-{reply.idempotency_key}")
        self.sent.append((reply.idempotency_key, reply.body))
        return Receipt(remote_id=f"r-{reply.idempotency_key}")

    async def find_sent(self, reply: Reply) -> Receipt | None:
        self.find_sent_calls += 1
        for key, _ in self.sent:
            if key == reply.idempotency_key:
                return Receipt(remote_id=f"r-{key}")
        return None

    async def close(self) -> None:
        return None


def raise_(exc: Exception) -> Callable[..., Any]:
    def step(*_: Any) -> Any:
        raise exc
    return step


async def hang(*_: Any) -> None:
    await asyncio.sleep(3600)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def _conversation(store, text="Where is my order?") -> int:
    store.ingest("src", [msg("in-1", text, thread="t")], None, now=T0)
    return store.find_conversation("src", "t")


# -- outbox --------------------------------------------------------------------------
async def test_outbox_sends_records_and_stops_the_clock(store):
    conv_id = _conversation(store)
    src = ScriptedSource("src")
    reply = store.queue_reply(conv_id, "It ships today!", agent="sam", now=T0)
    report = await Outbox(store, {"src": src}, owner="p", clock=lambda: T0).run_once()
    assert report.sent == [reply.id]
    assert src.sent == [(reply.idempotency_key, "It ships today!")]
    stored = store.reply(reply.id)
    assert stored.state == ReplyState.SENT and stored.remote_id == f"r-{reply.idempotency_key}"
    assert store.conversation(conv_id).waiting_since is None
    texts = [(str(m.direction), m.text) for m in store.messages(conv_id)]
    assert texts == [("in", "Where is my order?"), ("out", "It ships today!")]


async def test_transient_errors_are_retried_with_backoff_then_sent(store):
    conv_id = _conversation(store)
    src = ScriptedSource("src", sends=[raise_(TransientError("502 from gateway")),
                                       raise_(TransientError("connection refused"))])
    clock = Clock(T0)
    outbox = Outbox(store, {"src": src}, owner="p", clock=clock)
    reply = store.queue_reply(conv_id, "hi", now=T0)
    report = await outbox.run_once()
    assert report.retrying == [reply.id] and not src.sent
    stored = store.reply(reply.id)
    assert stored.state == ReplyState.QUEUED and stored.last_error == "502 from gateway"
    assert (await outbox.run_once()).sent == []  # not due yet
    clock.now += timedelta(minutes=1)
    await outbox.run_once()
    clock.now += timedelta(minutes=1)
    report = await outbox.run_once()
    assert report.sent == [reply.id] and len(src.sent) == 1
    assert store.reply(reply.id).attempts == 3


async def test_a_rate_limit_waits_until_the_time_the_platform_named(store):
    conv_id = _conversation(store)
    reset = T0 + timedelta(minutes=15)
    src = ScriptedSource("src", sends=[raise_(RateLimited("429", retry_at=reset))])
    clock = Clock(T0)
    outbox = Outbox(store, {"src": src}, owner="p", clock=clock)
    store.queue_reply(conv_id, "hi", now=T0)
    await outbox.run_once()
    clock.now = reset - timedelta(seconds=1)
    assert (await outbox.run_once()).sent == []
    clock.now = reset
    assert len((await outbox.run_once()).sent) == 1


async def test_permanent_errors_fail_with_the_reason_and_keep_the_text(store):
    conv_id = _conversation(store)
    src = ScriptedSource("src", sends=[raise_(PermanentError("token lacks write:statuses"))])
    reply = store.queue_reply(conv_id, "my careful answer", now=T0)
    report = await Outbox(store, {"src": src}, owner="p", clock=lambda: T0).run_once()
    assert report.failed == [(reply.id, "token lacks write:statuses")]
    stored = store.reply(reply.id)
    assert stored.state == ReplyState.FAILED and stored.body == "my careful answer"
    store.requeue_reply(reply.id, now=T0)
    assert (await Outbox(store, {"src": src}, owner="p", clock=lambda: T0).run_once()).sent


async def test_too_long_replies_fail_before_anything_is_sent(store):
    conv_id = _conversation(store)
    src = ScriptedSource("src")
    reply = store.queue_reply(conv_id, "障害" * 141, now=T0)  # 282 CJK = 564 weighted
    report = await Outbox(store, {"src": src}, owner="p", clock=lambda: T0).run_once()
    assert src.send_attempts == 0
    assert "564/280 weighted characters" in report.failed[0][1]
    assert store.reply(reply.id).state == ReplyState.FAILED


def _crash_mid_send(store, conv_id) -> Reply:
    """A reply left in 'sending' by a process that died, its claim lapsed."""
    reply = store.queue_reply(conv_id, "hi", now=T0)
    store.claim_replies("dead-process", lease_until=T0 + timedelta(minutes=5), now=T0)
    return reply


async def test_after_a_crash_an_idempotent_source_is_sent_again_with_the_same_key(store):
    conv_id = _conversation(store)
    reply = _crash_mid_send(store, conv_id)
    src = ScriptedSource("src", idempotent=True)
    src.sent.append((reply.idempotency_key, "hi"))  # it did go out before the crash
    later = T0 + timedelta(minutes=6)
    report = await Outbox(store, {"src": src}, owner="p2", clock=lambda: later).run_once()
    assert report.sent == [reply.id]
    assert src.sent == [(reply.idempotency_key, "hi")]  # the platform deduplicated


async def test_after_a_crash_a_reconciling_source_checks_before_sending(store):
    conv_id = _conversation(store)
    went_out = _crash_mid_send(store, conv_id)
    store.ingest("src", [msg("in-2", thread="t2")], None, now=T0)
    conv2 = store.find_conversation("src", "t2")
    did_not = _crash_mid_send(store, conv2)
    src = ScriptedSource("src", reconcile=True)
    src.sent.append((went_out.idempotency_key, "hi"))
    later = T0 + timedelta(minutes=6)
    report = await Outbox(store, {"src": src}, owner="p2", clock=lambda: later).run_once()
    assert sorted(report.sent) == sorted([went_out.id, did_not.id])
    assert [k for k, _ in src.sent] == [went_out.idempotency_key, did_not.idempotency_key]
    assert src.find_sent_calls == 2


async def test_after_a_crash_a_source_that_cannot_tell_holds_the_reply_unconfirmed(store):
    conv_id = _conversation(store)
    reply = _crash_mid_send(store, conv_id)
    src = ScriptedSource("src")
    later = T0 + timedelta(minutes=6)
    report = await Outbox(store, {"src": src}, owner="p2", clock=lambda: later).run_once()
    assert report.unconfirmed == [reply.id] and src.send_attempts == 0
    stored = store.reply(reply.id)
    assert stored.state == ReplyState.UNCONFIRMED and "cannot tell" in stored.last_error
    # Still nothing sent on later rounds: a person decides.
    assert (await Outbox(store, {"src": src}, owner="p2", clock=lambda: later).run_once()
            ).sent == []


async def test_a_send_timeout_on_a_platform_without_keys_is_not_retried_blindly(store):
    conv_id = _conversation(store)
    src = ScriptedSource("src", sends=[hang])
    reply = store.queue_reply(conv_id, "hi", now=T0)
    outbox = Outbox(store, {"src": src}, owner="p", clock=lambda: T0, send_timeout=0.2)
    report = await outbox.run_once()
    assert report.unconfirmed == [reply.id]
    assert store.reply(reply.id).state == ReplyState.UNCONFIRMED


async def test_maybe_sent_errors_on_an_idempotent_source_are_recovered_with_the_key(store):
    conv_id = _conversation(store)
    src = ScriptedSource("src", idempotent=True,
                         sends=[raise_(TransientError("read timeout", maybe_sent=True))])
    clock = Clock(T0)
    outbox = Outbox(store, {"src": src}, owner="p", clock=clock)
    reply = store.queue_reply(conv_id, "hi", now=T0)
    assert (await outbox.run_once()).retrying == [reply.id]
    clock.now += timedelta(hours=1)
    assert (await outbox.run_once()).sent == [reply.id]
    assert len(src.sent) == 1


# -- poller --------------------------------------------------------------------------
def _batch_of(*ids: str, thread: str = "t") -> Callable[[str | None], Batch]:
    return lambda cursor: Batch([msg(i, thread=thread, source="ok") for i in ids],
                                f"after-{ids[-1]}")


async def test_a_hanging_source_never_delays_the_others(store):
    hung = ScriptedSource("hung", fetches=[hang] * 10)
    ok = ScriptedSource("ok", fetches=[_batch_of(f"m{i}", thread=f"t{i}") for i in range(50)])
    poller = Poller(store, [PolledSource(hung, interval=0.05, fetch_timeout=0.5),
                            PolledSource(ok, interval=0.05, fetch_timeout=0.5)], owner="p")
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(1.2, stop.set)
    await poller.run(stop)
    assert ok.fetch_calls >= 8, ok.fetch_calls  # kept its 50 ms schedule meanwhile
    assert hung.fetch_calls <= 2
    states = {s.name: s for s in store.source_states()}
    assert states["ok"].health == Health.OK
    assert states["hung"].health == Health.DEGRADED
    assert "no answer within" in (states["hung"].last_error or "")
    assert store.count(InboxFilter()) == ok.fetch_calls


async def test_rate_limit_reset_is_honoured_and_errors_back_off_then_recover(store):
    reset = T0 + timedelta(minutes=7)
    src = ScriptedSource("ok", fetches=[
        raise_(RateLimited("429 Too many requests", retry_at=reset)),
        raise_(TransientError("503")), raise_(TransientError("503")),
        raise_(TransientError("503")), _batch_of("m1"),
    ])
    clock = Clock(T0)
    ps = PolledSource(src, interval=60)
    poller = Poller(store, [ps], owner="p", clock=clock)
    outcome = await poller.poll(ps)
    assert outcome.next_at == reset + timedelta(seconds=1)
    assert store.source_state("ok").next_poll_at == reset + timedelta(seconds=1)
    delays = []
    for _ in range(3):
        clock.now = ps.next_at
        before = clock.now
        outcome = await poller.poll(ps)
        delays.append((outcome.next_at - before).total_seconds())
    assert outcome.health == Health.FAILING and ps.failures == 3
    assert delays[0] <= 5 and delays[2] <= 20 and max(delays) > 0
    clock.now = ps.next_at
    outcome = await poller.poll(ps)
    assert outcome.health == Health.OK and outcome.new_messages == 1
    assert store.source_state("ok").failures == 0


async def test_a_malformed_answer_or_adapter_bug_marks_only_that_source_degraded(store):
    bad = ScriptedSource("bad", fetches=[raise_(KeyError("data"))])
    ok = ScriptedSource("ok", fetches=[_batch_of("m1")])
    poller = Poller(store, [PolledSource(bad, interval=60), PolledSource(ok, interval=60)],
                    owner="p")
    outcomes = {o.source: o for o in await poller.run_once()}
    assert outcomes["bad"].health == Health.DEGRADED
    assert "internal error" in outcomes["bad"].error
    assert outcomes["ok"].new_messages == 1


async def test_two_processes_never_poll_the_same_source_at_once(tmp_path):
    from replydeck.inbox.store import Store

    path = tmp_path / "shared.db"
    a, b = Store(path), Store(path)
    gate = asyncio.Event()

    async def slow(cursor):
        await gate.wait()
        return Batch([msg("m1", source="ok")], "c")

    src_a = ScriptedSource("ok", fetches=[slow])
    src_b = ScriptedSource("ok", fetches=[_batch_of("m2")])
    pa = Poller(a, [PolledSource(src_a, interval=60)], owner="A")
    pb = Poller(b, [PolledSource(src_b, interval=60)], owner="B")
    task = asyncio.create_task(pa.poll(pa.sources[0]))
    await asyncio.sleep(0.1)
    outcome_b = await pb.poll(pb.sources[0])
    assert outcome_b.skipped and src_b.fetch_calls == 0
    gate.set()
    assert (await task).new_messages == 1
    a.close()
    b.close()


def test_backoff_is_bounded_and_jittered():
    import random

    from replydeck.inbox.poller import BACKOFF_MAX_S, backoff_delay

    rng = random.Random(1)
    values = [backoff_delay(n, rng) for n in range(1, 30)]
    assert all(0 < v <= BACKOFF_MAX_S for v in values)
    assert len({round(v, 3) for v in values}) > 20


@pytest.fixture(autouse=True)
def _utc_guard():
    assert utcnow().tzinfo is timezone.utc


async def test_rejected_credentials_keep_the_reply_queued_until_they_work(store):
    from replydeck.sources.base import AuthError

    conv_id = _conversation(store)
    src = ScriptedSource("src", sends=[raise_(AuthError("token expired: run doctor"))] * 12)
    clock = Clock(T0)
    outbox = Outbox(store, {"src": src}, owner="p", clock=clock, max_attempts=3)
    reply = store.queue_reply(conv_id, "hi", now=T0)
    for _ in range(12):  # far past max_attempts: it never gives up
        report = await outbox.run_once()
        assert report.retrying == [reply.id] and not report.failed
        stored = store.reply(reply.id)
        assert stored.state == ReplyState.QUEUED
        assert "waiting for working credentials" in stored.last_error
        clock.now += timedelta(minutes=6)
    assert (await outbox.run_once()).sent == [reply.id]  # the token works again
    assert len(src.sent) == 1
