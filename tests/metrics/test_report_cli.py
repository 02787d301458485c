"""`replydeck report` through the real command line entry point, on the hand-built week."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from replydeck import cli, report_cli
from tests.metrics.test_metrics import build_week
from tests.metrics.world import World, berlin_config, utc

NOW = utc(2026, 11, 9, 12)
CONFIG = """
[agent]
name = "ana"

[storage]
database = "week.db"

[sla]
business_hours = true

[business_hours]
timezone = "Europe/Berlin"
"""


@pytest.fixture
def report_cmd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until cli.py registers `report` itself, add it the way the lead will."""
    monkeypatch.setattr(cli, "_now", lambda: NOW)
    subs = [a for a in cli.build_parser()._actions if hasattr(a, "add_parser")]
    if any("report" in a.choices for a in subs):
        return
    original = cli.build_parser

    def build() -> Any:
        p = original()
        for action in p._actions:
            if hasattr(action, "add_parser") and "report" not in action.choices:
                report_cli.register(action)
        return p

    monkeypatch.setattr(cli, "build_parser", build)


@pytest.fixture
def cli_world(tmp_path: Path, report_cmd: None) -> Iterator[tuple[list[str], dict[str, int]]]:
    (tmp_path / "config.toml").write_text(CONFIG, encoding="utf-8")
    w = World(tmp_path / "week.db", berlin_config())
    ids = build_week(w)
    w.close()
    yield ["--config", str(tmp_path / "config.toml"), "--data-dir", str(tmp_path / "data")], ids


