"""Secrets never leak, resolve only when used, and refreshed tokens can be stored back."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.loader import load_config
from replydeck.config.secrets import Secret

SECRET = "s3cr3t-Value-42"


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o700)
    return path


def test_failing_command_never_shows_what_it_printed_on_stdout(tmp_path: Path) -> None:
    # A password manager that prints the password, then complains (echoing it) and fails.
    script = _script(tmp_path, "leaky", f'echo "{SECRET}"\necho "rejected {SECRET} for x" >&2\nexit 1\n')
    secret = Secret.parse(f"cmd:{script}", file="c.toml", key="sources[0].token")
    with pytest.raises(ConfigError) as caught:
        secret.resolve()
    message = str(caught.value)
    assert SECRET not in message
    assert message == (f"c.toml: sources[0].token: cmd:{script}: command exited with status 1 "
                       "(rejected [hidden] for x)")
    assert SECRET not in repr(caught.value)


def test_command_stderr_escape_sequences_are_made_inert(tmp_path: Path) -> None:
    script = _script(tmp_path, "noisy", "printf '\\033]0;owned\\007\\033[31mlocked\\n' >&2\nexit 2\n")
    with pytest.raises(ConfigError) as caught:
        Secret.parse(f"cmd:{script}").resolve()
    assert "\x1b" not in str(caught.value) and "\x07" not in str(caught.value)
    assert str(caught.value).endswith("command exited with status 2 (locked)")


def test_resolved_secret_is_not_in_repr_str_or_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, probe_types: dict[str, str]) -> None:
    monkeypatch.setenv("REPLYDECK_TEST_TOKEN", SECRET)
    path = tmp_path / "config.toml"
    path.write_text('[[sources]]\ntype = "probe"\nname = "p"\ntoken = "env:REPLYDECK_TEST_TOKEN"\n')
    config = load_config(path, data_dir=tmp_path)
    token = config.sources[0].source.token
    assert token.resolve() == SECRET
    for shown in (repr(token), str(token), f"{token}", repr(config), repr(config.sources[0].source)):
        assert SECRET not in shown
    assert repr(token) == "Secret(env:REPLYDECK_TEST_TOKEN)"


@pytest.mark.parametrize("line", [f'token = "{SECRET}"', f'tokne = "{SECRET}"',
                                  f'token = "{SECRET}:x"', f'token = ["{SECRET}"]'])
def test_literal_secrets_are_never_echoed_in_errors(
        line: str, tmp_path: Path, probe_types: dict[str, str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[[sources]]\ntype = "probe"\nname = "p"\n{line}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, data_dir=tmp_path)
    assert SECRET not in str(caught.value)


def test_loading_never_runs_secret_commands(tmp_path: Path, probe_types: dict[str, str]) -> None:
    marker = tmp_path / "ran"
    script = _script(tmp_path, "counting", f"echo x >> {marker}\necho tok\n")
    path = tmp_path / "config.toml"
    path.write_text(f'[[sources]]\ntype = "probe"\nname = "p"\ntoken = "cmd:{script}"\n')
    config = load_config(path, data_dir=tmp_path)
    assert not marker.exists()
    token = config.sources[0].source.token
    assert token.resolve() == "tok"
    assert token.resolve() == "tok"
    assert marker.read_text().count("x") == 1, "resolved values are cached, not re-run"


def test_cmd_takes_the_first_line_like_pass(tmp_path: Path) -> None:
    script = _script(tmp_path, "pass", f"echo '  {SECRET}  '\necho 'login: me'\n")
    assert Secret.parse(f"cmd:{script}").resolve() == SECRET


def test_file_store_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "tokens" / "x"
    target.parent.mkdir()
    target.write_text("old-token\n")
    target.chmod(0o644)  # even a file that was too open ends up private after a store
    secret = Secret.parse(f"file:{target}")
    assert secret.writable
    secret.store(SECRET)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert Secret.parse(f"file:{target}").resolve() == SECRET
    assert secret.resolve() == SECRET
    assert sorted(os.listdir(target.parent)) == ["x"], "no temporary file left behind"


def test_file_secret_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "tok").write_text(SECRET + "\n")
    (tmp_path / "tok").chmod(0o600)
    assert Secret.parse("file:~/tok").resolve() == SECRET


def test_keyring_store_round_trip(memory_keyring) -> None:
    secret = Secret.parse("keyring:replydeck/x-refresh")
    assert secret.writable
    secret.store(SECRET)
    assert memory_keyring.entries[("replydeck", "x-refresh")] == SECRET
    assert Secret.parse("keyring:replydeck/x-refresh").resolve() == SECRET
    secret.store("rotated")
    assert Secret.parse("keyring:replydeck/x-refresh").resolve() == "rotated"


@pytest.mark.parametrize("ref", ["env:X_TOKEN", "cmd:pass show x"])
def test_store_to_read_only_backends_is_a_clear_error(ref: str) -> None:
    secret = Secret.parse(ref, file="c.toml", key="sources[1].token")
    assert not secret.writable
    with pytest.raises(ConfigError) as caught:
        secret.store(SECRET)
    scheme = ref.partition(":")[0]
    assert str(caught.value) == (
        f"c.toml: sources[1].token: {ref}: a refreshed token cannot be saved to {scheme}: "
        "sources; use keyring: or file: for tokens that rotate")
    assert SECRET not in str(caught.value)


def test_file_store_into_a_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    secret = Secret.parse(f"file:{tmp_path}/gone/x", file="c.toml", key="sources[0].refresh_token")
    with pytest.raises(ConfigError) as caught:
        secret.store(SECRET)
    assert str(caught.value) == (f"c.toml: sources[0].refresh_token: file:{tmp_path}/gone/x: "
                                 "cannot be written (No such file or directory)")
    assert SECRET not in str(caught.value)


def test_secret_split_by_an_escape_in_stderr_is_still_hidden(tmp_path: Path) -> None:
    # The escape sequence vanishes when the line is made inert; the joined secret must not
    # appear then either.
    half = len(SECRET) // 2
    script = _script(tmp_path, "split", f"echo '{SECRET}'\n"
                     f"printf 'bad: {SECRET[:half]}\\033[0m{SECRET[half:]}\\n' >&2\nexit 1\n")
    with pytest.raises(ConfigError) as caught:
        Secret.parse(f"cmd:{script}").resolve()
    assert SECRET not in str(caught.value)
    assert str(caught.value).endswith("command exited with status 1 (bad: [hidden])")
