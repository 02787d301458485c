"""X, Facebook, Instagram and Telegram survive platform faults, through the real CLI.

The companion of test_closed_platforms_cli.py (kill -9 and rate limits), with the same set
up: each platform's fake runs in this process on 127.0.0.1, ``replydeck`` runs as a
subprocess pointed at it. Four faults, each met once while fetching and once while sending:

* ``5xx``: a 502/503/500 with the platform's own error body;
* ``hang``: the platform answers later than the source's ``timeout`` (1 s here);
* ``malformed``: a 200 that is not JSON (fetch) or JSON of the wrong shape (send);
* ``expired``: the platform's own answer to a dead token (X's 401 problem, Graph code 190
  subcode 463, Telegram's 401). X refreshes it by itself and writes the new pair back to
  its ``file:`` secrets; the others fail with a clear message until the user stores a new
  token where the config points.

What a user depends on: ``poll --once`` never crashes, the source's health says what went
wrong without leaking a token, nothing is lost (the customer's item is stored exactly once
once the fault is over; a reply stays in the outbox with its text) and nothing is posted
twice on the platform.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_closed_platforms_cli import query, wait_until
from tests.e2e.test_closed_platforms_cli import run as cli_run
from tests.fakes.httpfake import FakeRequest, FakeResponse, Fault
from tests.fakes.meta import FakeMeta
from tests.fakes.meta import graph_error as meta_error
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram import error as tg_error
from tests.fakes.x import FakeX
from tests.fakes.x import problem as x_problem

pytestmark = pytest.mark.slow

#: The source's ``timeout`` config key: a hang must outlast it, not the test's patience.
CLIENT_TIMEOUT_S = 1
HANG_S = 2.5
FAULTS = ("5xx", "hang", "malformed", "expired")
PLATFORMS = ("x", "facebook", "instagram", "telegram")
#: What the source's last_error must say for each fault (a reader knows what happened).
EXPECTED_ERROR = {
    "5xx": re.compile(r"server error|temporary problem", re.I),
    "hang": re.compile(r"did not answer .*within \d+ s|no answer within", re.I),
    "malformed": re.compile(r"malformed answer", re.I),
    "expired": re.compile(r"token", re.I),
}
NOT_JSON = FakeResponse(200, "<html><body><h1>Upstream hiccup</h1></body></html>")


@dataclass
class Platform:
    name: str  # source name and type
    fake: Any
    env: dict[str, str]
    block: str  # the [[sources]] table
    is_fetch: Callable[[FakeRequest], bool]
    is_send: Callable[[FakeRequest], bool]
    server_error: FakeResponse  # the platform's own 5xx answer
    wrong_shape: FakeResponse  # a 200 a send can get that is JSON but not the answer
    add_customer: Callable[[], str]  # posts the customer's item; returns its text
    ours: Callable[[], list[str]]  # what we posted in the customer's thread
    expire: Callable[[], None]  # the token stops working
    renew: Callable[[], None]  # the user stores a working token
    #: X refreshes an expired token by itself (refresh_token + client_id configured).
    self_heals: bool = False
    token_files: list[Path] = field(default_factory=list)
    seen_secrets: set[str] = field(default_factory=set)

    def secrets(self) -> set[str]:
        """Every token this test has used so far, including refreshed ones in files."""
        self.seen_secrets |= set(self.env.values())
        self.seen_secrets |= {f.read_text(encoding="utf-8").strip() for f in self.token_files
                              if f.exists()}
        return self.seen_secrets


def run(tmp: Path, p: Platform, *args: str) -> tuple[int, str, str]:
    done = cli_run(tmp, p.env, *args)  # also checks that no env token leaked
    assert "Traceback" not in done.stderr, done.stderr
    for secret in p.secrets():
        assert secret not in done.stdout + done.stderr, f"a token leaked from {args}"
    return done.returncode, done.stdout, done.stderr


def ok_json(tmp: Path, p: Platform, *args: str) -> Any:
    code, out, err = run(tmp, p, *args)
    assert code == 0, err
    return json.loads(out)


def write_secret(path: Path, value: str) -> None:
    path.write_text(value + "\n", encoding="utf-8")
    os.chmod(path, 0o600)  # file: secrets refuse files others can read


# -- one platform each ---------------------------------------------------------------------
def x_platform(tmp: Path) -> Platform:
    fake = FakeX().start()
    for endpoint in fake.limits:  # X's 15-minute windows are tested in test_x.py
        fake.limits[endpoint] = 100_000
    me = fake.add_user("AcmeSupport", "Acme Support")
    token_file, refresh_file = tmp / "x_token", tmp / "x_refresh"
    write_secret(token_file, fake.issue_token(me))
    write_secret(refresh_file, fake.issue_refresh_token(me, "replydeck-test"))
    posts: list[str] = []

    def add() -> str:
        user = fake.add_user("cust01", "Customer 01", followers=10)
        post = fake.post(user, "my order is late (c01x)", mentions=[me])
        posts.append(post.id)
        return post.text

    return Platform(
        name="x", fake=fake, env={},
        block=f"""
            [[sources]]
            type = "x"
            name = "x"
            poll_interval = 1
            timeout = {CLIENT_TIMEOUT_S}
            token = "file:{token_file}"
            refresh_token = "file:{refresh_file}"
            client_id = "replydeck-test"
            user_id = "{me.id}"
            api_base = "{fake.base_url}"
            """,
        is_fetch=lambda r: r.method == "GET",
        is_send=lambda r: r.method == "POST" and r.path == "/2/tweets",
        server_error=x_problem(503, "Service Unavailable", "Service Unavailable"),
        wrong_shape=FakeResponse(201, {"data": "created"}),
        add_customer=add,
        ours=lambda: [p.text for pid in posts for p in fake.replies_by(me, pid)],
        expire=fake.expire_tokens, renew=lambda: None, self_heals=True,
        token_files=[token_file, refresh_file])


def meta_platform(tmp: Path, platform: str) -> Platform:
    fake = FakeMeta().start()
    page = fake.add_page(ig_username="acme")
    ig = platform == "instagram"
    env = {"RD_META_TOKEN": fake.issue_token(page)}
    people: list[Any] = []

    def add() -> str:
        person = fake.add_person("Customer 01", "cust01")
        people.append(person)
        msg = fake.dm(page, person, "my parcel never came (c01d)",
                      platform="instagram" if ig else "messenger")
        return msg.text

    def renew() -> None:
        env["RD_META_TOKEN"] = fake.issue_token(page)

    send_rx = re.compile(r"/v\d+\.\d+/(\d+_\d+/comments|\d+/replies|\d+/messages)")
    key, own_id = ("ig_user_id", page.ig_user_id) if ig else ("page_id", page.id)
    return Platform(
        name=platform, fake=fake, env=env,
        block=f"""
            [[sources]]
            type = "{platform}"
            name = "{platform}"
            poll_interval = 1
            timeout = {CLIENT_TIMEOUT_S}
            {key} = "{own_id}"
            token = "env:RD_META_TOKEN"
            api_base = "{fake.base_url}"
            """,
        is_fetch=lambda r: r.method == "GET",
        is_send=lambda r: r.method == "POST" and bool(send_rx.fullmatch(r.path)),
        # Graph's "service temporarily unavailable" (code 2) on a 500.
        server_error=meta_error("An unexpected error has occurred. Please retry your "
                                "request later.", 2, status=500),
        wrong_shape=FakeResponse(200, {"result": "ok"}),
        add_customer=add,
        ours=lambda: [m.text for p in people for m in fake.messages_to(p)],
        expire=fake.expire_tokens, renew=renew)


def telegram_platform(tmp: Path) -> Platform:
    fake = FakeTelegram().start()
    env = {"RD_TG_TOKEN": fake.token}
    chats: list[Any] = []

    def add() -> str:
        user = fake.add_user("Customer01", "cust01")
        chat = fake.private_chat(user)
        chats.append(chat)
        return str(fake.say(chat, user, "the app crashes on login (c01t)")["text"])

    def expire() -> None:  # revoked in @BotFather: same bot, same format, new secret part
        env["RD_TG_TOKEN"] = fake.token[:-6] + "Revokd"

    def renew() -> None:
        env["RD_TG_TOKEN"] = fake.token

    return Platform(
        name="telegram", fake=fake, env=env,
        block=f"""
            [[sources]]
            type = "telegram"
            name = "telegram"
            poll_interval = 1
            long_poll = 0
            timeout = {CLIENT_TIMEOUT_S}
            token = "env:RD_TG_TOKEN"
            api_base = "{fake.base_url}"
            """,
        is_fetch=lambda r: r.path.endswith("/getUpdates"),
        is_send=lambda r: r.method == "POST" and r.path.endswith("/sendMessage"),
        server_error=tg_error(502, "Bad Gateway"),
        wrong_shape=FakeResponse(200, {"ok": True}),
        add_customer=add,
        ours=lambda: [m["text"] for c in chats for m in fake.bot_messages(c)],
        expire=expire, renew=renew)


BUILDERS: dict[str, Callable[[Path], Platform]] = {
    "x": x_platform,
    "facebook": lambda tmp: meta_platform(tmp, "facebook"),
    "instagram": lambda tmp: meta_platform(tmp, "instagram"),
    "telegram": telegram_platform,
}


@contextmanager
def started(name: str, tmp: Path) -> Iterator[Platform]:
    p = BUILDERS[name](tmp)
    (tmp / "config.toml").write_text(
        '[agent]\nname = "tester"\n\n' + textwrap.dedent(p.block), encoding="utf-8")
    try:
        yield p
    finally:
        p.fake.server.clear_faults()
        p.fake.stop()


@pytest.fixture(params=PLATFORMS)
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    with started(request.param, tmp_path) as p:
        yield p


# -- the faults ----------------------------------------------------------------------------
def inject(p: Platform, fault: str, when: Callable[[FakeRequest], bool], *,
           fetch: bool) -> None:
    """Make the platform misbehave for requests matching ``when`` until cleared."""
    server = p.fake.server
    times = 20  # every request of the round, so no half-fetched batch hides the fault
    if fault == "5xx":
        server.inject(Fault(response=p.server_error), times=times, when=when)
    elif fault == "hang":
        # A send that hangs is still carried out by the platform after the client gave up:
        # the worst case, where only a look at the platform tells it went out.
        server.inject(Fault(hang_s=HANG_S, then_handle=not fetch), times=times, when=when)
    elif fault == "malformed":
        server.inject(Fault(response=NOT_JSON if fetch else p.wrong_shape), times=times,
                      when=when)
    elif fault == "expired":
        if p.self_heals and not fetch:
            # The token dies between the fetch and the send: the send meets X's own 401.
            server.inject(Fault(response=x_problem(401, "Unauthorized", "Unauthorized")),
                          when=when)
        else:
            p.expire()


def clear(p: Platform, fault: str) -> None:
    p.fake.server.clear_faults()
    if fault == "expired":
        p.renew()


def source_row(tmp: Path, p: Platform) -> tuple[str, str | None]:
    [(health, error)] = query(tmp, "SELECT health, last_error FROM sources WHERE name=?",
                              p.name)
    return health, error


def assert_clear_error(p: Platform, error: str | None, fault: str) -> None:
    assert error, "no error recorded"
    assert EXPECTED_ERROR[fault].search(error), error
    assert "\n" not in error and len(error) < 600, error
    for secret in p.secrets():
        assert secret not in error, "a token in the stored error"


def inbound_once(tmp: Path, p: Platform, text: str) -> int:
    """The one conversation holding the customer's message; fails unless stored once."""
    listed = ok_json(tmp, p, "list", "--json", "--status", "all")
    assert len(listed) == 1, listed
    shown = ok_json(tmp, p, "show", str(listed[0]["id"]), "--json")
    inbound = [m for m in shown["messages"] if m["direction"] == "in"]
    assert [m["text"] for m in inbound] == [text]
    assert query(tmp, "SELECT count(*) FROM messages WHERE direction='in'") == [(1,)]
    return int(listed[0]["id"])


