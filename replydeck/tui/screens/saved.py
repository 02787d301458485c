"""The saved-reply picker: fuzzy search, with suggestions for this conversation first."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.fuzzy import Matcher
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from replydeck.inbox.replies import SavedReply
from replydeck.tui import fmt


class SavedReplyPicker(ModalScreen[tuple[str, str] | None]):
    """Returns (reply name, rendered text) or None."""

    BINDINGS = [
        Binding("escape", "cancel", "cancel", show=False),
        Binding("down", "cursor(1)", show=False),
        Binding("up", "cursor(-1)", show=False),
    ]

    def __init__(self, replies: Sequence[SavedReply], suggested: Sequence[str],
                 render: Callable[[SavedReply], str]) -> None:
        super().__init__()
        self.replies = list(replies)
        self.suggested = [n for n in suggested if any(r.name == n for r in self.replies)]
        self.render_reply = render
        self._shown: list[SavedReply] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box"):
            yield Static(Text("Saved replies (type to search, enter inserts, esc cancels)",
                              "bold"))
            yield Input(placeholder="search saved replies", id="picker-input")
            yield OptionList(id="picker-list")
            yield Static(Text(), id="picker-preview")

    def on_mount(self) -> None:
        self._fill("")

    def _ranked(self, query: str) -> list[tuple[SavedReply, bool]]:
        by_name = {r.name: r for r in self.replies}
        if not query.strip():
            first = [(by_name[n], True) for n in self.suggested]
            rest = [(r, False) for r in self.replies if r.name not in self.suggested]
            return first + rest
        matcher = Matcher(query)
        scored = []
        for r in self.replies:
            score = max(matcher.match(r.name), matcher.match(fmt.one_line(r.body)) * 0.8)
            if score > 0:
                bonus = 0.5 if r.name in self.suggested else 0.0
                scored.append((score + bonus, r))
        scored.sort(key=lambda pair: -pair[0])
        return [(r, r.name in self.suggested) for _, r in scored]

    def _fill(self, query: str) -> None:
        ranked = self._ranked(query)
        self._shown = [r for r, _ in ranked]
        options = []
        for reply, suggested in ranked:
            label = Text()
            label.append("★ " if suggested else "  ", "yellow")
            label.append(reply.name, "bold")
            label.append("  " + fmt.one_line(reply.body)[:70], "dim")
            options.append(Option(label))
        picker = self.query_one("#picker-list", OptionList)
        picker.clear_options()
        picker.add_options(options)
        if options:
            picker.highlighted = 0
        else:
            self.query_one("#picker-preview", Static).update(Text("No saved reply matches.",
                                                                  "dim"))

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if 0 <= event.option_index < len(self._shown):
            preview = self.render_reply(self._shown[event.option_index])
            self.query_one("#picker-preview", Static).update(Text(preview))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._choose(self.query_one("#picker-list", OptionList).highlighted)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self._choose(event.option_index)

    def _choose(self, index: int | None) -> None:
        if index is None or not 0 <= index < len(self._shown):
            return
        reply = self._shown[index]
        self.dismiss((reply.name, self.render_reply(reply)))

    def action_cursor(self, step: int) -> None:
        picker = self.query_one("#picker-list", OptionList)
        if picker.option_count:
            current = picker.highlighted or 0
            picker.highlighted = max(0, min(picker.option_count - 1, current + step))

    def action_cancel(self) -> None:
        self.dismiss(None)
