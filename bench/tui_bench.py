"""How fast the inbox opens and answers keys with 1,000 and 100,000 conversations.

    python -m bench.tui_bench [--dir DIR] [--runs N] [--sizes 1000,100000]

Each figure comes from a child process running the real app on a pseudo-terminal (80x24,
real Linux driver), in the same run as a bare one-Static Textual app:

* start: from ``Popen`` to the first write to the terminal after the inbox drew its rows
  (for the bare app: after the Static drew);
* keys: each key is sent straight to the app (``driver.send_message``, the path a real key
  takes), 30 ms after the previous one settled, and timed until the last terminal write it
  caused (idle = 15 ms without output);
* memory: resident set size of the process after the key runs.

Stores are built once per size in ``--dir`` (default: a folder in the temp dir) and reused.
Children run with bytecode caching on (in a private cache folder) and after one untimed
warm-up start, as an installed package would: with ``PYTHONDONTWRITEBYTECODE`` every
start would recompile replydeck's sources, which no installed copy does.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
QUIET_S = 0.015
GAP_S = 0.03
PYCACHE = Path(tempfile.gettempdir()) / "replydeck-tui-bench" / "pycache"
KEY_RUNS = {"j": 60, "pagedown": 40, "G": 25}


# -- building the stores ------------------------------------------------------------------
def build_store(path: Path, n: int) -> None:
    from replydeck.inbox.assess import PlainAssessor
    from replydeck.inbox.model import Author, Kind, Message
    from replydeck.inbox.store import Store

    if path.exists():
        with Store(path, assessor=PlainAssessor()) as s:
            if s.count() == n:
                return
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    people = [Author(f"u{i}", f"user_{i}", name, followers=f)
              for i, (name, f) in enumerate([("Maya Okafor", 820), ("田中 由紀", 1200),
                                             ("Grace Liu", 250_000), ("🎉 Party", 45_000),
                                             ("Dan Whitfield", 15), ("佐藤 健二", 90)])]
    texts = ["Where is my order?", "ログインできません", "Love it!", "refund please",
             "the app is down", "返金をお願いします", "How do I export my data?"]
    where = [("x", Kind.MENTION), ("instagram", Kind.DM), ("mastodon", Kind.MENTION),
             ("email", Kind.EMAIL), ("bluesky", Kind.MENTION), ("facebook", Kind.COMMENT)]
    print(f"building a store with {n:,} conversations in {path} ...", flush=True)
    with Store(path, assessor=PlainAssessor()) as s:
        s.register_source("bench", "jsonl", "demo")
        for start in range(0, n, 5000):
            batch = []
            for i in range(start, min(n, start + 5000)):
                platform, kind = where[i % len(where)]
                batch.append(Message(
                    source="bench", remote_id=f"m{i}", platform=platform, kind=kind,
                    author=people[i % len(people)], text=f"{texts[i % len(texts)]} #{i}",
                    created_at=NOW - timedelta(minutes=(i * 7) % 20_000 + 1),
                    thread_key=f"t{i}"))
            s.ingest("bench", batch, None, now=NOW)


def write_config(folder: Path, db: Path) -> Path:
    path = folder / f"{db.stem}.toml"
    path.write_text(f'[agent]\nname = "bench"\n\n[storage]\ndatabase = "{db}"\n',
                    encoding="utf-8")
    return path


# -- the child: runs one app on the pty and reports ------------------------------------
def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _Probe:
    """Wraps the driver's write: the time of every terminal write."""

    def __init__(self) -> None:
        self.drawn = False
        self.first_paint: float | None = None
        self.last_write = 0.0
        self.writes = 0

    def wrap(self, driver) -> None:
        original = driver.write

        def write(data: str) -> None:
            now = time.perf_counter()
            if self.drawn and self.first_paint is None:
                self.first_paint = time.time()
            self.last_write = now
            self.writes += 1
            original(data)

        driver.write = write


async def _time_key(app, probe: _Probe, key: str) -> tuple[float, float]:
    from textual import events

    char = key if len(key) == 1 else None
    event = events.Key(key, char)
    event.set_sender(app)
    before = probe.writes
    c0 = time.process_time()
    t0 = time.perf_counter()
    app._driver.send_message(event)
    deadline = t0 + 3.0
    while time.perf_counter() < deadline:
        await asyncio.sleep(0.001)
        if probe.writes > before and time.perf_counter() - probe.last_write > QUIET_S:
            break
    cpu = time.process_time() - c0
    return (probe.last_write - t0) * 1000, cpu * 1000


async def _keys(app, probe: _Probe) -> dict[str, list[float]]:
    await asyncio.sleep(0.5)
    out: dict[str, list[float]] = {}
    for key, runs in KEY_RUNS.items():
        await _time_key(app, probe, "g")
        times = []
        for _ in range(runs):
            if key == "G":
                await _time_key(app, probe, "g")
            # Past the previous frame: Textual paints at most once per 1/60 s, so a key
            # right after a paint waits for the next frame whatever the inbox does.
            await asyncio.sleep(GAP_S)
            ms, _cpu = await _time_key(app, probe, key)
            times.append(ms)
        out[key] = times
    return out


def child_bare(out: Path) -> None:
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    probe = _Probe()

    class Drawn(Static):
        def render(self):
            probe.drawn = True
            return super().render()

    class Bare(App):
        def compose(self) -> ComposeResult:
            yield Drawn("hello")

        def on_mount(self) -> None:
            probe.wrap(self._driver)
            self.set_interval(0.01, self._check)

        def _check(self) -> None:
            if probe.first_paint is not None:
                self.exit()

    Bare().run()
    out.write_text(json.dumps({"first_paint": probe.first_paint, "rss_mb": _rss_mb()}))


