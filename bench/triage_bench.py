"""The judgement the store runs on every ingest: triage + rules, per assessment.

    python -m bench triage [--rounds N] [--threads N]

Threads are built from the store benchmark's traffic (its openers, nudges, fillers and our
replies, English and Japanese, platform-typical lengths) with 1, 5 and 15 messages; the
latest message is the new one. Each is assessed by the real assessor (``build_assessor`` of
the demo config: triage, SLA, business hours, rules) in two ways:

* **first**: every thread's texts are new to the process (what an ingest of fresh traffic
  costs when nothing about those messages has been worked out before);
* **again**: the same threads assessed once more (what a re-assessment costs: a new
  message in a thread whose older messages were judged before, or a person's action).

The baseline, timed in the same rounds on the same threads, is the ``PlainAssessor`` (the
store's default: fixed targets, no text read); the ratio is real / plain, median over
rounds, so that the figure means the same on a busy machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import store_bench as sb  # noqa: E402
from replydeck.inbox.assess import Assessor, PlainAssessor, ThreadFacts  # noqa: E402
from replydeck.inbox.model import Direction, Kind, Message, Status  # noqa: E402

#: Which messages of a thread are ours: the customer writes, nudges, we answer, and so on.
OURS_EVERY = 3
KINDS = (Kind.MENTION, Kind.DM, Kind.COMMENT, Kind.EMAIL)
SCENARIOS = ("complaint", "shipping", "refund", "question", "praise", "outage", "password")


def thread_plan(lang: str, size: int, count: int, salt: int) -> sb.Plan:
    """``count`` conversations of ``size`` messages each, in ``lang``."""
    specs, timeline = [], []
    start = 1_780_000_000_000
    for conv in range(count):
        times = tuple(start + conv * 60_000 + i * 1_200_000 for i in range(size))
        outbound = tuple(i % OURS_EVERY == OURS_EVERY - 1 for i in range(size))
        scenario = SCENARIOS[(conv + salt) % len(SCENARIOS)]
        source = conv % len(sb.SOURCES)
        kind = KINDS[conv % len(KINDS)]
        if kind not in sb.SOURCES[source][2]:
            kind = sb.SOURCES[source][2][0]
        specs.append(sb.ConvSpec(source, kind, lang, scenario, 1_000 + conv, times, outbound))
        timeline += [(t, conv, i) for i, t in enumerate(times)]
    return sb.Plan(seed=salt, specs=specs, timeline=sorted(timeline), end_ms=start)


def facts_of(messages: list[Message], conv: int) -> ThreadFacts:
    last = messages[-1]
    waiting_since = None
    for m in messages:
        if m.direction == Direction.OUT:
            waiting_since = None
        elif waiting_since is None:
            waiting_since = m.created_at
    customer = next(m.author for m in messages if m.direction == Direction.IN)
    replied = [m.created_at for m in messages if m.direction == Direction.OUT]
    return ThreadFacts(
        conversation_id=conv, source=last.source, platform=last.platform, kind=last.kind,
        status=Status.OPEN, author=customer, messages=messages, new_messages=[last], tags=[],
        assignee=None, waiting_since=waiting_since,
        first_response_at=replied[0] if replied else None,
        last_human_reply_at=replied[-1] if replied else None, last_auto_reply_at=None,
        is_new=len(messages) == 1, reopened=False, answered_before=bool(replied))


def threads(lang: str, size: int, count: int, salt: int) -> list[ThreadFacts]:
    p = thread_plan(lang, size, count, salt)
    out = []
    for conv in range(count):
        msgs = [sb.build_message(p, conv, i) for i in range(size)]
        # Threads end with a customer message: that is what an ingest brings.
        if msgs[-1].direction == Direction.OUT:
            msgs[-1] = replace(msgs[-1], direction=Direction.IN, author=msgs[0].author,
                               text=msgs[0].text + " ?")
        out.append(facts_of(msgs, conv))
    return out


def per_call(assessor: Assessor, batch: Sequence[ThreadFacts]) -> float:
    now = batch[0].messages[-1].created_at + timedelta(minutes=20)
    started = time.perf_counter()
    for facts in batch:
        assessor.assess(facts, now)
    return (time.perf_counter() - started) / len(batch) * 1e6


def measure(real: Assessor, plain: Assessor, make: Callable[[int], list[ThreadFacts]],
            rounds: int) -> dict[str, tuple[float, float]]:
    """Median µs per assessment and median ratio to plain, for first and repeat calls."""
    figures: dict[str, list[tuple[float, float]]] = {"first": [], "again": []}
    for r in range(rounds):
        batch = make(r)
        base = per_call(plain, batch)
        first = per_call(real, batch)
        again = per_call(real, batch)
        base = min(base, per_call(plain, batch))
        figures["first"].append((first, first / base))
        figures["again"].append((again, again / base))
    return {k: (statistics.median(v[0] for v in vals), statistics.median(v[1] for v in vals))
            for k, vals in figures.items()}


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench triage",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=60, help="threads per round and size")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="replydeck-triage-bench-") as folder:
        real = sb.real_assessor(Path(folder))
    plain = PlainAssessor()
    print(f"triage_bench: Python {sys.version.split()[0]}, {args.rounds} rounds of "
          f"{args.threads} threads per row")
    print(f"   {'thread':22} {'first µs':>9} {'× plain':>8} {'again µs':>9} {'× plain':>8}")
    for lang in ("en", "ja"):
        for size in (1, 5, 15):
            def make(r: int, lang: str = lang, size: int = size) -> list[ThreadFacts]:
                return threads(lang, size, args.threads, salt=r * 1009 + size)
            res = measure(real, plain, make, args.rounds)
            (f_us, f_x), (a_us, a_x) = res["first"], res["again"]
            print(f"   {lang} {size:2} message{'s' if size > 1 else ' '}"
                  f"{'':9} {f_us:9.1f} {f_x:8.0f} {a_us:9.1f} {a_x:8.0f}")
    print("   (µs per assessment, median over rounds; × plain = real / PlainAssessor on the\n"
          "    same threads in the same round; first = texts new to the process, again =\n"
          "    the same threads assessed once more)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
