"""[keys], [[views]] and [ui]: defaults, overrides, and errors that name the key."""

from __future__ import annotations

import pytest

from replydeck.config.errors import ConfigError
from replydeck.config.keys import ACTIONS, DEFAULT_VIEWS, KeysConfig, key_problem, parse
from replydeck.config.table import Table
from replydeck.inbox.model import Kind, Status, Urgency


def cfg(data: dict) -> KeysConfig:
    return parse(Table(data, "", "config.toml"))


def error(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        cfg(data)
    return str(info.value)


def test_defaults_cover_every_action_and_five_views():
    keys = cfg({})
    assert set(keys.bindings) == {a.name for a in ACTIONS}
    assert keys.keys_for("reply") == ("r",)
    assert [v.name for v in keys.views] == ["Needs reply", "Breaching", "Mine", "Urgent",
                                            "All"]
    assert keys.ui.bell is True and keys.ui.theme is None


def test_a_key_or_a_list_of_keys():
    keys = cfg({"keys": {"reply": "w", "move_down": ["j", "down", "ctrl+n"]}})
    assert keys.keys_for("reply") == ("w",)
    assert keys.keys_for("move_down") == ("j", "down", "ctrl+n")
    # Freed keys may be reused: "r" is no longer reply's.
    assert cfg({"keys": {"reply": "w", "reopen": "r"}}).keys_for("reopen") == ("r",)


def test_unknown_action_names_the_key():
    msg = error({"keys": {"replly": "r"}})
    assert msg.startswith("config.toml: keys.replly: unknown action")
    assert "reply" in msg


@pytest.mark.parametrize("bad", ["", "ctrl+", "cntrl+s", "ctrl+ctrl+s", " r", "nosuchkey",
                                 "\x1b", "ctrl+s x"])
def test_malformed_key_is_an_error(bad):
    msg = error({"keys": {"reply": bad}})
    assert "keys.reply" in msg


def test_wrong_type_is_an_error():
    assert "keys.reply: expected a key" in error({"keys": {"reply": 5}})
    assert "keys.reply" in error({"keys": {"reply": []}})


@pytest.mark.parametrize("good", ["r", "R", "ctrl+s", "pagedown", "question_mark", "?",
                                  "f5", "alt+shift+x", "é", "full_stop"])
def test_valid_keys(good):
    assert key_problem(good) is None


def test_clash_in_one_scope_is_reported_on_the_users_entry():
    msg = error({"keys": {"tag": "j"}})
    assert "keys.tag" in msg and "move_down" in msg
    # "?" and "question_mark" are the same key.
    assert "keys.snooze" in error({"keys": {"snooze": "question_mark"}})


def test_same_key_in_composer_and_inbox_is_fine():
    keys = cfg({"keys": {"compose_send": "ctrl+g", "compose_saved": "ctrl+o"}})
    assert keys.keys_for("compose_send") == ("ctrl+g",)
    assert "keys.compose_saved" in error({"keys": {"compose_saved": "ctrl+s"}})


def test_views_add_and_replace_defaults():
    keys = cfg({"views": [
        {"name": "Billing", "key": 6, "tags": ["Billing"], "statuses": ["open", "done"]},
        {"name": "DMs", "key": 1, "kinds": ["dm", "email"], "min_urgency": "high",
         "platforms": ["X"], "unread": True},
    ]})
    by_key = {v.key: v for v in keys.views}
    assert by_key[6].tags == ("billing",) and by_key[6].statuses == (Status.OPEN, Status.DONE)
    assert by_key[1].name == "DMs" and by_key[1].kinds == (Kind.DM, Kind.EMAIL)
    assert by_key[1].min_urgency == Urgency.HIGH and by_key[1].platforms == ("x",)
    assert by_key[2] == DEFAULT_VIEWS[1]


@pytest.mark.parametrize("view, where", [
    ({"name": "x", "key": 10}, "views[0].key"),
    ({"name": "x", "key": 1, "statuses": ["closed"]}, "views[0].statuses"),
    ({"name": "x", "key": 1, "min_urgency": "meh"}, "views[0].min_urgency"),
    ({"name": "x", "key": 1, "colour": "red"}, "views[0].colour"),
    ({"name": "", "key": 1}, "views[0].name"),
])
def test_bad_views(view, where):
    assert where in error({"views": [view]})


def test_two_views_on_one_key():
    msg = error({"views": [{"name": "a", "key": 7}, {"name": "b", "key": 7}]})
    assert "views[1].key" in msg and "'a'" in msg


def test_ui_section():
    ui = cfg({"ui": {"bell": False, "theme": "ansi", "time_format": "%I:%M %p"}}).ui
    assert (ui.bell, ui.theme, ui.time_format) == (False, "ansi-dark", "%I:%M %p")
    assert "ui.theme" in error({"ui": {"theme": "hotdog"}})
    assert "ui.bell" in error({"ui": {"bell": "yes"}})
    assert "ui.time_format" in error({"ui": {"time_format": "HH:MM"}})
    assert "ui.sound" in error({"ui": {"sound": True}})


def test_loader_uses_this_module(write_config):
    config = write_config('\n[keys]\nreply = "w"\n[ui]\nbell = false\n')
    assert config.keys.keys_for("reply") == ("w",)
    assert config.keys.ui.bell is False
    with pytest.raises(ConfigError) as info:
        write_config('\n[keys]\nreply = "ctrl+"\n')
    assert "keys.reply" in str(info.value) and "config.toml" in str(info.value)
