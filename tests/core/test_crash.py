"""kill -9 of a real `replydeck poll` while it ingests and while it sends.

Nothing may be lost and nothing doubled: every inbound line is stored exactly once, and
every reply is delivered exactly once (the reply program receives the same idempotency
key after a crash and dedupes on it, as the command source's contract says).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.core.conftest import jsonl_line, run_cli, spawn_cli, write_config

pytestmark = pytest.mark.slow


def _count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    finally:
        conn.close()


def test_kill_9_while_ingesting_a_large_file_then_restart_stores_every_line_once(tmp_path):
    lines = 30_000
    inbox = tmp_path / "inbox.jsonl"
    with inbox.open("w", encoding="utf-8") as fh:
        for i in range(lines):
            fh.write(jsonl_line(i, thread=f"t{i % 3000}") + "\n")
    config = write_config(tmp_path, [textwrap.dedent(f"""
        [[sources]]
        type = "jsonl"
        name = "file"
        poll_interval = 1
        path = "{inbox}"
        reply_path = "{tmp_path / 'replies.jsonl'}"
        """)])
    db = tmp_path / "data" / "replydeck.db"
    rng = random.Random(42)
    kills = 0
    for _ in range(6):
        proc = spawn_cli(config, "poll")
        time.sleep(rng.uniform(0.8, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
        if _count(db, "SELECT count(*) FROM messages") >= lines:
            break
    stored_after_kills = _count(db, "SELECT count(*) FROM messages")
    assert kills >= 1
    done = run_cli(config, "poll", "--once", timeout=300)
    assert done.returncode == 0, done.stderr
    assert _count(db, "SELECT count(*) FROM messages") == lines
    assert _count(db, "SELECT count(DISTINCT remote_id) FROM messages") == lines
    assert _count(db, "SELECT sum(message_count) FROM conversations") == lines
    assert _count(db, "SELECT count(*) FROM conversations") == 3000
    assert stored_after_kills <= lines


REPLY_PROGRAM = textwrap.dedent("""
    import fcntl, json, os, random, sys, time
    reply = json.loads(sys.stdin.read())
    path = os.environ["DELIVERED"]
    time.sleep(random.uniform(0.2, 0.8))     # the platform takes its time
    with open(path, "a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        seen = {json.loads(l)["idempotency_key"] for l in fh if l.strip()}
        if reply["idempotency_key"] not in seen:     # the documented contract: dedupe
            fh.write(json.dumps(reply) + "\\n")
            fh.flush(); os.fsync(fh.fileno())
    time.sleep(random.uniform(0.0, 0.3))     # a crash may land after delivery, too
    print(json.dumps({"id": "sent-" + reply["idempotency_key"]}))
""")


@pytest.mark.parametrize("dedupes", [True, False], ids=["program-dedupes", "no-dedupe"])
def test_kill_9_during_sending_never_sends_twice_and_loses_nothing(tmp_path, dedupes):
    """With a program that dedupes: each reply delivered exactly once. With one that
    cannot: never twice, and a reply cut off by a crash is held as unconfirmed (at most
    one per crash per reply in flight) instead of being run again."""
    replies = 40
    inbox = tmp_path / "inbox.jsonl"
    inbox.write_text("".join(jsonl_line(i, thread=f"t{i}") + "\n" for i in range(replies)),
                     encoding="utf-8")
    program = tmp_path / "deliver.py"
    source = REPLY_PROGRAM if dedupes else REPLY_PROGRAM.replace(
        'if reply["idempotency_key"] not in seen:', "if True:")
    program.write_text(source, encoding="utf-8")
    delivered = tmp_path / "delivered.jsonl"
    fetch = tmp_path / "fetch.py"
    fetch.write_text(f"import sys\nsys.stdout.write(open({str(inbox)!r}).read())\n")
    config = write_config(tmp_path, [textwrap.dedent(f"""
        [[sources]]
        type = "command"
        name = "cmd"
        poll_interval = 3600
        command = "{sys.executable} {fetch}"
        reply_command = "{sys.executable} {program}"
        reply_dedupes = {"true" if dedupes else "false"}
        """)])
    env = {"DELIVERED": str(delivered)}
    first = run_cli(config, "poll", "--once", env=env)
    assert first.returncode == 0, first.stderr
    listed = json.loads(run_cli(config, "list", "--json", "--limit", "100").stdout)
    assert len(listed) == replies
    for conv in listed:
        out = run_cli(config, "reply", str(conv["id"]), "--text", f"answer to {conv['id']}")
        assert out.returncode == 0, out.stderr
    db = tmp_path / "data" / "replydeck.db"
    rng = random.Random(7)
    kills = 0
    settled = "SELECT count(*) FROM replies WHERE state IN ('sent', 'unconfirmed')"
    for _ in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-m", "replydeck.cli", "poll"],
            env={**os.environ, "REPLYDECK_CONFIG": str(config),
                 "REPLYDECK_DATA_DIR": str(tmp_path / "data"), **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.7, 1.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
        if _count(db, settled) == replies:
            break
    final = run_cli(config, "poll", "--once", env=env)
    assert final.returncode == 0, final.stderr
    assert kills >= 2
    keys = [json.loads(line)["idempotency_key"]
            for line in delivered.read_text().splitlines() if line.strip()]
    assert len(keys) == len(set(keys)), "a reply was sent twice"
    sent = _count(db, "SELECT count(*) FROM replies WHERE state='sent'")
    unconfirmed = _count(db, "SELECT count(*) FROM replies WHERE state='unconfirmed'")
    assert sent + unconfirmed == replies, "a reply was lost"
    assert _count(db, "SELECT count(*) FROM messages WHERE direction='out'") == sent
    if dedupes:
        assert sent == len(keys) == replies and unconfirmed == 0
    else:
        # Every sent reply was delivered once; an unconfirmed one may or may not have been.
        assert sent <= len(keys) <= replies
        assert unconfirmed <= kills * 20  # at most the replies in flight at each crash
        held = run_cli(config, "outbox", "--json")
        assert sum(r["state"] == "unconfirmed" for r in json.loads(held.stdout)) == unconfirmed
        # ...and `list` marks the conversations whose reply a person must check.
        rows = json.loads(run_cli(config, "list", "--json", "--status", "all",
                                  "--limit", "100").stdout)
        assert sum(r["undelivered"].get("unconfirmed", 0) for r in rows) == unconfirmed
