"""X, Facebook, Instagram and Telegram end to end through the real `replydeck` command.

Each platform's fake runs in this process on 127.0.0.1; the CLI runs as a subprocess
pointed at it (``api_base``, secrets through ``env:``). What a user depends on:

* a customer's mention / comment / DM appears once, in its own conversation, and a second
  poll adds nothing;
* queued replies land in the right thread exactly once, also when ``replydeck poll`` is
  killed with SIGKILL while it sends (every send answers slowly, so kills land mid-send):
  X and Meta reconcile through ``find_sent``; Telegram cannot, so a reply cut off by a
  kill is held as ``unconfirmed`` and never sent blindly a second time;
* a rate limit answered with the platform's own status, headers and body is survived:
  the source is marked rate limited, and the next poll after the reset gets the item once.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from replydeck.runtime import RECONCILE_GRACE_S
from tests.fakes.httpfake import FakeHTTPServer, FakeRequest, Fault
from tests.fakes.meta import FakeMeta
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram import error as tg_error
from tests.fakes.x import FakeX

pytestmark = pytest.mark.slow

CUSTOMERS = 10
#: Every send waits this long (drawn per request) before the platform carries it out.
HANG_S = (0.15, 0.7)
#: Seconds until a rate limit resets: longer than the poller's first back-off (2.5-5 s), so
#: a poller that ignored the platform's reset time would be caught.
RESET_S = 8
MAX_KILL_ROUNDS = 10


# -- the CLI -------------------------------------------------------------------------------
def cli_env(tmp: Path, env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "REPLYDECK_CONFIG": str(tmp / "config.toml"),
            "REPLYDECK_DATA_DIR": str(tmp / "data"), "PYTHONUTF8": "1", **env}


def run(tmp: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "replydeck.cli", *args],
                          capture_output=True, text=True, timeout=60,
                          env=cli_env(tmp, env), check=False)
    for secret in env.values():  # the tokens (Telegram's is even part of every URL)
        assert secret not in done.stdout + done.stderr, f"a token leaked from {args}"
    return done


def ok_json(tmp: Path, env: dict[str, str], *args: str) -> Any:
    done = run(tmp, env, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def spawn_poll(tmp: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "replydeck.cli", "poll"],
                            env=cli_env(tmp, env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def query(tmp: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    db = tmp / "data" / "replydeck.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # the schema is not created yet
        return []
    finally:
        conn.close()


def wait_until(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


# -- one harness per platform ------------------------------------------------------------
@dataclass
class Customer:
    tag: str  # unique marker inside the customer's text
    text: str
    #: Texts of our own messages in this customer's thread, as the platform holds them.
    ours: Callable[[], list[str]]
    reply: str = ""
    conv_id: int = 0


@dataclass
class RateLimit:
    reset_at: float  # epoch seconds from which the platform answers again
    end: Callable[[], None]  # returns once the limit is over


@dataclass
class Harness:
    source: str  # source name in the config
    server: FakeHTTPServer
    block: str  # the [[sources]] table
    env: dict[str, str]
    can_reconcile: bool
    is_send: Callable[[FakeRequest], bool]
    #: Every text we posted anywhere on the platform (to catch a reply in a wrong thread).
    all_ours: Callable[[], list[str]]
    add_customer: Callable[[int], Customer]
    #: Makes the platform refuse the next poll with its own rate-limit answer.
    rate_limit: Callable[[], RateLimit]
    stop: Callable[[], None]
    customers: list[Customer] = field(default_factory=list)

    def write_config(self, tmp: Path) -> None:
        (tmp / "config.toml").write_text(
            '[agent]\nname = "tester"\n\n' + textwrap.dedent(self.block), encoding="utf-8")

    def send_texts(self) -> list[str]:
        """The text of every send request the platform received (answered or not)."""
        out = []
        for req in list(self.server.requests):
            if self.is_send(req):
                out.append(_sent_text(req))
        return out


def _sent_text(req: FakeRequest) -> str:
    try:
        body = req.json()
    except ValueError:  # cut off by the kill while being written
        return "<incomplete request>"
    if "message" in body and isinstance(body["message"], dict):
        return str(body["message"].get("text"))
    return str(body.get("text") if "text" in body else body.get("message"))


def x_harness() -> Harness:
    fake = FakeX().start()
    # The test is about crashes, not about X's 15-minute windows (tested in test_x.py).
    for endpoint in fake.limits:
        fake.limits[endpoint] = 100_000
    me = fake.add_user("AcmeSupport", "Acme Support")
    token = fake.issue_token(me)

    def add(i: int) -> Customer:
        user = fake.add_user(f"cust{i:02d}", f"Customer {i:02d}", followers=10 * i)
        tag = f"c{i:02d}x"
        post = fake.post(user, f"my order is late ({tag})", mentions=[me])
        return Customer(tag, post.text, lambda: [p.text for p in fake.replies_by(me, post.id)])

    def limit() -> RateLimit:
        # A 429 with code 88 and x-rate-limit-reset (whole epoch seconds).
        fake.exhaust("mentions", me, reset_in=RESET_S)
        until = float(int(time.time() + RESET_S))

        def end() -> None:  # X's window resets by itself at x-rate-limit-reset
            time.sleep(max(0.0, until - time.time()) + 1.1)
        return RateLimit(until, end)

    return Harness(
        source="x", server=fake.server, env={"RD_X_TOKEN": token}, can_reconcile=True,
        block=f"""
            [[sources]]
            type = "x"
            name = "x"
            poll_interval = 1
            token = "env:RD_X_TOKEN"
            user_id = "{me.id}"
            api_base = "{fake.base_url}"
            """,
        is_send=lambda r: r.method == "POST" and r.path == "/2/tweets",
        all_ours=lambda: [p.text for p in fake.posts.values() if p.author_id == me.id],
        add_customer=add, rate_limit=limit, stop=fake.stop)


def meta_harness(platform: str) -> Harness:
    fake = FakeMeta().start()
    page = fake.add_page(ig_username="acme")
    token = fake.issue_token(page)
    ig = platform == "instagram"
    own_id = page.ig_user_id if ig else page.id
    post = fake.ig_media(page, "New drop") if ig else fake.page_post(page, "Our new menu")

    def add(i: int) -> Customer:
        person = fake.add_person(f"Customer {i:02d}", f"cust{i:02d}")
        if i % 2 == 0:  # a comment under our post
            tag = f"c{i:02d}c"
            comment = fake.comment(post, person, f"where is my order? ({tag})")
            return Customer(tag, comment.message, lambda: [
                c.message for c in fake.replies_to(comment) if c.author.id == own_id])
        tag = f"c{i:02d}d"
        msg = fake.dm(page, person, f"my parcel never came ({tag})", platform=platform
                      if ig else "messenger")
        return Customer(tag, msg.text, lambda: [m.text for m in fake.messages_to(person)])

    def all_ours() -> list[str]:
        comments = [c.message for c in fake.comments.values() if c.author.id == own_id]
        dms = [m.text for conv in fake.conversations.values() for m in conv.messages
               if m.from_id == own_id]
        return comments + dms

    def limit() -> RateLimit:
        # Meta's own throttling: error 80001 with X-App-Usage / X-Business-Use-Case-Usage
        # naming the minutes until access returns (at least one: too long to wait in a
        # test, so the fake's quota is reset instead).
        fake.usage_pct, fake.regain_minutes = 100, 1

        def end() -> None:
            fake.usage_pct, fake.regain_minutes = 5, 0
        return RateLimit(time.time() + 60, end)

    send_rx = re.compile(r"/v\d+\.\d+/(\d+_\d+/comments|\d+/replies|\d+/messages)")
    key = "ig_user_id" if ig else "page_id"
    return Harness(
        source=platform, server=fake.server, env={"RD_META_TOKEN": token},
        can_reconcile=True,
        block=f"""
            [[sources]]
            type = "{platform}"
            name = "{platform}"
            poll_interval = 1
            {key} = "{own_id}"
            token = "env:RD_META_TOKEN"
            api_base = "{fake.base_url}"
            """,
        is_send=lambda r: r.method == "POST" and bool(send_rx.fullmatch(r.path)),
        all_ours=all_ours, add_customer=add, rate_limit=limit, stop=fake.stop)


def telegram_harness() -> Harness:
    fake = FakeTelegram().start()

    def add(i: int) -> Customer:
        user = fake.add_user(f"Customer{i:02d}", f"cust{i:02d}")
        chat = fake.private_chat(user)
        tag = f"c{i:02d}t"
        said = fake.say(chat, user, f"the app crashes on login ({tag})")

        def ours() -> list[str]:
            out = []
            for m in fake.bot_messages(chat):
                # A reply must quote the customer's message, in the customer's chat.
                assert m.get("reply_to_message", {}).get("message_id") == said["message_id"]
                out.append(m["text"])
            return out
        return Customer(tag, said["text"], ours)

    def limit() -> RateLimit:
        retry_after = RESET_S
        fake.server.inject(Fault(response=tg_error(
            429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)),
            when=lambda r: r.path.endswith("/getUpdates"))
        until = time.time() + retry_after

        def end() -> None:
            time.sleep(max(0.0, until - time.time()) + 1.1)
        return RateLimit(until, end)

    return Harness(
        source="telegram", server=fake.server, env={"RD_TG_TOKEN": fake.token},
        can_reconcile=False,
        block=f"""
            [[sources]]
            type = "telegram"
            name = "telegram"
            poll_interval = 1
            long_poll = 0
            token = "env:RD_TG_TOKEN"
            api_base = "{fake.base_url}"
            """,
        is_send=lambda r: r.method == "POST" and r.path.endswith("/sendMessage"),
        all_ours=lambda: [m["text"] for chat in fake.chats.values()
                          for m in fake.bot_messages(chat)],
        add_customer=add, rate_limit=limit, stop=fake.stop)


HARNESSES: dict[str, Callable[[], Harness]] = {
    "x": x_harness,
    "facebook": lambda: meta_harness("facebook"),
    "instagram": lambda: meta_harness("instagram"),
    "telegram": telegram_harness,
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    h = HARNESSES[request.param]()
    h.write_config(tmp_path)
    yield h
    h.stop()


# -- shared checks -------------------------------------------------------------------------
def conversations(tmp: Path, h: Harness) -> dict[str, dict[str, Any]]:
    """tag -> `show --json` of the one conversation holding that customer's message."""
    listed = ok_json(tmp, h.env, "list", "--json", "--status", "all", "--limit", "500")
    out: dict[str, dict[str, Any]] = {}
    for conv in listed:
        shown = ok_json(tmp, h.env, "show", str(conv["id"]), "--json")
        inbound = [m for m in shown["messages"] if m["direction"] == "in"]
        for c in h.customers:
            if any(c.tag in m["text"] for m in inbound):
                assert c.tag not in out, f"{c.tag} appears in two conversations"
                out[c.tag] = shown
    return out


