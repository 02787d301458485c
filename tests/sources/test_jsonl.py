"""The jsonl source and the shared JSON Lines schema, against real files."""

from __future__ import annotations

import json
import os
import random
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.sources import SourceTable
from replydeck.inbox.model import Author, Direction, Kind, Message, Reply
from replydeck.inbox.sanitize import is_inert
from replydeck.sources import source_class
from replydeck.sources.base import Batch, PermanentError, TransientError
from replydeck.sources.jsonl import JsonlSource
from replydeck.sources.jsonschema import SchemaError, parse_datetime, parse_message

UTC = timezone.utc


def msg(i: int, **extra: object) -> dict:
    obj = {
        "id": f"m{i}",
        "platform": "x",
        "kind": "mention",
        "author": {"id": f"u{i}", "handle": f"user{i}", "name": f"User {i}", "followers": i},
        "text": f"message number {i}",
        "created_at": "2024-05-01T10:00:00Z",
    }
    obj.update(extra)
    return obj


def line(i: int, **extra: object) -> str:
    return json.dumps(msg(i, **extra)) + "\n"


def append(path: Path, text: str | bytes) -> None:
    with open(path, "ab") as f:
        f.write(text.encode() if isinstance(text, str) else text)


def ids(batch: Batch) -> list[str]:
    return [m.remote_id for m in batch.items]


# -- schema ------------------------------------------------------------------------------

def test_parse_message_full_object() -> None:
    obj = msg(1, direction="out", thread="t-9", in_reply_to="m0", url="https://x.example/1",
               language="ja", extra_field={"kept": True})
    m = parse_message(obj, "feed")
    assert (m.source, m.remote_id, m.platform, m.kind, m.direction) == (
        "feed", "m1", "x", Kind.MENTION, Direction.OUT)
    assert m.author == Author(id="u1", handle="user1", name="User 1", followers=1)
    assert m.created_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert (m.thread_key, m.in_reply_to, m.url, m.language) == (
        "t-9", "m0", "https://x.example/1", "ja")
    assert m.raw is obj


def test_parse_message_defaults_and_sanitising() -> None:
    obj = msg(2, text="hi \x1b]0;PWNED\x07there \u202eevil", platform="Bluesky")
    obj["author"] = {"id": "u2", "name": "Eve\x1b[31m\nRed", "handle": "eve\u200b"}
    m = parse_message(obj, "feed")
    assert m.direction == Direction.IN
    assert m.thread_key is None and m.url is None
    assert m.text == "hi there evil"
    assert m.author.name == "Eve Red" and m.author.handle == "eve"
    assert m.platform == "bluesky"
    assert m.author.followers is None


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ([1, 2], "line 7: expected a JSON object, found a list of 2 items"),
        ({**msg(1), "id": 42}, "line 7: id: expected a string, found 42"),
        ({k: v for k, v in msg(1).items() if k != "id"}, "line 7: id: missing; expected a string"),
        ({**msg(1), "id": " "}, "line 7: id: expected a non-empty string, found ''"),
        ({**msg(1), "platform": None}, "line 7: platform: missing; expected a string"),
        ({**msg(1), "kind": "tweet"},
         "line 7: kind: expected one of mention, comment, dm, reply, email, review, "
         "found 'tweet'"),
        ({**msg(1), "direction": "sideways"},
         "line 7: direction: expected one of in, out, found 'sideways'"),
        ({**msg(1), "author": "bob"}, "line 7: author: expected an object, found 'bob'"),
        ({k: v for k, v in msg(1).items() if k != "author"},
         "line 7: author: missing; expected an object with id, handle, name"),
        ({**msg(1), "author": {"handle": "bob"}},
         "line 7: author.id: missing; expected a string"),
        ({**msg(1), "author": {"id": "u", "followers": -3}},
         "line 7: author.followers: expected a whole number ≥ 0, found -3"),
        ({**msg(1), "author": {"id": "u", "followers": "many"}},
         "line 7: author.followers: expected a whole number ≥ 0, found 'many'"),
        ({**msg(1), "text": None}, "line 7: text: missing; expected a string"),
        ({**msg(1), "text": {"body": "x"}}, "line 7: text: expected a string, found an object"),
        ({**msg(1), "created_at": "2024-01-01 10:00"},
         "line 7: created_at: expected ISO 8601 with a time zone, found '2024-01-01 10:00'"),
        ({**msg(1), "created_at": "yesterday"},
         "line 7: created_at: expected ISO 8601 with a time zone, found 'yesterday'"),
        ({**msg(1), "created_at": 1714557600},
         "line 7: created_at: expected a string, found 1714557600"),
        ({**msg(1), "created_at": "2024-02-30T10:00:00Z"},
         "line 7: created_at: expected ISO 8601 with a time zone, "
         "found '2024-02-30T10:00:00Z'"),
        ({**msg(1), "thread": 5}, "line 7: thread: expected a string, found 5"),
        ({**msg(1), "text": 1, "created_at": "x" * 60},
         "line 7: text: expected a string, found 1"),
    ],
)
def test_schema_errors(obj: object, expected: str) -> None:
    with pytest.raises(SchemaError) as info:
        parse_message(obj, "feed", line=7)
    assert str(info.value) == expected


