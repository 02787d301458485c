"""Every binding, generated from the keymap (so it is never out of date)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from replydeck.config.keys import KeysConfig
from replydeck.tui.keymap import help_rows


def help_table(keys: KeysConfig) -> Table:
    table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
    table.add_column("keys", style="bold", no_wrap=True, min_width=12)
    table.add_column("what")
    group = None
    for row_group, shown, description in help_rows(keys):
        if row_group != group:
            if group is not None:
                table.add_row("", "")
            table.add_row(Text(row_group, "bold underline"), "")
            group = row_group
        table.add_row(Text(shown), Text(description))
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,question_mark,f1", "close", "close"),
        Binding("j", "scroll(1)", show=False),
        Binding("k", "scroll(-1)", show=False),
    ]

    def __init__(self, keys: KeysConfig) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(Text("replydeck keys  (esc closes; ctrl+p finds any action by name)",
                              "bold"))
            yield Static(help_table(self.keys), id="help-table")

    def action_scroll(self, lines: int) -> None:
        self.query_one("#help-box", VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
