"""Saved replies: loading from [[replies]] and Markdown files, templates, rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.loader import read_toml
from replydeck.config.replies import parse
from replydeck.config.table import Table
from replydeck.inbox.model import Author
from replydeck.inbox.replies import SavedReply, TemplateError, parse_template, render

DATA = Path(__file__).parent / "data"
ALICE = Author(id="42", handle="alice_k", name="Alice Kim")


def load(data: dict, config_dir: Path = DATA, file: str = "config.toml"):
    return parse(Table(data, "", file), config_dir)


def one(body: str, **extra) -> SavedReply:
    return load({"replies": [{"name": "r", "body": body, **extra}]}).get("r")


def test_library_loads_with_variants_and_languages():
    lib = parse(Table(read_toml(DATA / "replies.toml"), "", "replies.toml"), DATA)
    assert len(lib) >= 15
    refund = lib.get("refund")
    assert refund.tags == ("billing",)
    assert "money back" in refund.triggers
    assert refund.language == "en"
    assert "x" in refund.variants
    assert lib.get("refund-ja").language == "ja"
    assert lib.get("nope") is None


def test_render_fills_every_variable():
    reply = one("Hi {customer.name} ({customer.handle}), {agent.name} from {brand} on "
                "{platform} here.")
    text = render(reply, platform="instagram", customer=ALICE, agent_name="Aiko",
                  brand="Example Coffee")
    assert text == "Hi Alice Kim (@alice_k), Aiko from Example Coffee on Instagram here."


def test_platform_variant_is_chosen_and_body_otherwise():
    reply = one("Hi {customer.name}, please DM us your order number so we can check it.",
                variants={"x": "DM us {customer.handle}!"})
    assert render(reply, platform="x", customer=ALICE) == "DM us @alice_k!"
    assert render(reply, platform="mastodon", customer=ALICE).startswith("Hi Alice Kim,")


def test_explicit_fallback_used_when_value_missing():
    reply = one("Hi {customer.name|there}, thanks from {brand|the team}!")
    anon = Author(id="7")
    assert render(reply, platform="x", customer=anon) == "Hi there, thanks from the team!"
    assert render(reply, platform="x", customer=ALICE, brand="Acme") == \
        "Hi Alice Kim, thanks from Acme!"


def test_empty_fallback_is_allowed():
    reply = one("Thanks{customer.name|}!")
    assert render(reply, platform="x", customer=Author(id="1")) == "Thanks!"


def test_missing_values_without_fallback_render_sensibly():
    reply = one("Hi {customer.name}! {customer.handle} - {agent.name}, {brand}")
    handle_only = Author(id="1", handle="@bob")
    assert render(reply, platform="x", customer=handle_only) == \
        "Hi @bob! @bob - the team, us"
    name_only = Author(id="2", name="Bob")
    assert render(reply, platform="x", customer=name_only, brand="Acme") == \
        "Hi Bob! Bob - Acme, Acme"
    nothing = Author(id="3")
    assert render(reply, platform="x", customer=nothing) == "Hi there! there - the team, us"


def test_email_handles_are_not_given_an_at_sign():
    reply = one("Reply to {customer.handle}")
    who = Author(id="x", handle="bob@example.com")
    assert render(reply, platform="email", customer=who) == "Reply to bob@example.com"
    assert render(reply, platform="mastodon", customer=Author(id="m", handle="ann@mstdn.jp")) \
        == "Reply to @ann@mstdn.jp"


def test_double_braces_are_literal():
    reply = one("Use code {{WELCOME}} at checkout, {customer.name}. }}{{")
    assert render(reply, platform="x", customer=ALICE) == \
        "Use code {WELCOME} at checkout, Alice Kim. }{"


def test_japanese_body_with_fallback():
    reply = one("{customer.name|お客}様、ご連絡ありがとうございます。{agent.name}")
    assert render(reply, platform="line", customer=Author(id="u"), agent_name="佐藤") == \
        "お客様、ご連絡ありがとうございます。佐藤"
    assert render(reply, platform="line", customer=Author(id="u", name="田中"),
                  agent_name="佐藤") == "田中様、ご連絡ありがとうございます。佐藤"


def test_agent_brand_alias():
    assert render(one("{agent.brand}"), platform="x", customer=ALICE, brand="B") == "B"


@pytest.mark.parametrize(("body", "problem"), [
    ("Hi {customer.email}", "unknown variable {customer.email}"),
    ("Hi {customer.name", "unclosed '{' at character 4"),
    ("Hi customer.name}", "stray '}' at character 17"),
    ("Hi {}", "empty variable '{}' at character 4"),
    ("Hi {customer.{name}}", "unclosed '{' at character 4"),
])
def test_template_errors(body, problem):
    with pytest.raises(TemplateError) as err:
        parse_template(body)
    assert str(err.value).startswith(problem)


def test_unknown_variable_is_config_error_naming_the_reply():
    data = {"replies": [
        {"name": "ok", "body": "fine"},
        {"name": "bad", "body": "Hi {customer.email}"},
    ]}
    with pytest.raises(ConfigError) as err:
        load(data)
    assert str(err.value) == (
        "config.toml: replies[1].body: in saved reply 'bad': unknown variable "
        "{customer.email} (known: {customer.name}, {customer.handle}, {agent.name}, "
        "{platform}, {brand})")


def test_bad_variant_is_config_error_naming_the_platform():
    data = {"replies": [{"name": "r", "body": "ok", "variants": {"x": "Hi {customr.name}"}}]}
    with pytest.raises(ConfigError, match=r"replies\[0\]\.variants\.x: in saved reply 'r': "
                       r"unknown variable \{customr\.name\}"):
        load(data)


@pytest.mark.parametrize(("entry", "message"), [
    ({"body": "x"}, "config.toml: replies[0].name: missing; expected a string"),
    ({"name": "r"}, "config.toml: replies[0].body: missing; expected a string"),
    ({"name": "r", "body": "  "}, "config.toml: replies[0].body: saved reply 'r' has an "
     "empty body"),
    ({"name": "r", "body": "x", "trigger": ["a"]},
     "config.toml: replies[0].trigger: unknown key (known keys here: body, language, name, "
     "tags, triggers, variants)"),
    ({"name": "r", "body": "x", "tags": "billing"},
     "config.toml: replies[0].tags: expected an array of strings, found string 'billing'"),
])
def test_reply_table_errors(entry, message):
    with pytest.raises(ConfigError) as err:
        load({"replies": [entry]})
    assert str(err.value) == message


def test_duplicate_names_rejected():
    data = {"replies": [{"name": "r", "body": "a"}, {"name": "r", "body": "b"}]}
    with pytest.raises(ConfigError) as err:
        load(data)
    assert str(err.value) == ("config.toml: replies[1].name: duplicate saved reply name 'r' "
                              "(also in replies[0])")


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_markdown_folder_with_front_matter(tmp_path):
    folder = tmp_path / "replies"
    folder.mkdir()
    write(folder, "move-to-email.md", """+++
