"""From the ``[keys]`` config to Textual bindings, and the help text built from them.

Every binding carries an ``id`` equal to its action name, and the user's keys are applied
with ``App.set_keymap``; the help screen and the command palette read the same table, so
neither can drift from what the keys really do.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding

from replydeck.config.keys import ACTIONS, COMPOSER, INBOX, Action, KeysConfig

#: Actions shown in the footer (the rest are in ? help and the Ctrl+P palette).
FOOTER = ("help", "reply", "done_next", "snooze", "search", "outbox", "quit")
SHORT = {
    "help": "help", "reply": "reply", "done_next": "done", "snooze": "snooze",
    "search": "search", "outbox": "outbox", "quit": "quit", "compose_send": "send",
    "compose_private": "public/private", "compose_saved": "saved reply",
    "compose_editor": "$EDITOR", "compose_leave": "leave", "compose_tag": "message tag",
}


def _binding(action: Action, *, priority: bool = False) -> Binding:
    return Binding(
        ",".join(action.keys), action.name, SHORT.get(action.name, action.description),
        show=action.name in FOOTER or action.scope == COMPOSER, id=action.name,
        priority=priority, tooltip=action.description,
    )


def inbox_bindings() -> list[Binding]:
    return [_binding(a) for a in ACTIONS if a.scope == INBOX]


def composer_bindings() -> list[Binding]:
    return [_binding(a, priority=True) for a in ACTIONS if a.scope == COMPOSER]


def keymap(keys: KeysConfig) -> dict[str, str]:
    """The ``set_keymap`` argument: binding id -> comma-separated keys."""
    return {name: ",".join(k) for name, k in keys.bindings.items()}


COMPOSER_HINTS = ("compose_send", "compose_leave", "compose_private", "compose_saved",
                  "compose_editor")


def _short_key(key: str) -> str:
    return "^" + key[5:] if key.startswith("ctrl+") else display_key(key)


_DISPLAY = {
    "escape": "esc", "pagedown": "PgDn", "pageup": "PgUp", "question_mark": "?",
    "space": "space", "enter": "enter", "down": "↓", "up": "↑", "home": "Home", "end": "End",
}


def display_key(key: str) -> str:
    if key in _DISPLAY:
        return _DISPLAY[key]
    return key


def hints(keys: KeysConfig, composing: bool) -> Text:
    """The bottom key line: the few keys worth knowing now, from the live keymap.

    One Text instead of Textual's Footer, which builds a widget per key and costs a large
    share of the time to the first frame.
    """
    t = Text(no_wrap=True, overflow="ellipsis")
    names = COMPOSER_HINTS if composing else FOOTER
    for name in names:
        bound = keys.keys_for(name)
        if not bound:
            continue
        t.append(f" {_short_key(bound[0])}", "bold")
        t.append(f" {SHORT.get(name, name)} ", "dim")
    t.append(" ^p", "bold")
    t.append(" palette", "dim")
    return t


def help_rows(keys: KeysConfig) -> list[tuple[str, str, str]]:
    """(group, keys, description) for every action, in help order."""
    rows = []
    for action in ACTIONS:
        shown = " ".join(display_key(k) for k in keys.keys_for(action.name))
        rows.append((action.group, shown, action.description))
    for view in keys.views:
        rows.append(("Views", str(view.key), f"View: {view.name}"))
    rows.append(("Show", "ctrl+p", "Command palette: every action by name"))
    return rows
