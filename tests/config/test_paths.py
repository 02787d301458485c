"""Config and data locations: explicit argument > environment > XDG default."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from replydeck.config import paths


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.delenv("REPLYDECK_CONFIG", raising=False)
    monkeypatch.delenv("REPLYDECK_DATA_DIR", raising=False)
    return tmp_path


@pytest.mark.skipif(sys.platform != "linux", reason="XDG variables apply on Linux")
def test_defaults_follow_xdg(xdg: Path) -> None:
    assert paths.config_path(None) == xdg / "xdg-config" / "replydeck" / "config.toml"
    assert paths.data_dir_path(None) == xdg / "xdg-data" / "replydeck"


def test_environment_overrides_default(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLYDECK_CONFIG", str(xdg / "env.toml"))
    monkeypatch.setenv("REPLYDECK_DATA_DIR", str(xdg / "envdata"))
    assert paths.config_path(None) == xdg / "env.toml"
    assert paths.data_dir_path(None) == xdg / "envdata"


def test_explicit_overrides_environment(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLYDECK_CONFIG", str(xdg / "env.toml"))
    monkeypatch.setenv("REPLYDECK_DATA_DIR", str(xdg / "envdata"))
    assert paths.config_path(str(xdg / "cli.toml")) == xdg / "cli.toml"
    assert paths.data_dir(str(xdg / "clidata")) == xdg / "clidata"


def test_empty_environment_value_means_unset(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLYDECK_CONFIG", "")
    assert paths.config_path(None) == paths.default_config_path()


def test_home_is_expanded(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(xdg / "home"))
    assert paths.config_path("~/rd.toml") == xdg / "home" / "rd.toml"
    monkeypatch.setenv("REPLYDECK_DATA_DIR", "~/rd")
    assert paths.data_dir_path(None) == xdg / "home" / "rd"


def test_data_dir_is_created_private(xdg: Path) -> None:
    made = paths.data_dir(None)
    assert made == xdg / "xdg-data" / "replydeck" or sys.platform != "linux"
    assert made.is_dir()
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert paths.data_dir(None) == made  # idempotent


def test_existing_data_dir_keeps_its_mode(xdg: Path) -> None:
    shared = xdg / "team"
    shared.mkdir(mode=0o770)
    shared.chmod(0o770)
    assert paths.data_dir(str(shared)) == shared
    assert stat.S_IMODE(shared.stat().st_mode) == 0o770