def assert_each_customer_once(tmp: Path, h: Harness) -> dict[str, dict[str, Any]]:
    convs = conversations(tmp, h)
    assert set(convs) == {c.tag for c in h.customers}
    assert len({conv["id"] for conv in convs.values()}) == len(h.customers), \
        "two customers in one conversation"
    for c in h.customers:
        inbound = [m for m in convs[c.tag]["messages"] if m["direction"] == "in"]
        assert len(inbound) == 1, (c.tag, inbound)
        assert c.tag in inbound[0]["text"]
        assert convs[c.tag]["message_count"] == len(convs[c.tag]["messages"])
    assert query(tmp, "SELECT count(*) FROM messages WHERE direction='in'") == [
        (len(h.customers),)]
    return convs


# -- the tests -----------------------------------------------------------------------------
def test_item_appears_once_and_replies_land_once_across_kill_9(
        harness: Harness, tmp_path: Path) -> None:
    h, tmp = harness, tmp_path
    rng = random.Random(f"kill-{h.source}")
    h.customers = [h.add_customer(i) for i in range(CUSTOMERS)]

    for _ in range(2):  # the second poll must add nothing
        done = run(tmp, h.env, "poll", "--once")
        assert done.returncode == 0, done.stderr
        convs = assert_each_customer_once(tmp, h)

    def queue(wave: list[Customer]) -> None:
        for c in wave:
            c.conv_id = convs[c.tag]["id"]
            c.reply = f"Sorry about that, {c.tag}: it is on its way"
            queued = run(tmp, h.env, "reply", str(c.conv_id), "--text", c.reply)
            assert queued.returncode == 0, queued.stderr

    # The platform takes its time over every send: a kill lands while requests are out.
    for _ in range(CUSTOMERS * 4):
        h.server.inject(Fault(hang_s=rng.uniform(*HANG_S), then_handle=True), when=h.is_send)

    queue(h.customers[:CUSTOMERS // 2])
    kills = 0
    in_flight_at_kills = 0
    #: Replies whose request reached the platform (which carries it out) but whose
    #: process was killed before it recorded the answer.
    cut_off: set[str] = set()
    for round_ in range(MAX_KILL_ROUNDS):
        proc = spawn_poll(tmp, h.env)
        if round_ == 0:
            # The first kill for certain mid-send: while the first request is still out.
            assert wait_until(lambda: bool(h.send_texts()), 30), "nothing was sent"
            time.sleep(rng.uniform(0.0, HANG_S[0] / 2))
        else:
            time.sleep(rng.uniform(0.3, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
        sending = {body for (body,) in query(
            tmp, "SELECT body FROM replies WHERE state='sending'")}
        in_flight_at_kills += len(sending)
        cut_off |= sending & set(h.send_texts())
        # No pause before the restart: a request the killed process left at the platform
        # may still be carried out there while the new process starts. Recovery for
        # sources that reconcile waits out RECONCILE_GRACE_S, so it sees that post.
        if round_ == 0:
            queue(h.customers[CUSTOMERS // 2:])  # the second wave meets random kills
        elif query(tmp, "SELECT count(*) FROM replies WHERE state NOT IN "
                        "('queued', 'sending')")[0][0] == CUSTOMERS:
            break
    # Replies a killed process was sending are recovered once their grace has passed.
    (latest,) = query(tmp, "SELECT max(updated_at) FROM replies WHERE state='sending'")[0]
    if latest is not None:
        time.sleep(max(0.0, latest / 1000 + RECONCILE_GRACE_S - time.time()) + 0.5)
    final = run(tmp, h.env, "poll", "--once")
    assert final.returncode == 0, final.stderr
    assert kills >= 2 and cut_off, "no kill landed mid-send"

    states = dict(query(tmp, "SELECT body, state FROM replies"))
    errors = query(tmp, "SELECT body, last_error FROM replies WHERE state NOT IN "
                        "('sent', 'unconfirmed')")
    assert not errors, f"replies neither sent nor held: {errors}"
    sent = [c for c in h.customers if states[c.reply] == "sent"]
    unconfirmed = [c for c in h.customers if states[c.reply] == "unconfirmed"]
    assert len(sent) + len(unconfirmed) == CUSTOMERS, "a reply was lost"
    if h.can_reconcile:
        assert not unconfirmed, "a source that reconciles must not hold replies"
    else:
        # Only what a kill cut off mid-send is held, and it was never sent a second time.
        assert len(unconfirmed) <= in_flight_at_kills
        assert cut_off <= {c.reply for c in unconfirmed}
        assert sorted(h.send_texts()) == sorted(set(h.send_texts())), "a blind resend"
        held = ok_json(tmp, h.env, "outbox", "--json")
        assert sorted(r["body"] for r in held if r["state"] == "unconfirmed") == sorted(
            c.reply for c in unconfirmed)

    # On the platform: each reply in its own customer's thread, never twice.
    for c in h.customers:
        landed = [t for t in c.ours() if c.reply in t]
        assert len(c.ours()) == len(landed), f"another reply in {c.tag}'s thread: {c.ours()}"
        if c in sent or c.reply in cut_off:
            assert len(landed) == 1, f"{c.tag}: delivered {len(landed)} times"
        else:
            assert len(landed) <= 1, f"{c.tag}: delivered {len(landed)} times"
    assert len(h.all_ours()) == sum(len(c.ours()) for c in h.customers), \
        "a reply landed outside its customer's thread"

    # In replydeck: each sent reply once in its conversation, as the outbound message.
    convs = assert_each_customer_once(tmp, h)
    for c in h.customers:
        shown = convs[c.tag]
        assert shown["id"] == c.conv_id
        out = [m for m in shown["messages"] if m["direction"] == "out"]
        [reply] = shown["replies"]
        if c in sent:
            assert len(out) == 1 and c.reply in out[0]["text"], (c.tag, out)
            assert out[0]["remote_id"] == reply["remote_id"]
        else:
            assert out == []


def test_rate_limit_with_the_platforms_own_answer_is_survived(
        harness: Harness, tmp_path: Path) -> None:
    h, tmp = harness, tmp_path
    h.customers = [h.add_customer(0)]
    limit = h.rate_limit()

    limited = run(tmp, h.env, "poll", "--once")
    assert limited.returncode in (0, 1) and "Traceback" not in limited.stderr
    assert f"{h.source}: degraded: rate limited" in limited.stderr, limited.stderr
    [(health, error, next_poll_at)] = query(
        tmp, "SELECT health, last_error, next_poll_at FROM sources WHERE name=?", h.source)
    assert health == "degraded" and error.startswith("rate limited: ")
    # It waits for the reset the platform named, and not much longer.
    assert limit.reset_at <= next_poll_at / 1000 <= limit.reset_at + 5
    assert query(tmp, "SELECT count(*) FROM messages") == [(0,)]

    limit.end()
    for _ in range(2):
        done = run(tmp, h.env, "poll", "--once")
        assert done.returncode == 0, done.stderr
        assert_each_customer_once(tmp, h)
    [(health,)] = query(tmp, "SELECT health FROM sources WHERE name=?", h.source)
    assert health == "ok"
