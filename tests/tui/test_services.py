"""The poller and outbox run in a thread worker: a queued reply goes out while the UI runs."""

from __future__ import annotations

from replydeck.inbox.model import ReplyState
from replydeck.tui.app import ReplydeckApp
from tests.tui import data
from tests.tui.helpers import screen_of, until


async def test_reply_is_sent_by_the_background_outbox(config, store):
    app = ReplydeckApp(config, store=store, clock=lambda: data.NOW, start_services=True)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(pilot)
        target = screen.inbox.current.id
        await pilot.press("r", *"On it", "ctrl+s")
        await until(pilot, lambda: store.replies(target))
        reply_id = store.replies(target)[0].id
        await until(pilot, lambda: store.reply(reply_id).state == ReplyState.SENT, timeout=10)
        # The UI noticed the services' commit by itself and shows the delivery.
        await until(pilot, lambda: "[sent]" in screen.conversation.plain_text(), timeout=5)
        await until(pilot, lambda: "social ok" in str(screen.status.visual), timeout=5)
    # Leaving the context stopped the services thread (the test would hang otherwise).
    assert app._services is not None and app._services._stopping.is_set()


async def test_a_hanging_source_never_blocks_the_ui_or_quitting(write_config, store):
    cfg = write_config('\n[[sources]]\ntype = "tuihang"\nname = "stuck"\n')
    app = ReplydeckApp(cfg, store=store, clock=lambda: data.NOW, start_services=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(pilot)
        await pilot.pause(0.5)  # the poller is now waiting on the stuck source
        await pilot.press("j", "j", "enter")
        assert screen.inbox.cursor == 2 and screen.reading
        await pilot.press("escape", "q")
        await until(pilot, lambda: not app.is_running, timeout=10)


async def test_a_crashed_services_thread_is_reported_once(make_app):
    from types import SimpleNamespace

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app._services = SimpleNamespace(error=RuntimeError("disk full"), stop=lambda: None)
        app._tick()
        app._tick()
        await pilot.pause()
        shown = [n.message for n in app._notifications]
        assert sum("disk full" in m for m in shown) == 1
