"""Replies not yet delivered: see them, retry a failed one, or take one back as a draft."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from replydeck.inbox.model import Reply, ReplyState
from replydeck.inbox.store import Store
from replydeck.tui import fmt

PENDING = (ReplyState.QUEUED, ReplyState.SENDING, ReplyState.FAILED, ReplyState.UNCONFIRMED)
_STYLE = {"queued": "yellow", "sending": "yellow", "failed": "bold red",
          "unconfirmed": "bold magenta"}


class OutboxScreen(ModalScreen[int | None]):
    """Dismisses with a conversation id to open, or None."""

    BINDINGS = [
        Binding("escape,q", "close", "close"),
        Binding("r", "retry", "retry"),
        Binding("c", "cancel_reply", "cancel into draft"),
        Binding("enter", "open", "open conversation", show=False),
    ]

    def __init__(self, store: Store, retry: Callable[[int], None],
                 cancel: Callable[[int], None]) -> None:
        super().__init__()
        self.store = store
        self.retry = retry
        self.cancel = cancel
        self.replies: list[Reply] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="outbox-box"):
            yield Static(Text("Outbox  (r retry failed/unconfirmed · c cancel back into a draft "
                              "· enter open · esc close)", "bold"))
            yield OptionList(id="outbox-list")
            yield Static(Text(), id="outbox-detail")

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        self.replies = self.store.replies(states=PENDING)
        listing = self.query_one("#outbox-list", OptionList)
        keep = listing.highlighted
        listing.clear_options()
        for reply in self.replies:
            label = Text()
            label.append(f"#{reply.id:<5} ", "dim")
            label.append(f"{reply.state!s:<12}", _STYLE.get(str(reply.state), ""))
            label.append(f"{reply.source:<12} ", "bold")
            label.append("private " if reply.private else "public  ", "dim")
            label.append(fmt.one_line(reply.body)[:60])
            listing.add_option(Option(label))
        if not self.replies:
            listing.add_option(Option(Text("Nothing waiting: every reply was delivered.",
                                           "dim"), disabled=True))
        else:
            listing.highlighted = min(keep or 0, len(self.replies) - 1)

    def _current(self) -> Reply | None:
        index = self.query_one("#outbox-list", OptionList).highlighted
        if index is None or not 0 <= index < len(self.replies):
            return None
        return self.replies[index]

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        reply = self._current()
        detail = Text()
        if reply is not None and reply.last_error:
            detail.append(reply.last_error, "red")
        self.query_one("#outbox-detail", Static).update(detail)

    def action_retry(self) -> None:
        reply = self._current()
        if reply is None:
            return
        if reply.state not in (ReplyState.FAILED, ReplyState.UNCONFIRMED, ReplyState.QUEUED):
            self.notify(f"Reply #{reply.id} is {reply.state}; only queued, failed or "
                        "unconfirmed replies can be retried.", severity="warning", markup=False)
            return
        self.retry(reply.id)

    def action_cancel_reply(self) -> None:
        reply = self._current()
        if reply is None:
            return
        if reply.state == ReplyState.SENDING:
            self.notify("That reply is being sent right now and cannot be taken back.",
                        severity="warning", markup=False)
            return
        self.cancel(reply.id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        reply = self._current()
        self.dismiss(reply.conversation_id if reply else None)

    def action_close(self) -> None:
        self.dismiss(None)
