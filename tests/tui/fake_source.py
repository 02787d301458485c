"""A test-only source: per-platform limits like the demo's, no network, records sends."""

from __future__ import annotations

from typing import Any

from replydeck.inbox.model import Reply
from replydeck.sources.base import BaseSource, Batch, Cursor, Limits, Receipt

PLATFORM_LIMITS = {
    "x": Limits(max_length=280, counting="x_weighted", private_max_length=10_000,
                private_counting="chars"),
    "bluesky": Limits(max_length=300, counting="graphemes", private_max_length=1000,
                      private_counting="graphemes"),
    "mastodon": Limits(max_length=500, counting="chars"),
    "email": Limits(max_length=100_000, supports_public=False),
    "instagram": Limits(max_length=2200, counting="chars", private_max_length=1000,
                        private_counting="utf8_bytes"),
    "facebook": Limits(max_length=8000, counting="chars", private_max_length=2000),
}


class TuiFakeSource(BaseSource):
    type_name = "tuifake"
    platform = "demo"
    idempotent_send = True

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.sent: list[Reply] = []

    @classmethod
    def from_config(cls, table: Any) -> TuiFakeSource:
        return cls(table.name)

    def limits_for(self, platform: str) -> Limits:
        return PLATFORM_LIMITS.get(platform, Limits())

    async def fetch(self, cursor: Cursor | None) -> Batch:
        return Batch(items=[], cursor=cursor)

    async def send(self, reply: Reply) -> Receipt:
        self.sent.append(reply)
        return Receipt(remote_id=f"sent-{reply.id}")


class HangingSource(TuiFakeSource):
    """A platform that never answers: fetch and send wait forever."""

    type_name = "tuihang"

    async def fetch(self, cursor: Cursor | None) -> Batch:
        import asyncio

        await asyncio.sleep(3600)
        return Batch(items=[], cursor=cursor)
