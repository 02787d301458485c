"""The example config `replydeck init` writes: written safely, loads cleanly, documents all."""

from __future__ import annotations

import importlib.util
import os
import re
import stat
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

import replydeck.sources
from replydeck.config.errors import ConfigError
from replydeck.config.loader import example_text, load_config, write_example

#: The documented keys of every source type (issue 2, 4 and 5), beside type/name/poll_interval.
DOCUMENTED = {
    "demo": {"seed", "rate"},
    "jsonl": {"path", "reply_path"},
    "command": {"command", "reply_command", "timeout", "reply_dedupes"},
    "mastodon": {"instance", "token"},
    "bluesky": {"service", "handle", "app_password"},
    "matrix": {"homeserver", "user_id", "token", "rooms", "sync_timeout", "timeout",
               "initial_history", "accept_invites"},
    "email": {"imap_host", "imap_port", "smtp_host", "smtp_port", "username", "password",
              "address", "security", "mailbox", "sent_mailbox", "save_sent",
              "initial_days", "batch_size", "max_message_bytes", "timeout"},
    "x": {"token", "refresh_token", "client_id", "user_id", "api_base", "client_secret",
          "dms", "timeout"},
    "facebook": {"page_id", "token", "graph_version", "api_base", "webhooks", "messages",
                 "comments", "posts_limit", "timeout"},
    "line": {"token", "channel_secret"},
    "instagram": {"ig_user_id", "page_id", "token", "graph_version", "api_base", "webhooks",
                  "messages", "comments", "mentions", "media_limit", "timeout"},
    "telegram": {"token", "api_base", "long_poll", "timeout"},
}
SECRET_KEYS = {"token", "refresh_token", "app_password", "password"}


def _commented_blocks() -> list[str]:
    """Every commented-out block, uncommented (blocks end at a blank line)."""
    blocks, current = [], None
    for line in example_text().splitlines():
        if re.match(r"^# \[\[?[\w.]+\]\]?$", line):
            current = []
            blocks.append(current)
        if current is not None:
            if not line.startswith("# "):
                current = None
                continue
            current.append(line[2:])
    return ["\n".join(b) + "\n" for b in blocks]


def _source_blocks() -> dict[str, dict]:
    active = tomllib.loads(example_text())["sources"]
    out = {s["type"]: s for s in active}
    for block in _commented_blocks():
        data = tomllib.loads(block)
        for table in data.get("sources", []):
            assert table["type"] not in out, f"two examples for {table['type']}"
            out[table["type"]] = table
    return out


def test_write_creates_a_private_file_and_its_folder(tmp_path: Path) -> None:
    target = tmp_path / "xdg" / "replydeck" / "config.toml"
    assert write_example(target) == target
    assert target.read_text(encoding="utf-8") == example_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700


def test_write_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    target.write_text("# my real config\n")
    with pytest.raises(ConfigError) as caught:
        write_example(target)
    assert str(caught.value) == (f"{target}: already exists; not overwriting it "
                                 "(use `replydeck init --force` to replace it)")
    assert target.read_text() == "# my real config\n"


def test_force_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    target.write_text("# old\n")
    target.chmod(0o644)
    write_example(target, force=True)
    assert target.read_text(encoding="utf-8") == example_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["config.toml"]


def test_write_into_an_unwritable_place_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as caught:
        write_example(blocker / "config.toml")
    assert str(caught.value).startswith(f"{blocker / 'config.toml'}: cannot be written (")


def test_example_loads_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Until the real demo source lands, a stand-in reads its documented keys strictly.
    if importlib.util.find_spec("replydeck.sources.demo") is None:
        monkeypatch.setitem(replydeck.sources.SOURCE_TYPES, "demo",
                            "tests.config.probe_source:DemoStandIn")
    monkeypatch.setenv("USER", "aiko")
    config = load_config(write_example(tmp_path / "config.toml"), data_dir=tmp_path / "d")
    assert [(t.type, t.name, t.poll_interval) for t in config.sources] == [("demo", "demo", 5.0)]
    assert config.agent_name == "aiko"
    assert config.database == tmp_path / "d" / "replydeck.db"


