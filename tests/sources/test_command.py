"""The command source, running small real Python programs written into tmp_path."""

from __future__ import annotations

import json
import os
import shlex
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.sources import SourceTable
from replydeck.inbox.model import Author, Kind, Message, Reply
from replydeck.sources import source_class
from replydeck.sources.base import PermanentError, TransientError
from replydeck.sources.command import CommandSource

UTC = timezone.utc


def program(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def message_json(i: int, **extra: object) -> str:
    obj = {"id": f"c{i}", "platform": "helpdesk", "kind": "email",
           "author": {"id": f"cust{i}", "name": f"Customer {i}"},
           "text": f"ticket {i}", "created_at": "2024-05-01T10:00:00+02:00", **extra}
    return json.dumps(obj)


FEED = """
    import json, os, sys
    cursor = os.environ["REPLYDECK_CURSOR"]
    with open(os.path.join(os.path.dirname(__file__), "seen.txt"), "a") as f:
        f.write(repr(cursor) + "\\n")
    start = int(cursor or 0)
    for i in range(start, start + 2):
        print(json.dumps({"id": f"c{i}", "platform": "helpdesk", "kind": "email",
                          "author": {"id": "cust"}, "text": f"ticket {i}",
                          "created_at": "2024-05-01T10:00:00Z"}))
    print(json.dumps({"cursor": str(start + 2)}))
"""


async def test_fetch_passes_and_advances_the_cursor(tmp_path: Path) -> None:
    source = CommandSource("desk", command=program(tmp_path, "feed.py", FEED))
    first = await source.fetch(None)
    assert [m.remote_id for m in first.items] == ["c0", "c1"]
    assert first.cursor == "2"
    second = await source.fetch(first.cursor)
    assert [m.remote_id for m in second.items] == ["c2", "c3"]
    assert second.cursor == "4"
    assert (tmp_path / "seen.txt").read_text().splitlines() == ["''", "'2'"]
    assert all(m.source == "desk" and m.kind == Kind.EMAIL for m in second.items)


async def test_cursor_is_kept_when_the_program_prints_none(tmp_path: Path) -> None:
    argv = program(tmp_path, "p.py", f"print({message_json(1)!r})\n")
    batch = await CommandSource("desk", command=argv).fetch("abc")
    assert batch.cursor == "abc" and len(batch.items) == 1


async def test_malformed_lines_are_skipped_with_line_numbers(tmp_path: Path) -> None:
    out = "\n".join([
        message_json(1),
        "not json",
        message_json(3, kind="fax"),
        '{"cursor": 5}',
        '{"cursor": "a\\u0000b"}',
        message_json(6, text="\x1b[2Jcleared?"),
        '{"cursor": "next"}',
    ])
    argv = program(tmp_path, "p.py", f"import sys\nsys.stdout.write({out!r})\n")
    source = CommandSource("desk", command=argv)
    batch = await source.fetch(None)
    assert [m.remote_id for m in batch.items] == ["c1", "c6"]
    assert batch.items[1].text == "cleared?"
    assert batch.cursor == "next"
    assert list(source.problems) == [
        "line 2: not valid JSON (Expecting value at column 1)",
        "line 3: kind: expected one of mention, comment, dm, reply, email, review, "
        "found 'fax'",
        "line 4: cursor: expected a string, found 5",
        "line 5: cursor: contains a NUL character",
    ]


async def test_non_zero_exit_is_transient_with_first_stderr_line(tmp_path: Path) -> None:
    argv = program(tmp_path, "fail.py", """
        import sys
        print('{"id": "c1"}')
        sys.stderr.write("\\n  API said: 503 \\x1b[31mService Unavailable\\nsecond line\\n")
        sys.exit(3)
    """)
    with pytest.raises(TransientError) as info:
        await CommandSource("desk", command=argv).fetch(None)
    assert str(info.value) == f"{Path(sys.executable).name} exited with status 3: " \
                              "API said: 503 Service Unavailable"


async def test_timeout_kills_the_program_and_what_it_started(tmp_path: Path) -> None:
    argv = program(tmp_path, "hang.py", """
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        with open(os.path.join(os.path.dirname(__file__), "pids"), "w") as f:
            f.write(f"{os.getpid()} {child.pid}")
        time.sleep(60)
    """)
    source = CommandSource("desk", command=argv, timeout=0.5)
    with pytest.raises(TransientError, match=r"timed out after 0\.5 s and was stopped"):
        await source.fetch(None)
    for pid in map(int, (tmp_path / "pids").read_text().split()):
        assert _gone(pid)


def _gone(pid: int) -> bool:
    # The orphaned grandchild is reaped by init a moment after it dies; a zombie is dead.
    for _ in range(100):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
        except FileNotFoundError:
            return True
        if state in "ZX":
            return True
        time.sleep(0.02)
    return False


async def test_missing_program_is_permanent(tmp_path: Path) -> None:
    source = CommandSource("desk", command=[str(tmp_path / "no-such-program")])
    with pytest.raises(PermanentError, match=r"cannot run .*no-such-program"):
        await source.fetch(None)
    check = await source.check()
    assert not check.ok


# -- sending -----------------------------------------------------------------------------

def reply(key: str = "k-1", private: bool = True) -> Reply:
    to = Message(source="desk", remote_id="c7", platform="helpdesk", kind=Kind.EMAIL,
                 author=Author(id="cust"), text="help", thread_key="T-7",
                 created_at=datetime(2024, 5, 1, 10, tzinfo=UTC))
    return Reply(id=5, conversation_id=2, source="desk", body="Hello — 返信です", private=private,
                 idempotency_key=key, reply_to=to, thread_key="T-7")


SENDER = """
    import json, os, sys
    data = sys.stdin.read()
    folder = os.path.dirname(__file__)
    with open(os.path.join(folder, "received.jsonl"), "a") as f:
        f.write(data)
    mode = open(os.path.join(folder, "mode")).read().strip()
    if mode == "plain":
        print("remote-123")
    elif mode == "json":
        print(json.dumps({"id": 987, "url": "https://desk.example/t/987"}))
    elif mode == "tempfail":
        print("try again soon", file=sys.stderr)
        sys.exit(75)
    elif mode == "fail":
        print("ticket is closed\\nmore detail", file=sys.stderr)
        sys.exit(1)
"""


def sender(tmp_path: Path, mode: str, **kw: object) -> CommandSource:
    (tmp_path / "mode").write_text(mode)
    return CommandSource("desk", command=["true"],
                         reply_command=program(tmp_path, "send.py", SENDER), **kw)


async def test_send_hands_the_reply_as_json_on_stdin(tmp_path: Path) -> None:
    receipt = await sender(tmp_path, "plain").send(reply())
    assert receipt.remote_id == "remote-123"
    (record,) = [json.loads(x) for x in (tmp_path / "received.jsonl").read_text().splitlines()]
    assert record == {
        "reply_id": 5, "idempotency_key": "k-1", "thread": "T-7", "in_reply_to": "c7",
        "platform": "helpdesk", "private": True, "text": "Hello — 返信です",
        "created_at": record["created_at"],
    }


async def test_send_reads_json_receipt(tmp_path: Path) -> None:
    receipt = await sender(tmp_path, "json").send(reply())
    assert (receipt.remote_id, receipt.url) == ("987", "https://desk.example/t/987")


async def test_send_with_silent_program_uses_the_key(tmp_path: Path) -> None:
    source = sender(tmp_path, "silent")
    first = await source.send(reply("k-9"))
    retry = await source.send(reply("k-9"))
    assert first.remote_id == retry.remote_id == "command-k-9"
    keys = [json.loads(x)["idempotency_key"]
            for x in (tmp_path / "received.jsonl").read_text().splitlines()]
    assert keys == ["k-9", "k-9"]  # the same key both times, so the program can dedupe


async def test_send_exit_75_is_transient(tmp_path: Path) -> None:
    with pytest.raises(TransientError) as info:
        await sender(tmp_path, "tempfail").send(reply())
    assert str(info.value) == "reply program asked to retry later (exit 75): try again soon"


async def test_send_other_exit_is_permanent_with_first_stderr_line(tmp_path: Path) -> None:
    with pytest.raises(PermanentError) as info:
        await sender(tmp_path, "fail").send(reply())
    assert str(info.value) == f"{Path(sys.executable).name} exited with status 1: " \
                              "ticket is closed"


async def test_send_timeout_is_transient(tmp_path: Path) -> None:
    argv = program(tmp_path, "slow.py", "import time\ntime.sleep(60)\n")
    source = CommandSource("desk", command=["true"], reply_command=argv, timeout=0.3)
    with pytest.raises(TransientError, match="timed out"):
        await source.send(reply())


async def test_send_without_reply_command_is_permanent(tmp_path: Path) -> None:
    source = CommandSource("desk", command=["true"])
    assert not source.limits.supports_public and not source.limits.supports_private
    assert not source.limits_for("x").supports_public
    with pytest.raises(PermanentError, match="no reply_command"):
        await source.send(reply())


# -- config ------------------------------------------------------------------------------

def table(data: dict, tmp_path: Path) -> SourceTable:
    t = SourceTable(data, "sources[0]", str(tmp_path / "config.toml"), tmp_path)
    t.name = "desk"
    return t


async def test_from_config_runs_in_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "feed.py").write_text(textwrap.dedent(FEED))
    source = source_class("command").from_config(table(
        {"command": f"{shlex.quote(sys.executable)} feed.py",
         "reply_command": "~/bin/send 'two words'", "timeout": 5}, tmp_path))
    assert isinstance(source, CommandSource)
    assert source.reply_command == [os.path.expanduser("~/bin/send"), "two words"]
    assert source.timeout == 5.0
    batch = await source.fetch(None)
    assert len(batch.items) == 2


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"command": "fetch 'unclosed"},
         "sources[0].command: cannot be split into arguments (No closing quotation)"),
        ({"command": "  "}, "sources[0].command: expected a command line, found an empty string"),
        ({"command": ["a", "b"]}, "sources[0].command: expected a string, found array of 2 items"),
        ({"command": "x", "timeout": 0},
         "sources[0].timeout: expected a number of seconds > 0, found 0"),
        ({}, "sources[0].command: missing; expected a string"),
    ],
)
def test_config_errors(data: dict, problem: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        CommandSource.from_config(table(data, tmp_path))
    assert str(info.value) == f"{tmp_path / 'config.toml'}: {problem}"
