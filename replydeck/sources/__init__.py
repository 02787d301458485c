"""Platform adapters. Each module holds one source class speaking the Source protocol.

Modules are imported only when a config names their type, so ``replydeck list`` does not
pay for every adapter's imports.
"""

from __future__ import annotations

import importlib

from replydeck.sources.base import BaseSource

#: ``type = "..."`` in a ``[[sources]]`` table -> "module:Class".
SOURCE_TYPES: dict[str, str] = {
    "demo": "replydeck.sources.demo:DemoSource",
    "jsonl": "replydeck.sources.jsonl:JsonlSource",
    "command": "replydeck.sources.command:CommandSource",
    "mastodon": "replydeck.sources.mastodon:MastodonSource",
    "bluesky": "replydeck.sources.bluesky:BlueskySource",
    "matrix": "replydeck.sources.matrix:MatrixSource",
    "email": "replydeck.sources.email:EmailSource",
    "x": "replydeck.sources.x:XSource",
    "facebook": "replydeck.sources.facebook:FacebookSource",
    "instagram": "replydeck.sources.instagram:InstagramSource",
    "telegram": "replydeck.sources.telegram:TelegramSource",
    "line": "replydeck.sources.line:LineSource",
}


def source_class(type_name: str) -> type[BaseSource]:
    module_name, _, class_name = SOURCE_TYPES[type_name].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)