triggers = ["invoice", "delete my data"]
tags = ["channel"]
language = "en"
[variants]
x = "Please email support@example.com, {customer.handle}."
+++

Hi {customer.name|there},

Our **back office** can help with this by email: support@example.com.
""")
    write(folder, "notes.txt", "not a reply")
    lib = load({"replies_dir": "replies"}, tmp_path)
    reply = lib.get("move-to-email")
    assert reply.name == "move-to-email"
    assert reply.triggers == ("invoice", "delete my data")
    assert reply.origin == str(folder / "move-to-email.md")
    assert render(reply, platform="facebook", customer=ALICE) == (
        "Hi Alice Kim,\n\nOur **back office** can help with this by email: "
        "support@example.com.")
    assert render(reply, platform="x", customer=ALICE) == \
        "Please email support@example.com, @alice_k."
    assert lib.names == ["move-to-email"]


def test_markdown_name_from_front_matter_and_merge_with_config(tmp_path):
    write(tmp_path, "a.md", '+++\nname = "dm-us"\n+++\nDM us!\n')
    lib = load({"replies": [{"name": "refund", "body": "ok"}], "replies_dir": str(tmp_path)},
               tmp_path / "elsewhere")
    assert lib.names == ["refund", "dm-us"]


def test_markdown_unknown_variable_names_the_file(tmp_path):
    path = write(tmp_path, "refund.md", "+++\n+++\nHi {custmer.name}\n")
    with pytest.raises(ConfigError) as err:
        load({"replies_dir": "."}, tmp_path)
    assert str(err.value).startswith(f"{path}: body: in saved reply 'refund': unknown "
                                     "variable {custmer.name}")


@pytest.mark.parametrize(("text", "problem"), [
    ("Hi there\n", "expected TOML front matter starting with a '+++' line at the top of "
     "the file"),
    ("+++\nname = 'x'\nHi\n", "front matter is not closed by a '+++' line"),
    ("+++\nname = \n+++\nHi\n", "invalid TOML in the front matter: "),
    ("+++\nbody = 'x'\n+++\nHi\n", "body: the body is the Markdown after the front matter"),
    ("+++\ntitle = 'x'\n+++\nHi\n", "title: unknown key"),
    ("+++\n+++\n\n", "saved reply 'bad' has an empty body"),
])
def test_markdown_file_errors(tmp_path, text, problem):
    path = write(tmp_path, "bad.md", text)
    with pytest.raises(ConfigError) as err:
        load({"replies_dir": "."}, tmp_path)
    assert str(err.value).startswith(f"{path}: ")
    assert problem in str(err.value)


def test_duplicate_between_config_and_folder(tmp_path):
    path = write(tmp_path, "refund.md", "+++\n+++\nHi\n")
    with pytest.raises(ConfigError) as err:
        load({"replies": [{"name": "refund", "body": "ok"}], "replies_dir": "."}, tmp_path)
    assert str(err.value) == (f"{path}: name: duplicate saved reply name 'refund' "
                              "(also in replies[0])")


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        load({"replies_dir": "nope"}, tmp_path)
    assert str(err.value) == (f"config.toml: replies_dir: expected a folder of Markdown "
                              f"files, found string 'nope' ({tmp_path / 'nope'} is not a "
                              "folder)")


def test_no_replies_is_an_empty_library():
    assert len(load({})) == 0