def run(capsys: pytest.CaptureFixture[str], base: list[str], *args: str) -> tuple[int, str, str]:
    code = cli.main([*base, "report", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


WEEK = ("--from", "2026-11-02", "--to", "2026-11-08")


def test_json_has_exact_figures_and_previous_period(cli_world: Any, capsys: Any) -> None:
    base, _ = cli_world
    code, out, err = run(capsys, base, *WEEK, "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    # Days are Berlin days: Mon 2026-11-02 00:00 CET is 11-01 23:00 UTC.
    assert data["period"] == {"start": "2026-11-01T23:00:00Z", "end": "2026-11-08T23:00:00Z"}
    assert data["previous_period"]["start"] == "2026-10-25T23:00:00Z"
    cur = data["current"]
    assert (cur["received"], cur["needed_reply"], cur["replied"]) == (12, 8, 6)
    assert cur["reply_rate"] == 0.75
    assert cur["first_response"]["median"] == 2550
    assert cur["first_response"]["buckets"] == {"≤30m": 2, "≤1h": 2, "≤4h": 1, "≤24h": 0,
                                                ">24h": 1}
    assert cur["first_response_business"]["p90"] == 5400
    assert cur["sla_first"] == {"with_target": 8, "breached": 2, "pending": 0, "rate": 0.75}
    assert (cur["sent"], cur["failed"], cur["retried"]) == (6, 1, 1)
    assert data["previous"]["first_response"]["median"] == 1800


def test_table_shows_headline_and_groups(cli_world: Any, capsys: Any) -> None:
    base, _ = cli_world
    code, out, _ = run(capsys, base, *WEEK, "--by", "agent")
    assert code == 0
    assert "Reply rate" in out and "75.0%" in out and "100.0%" in out
    assert "-25.0 pt" in out
    # median / p90 / mean of the first response, this period and the previous one.
    assert "42m / 2d17h / 11h24m" in out
    assert "≤30m 2 (33%)" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "chloe" in lines and "1h30m" in lines["chloe"]
    assert "external" in lines and "45m" in lines["external"]


def test_csv_one_row_per_group_and_period(cli_world: Any, capsys: Any) -> None:
    base, _ = cli_world
    code, out, _ = run(capsys, base, *WEEK, "--by", "platform", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["group"], r["period"]) for r in rows] == [
        ("(total)", "current"), ("(total)", "previous"), ("x", "current"), ("x", "previous"),
        ("email", "current"), ("email", "previous"), ("mastodon", "current"),
        ("mastodon", "previous")]
    mastodon = rows[6]
    assert mastodon["first_response_median"] == "234000.0"
    assert mastodon["first_response_business_median"] == "3600.0"
    assert rows[0]["first_response_le_30m"] == "2"


def test_conversations_rows(cli_world: Any, capsys: Any) -> None:
    base, ids = cli_world
    code, out, _ = run(capsys, base, *WEEK, "--conversations", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 10
    c = next(r for r in rows if r["conversation"] == str(ids["C"]))
    assert (c["agent"], c["first_response_s"], c["breached"]) == ("chloe", "5400.0", "True")
    assert c["due_at"] == "2026-11-03T09:00:00Z"
    code, out, _ = run(capsys, base, *WEEK, "--conversations")
    assert f"{ids['E']}.1" in out  # E's reopening is its own row


def test_explain(cli_world: Any, capsys: Any) -> None:
    base, ids = cli_world
    code, out, _ = run(capsys, base, "--explain", str(ids["B"]))
    assert code == 0
    assert "received at        Fri 2026-11-06 16:30" in out      # Berlin time
    assert "due at             Mon 2026-11-09 12:30" in out
    assert "human reply at     Mon 2026-11-09 09:30 by ana" in out
    assert "60 business minutes" in out
    code, out, _ = run(capsys, base, "--explain", str(ids["C"]), "--format", "json")
    data = json.loads(out)
    (item,) = data["items"]
    assert item["received_at"] == "2026-11-03T08:00:00Z"
    assert item["due_at"] == "2026-11-03T09:00:00Z"
    assert item["human_reply_at"] == "2026-11-03T09:30:00Z"
    assert item["business_minutes"] == 90
    assert item["breached"] and item["breach_recorded"]
    assert [e["type"] for e in data["events"]].count("reply_failed") == 1


@pytest.mark.parametrize("args, message", [
    (("--since", "soon"), "--since: cannot read 'soon'"),
    (("--from", "2026-13-01"), "--from: cannot read"),
    (("--from", "2026-11-05", "--to", "2026-11-01"), "is not after --from"),
    (("--to", "2026-11-01"), "--to needs --from"),
    (("--explain", "999"), "no conversation with id 999"),
])
def test_bad_input_is_one_clear_line(cli_world: Any, capsys: Any, args: tuple[str, ...],
                                     message: str) -> None:
    base, _ = cli_world
    code, _out, err = run(capsys, base, *args)
    assert code == 1
    assert message in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_since_is_relative_to_now(cli_world: Any, capsys: Any) -> None:
    base, _ = cli_world
    code, out, _ = run(capsys, base, "--since", "1d", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["period"] == {"start": "2026-11-08T12:00:00Z", "end": "2026-11-09T12:00:00Z"}
    # B's reply on Monday morning falls in the last day; nothing started in it.
    assert (data["current"]["sent"], data["current"]["needed_reply"]) == (1, 0)
    assert isinstance(datetime.fromisoformat(data["period"]["end"].replace("Z", "+00:00")),
                      datetime)


def test_parser_choices_match_the_metrics_dimensions() -> None:
    from replydeck.inbox import metrics

    assert report_cli.DIMENSIONS == metrics.DIMENSIONS


def test_terminal_escapes_from_a_platform_never_reach_the_terminal(
        tmp_path: Path, report_cmd: None, capsys: Any) -> None:
    (tmp_path / "config.toml").write_text(CONFIG, encoding="utf-8")
    w = World(tmp_path / "week.db", berlin_config())
    conv = w.customer("N", utc(2026, 11, 4, 9), platform="evil\x1b]0;pwned\x07\x1b[31m")
    w.reply(conv, utc(2026, 11, 4, 9, 5), "ana")
    w.close()
    base = ["--config", str(tmp_path / "config.toml"), "--data-dir", str(tmp_path / "d")]
    for args in (("--by", "platform"), ("--by", "platform", "--format", "csv"),
                 ("--conversations",), ("--explain", str(conv))):
        code, out, _ = run(capsys, base, *WEEK, *args) if args[0] != "--explain" else run(
            capsys, base, *args)
        assert code == 0
        assert "\x1b" not in out and "\x07" not in out
        assert "evil" in out
