"""The ``demo`` source: simulated customers, so replydeck can be tried without accounts.

Traffic spans X, Instagram, Facebook, Mastodon, Bluesky and email, in English and
Japanese: questions a saved reply answers, complaints, an outage wave, refund demands, a
legal threat, praise, spam, a 250k-follower account, a customer who writes again while
unanswered, replies a colleague sent from the phone app (outbound), and hostile text from
the shared corpus (markup, escape sequences, bidi overrides, a 20 kB message).

Everything is a pure function of the seed: message number ``i`` and its time depend only
on ``(seed, i, start)``, where ``start`` is the time of the first fetch, kept in the
cursor ``{"seed", "start", "emitted"}``. The first fetch returns a backlog of about 30
conversations from the three hours before ``start`` (some already past a one-hour
target); later fetches return what ``rate`` (messages per minute) says has arrived since.

Sending waits a realistic 200-800 ms (divided by ``speed``) and fails transiently about
once in ten attempts; a key that was delivered is never delivered twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from typing import Any

from replydeck.inbox.model import Author, Direction, Kind, Message, Reply
from replydeck.inbox.sanitize import sanitize_line, sanitize_text
from replydeck.sources import demo_data as data
from replydeck.sources.base import (
    BaseSource,
    Batch,
    CheckResult,
    Cursor,
    Limits,
    Receipt,
    TransientError,
)
from replydeck.sources.jsonschema import PLATFORM_LIMITS

log = logging.getLogger(__name__)
UTC = timezone.utc

DEFAULT_SEED = 7
DEFAULT_RATE = 6.0
#: Messages one fetch returns at most (after a long pause the rest follow at once).
MAX_BATCH = 500
#: Share of send attempts that fail transiently (never the third attempt of a key).
FAILURE_RATE = 0.1
#: Live messages come in blocks of this many; one of each continues an earlier thread.
BLOCK = 5
#: How many blocks back a continuation looks for its thread.
CONTINUE_WITHIN = 6
#: Share of those continuations that are our own reply sent from the phone app.
OUTBOUND_SHARE = 0.4

_PUBLIC_KINDS = (Kind.MENTION, Kind.COMMENT, Kind.REPLY, Kind.REVIEW)


@dataclass(frozen=True)
class _Spec:
    """One simulated message before it gets its time, id and sanitising."""

    scenario: str
    lang: str | None
    platform: str
    kind: Kind
    author: Author
    text: str
    thread: str
    direction: Direction = Direction.IN
    #: Index of the message this one answers, in the same thread.
    parent: int | None = None
    likes: int = 0
    reposts: int = 0
    hostile: str | None = None


# -- content ------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def hostile_corpus() -> dict[str, str]:
    """name -> text of the hostile-text corpus shipped with the package."""
    text = resources.files("replydeck.sources").joinpath("demo_hostile.jsonl").read_text(
        encoding="utf-8")
    corpus = {}
    for line in text.splitlines():
        if line.strip():
            entry = json.loads(line)
            corpus[entry["name"]] = entry["text"]
    return corpus


def _author(handle: str, name: str, lang: str, platform: str,
            followers: int | None = None) -> Author:
    if platform == "email":
        address = f"{handle.replace('_', '.')}@{'example.jp' if lang == 'ja' else 'example.com'}"
        return Author(id=address, handle=address, name=name)
    if followers is None:
        # Per person and platform, not per seed: the same person looks the same everywhere.
        followers = random.Random(f"{handle}:{platform}").randint(3, 4000)
    shown = {"mastodon": f"{handle}@mastodon.example",
             "bluesky": f"{handle.replace('_', '-')}.bsky.social"}.get(platform, handle)
    return Author(id=f"{platform}:{shown}", handle=shown, name=name, followers=followers)


def _brand(platform: str) -> Author:
    handle = data.BRAND_HANDLES.get(platform, "kestrel")
    return Author(id=f"{platform}:{handle}", handle=handle, name=data.BRAND_NAME)


def _addressed_as(name: str) -> str:
    # The first word: "Maya" of "Maya Okafor"; for Japanese names, written family name
    # first, "田中" of "田中 由紀", which the templates follow with the polite "様".
    parts = name.split()
    return parts[0] if parts else name


def _body(rng: random.Random, scenario: str, lang: str, platform: str, kind: Kind,
          author: Author, text: str | None = None) -> str:
    if text is None:
        text = rng.choice(data.TEXTS[scenario][lang]).format(order=f"#{rng.randint(10000, 99999)}")
    if kind == Kind.MENTION:
        text = f"@{data.BRAND_HANDLES[platform]} {text}"
    elif kind == Kind.EMAIL:
        subject = data.SUBJECTS.get(scenario, data.SUBJECTS["hostile"])[lang]
        greeting, closing = (("Kestrel サポート御中", "よろしくお願いいたします。") if lang == "ja"
                             else ("Hi Kestrel team,", "Thanks,"))
        text = f"Subject: {subject}\n\n{greeting}\n\n{text}\n\n{closing}\n{author.name}"
    return text


def _engagement(rng: random.Random, kind: Kind, followers: int | None) -> tuple[int, int]:
    if kind not in _PUBLIC_KINDS:
        return 0, 0
    if followers and followers >= 100_000:
        return rng.randint(1500, 2500), rng.randint(200, 400)
    return rng.randint(0, 40), rng.randint(0, 5)


def _starter(rng: random.Random, scenario: str, lang: str, thread: str, *,
             where: tuple[str, Kind] | None = None, person: tuple[str, str] | None = None,
             followers: int | None = None, hostile: str | None = None,
             text: str | None = None) -> _Spec:
    platform, kind = where or rng.choice(data.WHERE[scenario])
    if person is None:
        if scenario == "spam":
            person = data.SPAMMERS[lang]
        elif scenario == "hostile" and rng.random() < 0.3:
            person = data.HOSTILE_NAME
        else:
            person = rng.choice(data.PEOPLE[lang])
    author = _author(person[0], person[1], lang, platform, followers)
    raw_text = hostile_corpus()[hostile] if hostile else text
    likes, reposts = _engagement(rng, kind, author.followers)
    return _Spec(scenario=scenario, lang=None if hostile else lang, platform=platform, kind=kind,
                 author=author, text=_body(rng, scenario, lang, platform, kind, author, raw_text),
                 thread=thread, likes=likes, reposts=reposts, hostile=hostile)


def _continuation(rng: random.Random, target: _Spec, parent: int, how: str) -> _Spec:
    """A later message in ``target``'s thread: a nudge, a thread reply, or our own reply."""
    lang = target.lang or "en"
    kind = {Kind.MENTION: Kind.REPLY, Kind.REVIEW: Kind.COMMENT}.get(target.kind, target.kind)
    if how == "outbound":
        first = _addressed_as(target.author.name)
        tone = "thanks" if target.scenario == "praise" else "help"
        text = rng.choice(data.OUTBOUND[tone][lang]).format(first=first)
        if kind == Kind.EMAIL:
            subject = data.SUBJECTS.get(target.scenario, data.SUBJECTS["hostile"])[lang]
            text = f"Subject: Re: {subject}\n\n{text}"
        return _Spec(scenario=target.scenario, lang=lang, platform=target.platform, kind=kind,
                     author=_brand(target.platform), text=text, thread=target.thread,
                     direction=Direction.OUT, parent=parent)
    pool = data.NUDGES if how == "nudge" else data.THREAD_REPLIES
    text = rng.choice(pool[lang])
    if kind == Kind.REPLY:
        text = f"@{data.BRAND_HANDLES[target.platform]} {text}"
    return _Spec(scenario=target.scenario, lang=lang, platform=target.platform, kind=kind,
                 author=target.author, text=text, thread=target.thread, parent=parent)


