"""``[keys]``, ``[[views]]`` and ``[ui]``: key bindings, saved views, screen settings.

``[keys]`` maps an action name to a key or a list of keys (Textual key names: ``"r"``,
``"ctrl+s"``, ``"pagedown"``, ``"question_mark"`` or ``"?"``)::

    [keys]
    reply = "r"
    move_down = ["j", "down"]

``[[views]]`` adds saved views on the number keys (the five defaults are Needs reply,
Breaching, Mine, Urgent and All; a view on the same key replaces the default)::

    [[views]]
    name = "Billing"
    key = 6
    tags = ["billing"]
    statuses = ["open", "pending"]

``[ui]``: ``bell`` (ring on a new urgent conversation), ``theme`` (a Textual theme name,
or ``"ansi"`` for the terminal's own 16 colours), ``time_format`` (strftime, e.g.
``"%H:%M"`` or ``"%I:%M %p"``).

This module knows the actions (the keymap's schema), so a typo in ``[keys]`` is an error
here, at load time; the TUI turns the result into bindings.
"""

from __future__ import annotations

import contextlib
import unicodedata
from dataclasses import dataclass, field

from replydeck.config.errors import describe
from replydeck.config.table import Table
from replydeck.inbox.model import Kind, Status, Urgency

#: Scopes: keys in one scope must not clash; the same key may mean different things in
#: the inbox and in the composer.
INBOX, COMPOSER = "inbox", "composer"


@dataclass(frozen=True)
class Action:
    name: str
    keys: tuple[str, ...]
    description: str
    group: str
    scope: str = INBOX


#: Every rebindable action, its default keys and its help line, in help order.
ACTIONS: tuple[Action, ...] = (
    Action("move_down", ("j", "down"), "Next conversation", "Move"),
    Action("move_up", ("k", "up"), "Previous conversation", "Move"),
    Action("top", ("g", "home"), "First conversation", "Move"),
    Action("bottom", ("G", "end"), "Last conversation", "Move"),
    Action("page_down", ("pagedown", "space"), "Page down", "Move"),
    Action("page_up", ("pageup",), "Page up", "Move"),
    Action("open", ("enter",), "Open the conversation", "Move"),
    Action("back", ("escape",), "Back / clear selection and search", "Move"),
    Action("reply", ("r",), "Reply (public where the platform allows)", "Act"),
    Action("private_reply", ("R",), "Reply privately (DM)", "Act"),
    Action("done_next", ("e",), "Mark done and go to the next", "Act"),
    Action("snooze", ("s",), "Snooze until a time or the customer's next message", "Act"),
    Action("assign", ("a",), "Assign to someone", "Act"),
    Action("tag", ("t",), "Add a tag (-tag removes it)", "Act"),
    Action("toggle_unread", ("u",), "Mark unread / read", "Act"),
    Action("select", ("x",), "Select (e, s, a, t then act on all selected)", "Act"),
    Action("reopen", ("O",), "Reopen (set back to open)", "Act"),
    Action("copy_link", ("y",), "Copy the message link (OSC 52)", "Act"),
    Action("search", ("/",), "Search all messages", "Find"),
    Action("next_match", ("n",), "Next search match", "Find"),
    Action("prev_match", ("N",), "Previous search match", "Find"),
    Action("filter", ("f",), "Filter by platform, kind, status, tag, assignee, urgency", "Find"),
    Action("outbox", ("o",), "Outbox: see, retry or cancel replies", "Show"),
    Action("reports", ("M",), "Reports: response times, SLA attainment", "Show"),
    Action("help", ("?", "f1"), "This help", "Show"),
    Action("quit", ("q", "ctrl+q"), "Quit (asks first if something is unsent)", "Show"),
    Action("compose_send", ("ctrl+s",), "Send the reply", "Composer", COMPOSER),
    Action("compose_private", ("ctrl+t",), "Switch public / private", "Composer", COMPOSER),
    Action("compose_saved", ("ctrl+g",), "Insert a saved reply", "Composer", COMPOSER),
    Action("compose_editor", ("ctrl+e",), "Edit in $VISUAL / $EDITOR", "Composer", COMPOSER),
    Action("compose_tag", ("ctrl+y",), "Use a message tag the platform allows outside its "
           "reply window (Meta HUMAN_AGENT)", "Composer", COMPOSER),
    Action("compose_leave", ("escape",), "Leave (the draft is kept)", "Composer", COMPOSER),
)
ACTION_NAMES = tuple(a.name for a in ACTIONS)
_BY_NAME = {a.name: a for a in ACTIONS}

_MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")
_NAMED_KEYS = frozenset(
    "escape enter tab space backspace delete insert home end pageup pagedown up down left "
    "right".split()
) | {f"f{i}" for i in range(1, 25)}

#: "ansi" (and "textual-ansi", its name in older Textual) is the terminal's own palette.
THEMES_ALIASES = {"ansi": "ansi-dark", "textual-ansi": "ansi-dark"}


@dataclass(frozen=True)
class ViewDef:
    """A saved view: a name on a number key and the filter it applies."""

    name: str
    key: int
    statuses: tuple[Status, ...] = (Status.OPEN, Status.PENDING)
    platforms: tuple[str, ...] = ()
    kinds: tuple[Kind, ...] = ()
    tags: tuple[str, ...] = ()
    #: ``"me"`` means the configured agent; ``""`` means unassigned; None any.
    assignee: str | None = None
    min_urgency: Urgency | None = None
    needs_reply: bool = False
    breached: bool = False
    unread: bool = False


DEFAULT_VIEWS: tuple[ViewDef, ...] = (
    ViewDef("Needs reply", 1, needs_reply=True),
    ViewDef("Breaching", 2, breached=True),
    ViewDef("Mine", 3, assignee="me"),
    ViewDef("Urgent", 4, min_urgency=Urgency.URGENT),
    ViewDef("All", 5, statuses=tuple(Status)),
)


@dataclass(frozen=True)
class UiConfig:
    bell: bool = True
    theme: str | None = None
    time_format: str = "%H:%M"


@dataclass
class KeysConfig:
    #: action -> keys (defaults merged with the user's ``[keys]``).
    bindings: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {a.name: a.keys for a in ACTIONS})
    views: tuple[ViewDef, ...] = DEFAULT_VIEWS
    ui: UiConfig = field(default_factory=UiConfig)

    def keys_for(self, action: str) -> tuple[str, ...]:
        return self.bindings.get(action, _BY_NAME[action].keys)


def key_problem(key: str) -> str | None:
    """Why ``key`` is not a key name Textual understands, or None when it is."""
    if not key:
        return "an empty key name"
    if key != key.strip() or (len(key) > 1 and " " in key):
        return "spaces around or inside a key name (write \"space\" for the space bar)"
    if len(key) == 1:
        if unicodedata.category(key)[0] in ("C", "Z"):
            return "a control or blank character"
        return None
    *mods, base = key.split("+")
    for mod in mods:
        if mod not in _MODIFIERS:
            return f"unknown modifier {mod!r} (known: {', '.join(_MODIFIERS)})"
    if len(mods) != len(set(mods)):
        return "a modifier given twice"
    if len(base) == 1:
        return None if unicodedata.category(base)[0] not in ("C", "Z") else \
            "a control or blank character"
    if base in _NAMED_KEYS:
        return None
    try:
        # Textual names punctuation by its Unicode name: "question_mark", "full_stop".
        unicodedata.lookup(base.replace("_", " "))
    except KeyError:
        return f"unknown key name {base!r}"
    return None


def _key_list(t: Table, action: str) -> tuple[str, ...]:
    value = t.raw(action)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise t.error(action, "expected a key (\"r\", \"ctrl+s\") or a non-empty array of "
                      f"keys, found {describe(value)}")
    for item in items:
        problem = key_problem(item)
        if problem:
            raise t.error(action, f"expected a key name such as \"r\", \"ctrl+s\" or "
                          f"\"pagedown\", found {describe(item)}: {problem}")
    return tuple(dict.fromkeys(items))


def _canonical(key: str) -> str:
    """One spelling per key, so "?" and "question_mark" are found to clash."""
    *mods, base = key.split("+") if len(key) > 1 else [key]
    if len(base) == 1 and not base.isalnum():
        with contextlib.suppress(ValueError):
            base = unicodedata.name(base).lower().replace(" ", "_")
    if base == " ":
        base = "space"
    return "+".join([*sorted(mods), base])


