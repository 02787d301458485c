"""`replydeck webhooks --listen` end to end: a real process, a config file, a signed event
over HTTP, a clean stop on SIGTERM, and the event in the database."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from replydeck.inbox.store import Store
from tests.fakes.meta import FakeMeta

# Runs the real parser; adds the subcommand itself until cli.py registers it.
RUNNER = """
import argparse, sys
from replydeck import cli, webhook_cli
parser = cli.build_parser()
sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
if "webhooks" not in sub.choices:
    webhook_cli.register(sub)
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


@pytest.fixture
def fake() -> Iterator[FakeMeta]:
    fake = FakeMeta().start()
    yield fake
    fake.stop()


def test_webhooks_command_receives_and_stores(fake: FakeMeta, tmp_path: Path) -> None:
    page = fake.add_page()
    jane = fake.add_person("Jane")
    msg = fake.dm(page, jane, "hello from Messenger")
    config = tmp_path / "config.toml"
    config.write_text(f"""
[storage]
database = "{tmp_path / 'db.sqlite'}"

[webhooks]
listen = "127.0.0.1:1"

[webhooks.meta]
app_secret = "env:RD_META_APP_SECRET"
verify_token = "env:RD_META_VERIFY"

[[sources]]
type = "facebook"
name = "fb"
page_id = "{page.id}"
token = "env:RD_FB_TOKEN"
api_base = "{fake.base_url}"
webhooks = true
""")
    env = {**os.environ, "RD_META_APP_SECRET": "s3cret", "RD_META_VERIFY": "v",
           "RD_FB_TOKEN": fake.issue_token(page), "PYTHONPATH": str(Path.cwd())}
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, "--config", str(config), "--data-dir",
         str(tmp_path / "data"), "webhooks", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        url = line.split()[2]
        ms = int(time.time() * 1000)
        body = json.dumps({"object": "page", "entry": [{"id": page.id, "time": ms,
            "messaging": [{"sender": {"id": jane.id}, "recipient": {"id": page.id},
                           "timestamp": ms,
                           "message": {"mid": msg.id, "text": msg.text}}]}]}).encode()
        sig = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        resp = httpx.post(url + "/webhooks/meta", content=body, timeout=5,
                          headers={"X-Hub-Signature-256": sig})
        assert resp.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with Store(tmp_path / "db.sqlite") as store:
        texts = [r[0] for r in store.conn.execute("SELECT text FROM messages")]
    assert texts == ["hello from Messenger"]


def test_bad_listen_address_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[webhooks.meta]\napp_secret = "env:X"\n')
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, "--config", str(config), "--data-dir",
         str(tmp_path / "data"), "webhooks", "--listen", "nowhere"],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert proc.returncode == 2
    assert "HOST:PORT" in proc.stderr and "Traceback" not in proc.stderr
