"""The Ctrl+P palette: every action of the keymap, by name, with its keys."""

from __future__ import annotations

from functools import partial

from rich.text import Text
from textual.command import DiscoveryHit, Hit, Hits, Provider

from replydeck.config.keys import ACTIONS, INBOX
from replydeck.tui.keymap import display_key


class ActionsProvider(Provider):
    def _entries(self) -> list[tuple[str, str, str]]:
        keys = getattr(self.app, "keys", None)
        out = []
        for action in ACTIONS:
            if action.scope != INBOX:
                continue
            bound = keys.keys_for(action.name) if keys else action.keys
            out.append((action.name, action.description,
                        " ".join(display_key(k) for k in bound)))
        for view in getattr(keys, "views", ()):
            out.append((f"view({view.key})", f"View: {view.name}", str(view.key)))
        return out

    async def _run(self, action: str) -> None:
        runner = getattr(self.app, "run_inbox_action", None)
        if runner is not None:
            await runner(action)

    async def discover(self) -> Hits:
        for action, description, shown in self._entries():
            yield DiscoveryHit(Text(description), partial(self._run, action),
                               help=f"{action}  ({shown})")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for action, description, shown in self._entries():
            score = max(matcher.match(description), matcher.match(action))
            if score > 0:
                yield Hit(score, matcher.highlight(description), partial(self._run, action),
                          help=f"{action}  ({shown})")