def _parse_keys(t: Table) -> dict[str, tuple[str, ...]]:
    bindings = {a.name: a.keys for a in ACTIONS}
    user: set[str] = set()
    for action in t.data:
        if action not in _BY_NAME:
            raise t.error(action, f"unknown action (known actions: {', '.join(ACTION_NAMES)})")
        bindings[action] = _key_list(t, action)
        user.add(action)
    # A key may do one thing per scope. Report the clash on the user's own entry.
    for scope in (INBOX, COMPOSER):
        owner: dict[str, str] = {}
        ordered = sorted((a for a in ACTIONS if a.scope == scope),
                         key=lambda a: a.name in user)
        for action in ordered:
            for key in bindings[action.name]:
                canon = _canonical(key)
                other = owner.get(canon)
                if other is not None and other != action.name:
                    culprit = action.name if action.name in user else other
                    partner = other if culprit == action.name else action.name
                    raise t.error(culprit, f"key {key!r} is also bound to {partner!r}; "
                                  "bind one of them to another key")
                owner[canon] = action.name
    return bindings


def _enum_list(t: Table, name: str, enum: type, default: tuple) -> tuple:
    if not t.has(name):
        t.raw(name)
        return default
    values = t.str_list(name)
    choices = [str(e) for e in enum]
    out = []
    for value in values:
        if value not in choices:
            raise t.error(name, f"expected values from {', '.join(choices)}, "
                          f"found {describe(value)}")
        out.append(enum(value))
    return tuple(out)


def _parse_view(t: Table) -> ViewDef:
    name = t.str("name")
    if not name.strip() or any(unicodedata.category(c)[0] == "C" for c in name):
        raise t.error("name", f"expected a visible name, found {describe(name)}")
    key = t.int("key", min=1, max=9)
    statuses = _enum_list(t, "statuses", Status, (Status.OPEN, Status.PENDING))
    kinds = _enum_list(t, "kinds", Kind, ())
    urgency = t.str("min_urgency", None, choices=tuple(str(u) for u in Urgency))
    view = ViewDef(
        name=name, key=key, statuses=statuses,
        platforms=tuple(p.lower() for p in t.str_list("platforms", [])), kinds=kinds,
        tags=tuple(x.lower() for x in t.str_list("tags", [])),
        assignee=t.str("assignee", None),
        min_urgency=Urgency(urgency) if urgency else None,
        needs_reply=t.bool("needs_reply", False), breached=t.bool("breached", False),
        unread=t.bool("unread", False),
    )
    t.reject_unknown()
    return view


def _parse_views(root: Table) -> tuple[ViewDef, ...]:
    by_key = {v.key: v for v in DEFAULT_VIEWS}
    seen: dict[int, str] = {}
    for t in root.tables("views"):
        view = _parse_view(t)
        if view.key in seen:
            raise t.error("key", f"key {view.key} is already used by the view {seen[view.key]!r}")
        seen[view.key] = view.name
        by_key[view.key] = view
    return tuple(by_key[k] for k in sorted(by_key))


def _parse_ui(t: Table) -> UiConfig:
    bell = t.bool("bell", True)
    theme = t.str("theme", None)
    if theme is not None:
        from textual.theme import BUILTIN_THEMES

        theme = THEMES_ALIASES.get(theme, theme)
        if theme not in BUILTIN_THEMES:
            raise t.error("theme", f"expected \"ansi\" or a Textual theme "
                          f"({', '.join(sorted(BUILTIN_THEMES))}), found {describe(theme)}")
    time_format = t.str("time_format", "%H:%M")
    if "%" not in time_format:
        raise t.error("time_format", "expected a strftime format such as \"%H:%M\", "
                      f"found {describe(time_format)}")
    t.reject_unknown()
    return UiConfig(bell=bell, theme=theme, time_format=time_format)


def parse(root: Table) -> KeysConfig:
    return KeysConfig(bindings=_parse_keys(root.table("keys")), views=_parse_views(root),
                      ui=_parse_ui(root.table("ui")))