# -- the tests -----------------------------------------------------------------------------
@pytest.mark.parametrize("fault", FAULTS)
def test_fault_while_fetching_is_survived_and_the_item_arrives_once(
        platform: Platform, fault: str, tmp_path: Path) -> None:
    p, tmp = platform, tmp_path
    text = p.add_customer()
    before = {f.read_text(encoding="utf-8").strip() for f in p.token_files}
    inject(p, fault, p.is_fetch, fetch=True)
    began = time.monotonic()
    code, _out, err = run(tmp, p, "poll", "--once")
    # A hang costs the client timeout, not the platform's whole hang.
    assert time.monotonic() - began < 30

    if p.self_heals and fault == "expired":
        # X: refreshed with the stored refresh token, written back, fetched at once.
        assert code == 0, err
        assert p.fake.server.calls("POST", "/2/oauth2/token")
        renewed = {f.read_text(encoding="utf-8").strip() for f in p.token_files}
        assert not renewed & before, "the refreshed pair was not stored back"
        assert source_row(tmp, p)[0] == "ok"
        inbound_once(tmp, p, text)
    else:
        assert code == 1, err  # the CLI's exit code for "a source failed"
        health, error = source_row(tmp, p)
        assert health in ("degraded", "failing")
        assert_clear_error(p, error, fault)
        assert f"{p.name}: {health}: " in err
        assert query(tmp, "SELECT count(*) FROM messages") == [(0,)]

    clear(p, fault)
    for _ in range(2):  # the second poll must add nothing
        code, _out, err = run(tmp, p, "poll", "--once")
        assert code == 0, err
        inbound_once(tmp, p, text)
    assert source_row(tmp, p) == ("ok", None)


