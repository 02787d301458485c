"""A draft typed into the composer survives the process being killed (kill -9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from replydeck.inbox.store import InboxFilter, Store
from tests.tui import data

ROOT = Path(__file__).resolve().parents[2]


def test_draft_survives_kill_9(config, store):
    target = store.window(InboxFilter(needs_reply=True), limit=1)[0].id
    store.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TZ": "UTC"}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.tui.draft_child", str(config.file), "typed then lost"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip() == "READY", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    after = Store(config.database, assessor=data.KeywordAssessor())
    try:
        assert after.draft(target) == ("typed then lost", False)
    finally:
        after.close()
