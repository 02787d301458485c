"""The main screen: the inbox list, the open conversation and its composer, status line.

Wide terminals show the conversation beside the list; narrow ones show one at a time.
Every action here is bound by id (``[keys]`` rebinds it) and reachable from Ctrl+P.
Writes go to the app's writer thread; the list re-reads the store when they commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static

from replydeck.config.keys import ViewDef
from replydeck.inbox.model import Conversation, Direction, Status
from replydeck.inbox.store import InboxFilter, Store, StoreError
from replydeck.tui import fmt
from replydeck.tui.keymap import hints, inbox_bindings
from replydeck.tui.parse import FILTER_HELP, SNOOZE_HELP, parse_filter, parse_snooze
from replydeck.tui.screens.prompt import PromptScreen
from replydeck.tui.widgets.conversation import ConversationView
from replydeck.tui.widgets.inbox_list import InboxList, header_text
from replydeck.tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from replydeck.tui.app import ReplydeckApp
    from replydeck.tui.widgets.composer import Composer

#: From this width the conversation is shown beside the list.
WIDE = 120
#: Wait this long after the cursor stops before loading the conversation beside it.
FOLLOW_DELAY_S = 0.08


def _shows_everything(v: ViewDef) -> bool:
    return len(set(v.statuses)) == len(Status) and not (
        v.platforms or v.kinds or v.tags or v.assignee is not None or v.min_urgency
        or v.needs_reply or v.breached or v.unread)


def view_filter(view: ViewDef, agent: str) -> InboxFilter:
    assignee = agent if view.assignee == "me" else view.assignee
    return InboxFilter(statuses=view.statuses, platforms=view.platforms, kinds=view.kinds,
                       tags=view.tags, assignee=assignee, min_urgency=view.min_urgency,
                       needs_reply=view.needs_reply, breached=view.breached,
                       unread=view.unread)


class InboxScreen(Screen[None]):
    app: ReplydeckApp

    def __init__(self) -> None:
        super().__init__()
        self.view: ViewDef | None = None
        self.base_filter = InboxFilter()
        self.filter_text = ""
        self._follow: Timer | None = None

    def compose(self) -> ComposeResult:
        app = self.app
        with Horizontal(id="body"):
            with Vertical(id="list-pane"):
                yield Static(Text(), id="view-bar")
                yield Static(Text(), id="list-header")
                yield InboxList(app.store, app.clock, read=app.read, id="inbox")
            with Vertical(id="conv-pane"):
                yield ConversationView(app.store, app.clock, app.keys.ui.time_format,
                                       id="conversation")
        yield StatusBar(app.store, app.clock, [s.name for s in app.config.sources],
                        id="status")
        yield Static(hints(app.keys, composing=False), id="hints")

    # -- parts -------------------------------------------------------------------------
    @property
    def inbox(self) -> InboxList:
        return self.query_one("#inbox", InboxList)

    @property
    def conversation(self) -> ConversationView:
        return self.query_one("#conversation", ConversationView)

    @property
    def composer(self) -> Composer:
        """Mounted on the first reply (an editor is not needed to read the inbox)."""
        return cast("Composer", self.query_one("#composer"))

    async def _ensure_composer(self) -> Composer:
        if self.query("#composer"):
            return self.composer
        from replydeck.tui.widgets.composer import Composer  # with the editor, on first use

        composer = Composer(self.app.limits_for, window_for=self.app.reply_window,
                            id="composer")
        await self.query_one("#conv-pane", Vertical).mount(composer)
        return composer

    @property
    def status(self) -> StatusBar:
        return self.query_one("#status", StatusBar)

    @property
    def wide(self) -> bool:
        return self.has_class("-wide")

    @property
    def reading(self) -> bool:
        return self.has_class("-reading")

    @property
    def composing(self) -> bool:
        found = self.query("#composer")
        return bool(found) and found.first().has_class("-open")

    def on_mount(self) -> None:
        self.set_class(self.app.size.width >= WIDE, "-wide")
        views = self.app.keys.views
        self.switch_view(views[0] if views else None)
        self.inbox.focus()
        # After the first frame: the counts are the slow part of a big inbox.
        self.call_after_refresh(self.tick)
        self.call_after_refresh(lambda: self.background(self.refresh_drafts, group="drafts"))

    def on_resize(self, event: events.Resize) -> None:
        wide = event.size.width >= WIDE
        self.set_class(wide, "-wide")
        # Wide shows both panes; narrow shows the conversation alone while composing.
        if wide:
            self.remove_class("-reading")
        elif self.composing:
            self.add_class("-reading")
        self._paint_header()
        if self.wide and self.inbox.current and self.conversation.conversation is None:
            self.conversation.show(self.inbox.current.id)

    def _paint_header(self) -> None:
        width = self.inbox.scrollable_content_region.width or self.inbox.size.width
        self.query_one("#list-header", Static).update(Text(header_text(width), "bold dim"))

    def _paint_view_bar(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        for view in self.app.keys.views:
            label = f" {view.key} {view.name} "
            t.append(label, "reverse bold" if view is self.view else "")
        t.append(f" {self.inbox.total} ", "bold")
        if self.filter_text:
            t.append(" filter: ", "dim")
            t.append(self.filter_text, "yellow")
        if self.inbox.search:
            t.append(" search: ", "dim")
            t.append(self.inbox.search, "yellow")
            t.append(f" ({self.inbox.match_count()})", "dim")
        if self.inbox.selected:
            t.append(f"  {len(self.inbox.selected)} selected", "bold magenta")
        self.query_one("#view-bar", Static).update(t)

    # -- data --------------------------------------------------------------------------
    async def data_changed(self) -> None:
        """The store changed (ours or another process's commit): re-read what is shown."""
        await self.inbox.reload_in_background()
        self._paint_view_bar()
        if self.conversation.conversation is not None and (self.wide or self.reading):
            self.conversation.refresh_data()
        await self.status.update_in_background(self.app.read)
        await self.refresh_drafts()

    async def refresh_drafts(self) -> None:
        drafts = set(await self.app.read(lambda s: list(s.drafts())))
        if drafts != self.inbox.drafts:
            self.inbox.drafts = drafts
            self.inbox.refresh()

    def tick(self) -> None:
        self.inbox.tick()
        self.conversation.tick()
        self.background(lambda: self.status.update_in_background(self.app.read), group="status",
                        exclusive=True)

    def switch_view(self, view: ViewDef | None) -> None:
        self.view = view
        self.filter_text = ""
        self.base_filter = view_filter(view, self.app.config.agent_name) if view \
            else InboxFilter()
        name = view.name if view else "inbox"
        everything = next((v for v in self.app.keys.views
                           if v is not view and _shows_everything(v)), None)
        hint = f" Press {everything.key} for {everything.name}." if everything else ""
        self.inbox.set_filter(self.base_filter,
                              empty_text=f"Nothing in {name}.{hint} ? shows every key.")
        self.inbox.selected.clear()
        self._paint_header()
        self._paint_view_bar()

    @on(InboxList.Counted)
    def _counted(self) -> None:
        self._paint_view_bar()

    @on(InboxList.Highlighted)
    def _highlighted(self, event: InboxList.Highlighted) -> None:
        if self.composing:
            return
        if not event.by_person and self.conversation.conversation is not None:
            return  # a refresh moved the cursor: what is being read stays on screen
        if not (self.wide or self.reading):
            return
        if self._follow is not None:
            self._follow.stop()
        conv_id = event.conversation.id if event.conversation else None
        self._follow = self.set_timer(FOLLOW_DELAY_S, lambda: self.conversation.show(conv_id))

    def background(self, make: Callable[[], Awaitable[Any]], *, group: str = "default",
                   exclusive: bool = False) -> None:
        """Run ``make()`` as a worker that ends quietly if the screen goes away meanwhile
        (quitting while a read is in flight), and fails loudly for anything else.

        A factory, not a coroutine: an exclusive worker replaced before it starts must
        not leave a coroutine that was never awaited.
        """

        async def guarded() -> None:
            try:
                await make()
            except NoMatches:
                if self.is_attached and self.app.is_running:
                    raise

        self.run_worker(guarded, group=group, exclusive=exclusive)

    def _targets(self) -> list[int]:
        if self.inbox.selected:
            return sorted(self.inbox.selected)
        current = self.inbox.current
        return [current.id] if current else []

    async def _write(self, fn: Any, done: str | None = None) -> bool:
        try:
            await self.app.write(fn)
        except StoreError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return False
        if done:
            self.notify(done, markup=False, timeout=3)
        await self.data_changed()
        return True

    # -- moving ------------------------------------------------------------------------
    def action_move_down(self) -> None:
        self.inbox.move(1)

    def action_move_up(self) -> None:
        self.inbox.move(-1)

    def action_top(self) -> None:
        self.inbox.move_to(0)

    def action_bottom(self) -> None:
        self.inbox.move_to(self.inbox.total - 1)

    def action_page_down(self) -> None:
        self.inbox.page(1)

    def action_page_up(self) -> None:
        self.inbox.page(-1)

    def open_current(self) -> Conversation | None:
        conv = self.inbox.current
        if conv is None:
            return None
        if self._follow is not None:
            self._follow.stop()
        self.conversation.show(conv.id)
        if not self.wide:
            self.add_class("-reading")
        if conv.unread:
            self.background(lambda: self._write(lambda s: s.mark_read([conv.id], True)),
                            group="writes")
        return conv

    def action_open(self) -> None:
        if self.open_current() is not None and self.wide:
            self.conversation.focus()

    def action_back(self) -> None:
        if self.composing:
            self._close_composer()
        elif self.reading:
            self.remove_class("-reading")
            self.inbox.focus()
        elif self.focused is self.conversation:
            self.inbox.focus()
        elif self.inbox.selected:
            self.inbox.clear_selection()
            self._paint_view_bar()
        elif self.inbox.search:
            self.inbox.set_search(None)
            self._paint_view_bar()
        elif self.filter_text:
            self.filter_text = ""
            self.inbox.set_filter(self.base_filter)
            self._paint_view_bar()

    # -- composing ---------------------------------------------------------------------
    async def action_reply(self, private: bool = False) -> None:
        conv = self.open_current()
        if conv is None:
            return
        composer = await self._ensure_composer()
        draft = self.app.store.draft(conv.id)
        body = draft[0] if draft else ""
        composer.add_class("-open")
        self.add_class("-composing")
        self.query_one("#hints", Static).update(hints(self.app.keys, composing=True))
        composer.start(conv, private=private or bool(draft and draft[1]), body=body)

    async def action_private_reply(self) -> None:
        await self.action_reply(private=True)

    def _close_composer(self) -> None:
        self.composer.stop()
        self.composer.remove_class("-open")
        self.remove_class("-composing")
        self.query_one("#hints", Static).update(hints(self.app.keys, composing=False))
        if self.reading:
            self.conversation.focus()
        else:
            self.inbox.focus()

    def on_composer_leave(self) -> None:
        self._close_composer()

    def on_composer_draft_changed(self, event: Composer.DraftChanged) -> None:
        conv_id, body, private = event.conv_id, event.body, event.private
        if body.strip():
            self.app.session_drafts.add(conv_id)
        self.app.write_soon(lambda s: s.save_draft(conv_id, body, private))

    async def on_composer_send(self, event: Composer.Send) -> None:
        agent = self.app.config.agent_name

        def queue(s: Store) -> Any:
            return s.queue_reply(event.conv_id, event.body, private=event.private, agent=agent,
                                 saved_reply=event.saved_reply, options=event.options)

        try:
            reply = await self.app.write(queue)
        except StoreError as exc:
            self.notify(f"Not queued: {exc}", severity="error", markup=False)
            return
        self.app.session_drafts.discard(event.conv_id)
        self.app.wake_outbox()
        self.composer.conversation = None
        self._close_composer()
        self.notify(f"Reply #{reply.id} queued ({'private' if event.private else 'public'}); "
                    "the outbox sends it now.", markup=False, timeout=3)
        await self.data_changed()

    def on_composer_want_saved_reply(self) -> None:
        conv = self.composer.conversation
        replies = list(self.app.saved_replies)
        if conv is None:
            return
        if not replies:
            self.notify("No saved replies: add [[replies]] to the config.", markup=False,
                        severity="warning")
            return
        messages = [m.text for m in self.app.store.messages(conv.id)
                    if m.direction == Direction.IN]
        suggested = self.app.suggest(messages)

        from replydeck.tui.screens.saved import SavedReplyPicker

        def chosen(result: tuple[str, str] | None) -> None:
            if result is not None:
                self.composer.insert_text(result[1], saved_reply=result[0])
            else:
                self.composer.editor.focus()

        self.app.push_screen(SavedReplyPicker(replies, suggested,
                                              lambda r: self.app.render_saved(r, conv)),
                             chosen)

    # -- acting on conversations -------------------------------------------------------
    async def action_done_next(self) -> None:
        ids = self._targets()
        if not ids:
            return
        bulk = bool(self.inbox.selected)
        was = self.inbox.current.id if self.inbox.current else None
        agent = self.app.config.agent_name
        if self.composing:
            self._close_composer()
        ok = await self._write(lambda s: s.set_status(ids, Status.DONE, actor=agent),
                               f"Done: {len(ids)} conversation{'s' * (len(ids) > 1)}")
        if not ok:
            return
        if bulk:
            self.inbox.clear_selection()
        elif self.inbox.current is not None and self.inbox.current.id == was:
            self.inbox.move(1)  # still listed (a view showing done ones): step on
        if self.reading or self.wide:
            current = self.inbox.current
            self.conversation.show(current.id if current else None)
        self._paint_view_bar()

    def action_reopen(self) -> None:
        ids = self._targets()
        if ids:
            agent = self.app.config.agent_name
            self.background(lambda: self._write(lambda s: s.set_status(ids, Status.OPEN, actor=agent),
                                        "Reopened"), group="writes")

    def action_snooze(self) -> None:
        ids = self._targets()
        if not ids:
            return
        now = self.app.clock()

        def validate(text: str) -> str | None:
            try:
                parse_snooze(text, now)
            except ValueError as exc:
                return str(exc)
            return None

        async def done(text: str | None) -> None:
            if text is None:
                return
            until = parse_snooze(text, self.app.clock())
            agent = self.app.config.agent_name
            label = ("until the customer writes" if until is None
                     else "until " + fmt.local_time(until, self.app.clock(),
                                                    self.app.keys.ui.time_format))
            if await self._write(lambda s: s.snooze(ids, until=until, actor=agent),
                                 f"Snoozed {len(ids)} {label}"):
                self.inbox.clear_selection() if self.inbox.selected else None
                self._paint_view_bar()

        self.app.push_screen(PromptScreen(f"Snooze {len(ids)} until…", SNOOZE_HELP, "2h",
                                          validate=validate), done)

    def action_assign(self) -> None:
        ids = self._targets()
        if not ids:
            return
        agent = self.app.config.agent_name
        current = self.inbox.current
        known = sorted({agent, *(self.app.known_agents())})

        async def done(text: str | None) -> None:
            if text is None:
                return
            who = text.strip()
            target = None if who.lower() in ("", "none", "-") else \
                agent if who.lower() == "me" else who
            if await self._write(lambda s: s.assign(ids, target, actor=agent),
                                 f"Assigned {len(ids)} to {target or 'nobody'}"):
                if self.inbox.selected:
                    self.inbox.clear_selection()
                self._paint_view_bar()

        value = (current.assignee or agent) if current and len(ids) == 1 else agent
        self.app.push_screen(PromptScreen(f"Assign {len(ids)} to (me, a name, or none)",
                                          "", value, suggestions=known), done)

    def action_tag(self) -> None:
        ids = self._targets()
        if not ids:
            return
        agent = self.app.config.agent_name

        async def done(text: str | None) -> None:
            if not text or not text.strip():
                return
            remove = text.strip().startswith("-")
            tag = text.strip().lstrip("-")
            verb = "Untagged" if remove else "Tagged"
            if await self._write(lambda s: s.tag(ids, tag, remove=remove, actor=agent),
                                 f"{verb} {len(ids)}: {tag}"):
                if self.inbox.selected:
                    self.inbox.clear_selection()
                self._paint_view_bar()

        self.app.push_screen(PromptScreen(f"Tag {len(ids)} (-tag removes)", "", "",
                                          suggestions=self.app.known_tags()), done)

    def action_toggle_unread(self) -> None:
        ids = self._targets()
        current = self.inbox.current
        if not ids or current is None:
            return
        read = current.unread
        self.background(lambda: self._write(lambda s: s.mark_read(ids, read)), group="writes")

    def action_select(self) -> None:
        self.inbox.toggle_selected()
        self.inbox.move(1)
        self._paint_view_bar()

    def action_copy_link(self) -> None:
        conv = self.inbox.current
        if conv is None:
            return
        url = None
        for row in reversed(self.app.store.message_rows(conv.id)):
            if row["url"] and row["direction"] == str(Direction.IN):
                url = row["url"]
                break
        url = url or conv.url
        if not url:
            self.notify("This conversation has no link.", severity="warning", markup=False)
            return
        self.app.copy_to_clipboard(url)
        self.notify(f"Copied {fmt.one_line(url)[:80]}", markup=False, timeout=3)

    # -- finding -----------------------------------------------------------------------
    def action_search(self) -> None:
        def done(text: str | None) -> None:
            if text is None:
                return
            self.inbox.set_search(text.strip() or None)
            if self.inbox.search and not self.inbox.find_match(True):
                self.notify(f"No match for {text.strip()!r} in this view.", markup=False,
                            severity="warning")
            self._paint_view_bar()

        self.app.push_screen(PromptScreen("Search messages", "full text; n / N move between "
                                          "matches; esc clears", self.inbox.search or ""),
                             done)

    def action_next_match(self) -> None:
        if not self.inbox.find_match(True) and self.inbox.search:
            self.notify("No match in this view.", markup=False, severity="warning")

    def action_prev_match(self) -> None:
        if not self.inbox.find_match(False) and self.inbox.search:
            self.notify("No match in this view.", markup=False, severity="warning")

    def action_filter(self) -> None:
        agent = self.app.config.agent_name

        def validate(text: str) -> str | None:
            try:
                parse_filter(text, self.base_filter, agent)
            except ValueError as exc:
                return str(exc)
            return None

        def done(text: str | None) -> None:
            if text is None:
                return
            self.filter_text = " ".join(text.split())
            self.inbox.set_filter(parse_filter(self.filter_text, self.base_filter, agent))
            self._paint_view_bar()

        self.app.push_screen(PromptScreen("Filter this view", FILTER_HELP, self.filter_text,
                                          validate=validate), done)

    def action_view(self, key: int) -> None:
        for view in self.app.keys.views:
            if view.key == key:
                self.switch_view(view)
                if self.wide:
                    current = self.inbox.current
                    self.conversation.show(current.id if current else None)
                return

    # -- other screens -----------------------------------------------------------------
    def action_outbox(self) -> None:
        from replydeck.tui.screens.outbox import OutboxScreen

        def retry(reply_id: int) -> None:
            self.background(lambda: self._outbox_write(lambda s: s.requeue_reply(
                reply_id, actor=self.app.config.agent_name), f"Reply #{reply_id} queued again"),
                group="writes")

        def cancel(reply_id: int) -> None:
            self.background(lambda: self._outbox_write(lambda s: s.cancel_reply(reply_id),
                                               f"Reply #{reply_id} is a draft again"),
                            group="writes")

        def done(conv_id: int | None) -> None:
            if conv_id is None:
                return
            conv = self.app.store.conversation(conv_id)
            if conv is None:
                return
            self.conversation.show(conv_id)
            if not self.wide:
                self.add_class("-reading")

        self.app.push_screen(OutboxScreen(self.app.store, retry, cancel), done)

    async def _outbox_write(self, fn: Any, done: str) -> None:
        from replydeck.tui.screens.outbox import OutboxScreen

        if await self._write(fn, done):
            self.app.wake_outbox()
            if isinstance(self.app.screen, OutboxScreen):
                self.app.screen.reload()

    def action_reports(self) -> None:
        try:
            from replydeck.tui.reports_screen import ReportsScreen
        except ImportError:
            self.notify("Reports are not part of this build.", severity="warning",
                        markup=False)
            return
        self.app.push_screen(ReportsScreen(self.app.store.path, self.app.config.sla,
                                           clock=self.app.clock))

    def action_help(self) -> None:
        from replydeck.tui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen(self.app.keys))

    async def action_quit(self) -> None:
        await self.app.action_quit()


def screen_bindings(views: tuple[ViewDef, ...]) -> list[Binding]:
    """The inbox's bindings plus one per saved view."""
    return [*inbox_bindings(),
            *(Binding(str(v.key), f"view({v.key})", v.name, show=False, id=f"view_{v.key}")
              for v in views)]


def make_screen(views: tuple[ViewDef, ...]) -> InboxScreen:
    """An InboxScreen whose class carries the bindings (Textual reads them per class)."""
    cls = type("InboxScreen", (InboxScreen,), {"BINDINGS": screen_bindings(views)})
    return cls()