def due_now(tmp: Path, reply_id: int) -> None:
    """Skip the outbox's back-off (10 s and more, with jitter) instead of sleeping it out.

    A retry waits in ``next_attempt_at`` (state queued); a send that may have reached the
    platform waits, still ``sending``, until ``claimed_until`` lapses and is then
    reconciled with ``find_sent``. Both are plain columns the outbox reads on its next
    round, so moving them to the past is exactly "the back-off has passed".
    """
    conn = sqlite3.connect(tmp / "data" / "replydeck.db", timeout=10)
    try:
        with conn:
            conn.execute("UPDATE replies SET next_attempt_at=0 WHERE id=? AND state='queued' "
                         "AND next_attempt_at IS NOT NULL", (reply_id,))
            conn.execute("UPDATE replies SET claimed_until=0 WHERE id=? AND state='sending'",
                         (reply_id,))
    finally:
        conn.close()


def send_params() -> list[Any]:
    out = []
    for name in PLATFORMS:
        for fault in FAULTS:
            out.append(pytest.param(name, fault, id=f"{name}-{fault}"))
    return out


@pytest.mark.parametrize(("platform_name", "fault"), send_params())
def test_fault_while_sending_keeps_the_reply_and_posts_it_once(
        platform_name: str, fault: str, tmp_path: Path) -> None:
    with started(platform_name, tmp_path) as p:
        _send_case(p, fault, tmp_path)


