"""Every key flow of the inbox, driven through Pilot against a real store."""

from __future__ import annotations

import json
from datetime import timedelta

from replydeck.inbox.model import EventType, ReplyState, Status, Urgency
from replydeck.inbox.store import InboxFilter, Store
from replydeck.tui.screens.help import HelpScreen
from replydeck.tui.screens.outbox import OutboxScreen
from replydeck.tui.screens.prompt import ConfirmScreen, PromptScreen
from replydeck.tui.screens.saved import SavedReplyPicker
from tests.tui import data
from tests.tui.helpers import screen_of, screen_text, until


def conv_id(store: Store, remote_id: str) -> int:
    cid = store.find_conversation(data.SOURCE, remote_id)
    assert cid is not None
    return cid


async def open_all(pilot) -> None:
    await pilot.press("5")
    await pilot.pause()


async def test_inbox_lists_every_conversation_most_urgent_first(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_all(pilot)
        inbox = screen_of(pilot).inbox
        assert inbox.total == store.count(InboxFilter(statuses=tuple(Status)))
        assert inbox.current.urgency == Urgency.CRISIS
        text = screen_text(pilot)
        assert "CRISIS" in text and "URGENT" in text and "low" in text
        # The live wait timer and time-to-target of Grace's post (50 min ago, 4 h target).
        grace_line = next(line for line in text.splitlines() if "Grace" in line)
        assert "50m" in grace_line and "3h10m" in grace_line and "250k" in grace_line


async def test_reply_is_queued_public_and_drops_the_draft(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_all(pilot)
        screen = screen_of(pilot)
        target = screen.inbox.current.id
        await pilot.press("r")
        assert screen.composing
        await pilot.press(*"Locked it")
        assert "9/280 weighted characters" in screen_text(pilot)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: store.replies(target))
        reply = store.replies(target)[0]
        assert (reply.body, reply.private, reply.agent) == ("Locked it", False, "sam")
        assert reply.state == ReplyState.QUEUED
        await until(pilot, lambda: not screen.composing)
        assert store.draft(target) is None


async def test_private_reply_and_switching(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_all(pilot)
        screen = screen_of(pilot)
        target = screen.inbox.current.id
        await pilot.press("R")
        assert screen.composer.private
        assert "private" in screen_text(pilot)
        await pilot.press("ctrl+t")
        assert not screen.composer.private
        await pilot.press("ctrl+t")
        await pilot.press(*"DM me")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: store.replies(target))
        assert store.replies(target)[0].private is True


async def test_email_allows_only_private_replies(make_app, store):
    app = make_app()
    mail = conv_id(store, "mail-priya")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_all(pilot)
        screen = screen_of(pilot)
        screen.inbox.move_to(store.position(screen.inbox.filter,
                                            store.conversation(mail).sort_key))
        await pilot.press("r")
        assert screen.composer.conversation.id == mail
        assert screen.composer.private
        await pilot.press("ctrl+t")
        assert screen.composer.private  # public is not possible on email


async def test_over_the_platform_limit_is_refused(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_all(pilot)
        screen = screen_of(pilot)
        target = screen.inbox.current.id
        await pilot.press("r")
        # 150 kanji weigh 300 on X (CJK counts 2): over 280.
        screen.composer.editor.insert("障" * 150)
        await pilot.pause()
        assert "300/280 weighted characters (20 over)" in screen_text(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert store.replies(target) == []
        assert screen.composing


async def test_saved_reply_fills_variables_and_is_suggested(make_app, store):
    app = make_app()
    maya_dm = conv_id(store, "dm-maya")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_all(pilot)
        screen = screen_of(pilot)
        screen.inbox.move_to(store.position(screen.inbox.filter,
                                            store.conversation(maya_dm).sort_key))
        await pilot.press("r", "ctrl+g")
        await until(pilot, lambda: isinstance(app.screen, SavedReplyPicker))
        picker = app.screen
        assert picker.suggested[:1] == ["refund"]  # "charged twice ... refund"
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, SavedReplyPicker))
        body = screen.composer.body
        assert body.startswith("Hi Maya Okafor, sorry about the double charge. sam from "
                               "Kestrel here")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: store.replies(maya_dm))
        queued = [e for e in store.events(maya_dm) if e.type == EventType.REPLY_QUEUED]
        assert queued[-1].data["saved_reply"] == "refund"


