from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import pytest

import replydeck.sources

PROBE_TYPES = {
    "probe": "tests.config.probe_source:ProbeSource",
    "slowprobe": "tests.config.probe_source:SlowPollProbe",
    "ghost": "tests.config.no_such_module:GhostSource",
}


class MemoryKeyring(keyring.backend.KeyringBackend):
    """An in-memory keyring, so tests never touch the user's real one."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.entries.pop((service, username), None)


@pytest.fixture
def probe_types(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Only test-only source types, so messages listing the known types stay fixed."""
    types = dict(PROBE_TYPES)
    monkeypatch.setattr(replydeck.sources, "SOURCE_TYPES", types)
    return types


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def write_config(tmp_path: Path):
    def write(text: str | bytes, name: str = "config.toml") -> Path:
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    return write