def child_inbox(config_path: Path, out: Path) -> None:
    stages = {"start": time.time()}
    from replydeck.config.loader import load_config
    from replydeck.tui.app import ReplydeckApp
    from replydeck.tui.widgets import inbox_list

    probe = _Probe()
    original_render = inbox_list.InboxList.render_line

    def render_line(self, y):
        if self.total:
            probe.drawn = True
        return original_render(self, y)

    inbox_list.InboxList.render_line = render_line
    stages["imported"] = time.time()
    config = load_config(config_path, data_dir=config_path.parent)
    stages["config"] = time.time()
    result: dict = {"stages": stages}

    class Timed(ReplydeckApp):
        def on_mount(self) -> None:
            stages["mount"] = time.time()
            probe.wrap(self._driver)
            super().on_mount()
            self.run_worker(self._bench())

        async def _bench(self) -> None:
            while probe.first_paint is None:
                await asyncio.sleep(0.005)
            result["keys"] = await _keys(self, probe)
            result["rss_mb"] = _rss_mb()
            result["total"] = self.inbox_screen.inbox.total
            self.exit()

    app = Timed(config, clock=lambda: NOW, start_services=False)
    app.run()
    result["first_paint"] = probe.first_paint
    out.write_text(json.dumps(result))


# -- the parent: a pty per child ---------------------------------------------------------
def run_child(args: list[str], out: Path) -> tuple[float, dict]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT),
           "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    # Like an installed package: compiled once (into a bench-private cache, so the
    # source tree stays clean), not on every start.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("NO_COLOR", None)
    out.unlink(missing_ok=True)
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "bench.tui_bench", "--child", *args,
                             str(out)], stdin=slave, stdout=slave, stderr=slave, env=env,
                            cwd=ROOT, close_fds=True)
    os.close(slave)
    try:
        while proc.poll() is None:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    os.read(master, 65536)
                except OSError:
                    break
        proc.wait(60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    if not out.exists():
        raise SystemExit(f"bench child {args[0]} failed (exit {proc.returncode})")
    return t0, json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "replydeck-tui-bench")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "bare":
            child_bare(Path(rest[0]))
        else:
            child_inbox(Path(rest[0]), Path(rest[1]))
        return

    folder: Path = args.dir
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    configs = {}
    for n in sizes:
        db = folder / f"inbox-{n}.db"
        build_store(db, n)
        configs[n] = write_config(folder, db)
    out = folder / "result.json"

    # One untimed start of each, so every timed start finds its bytecode compiled.
    run_child(["bare"], out)
    run_child(["inbox", str(configs[sizes[0]])], out)
    bare = []
    starts: dict[int, list[float]] = {n: [] for n in sizes}
    last: dict[int, dict] = {}
    for _ in range(args.runs):
        t0, res = run_child(["bare"], out)
        bare.append(res["first_paint"] - t0)
        for n in sizes:
            t0, res = run_child(["inbox", str(configs[n])], out)
            assert res["total"] == n, res["total"]
            starts[n].append(res["first_paint"] - t0)
            if os.environ.get("BENCH_STAGES"):  # where the start-up time goes
                print(n, {k: round(v - t0, 3) for k, v in res["stages"].items()})
            last[n] = res

    bare_s = statistics.median(bare)
    print(f"\nreplydeck TUI bench (80x24 pty, median of {args.runs} runs)")
    print(f"  bare one-Static Textual app, first paint: {bare_s:.3f} s")
    base = sizes[0]
    for n in sizes:
        s = statistics.median(starts[n])
        print(f"  inbox {n:>7,} conversations, first paint: {s:.3f} s "
              f"({s / bare_s:.2f}x bare)")
    print("  key press to repainted screen, median (p90) ms:")
    for key in KEY_RUNS:
        cells = []
        for n in sizes:
            times = last[n]["keys"][key]
            med = statistics.median(times)
            p90 = sorted(times)[int(len(times) * 0.9) - 1]
            cells.append(f"{n:,}: {med:6.2f} ({p90:6.2f})")
        ratio = (statistics.median(last[sizes[-1]]["keys"][key]) /
                 statistics.median(last[base]["keys"][key]))
        print(f"    {key:<9} " + "   ".join(cells) + f"   ratio {ratio:.2f}x")
    print("  resident memory after the key runs:")
    for n in sizes:
        print(f"    {n:>7,}: {last[n]['rss_mb']:.1f} MB "
              f"({last[n]['rss_mb'] / last[base]['rss_mb']:.2f}x the {base:,} figure)")
    big = sizes[-1]
    med = {n: {k: statistics.median(last[n]["keys"][k]) for k in KEY_RUNS} for n in sizes}
    checks = [
        (f"first paint at {big:,} < 1.0 s", statistics.median(starts[big]) < 1.0),
        (f"first paint at {big:,} <= 2.0x bare", statistics.median(starts[big]) <= 2 * bare_s),
        ("j median < 16 ms", all(med[n]["j"] < 16 for n in sizes)),
        ("PgDn and G medians < 33 ms",
         all(med[n][k] < 33 for n in sizes for k in ("pagedown", "G"))),
        (f"key medians at {big:,} within 1.2x of {base:,}",
         all(med[big][k] <= 1.2 * med[base][k] for k in KEY_RUNS)),
        (f"memory at {big:,} < 100 MB and within 1.2x",
         last[big]["rss_mb"] < 100 and last[big]["rss_mb"] <= 1.2 * last[base]["rss_mb"]),
    ]
    print("  targets (issue 3):")
    for label, ok in checks:
        print(f"    {'met ' if ok else 'MISSED'}  {label}")


if __name__ == "__main__":
    main()
