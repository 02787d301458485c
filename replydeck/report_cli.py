"""`replydeck report`: response-time figures as a table, JSON or CSV, and `--explain ID`.

``register(sub)`` adds the subcommand to the `replydeck` argument parser. Output is plain
text (never markup); tags, agents and platforms were sanitised at ingest and are printed
as they are. Durations are seconds in JSON and CSV, short words ("1h12m") in tables.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from rich.cells import cell_len

from replydeck.inbox.sanitize import sanitize_text
from replydeck.inbox.timefmt import parse_duration, short_duration

if TYPE_CHECKING:
    from replydeck.inbox import metrics
    from replydeck.inbox.metrics import Distribution, Figures, Report

FORMATS = ("table", "json", "csv")
#: The same as ``metrics.DIMENSIONS``; spelled out so building the parser stays cheap.
DIMENSIONS = ("platform", "kind", "urgency", "tag", "agent", "day", "weekday", "hour")


def register(sub: Any) -> argparse.ArgumentParser:
    """Add ``report`` to the subparsers of the `replydeck` command."""
    r = sub.add_parser(
        "report", help="response-time figures: reply rate, first/next response, SLA",
        description="Reply rate, first and next response time, resolution time and SLA "
                    "attainment for a period, compared with the previous period of the same "
                    "length. Business-hours figures use [business_hours].")
    when = r.add_mutually_exclusive_group()
    when.add_argument("--since", metavar="DURATION",
                      help="the period ending now: 24h, 7d (default), 4w")
    when.add_argument("--from", dest="from_", metavar="DATE",
                      help="first day (2026-11-02) or moment (2026-11-02T09:00)")
    r.add_argument("--to", metavar="DATE",
                   help="with --from: last day, included (default: now)")
    r.add_argument("--by", choices=DIMENSIONS,
                   help="one row per platform, agent, day, kind, tag, urgency, weekday or "
                        "hour of the week")
    r.add_argument("--format", choices=FORMATS, default="table")
    r.add_argument("--conversations", action="store_true",
                   help="one row per conversation (per cycle when reopened) with its times")
    r.add_argument("--explain", type=int, metavar="ID",
                   help="the events behind one conversation's figures")
    r.set_defaults(func=cmd_report)
    return r


# -- the command -----------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    from replydeck import cli
    from replydeck.config.sla import SlaConfig
    from replydeck.inbox import metrics

    if args.to and not args.from_:
        raise cli.CommandError("--to needs --from")
    config = cli._load(args)
    sla = getattr(config, "sla", None) or SlaConfig()
    zone = sla.calendar.timezone_name
    tz = _tz(zone)
    now = cli._now()
    store = cli._store(config)
    try:
        try:
            if args.explain is not None:
                ex = metrics.explain(store, args.explain, sla=sla, now=now)
                _write(explain_json(ex) if args.format == "json" else
                       explain_csv(ex) if args.format == "csv" else explain_text(ex, tz))
                return 0
            period = parse_period(args.since, args.from_, args.to, now, tz)
            if args.conversations:
                rows = metrics.conversation_rows(store, period, sla=sla, now=now)
                _write(conversations_json(rows) if args.format == "json" else
                       conversations_csv(rows) if args.format == "csv" else
                       conversations_table(rows, tz))
                return 0
            rep = metrics.compute(store, period, sla=sla, by=args.by, now=now)
        except metrics.MetricsError as exc:
            raise cli.CommandError(str(exc)) from None
    finally:
        store.close()
    _write(report_json(rep) if args.format == "json" else
           report_csv(rep) if args.format == "csv" else report_table(rep, tz))
    return 0


def _write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _tz(name: str) -> tzinfo:
    from datetime import timezone

    return timezone.utc if name == "UTC" else ZoneInfo(name)


def parse_period(since: str | None, from_: str | None, to: str | None, now: datetime,
                 tz: tzinfo) -> metrics.Period:
    """``--since 7d`` or ``--from DAY [--to DAY]`` (days in the report's zone, ``--to``
    included) as a UTC period. Raises ``CommandError`` with what was not understood."""
    from replydeck.cli import CommandError
    from replydeck.inbox import metrics

    if from_ is None:
        length = parse_duration(since or "7d")
        if length is None or length <= timedelta(0):
            raise CommandError(f"--since: cannot read {since!r}; try 24h, 7d or 4w")
        return metrics.Period.last(length, now)
    start = _moment(from_, tz, "--from", end=False)
    end = _moment(to, tz, "--to", end=True) if to else now
    if end <= start:
        raise CommandError(f"--to ({to or 'now'}) is not after --from ({from_})")
    return metrics.Period(start, end)


def _moment(text: str, tz: tzinfo, flag: str, *, end: bool) -> datetime:
    from datetime import timezone

    from replydeck.cli import CommandError

    raw = text.strip()
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            if end:
                day += timedelta(days=1)  # the last day is included: up to its end
            return datetime.combine(day, time(), tzinfo=tz).astimezone(timezone.utc)
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"{flag}: cannot read {text!r}; give a day like 2026-11-02 or a "
                           "moment like 2026-11-02T09:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(timezone.utc)


# -- words -----------------------------------------------------------------------------
def _dur(seconds: float | None) -> str:
    return "–" if seconds is None else short_duration(seconds)


def _pct(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"


def _when(dt: datetime | None, tz: tzinfo) -> str:
    return "–" if dt is None else dt.astimezone(tz).strftime("%a %Y-%m-%d %H:%M")


def _change_count(cur: int, old: int) -> str:
    return f"{cur - old:+d}" if cur or old else ""


def _change_rate(cur: float | None, old: float | None) -> str:
    if cur is None or old is None:
        return ""
    return f"{(cur - old) * 100:+.1f} pt"


def _change_dur(cur: float | None, old: float | None) -> str:
    if cur is None or old is None:
        return ""
    delta = cur - old
    if abs(delta) < 1:
        return "±0"
    return ("+" if delta > 0 else "-") + short_duration(abs(delta))


def _clean(text: str) -> str:
    """One line with nothing a terminal would act on (platform names, tags and errors
    come from outside)."""
    return sanitize_text(text).replace("\n", " ").replace("\t", " ")


def _columns(rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Rows as aligned columns, measured in terminal cells (CJK tags stay aligned)."""
    rows = [[_clean(c) for c in r] for r in rows]
    widths = [max(cell_len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = []
        for i, text in enumerate(r):
            pad = " " * (widths[i] - cell_len(text))
            cells.append(pad + text if i in right else text + pad)
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


# -- the report as a table -----------------------------------------------------------------
def report_table(rep: Report, tz: tzinfo) -> str:
    from replydeck.inbox.metrics import BUCKET_LABELS

    cur, old = rep.current, rep.previous
    days = rep.period.length / timedelta(days=1)
    length = f"{days:g} days" if days >= 1 else short_duration(rep.period.length.total_seconds())
    lines = [
        f"Report {_when(rep.period.start, tz)} – {_when(rep.period.end, tz)} ({rep.zone}), "
        f"against the previous {length}",
        "",
    ]
    rows: list[list[str]] = [["", "this period", "previous", "change"]]

    def count(label: str, a: int, b: int) -> None:
        rows.append([label, str(a), str(b), _change_count(a, b)])

    def dist(label: str, a: Distribution, b: Distribution) -> None:
        rows.append([label, f"{_dur(a.median)} / {_dur(a.p90)} / {_dur(a.mean)}",
                     f"{_dur(b.median)} / {_dur(b.p90)} / {_dur(b.mean)}",
                     _change_dur(a.median, b.median)])

    count("Received messages", cur.received, old.received)
    count("New conversations", cur.new_conversations, old.new_conversations)
    count("Reopened", cur.reopened, old.reopened)
    rows.append(["Reply rate", _pct(cur.reply_rate), _pct(old.reply_rate),
                 _change_rate(cur.reply_rate, old.reply_rate)])
    rows.append(["  replied / needed a reply", f"{cur.replied} / {cur.needed_reply}",
                 f"{old.replied} / {old.needed_reply}", ""])
    rows.append(["  excluded: spam / closed by rule", f"{cur.spam} / {cur.closed_by_rule}",
                 f"{old.spam} / {old.closed_by_rule}", ""])
    rows.append(["(durations: median / p90 / mean)", "", "", ""])
    dist("First response", cur.first_response, old.first_response)
    dist("  in business hours", cur.first_response_business, old.first_response_business)
    dist("Next response", cur.next_response, old.next_response)
    dist("  in business hours", cur.next_response_business, old.next_response_business)
    dist("Resolution", cur.resolution, old.resolution)
    dist("  in business hours", cur.resolution_business, old.resolution_business)
    for label, a, b in (("SLA first response", cur.sla_first, old.sla_first),
                        ("SLA next response", cur.sla_next, old.sla_next)):
        rows.append([label, f"{_pct(a.rate)} ({a.with_target - a.breached}/{a.with_target})",
                     f"{_pct(b.rate)} ({b.with_target - b.breached}/{b.with_target})",
                     _change_rate(a.rate, b.rate)])
        if a.pending:
            rows.append(["  still within target", str(a.pending), str(b.pending), ""])
    count("Replies sent", cur.sent, old.sent)
    count("  automated", cur.auto_sent, old.auto_sent)
    count("  failed", cur.failed, old.failed)
    count("  retried", cur.retried, old.retried)
    if cur.unconfirmed or old.unconfirmed:
        count("  unconfirmed", cur.unconfirmed, old.unconfirmed)
    lines.append(_columns(rows, {1, 2, 3}))
    lines.append("")
    for label, d in (("First response", cur.first_response),
                     ("  in business hours", cur.first_response_business)):
        total = d.count or 1
        lines.append(f"{label:<20}" + "  ".join(
            f"{b} {n} ({n * 100 / total:.0f}%)" for b, n in zip(BUCKET_LABELS, d.buckets,
                                                                 strict=True)))
    if rep.by is not None:
        lines += ["", group_table(rep)]
    return "\n".join(lines)


def group_table(rep: Report) -> str:
    from replydeck.inbox import metrics

    head = [rep.by or "", "received", "needed", "reply rate", "FRT median", "FRT p90",
            "FRT biz median", "NRT median", "resolution", "SLA first", "SLA next", "sent"]
    rows = [head]
    for g in rep.groups:
        f = g.current
        rows.append([metrics.group_label(rep.by, g.key), str(f.received), str(f.needed_reply),
                     _pct(f.reply_rate), _dur(f.first_response.median),
                     _dur(f.first_response.p90), _dur(f.first_response_business.median),
                     _dur(f.next_response.median), _dur(f.resolution.median),
                     _pct(f.sla_first.rate), _pct(f.sla_next.rate), str(f.sent)])
    if len(rows) == 1:
        return f"(no {rep.by} had activity in this period)"
    return _columns(rows, set(range(1, len(head))))


# -- JSON and CSV ------------------------------------------------------------------------
def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def report_json(rep: Report) -> str:
    from replydeck.inbox import metrics

    return json.dumps({
        "period": {"start": _iso(rep.period.start), "end": _iso(rep.period.end)},
        "previous_period": {"start": _iso(rep.previous_period.start),
                            "end": _iso(rep.previous_period.end)},
        "zone": rep.zone,
        "by": rep.by,
        "current": rep.current.as_dict(),
        "previous": rep.previous.as_dict(),
        "groups": [{"key": g.key, "label": metrics.group_label(rep.by, g.key),
                    "current": g.current.as_dict(), "previous": g.previous.as_dict()}
                   for g in rep.groups],
    }, ensure_ascii=False)


def flat(f: Figures) -> dict[str, Any]:
    """One spreadsheet row's worth of figures (seconds for durations)."""
    out: dict[str, Any] = {}
    for name, value in f.as_dict().items():
        if isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, dict):
                    for label, n in zip(("le_30m", "le_1h", "le_4h", "le_24h", "gt_24h"),
                                        v.values(), strict=True):
                        out[f"{name}_{label}"] = n
                else:
                    out[f"{name}_{sub}"] = v
        else:
            out[name] = value
    return out


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if not rows:
        return ""
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else _clean(v) if isinstance(v, str) else v)
                    for k, v in r.items()})
    return buf.getvalue()


