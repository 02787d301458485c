from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import replydeck.sources
from replydeck.config.loader import Config, load_config
from replydeck.inbox.store import Store
from tests.tui import data

CONFIG = """
[agent]
name = "sam"
brand = "Kestrel"

[storage]
database = "inbox.db"

[[sources]]
type = "tuifake"
name = "social"

[[replies]]
name = "refund"
body = "Hi {customer.name|there}, sorry about the double charge. {agent.name} from {brand} here: the refund is on its way."
triggers = ["refund", "charged twice", "返金"]

[[replies]]
name = "thanks"
body = "Thank you {customer.handle}! - {agent.name}"
triggers = ["thanks", "love"]

[[replies]]
name = "outage"
body = "We're on it, {customer.name}. Status: https://status.kestrel.example"
triggers = ["down", "障害", "outage"]
"""


@pytest.fixture(autouse=True)
def utc_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(autouse=True)
def fake_source_type(monkeypatch: pytest.MonkeyPatch) -> None:
    types = dict(replydeck.sources.SOURCE_TYPES)
    types["tuifake"] = "tests.tui.fake_source:TuiFakeSource"
    types["tuihang"] = "tests.tui.fake_source:HangingSource"
    monkeypatch.setattr(replydeck.sources, "SOURCE_TYPES", types)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Config]:
    def write(extra: str = "") -> Config:
        path = tmp_path / "config.toml"
        path.write_text(CONFIG + extra, encoding="utf-8")
        return load_config(path, data_dir=tmp_path / "data")
    return write


@pytest.fixture
def config(write_config: Callable[[str], Config]) -> Config:
    return write_config("")


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    s = data.make_store(config.database, data.realistic())
    yield s
    s.close()


@pytest.fixture
def make_app(config: Config, store: Store):
    from replydeck.tui.app import ReplydeckApp

    def make(cfg: Config | None = None, st: Store | None = None) -> ReplydeckApp:
        return ReplydeckApp(cfg or config, store=st or store, clock=lambda: data.NOW,
                            start_services=False)
    return make