@pytest.mark.parametrize("platform_name", ["facebook", "instagram", "telegram"])
def test_expired_token_while_sending_loses_nothing_with_outbox_retry(
        platform_name: str, tmp_path: Path) -> None:
    """A person who fixes the token and runs `outbox retry` at once gets it sent once too."""
    with started(platform_name, tmp_path) as p:
        _send_case(p, "expired", tmp_path, retry_by_hand=True)


def _send_case(p: Platform, fault: str, tmp: Path, *, retry_by_hand: bool = False) -> None:
    text = p.add_customer()
    code, _out, err = run(tmp, p, "poll", "--once")
    assert code == 0, err
    conv_id = inbound_once(tmp, p, text)
    body = f"Sorry about that: it is on its way ({p.name}-{fault})"
    code, _out, err = run(tmp, p, "reply", str(conv_id), "--text", body)
    assert code == 0, err
    [(reply_id,)] = query(tmp, "SELECT id FROM replies")

    before = {f.read_text(encoding="utf-8").strip() for f in p.token_files}
    inject(p, fault, p.is_send, fetch=False)
    code, _out, err = run(tmp, p, "poll", "--once")
    assert code in (0, 1), err
    if fault == "hang":
        # The platform carries the hung request out after the client gave up.
        assert wait_until(lambda: len(p.ours()) == 1, HANG_S + 5), p.ours()
    [(state, error, kept)] = query(
        tmp, "SELECT state, last_error, body FROM replies WHERE id=?", reply_id)
    assert kept == body

    if p.self_heals and fault == "expired":
        # X: the send's 401 made it refresh the token and send again, once.
        assert state == "sent", error
        assert p.fake.server.calls("POST", "/2/oauth2/token")
        renewed = {f.read_text(encoding="utf-8").strip() for f in p.token_files}
        assert not renewed & before, "the refreshed pair was not stored back"
    elif p.name == "telegram" and fault != "expired":
        # The request may have reached Telegram, which has no way to look: held, not resent.
        assert state == "unconfirmed", (state, error)
        assert_clear_error(p, error, fault)
        held = ok_json(tmp, p, "outbox", "--json")
        assert [(r["id"], r["state"], r["body"]) for r in held] == [
            (reply_id, "unconfirmed", body)]
        clear(p, fault)
        code, _out, err = run(tmp, p, "poll", "--once")  # a later round sends nothing
        assert code == 0, err
        assert query(tmp, "SELECT state FROM replies WHERE id=?", reply_id) == [
            ("unconfirmed",)]
        # The user looks at the chat and tells replydeck what happened there.
        action = "confirm" if p.ours() else "retry"
        code, _out, err = run(tmp, p, "outbox", action, str(reply_id))
        assert code == 0, err
    else:
        waiting = ("queued", "sending") + (("failed",) if retry_by_hand else ())
        assert state in waiting, (state, error)  # waiting for its retry
        assert_clear_error(p, error, fault)
        assert len(p.ours()) <= 1
        assert query(tmp, "SELECT count(*) FROM messages WHERE direction='out'") == [(0,)]
        if state == "failed":
            held = ok_json(tmp, p, "outbox", "--json")
            assert [(r["id"], r["state"], r["body"]) for r in held] == [
                (reply_id, "failed", body)]
        clear(p, fault)
        if state == "failed":
            code, _out, err = run(tmp, p, "outbox", "retry", str(reply_id))
            assert code == 0, err
        due_now(tmp, reply_id)

    for _ in range(2):  # the second round must not post again
        code, _out, err = run(tmp, p, "poll", "--once")
        assert code == 0, err
    [(state, kept)] = query(tmp, "SELECT state, body FROM replies WHERE id=?", reply_id)
    assert (state, kept) == ("sent", body)
    ours = p.ours()  # X starts a reply with the @handle it answers
    assert len(ours) == 1 and ours[0].endswith(body), f"posted {len(ours)} times: {ours}"
    shown = ok_json(tmp, p, "show", str(conv_id), "--json")
    out = [m["text"] for m in shown["messages"] if m["direction"] == "out"]
    if p.name == "telegram" and fault == "hang":
        assert len(out) <= 1  # confirmed by hand: replydeck never saw Telegram's answer
    else:
        assert len(out) == 1 and out[0].endswith(body), out
    assert source_row(tmp, p)[0] == "ok"
