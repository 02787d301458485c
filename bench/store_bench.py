"""Store performance at 100,000 conversations / 1,000,000 messages (issue 2, "Performance").

    .venv/bin/python -m bench store [--small] [--keep DIR] [--reuse] [--plans]

Measures, every figure against a baseline timed in the same run (the machine is shared
and noisy, so absolute numbers move; the ratios much less):

1. ingest throughput of the real ``Store.ingest`` as a ratio to a plain ``executemany`` of
   the same rows into a bare table, with the breakdown that explains the gap: the SQL
   statements ingest ran, replayed alone (``bench/sql_replay.py``), and the search
   indexing that follows ingest (``Store.index_pending``) timed on its own;
2. a 50-row inbox window at the start, middle and end of the list, at 1,000 and at
   100,000 conversations (p50/p95 and the ratio between them);
3. full-text search windows (Latin, Japanese, and a two-character Japanese term, which
   the trigram index cannot serve and falls back to LIKE);
4. ``replydeck list --limit 50`` wall time as a ratio to ``python -c pass``.

The data is realistic traffic (see :func:`plan` and :func:`build_message`): six sources,
English and Japanese text of platform-typical lengths, ~10 messages per conversation
(mostly inbound, some replies sent from the platform's app), customers writing again, and
most older conversations closed by a person, as in a long-lived inbox.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.sql_replay import Statement, connections_recorded, replay  # noqa: E402
from replydeck.config.loader import load_config  # noqa: E402
from replydeck.demo_config import write_demo_config  # noqa: E402
from replydeck.inbox.assess import Assessor, PlainAssessor  # noqa: E402
from replydeck.inbox.model import Author, Direction, Kind, Message, Status  # noqa: E402
from replydeck.inbox.rules import build_assessor  # noqa: E402
from replydeck.inbox.store import LAST, InboxFilter, Store  # noqa: E402

UTC = timezone.utc
BATCH = 2_000
MS_HOUR = 3_600_000
MS_DAY = 24 * MS_HOUR

# -- the traffic -------------------------------------------------------------------------
#: (source name, platform, kinds it delivers, share of conversations)
SOURCES: list[tuple[str, str, tuple[Kind, ...], int]] = [
    ("x-brand", "x", (Kind.MENTION, Kind.MENTION, Kind.DM), 30),
    ("instagram-shop", "instagram", (Kind.COMMENT, Kind.COMMENT, Kind.DM), 20),
    ("facebook-page", "facebook", (Kind.COMMENT, Kind.DM, Kind.REVIEW), 18),
    ("support-mail", "email", (Kind.EMAIL,), 16),
    ("bluesky", "bluesky", (Kind.REPLY, Kind.MENTION, Kind.DM), 9),
    ("mastodon", "mastodon", (Kind.MENTION, Kind.DM), 7),
]
#: Typical length (characters) of a customer message by kind: (min, max).
LENGTHS = {Kind.MENTION: (40, 280), Kind.REPLY: (30, 300), Kind.COMMENT: (20, 320),
           Kind.DM: (20, 600), Kind.REVIEW: (120, 900), Kind.EMAIL: (250, 2_500)}

FIRST = {
    "en": ["Maya", "Dan", "Priya", "Tom", "Lucía", "Ben", "Chloe", "Sam", "Olu", "Hannah",
           "Marcus", "Ingrid", "Rafael", "Zoë", "Aisha", "Liam", "Noah", "Emma", "Grace",
           "Jonas", "Fatima", "Mateo", "Sofia", "Arjun", "Elena", "Kwame", "Nina", "Oscar"],
    "ja": ["由紀", "健二", "遥", "空", "葵", "蓮", "芽衣", "大輝", "陽菜", "拓海", "結衣",
           "翔太", "美咲", "悠斗", "さくら", "大翔", "愛莉", "湊"],
}
LAST_NAMES = {
    "en": ["Okafor", "Whitfield", "Sharma", "Kowalski", "Ramos", "Adler", "Martin", "Rivera",
           "Adeyemi", "Kim", "Thompson", "Nilsen", "Gómez", "Williams", "Khan", "Murphy",
           "Schmidt", "Rossi", "Novak", "Silva", "Chen", "Dubois", "Larsen", "Moreau"],
    "ja": ["田中", "佐藤", "松本", "小林", "中村", "伊藤", "渡辺", "山本", "鈴木", "加藤",
           "高橋", "吉田", "山田", "佐々木", "井上", "木村", "林", "清水"],
}
ROMAJI = ["tanaka", "sato", "matsumoto", "kobayashi", "nakamura", "ito", "watanabe",
          "yamamoto", "suzuki", "kato", "takahashi", "yoshida"]
PRODUCTS = {
    "en": ["kettle", "Pro plan", "travel mug", "grinder", "filter papers", "gift card",
           "espresso machine", "subscription box", "milk frother", "scale", "teapot"],
    "ja": ["ケトル", "Proプラン", "タンブラー", "コーヒーミル", "フィルター", "ギフトカード",
           "エスプレッソマシン", "定期便", "ミルクフォーマー", "スケール"],
}
CITIES = {"en": ["Toronto", "Dublin", "Leeds", "Austin", "Berlin", "Lagos", "Melbourne",
                 "Lisbon", "Oslo", "Denver", "Glasgow", "Mumbai"],
          "ja": ["札幌", "仙台", "横浜", "名古屋", "京都", "大阪", "神戸", "広島", "福岡",
                 "那覇", "金沢"]}
DAYS_EN = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
DAYS_JA = ["月曜日", "火曜日", "水曜日", "木曜日", "金曜日", "土曜日", "日曜日"]

#: What starts a conversation, by scenario (weights sum to 100).
OPENERS: dict[str, tuple[int, dict[str, list[str]]]] = {
    "shipping": (16, {
        "en": ["How long does shipping to {city} usually take? Ordered on {day} ({order})",
               "Hi! My order {order} still says 'label created' after {n} days. When will it ship?",
               "Where is my package? Tracking for {order} hasn't moved since {day}.",
               "Do you ship to {city}, and how long does it take?"],
        "ja": ["注文{order}の配送にはどれくらいかかりますか？",
               "{n}日前に注文したのにまだ発送されていません。いつ届きますか？（{order}）",
               "{city}への配送は何日くらいかかりますか？"]}),
    "password": (10, {
        "en": ["I can't reset my password, the reset email never arrives. Checked spam too.",
               "Password reset link says 'expired' every time I click it. Help?",
               "Locked out of my account after changing phones. How do I reset my password?"],
        "ja": ["パスワード再設定のメールが届きません。迷惑メールフォルダも確認しました。",
               "パスワードをリセットしようとすると「リンクの有効期限切れ」と表示されます。"]}),
    "question": (14, {
        "en": ["How much is the {product} per month? Is there a student discount?",
               "Does the {product} work with 220V? Moving to {city} next month.",
               "What are your opening hours on {day}?",
               "Is the {product} back in stock anytime soon?"],
        "ja": ["{product}の料金はいくらですか？学割はありますか？",
               "{day}の営業時間を教えてください。",
               "{product}の在庫はいつ頃入りますか？"]}),
    "complaint": (16, {
        "en": ["Order {order} arrived broken. Second time this month. Really disappointed.",
               "Charged twice for {order}. Please fix this today.",
               "Waited {n} minutes on hold and got disconnected. Terrible service.",
               "The replacement {product} you sent is the wrong size. Again."],
        "ja": ["届いた{product}が壊れていました。注文番号{order}です。",
               "二重に請求されています。早急に対応してください。",
               "サポートに何度連絡しても返事がありません。"]}),
    "refund": (9, {
        "en": ["I want a refund for {order}. Not a voucher. A refund.",
               "Returned {order} {n} weeks ago and still no refund. Where is my money?",
               "Cancel my subscription and refund this month, I never used it."],
        "ja": ["注文{order}を返品しました。返金はいつになりますか？",
               "返金してください。クーポンではなく返金を希望します。"]}),
    "outage": (4, {
        "en": ["is the app down? can't log in for the last {n} min",
               "app is down for me too. Error 503 at checkout",
               "Down for everyone or just me? 'Something went wrong' on every page"],
        "ja": ["アプリが開けません。障害ですか？", "ログインできない…障害発生中？",
               "決済画面でエラーが出ます。障害でしょうか"]}),
    "praise": (22, {
        "en": ["Just wanted to say your support team is amazing. Sorted in {n} minutes!",
               "The new {product} is gorgeous. Best purchase this year ☕",
               "Shoutout to whoever packed {order}, the handwritten note made my day"],
        "ja": ["いつも素早い対応ありがとうございます！", "新しい{product}、とても使いやすいです☕"]}),
    "legal": (1, {
        "en": ["If {order} isn't refunded by {day} my lawyer will be in touch."],
        "ja": ["このまま対応していただけないなら、弁護士に相談して訴訟も検討します。"]}),
    "spam": (8, {
        "en": ["🚀 Get 10k REAL followers FAST → grow-fast.example/promo{n} 🚀🚀",
               "Congratulations! You won a gift card. Claim at prize{n}.example before it expires"],
        "ja": ["【副業】スマホだけで月{n}万円！詳しくはプロフィールのリンクから💰"]}),
}
#: Sentences that make a message as long as its kind usually is.
FILLERS = {
    "en": ["I've been a customer for {n} years and this never happened before.",
           "I already tried logging out and back in, and reinstalling the app.",
           "My partner ordered the same {product} from {city} and got it in two days.",
           "Can someone from the team actually look at this instead of a bot?",
           "The order confirmation said it would arrive by {day}.",
           "I've attached a photo of the box as it arrived.",
           "Happy to send more details if you need them.",
           "Your website says one thing and the email says another.",
           "Not the end of the world, but a bit annoying.",
           "I need the {product} for a gift on {day}, so timing matters.",
           "The courier left a note saying nobody was home, but I was.",
           "It's the {n}th time I'm writing about this.",
           "Tracking shows it stuck in a depot near {city}.",
           "Otherwise I love the {product}, it's just this one thing.",
           "Please don't send me another survey until this is fixed.",
           "Also, is the {product} dishwasher safe?",
           "I paid extra for express delivery.",
           "Thanks in advance for any help."],
    "ja": ["{n}年以上利用していますが、こんなことは初めてです。",
           "アプリの再インストールも試しました。",
           "家族が{city}で同じ{product}を注文したら2日で届いたそうです。",
           "確認メールには{day}までに届くと書いてありました。",
           "箱の写真を添付します。",
           "必要であれば詳しい情報をお送りします。",
           "{day}に贈り物として使いたいので、急いでいます。",
           "配送状況が{city}の営業所で止まったままです。",
           "{product}自体はとても気に入っています。",
           "速達料金も払っています。",
           "よろしくお願いいたします。",
           "お手数ですがご確認をお願いします。"],
}
NUDGES = {
    "en": ["Hello?? Still waiting on this.", "It's been over an hour. Is anyone there?",
           "Any update? I need this sorted today.", "Sent you the order number, {order}.",
           "Tried that, same error. What now?", "Thanks! But the link you sent gives a 404."],
    "ja": ["まだ返事がありません。確認してもらえますか？", "もう1時間以上待っています。",
           "ありがとうございます。でもまだ解決していません。",
           "教えていただいた方法を試しましたが、同じエラーが出ます。",
           "注文番号は{order}です。"],
}
REPLIES = {
    "en": ["Hi {first}, sorry about this! Could you DM us your order number so we can check?",
           "Thanks for flagging, {first}. The team is on it and we'll update you here.",
           "Hi {first}, we've just sent you a DM with the next steps.",
           "So glad to hear it, {first}! Thank you 💙",
           "Hi {first}, your refund for {order} has been issued; it takes 3-5 working days."],
    "ja": ["{first}様、ご不便をおかけして申し訳ありません。注文番号をDMでお知らせいただけますか？",
           "{first}様、ご連絡ありがとうございます。担当チームが確認しております。",
           "{first}様、温かいお言葉ありがとうございます！",
           "{first}様、{order}の返金手続きが完了しました。反映まで3〜5営業日かかります。"],
}


@dataclass(frozen=True)
class ConvSpec:
    source: int
    kind: Kind
    lang: str
    scenario: str
    author: int
    #: Epoch ms of each message, and whether it is ours (outbound).
    times: tuple[int, ...]
    outbound: tuple[bool, ...]


@dataclass
class Plan:
    """A deterministic stream of traffic: every message is a pure function of its place."""

    seed: int
    specs: list[ConvSpec]
    #: (time ms, conversation, message index), in time order.
    timeline: list[tuple[int, int, int]]
    end_ms: int

    @property
    def messages(self) -> int:
        return len(self.timeline)


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def plan(conversations: int, seed: int = 1, end: datetime | None = None) -> Plan:
    """About ten messages per conversation, spread over the 120 days before ``end``."""
    rng = random.Random(seed)
    end_ms = int((end or datetime(2026, 11, 20, 12, tzinfo=UTC)).timestamp() * 1000)
    begin_ms = end_ms - 120 * MS_DAY
    step = (end_ms - begin_ms - 2 * MS_DAY) / conversations
    scenario_weights = {k: w for k, (w, _) in OPENERS.items()}
    source_weights = [s[3] for s in SOURCES]
    # Repeat customers: a pool a twentieth the size of the traffic, some far more active.
    regulars = max(10, conversations // 20)
    specs: list[ConvSpec] = []
    timeline: list[tuple[int, int, int]] = []
    for conv in range(conversations):
        src = rng.choices(range(len(SOURCES)), weights=source_weights)[0]
        kind = rng.choice(SOURCES[src][2])
        lang = "ja" if rng.random() < 0.3 else "en"
        scenario = _weighted(rng, scenario_weights)
        author = (int(regulars * rng.random() ** 2) if rng.random() < 0.35
                  else regulars + conv)
        count = 1 if scenario == "spam" else min(60, 1 + int(rng.gammavariate(1.8, 5.7)))
        t = int(begin_ms + conv * step + rng.random() * step)
        times, outbound = [], []
        prev_out = True
        for i in range(count):
            # Our replies come after a customer message; customers write again or answer.
            out = i > 0 and not prev_out and rng.random() < 0.45
            if i:
                mean = 1.5 * MS_HOUR if out else (3 * MS_HOUR if prev_out else 0.5 * MS_HOUR)
                t += 1_000 + int(rng.expovariate(1 / mean))
            times.append(t)
            outbound.append(out)
            prev_out = out
            timeline.append((t, conv, i))
        specs.append(ConvSpec(src, kind, lang, scenario, author, tuple(times), tuple(outbound)))
    timeline.sort()
    return Plan(seed, specs, timeline, max(end_ms, timeline[-1][0] + 60_000))


def _fill(rng: random.Random, template: str, lang: str, first: str) -> str:
    days = DAYS_JA if lang == "ja" else DAYS_EN
    return template.format(
        order=f"KS-{rng.randrange(100_000, 999_999)}", product=rng.choice(PRODUCTS[lang]),
        city=rng.choice(CITIES[lang]), day=rng.choice(days), n=rng.randrange(2, 60),
        first=first)


def _person(lang: str, author: int) -> tuple[str, str, str]:
    """(handle, display name, first name) of customer number ``author``."""
    r = random.Random(author * 7919 + 17)
    first, last = r.choice(FIRST[lang]), r.choice(LAST_NAMES[lang])
    if lang == "ja":
        return f"{r.choice(ROMAJI)}_{author % 10_000}", f"{last} {first}", first
    return f"{first.lower()}{last[:3].lower()}{author % 10_000}", f"{first} {last}", first


def build_message(p: Plan, conv: int, index: int) -> Message:
    spec = p.specs[conv]
    source, platform, _, _ = SOURCES[spec.source]
    rng = random.Random(p.seed * 1_000_003 + conv * 64 + index)
    handle, name, first = _person(spec.lang, spec.author)
    out = spec.outbound[index]
    if out:
        author = Author(id=f"brand-{platform}", handle="kestrel_help", name="Kestrel Support")
        text = _fill(rng, rng.choice(REPLIES[spec.lang]), spec.lang, first)
    else:
        followers = int(rng.lognormvariate(5, 1.8)) if spec.scenario != "spam" else 12
        author = Author(id=f"u{spec.author}", handle=handle, name=name, followers=followers,
                        url=f"https://{platform}.example/{handle}")
        if index == 0:
            opener = OPENERS[spec.scenario][1][spec.lang]
            text = _fill(rng, rng.choice(opener), spec.lang, first)
        else:
            text = _fill(rng, rng.choice(NUDGES[spec.lang]), spec.lang, first)
        low, high = LENGTHS[spec.kind]
        target = rng.randint(low, high) // (2 if spec.lang == "ja" else 1)
        sep = "" if spec.lang == "ja" else " "
        while len(text) < target and spec.scenario != "spam":
            text += sep + _fill(rng, rng.choice(FILLERS[spec.lang]), spec.lang, first)
        if spec.kind == Kind.EMAIL:
            greeting = "お世話になっております。\n\n" if spec.lang == "ja" else "Hello,\n\n"
            text = f"{greeting}{text}\n\n{name}\nSent from my phone"
    remote_id = f"{conv}-{index}"
    created = datetime.fromtimestamp(spec.times[index] / 1000, UTC)
    raw = {"id": remote_id, "conversation_id": f"t{conv}", "created_at": created.isoformat(),
           "lang": spec.lang, "author_id": author.id,
           "public_metrics": {"like_count": rng.randrange(5), "reply_count": index}}
    engagement = {} if spec.kind.is_private else {"likes": rng.randrange(5)}
    return Message(
        source=source, remote_id=remote_id, platform=platform, kind=spec.kind, author=author,
        text=text, created_at=created, direction=Direction.OUT if out else Direction.IN,
        thread_key=f"t{conv}", in_reply_to=f"{conv}-{index - 1}" if index else None,
        url=f"https://{platform}.example/p/{remote_id}", language=spec.lang,
        engagement=engagement, raw=raw)


@dataclass
class Batch:
    source: str
    messages: list[Message]
    #: The plan's conversation index of each message (for the baseline rows).
    convs: list[int]
    authors: list[int]


def batches(p: Plan, start: int, stop: int, size: int = BATCH) -> Iterator[Batch]:
    """Messages ``start:stop`` of the timeline as each source's poller would hand them over."""
    pending: dict[int, Batch] = {}
    for _, conv, index in p.timeline[start:stop]:
        spec = p.specs[conv]
        b = pending.setdefault(spec.source, Batch(SOURCES[spec.source][0], [], [], []))
        b.messages.append(build_message(p, conv, index))
        b.convs.append(conv)
        b.authors.append(-1 if spec.outbound[index] else spec.author)
        if len(b.messages) >= size:
            yield pending.pop(spec.source)
    yield from (b for b in pending.values() if b.messages)


