"""Top-1 / top-3 accuracy of saved-reply suggestions on the labelled set.

    .venv/bin/python bench/suggest_accuracy.py [--misses] [--replies FILE] [--eval FILE]

The set (tests/rules/data/suggest_eval.jsonl) holds realistic customer messages in English
and Japanese (mentions, comments, DMs, emails; typos, full/half-width, mixed language),
each with the saved reply a person would pick from tests/rules/data/replies.toml.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from replydeck.config.loader import read_toml  # noqa: E402
from replydeck.config.replies import parse  # noqa: E402
from replydeck.config.table import Table  # noqa: E402
from replydeck.inbox.suggest import Suggester  # noqa: E402

DATA = ROOT / "tests" / "rules" / "data"


@dataclass
class Result:
    total: int
    top1: int
    top3: int
    by_language: dict[str, Counter]
    misses: list[tuple[dict, list[str]]]

    @property
    def top1_rate(self) -> float:
        return self.top1 / self.total

    @property
    def top3_rate(self) -> float:
        return self.top3 / self.total


def evaluate(replies_file: Path = DATA / "replies.toml",
             eval_file: Path = DATA / "suggest_eval.jsonl") -> Result:
    replies = parse(Table(read_toml(replies_file), "", str(replies_file)), replies_file.parent)
    suggester = Suggester(replies)
    cases = [json.loads(line) for line in eval_file.read_text("utf-8").splitlines() if line]
    top1 = top3 = 0
    by_language: dict[str, Counter] = {}
    misses = []
    for case in cases:
        names = [s.name for s in suggester.suggest(case["messages"], case["language"], 3)]
        lang = "ja" if case["expected"].endswith("-ja") else "en"
        counts = by_language.setdefault(lang, Counter())
        counts["total"] += 1
        if names[:1] == [case["expected"]]:
            top1 += 1
            counts["top1"] += 1
        if case["expected"] in names:
            top3 += 1
            counts["top3"] += 1
        else:
            misses.append((case, names))
    suggester.close()
    return Result(len(cases), top1, top3, by_language, misses)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=Path, default=DATA / "replies.toml")
    parser.add_argument("--eval", type=Path, default=DATA / "suggest_eval.jsonl")
    parser.add_argument("--misses", action="store_true", help="list the top-3 misses")
    args = parser.parse_args()
    result = evaluate(args.replies, args.eval)
    print(f"messages: {result.total}")
    print(f"top-1: {result.top1_rate:.3f} ({result.top1}/{result.total})")
    print(f"top-3: {result.top3_rate:.3f} ({result.top3}/{result.total})")
    for lang, c in sorted(result.by_language.items()):
        print(f"  {lang}: top-1 {c['top1'] / c['total']:.3f}  top-3 {c['top3'] / c['total']:.3f}"
              f"  (n={c['total']})")
    if args.misses:
        for case, names in result.misses:
            print(f"MISS #{case['id']} expected {case['expected']}: got {names} "
                  f"<- {' / '.join(case['messages'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
