"""Facebook end to end through the real `replydeck` command: poll, list, reply, send once,
and an out-of-window reply refused with the reason while its text is kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.meta import FakeMeta


@pytest.fixture
def fake() -> Iterator[FakeMeta]:
    fake = FakeMeta().start()
    yield fake
    fake.stop()


def run(config: Path, tmp: Path, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RD_FB_TOKEN": token, "PYTHONPATH": str(Path.cwd())}
    return subprocess.run([sys.executable, "-m", "replydeck.cli", "--config", str(config),
                           "--data-dir", str(tmp / "data"), *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_poll_reply_and_window_refusal_through_the_cli(fake: FakeMeta, tmp_path: Path) -> None:
    page = fake.add_page()
    jane = fake.add_person("Jane")
    joe = fake.add_person("Joe")
    fake.dm(page, jane, "my order is late", at=time.time() - 2 * 3600)
    fake.dm(page, joe, "hello??", at=time.time() - 30 * 3600)
    config = tmp_path / "config.toml"
    config.write_text(f"""
[storage]
database = "{tmp_path / 'db.sqlite'}"

[[sources]]
type = "facebook"
name = "fb"
page_id = "{page.id}"
token = "env:RD_FB_TOKEN"
api_base = "{fake.base_url}"
comments = false
""")
    token = fake.issue_token(page)
    done = run(config, tmp_path, token, "poll", "--once")
    assert done.returncode == 0, done.stderr
    listed = json.loads(run(config, tmp_path, token, "list", "--json").stdout)
    by_name: dict[str, Any] = {c["author"]["name"]: c for c in listed}
    assert set(by_name) == {"Jane", "Joe"}
    assert {c["kind"] for c in listed} == {"dm"}

    for name, text in (("Jane", "It ships today"), ("Joe", "Sorry for the wait")):
        queued = run(config, tmp_path, token, "reply", str(by_name[name]["id"]), "--text", text)
        assert queued.returncode == 0, queued.stderr
    sent = run(config, tmp_path, token, "poll", "--once")
    assert "24-hour window" in sent.stderr and "HUMAN_AGENT" in sent.stderr
    assert token not in sent.stderr + sent.stdout
    run(config, tmp_path, token, "poll", "--once")  # nothing is sent twice
    assert [m.text for m in fake.messages_to(jane)] == ["It ships today"]
    assert fake.messages_to(joe) == []

    jane_conv = json.loads(run(config, tmp_path, token, "show", str(by_name["Jane"]["id"]),
                               "--json").stdout)
    assert [(m["direction"], m["text"]) for m in jane_conv["messages"]] == [
        ("in", "my order is late"), ("out", "It ships today")]
    joe_conv = json.loads(run(config, tmp_path, token, "show", str(by_name["Joe"]["id"]),
                              "--json").stdout)
    [refused] = joe_conv["replies"]
    assert refused["state"] == "failed" and refused["body"] == "Sorry for the wait"
    assert "24-hour window" in refused["last_error"]
