"""With a [webhooks] table, the TUI's background services also receive webhooks."""

from __future__ import annotations

import threading
import time

import httpx

from replydeck.tui.services import ServiceThread

WEBHOOKS = """
[webhooks]
listen = "127.0.0.1:0"
[webhooks.meta]
app_secret = "env:RD_TUI_APP_SECRET"
verify_token = "env:RD_TUI_VERIFY"
"""


def test_the_tui_services_run_the_webhook_receiver(write_config, monkeypatch):
    monkeypatch.setenv("RD_TUI_APP_SECRET", "app-secret")
    monkeypatch.setenv("RD_TUI_VERIFY", "verify-me")
    config = write_config(WEBHOOKS)
    services = ServiceThread(config, on_urgent=lambda ids: None)
    thread = threading.Thread(target=services.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while services.webhook_address is None and time.time() < deadline:
            assert services.webhook_error is None, services.webhook_error
            time.sleep(0.05)
        assert services.webhook_address is not None, "the receiver did not start"
        host, port = services.webhook_address
        answer = httpx.get(f"http://{host}:{port}/webhooks/meta", params={
            "hub.mode": "subscribe", "hub.verify_token": "verify-me",
            "hub.challenge": "4711"}, timeout=10)
        assert (answer.status_code, answer.text) == (200, "4711")
        refused = httpx.post(f"http://{host}:{port}/webhooks/meta", content=b"{}",
                             timeout=10)  # unsigned
        assert refused.status_code in (401, 403)
    finally:
        services.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_without_a_webhooks_table_nothing_listens(write_config):
    config = write_config("")
    services = ServiceThread(config, on_urgent=lambda ids: None)
    thread = threading.Thread(target=services.run, daemon=True)
    thread.start()
    time.sleep(0.5)
    services.stop()
    thread.join(timeout=10)
    assert services.webhook_address is None and services.webhook_error is None