async def test_saved_reply_fuzzy_search(make_app, store):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await open_all(pilot)
        screen = screen_of(pilot)
        await pilot.press("r", "ctrl+g")
        await until(pilot, lambda: isinstance(app.screen, SavedReplyPicker))
        await pilot.press(*"thnk")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, SavedReplyPicker))
        assert screen.composer.body == "Thank you @maya_codes! - sam"


async def test_done_and_next(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(pilot)  # view 1: Needs reply
        first = screen.inbox.current.id
        second = screen.inbox.row(1).id
        await pilot.press("e")
        await until(pilot, lambda: store.conversation(first).status == Status.DONE)
        await until(pilot, lambda: screen.inbox.current.id == second)


async def test_done_and_next_in_a_view_that_keeps_done_ones(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_all(pilot)
        screen = screen_of(pilot)
        first = screen.inbox.current.id
        await pilot.press("e")
        await until(pilot, lambda: store.conversation(first).status == Status.DONE)
        await until(pilot, lambda: screen.inbox.current.id != first)


async def test_snooze_until_a_time_and_until_reply(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_all(pilot)
        screen = screen_of(pilot)
        first = screen.inbox.current.id
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press("enter")  # the suggested "2h"
        await until(pilot, lambda: store.conversation(first).status == Status.SNOOZED)
        assert store.conversation(first).snoozed_until == data.NOW + timedelta(hours=2)
        second = screen.inbox.current.id
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one("Input").value = ""
        await pilot.press(*"reply", "enter")
        await until(pilot, lambda: store.conversation(second).status == Status.SNOOZED)
        assert store.conversation(second).snooze_until_reply


async def test_snooze_rejects_nonsense_and_stays_open(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        first = screen_of(pilot).inbox.current.id
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one("Input").value = "next blue moon"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, PromptScreen)
        assert "cannot read" in screen_text(pilot)
        await pilot.press("escape")
        assert store.conversation(first).status == Status.OPEN


async def test_assign_and_mine_view(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(pilot)
        first = screen.inbox.current.id
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press("enter")  # defaults to me
        await until(pilot, lambda: store.conversation(first).assignee == "sam")
        await pilot.press("3")
        await until(pilot, lambda: screen.inbox.total == 1)
        assert screen.inbox.current.id == first
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one("Input").value = "alex"
        await pilot.press("enter")
        await until(pilot, lambda: store.conversation(first).assignee == "alex")
        await until(pilot, lambda: screen.inbox.total == 0)


async def test_tag_and_untag(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        first = screen_of(pilot).inbox.current.id
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press(*"billing", "enter")
        await until(pilot, lambda: "billing" in store.conversation(first).tags)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press(*"-billing", "enter")
        await until(pilot, lambda: "billing" not in store.conversation(first).tags)


async def test_bulk_select_then_done_tag_assign(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_all(pilot)
        screen = screen_of(pilot)
        a, b = screen.inbox.row(0).id, screen.inbox.row(1).id
        await pilot.press("x", "x")
        assert screen.inbox.selected == {a, b}
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press(*"vip", "enter")
        await until(pilot, lambda: all("vip" in store.conversation(i).tags for i in (a, b)))
        assert not screen.inbox.selected
        await pilot.press("x", "x")  # cursor is on the third row now
        picked = set(screen.inbox.selected)
        assert len(picked) == 2 and not picked & {a, b}
        await pilot.press("e")
        await until(pilot, lambda: all(store.conversation(i).status == Status.DONE
                                       for i in picked))
        assert store.conversation(a).status != Status.DONE


async def test_search_moves_to_matches_with_n_and_N(make_app, store):
    app = make_app()
    receipt = conv_id(store, "dm-maya")
    kenji = conv_id(store, "dm-kenji")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_all(pilot)
        screen = screen_of(pilot)
        await pilot.press("/")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press(*"receipt", "enter")
        await until(pilot, lambda: screen.inbox.current.id == receipt)
        assert "search: receipt (1)" in screen_text(pilot)
        # Japanese: two characters, below the trigram index's reach (LIKE path).
        await pilot.press("/")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one("Input").value = "返金"
        await pilot.press("enter")
        await until(pilot, lambda: screen.inbox.current.id == kenji)
        await pilot.press("n")  # the only match: wraps to itself
        assert screen.inbox.current.id == kenji
        await pilot.press("escape")
        assert screen.inbox.search is None


async def test_search_n_visits_every_match_in_order(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_all(pilot)
        screen = screen_of(pilot)
        screen.inbox.set_search("kestrel_help")
        expected = [c.id for c in store.window(
            InboxFilter(statuses=tuple(Status), search="kestrel_help"), limit=50)]
        assert len(expected) >= 3
        seen = []
        for _ in expected:
            await pilot.press("n")
            seen.append(screen.inbox.current.id)
        assert seen == expected[1:] + expected[:1]
        await pilot.press("N")
        assert screen.inbox.current.id == expected[-1]


async def test_filter_narrows_and_reports_bad_input(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_all(pilot)
        screen = screen_of(pilot)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press(*"platform:instagram", "enter")
        await until(pilot, lambda: screen.inbox.total == 2)
        assert {screen.inbox.row(i).platform for i in range(2)} == {"instagram"}
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one("Input").value = "colour:blue"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("escape")
        await pilot.press("escape")  # clears the filter
        await until(pilot, lambda: screen.inbox.total == 10)


async def test_views_on_number_keys(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(pilot)
        assert screen.view.name == "Needs reply"
        assert screen.inbox.total == store.count(InboxFilter(needs_reply=True))
        await pilot.press("4")
        assert screen.view.name == "Urgent"
        urgencies = {screen.inbox.row(i).urgency for i in range(screen.inbox.total)}
        assert urgencies == {Urgency.CRISIS, Urgency.URGENT}
        await pilot.press("2")
        assert screen.view.name == "Breaching"


async def test_help_is_generated_from_the_keymap(write_config, store):
    from replydeck.tui.app import ReplydeckApp

    cfg = write_config('\n[keys]\nreply = "w"\n')
    app = ReplydeckApp(cfg, store=store, clock=lambda: data.NOW, start_services=False)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = screen_text(pilot)
        reply_line = next(line for line in text.splitlines() if "Reply (public" in line)
        assert " w " in f" {reply_line} "
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        screen = screen_of(pilot)
        await pilot.press("r")
        assert not screen.composing
        await pilot.press("w")
        assert screen.composing


async def test_quit_asks_when_a_draft_is_unsent(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(pilot)
        target = screen.inbox.current.id
        await pilot.press("r", *"half a thought", "escape")
        await until(pilot, lambda: store.draft(target) is not None)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "1 unsent draft" in screen_text(pilot)
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert app.is_running
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running)
    assert store.draft(target) == ("half a thought", False)


async def test_quit_asks_when_a_reply_is_still_queued(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r", *"ok", "ctrl+s")
        await until(pilot, lambda: store.outbox_counts().get("queued"))
        await until(pilot, lambda: not screen_of(pilot).composing)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "1 reply still queued" in screen_text(pilot)


async def test_quit_without_anything_pending_exits_at_once(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running)


async def test_draft_is_restored_when_the_composer_opens_again(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(pilot)
        target = screen.inbox.current.id
        await pilot.press("r", *"draft one")
        await until(pilot, lambda: store.draft(target) == ("draft one", False))
    app2 = make_app()
    async with app2.run_test(size=(80, 24)) as pilot:
        screen = screen_of(pilot)
        assert screen.inbox.current.id == target
        await pilot.press("r")
        assert screen.composer.body == "draft one"


async def test_toggle_unread(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        first = screen_of(pilot).inbox.current.id
        assert store.conversation(first).unread
        await pilot.press("u")
        await until(pilot, lambda: not store.conversation(first).unread)
        await pilot.press("u")
        await until(pilot, lambda: store.conversation(first).unread)


async def test_opening_marks_read_and_esc_goes_back(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(pilot)
        first = screen.inbox.current.id
        await pilot.press("enter")
        assert screen.reading
        await until(pilot, lambda: not store.conversation(first).unread)
        assert "my account was hacked" in screen.conversation.plain_text()
        await pilot.press("escape")
        assert not screen.reading


async def test_new_data_keeps_the_cursor_on_its_conversation(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_all(pilot)
        screen = screen_of(pilot)
        await pilot.press("j", "j", "j")
        here = screen.inbox.current.id
        other = Store(store.path, assessor=data.KeywordAssessor())
        other.ingest(data.SOURCE, [
            data.msg("new1", "x", data.Kind.MENTION, data.DAN, "lawsuit incoming", 1),
            data.msg("new2", "x", data.Kind.MENTION, data.KENJI, "the app is down", 1),
        ], None, now=data.NOW)
        other.close()
        await until(pilot, lambda: screen.inbox.total == 12)
        assert screen.inbox.current.id == here
        assert screen.inbox.cursor == 5


async def test_timers_tick_without_a_key_press(config, store):
    from replydeck.tui.app import ReplydeckApp

    now = [data.NOW]
    app = ReplydeckApp(config, store=store, clock=lambda: now[0], start_services=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_all(pilot)
        line = next(ln for ln in screen_text(pilot).splitlines() if "Grace" in ln)
        assert "50m" in line
        now[0] = data.NOW + timedelta(minutes=30)
        app._tick()
        await pilot.pause()
        line = next(ln for ln in screen_text(pilot).splitlines() if "Grace" in ln)
        assert "1h20m" in line and "2h40m" in line


async def test_outbox_retry_and_cancel_into_draft(make_app, store):
    app = make_app()
    first = store.window(InboxFilter(needs_reply=True), limit=1)[0].id
    failed = store.queue_reply(first, "first try", agent="sam")
    store.claim_replies("test", lease_until=data.NOW + timedelta(minutes=5),
                        now=data.NOW + timedelta(days=3650))
    store.mark_failed(failed.id, "HTTP 500 from the platform")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "1 failed" in screen_text(pilot))
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, OutboxScreen))
        assert "HTTP 500" in screen_text(pilot)
        await pilot.press("r")
        await until(pilot, lambda: store.reply(failed.id).state == ReplyState.QUEUED)
        await pilot.press("c")
        await until(pilot, lambda: store.reply(failed.id) is None)
        assert store.draft(first) == ("first try", False)


async def test_copy_link_uses_osc52_clipboard(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("y")
        assert app.clipboard == "https://x.example/x3"


async def test_command_palette_offers_actions(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"snooze")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        assert "Snooze" in screen_text(pilot)


async def test_new_urgent_conversation_rings_the_bell(make_app, store):
    app = make_app()
    crisis = conv_id(store, "x3")
    normal = conv_id(store, "m1")
    async with app.run_test(size=(80, 24)) as pilot:
        written: list[str] = []
        app._notifier = None
        app._terminal_write = written.append  # type: ignore[method-assign]
        app.urgent_arrived([normal, crisis])
        await pilot.pause()
        assert [e["conversation_id"] for e in app.notified] == [crisis]
        assert "\a" in "".join(written)


async def test_bell_off_in_ui_config(write_config, store):
    from replydeck.tui.app import ReplydeckApp

    cfg = write_config("\n[ui]\nbell = false\n")
    app = ReplydeckApp(cfg, store=store, clock=lambda: data.NOW, start_services=False)
    async with app.run_test(size=(80, 24)) as pilot:
        written: list[str] = []
        app._terminal_write = written.append  # type: ignore[method-assign]
        app.urgent_arrived([conv_id(store, "x3")])
        await pilot.pause()
        assert len(app.notified) == 1
        assert "\a" not in "".join(written)


def test_events_are_json(store):
    # The queued-reply event carries the saved reply's name for the outbox and metrics.
    json.dumps([e.data for e in store.events()])


async def test_reports_screen_opens_and_closes(make_app):
    from replydeck.tui.reports_screen import ReportsScreen

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("M")
        await until(pilot, lambda: isinstance(app.screen, ReportsScreen))
        await pilot.press("escape")
        await until(pilot, lambda: app.inbox_screen is app.screen)


async def test_a_draft_saved_just_before_sending_does_not_come_back(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = screen_of(pilot)
        target = screen.inbox.current.id
        await pilot.press("r", *"quick")
        screen.composer._flush()  # the debounce fires right as ctrl+s is pressed
        await pilot.press("ctrl+s")
        await until(pilot, lambda: store.replies(target))
        await pilot.pause(0.3)
        assert store.draft(target) is None
        assert target not in screen.inbox.drafts


async def test_bulk_snooze_and_assign(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_all(pilot)
        screen = screen_of(pilot)
        a, b = screen.inbox.row(0).id, screen.inbox.row(1).id
        await pilot.press("x", "x", "a")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one("Input").value = "alex"
        await pilot.press("enter")
        await until(pilot, lambda: all(store.conversation(i).assignee == "alex"
                                       for i in (a, b)))
        screen.inbox.move_to(0)
        await pilot.press("x", "x", "s")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press("enter")
        await until(pilot, lambda: all(store.conversation(i).status == Status.SNOOZED
                                       for i in (a, b)))


async def test_sla_breach_from_the_services_rings_the_bell(make_app, store):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        written: list[str] = []
        app._notifier = None
        app._terminal_write = written.append  # type: ignore[method-assign]
        app._event_from_services({"type": "breach", "conversation_id": conv_id(store, "x3"),
                                  "platform": "x", "urgency": "crisis", "author": "x"})
        await pilot.pause()
        assert [e["type"] for e in app.notified] == ["breach"]
        assert "\a" in "".join(written)


async def test_outside_the_reply_window_the_composer_says_so_and_offers_the_tag(make_app,
                                                                                 store):
    from replydeck.sources.meta_graph import WindowInfo

    app = make_app()
    reason = "the 24-hour window closed 3 days ago"

    def window(conv, private, tag):
        if tag == "HUMAN_AGENT":
            return WindowInfo(True, "a person may answer for 7 days with HUMAN_AGENT")
        return WindowInfo(False, reason, ["HUMAN_AGENT"])

    app.reply_window = window  # type: ignore[method-assign]
    async with app.run_test(size=(220, 40)) as pilot:
        await open_all(pilot)
        screen = screen_of(pilot)
        target = screen.inbox.current.id
        await pilot.press("r")
        await pilot.press(*"Sorry for the wait")
        assert reason in screen_text(pilot)
        assert "HUMAN_AGENT allowed: ctrl+y" in screen_text(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert store.replies(target) == [] and screen.composing  # refused, draft kept
        await pilot.press("ctrl+y")
        assert "tag HUMAN_AGENT" in screen_text(pilot)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: store.replies(target))
        assert store.replies(target)[0].options == {"tag": "HUMAN_AGENT"}