def rows(b: Batch) -> list[tuple[Any, ...]]:
    """The batch as message-table rows (the columns the store writes), for the baselines."""
    return [(m.source, m.remote_id, conv + 1, m.platform, str(m.kind), str(m.direction),
             author + 2, m.text, int(m.created_at.timestamp() * 1000), m.url, m.in_reply_to,
             m.language, json.dumps(m.engagement) if m.engagement else None,
             json.dumps(m.raw), 0, None)
            for m, conv, author in zip(b.messages, b.convs, b.authors, strict=True)]


# -- figures -----------------------------------------------------------------------------
def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty sample."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def say(text: str = "") -> None:
    print(text, flush=True)


@dataclass
class Figure:
    """One line of the final summary."""

    name: str
    value: str
    target: str = ""
    verdict: str = ""


def verdict(ok: bool, cpu_ok: bool | None = None) -> str:
    """``cpu_ok``: whether the same figure in CPU time would meet the target."""
    if ok:
        return "meets"
    return "MISSES (wall clock only; CPU time meets)" if cpu_ok else "MISSES"


# -- databases ---------------------------------------------------------------------------
def open_plain(path: Path) -> sqlite3.Connection:
    """A bare connection with the store's own settings (WAL, synchronous=NORMAL)."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


COLUMNS = ("source, remote_id, conversation_id, platform, kind, direction, author_id, text, "
           "created_at, url, in_reply_to, language, engagement, raw, automated, reply_id")
INSERT_MESSAGES = (f"INSERT INTO messages({COLUMNS}) "
                   "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")


def bare_path(conn: sqlite3.Connection) -> Path:
    return Path(conn.execute("PRAGMA database_list").fetchone()[2])


def open_bare(path: Path) -> sqlite3.Connection:
    conn = open_plain(path)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS messages(id INTEGER PRIMARY KEY, source TEXT, "
        "remote_id TEXT, conversation_id INTEGER, platform TEXT, kind TEXT, direction TEXT, "
        "author_id INTEGER, text TEXT, created_at INTEGER, url TEXT, in_reply_to TEXT, "
        "language TEXT, engagement TEXT, raw TEXT, automated INTEGER, reply_id INTEGER)")
    return conn


def insert_rows(conn: sqlite3.Connection, batch_rows: list[tuple[Any, ...]], *,
                fts: bool = False) -> None:
    """One transaction of ``executemany`` (and, with ``fts``, the store's bulk FTS fill)."""
    conn.execute("BEGIN IMMEDIATE")
    floor = conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0]
    conn.executemany(INSERT_MESSAGES, batch_rows)
    if fts:
        conn.execute("INSERT INTO messages_fts(rowid, text) SELECT id, text FROM messages "
                     "WHERE id > ?", (floor,))
    conn.execute("COMMIT")


