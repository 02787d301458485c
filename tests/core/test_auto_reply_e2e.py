"""Rules end to end through the real CLI: ingest -> a rule fires -> its auto-reply lands in
the jsonl source's reply file exactly once, and never counts as a human response."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta, timezone

from tests.core.conftest import run_cli

NOW = datetime.now(timezone.utc)


def _line(i: int, text: str, thread: str, author: str, minutes_ago: float) -> str:
    return json.dumps({
        "id": f"m{i}", "platform": "instagram", "kind": "dm",
        "author": {"id": author, "handle": author, "name": author.title()},
        "text": text, "thread": thread,
        "created_at": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
    }, ensure_ascii=False)


RULES = textwrap.dedent("""
    [[replies]]
    name = "hours"
    triggers = ["opening hours", "open"]
    body = "Hi {customer.name|there}! We're open 9-17 on weekdays. – {brand}"

    [[rules]]
    name = "faq-hours"
    [rules.when]
    text = ["opening hours", "営業時間"]
    [rules.then]
    auto_reply = "hours"
    tags = ["faq"]
    """)


def test_a_rule_auto_replies_once_and_the_clock_keeps_running(tmp_path):
    inbox = tmp_path / "inbox.jsonl"
    replies = tmp_path / "replies.jsonl"
    inbox.write_text(_line(1, "What are your opening hours?", "a", "lena", 10) + "\n"
                     + _line(2, "My order is broken, angry!", "b", "omar", 9) + "\n",
                     encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(textwrap.dedent(f"""
        [agent]
        name = "tester"
        brand = "Kestrel"

        [[sources]]
        type = "jsonl"
        name = "ig"
        path = "{inbox}"
        reply_path = "{replies}"
        """) + RULES, encoding="utf-8")
    first = run_cli(config, "poll", "--once")
    assert first.returncode == 0, first.stderr
    # The customer writes again before anyone answers; the rule matches again.
    with inbox.open("a", encoding="utf-8") as fh:
        fh.write(_line(3, "Hello?? opening hours please", "a", "lena", 1) + "\n")
    for _ in range(2):
        again = run_cli(config, "poll", "--once")
        assert again.returncode == 0, again.stderr
    sent = [json.loads(line) for line in replies.read_text().splitlines()]
    assert [(s["thread"], s["text"]) for s in sent] == [
        ("a", "Hi Lena! We're open 9-17 on weekdays. – Kestrel")]
    rows = {c["author"]["handle"]: c for c in
            json.loads(run_cli(config, "list", "--json", "--status", "all").stdout)}
    lena = rows["lena"]
    assert "faq" in lena["tags"] and "faq" not in rows["omar"]["tags"]
    # Automated: it is in the thread, but the customer is still waiting for a person.
    assert lena["first_response_at"] is None and lena["waiting_since"] is not None
    shown = json.loads(run_cli(config, "show", str(lena["id"]), "--json").stdout)
    out = [m for m in shown["messages"] if m["direction"] == "out"]
    assert len(out) == 1 and out[0]["automated"] is True
    assert [e["type"] for e in shown["events"]].count("auto_replied") == 1
