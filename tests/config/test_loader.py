"""What a valid config turns into: defaults, paths, sources, and the section hooks."""

from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path

import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.loader import Config, load_config
from replydeck.config.secrets import Secret
from replydeck.config.sources import SourceTable
from tests.config.probe_source import ProbeSource

SECTION_MODULES = ("replydeck.config.sla", "replydeck.config.replies",
                   "replydeck.config.rules", "replydeck.config.keys")


@pytest.fixture
def no_section_parsers(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes find_spec report the module as absent.
    for name in SECTION_MODULES:
        monkeypatch.setitem(sys.modules, name, None)


def test_empty_file_gives_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   no_section_parsers: None) -> None:
    monkeypatch.setenv("USER", "kenji")
    path = tmp_path / "config.toml"
    path.write_text("")
    config = load_config(path, data_dir=tmp_path / "data")
    assert isinstance(config, Config)
    assert config.file == path
    assert config.agent_name == "kenji"
    assert config.brand == ""
    assert config.sources == []
    assert config.database == tmp_path / "data" / "replydeck.db"
    assert (config.sla, config.replies, config.rules, config.keys) == (None,) * 4
    assert not (tmp_path / "data").exists(), "loading never creates the data dir"


def test_data_dir_defaults_to_the_environment(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLYDECK_DATA_DIR", str(tmp_path / "shared"))
    path = tmp_path / "config.toml"
    path.write_text("")
    assert load_config(path).database == tmp_path / "shared" / "replydeck.db"


def test_agent_and_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "conf" / "config.toml"
    path.parent.mkdir()
    path.write_text('[agent]\nname = "Aiko 愛子"\nbrand = "Example Coffee"\n\n'
                    '[storage]\ndatabase = "db/team.db"\n')
    config = load_config(path, data_dir=tmp_path / "data")
    assert (config.agent_name, config.brand) == ("Aiko 愛子", "Example Coffee")
    # Relative to the config file, not the working directory.
    assert config.database == tmp_path / "conf" / "db" / "team.db"

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path.write_text('[storage]\ndatabase = "~/rd.db"\n')
    assert load_config(path).database == tmp_path / "home" / "rd.db"


def test_sources_are_parsed_and_built(tmp_path: Path, probe_types: dict[str, str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[[sources]]\ntype = "probe"\nname = "shop"\npoll_interval = 2.5\n'
        'token = "env:SHOP_TOKEN"\nfeed = "feeds/in.jsonl"\nlevel = 3\n\n'
        '[[sources]]\ntype = "probe"\nname = "other"\n\n'
        '[[sources]]\ntype = "slowprobe"\nname = "slow"\n\n'
        '[[sources]]\ntype = "slowprobe"\nname = "quick"\npoll_interval = 1\n'
    )
    config = load_config(path, data_dir=tmp_path)
    assert [(t.name, t.type, t.poll_interval) for t in config.sources] == [
        ("shop", "probe", 2.5), ("other", "probe", 60.0), ("slow", "slowprobe", 300.0),
        ("quick", "slowprobe", 1.0)]
    shop = config.source_table("shop")
    assert isinstance(shop, SourceTable) and shop.path == "sources[0]"
    source = shop.source
    assert isinstance(source, ProbeSource) and source.name == "shop" and source.level == 3
    assert isinstance(source.token, Secret) and source.token.reference == "env:SHOP_TOKEN"
    assert source.token.key == "sources[0].token" and source.token.file == str(path)
    assert source.feed == tmp_path / "feeds" / "in.jsonl"
    assert config.source_table("other").source.token is None

    with pytest.raises(ConfigError) as caught:
        config.source_table("nope")
    assert str(caught.value) == (f"{path}: sources: no source named 'nope' "
                                 "(known: 'shop', 'other', 'slow', 'quick')")


def test_section_parsers_are_called_when_present(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, tuple[object, ...]]] = []

    def fake(name: str) -> None:
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)

        def parse(*args: object) -> object:
            calls.append((name.rsplit(".", 1)[1], args))
            return f"parsed {name}"

        module.parse = parse
        monkeypatch.setitem(sys.modules, name, module)

    for name in SECTION_MODULES:
        fake(name)
    path = tmp_path / "config.toml"
    path.write_text('replies_dir = "replies"\n[sla]\nfirst_response = "1h"\n'
                    '[[rules]]\nname = "r"\n[keys]\nreply = "r"\n')
    config = load_config(path, data_dir=tmp_path)
    assert config.sla == "parsed replydeck.config.sla"
    assert config.replies == "parsed replydeck.config.replies"
    assert config.rules == "parsed replydeck.config.rules"
    assert config.keys == "parsed replydeck.config.keys"
    names = [c[0] for c in calls]
    assert names == ["sla", "replies", "rules", "keys"]
    args = dict(calls)
    assert args["sla"] == (config.root,)
    assert args["replies"] == (config.root, tmp_path)
    assert args["rules"] == (config.root, "parsed replydeck.config.replies")
    assert config.root.raw("sla") == {"first_response": "1h"}


def test_section_parser_errors_reach_the_user(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("replydeck.config.sla")
    module.__spec__ = importlib.machinery.ModuleSpec("replydeck.config.sla", None)

    def parse(root):  # the way a real section parser reports a bad value
        return root.table("sla").str("first_response")

    module.parse = parse
    monkeypatch.setitem(sys.modules, "replydeck.config.sla", module)
    path = tmp_path / "config.toml"
    path.write_text("[sla]\nfirst_response = 60\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, data_dir=tmp_path)
    assert str(caught.value) == f"{path}: sla.first_response: expected a string, found integer 60"


def test_every_allowed_section_is_accepted(tmp_path: Path, no_section_parsers: None) -> None:
    path = tmp_path / "config.toml"
    path.write_text('replies_dir = "r"\n[sla]\n[business_hours]\n[notifications]\n'
                    '[[rules]]\n[[replies]]\n[keys]\n[[views]]\n[ui]\n[storage]\n'
                    '[webhooks]\n[agent]\n')
    load_config(path, data_dir=tmp_path)


def test_the_real_demo_source_loads(tmp_path: Path) -> None:
    pytest.importorskip("replydeck.sources.demo")
    path = tmp_path / "config.toml"
    path.write_text('[[sources]]\ntype = "demo"\nname = "demo"\nseed = 3\npoll_interval = 2\n')
    config = load_config(path, data_dir=tmp_path)
    table = config.source_table("demo")
    assert (table.type, table.poll_interval) == ("demo", 2.0)
    assert table.source.name == "demo"

    path.write_text('[[sources]]\ntype = "demo"\nname = "demo"\nsede = 3\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, data_dir=tmp_path)
    assert str(caught.value).startswith(f"{path}: sources[0].sede: unknown key (known keys here: ")


def test_relative_config_path_gives_absolute_paths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, probe_types: dict[str, str]) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.toml").write_text(
        '[storage]\ndatabase = "rd.db"\n[[sources]]\ntype = "probe"\nname = "p"\nfeed = "in.jsonl"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("conf/config.toml"), data_dir=tmp_path)
    monkeypatch.chdir("/")
    assert config.database == tmp_path / "conf" / "rd.db"
    assert config.sources[0].source.feed == tmp_path / "conf" / "in.jsonl"
    assert config.config_dir == tmp_path / "conf"