def real_assessor(folder: Path) -> Assessor:
    """Triage and rules as `replydeck demo` configures them (SLA, business hours, rules)."""
    config = load_config(write_demo_config(folder / "config"), data_dir=folder / "data")
    return build_assessor(config)


def ingest_all(store: Store, p: Plan, start: int, stop: int,
               bare: sqlite3.Connection | None = None) -> int:
    """Ingest messages ``start:stop`` through ``Store.ingest``; returns batches ingested."""
    n = done = 0
    started, step = time.perf_counter(), 200_000
    for b in batches(p, start, stop):
        store.ingest(b.source, b.messages, f"cursor-{b.messages[-1].remote_id}",
                     now=b.messages[-1].created_at + timedelta(seconds=30))
        if bare is not None:
            insert_rows(bare, rows(b))
        n += 1
        if (done + len(b.messages)) // step > done // step:
            say(f"   … {done + len(b.messages):,} of {stop - start:,} messages "
                f"({time.perf_counter() - started:.0f} s)")
        done += len(b.messages)
    return n


def close_most(store: Store, now_ms: int, seed: int) -> dict[str, int]:
    """What people do over months: close most answered and older conversations, snooze some.

    Goes through the store's own actions (``set_status``/``snooze``), in chunks.
    """
    rng = random.Random(seed)
    done, snoozed = [], []
    for conv_id, last_at in store.conn.execute(
            "SELECT id, last_message_at FROM conversations WHERE bucket = 0"):
        old = now_ms - last_at > 2 * MS_DAY
        r = rng.random()
        if r < (0.9 if old else 0.4):
            done.append(conv_id)
        elif r < (0.93 if old else 0.45):
            snoozed.append(conv_id)
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    for i in range(0, len(done), 5_000):
        store.set_status(done[i:i + 5_000], Status.DONE, actor="bench", now=now)
    for i in range(0, len(snoozed), 5_000):
        store.snooze(snoozed[i:i + 5_000], until=now + timedelta(days=3), actor="bench", now=now)
    return {"done": len(done), "snoozed": len(snoozed)}