def test_schema_error_quotes_only_a_short_escaped_piece() -> None:
    obj = {**msg(1), "created_at": "\x1b]52;c;" + "A" * 500}
    with pytest.raises(SchemaError) as info:
        parse_message(obj, "feed", line=3)
    message = str(info.value)
    assert len(message) < 140 and "\x1b" not in message and "\\x1b" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
        ("2024-05-01T19:00:00+09:00", datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
        ("2024-05-01T05:30:00-0430", datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
        ("2024-05-01 10:00:00.1234567z", datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T10:00+00", datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
        ("2024-05-01T10:00:00", None),
        ("2024-05-01", None),
        ("2024-05-01T10:00:00+25:00", None),
    ],
)
def test_parse_datetime(text: str, expected: datetime | None) -> None:
    assert parse_datetime(text) == expected


# -- config ------------------------------------------------------------------------------

def table(data: dict, tmp_path: Path) -> SourceTable:
    t = SourceTable(data, "sources[1]", str(tmp_path / "config.toml"), tmp_path)
    t.name = "feed"
    return t


def test_from_config_resolves_paths_from_the_config_folder(tmp_path: Path) -> None:
    source = source_class("jsonl").from_config(
        table({"path": "in.jsonl", "reply_path": "out/replies.jsonl"}, tmp_path))
    assert isinstance(source, JsonlSource)
    assert source.path == tmp_path / "in.jsonl"
    assert source.reply_path == tmp_path / "out" / "replies.jsonl"


def test_from_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        JsonlSource.from_config(table({"path": 3}, tmp_path))
    assert str(info.value) == (f"{tmp_path / 'config.toml'}: sources[1].path: "
                               "expected a string, found integer 3")
    with pytest.raises(ConfigError, match=r"sources\[1\]\.path: missing"):
        JsonlSource.from_config(table({}, tmp_path))


# -- reading -----------------------------------------------------------------------------

async def test_reads_appended_lines_and_waits_for_partial_last_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(line(1) + line(2))
    source = JsonlSource("feed", path=path)
    first = await source.fetch(None)
    assert ids(first) == ["m1", "m2"]
    assert all(m.source == "feed" for m in first.items)

    partial = line(3)
    append(path, partial[:25])
    second = await source.fetch(first.cursor)
    assert ids(second) == []

    append(path, partial[25:] + line(4))
    third = await source.fetch(second.cursor)
    assert ids(third) == ["m3", "m4"]
    assert ids(await source.fetch(third.cursor)) == []


async def test_poll_after_every_piece_of_a_split_write(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"")
    data = "".join(line(i, text="日本語 " * (i % 7)) for i in range(200)).encode()
    source = JsonlSource("feed", path=path)
    rng = random.Random(2)
    seen: list[str] = []
    cursor = None
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 90)  # also splits multi-byte characters
        append(path, data[pos:pos + step])
        pos += step
        batch = await source.fetch(cursor)
        seen += ids(batch)
        cursor = batch.cursor
    assert seen == [f"m{i}" for i in range(200)]
    assert list(source.problems) == []