def test_example_loads_with_the_real_demo(tmp_path: Path) -> None:
    pytest.importorskip("replydeck.sources.demo")
    config = load_config(write_example(tmp_path / "config.toml"), data_dir=tmp_path)
    assert config.source_table("demo").source.name == "demo"


def test_only_the_demo_is_active() -> None:
    active = tomllib.loads(example_text())
    assert [s["type"] for s in active["sources"]] == ["demo"]
    assert set(active) == {"agent", "storage", "sources"}


def test_every_source_type_is_documented_with_every_key() -> None:
    blocks = _source_blocks()
    assert set(blocks) == set(DOCUMENTED)
    # Every registered type has an example, except ones whose keys are not defined yet.
    assert set(replydeck.sources.SOURCE_TYPES) == set(blocks)
    for type_name, table in blocks.items():
        assert set(table) - {"type", "name", "poll_interval"} == DOCUMENTED[type_name], type_name
        for key in SECRET_KEYS & set(table):
            assert re.match(r"^(env|cmd|keyring|file):.+", table[key]), (type_name, key)
    assert blocks["bluesky"]["service"] == "https://bsky.social"


def test_every_option_is_named_in_the_text() -> None:
    text = example_text()
    for key in ("[agent]", "name =", "brand =", "[storage]", "database =", "poll_interval",
                "[sla]", "[business_hours]", "[[rules]]", "[[replies]]", "replies_dir",
                "[keys]", "env:", "cmd:", "keyring:", "file:", "README"):
        assert key in text, key


def test_commented_source_examples_load_where_the_adapter_exists(tmp_path: Path) -> None:
    blocks = _source_blocks()
    present = [t for t in blocks if t != "demo" and importlib.util.find_spec(
        replydeck.sources.SOURCE_TYPES[t].partition(":")[0]) is not None]
    if not present:
        pytest.skip("no adapter besides demo is in this build yet")
    for type_name in present:
        block = next(b for b in _commented_blocks() if f'type = "{type_name}"' in b)
        path = tmp_path / f"{type_name}.toml"
        path.write_text(block, encoding="utf-8")
        config = load_config(path, data_dir=tmp_path)
        assert config.sources[0].type == type_name


#: Which parser reads each commented section example.
SECTION_PARSERS = {"sla": "sla", "sla.policies": "sla", "business_hours": "sla",
                   "notifications": "sla", "rules": "rules", "replies": "replies",
                   "keys": "keys"}


def test_commented_section_examples_load_where_the_parser_exists(tmp_path: Path) -> None:
    by_parser: dict[str, str] = {}
    for block in _commented_blocks():
        header = block.splitlines()[0].strip("[]")
        if header == "sources" or header.startswith("webhooks"):
            continue  # sources: above; webhooks: test_webhooks_example_parses
        tomllib.loads(block)  # at least valid TOML
        parser = SECTION_PARSERS[header]
        by_parser[parser] = by_parser.get(parser, "") + block
    assert set(by_parser) == {"sla", "rules", "replies", "keys"}
    present = [m for m in by_parser if importlib.util.find_spec(f"replydeck.config.{m}")]
    if not present:
        pytest.skip("no section parser is in this build yet")
    for parser in present:
        path = tmp_path / f"{parser}.toml"
        path.write_text(by_parser[parser], encoding="utf-8")
        load_config(path, data_dir=tmp_path)


def test_webhooks_example_parses(tmp_path: Path) -> None:
    from replydeck.webhooks import parse_config

    text = "".join(b + "\n" for b in _commented_blocks()
                   if b.splitlines()[0].strip("[]").startswith("webhooks"))
    path = tmp_path / "webhooks.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path, data_dir=tmp_path)
    parsed = parse_config(config.root)
    assert (parsed.host, parsed.port, parsed.max_body) == ("127.0.0.1", 8787, 1_000_000)
    assert parsed.app_secret.reference == "env:META_APP_SECRET"