def index_everything(store: Store) -> None:
    """What the runtime's indexing loop does after ingest (``runtime.index_all``)."""
    while store.index_pending():
        pass


def checkpoint(store_or_conn: Store | sqlite3.Connection) -> None:
    conn = store_or_conn.conn if isinstance(store_or_conn, Store) else store_or_conn
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def status_mix(store: Store) -> str:
    counts = dict(store.conn.execute("SELECT status, count(*) FROM conversations GROUP BY 1"))
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))


def build_store(path: Path, p: Plan, assessor: Assessor, stop: int | None = None,
                bare: sqlite3.Connection | None = None) -> tuple[Store, float]:
    """A store holding the first ``stop`` messages of the plan, most older ones closed."""
    stop = p.messages if stop is None else stop
    store = Store(path, assessor=assessor)
    started = time.perf_counter()
    ingest_all(store, p, 0, stop, bare)
    index_everything(store)
    close_most(store, p.timeline[stop - 1][0], p.seed)
    checkpoint(store)
    return store, time.perf_counter() - started


# -- 1. ingest -------------------------------------------------------------------------
STAGES = [
    ("bare", "bare table, plain executemany (baseline)"),
    ("indexed", "messages table with its indexes, no FTS"),
    ("fts", "  + FTS fill in the same transaction (INSERT…SELECT)"),
    ("plain", "Store.ingest, default PlainAssessor"),
    ("indexing", "  Store.index_pending of the same batch, after it"),
    ("sustained", "  Store.ingest (PlainAssessor) + index_pending"),
    ("real", "Store.ingest, real assessor (triage + demo rules)"),
]