# -- the backlog: about 30 conversations over the three hours before the first fetch ----

@lru_cache(maxsize=8)
def backlog(seed: int) -> tuple[tuple[float, _Spec], ...]:
    """(seconds before start, spec) of each backlog message, oldest first."""
    rng = random.Random(f"{seed}:backlog")
    people = {lang: rng.sample(p, len(p)) for lang, p in data.PEOPLE.items()}
    used = dict.fromkeys(people, 0)

    def person(lang: str) -> tuple[str, str]:
        chosen = people[lang][used[lang] % len(people[lang])]
        used[lang] += 1
        return chosen

    # Each conversation: list of (minutes before start, spec, parent position or None).
    convs: list[list[tuple[float, _Spec, int | None]]] = []

    def thread() -> str:
        return f"demo-{seed}-b{len(convs)}"

    def single(scenario: str, lang: str, minutes: float, *,
               who: tuple[str, str] | None = None, **kw: Any) -> _Spec:
        if who is None and scenario not in ("spam", "hostile"):
            who = person(lang)  # spammers and hostile names are chosen by _starter
        spec = _starter(rng, scenario, lang, thread(), person=who, **kw)
        convs.append([(minutes, spec, None)])
        return spec

    def anytime() -> float:
        return -rng.uniform(4, 178)

    # An outage wave: six customers within minutes, one of them with 250k followers.
    wave = -rng.uniform(35, 55)
    outage_places = rng.sample(data.WHERE["outage"], len(data.WHERE["outage"]))
    outage_texts = {lang: rng.sample(t, len(t)) for lang, t in data.TEXTS["outage"].items()}
    for k, lang in enumerate(("en", "en", "ja", "en", "ja")):
        single("outage", lang, wave + k * rng.uniform(1.0, 1.8), where=outage_places[k],
               text=outage_texts[lang].pop())
    handle, name, followers = data.HIGH_FOLLOWER
    single("outage", "en", wave + rng.uniform(2, 7), where=("x", Kind.MENTION),
           who=(handle, name), followers=followers, text=outage_texts["en"].pop())

    for scenario in ("shipping", "password", "hours", "pricing"):
        for lang in ("en", "ja"):
            where = ("email", Kind.EMAIL) if (scenario, lang) == ("password", "en") else None
            single(scenario, lang, anytime(), where=where)
    for scenario, langs in (("complaint", ("en", "ja", "en")), ("refund", ("en", "ja")),
                            ("legal", ("en", "ja")), ("praise", ("en", "ja")),
                            ("spam", ("en", "ja"))):
        for lang in langs:
            single(scenario, lang, anytime())
    for n, name_ in enumerate(data.BACKLOG_HOSTILE):
        single("hostile", rng.choice(("en", "ja")), anytime(), hostile=name_,
               who=data.HOSTILE_NAME if n == 0 else None)

    # A repeat customer: a complaint, then two nudges while nobody answers.
    base = -rng.uniform(140, 160)
    root = single("complaint", "en", base)
    first = _continuation(rng, root, 0, "nudge")
    second = first
    while second.text == first.text:  # two different words of impatience
        second = _continuation(rng, root, 0, "nudge")
    convs[-1] += [(base + 40 + rng.uniform(0, 5), first, 0),
                  (base + 80 + rng.uniform(0, 5), second, 1)]
    # Answered from the phone app, then the customer writes back in the thread.
    base = -rng.uniform(95, 110)
    root = single(rng.choice(("shipping", "password")), rng.choice(("en", "ja")), base,
                  where=rng.choice(data.PRIVATE))
    convs[-1] += [(base + rng.uniform(3, 8), _continuation(rng, root, 0, "outbound"), 0),
                  (base + rng.uniform(35, 45), _continuation(rng, root, 0, "reply"), 1)]
    # Praise, already answered from the phone: its timer has stopped.
    base = -rng.uniform(60, 90)
    root = single("praise", rng.choice(("en", "ja")), base, where=rng.choice(data.PUBLIC))
    convs[-1].append((base + rng.uniform(1, 4), _continuation(rng, root, 0, "outbound"), 0))

    entries = [(max(minutes, -179.5) * 60.0, c, p, spec, parent)
               for c, conv in enumerate(convs)
               for p, (minutes, spec, parent) in enumerate(conv)]
    entries.sort(key=lambda e: (min(e[0], -1.0), e[1], e[2]))
    index = {(c, p): i for i, (_, c, p, _, _) in enumerate(entries)}
    out = []
    for seconds, c, _, spec, parent in entries:
        if parent is not None:
            spec = replace(spec, parent=index[(c, parent)])
        out.append((min(seconds, -1.0), spec))
    return tuple(out)