def report_csv(rep: Report) -> str:
    """A total row and one row per group, each for this period and the previous one."""
    from replydeck.inbox import metrics

    rows = []
    pairs = [("(total)", rep.current, rep.previous)]
    pairs += [(metrics.group_label(rep.by, g.key), g.current, g.previous) for g in rep.groups]
    for label, cur, old in pairs:
        for which, figures, period in (("current", cur, rep.period),
                                       ("previous", old, rep.previous_period)):
            rows.append({"group": label, "period": which, "start": _iso(period.start),
                         "end": _iso(period.end), **flat(figures)})
    return _csv(rows)


def _cycle_dict(r: metrics.CycleRow) -> dict[str, Any]:
    return {
        "conversation": r.conversation_id, "cycle": r.cycle, "platform": r.platform,
        "kind": r.kind, "urgency": r.urgency, "tags": " ".join(r.tags),
        "started_at": _iso(r.start), "first_reply_at": _iso(r.first_reply_at),
        "agent": r.agent, "first_response_s": r.first_response_seconds,
        "first_response_business_s": r.first_response_business_seconds,
        "due_at": _iso(r.due_at), "breached": r.breached, "resolved_at": _iso(r.resolved_at),
        "resolved_by": r.resolved_by, "resolution_s": r.resolution_seconds,
        "resolution_business_s": r.resolution_business_seconds, "excluded": r.excluded,
    }


