"""``run(config)`` on a real pseudo-terminal: paints the inbox, runs services, q quits."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end and needle not in seen:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


def test_run_paints_and_quits_on_q(config, store):
    store.close()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "TZ": "UTC"}
    proc = subprocess.Popen([sys.executable, "-m", "tests.tui.run_child", str(config.file)],
                            stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env,
                            close_fds=True)
    os.close(slave)
    try:
        shown = _read_until(master, b"CRISIS", 20)
        assert b"CRISIS" in shown, shown[-500:]
        # The services thread reports the source's health on the status line.
        shown += _read_until(master, b"social", 10)
        assert b"social" in shown
        os.write(master, b"q")
        deadline = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < deadline:
            _read_until(master, b"\x00", 0.2)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_ctrl_e_edits_the_reply_in_the_editor(config, store, tmp_path):
    target = store.find_conversation("social", "x3")
    store.close()
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nprintf 'written in the editor' > \"$1\"\n")
    editor.chmod(0o755)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "TZ": "UTC",
           "VISUAL": str(editor)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.tui.run_child", str(config.file)],
                            stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env,
                            close_fds=True)
    os.close(slave)
    try:
        assert b"CRISIS" in _read_until(master, b"CRISIS", 20)
        os.write(master, b"r")
        assert b"Reply to" in _read_until(master, b"Reply to", 10)
        os.write(master, b"\x05")  # ctrl+e
        assert b"21/280" in _read_until(master, b"21/280", 10)
        os.write(master, b"\x13")  # ctrl+s
        from replydeck.inbox.store import Store

        deadline = time.monotonic() + 10
        bodies: list[str] = []
        while time.monotonic() < deadline and not bodies:
            _read_until(master, b"\x00", 0.2)
            with Store(config.database) as s:
                bodies = [r.body for r in s.replies(target)]
        assert bodies == ["written in the editor"]
        os.write(master, b"q")
        deadline = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < deadline:
            if b"Quit replydeck?" in _read_until(master, b"Quit replydeck?", 0.3):
                os.write(master, b"y")
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