@contextlib.contextmanager
def bench_data_frozen() -> Iterator[None]:
    """Keep the benchmark's own data out of the garbage collector while timing.

    A full collection walks every tracked object, and here most of them are the bench's:
    the plan of 1,000,000 messages and the batches built ahead of the clock. A poller
    holds one batch. Without this, whichever stage happened to allocate when a full
    collection came due paid for walking the bench's heap (a few µs a message for
    ``Store.ingest``, which allocates; nothing for the bare ``executemany``, which does not).
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def measure_ingest(folder: Path, p: Plan, start: int, main: Store, bare: sqlite3.Connection,
                   real: Assessor) -> list[Figure]:
    """Ingest messages ``start:`` into five databases that each already hold ``:start``.

    Each batch goes through every stage in turn (the order rotating), so the noise of a
    shared machine falls on all of them alike; the ratio is taken batch by batch.
    """
    checkpoint(main)
    checkpoint(bare)
    copies = {name: folder / f"stage-{name}.db" for name in ("indexed", "fts", "plain",
                                                            "stream")}
    for path in copies.values():
        shutil.copyfile(main.path, path)
    bare_stream = folder / "stage-bare-stream.db"
    shutil.copyfile(bare_path(bare), bare_stream)
    os.sync()  # the copies' write-back must not fall on any stage's clock
    indexed, fts = open_plain(copies["indexed"]), open_plain(copies["fts"])
    plain_store = Store(copies["plain"], assessor=PlainAssessor())
    main.assessor = real
    # As the runtime opens them: checkpoints run on a thread beside ingest. Each stage
    # lets that thread finish (untimed) before the next stage runs, so its copying falls
    # on no stage's clock; the streaming run below checks that this is what a steady
    # stream of batches gets.
    for store in (plain_store, main):
        store.checkpoint_in_background()

    def store_ingest(store: Store, b: Batch) -> None:
        store.ingest(b.source, b.messages, f"cursor-{b.messages[-1].remote_id}",
                     now=b.messages[-1].created_at + timedelta(seconds=30))

    def plain_then_index(b: Batch) -> None:
        secs["plain"].append(timed(lambda: store_ingest(plain_store, b)))
        secs["indexing"].append(timed(lambda: index_everything(plain_store)))
        secs["sustained"].append(secs["plain"][-1] + secs["indexing"][-1])
        plain_store.checkpoint()

    def real(b: Batch) -> None:
        secs["real"].append(timed(lambda: store_ingest(main, b)))
        main.checkpoint()

    secs: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    sizes: list[int] = []
    with bench_data_frozen():
        for k, b in enumerate(batches(p, start, p.messages)):
            batch_rows = rows(b)
            runs: list[tuple[str, Callable[[], object]]] = [
                ("bare", lambda r=batch_rows: insert_rows(bare, r)),
                ("indexed", lambda r=batch_rows: insert_rows(indexed, r)),
                ("fts", lambda r=batch_rows: insert_rows(fts, r, fts=True)),
                ("plain", lambda b=b: plain_then_index(b)),
                ("real", lambda b=b: real(b)),
            ]
            shift = k % len(runs)
            for name, fn in runs[shift:] + runs[:shift]:
                if name in ("plain", "real"):  # these time their parts themselves
                    fn()
                else:
                    secs[name].append(timed(fn))
            sizes.append(len(b.messages))
    for conn in (indexed, fts):
        conn.close()
    plain_store.close()
    figures = measure_streaming(p, start, copies["stream"], bare_stream)
    for path in [*copies.values(), bare_stream]:
        remove_db(path)

    total = sum(sizes)
    # Per-batch figures only for full batches (the last of each source is a remainder).
    full = [i for i, n in enumerate(sizes) if n >= BATCH // 2] or list(range(len(sizes)))
    say(f"\n1. Ingest: {total:,} messages in {len(sizes)} batches of up to {BATCH:,} "
        f"(one per source), into stores already holding {start:,} messages")
    say(f"   {'stage':52} {'msg/s':>9} {'µs/msg':>7} {'median':>9} {'slow 5%':>9} "
        f"{'× bare':>7}")
    bare_rates = [sizes[i] / secs["bare"][i] for i in full]
    for name, label in STAGES:
        rates = [sizes[i] / secs[name][i] for i in full]
        ratios = [rates[j] / bare_rates[j] for j in range(len(full))]
        overall = total / sum(secs[name])
        say(f"   {label:52} {overall:9,.0f} {1e6 / overall:7.1f} {statistics.median(rates):9,.0f} "
            f"{pct(rates, 0.05):9,.0f} {statistics.median(ratios):7.3f}")
        if name in ("plain", "sustained", "real"):
            ratio = statistics.median(ratios)
            what = {"plain": "ingest ratio to executemany (plain assessor)",
                    "sustained": "ingest + search indexing ratio (plain)",
                    "real": "ingest ratio to executemany (real assessor)"}[name]
            figures.append(Figure(what, f"{ratio:.3f} ({overall:,.0f} msg/s)", "≥ 0.3",
                                  verdict(ratio >= 0.3)))
    say("   (msg/s = all messages / all time; median and slow 5% over per-batch rates;\n"
        "    × bare = median over batches of stage rate / bare rate for the same batch;\n"
        "    'indexed' and '+ FTS' are plain executemany into copies of the store's schema;\n"
        "    the store's ingest leaves search indexing to index_pending, run after it)")
    return figures


STREAM_ROUNDS = 3


def measure_streaming(p: Plan, start: int, store_db: Path, bare_db: Path) -> list[Figure]:
    """The slice again, as a steady stream: every batch back to back, first into a copy of
    the bare table, then through ``Store.ingest`` (PlainAssessor, background checkpoints)
    with the wait for the last checkpoint included; total wall clock of each. Then the
    SQL statements that ``Store.ingest`` ran, replayed on a third copy with no Python
    between them: the SQLite work alone, the floor under the ratio.

    The bare side takes well under a second, so one stall of this shared machine moves
    it by a third: the stream runs ``STREAM_ROUNDS`` times, each on fresh copies of the
    databases, and the median ratio is the figure.
    """
    all_batches = list(batches(p, start, p.messages))
    all_rows = [rows(b) for b in all_batches]
    total = sum(len(b.messages) for b in all_batches)
    statements = record_stream(all_batches, store_db)
    rounds: list[tuple[float, float, float]] = []  # seconds: bare, Store.ingest, replay
    for round_no in range(1, STREAM_ROUNDS + 1):
        store_copy, bare_copy, replay_copy = (
            db.with_name(f"round-{name}{db.name}")
            for db, name in ((store_db, ""), (bare_db, ""), (store_db, "replay-")))
        for source, copy in ((store_db, store_copy), (bare_db, bare_copy),
                             (store_db, replay_copy)):
            remove_db(copy)
            shutil.copyfile(source, copy)
        os.sync()  # the copies' write-back must not fall on any clock
        bare = open_bare(bare_copy)
        store, replayed = (Store(path, assessor=PlainAssessor())
                           for path in (store_copy, replay_copy))
        for s in (store, replayed):
            s.checkpoint_in_background()

        def replay_all(replayed: Store = replayed) -> None:
            replay(replayed.conn, statements)
            replayed.checkpoint()

        with bench_data_frozen():
            bare_secs = timed(lambda bare=bare: [insert_rows(bare, r) for r in all_rows])
            store_secs = timed(lambda store=store: stream_into(store, all_batches))
            replay_secs = timed(replay_all)
        if fingerprint(replayed.conn) != fingerprint(store.conn):
            raise RuntimeError("the replayed statements did not build what Store.ingest built")
        bare.close()
        store.close()
        replayed.close()
        for copy in (store_copy, bare_copy, replay_copy):
            remove_db(copy)
        rounds.append((bare_secs, store_secs, replay_secs))
        say(f"   streaming, round {round_no}: {len(all_batches)} batches back to back: bare "
            f"{total / bare_secs:,.0f} msg/s, Store.ingest {total / store_secs:,.0f} msg/s "
            f"({bare_secs / store_secs:.3f} × bare), its SQL alone "
            f"{total / replay_secs:,.0f} msg/s ({bare_secs / replay_secs:.3f} × bare)")
    figures = []
    for what, side in (("ingest ratio, batches streamed (plain)", 1),
                       ("the same stream's SQLite work alone (statements replayed)", 2)):
        ratios = [r[0] / r[side] for r in rounds]
        middle = sorted(range(len(rounds)), key=ratios.__getitem__)[len(rounds) // 2]
        secs = rounds[middle][side]
        figures.append(Figure(
            f"{what}, median of {len(rounds)}",
            f"{ratios[middle]:.3f} ({total / secs:,.0f} msg/s, {1e6 * secs / total:.1f} µs/msg)",
            "≥ 0.3" if side == 1 else "", verdict(ratios[middle] >= 0.3) if side == 1 else ""))
    return figures


def stream_into(store: Store, all_batches: Sequence[Batch]) -> None:
    """Every batch through ``Store.ingest``, then the wait for the last checkpoint."""
    for b in all_batches:
        store.ingest(b.source, b.messages, f"cursor-{b.messages[-1].remote_id}",
                     now=b.messages[-1].created_at + timedelta(seconds=30))
    store.checkpoint()


def record_stream(all_batches: Sequence[Batch], store_db: Path) -> list[Statement]:
    """The statements ``Store.ingest`` runs for the stream, recorded on a scratch copy."""
    copy = store_db.with_name(f"record-{store_db.name}")
    remove_db(copy)
    shutil.copyfile(store_db, copy)
    log: list[Statement] = []
    with connections_recorded(log):
        store = Store(copy, assessor=PlainAssessor())
    del log[:]  # opening it: pragmas and migrations
    store.checkpoint_in_background()  # its thread's own connection is not recorded
    stream_into(store, all_batches)
    store.close()
    remove_db(copy)
    return log


def fingerprint(conn: sqlite3.Connection) -> tuple[Any, ...]:
    """Enough of a store's content to tell whether two ingests built the same thing."""
    return conn.execute(
        "SELECT (SELECT count(*) || ':' || total(created_at) FROM messages), "
        "(SELECT count(*) || ':' || total(sort_due) || ':' || total(message_count) "
        " FROM conversations), "
        "(SELECT count(*) || ':' || total(at) FROM events), "
        "(SELECT count(*) || ':' || total(followers) FROM authors), "
        "(SELECT group_concat(name || '=' || cursor) FROM sources)").fetchone()[:]


