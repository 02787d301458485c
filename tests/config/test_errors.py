"""A table of broken configs, each with the exact message a user sees.

Load-time cases fail in ``load_config``; resolve-time cases load fine (secrets are lazy)
and fail when the probe source's ``token`` is resolved, as it would be on first use.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.loader import load_config

KNOWN_TOP = ("agent, business_hours, keys, notifications, replies, replies_dir, rules, "
             "sla, sources, storage, ui, views, webhooks")
PROBE_KEYS = "feed, level, name, poll_interval, token, type"
REFS = "env:VAR, cmd:COMMAND, keyring:SERVICE/USER or file:PATH"
TWO_OK = '[[sources]]\ntype = "probe"\nname = "a"\n\n[[sources]]\ntype = "probe"\nname = "b"\n\n'


def probe(extra: str = "", name: str = "p") -> str:
    return f'[[sources]]\ntype = "probe"\nname = "{name}"\n{extra}\n'


Setup = Callable[[Path, pytest.MonkeyPatch, object], None]


@dataclass
class Case:
    id: str
    toml: str | bytes | None  # None: no file at all
    expected: str  # "{file}" and "{tmp}" are filled in
    resolve: bool = False
    setup: Setup | None = None


def _secret_file(mode: int) -> Setup:
    def setup(tmp: Path, mp: pytest.MonkeyPatch, ring: object) -> None:
        path = tmp / "token"
        path.write_text("tok-from-file\n")
        path.chmod(mode)
    return setup


def _unset(var: str) -> Setup:
    return lambda tmp, mp, ring: mp.delenv(var, raising=False)


def _fail_keyring(tmp: Path, mp: pytest.MonkeyPatch, ring: object) -> None:
    keyring.set_keyring(keyring.backends.fail.Keyring())


CASES = [
    Case("toml-syntax", '[agent]\nname = "a"\nbrand = x\n',
         "{file}: invalid TOML at line 3, column 9: Invalid value"),
    Case("toml-unclosed-table", '[agent\nname = "a"\n',
         "{file}: invalid TOML at line 1, column 7: Expected ']' at the end of a table declaration"),
    Case("toml-duplicate-key", '[agent]\nname = "a"\nname = "b"\n',
         "{file}: invalid TOML at line 3, column 11: Cannot overwrite a value"),
    Case("not-utf8", b'[agent]\nname = "a"\nbrand = "\xff\xfe"\n',
         "{file}: line 3: not valid UTF-8 text (TOML files must be UTF-8)"),
    Case("missing-file", None,
         "{file}: config file not found; run `replydeck init` to write a commented example "
         "there, or `replydeck demo` to try replydeck without any accounts"),
    Case("config-is-a-directory", None, "{file}: is a directory, expected a TOML file",
         setup=lambda tmp, mp, ring: (tmp / "config.toml").mkdir()),
    Case("unknown-top-level", '[agent]\nname = "a"\n\n[colours]\nurgent = "red"\n',
         f"{{file}}: colours: unknown key (known keys here: {KNOWN_TOP})"),
    Case("unknown-key-with-escapes", '"x\\u001b]0;owned\\u0007" = 1\n',
         f'{{file}}: "x\\u001b]0;owned\\u0007": unknown key (known keys here: {KNOWN_TOP})'),
    Case("sources-a-string", 'sources = "probe"\n',
         "{file}: sources: expected an array of tables ([[sources]]), found string 'probe'"),
    Case("sources-a-table", '[sources]\ntype = "probe"\n',
         "{file}: sources: expected an array of tables ([[sources]]), found table"),
    Case("sources-mixed-array", 'sources = [{ type = "probe", name = "a" }, 3]\n',
         "{file}: sources: expected an array of tables ([[sources]]), found array of 2 items"),
    Case("missing-type", '[[sources]]\nname = "p"\n',
         "{file}: sources[0].type: missing; expected one of 'probe', 'slowprobe', 'ghost'"),
    Case("unknown-type", TWO_OK + '[[sources]]\ntype = "twitter"\nname = "t"\n',
         "{file}: sources[2].type: expected one of 'probe', 'slowprobe', 'ghost', "
         "found string 'twitter'"),
    Case("type-not-a-string", '[[sources]]\ntype = 1\nname = "p"\n',
         "{file}: sources[0].type: expected one of 'probe', 'slowprobe', 'ghost', "
         "found integer 1"),
    Case("type-not-in-build", '[[sources]]\ntype = "ghost"\nname = "g"\n',
         "{file}: sources[0].type: source type 'ghost' is not available in this build "
         "(No module named 'tests.config.no_such_module')"),
    Case("missing-name", '[[sources]]\ntype = "probe"\n',
         "{file}: sources[0].name: missing; expected a string"),
    Case("empty-name", probe(name="  "),
         "{file}: sources[0].name: expected a non-empty string, found an empty string"),
    Case("name-with-escape", '[[sources]]\ntype = "probe"\nname = "a\\u001b[2Jb"\n',
         "{file}: sources[0].name: expected a name without control or format characters, "
         "found string 'a\\x1b[2Jb'"),
    Case("name-with-bidi-override", '[[sources]]\ntype = "probe"\nname = "shop\u202e"\n',
         "{file}: sources[0].name: expected a name without control or format characters, "
         "found string 'shop\\u202e'"),
    Case("duplicate-names", TWO_OK + probe(name="a"),
         "{file}: sources[2].name: duplicate source name 'a' (also used by sources[0]); "
         "names must be unique"),
    Case("poll-interval-string", probe('poll_interval = "5m"'),
         "{file}: sources[0].poll_interval: expected a number ≥ 1, found string '5m'"),
    Case("poll-interval-zero", probe("poll_interval = 0"),
         "{file}: sources[0].poll_interval: expected a number ≥ 1, found integer 0"),
    Case("poll-interval-negative", probe("poll_interval = -30"),
         "{file}: sources[0].poll_interval: expected a number ≥ 1, found integer -30"),
    Case("poll-interval-too-small-float", probe("poll_interval = 0.5"),
         "{file}: sources[0].poll_interval: expected a number ≥ 1, found float 0.5"),
    Case("poll-interval-bool", probe("poll_interval = true"),
         "{file}: sources[0].poll_interval: expected a number ≥ 1, found boolean true"),
    Case("unknown-key-in-source", probe('tokne = "env:X"'),
         f"{{file}}: sources[0].tokne: unknown key (known keys here: {PROBE_KEYS})"),
    Case("unknown-quoted-key-in-source", probe('"api key" = "env:X"'),
         f'{{file}}: sources[0]."api key": unknown key (known keys here: {PROBE_KEYS})'),
    Case("source-option-wrong-type", probe('level = "high"'),
         "{file}: sources[0].level: expected an integer from 1 to 5, found string 'high'"),
    Case("secret-as-literal", TWO_OK + probe('token = "hunter2-literal-token"'),
         "{file}: sources[2].token: expected a secret reference (env:VAR, cmd:COMMAND, "
         "keyring:SERVICE/USER or file:PATH); found a literal value (not shown). Put the "
         "secret in an environment variable, a password manager or the keyring instead"),
    Case("secret-not-a-string", probe("token = 12345"),
         "{file}: sources[0].token: expected a secret reference, found integer 12345"),
    Case("secret-empty-env", probe('token = "env:"'),
         "{file}: sources[0].token: env: needs something after the colon"),
    Case("secret-keyring-no-user", probe('token = "keyring:replydeck"'),
         "{file}: sources[0].token: expected keyring:SERVICE/USER, found 'keyring:replydeck'"),
    Case("feed-empty-path", probe('feed = ""'),
         "{file}: sources[0].feed: expected a file path, found an empty string"),
    Case("agent-name-wrong-type", "[agent]\nname = 5\n",
         "{file}: agent.name: expected a string, found integer 5"),
    Case("agent-not-a-table", 'agent = "aiko"\n',
         "{file}: agent: expected a table, found string 'aiko'"),
    Case("agent-unknown-key", '[agent]\nname = "a"\nemail = "a@example.com"\n',
         "{file}: agent.email: unknown key (known keys here: brand, name)"),
    Case("agent-empty-name", '[agent]\nname = ""\n',
         "{file}: agent.name: expected a non-empty string, found an empty string"),
    Case("storage-database-wrong-type", "[storage]\ndatabase = false\n",
         "{file}: storage.database: expected a string, found boolean false"),
    Case("storage-unknown-key", '[storage]\npath = "x.db"\n',
         "{file}: storage.path: unknown key (known keys here: database)"),
    # --- secrets: the config loads; resolving on first use fails -------------------------
    Case("env-unset", TWO_OK + probe('token = "env:REPLYDECK_TEST_UNSET"'),
         "{file}: sources[2].token: env:REPLYDECK_TEST_UNSET: environment variable "
         "REPLYDECK_TEST_UNSET is not set",
         resolve=True, setup=_unset("REPLYDECK_TEST_UNSET")),
    Case("env-empty", probe('token = "env:REPLYDECK_TEST_EMPTY"'),
         "{file}: sources[0].token: env:REPLYDECK_TEST_EMPTY: resolved to an empty value",
         resolve=True,
         setup=lambda tmp, mp, ring: mp.setenv("REPLYDECK_TEST_EMPTY", "  ")),
    Case("cmd-failing", probe("""token = 'cmd:sh -c "echo vault is locked >&2; exit 3"'"""),
         """{file}: sources[0].token: cmd:sh -c "echo vault is locked >&2; exit 3": """
         "command exited with status 3 (vault is locked)", resolve=True),
    Case("cmd-not-found", probe('token = "cmd:replydeck-no-such-program get x"'),
         "{file}: sources[0].token: cmd:replydeck-no-such-program get x: command not found",
         resolve=True),
    Case("cmd-prints-nothing", probe('token = "cmd:true"'),
         "{file}: sources[0].token: cmd:true: resolved to an empty value", resolve=True),
    Case("cmd-unbalanced-quote", probe("""token = 'cmd:pass show "x'"""),
         """{file}: sources[0].token: cmd:pass show "x: cannot parse the command """
         "(No closing quotation)", resolve=True),
    Case("file-group-readable", probe('token = "file:{tmp}/token"'),
         "{file}: sources[0].token: file:{tmp}/token: file is readable by others "
         "(mode 0644); run: chmod 600 {tmp}/token",
         resolve=True, setup=_secret_file(0o644)),
    Case("file-group-only", probe('token = "file:{tmp}/token"'),
         "{file}: sources[0].token: file:{tmp}/token: file is readable by others "
         "(mode 0640); run: chmod 600 {tmp}/token",
         resolve=True, setup=_secret_file(0o640)),
    Case("file-group-writable", probe('token = "file:{tmp}/token"'),
         "{file}: sources[0].token: file:{tmp}/token: file is writable by others "
         "(mode 0620); run: chmod 600 {tmp}/token",
         resolve=True, setup=_secret_file(0o620)),
    Case("file-is-a-directory", probe('token = "file:{tmp}"'),
         "{file}: sources[0].token: file:{tmp}: file is readable by others "
         "(mode 0755); run: chmod 600 {tmp}",
         resolve=True, setup=lambda tmp, mp, ring: tmp.chmod(0o755)),
    Case("file-private-directory", probe('token = "file:{tmp}/dir"'),
         "{file}: sources[0].token: file:{tmp}/dir: cannot be read (Is a directory)",
         resolve=True, setup=lambda tmp, mp, ring: (tmp / "dir").mkdir(mode=0o700)),
    Case("file-missing", probe('token = "file:{tmp}/nope"'),
         "{file}: sources[0].token: file:{tmp}/nope: file not found", resolve=True),
    Case("keyring-missing-entry", probe('token = "keyring:replydeck/shop"'),
         "{file}: sources[0].token: keyring:replydeck/shop: no entry for service "
         "'replydeck', user 'shop' in the keyring", resolve=True),
    Case("keyring-unavailable", probe('token = "keyring:replydeck/shop"'),
         "{file}: sources[0].token: keyring:replydeck/shop: the keyring could not be read "
         "(NoKeyringError)", resolve=True, setup=_fail_keyring),
]


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_broken_config(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       probe_types: dict[str, str], memory_keyring: object) -> None:
    path = tmp_path / "config.toml"
    if case.toml is not None:
        data = case.toml if isinstance(case.toml, bytes) else \
            case.toml.replace("{tmp}", str(tmp_path)).encode()
        path.write_bytes(data)
    if case.setup:
        case.setup(tmp_path, monkeypatch, memory_keyring)
    expected = case.expected.replace("{file}", str(path)).replace("{tmp}", str(tmp_path))

    with pytest.raises(ConfigError) as caught:
        config = load_config(path, data_dir=tmp_path / "data")
        assert case.resolve, "the config loaded, but this case expects a load error"
        config.sources[-1].source.token.resolve()
    assert str(caught.value) == expected
    assert not any(unicodedata.category(ch) == "Cc" for ch in expected), "printable as is"
    # The CLI prints str(e) alone; chained exceptions would only add noise if shown.
    assert caught.value.__cause__ is None
    assert caught.value.file == str(path)


def test_fail_keyring_case_restores_the_memory_keyring(memory_keyring: object) -> None:
    # Guards the table above: the fixture, not the case, owns the global keyring.
    assert keyring.get_keyring() is memory_keyring
    assert os.environ.get("REPLYDECK_TEST_UNSET") is None