# -- live traffic after the backlog --------------------------------------------------------

def _continuation_slot(seed: int, block: int) -> int:
    """Which of the block's live messages continues an earlier thread (one in five)."""
    return random.Random(f"{seed}:slot:{block}").randrange(BLOCK)


@lru_cache(maxsize=4096)
def _live_starter(seed: int, i: int) -> _Spec:
    rng = random.Random(f"{seed}:live:{i}")
    scenarios = list(data.LIVE_WEIGHTS)
    scenario = rng.choices(scenarios, weights=[data.LIVE_WEIGHTS[s] for s in scenarios])[0]
    lang = "ja" if rng.random() < 0.35 else "en"
    thread = f"demo-{seed}-l{i}"
    if scenario == "hostile":
        return _starter(rng, scenario, lang, thread,
                        hostile=rng.choice(sorted(hostile_corpus())))
    if scenario == "complaint" and rng.random() < 0.08:
        handle, name, followers = data.HIGH_FOLLOWER
        return _starter(rng, scenario, "en", thread, where=("x", Kind.MENTION),
                        person=(handle, name), followers=followers)
    return _starter(rng, scenario, lang, thread)


def spec_for(seed: int, i: int) -> _Spec:
    """What message number ``i`` of this seed is (without its time)."""
    early = backlog(seed)
    if i < len(early):
        return early[i][1]
    k = i - len(early)
    block, position = divmod(k, BLOCK)
    if position == _continuation_slot(seed, block):
        # Answer or chase a conversation started in the last few blocks (a few minutes).
        # Only other positions start threads, so this never depends on another slot.
        candidates = [
            j for b in range(max(0, block - CONTINUE_WITHIN), block)
            for j in range(b * BLOCK, (b + 1) * BLOCK)
            if j != b * BLOCK + _continuation_slot(seed, b)
            and _live_starter(seed, j + len(early)).scenario not in ("spam", "hostile")
        ]
        if candidates:
            rng = random.Random(f"{seed}:follow:{i}")
            j = rng.choice(candidates) + len(early)
            how = "outbound" if rng.random() < OUTBOUND_SHARE else "nudge"
            return _continuation(rng, _live_starter(seed, j), j, how)
    return _live_starter(seed, i)