def conversations_json(rows: list[metrics.CycleRow]) -> str:
    return json.dumps([_cycle_dict(r) for r in rows], ensure_ascii=False)


def conversations_csv(rows: list[metrics.CycleRow]) -> str:
    return _csv([_cycle_dict(r) for r in rows]) or ",".join(CYCLE_FIELDS) + "\n"


def conversations_table(rows: list[metrics.CycleRow], tz: tzinfo) -> str:
    if not rows:
        return "(no conversations started in this period)"
    table = [["#", "platform", "kind", "started", "first reply", "by", "FRT", "FRT biz",
              "SLA", "resolved", "note"]]
    for r in rows:
        sla = "–" if r.breached is None or r.excluded else ("late" if r.breached else "met")
        table.append([
            f"{r.conversation_id}" + (f".{r.cycle}" if r.cycle else ""), r.platform, r.kind,
            _when(r.start, tz), _when(r.first_reply_at, tz), r.agent or "–",
            _dur(r.first_response_seconds), _dur(r.first_response_business_seconds), sla,
            _when(r.resolved_at, tz), r.excluded or ""])
    return _columns(table, {6, 7})


CYCLE_FIELDS = ("conversation", "cycle", "platform", "kind", "urgency", "tags", "started_at",
                "first_reply_at", "agent", "first_response_s", "first_response_business_s",
                "due_at", "breached", "resolved_at", "resolved_by", "resolution_s",
                "resolution_business_s", "excluded")


