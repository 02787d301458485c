"""The demo source: deterministic, realistic, paced by an injected clock."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.sources import SourceTable
from replydeck.inbox.model import Author, Direction, Kind, Message, Reply
from replydeck.inbox.sanitize import is_inert
from replydeck.sources import source_class
from replydeck.sources.base import TransientError
from replydeck.sources.demo import DemoSource, hostile_corpus

UTC = timezone.utc
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PLATFORMS = {"x", "instagram", "facebook", "mastodon", "bluesky", "email"}


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def demo(seed: int = 7, rate: float = 6, clock: Clock | None = None) -> DemoSource:
    return DemoSource("demo", seed=seed, rate=rate, speed=1e6, clock=clock or Clock())


def fingerprint(m: Message) -> tuple:
    return (m.remote_id, m.platform, m.kind, m.direction, m.author, m.text, m.created_at,
            m.thread_key, m.in_reply_to, m.language)


async def drain(source: DemoSource, cursor: str | None) -> tuple[list[Message], str | None]:
    items: list[Message] = []
    while True:
        batch = await source.fetch(cursor)
        items += batch.items
        cursor = batch.cursor
        if not batch.more:
            return items, cursor


async def test_same_seed_same_items_different_seed_different_items() -> None:
    clocks = [Clock(), Clock(), Clock()]
    sources = [demo(7, clock=clocks[0]), demo(7, clock=clocks[1]), demo(8, clock=clocks[2])]
    runs = []
    for source, clock in zip(sources, clocks, strict=True):
        first, cursor = await drain(source, None)
        clock.advance(minutes=20)
        later, _ = await drain(source, cursor)
        runs.append([fingerprint(m) for m in first + later])
    assert runs[0] == runs[1]
    assert len(runs[0]) > 100
    assert [r[5] for r in runs[0]] != [r[5] for r in runs[2]]


async def test_items_do_not_depend_on_how_often_it_is_polled() -> None:
    once_clock, often_clock = Clock(), Clock()
    once, often = demo(clock=once_clock), demo(clock=often_clock)
    _, c1 = await drain(once, None)
    _, c2 = await drain(often, None)
    once_clock.advance(minutes=15)
    in_one, _ = await drain(once, c1)
    in_many: list[Message] = []
    for _ in range(15):
        often_clock.advance(minutes=1)
        batch, c2 = await drain(often, c2)
        in_many += batch
    assert [fingerprint(m) for m in in_one] == [fingerprint(m) for m in in_many]


async def test_restart_from_cursor_continues_without_duplicates() -> None:
    clock = Clock()
    first, cursor = await drain(demo(clock=clock), None)
    clock.advance(minutes=5)
    # A new process with the stored cursor.
    later, _ = await drain(demo(clock=clock), cursor)
    ids = [m.remote_id for m in first + later]
    assert len(ids) == len(set(ids))
    assert len(later) == 30
    assert json.loads(cursor or "")["start"] == T0.isoformat()


@pytest.mark.parametrize("seed", [7, 1, 2024])
async def test_backlog_composition(seed: int) -> None:
    items, _ = await drain(demo(seed), None)
    threads: dict[str, list[Message]] = defaultdict(list)
    for m in items:
        threads[m.thread_key or m.remote_id].append(m)

    assert 25 <= len(threads) <= 40
    assert all(T0 - timedelta(hours=3) <= m.created_at < T0 for m in items)
    assert items == sorted(items, key=lambda m: m.created_at)
    first_inbound = [min(m.created_at for m in t if m.direction == Direction.IN)
                     for t in threads.values()]
    assert sum(t < T0 - timedelta(hours=1) for t in first_inbound) >= 5

    assert {m.platform for m in items} == PLATFORMS
    assert {m.language for m in items} >= {"en", "ja"}
    assert any(re.search(r"[\u3040-\u30ff]", m.text) for m in items)
    kinds = {m.kind for m in items}
    assert {Kind.MENTION, Kind.COMMENT, Kind.DM, Kind.EMAIL} <= kinds

    # An outage wave: at least five different customers within ten minutes.
    outage = sorted((m for m in items if re.search(r"\bdown\b|outage|障害", m.text)),
                    key=lambda m: m.created_at)
    assert any(
        len({m.author.id for m in outage[i:] if m.created_at - outage[i].created_at
             <= timedelta(minutes=10)}) >= 5
        for i in range(len(outage))
    )
    assert any((m.author.followers or 0) >= 250_000 for m in items)
    assert any(re.search(r"lawyer|lawsuit|訴訟", m.text) for m in items)
    assert any("refund" in m.text.lower() or "返金" in m.text for m in items)

    # Hostile text arrives as inert text that still carries its markup literally.
    assert any("[@click=app.quit]" in m.text for m in items)
    assert any(len(m.text.encode()) >= 20_000 for m in items)
    assert all(is_inert(m.text) for m in items)
    assert all(is_inert(m.author.name) and "\n" not in m.author.name for m in items)
    assert any(m.author.name == "[bold red]ADMIN[/] official" for m in items)

    # Outbound replies sent from the phone app, inside customer threads.
    outbound = [m for m in items if m.direction == Direction.OUT]
    assert outbound
    for m in outbound:
        thread = threads[m.thread_key or ""]
        assert any(x.direction == Direction.IN and x.created_at < m.created_at for x in thread)
        assert m.in_reply_to in {x.remote_id for x in thread}
    # ... one of them followed by the customer writing back in the same thread.
    assert any(t[-1].direction == Direction.IN and any(x.direction == Direction.OUT for x in t)
               for t in threads.values())
    # A repeat customer: three messages from one author, nobody answered.
    assert any(len(t) >= 3 and len({x.author.id for x in t}) == 1 for t in threads.values())


async def test_live_traffic_has_threads_outbound_and_both_languages() -> None:
    clock = Clock()
    _, cursor = await drain(demo(rate=30, clock=clock), None)
    clock.advance(hours=1)
    live, _ = await drain(demo(rate=30, clock=clock), cursor)
    assert len(live) == 1800
    assert {m.language for m in live} >= {"en", "ja"}
    assert any(m.direction == Direction.OUT for m in live)
    assert any(m.in_reply_to and m.direction == Direction.IN for m in live)
    assert {m.platform for m in live} == PLATFORMS
    assert all(is_inert(m.text) for m in live)
    assert all(T0 < m.created_at <= clock.now for m in live)


async def test_rate_paces_arrivals_by_the_clock() -> None:
    clock = Clock()
    source = demo(rate=6, clock=clock)
    backlog, cursor = await drain(source, None)
    assert len(backlog) > 30
    assert (await source.fetch(cursor)).items == []  # no time has passed
    clock.advance(seconds=60)
    batch = await source.fetch(cursor)
    assert len(batch.items) == 6
    assert all(T0 < m.created_at <= clock.now for m in batch.items)
    clock.advance(minutes=9)
    rest, _ = await drain(source, batch.cursor)
    assert 53 <= len(rest) <= 55  # 60 in ten minutes, give or take the one due right now


async def test_long_pause_comes_in_capped_batches() -> None:
    clock = Clock()
    source = demo(rate=60, clock=clock)
    _, cursor = await drain(source, None)
    clock.advance(minutes=40)
    batch = await source.fetch(cursor)
    assert len(batch.items) == 500 and batch.more
    items, _ = await drain(source, batch.cursor)
    assert len(batch.items) + len(items) == 2400


async def test_cursor_of_another_seed_starts_a_new_demo() -> None:
    clock = Clock()
    _, cursor = await drain(demo(seed=1, clock=clock), None)
    clock.advance(minutes=30)
    items, new_cursor = await drain(demo(seed=2, clock=clock), cursor)
    assert json.loads(new_cursor or "")["start"] == clock.now.isoformat()
    assert all(m.created_at < clock.now for m in items)
    assert all(m.remote_id.startswith("demo-2-") for m in items)


# -- sending -----------------------------------------------------------------------------

def reply(key: str, to: Message, private: bool = False) -> Reply:
    return Reply(id=1, conversation_id=1, source="demo", body="Sorry! [b]Fixing it[/b]\x1b[2J",
                 private=private, idempotency_key=key, reply_to=to, thread_key=to.thread_key)


def customer(platform: str = "x", kind: Kind = Kind.MENTION) -> Message:
    return Message(source="demo", remote_id="demo-7-3", platform=platform, kind=kind,
                   author=Author(id="x:maya"), text="app down?", created_at=T0,
                   thread_key="demo-7-b3", language="en")


async def send_until_sent(source: DemoSource, r: Reply) -> tuple[int, object]:
    for attempt in range(1, 4):
        try:
            return attempt, await source.send(r)
        except TransientError:
            continue
    raise AssertionError("a reply failed three times in a row")


async def test_send_is_idempotent_and_returns_the_outbound_message() -> None:
    clock = Clock()
    source = demo(clock=clock)
    to = customer()
    _, receipt = await send_until_sent(source, reply("key-1", to))
    clock.advance(minutes=1)
    again = await source.send(reply("key-1", to))
    assert again == receipt
    m = receipt.message
    assert m is not None
    assert (m.direction, m.platform, m.kind, m.thread_key, m.in_reply_to) == (
        Direction.OUT, "x", Kind.REPLY, "demo-7-b3", "demo-7-3")
    assert m.text == "Sorry! [b]Fixing it[/b]" and m.created_at == T0
    assert receipt.remote_id == m.remote_id and receipt.sent_at == T0


async def test_private_reply_to_a_comment_is_a_dm() -> None:
    source = demo()
    _, receipt = await send_until_sent(
        source, reply("key-2", customer("instagram", Kind.COMMENT), private=True))
    assert receipt.message.kind == Kind.DM and receipt.url is None


async def test_about_one_send_in_ten_fails_transiently_and_a_retry_succeeds() -> None:
    source = demo()
    to = customer()
    attempts = [(await send_until_sent(source, reply(f"k-{i}", to)))[0] for i in range(200)]
    failed_first = sum(a > 1 for a in attempts)
    assert 8 <= failed_first <= 35
    # Deterministic from seed and key: a fresh source fails on exactly the same keys.
    fresh = demo()
    again = [(await send_until_sent(fresh, reply(f"k-{i}", to)))[0] for i in range(200)]
    assert again == attempts


def test_platform_limits() -> None:
    source = demo()
    assert source.platform == "demo"
    assert source.limits_for("x").for_reply(False) == (280, "x_weighted")
    assert source.limits_for("bluesky").for_reply(False) == (300, "graphemes")
    assert source.limits_for("mastodon").for_reply(False) == (500, "chars")
    assert source.limits_for("instagram").for_reply(True) == (1000, "utf8_bytes")
    assert source.limits_for("facebook").for_reply(True) == (2000, "chars")
    assert source.limits_for("email").for_reply(True) == (100_000, "chars")
    assert source.limits.max_length >= 100_000


# -- config and package data ---------------------------------------------------------------

def table(data: dict) -> SourceTable:
    t = SourceTable(data, "sources[0]", "config.toml", None)
    t.name = "demo"
    return t


def test_from_config_defaults_and_options() -> None:
    source = source_class("demo").from_config(table({}))
    assert isinstance(source, DemoSource)
    assert (source.seed, source.rate, source.speed) == (7, 6.0, 1.0)
    source = DemoSource.from_config(table({"seed": 42, "rate": 0.5, "speed": 10}))
    assert (source.seed, source.rate, source.speed) == (42, 0.5, 10.0)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"rate": 0}, "sources[0].rate: expected a number of messages per minute > 0, found 0"),
        ({"rate": "fast"}, "sources[0].rate: expected a number, found string 'fast'"),
        ({"seed": 1.5}, "sources[0].seed: expected an integer, found float 1.5"),
        ({"speed": -1}, "sources[0].speed: expected a number > 0, found -1"),
    ],
)
def test_config_errors(data: dict, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        DemoSource.from_config(table(data))
    assert str(info.value) == f"config.toml: {problem}"


def test_hostile_corpus_ships_with_the_package() -> None:
    corpus = hostile_corpus()
    assert len(corpus) >= 30
    assert len(corpus["very-long-message"]) >= 20_000
    assert "\x1b" in corpus["ansi-colour"]


FINGERPRINT_SCRIPT = """
import asyncio, hashlib
from datetime import datetime, timezone
from replydeck.sources.demo import DemoSource
now = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
batch = asyncio.run(DemoSource(seed=7, clock=lambda: now).fetch(None))
print(hashlib.sha256(repr([(m.remote_id, m.text, m.author) for m in batch.items])
                     .encode()).hexdigest())
"""


async def test_same_seed_gives_the_same_demo_in_another_process() -> None:
    batch = await demo(7).fetch(None)
    here = hashlib.sha256(repr([(m.remote_id, m.text, m.author) for m in batch.items])
                          .encode()).hexdigest()
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    there = subprocess.run([sys.executable, "-c", FINGERPRINT_SCRIPT], env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    assert here == there