def time_for(seed: int, rate: float, start: datetime, i: int) -> datetime:
    """When message number ``i`` arrives, for a demo whose first fetch was at ``start``."""
    early = backlog(seed)
    if i < len(early):
        return start + timedelta(seconds=early[i][0])
    k = i - len(early)
    interval = 60.0 / rate
    # Jitter below half an interval keeps arrivals in order and the pace exact on average.
    jitter = random.Random(f"{seed}:time:{k}").random() * 0.5 * interval
    return start + timedelta(seconds=(k + 1) * interval - jitter)


# -- the source ------------------------------------------------------------------------------

class DemoSource(BaseSource):
    type_name = "demo"
    platform = "demo"
    #: Generous: each message's own platform limits come from :meth:`limits_for`.
    limits = Limits(max_length=100_000, counting="chars")
    idempotent_send = True
    default_poll_interval = 5

    def __init__(self, name: str = "demo", *, seed: int = DEFAULT_SEED,
                 rate: float = DEFAULT_RATE, speed: float = 1.0,
                 clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(name)
        if rate <= 0 or speed <= 0:
            raise ValueError("rate and speed must be > 0")
        self.seed = seed
        self.rate = float(rate)
        self.speed = float(speed)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._receipts: dict[str, Receipt] = {}
        self._attempts: dict[str, int] = {}

    @classmethod
    def from_config(cls, table: Any) -> DemoSource:
        seed = table.int("seed", DEFAULT_SEED)
        rate = table.number("rate", DEFAULT_RATE)
        if rate <= 0:
            raise table.error("rate", f"expected a number of messages per minute > 0, "
                                      f"found {rate:g}")
        speed = table.number("speed", 1.0)
        if speed <= 0:
            raise table.error("speed", f"expected a number > 0, found {speed:g}")
        return cls(table.name, seed=seed, rate=rate, speed=speed)

    def limits_for(self, platform: str) -> Limits:
        return PLATFORM_LIMITS.get(platform, self.limits)

    def _now(self) -> datetime:
        now = self.clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    # -- fetching ---------------------------------------------------------------------

    def _load(self, cursor: Cursor | None) -> tuple[datetime, int]:
        if cursor:
            try:
                state = json.loads(cursor)
                if state.get("seed", self.seed) == self.seed:
                    start = datetime.fromisoformat(state["start"])
                    emitted = int(state["emitted"])
                    if start.tzinfo is not None and emitted >= 0:
                        return start.astimezone(UTC), emitted
            except (ValueError, TypeError, KeyError, AttributeError):
                log.warning("demo cursor is unreadable; starting a new demo")
        return self._now().replace(microsecond=0), 0

    async def fetch(self, cursor: Cursor | None) -> Batch:
        start, emitted = self._load(cursor)
        now = self._now()
        items: list[Message] = []
        i = emitted
        while len(items) < MAX_BATCH and time_for(self.seed, self.rate, start, i) <= now:
            items.append(self.message(start, i))
            i += 1
        more = time_for(self.seed, self.rate, start, i) <= now
        state = {"seed": self.seed, "start": start.isoformat(), "emitted": i}
        return Batch(items=items, cursor=json.dumps(state), more=more)

    def message(self, start: datetime, i: int) -> Message:
        """Message number ``i`` of a demo that started at ``start``."""
        spec = spec_for(self.seed, i)
        remote_id = f"demo-{self.seed}-{i}"
        public = spec.kind in _PUBLIC_KINDS
        raw: dict[str, Any] = {"seed": self.seed, "index": i, "scenario": spec.scenario}
        if spec.hostile:
            raw["hostile"] = spec.hostile
        return Message(
            source=self.name,
            remote_id=remote_id,
            platform=spec.platform,
            kind=spec.kind,
            author=_clean(spec.author),
            text=sanitize_text(spec.text),
            created_at=time_for(self.seed, self.rate, start, i),
            direction=spec.direction,
            thread_key=spec.thread,
            in_reply_to=f"demo-{self.seed}-{spec.parent}" if spec.parent is not None else None,
            url=f"https://demo.invalid/{spec.platform}/{remote_id}" if public else None,
            language=spec.lang,
            engagement={"likes": spec.likes, "reposts": spec.reposts} if public else {},
            raw=raw,
        )

    # -- sending ----------------------------------------------------------------------

    async def send(self, reply: Reply) -> Receipt:
        key = reply.idempotency_key
        if key in self._receipts:
            return self._receipts[key]
        attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        rng = random.Random(f"{self.seed}:send:{key}:{attempt}")
        await asyncio.sleep(rng.uniform(0.2, 0.8) / self.speed)
        if key in self._receipts:  # a concurrent attempt with this key got there first
            return self._receipts[key]
        to = reply.reply_to
        platform = to.platform if to else "demo"
        if attempt < 3 and rng.random() < FAILURE_RATE:
            raise TransientError(f"{platform} (simulated): the request timed out; "
                                 "it will be retried")
        now = self._now()
        kind = _outbound_kind(to.kind if to else Kind.DM, reply.private)
        remote_id = sanitize_line(f"demo-{self.seed}-sent-{key}")
        message = Message(
            source=self.name,
            remote_id=remote_id,
            platform=platform,
            kind=kind,
            author=_brand(platform),
            text=sanitize_text(reply.body),
            created_at=now,
            direction=Direction.OUT,
            thread_key=reply.thread_key or (to.thread_key if to else None),
            in_reply_to=to.remote_id if to else None,
            url=f"https://demo.invalid/{platform}/{remote_id}" if kind in _PUBLIC_KINDS else None,
            language=to.language if to else None,
            raw={"seed": self.seed, "idempotency_key": key, "attempt": attempt},
        )
        receipt = Receipt(remote_id=remote_id, url=message.url, sent_at=now, message=message)
        self._receipts[key] = receipt
        return receipt

    async def check(self) -> CheckResult:
        return CheckResult(True, f"simulated traffic: seed {self.seed}, "
                                 f"{self.rate:g} messages per minute")


def _outbound_kind(kind: Kind, private: bool) -> Kind:
    if kind in (Kind.DM, Kind.EMAIL):
        return kind
    if private:
        return Kind.DM
    return Kind.REPLY if kind in (Kind.MENTION, Kind.REPLY) else Kind.COMMENT


def _clean(author: Author) -> Author:
    return Author(id=sanitize_line(author.id), handle=sanitize_line(author.handle),
                  name=sanitize_line(author.name), followers=author.followers,
                  url=author.url, verified=author.verified)