# -- --explain -------------------------------------------------------------------------------
def explain_text(ex: metrics.Explanation, tz: tzinfo) -> str:
    lines = [f"Conversation #{ex.conversation_id}: {ex.platform} {ex.kind}, urgency "
             f"{ex.urgency}" + (f", tags {' '.join(ex.tags)}" if ex.tags else "")
             + f" (times in {ex.zone})", "", "Events:"]
    for at, type_, actor, data in ex.events:
        extra = []
        if actor:
            extra.append(f"by {actor}")
        for key in ("reply_id", "tag", "to", "error", "attempts"):
            if key in data and data[key] is not None:
                extra.append(f"{key} {data[key]}")
        lines.append(f"  {_when(at, tz)}  {type_:<18} {', '.join(str(x) for x in extra)}"
                     .rstrip())
    lines += ["", "Waits for a reply (each starts at the oldest unanswered customer message):"]
    if not ex.items:
        lines.append("  none: no customer message")
    for it in ex.items:
        kind = "first response" if it.first else "next response"
        lines.append(f"  cycle {it.cycle}, {kind}: {it.messages} customer message(s)")
        lines.append(f"    received at        {_when(it.start, tz)}")
        lines.append(f"    due at             {_when(it.due_at, tz)}  ({it.target or 'no target'})")
        if it.reply_at is not None:
            lines.append(f"    human reply at     {_when(it.reply_at, tz)} by {it.agent}")
            lines.append(f"    counted            {_dur(it.seconds)} calendar, "
                         f"{_minutes(it.business_seconds)} business minutes")
        elif it.resolved_at is not None:
            lines.append(f"    closed at          {_when(it.resolved_at, tz)} by "
                         f"{it.resolved_by or 'someone'}, without a reply")
        else:
            lines.append("    still waiting")
        verdict = "breached" if it.breached else ("met" if it.due_at else "no target")
        if it.breach_recorded:
            verdict += " (the sweep recorded the breach)"
        if it.excluded:
            verdict += f"; not counted: {it.excluded}"
        lines.append(f"    SLA                {verdict}")
    if ex.cycles:
        lines += ["", "Cycles (first customer message or reopening to resolution):"]
    for c in ex.cycles:
        res = (f"resolved {_when(c.resolved_at, tz)} by {c.resolved_by or 'someone'}: "
               f"{_dur(c.resolution_seconds)} calendar, "
               f"{_minutes(c.resolution_business_seconds)} business minutes"
               if c.resolved_at else "not resolved")
        lines.append(f"  cycle {c.cycle}: started {_when(c.start, tz)}; {res}"
                     + (f"; not counted: {c.excluded}" if c.excluded else ""))
    return "\n".join(_clean(line) for line in lines)