def remove_db(path: Path) -> None:
    """A database file and its write-ahead log."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# -- 2. windows --------------------------------------------------------------------------
WINDOW_FILTERS = [("open/pending", InboxFilter(), "WHERE bucket = 0"),
                  ("all", InboxFilter(statuses=()), "")]


def window_calls(store: Store, f: InboxFilter, where: str) -> dict[str, dict[str, Any]]:
    """Keyword arguments of ``window`` for the start, the middle and the end of the list."""
    n = store.count(f)
    check = store.conn.execute(f"SELECT count(*) FROM conversations {where}").fetchone()[0]
    if n != check:
        raise RuntimeError(f"bench filter {where!r} counts {check}, the store counts {n}")
    # The row in the middle, or as near it as still leaves a full window after it: a
    # short list (73 open conversations) must not make its middle window look cheap.
    offset = min(n // 2, max(0, n - 51))
    mid = store.conn.execute(
        f"SELECT urgency, sort_due, sort_wait, id FROM conversations {where} "
        "ORDER BY urgency, sort_due, sort_wait, id LIMIT 1 OFFSET ?", (offset,)).fetchone()
    calls = {"start": {}, "middle": {"after": tuple(mid)}, "end": {"before": LAST}}
    for name, kw in calls.items():
        got = len(store.window(f, limit=50, **kw))
        if got != min(50, n if name != "middle" else n - offset - 1):
            raise RuntimeError(f"window at the {name} of {n} rows returned {got}")
    return calls


@dataclass
class Samples:
    """Wall-clock and this thread's CPU milliseconds of repeated calls.

    On a shared machine the wall-clock tail is mostly time spent waiting for a core (a
    preempted 1 ms query takes 5 ms); CPU time shows what the query itself costs.
    """

    wall: list[float]
    cpu: list[float]

    def add(self, fn: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        fn()
        self.cpu.append((time.thread_time() - cpu) * 1000)
        self.wall.append((time.perf_counter() - wall) * 1000)


def samples() -> Samples:
    return Samples([], [])


def measure_windows(stores: dict[str, Store], rounds: int) -> list[Figure]:
    small_label, big_label = list(stores)
    plan_calls = {(label, fname): window_calls(store, f, where)
                  for label, store in stores.items() for fname, f, where in WINDOW_FILTERS}
    ms: dict[tuple[str, str, str], Samples] = {}
    for r in range(rounds + 1):  # round 0 warms the caches and is not kept
        for label, store in stores.items():
            for fname, f, _ in WINDOW_FILTERS:
                for pos, kw in plan_calls[(label, fname)].items():
                    out = ms.setdefault((label, fname, pos), samples()) if r else samples()
                    out.add(lambda s=store, f=f, kw=kw: s.window(f, limit=50, **kw))
    counts = {(label, fname): store.count(f) for label, store in stores.items()
              for fname, f, _ in WINDOW_FILTERS}
    say(f"\n2. Inbox window of 50 rows, {rounds} rounds; wall-clock ms p50 / p95 "
        "[CPU ms p95]")
    say(f"   {'filter':13} {'where':7} {small_label:>24} {big_label:>24} "
        f"{'ratio p50':>9} {'ratio p95':>9} {'CPU p95':>8}")
    figures: list[Figure] = []
    worst_p95, worst_ratio, worst_cpu, worst_cpu_ratio = 0.0, 0.0, 0.0, 0.0
    for fname, _, _ in WINDOW_FILTERS:
        for pos in ("start", "middle", "end"):
            a, b = ms[(small_label, fname, pos)], ms[(big_label, fname, pos)]
            r50 = statistics.median(b.wall) / statistics.median(a.wall)
            r95 = pct(b.wall, 0.95) / pct(a.wall, 0.95)
            cpu95 = pct(b.cpu, 0.95) / pct(a.cpu, 0.95)
            worst_p95, worst_ratio = max(worst_p95, pct(b.wall, 0.95)), max(worst_ratio, r95)
            worst_cpu = max(worst_cpu, pct(b.cpu, 0.95))
            worst_cpu_ratio = max(worst_cpu_ratio, cpu95)
            say(f"   {fname:13} {pos:7} "
                f"{statistics.median(a.wall):6.2f} / {pct(a.wall, 0.95):5.2f} "
                f"[{pct(a.cpu, 0.95):5.2f}] "
                f"{statistics.median(b.wall):6.2f} / {pct(b.wall, 0.95):5.2f} "
                f"[{pct(b.cpu, 0.95):5.2f}] {r50:9.2f} {r95:9.2f} {cpu95:8.2f}")
    say("   rows in the list: " + ", ".join(
        f"{fname} {counts[(label, fname)]:,} at {label}"
        for label in stores for fname, _, _ in WINDOW_FILTERS))
    figures.append(Figure(f"window p95, worst of 6, at {big_label}",
                          f"{worst_p95:.2f} ms [CPU {worst_cpu:.2f}]", "< 5 ms",
                          verdict(worst_p95 < 5, worst_cpu < 5)))
    figures.append(Figure(f"window p95 ratio {big_label} / {small_label}, worst of 6",
                          f"{worst_ratio:.2f}× [CPU {worst_cpu_ratio:.2f}×]", "≤ 1.5×",
                          verdict(worst_ratio <= 1.5, worst_cpu_ratio <= 1.5)))
    return figures


# -- 3. search ---------------------------------------------------------------------------
SEARCHES = [("Latin", "refund"), ("Japanese", "パスワード"),
            ("Japanese, 2 characters (LIKE)", "返金")]


def rare_order_number(store: Store) -> str | None:
    """An order number written in one message in the middle of the store."""
    n = store.conn.execute("SELECT max(id) FROM messages").fetchone()[0] or 0
    for (text,) in store.conn.execute(
            "SELECT text FROM messages WHERE id >= ? AND text LIKE '%KS-%' LIMIT 1", (n // 2,)):
        at = text.index("KS-")
        return text[at:at + 9]
    return None


def measure_search(store: Store, label: str, rounds: int) -> list[Figure]:
    terms = list(SEARCHES)
    rare = rare_order_number(store)
    if rare:
        terms.append(("Latin, one order number", rare))
    ms: dict[str, Samples] = {term: samples() for _, term in terms}
    for r in range(rounds + 1):
        for _, term in terms:
            f = InboxFilter(search=term)
            (ms[term] if r else samples()).add(lambda f=f: store.window(f, limit=50))
    say(f"\n3. Search window (50 rows, open/pending) at {label}, {rounds} rounds, ms")
    say(f"   {'term':42} {'conversations matching':>22} {'p50':>8} {'p95':>8} {'CPU p95':>8}")
    figures = []
    for kind, term in terms:
        matches = store.count(InboxFilter(search=term, statuses=()))
        wall = ms[term].wall
        p50, p95 = statistics.median(wall), pct(wall, 0.95)
        say(f"   {kind + ' ' + repr(term):42} {matches:22,} {p50:8.1f} {p95:8.1f} "
            f"{pct(ms[term].cpu, 0.95):8.1f}")
        cpu95 = pct(ms[term].cpu, 0.95)
        figures.append(Figure(f"search p95 {term!r} ({kind})",
                              f"{p95:.1f} ms [CPU {cpu95:.1f}]", "< 50 ms",
                              verdict(p95 < 50, cpu95 < 50)))
    return figures


def print_plans(store: Store) -> None:
    """EXPLAIN QUERY PLAN of every query one window and one search make."""
    seen: list[str] = []
    store.conn.set_trace_callback(seen.append)
    try:
        for _, f, _ in WINDOW_FILTERS:
            for kw in ({}, {"after": (3, 0, 0, 0)}, {"before": LAST}):
                store.window(f, limit=50, **kw)
        for _, term in SEARCHES:
            store.window(InboxFilter(search=term), limit=50)
    finally:
        store.conn.set_trace_callback(None)
    say("\nQuery plans:")
    for sql in dict.fromkeys(s for s in seen if s.lstrip().upper().startswith("SELECT")):
        say("   " + sql)
        for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql):
            say("      " + str(row[3]))


# -- 4. the command line -----------------------------------------------------------------
def measure_cli(folder: Path, database: Path, rounds: int) -> list[Figure]:
    """Wall time of ``replydeck list --limit 50`` against ``python -c pass``, both ways.

    With a bytecode cache (kept in ``folder``, never in the source tree) as after ``pip
    install``, and without one (``PYTHONDONTWRITEBYTECODE``, which some environments set),
    where every run compiles replydeck's sources again.
    """
    config = write_demo_config(folder / "cli")
    with config.open("a", encoding="utf-8") as fh:
        fh.write(f"\n[storage]\ndatabase = {json.dumps(str(database))}\n")
    script = Path(sys.executable).with_name("replydeck")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "replydeck.cli"]
    cmd += ["--config", str(config), "--data-dir", str(folder / "cli-data"),
            "list", "--limit", "50"]
    nothing = [sys.executable, "-c", "pass"]
    cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    uncached = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    uncached.pop("PYTHONPYCACHEPREFIX", None)
    check = subprocess.run(cmd, capture_output=True, text=True, check=False, env=cached)
    lines = check.stdout.count("\n")
    if check.returncode != 0 or lines < 50:
        raise RuntimeError(f"`replydeck list` failed ({check.returncode}, {lines} lines): "
                           f"{check.stderr[-500:]}")
    secs: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for mode, env in (("cached", cached), ("uncached", uncached)):
            for name, argv in (("pass", nothing), ("list", cmd)):
                secs.setdefault((mode, name), []).append(timed(lambda a=argv, e=env: subprocess.run(
                    a, check=True, env=e, stdout=subprocess.DEVNULL)))
    say(f"\n4. `replydeck list --limit 50` on {database.name} ({lines} lines), {rounds} runs "
        "each, median ms")
    say(f"   {'':34} {'python -c pass':>14} {'replydeck list':>14} {'ratio':>7}")
    figures = []
    for mode, title in (("cached", "with a bytecode cache (installed)"),
                        ("uncached", "without (PYTHONDONTWRITEBYTECODE)")):
        a = statistics.median(secs[(mode, "pass")])
        b = statistics.median(secs[(mode, "list")])
        say(f"   {title:34} {a * 1000:14.0f} {b * 1000:14.0f} {b / a:6.1f}×")
        figures.append(Figure(f"`replydeck list --limit 50` / `python -c pass`, {mode}",
                              f"{b / a:.1f}× ({b * 1000:.0f} ms)", "report"))
    return figures


# -- the run -----------------------------------------------------------------------------
def label(conversations: int, messages: int) -> str:
    def short(n: int) -> str:
        return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else (
            f"{n / 1_000_000:.2f}M" if n >= 1_000_000 else f"{round(n / 1000)}k")
    return f"{short(conversations)}/{short(messages)}"


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench store", description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true",
                    help="1k and 10k conversations (100k messages) instead of 1k and 100k")
    ap.add_argument("--keep", metavar="DIR", type=Path,
                    help="build the databases in DIR and keep them")
    ap.add_argument("--reuse", action="store_true",
                    help="with --keep: use the databases already in DIR (skips the ingest figures)")
    ap.add_argument("--conversations", type=int, help="size of the large store (default 100,000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=200, help="repetitions of each window query")
    ap.add_argument("--plans", action="store_true", help="print EXPLAIN QUERY PLAN of the queries")
    args = ap.parse_args()
    if args.reuse and not args.keep:
        ap.error("--reuse needs --keep DIR")
    if args.conversations is not None and args.conversations < 2_000:
        ap.error("--conversations: at least 2,000 (the small store has 1,000)")
    big_n = args.conversations or (10_000 if args.small else 100_000)
    small_n = 1_000
    folder = args.keep or Path(tempfile.mkdtemp(prefix="replydeck-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return run(folder, small_n, big_n, args)
    except RuntimeError as exc:  # a check on the store's answers failed
        print(f"store_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path, small_n: int, big_n: int, args: argparse.Namespace) -> int:
    say(f"store_bench: SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, in {folder}")
    started = time.perf_counter()
    real = real_assessor(folder / "assessor")
    big_plan, small_plan = plan(big_n, args.seed), plan(small_n, args.seed)
    paths = {n: folder / f"store-{n}.db" for n in (small_n, big_n)}
    marker = folder / f"built-{small_n}-{big_n}-{args.seed}.json"
    figures: list[Figure] = []
    if args.reuse and marker.exists():
        say(f"reusing the databases in {folder}")
        small, big = Store(paths[small_n]), Store(paths[big_n])
    else:
        if args.reuse:
            say(f"no databases of this size and seed in {folder} yet: building them")
        for n in (small_n, big_n):
            remove_db(paths[n])
        marker.unlink(missing_ok=True)
        small, secs = build_store(paths[small_n], small_plan, real)
        say(f"built {label(small_n, small_plan.messages)} through Store.ingest (real assessor) "
            f"in {secs:.0f} s: {status_mix(small)}")
        # The large store: 90% loaded through Store.ingest with the PlainAssessor (the real
        # one would take several times longer), the last 10% measured stage by stage.
        slice_from = big_plan.messages * 9 // 10
        bare_path = folder / "bare.db"
        remove_db(bare_path)
        bare = open_bare(bare_path)
        big, secs = build_store(paths[big_n], big_plan, PlainAssessor(), slice_from, bare)
        say(f"loaded {slice_from:,} of {big_plan.messages:,} messages through Store.ingest "
            f"(PlainAssessor) in {secs:.0f} s: {status_mix(big)}")
        figures += measure_ingest(folder, big_plan, slice_from, big, bare, real)
        index_everything(big)  # as the runtime does behind ingest
        bare.close()
        remove_db(bare_path)
        checkpoint(big)
        marker.write_text(json.dumps({"messages": big_plan.messages}), encoding="utf-8")
    n_big = big.conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    n_small = small.conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    big_label, small_label = label(big_n, n_big), label(small_n, n_small)
    say(f"\nstores: {small_label} ({status_mix(small)}); {big_label} ({status_mix(big)}); "
        f"{paths[big_n].stat().st_size / 1e6:,.0f} MB")
    figures += measure_windows({small_label: small, big_label: big}, args.rounds)
    figures += measure_search(big, big_label, max(5, min(20, args.rounds // 4)))
    if args.plans:
        print_plans(big)
    small.close()
    big.close()
    figures += measure_cli(folder, paths[big_n], 10)

    say(f"\nSummary ({big_label} messages; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"run took {time.perf_counter() - started:.0f} s)")
    width = max(len(f.name) for f in figures)
    for f in figures:
        say(f"   {f.name:{width}}  {f.value:>22}  {f.target:>8}  {f.verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
