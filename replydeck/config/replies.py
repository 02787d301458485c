"""``[[replies]]`` and ``replies_dir``: the saved reply library.

In the config file::

    [[replies]]
    name = "refund"
    body = "Hi {customer.name|there}, sorry about that. ..."
    tags = ["billing"]
    triggers = ["refund", "money back"]
    language = "en"
    [replies.variants]
    x = "Sorry {customer.handle}! DM us your order number and we'll refund it."

or one Markdown file per reply in ``replies_dir`` (relative to the config file's folder),
with TOML front matter between ``+++`` lines and the body after it::

    +++
    name = "refund"          # default: the file name without .md
    triggers = ["refund"]
    +++
    Hi {customer.name|there}, ...

Names are unique across both. Templates are checked here: an unknown variable or a stray
brace is a ConfigError naming ``replies[3].body`` or the file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replydeck.config.errors import ConfigError, describe
from replydeck.config.table import Table
from replydeck.inbox.replies import SavedReply, TemplateError, parse_template

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_FENCE = "+++"


@dataclass
class RepliesConfig:
    replies: list[SavedReply] = field(default_factory=list)

    def get(self, name: str) -> SavedReply | None:
        for reply in self.replies:
            if reply.name == name:
                return reply
        return None

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.replies]

    def __iter__(self) -> Iterator[SavedReply]:
        return iter(self.replies)

    def __len__(self) -> int:
        return len(self.replies)


def _template(table: Table, key: str, text: str, reply_name: str) -> None:
    try:
        parse_template(text)
    except TemplateError as exc:
        raise table.error(key, f"in saved reply {reply_name!r}: {exc}") from None


def _reply_from_table(table: Table, *, default_name: str | None, origin: str,
                      body: str | None = None) -> SavedReply:
    name = table.str("name") if default_name is None else table.str("name", default_name)
    if not name.strip():
        raise table.error("name", "expected a non-empty string, found an empty string")
    if body is None:
        body = table.str("body")
    if not body.strip():
        raise table.error("body" if table.has("body") else None,
                          f"saved reply {name!r} has an empty body")
    _template(table, "body", body, name)
    variants_table = table.table("variants")
    variants: dict[str, str] = {}
    for platform in list(variants_table.data):
        text = variants_table.str(platform)
        _template(variants_table, platform, text, name)
        variants[platform] = text
    tags = tuple(table.str_list("tags", []))
    triggers = tuple(t for t in table.str_list("triggers", []) if t.strip())
    language = table.str("language", None)
    table.reject_unknown()
    return SavedReply(name=name, body=body, variants=variants, tags=tags, triggers=triggers,
                      language=language, origin=origin)


def split_front_matter(text: str, file: str) -> tuple[dict[str, Any], str]:
    """``(front matter, body)`` of a Markdown reply file."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != _FENCE:
        raise ConfigError(file, None, "expected TOML front matter starting with a '+++' "
                          "line at the top of the file")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == _FENCE)
    except StopIteration:
        raise ConfigError(file, None, "front matter is not closed by a '+++' line") from None
    try:
        meta = tomllib.loads("\n".join(lines[1:end]))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, None, f"invalid TOML in the front matter: {exc}") from None
    body = "\n".join(lines[end + 1:]).strip("\n")
    return meta, body


def _read_dir(folder: Path) -> list[SavedReply]:
    out = []
    for path in sorted(folder.glob("*.md")):
        file = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(file, None, "not valid UTF-8 text") from None
        except OSError as exc:
            raise ConfigError(file, None, f"cannot be read ({exc.strerror or exc})") from None
        meta, body = split_front_matter(text, file)
        table = Table(meta, "", file)
        if table.has("body"):
            raise table.error("body", "the body is the Markdown after the front matter, "
                              "not a front matter key")
        out.append(_reply_from_table(table, default_name=path.stem, origin=file, body=body))
    return out


def parse(root: Table, config_dir: Path) -> RepliesConfig:
    replies: list[SavedReply] = []
    seen: dict[str, str] = {}

    def add(reply: SavedReply, table_error: ConfigError) -> None:
        if reply.name in seen:
            raise table_error
        seen[reply.name] = reply.origin
        replies.append(reply)

    for table in root.tables("replies"):
        reply = _reply_from_table(table, default_name=None, origin=table.path)
        add(reply, table.error("name", f"duplicate saved reply name {reply.name!r} "
                               f"(also in {seen.get(reply.name)})"))

    folder_name = root.str("replies_dir", None)
    if folder_name is not None:
        if not folder_name.strip():
            raise root.error("replies_dir", "expected a folder path, found an empty string")
        folder = Path(os.path.expanduser(folder_name))
        if not folder.is_absolute():
            folder = Path(config_dir) / folder
        if not folder.is_dir():
            raise root.error("replies_dir", f"expected a folder of Markdown files, found "
                             f"{describe(folder_name)} ({folder} is not a folder)")
        for reply in _read_dir(folder):
            add(reply, ConfigError(reply.origin, "name", f"duplicate saved reply name "
                                   f"{reply.name!r} (also in {seen.get(reply.name)})"))
    return RepliesConfig(replies)
