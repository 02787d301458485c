"""A one-line question (snooze until, assign to, tag, search, filter) and a yes/no."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Static


class PromptScreen(ModalScreen[str | None]):
    """Asks for one line; ``validate`` returns an error message or None."""

    BINDINGS = [Binding("escape", "cancel", "cancel", show=False)]

    def __init__(self, title: str, help_text: str = "", value: str = "", *,
                 suggestions: Sequence[str] = (),
                 validate: Callable[[str], str | None] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.help_text = help_text
        self.value = value
        self.suggestions = list(suggestions)
        self.validate = validate

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box"):
            yield Static(Text(self.title_text, "bold"), id="prompt-title")
            suggester = SuggestFromList(self.suggestions, case_sensitive=False) \
                if self.suggestions else None
            yield Input(self.value, id="prompt-input", suggester=suggester)
            yield Static(Text(self.help_text, "dim"), id="prompt-help")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        problem = self.validate(event.value) if self.validate else None
        if problem:
            self.query_one("#prompt-help", Static).update(Text(problem, "bold red"))
            return
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box"):
            yield Static(Text(self.question, "bold"), id="prompt-title")
            if self.detail:
                yield Static(Text(self.detail), id="confirm-detail")
            yield Static(Text("y: yes   n / esc: no", "dim"), id="prompt-help")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
