"""The reply composer: editor, the platform's length rule, and a review line.

The review line (account, platform, public/private, length) is always under the editor,
so what ctrl+s will do is on screen before it is pressed. Drafts go up as messages,
debounced, and the screen stores them; nothing here writes to the store.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.document._document import EditResult
from textual.document._edit import Edit
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Static, TextArea

from replydeck.inbox.model import Conversation
from replydeck.inbox.sanitize import is_inert, sanitize_text
from replydeck.sources.base import Limits
from replydeck.tui import fmt
from replydeck.tui.keymap import composer_bindings

if TYPE_CHECKING:
    from replydeck.inbox.textlen import LengthCheck

DRAFT_DEBOUNCE_S = 0.5


def reply_modes(conv: Conversation, limits: Limits) -> tuple[bool, bool]:
    """(public allowed, private allowed) for a reply in this conversation."""
    if conv.kind.is_private:
        return False, True
    return limits.supports_public, limits.supports_private


class SafeTextArea(TextArea):
    """A TextArea that never holds terminal controls, however text gets in (typed, pasted,
    inserted): a pasted hostile message must not reach the terminal through the editor."""

    def edit(self, edit: Edit) -> EditResult:
        if edit.text and not is_inert(edit.text):
            edit.text = sanitize_text(edit.text)
        return super().edit(edit)

    def load_text(self, text: str) -> None:
        super().load_text(sanitize_text(text))


class Composer(Vertical):
    BINDINGS = composer_bindings()

    class Send(Message):
        def __init__(self, conv_id: int, body: str, private: bool,
                     saved_reply: str | None, options: dict[str, Any] | None = None) -> None:
            super().__init__()
            self.conv_id, self.body, self.private = conv_id, body, private
            self.saved_reply = saved_reply
            #: Platform options the person chose (e.g. {"tag": "HUMAN_AGENT"}).
            self.options = options or {}

    class DraftChanged(Message):
        def __init__(self, conv_id: int, body: str, private: bool) -> None:
            super().__init__()
            self.conv_id, self.body, self.private = conv_id, body, private

    class Leave(Message):
        pass

    class WantSavedReply(Message):
        pass

    def __init__(self, limits_for: Callable[[Conversation], Limits], *,
                 window_for: Callable[[Conversation, bool, str | None], Any] | None = None,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.limits_for = limits_for
        #: The platform's reply window (Meta's 24 hours), or None where there is none.
        self.window_for = window_for
        self.conversation: Conversation | None = None
        self.private = False
        self.saved_reply: str | None = None
        #: A message tag chosen for a reply outside the window (Meta HUMAN_AGENT).
        self.tag: str | None = None
        self._window: Any = None
        self._window_key: tuple[int, bool, str | None] | None = None
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(), id="compose-title")
        yield SafeTextArea(id="compose-text", soft_wrap=True, tab_behavior="focus")
        yield Static(Text(), id="compose-review")

    @property
    def editor(self) -> TextArea:
        return self.query_one("#compose-text", TextArea)

    @property
    def body(self) -> str:
        return self.editor.text

    @property
    def active(self) -> bool:
        return self.conversation is not None and self.display

    def start(self, conv: Conversation, *, private: bool, body: str = "") -> None:
        self.conversation = conv
        public_ok, private_ok = reply_modes(conv, self.limits_for(conv))
        self.private = (private and private_ok) or not public_ok
        self.saved_reply = None
        self.tag = None
        self.editor.load_text(body)
        self.editor.move_cursor(self.editor.document.end)
        self._update()
        self.editor.focus()

    def stop(self) -> None:
        self._flush()
        self.conversation = None

    def check(self) -> LengthCheck | None:
        if self.conversation is None:
            return None
        from replydeck.inbox import textlen  # the regex tables load on the first reply

        return textlen.check_reply(self.body, self.limits_for(self.conversation), self.private)

    def _key_for(self, action: str) -> str:
        """The key bound to ``action`` now ([keys] may rebind it)."""
        keys = getattr(self.app, "keys", None)
        bound = keys.keys_for(action) if keys is not None else ()
        return bound[0] if bound else action

    def window(self, *, fresh: bool = False) -> Any:
        """Whether the platform lets this reply go out now (open, reason, allowed_tags).

        Asked once per conversation, mode and tag, not on every keystroke (it reads the
        thread); ``fresh`` asks again, as sending does, since the window closes with time.
        """
        if self.conversation is None or self.window_for is None:
            return None
        key = (self.conversation.id, self.private, self.tag)
        if fresh or self._window_key != key:
            self._window = self.window_for(self.conversation, self.private, self.tag)
            self._window_key = key
        return self._window

    def _update(self) -> None:
        conv = self.conversation
        if conv is None:
            return
        title = Text("Reply to ", "bold")
        title.append(conv.author.name or conv.author.handle or "customer", "bold")
        title.append(f" on {fmt.platform_name(conv.platform)}", "bold")
        self.query_one("#compose-title", Static).update(title)
        check = self.check()
        assert check is not None
        public_ok, private_ok = reply_modes(conv, self.limits_for(conv))
        review = Text()
        review.append(conv.source, "bold")
        review.append(f" · {fmt.platform_name(conv.platform)} · ")
        review.append("private" if self.private else "public",
                      "bold magenta" if self.private else "bold cyan")
        if public_ok and private_ok:
            review.append(" (ctrl+t switches)", "dim")
        review.append(" · ")
        review.append(check.describe(), "green" if check.ok else "bold red")
        if self.saved_reply:
            review.append(f" · saved reply: {self.saved_reply}", "dim")
        if not check.ok:
            review.append("  too long: ctrl+s refuses", "bold red")
        window = self.window()
        if self.tag:
            review.append(f" · tag {self.tag}", "bold yellow")
        if window is not None and not window.open:
            review.append("\n")
            review.append(window.reason, "bold red")
            if window.allowed_tags and not self.tag:
                review.append(f"  ({'/'.join(window.allowed_tags)} allowed: "
                              f"{self._key_for('compose_tag')})", "yellow")
        self.query_one("#compose-review", Static).update(review)

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        self._update()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DRAFT_DEBOUNCE_S, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if self.conversation is not None:
            self.post_message(self.DraftChanged(self.conversation.id, self.body, self.private))

    def insert_text(self, text: str, saved_reply: str | None = None) -> None:
        if saved_reply:
            self.saved_reply = saved_reply
        self.editor.replace(text, self.editor.selection.start, self.editor.selection.end)
        self.editor.focus()

    # -- actions (bound by id; rebindable) ---------------------------------------------
    def action_compose_send(self) -> None:
        conv = self.conversation
        check = self.check()
        if conv is None or check is None:
            return
        if not self.body.strip():
            self.notify("The reply is empty.", severity="warning", markup=False)
            return
        if not check.ok:
            self.notify(f"Not sent: too long for {fmt.platform_name(conv.platform)} "
                        f"({check.describe()}).", severity="error", markup=False)
            return
        window = self.window(fresh=True)
        if window is not None and not window.open:
            self.notify(f"Not sent: {window.reason}", severity="error", markup=False)
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        options = {"tag": self.tag} if self.tag else {}
        self.post_message(self.Send(conv.id, self.body, self.private, self.saved_reply,
                                    options))

    def action_compose_tag(self) -> None:
        """Cycle through the message tags the platform allows here (then none)."""
        if self.conversation is None:
            return
        self.tag = None
        window = self.window()
        tags = list(window.allowed_tags) if window is not None else []
        if not tags:
            self.notify("No message tag applies to this reply.", severity="warning",
                        markup=False)
        else:
            self.tag = tags[0]
        self._update()

    def action_compose_private(self) -> None:
        conv = self.conversation
        if conv is None:
            return
        public_ok, private_ok = reply_modes(conv, self.limits_for(conv))
        if not (public_ok and private_ok):
            only = "private" if private_ok else "public"
            self.notify(f"{fmt.platform_name(conv.platform)} allows only {only} replies here.",
                        severity="warning", markup=False)
            return
        self.private = not self.private
        self._update()
        self._flush()

    def action_compose_saved(self) -> None:
        self.post_message(self.WantSavedReply())

    def action_compose_leave(self) -> None:
        self._flush()
        self.post_message(self.Leave())

    def action_compose_editor(self) -> None:
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        fd, name = tempfile.mkstemp(prefix="replydeck-", suffix=".txt")
        path = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.body)
            try:
                with self.app.suspend():
                    subprocess.call([*shlex.split(editor), str(path)])
            except Exception as exc:  # SuspendNotSupported, editor missing
                self.notify(f"Cannot open the editor {editor!r}: {exc}", severity="error",
                            markup=False)
                return
            text = path.read_text(encoding="utf-8", errors="replace")
            self.editor.load_text(text.rstrip("\n"))
            self._update()
            self._flush()
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
        self.editor.focus()
