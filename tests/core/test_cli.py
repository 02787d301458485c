"""The command line, run as a user runs it: a subprocess with a config and a data dir."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

from replydeck.inbox.sanitize import is_inert
from replydeck.inbox.store import Store
from tests.core.conftest import hostile_texts, jsonl_line, run_cli, write_config

# Anything a terminal would act on: ESC, C0 (but \n \t), DEL, C1, bidi controls.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")

LIST_FIELDS = {"id", "platform", "kind", "status", "urgency", "tags", "author", "snippet",
               "waiting_since", "due_at", "first_response_at", "assignee", "message_count"}


def _jsonl_config(tmp_path: Path, lines: list[str]) -> Path:
    inbox = tmp_path / "inbox.jsonl"
    inbox.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return write_config(tmp_path, [textwrap.dedent(f"""
        [[sources]]
        type = "jsonl"
        name = "shop"
        poll_interval = 30
        path = "{inbox}"
        reply_path = "{tmp_path / 'replies.jsonl'}"
        """)])


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    lines = [
        jsonl_line(1, text="Where is my order #1234? It's been two weeks", thread="a",
                   author="maria"),
        jsonl_line(2, text="アプリにログインできません。障害ですか？", thread="b",
                   author="yuki", platform="mastodon"),
        jsonl_line(3, text="My card was charged twice, I want a refund now", thread="c",
                   kind="dm", author="sam"),
    ]
    config = _jsonl_config(tmp_path, lines)
    result = run_cli(config, "poll", "--once")
    assert result.returncode == 0, result.stderr
    return config


def _by_author(config: Path) -> dict[str, dict]:
    out = run_cli(config, "list", "--json", "--status", "all")
    assert out.returncode == 0, out.stderr
    return {c["author"]["handle"]: c for c in json.loads(out.stdout)}


def test_list_json_has_the_documented_stable_fields(shop):
    rows = _by_author(shop)
    assert set(rows) == {"maria", "yuki", "sam"}
    for row in rows.values():
        assert set(row) >= LIST_FIELDS
        assert set(row["author"]) >= {"handle", "name", "followers"}
    assert rows["yuki"]["platform"] == "mastodon" and rows["sam"]["kind"] == "dm"
    assert rows["maria"]["waiting_since"].endswith("Z")


def test_list_filters_by_platform_and_search(shop):
    out = json.loads(run_cli(shop, "list", "--json", "--platform", "mastodon").stdout)
    assert [c["author"]["handle"] for c in out] == ["yuki"]
    out = json.loads(run_cli(shop, "list", "--json", "--search", "refund").stdout)
    assert [c["author"]["handle"] for c in out] == ["sam"]
    out = json.loads(run_cli(shop, "list", "--json", "--search", "ログイン").stdout)
    assert [c["author"]["handle"] for c in out] == ["yuki"]
    # `poll --once` indexed what it stored before it exited.
    store = Store(shop.parent / "data" / "replydeck.db")
    assert store.unindexed() == 0 and store.count() == 3
    store.close()


def test_list_table_is_readable_text(shop):
    out = run_cli(shop, "list")
    assert out.returncode == 0
    assert out.stdout.splitlines()[0].split()[:4] == ["ID", "URGENCY", "PLATFORM", "KIND"]
    assert "Maria @maria" in out.stdout and "アプリにログイン" in out.stdout


def test_reply_is_queued_then_sent_by_poll_and_appears_in_show(shop, tmp_path):
    conv = _by_author(shop)["maria"]
    out = run_cli(shop, "reply", str(conv["id"]), "--text", "It left our warehouse today!")
    assert out.returncode == 0, out.stderr
    assert "queued" in out.stdout
    # Until the outbox has sent it, the list says so.
    assert _by_author(shop)["maria"]["undelivered"] == {"queued": 1}
    row = next(line for line in run_cli(shop, "list").stdout.splitlines() if "Maria" in line)
    assert " queued " in row
    assert run_cli(shop, "poll", "--once").returncode == 0
    assert _by_author(shop)["maria"]["undelivered"] == {}
    sent = [json.loads(line) for line in (tmp_path / "replies.jsonl").read_text().splitlines()]
    assert [(r["text"], r["thread"]) for r in sent] == [("It left our warehouse today!", "a")]
    shown = json.loads(run_cli(shop, "show", str(conv["id"]), "--json").stdout)
    assert [m["direction"] for m in shown["messages"]] == ["in", "out"]
    assert shown["replies"][0]["state"] == "sent"
    assert shown["first_response_at"] is not None and shown["waiting_since"] is None
    assert "replied" in [e["type"] for e in shown["events"]]
    text = run_cli(shop, "show", str(conv["id"])).stdout
    assert "It left our warehouse today!" in text and "you" in text


def test_reply_from_stdin_and_private(shop):
    conv = _by_author(shop)["sam"]
    out = run_cli(shop, "reply", str(conv["id"]), "--stdin", "--private",
                  input="Sorry Sam!\nWe refunded the second charge.\n")
    assert out.returncode == 0, out.stderr
    pending = json.loads(run_cli(shop, "outbox", "--json").stdout)
    assert pending[0]["private"] is True
    assert pending[0]["body"] == "Sorry Sam!\nWe refunded the second charge."


def test_reply_refuses_text_over_the_platform_limit(tmp_path):
    config = _jsonl_config(tmp_path, [jsonl_line(1, thread="a", platform="x")])
    run_cli(config, "poll", "--once")
    conv = json.loads(run_cli(config, "list", "--json").stdout)[0]
    out = run_cli(config, "reply", str(conv["id"]), "--text", "あ" * 141)
    assert out.returncode == 1
    assert "282/280 weighted characters" in out.stderr
    assert "Traceback" not in out.stderr


def test_done_reopen_and_snooze(shop):
    convs = _by_author(shop)
    a, b = convs["maria"]["id"], convs["yuki"]["id"]
    assert run_cli(shop, "done", str(a)).returncode == 0
    assert _by_author(shop)["maria"]["status"] == "done"
    open_ids = [c["id"] for c in json.loads(run_cli(shop, "list", "--json").stdout)]
    assert a not in open_ids
    assert run_cli(shop, "reopen", str(a)).returncode == 0
    assert _by_author(shop)["maria"]["status"] == "open"
    out = run_cli(shop, "snooze", str(b), "--until", "2h")
    assert out.returncode == 0, out.stderr
    snoozed = _by_author(shop)["yuki"]
    assert snoozed["status"] == "snoozed" and snoozed["snoozed_until"]
    assert run_cli(shop, "snooze", str(b), "--until", "yesterday-ish").returncode == 1
    assert run_cli(shop, "done", "999").returncode == 1


def test_assign_and_tag(shop):
    conv = _by_author(shop)["sam"]
    assert run_cli(shop, "assign", "me", str(conv["id"])).returncode == 0
    assert run_cli(shop, "tag", "billing", str(conv["id"])).returncode == 0
    row = _by_author(shop)["sam"]
    assert row["assignee"] == "tester" and "billing" in row["tags"]
    out = json.loads(run_cli(shop, "list", "--json", "--tag", "billing").stdout)
    assert [c["id"] for c in out] == [conv["id"]]


def test_a_broken_config_is_one_clear_line_and_exit_2(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[[sources]]\ntype = "jsonl"\nname = "x"\npath = 5\n', encoding="utf-8")
    out = run_cli(config, "list")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip() == (f"replydeck: {config}: sources[0].path: expected a string, "
                                  "found integer 5")
    config.write_text("[agent\nname = 1", encoding="utf-8")
    out = run_cli(config, "poll", "--once")
    assert out.returncode == 2 and "line 1" in out.stderr and "Traceback" not in out.stderr


def test_missing_config_tells_what_to_do(tmp_path):
    out = run_cli(tmp_path / "nope.toml", "list")
    assert out.returncode == 2
    assert "replydeck init" in out.stderr and "replydeck demo" in out.stderr


def test_init_writes_a_config_that_polls_and_refuses_to_overwrite(tmp_path):
    config = tmp_path / "conf" / "config.toml"
    out = run_cli(config, "init", data_dir=tmp_path / "data")
    assert out.returncode == 0, out.stderr
    assert config.exists() and (config.stat().st_mode & 0o777) == 0o600
    again = run_cli(config, "init", data_dir=tmp_path / "data")
    assert again.returncode == 2 and "--force" in again.stderr
    polled = run_cli(config, "poll", "--once", data_dir=tmp_path / "data")
    assert polled.returncode == 0, polled.stderr
    assert json.loads(run_cli(config, "list", "--json", data_dir=tmp_path / "data").stdout)


def test_hostile_text_is_inert_in_every_output(tmp_path):
    texts = hostile_texts()
    lines = [json.dumps({
        "id": f"h{i}", "platform": "x", "kind": "mention",
        "author": {"id": f"a{i}", "handle": f"h{i}\x1b[31m", "name": text[:60]},
        "text": text, "created_at": "2026-11-02T09:00:00Z", "thread": f"t{i}",
    }) for i, (_, text) in enumerate(texts)]  # ASCII escapes keep lone surrogates as JSON has them
    config = _jsonl_config(tmp_path, lines)
    assert run_cli(config, "poll", "--once").returncode == 0
    listed = run_cli(config, "list", "--limit", "500")
    assert listed.returncode == 0
    outputs = [listed.stdout, listed.stderr]
    rows = json.loads(run_cli(config, "list", "--json", "--limit", "500").stdout)
    assert len(rows) == len(texts)
    for row in rows:
        assert is_inert(row["snippet"]) and is_inert(row["author"]["name"])
        assert is_inert(row["author"]["handle"])
        shown = run_cli(config, "show", str(row["id"]))
        assert shown.returncode == 0, shown.stderr
        outputs += [shown.stdout, shown.stderr]
        full = json.loads(run_cli(config, "show", str(row["id"]), "--json").stdout)
        assert all(is_inert(m["text"]) for m in full["messages"])
    for out in outputs:
        assert not UNSAFE.search(out), repr(UNSAFE.search(out))
    # Markup stays literal text.
    assert "[@click=app.quit]press here[/]" in "\n".join(outputs)


def test_demo_headless_prints_the_inbox(tmp_path):
    out = run_cli(tmp_path / "unused.toml", "demo", "--headless", "--duration", "4",
                  "--limit", "5", data_dir=tmp_path / "data", timeout=90)
    assert out.returncode == 0, out.stderr
    assert "conversations need attention" in out.stdout
    assert re.search(r"^\d+\s+(CRISIS|URGENT|HIGH)", out.stdout, re.MULTILINE)


RULES_AND_REPLIES = textwrap.dedent("""
    [[replies]]
    name = "refund"
    triggers = ["refund", "charged twice", "返金"]
    body = "Sorry {customer.name|there}, we'll refund it today. – {agent.name}"

    [[replies]]
    name = "shipping"
    triggers = ["where is my order", "shipping", "delivery"]
    body = "Hi {customer.name|there}, orders arrive in 3-5 days."

    [[rules]]
    name = "billing"
    [rules.when]
    text = ["refund", "charged"]
    [rules.then]
    tags = ["billing"]
    """)


def _shop_with(tmp_path: Path, extra: str) -> Path:
    lines = [
        jsonl_line(1, text="Where is my order #1234? It's been two weeks", thread="a",
                   author="maria"),
        jsonl_line(3, text="My card was charged twice, I want a refund now", thread="c",
                   kind="dm", author="sam"),
    ]
    config = _jsonl_config(tmp_path, lines)
    config.write_text(config.read_text() + extra, encoding="utf-8")
    assert run_cli(config, "poll", "--once").returncode == 0
    return config


def test_suggest_ranks_saved_replies_and_fills_variables(tmp_path):
    config = _shop_with(tmp_path, RULES_AND_REPLIES)
    sam = _by_author(config)["sam"]
    out = json.loads(run_cli(config, "suggest", str(sam["id"]), "--json").stdout)
    assert out[0]["name"] == "refund"
    assert out[0]["text"] == "Sorry Sam, we'll refund it today. – tester"
    maria = _by_author(config)["maria"]
    out = json.loads(run_cli(config, "suggest", str(maria["id"]), "--json").stdout)
    assert out[0]["name"] == "shipping"


def test_rules_fire_at_ingest_and_rules_test_changes_nothing(tmp_path):
    config = _shop_with(tmp_path, RULES_AND_REPLIES)
    rows = _by_author(config)
    assert "billing" in rows["sam"]["tags"] and "billing" not in rows["maria"]["tags"]
    before = run_cli(config, "list", "--json", "--status", "all").stdout
    out = run_cli(config, "rules", "test", "--since", "3650d", "--json")
    assert out.returncode == 0, out.stderr
    fired = json.loads(out.stdout)
    assert [(r["id"], r["rules"][0]["name"]) for r in fired] == [(rows["sam"]["id"], "billing")]
    assert run_cli(config, "list", "--json", "--status", "all").stdout == before


def test_notifications_reach_the_on_event_hook(tmp_path):
    events = tmp_path / "events.jsonl"
    hook = tmp_path / "hook.py"
    hook.write_text(f"import sys\nopen({str(events)!r}, 'a').write(sys.stdin.read().strip() + '\\n')\n")
    extra = textwrap.dedent(f"""
        [notifications]
        on_event = ["{sys.executable}", "{hook}"]
        """)
    lines = [jsonl_line(1, text="Your app is down and I can't log in. I'm calling my lawyer.",
                        thread="a", author="angry")]
    config = _jsonl_config(tmp_path, lines)
    config.write_text(config.read_text() + extra, encoding="utf-8")
    assert run_cli(config, "poll", "--once").returncode == 0
    got = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = [e["type"] for e in got]
    # The message is from the past: it is urgent on arrival and already past its target.
    assert "new_urgent" in kinds and "breach" in kinds
    assert all(e["author"] == "Angry (@angry)" for e in got)


def test_doctor_reports_each_source_and_never_shows_a_secret(tmp_path):
    inbox = tmp_path / "inbox.jsonl"
    inbox.write_text(jsonl_line(1) + "\n", encoding="utf-8")
    config = write_config(tmp_path, [textwrap.dedent(f"""
        [[sources]]
        type = "jsonl"
        name = "shop"
        path = "{inbox}"

        [[sources]]
        type = "jsonl"
        name = "missing-file"
        path = "{tmp_path / 'nope.jsonl'}"

        [[sources]]
        type = "mastodon"
        name = "masto"
        instance = "http://127.0.0.1:9"
        token = "env:RD_TEST_MASTODON_TOKEN"
        """)])
    out = run_cli(config, "doctor", env={"RD_TEST_MASTODON_TOKEN": ""})
    assert out.returncode == 1, out.stdout + out.stderr
    lines = {line.split(":")[0]: line for line in out.stdout.splitlines()}
    assert lines["ok   shop"]
    assert "FAIL missing-file" in lines
    assert "FAIL masto" in lines
    out = run_cli(config, "doctor", env={"RD_TEST_MASTODON_TOKEN": "s3cr3t-t0ken-value"})
    assert "s3cr3t-t0ken-value" not in out.stdout + out.stderr
    assert "FAIL masto" in out.stdout  # nothing listens on port 9
    assert "Traceback" not in out.stderr


def test_tokens_in_request_urls_never_reach_the_log(tmp_path):
    """Telegram's bot token is part of every request path; -v logs everything to stderr."""
    from tests.fakes.telegram import FakeTelegram

    fake = FakeTelegram().start()
    try:
        user = fake.add_user("Ana", "ana")
        fake.say(fake.private_chat(user), user, "hello, is anyone there?")
        config = write_config(tmp_path, [textwrap.dedent(f"""
            [[sources]]
            type = "telegram"
            name = "tg"
            token = "env:RD_TEST_TG_TOKEN"
            api_base = "{fake.base_url}"
            long_poll = 0
            """)])
        out = run_cli(config, "-v", "poll", "--once", env={"RD_TEST_TG_TOKEN": fake.token})
        assert out.returncode == 0, out.stderr
        listed = json.loads(run_cli(config, "list", "--json").stdout)
        assert [c["snippet"] for c in listed] == ["hello, is anyone there?"]
        log = (tmp_path / "data" / "replydeck.log").read_text()
        secret = fake.token.split(":", 1)[1]
        assert secret not in log and secret not in out.stderr + out.stdout
    finally:
        fake.stop()