async def test_reading_while_another_process_appends(tmp_path: Path) -> None:
    """Lines written in arbitrary pieces while polls run: each read once, in order."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"")
    data = "".join(line(i) for i in range(3000)).encode()
    done = threading.Event()

    def writer() -> None:
        rng = random.Random(1)
        with open(path, "ab", buffering=0) as f:
            pos = 0
            while pos < len(data):
                step = rng.randint(1, 700)  # pieces that split lines anywhere
                f.write(data[pos:pos + step])
                pos += step
        done.set()

    source = JsonlSource("feed", path=path, max_batch=400)
    thread = threading.Thread(target=writer)
    thread.start()
    seen: list[str] = []
    cursor = None
    try:
        while True:
            finished = done.is_set()
            batch = await source.fetch(cursor)
            seen += ids(batch)
            cursor = batch.cursor
            if finished and not batch.items and not batch.more:
                break
    finally:
        thread.join()
    assert seen == [f"m{i}" for i in range(3000)]
    assert list(source.problems) == []


async def test_malformed_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    secret_looking = "x" * 300
    path.write_bytes(
        (line(1) + "{not json " + secret_looking + "\n" + "\n"
         + line(3, created_at="2024-01-01 10:00") + line(4)).encode()
        + b"\xff\xfe garbage\n" + line(6).encode()
    )
    source = JsonlSource("feed", path=path)
    batch = await source.fetch(None)
    assert ids(batch) == ["m1", "m4", "m6"]
    assert list(source.problems) == [
        "line 2: not valid JSON (Expecting property name enclosed in double quotes "
        "at column 2)",
        "line 4: created_at: expected ISO 8601 with a time zone, found '2024-01-01 10:00'",
        "line 6: not valid UTF-8 (byte 1)",
    ]
    # Line numbers keep counting across polls.
    append(path, "[]\n" + line(8))
    batch = await source.fetch(batch.cursor)
    assert ids(batch) == ["m8"]
    assert list(source.problems)[-1] == "line 8: expected a JSON object, found a list of 0 items"


async def test_malformed_line_is_logged_without_its_content(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "SECRET-LOOKING-CONTENT", ' + "y" * 200 + "\n")
    await JsonlSource("feed", path=path).fetch(None)
    assert "line 1: not valid JSON" in caplog.text
    assert "SECRET-LOOKING-CONTENT" not in caplog.text


async def test_restart_from_saved_cursor_yields_no_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(line(i) for i in range(5)))
    first = await JsonlSource("feed", path=path).fetch(None)
    append(path, line(5) + line(6))
    # A new process: a new source object, resuming from the stored cursor.
    again = await JsonlSource("feed", path=path).fetch(first.cursor)
    assert ids(again) == ["m5", "m6"]


async def test_truncation_is_detected_and_file_reread(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(line(1) + line(2) + line(3))
    source = JsonlSource("feed", path=path)
    first = await source.fetch(None)
    with open(path, "w") as f:  # truncated in place: same inode, smaller
        f.write(line(10))
    assert ids(await source.fetch(first.cursor)) == ["m10"]


async def test_rewrite_in_place_to_a_larger_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(line(1))
    source = JsonlSource("feed", path=path)
    first = await source.fetch(None)
    ino = path.stat().st_ino
    with open(path, "w") as f:
        f.write(line(7) + line(8) + line(9))
    assert path.stat().st_ino == ino
    assert ids(await source.fetch(first.cursor)) == ["m7", "m8", "m9"]


async def test_rotation_to_a_new_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(line(1) + line(2))
    source = JsonlSource("feed", path=path)
    first = await source.fetch(None)
    os.rename(path, tmp_path / "in.jsonl.1")
    path.write_text(line(3) + line(4) + line(5))
    second = await source.fetch(first.cursor)
    assert ids(second) == ["m3", "m4", "m5"]
    cursor = json.loads(second.cursor)
    assert cursor["ino"] == path.stat().st_ino and cursor["line"] == 3


async def test_big_file_comes_in_batches_without_loss(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(line(i) for i in range(25)))
    source = JsonlSource("feed", path=path, max_batch=10)
    seen: list[str] = []
    cursor = None
    mores = []
    for _ in range(5):
        batch = await source.fetch(cursor)
        seen += ids(batch)
        mores.append(batch.more)
        cursor = batch.cursor
    assert seen == [f"m{i}" for i in range(25)]
    assert mores[:3] == [True, True, False]


async def test_default_batch_limit_is_5000(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    one = json.dumps(msg(0))[:-1]
    path.write_text("".join(one.replace('"m0"', f'"m{i}"') + "}\n" for i in range(5003)))
    source = JsonlSource("feed", path=path)
    first = await source.fetch(None)
    assert len(first.items) == 5000 and first.more
    second = await source.fetch(first.cursor)
    assert ids(second) == ["m5000", "m5001", "m5002"] and not second.more


async def test_hostile_text_is_inert(tmp_path: Path) -> None:
    corpus = Path(__file__).resolve().parents[2] / "replydeck" / "sources" / "demo_hostile.jsonl"
    path = tmp_path / "in.jsonl"
    with open(path, "w") as out:
        for i, raw in enumerate(corpus.read_text().splitlines()):
            out.write(json.dumps(msg(i, text=json.loads(raw)["text"])) + "\n")
    batch = await JsonlSource("feed", path=path).fetch(None)
    assert len(batch.items) == len(corpus.read_text().splitlines())
    assert all(is_inert(m.text) for m in batch.items)


async def test_missing_file_is_a_transient_error(tmp_path: Path) -> None:
    source = JsonlSource("feed", path=tmp_path / "nope.jsonl")
    with pytest.raises(TransientError, match=r"nope\.jsonl: no such file"):
        await source.fetch(None)
    assert not (await source.check()).ok


# -- sending -----------------------------------------------------------------------------

def reply(key: str, body: str = "Thanks, we're on it", private: bool = False) -> Reply:
    to = Message(source="feed", remote_id="m1", platform="x", kind=Kind.MENTION,
                 author=Author(id="u1"), text="help", thread_key="t-1",
                 created_at=datetime(2024, 5, 1, 10, tzinfo=UTC))
    return Reply(id=12, conversation_id=3, source="feed", body=body, private=private,
                 idempotency_key=key, reply_to=to, thread_key="t-1")


async def test_send_appends_one_synced_line(tmp_path: Path) -> None:
    out = tmp_path / "replies.jsonl"
    source = JsonlSource("feed", path=tmp_path / "in.jsonl", reply_path=out)
    receipt = await source.send(reply("k-1", body="日本語 ok"))
    assert receipt.remote_id == "jsonl-k-1"
    assert receipt.sent_at is not None
    (record,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert record == {
        "reply_id": 12, "idempotency_key": "k-1", "thread": "t-1", "in_reply_to": "m1",
        "platform": "x", "private": False, "text": "日本語 ok",
        "created_at": record["created_at"],
    }
    assert parse_datetime(record["created_at"]) == receipt.sent_at
    assert out.stat().st_mode & 0o077 == 0


async def test_send_is_idempotent_across_restarts(tmp_path: Path) -> None:
    out = tmp_path / "replies.jsonl"
    source = JsonlSource("feed", path=tmp_path / "in.jsonl", reply_path=out)
    first = await source.send(reply("k-1"))
    again = await source.send(reply("k-1"))
    await source.send(reply("k-2"))
    # A restarted process builds its index from the file.
    restarted = JsonlSource("feed", path=tmp_path / "in.jsonl", reply_path=out)
    third = await restarted.send(reply("k-1"))
    keys = [json.loads(x)["idempotency_key"] for x in out.read_text().splitlines()]
    assert keys == ["k-1", "k-2"]
    assert first.remote_id == again.remote_id == third.remote_id == "jsonl-k-1"


async def test_send_after_a_torn_write_keeps_lines_parseable(tmp_path: Path) -> None:
    out = tmp_path / "replies.jsonl"
    out.write_text('{"reply_id": 1, "idempotency_key": "k-1", "te')  # crashed mid-write
    source = JsonlSource("feed", path=tmp_path / "in.jsonl", reply_path=out)
    await source.send(reply("k-1"))
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["idempotency_key"] == "k-1"


async def test_send_without_reply_path_is_permanent(tmp_path: Path) -> None:
    source = JsonlSource("feed", path=tmp_path / "in.jsonl")
    with pytest.raises(PermanentError, match="no reply_path"):
        await source.send(reply("k"))


async def test_send_into_missing_folder_is_permanent(tmp_path: Path) -> None:
    source = JsonlSource("feed", path=tmp_path / "in.jsonl",
                         reply_path=tmp_path / "no" / "such" / "r.jsonl")
    with pytest.raises(PermanentError, match="No such file or directory"):
        await source.send(reply("k"))


def test_limits_follow_the_message_platform(tmp_path: Path) -> None:
    source = JsonlSource("feed", path=tmp_path / "in", reply_path=tmp_path / "out")
    assert source.limits_for("x").for_reply(False) == (280, "x_weighted")
    assert source.limits_for("helpdesk") == source.limits
    read_only = JsonlSource("feed", path=tmp_path / "in")
    assert not read_only.limits_for("x").supports_public
    assert not read_only.limits.supports_private


async def test_overlong_line_is_skipped_even_while_still_being_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import replydeck.sources.jsonl as jsonl

    monkeypatch.setattr(jsonl, "MAX_LINE", 1000)
    monkeypatch.setattr(jsonl, "_CHUNK", 256)
    path = tmp_path / "in.jsonl"
    path.write_text(line(1) + line(2, text="z" * 3000) + line(3) + line(4, text="q" * 2000)[:1500])
    source = JsonlSource("feed", path=path)
    first = await source.fetch(None)
    assert ids(first) == ["m1", "m3"]
    assert list(source.problems) == ["line 2: longer than 1000 bytes"]
    append(path, line(4, text="q" * 2000)[1500:] + line(5))
    second = await source.fetch(first.cursor)
    assert ids(second) == ["m5"]
    assert list(source.problems)[-1] == "line 4: longer than 1000 bytes"
