"""Helpers for core tests: configs written to tmp_path, the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from replydeck.inbox.model import Author, Kind, Message

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)  # a Monday
REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus" / "hostile-text.jsonl"
if not CORPUS.exists():  # the package keeps a copy for the demo
    CORPUS = REPO / "replydeck" / "sources" / "demo_hostile.jsonl"


def msg(remote_id: str, text: str = "hello", *, minutes: float = 0, thread: str | None = None,
        author: str = "alice", kind: Kind = Kind.MENTION, platform: str = "x",
        direction: str = "in", source: str = "src", followers: int | None = None,
        in_reply_to: str | None = None) -> Message:
    from replydeck.inbox.model import Direction

    return Message(
        source=source, remote_id=remote_id, platform=platform, kind=kind,
        author=Author(id=f"id-{author}", handle=author, name=author.title(), followers=followers),
        text=text, created_at=T0 + timedelta(minutes=minutes),
        direction=Direction(direction), thread_key=thread, in_reply_to=in_reply_to,
    )


def hostile_texts() -> list[tuple[str, str]]:
    out = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            out.append((item["name"], item["text"]))
    return out


def jsonl_line(i: int, *, text: str | None = None, thread: str | None = None,
               when: datetime | None = None, platform: str = "x", kind: str = "mention",
               author: str | None = None, direction: str = "in") -> str:
    when = when or (T0 + timedelta(seconds=i))
    who = author or f"user{i % 97}"
    return json.dumps({
        "id": f"m{i}", "platform": platform, "kind": kind, "direction": direction,
        "author": {"id": who, "handle": who, "name": who.title(), "followers": 10 * i},
        "text": text if text is not None else f"message number {i} about order #{i}",
        "created_at": when.isoformat(), **({"thread": thread} if thread else {}),
    }, ensure_ascii=False)


def write_config(tmp_path: Path, sources: Iterable[str], extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    body = "[agent]\nname = \"tester\"\n\n" + "\n".join(sources) + "\n" + extra
    path.write_text(body, encoding="utf-8")
    return path


def run_cli(config: Path, *args: str, data_dir: Path | None = None, input: str | None = None,
            timeout: float = 60, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    data_dir = data_dir or config.parent / "data"
    full_env = {**os.environ, "REPLYDECK_CONFIG": str(config),
                "REPLYDECK_DATA_DIR": str(data_dir), "PYTHONUTF8": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "replydeck.cli", *args], input=input,
                          capture_output=True, text=True, timeout=timeout, env=full_env,
                          check=False)


def spawn_cli(config: Path, *args: str, data_dir: Path | None = None) -> subprocess.Popen[str]:
    data_dir = data_dir or config.parent / "data"
    env = {**os.environ, "REPLYDECK_CONFIG": str(config), "REPLYDECK_DATA_DIR": str(data_dir)}
    return subprocess.Popen([sys.executable, "-m", "replydeck.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    from replydeck.inbox.store import Store

    s = Store(tmp_path / "test.db")
    yield s
    s.close()
