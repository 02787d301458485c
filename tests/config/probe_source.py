"""A test-only source type, so the loader's tests do not wait for the real adapters.

It reads its table the way real adapters do (Table getters, secrets parsed but not
resolved), which is all the loader needs to validate.
"""

from __future__ import annotations

from typing import Any

from replydeck.inbox.model import Reply
from replydeck.sources.base import BaseSource, Batch, Cursor, PermanentError, Receipt


class ProbeSource(BaseSource):
    type_name = "probe"
    platform = "probe"

    def __init__(self, name: str, token: Any, feed: Any, level: int) -> None:
        super().__init__(name)
        self.token = token
        self.feed = feed
        self.level = level

    @classmethod
    def from_config(cls, table: Any) -> ProbeSource:
        return cls(
            table.name,
            token=table.secret("token", None),
            feed=table.file_path("feed", None),
            level=table.int("level", 1, min=1, max=5),
        )

    async def fetch(self, cursor: Cursor | None) -> Batch:
        return Batch([], cursor)

    async def send(self, reply: Reply) -> Receipt:
        raise PermanentError("the probe source cannot send")


class SlowPollProbe(ProbeSource):
    """A type whose adapter asks for a longer default interval."""

    default_poll_interval = 300


class DemoStandIn(ProbeSource):
    """Reads the demo source's documented keys (seed, rate) while the real one is absent."""

    @classmethod
    def from_config(cls, table: Any) -> ProbeSource:
        source = cls(table.name, token=None, feed=None, level=1)
        source.seed = table.int("seed", 0)
        source.rate = table.number("rate", 6, min=0.01)
        return source