def _minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:g}"


def _item_dict(it: metrics.ItemRow) -> dict[str, Any]:
    return {"cycle": it.cycle, "first": it.first, "received_at": _iso(it.start),
            "due_at": _iso(it.due_at), "target": it.target,
            "human_reply_at": _iso(it.reply_at),
            "agent": it.agent, "resolved_at": _iso(it.resolved_at),
            "resolved_by": it.resolved_by, "seconds": it.seconds,
            "business_minutes": None if it.business_seconds is None
            else it.business_seconds / 60,
            "breached": it.breached, "breach_recorded": it.breach_recorded,
            "excluded": it.excluded, "customer_messages": it.messages}


def explain_json(ex: metrics.Explanation) -> str:
    return json.dumps({
        "conversation": ex.conversation_id, "platform": ex.platform, "kind": ex.kind,
        "urgency": ex.urgency, "tags": ex.tags, "zone": ex.zone,
        "events": [{"at": _iso(at), "type": t, "actor": a, "data": d}
                   for at, t, a, d in ex.events],
        "items": [_item_dict(it) for it in ex.items],
        "cycles": [_cycle_dict(c) for c in ex.cycles],
    }, ensure_ascii=False, default=str)


def explain_csv(ex: metrics.Explanation) -> str:
    return _csv([{"conversation": ex.conversation_id, **_item_dict(it)} for it in ex.items])
