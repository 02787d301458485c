"""The Reports screen: headline figures against the previous period, first response time
by day as a bar chart, the response-time buckets, and per-platform and per-agent tables.

Figures are computed in a worker thread on the screen's own store connection, so the
inbox never waits for them. Every label is plain :class:`rich.text.Text` (tags, agents and
platform names are never read as markup).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from replydeck.config.sla import SlaConfig
from replydeck.inbox import metrics
from replydeck.inbox.metrics import BUCKET_LABELS, Distribution, Figures, Report
from replydeck.inbox.model import utcnow
from replydeck.inbox.sanitize import sanitize_line
from replydeck.inbox.store import Store
from replydeck.inbox.timefmt import short_duration

#: Period lengths the number keys choose.
PERIODS = {"1": timedelta(days=1), "7": timedelta(days=7), "3": timedelta(days=30),
           "9": timedelta(days=90)}
BAR_WIDTH = 32


@dataclass
class ReportData:
    headline: Report
    by_day: Report
    by_platform: Report
    by_agent: Report


def _d(seconds: float | None) -> str:
    return "–" if seconds is None else short_duration(seconds)


def _pct(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.0f}%"


def _change(cur: float | None, old: float | None, *, lower_is_better: bool,
            kind: str) -> Text:
    """``▲ 12m`` in green when things got better, red when worse (counts stay plain)."""
    if cur is None or old is None or cur == old:
        return Text("")
    better = (cur < old) == lower_is_better
    arrow = "▲" if cur > old else "▼"
    style = "" if kind == "count" else ("green" if better else "red")
    delta = abs(cur - old)
    amount = short_duration(delta) if kind == "duration" else (
        f"{delta * 100:.0f} pt" if kind == "rate" else f"{delta:g}")
    return Text(f"{arrow} {amount}", style)


def headline_table(cur: Figures, old: Figures) -> Table:
    t = Table(box=None, padding=(0, 2), show_header=True, header_style="bold")
    t.add_column("")
    t.add_column("this period", justify="right")
    t.add_column("previous", justify="right")
    t.add_column("change", justify="right")

    def row(label: str, a: Any, b: Any, text_a: str, text_b: str, *, lower: bool,
            kind: str) -> None:
        t.add_row(Text(label), Text(text_a), Text(text_b),
                  _change(a, b, lower_is_better=lower, kind=kind))

    row("Received", cur.received, old.received, str(cur.received), str(old.received),
        lower=False, kind="count")
    row("Reply rate", cur.reply_rate, old.reply_rate, _pct(cur.reply_rate),
        _pct(old.reply_rate), lower=False, kind="rate")
    for label, a, b in (("First response (median)", cur.first_response, old.first_response),
                        ("  p90", None, None),
                        ("  business hours (median)", cur.first_response_business,
                         old.first_response_business),
                        ("Next response (median)", cur.next_response, old.next_response),
                        ("Resolution (median)", cur.resolution, old.resolution)):
        if a is None:
            row(label, cur.first_response.p90, old.first_response.p90,
                _d(cur.first_response.p90), _d(old.first_response.p90), lower=True,
                kind="duration")
            continue
        assert isinstance(a, Distribution) and isinstance(b, Distribution)
        row(label, a.median, b.median, _d(a.median), _d(b.median), lower=True,
            kind="duration")
    row("SLA first response", cur.sla_first.rate, old.sla_first.rate,
        _pct(cur.sla_first.rate), _pct(old.sla_first.rate), lower=False, kind="rate")
    row("SLA next response", cur.sla_next.rate, old.sla_next.rate,
        _pct(cur.sla_next.rate), _pct(old.sla_next.rate), lower=False, kind="rate")
    t.add_row(Text("Sent / failed / retried"),
              Text(f"{cur.sent} / {cur.failed} / {cur.retried}"),
              Text(f"{old.sent} / {old.failed} / {old.retried}"), Text(""))
    t.add_row(Text("Excluded: spam / closed by rule"),
              Text(f"{cur.spam} / {cur.closed_by_rule}"),
              Text(f"{old.spam} / {old.closed_by_rule}"), Text(""))
    return t


def day_chart(rep: Report) -> Text:
    """First response median per day as horizontal bars."""
    out = Text()
    out.append("First response time by day (median)\n", "bold")
    rows = [(g.key, g.current.first_response.median) for g in rep.groups]
    values = [v for _k, v in rows if v is not None]
    if not values:
        out.append("no replies in this period", "dim")
        return out
    top = max(values) or 1
    for key, value in rows:
        out.append(f"{key}  ")
        if value is None:
            out.append("–\n", "dim")
            continue
        n = max(1, round(value / top * BAR_WIDTH))
        out.append("█" * n, "cyan")
        out.append(f" {_d(value)}\n")
    return out


def bucket_text(d: Distribution, title: str) -> Text:
    out = Text()
    out.append(f"{title}\n", "bold")
    total = d.count or 1
    for label, n in zip(BUCKET_LABELS, d.buckets, strict=True):
        share = n / total
        out.append(f"{label:>5} ")
        out.append("▇" * round(share * 20), "magenta")
        out.append(f" {n} ({share * 100:.0f}%)\n")
    return out


def group_table(rep: Report, title: str) -> Table:
    t = Table(title=title, title_justify="left", box=None, padding=(0, 2),
              header_style="bold", title_style="bold")
    for name in ("", "received", "reply rate", "FRT median", "FRT p90", "SLA first", "sent"):
        t.add_column(name, justify="left" if not name else "right")
    for g in rep.groups:
        f = g.current
        t.add_row(Text(sanitize_line(metrics.group_label(rep.by, g.key))), Text(str(f.received)),
                  Text(_pct(f.reply_rate)), Text(_d(f.first_response.median)),
                  Text(_d(f.first_response.p90)), Text(_pct(f.sla_first.rate)),
                  Text(str(f.sent)))
    if not rep.groups:
        t.add_row(Text("nothing in this period", "dim"), *[Text("")] * 6)
    return t


class ReportsScreen(Screen[None]):
    """Push it with a store path (or a callable returning a fresh Store) and the SLA config."""

    BINDINGS = [
        Binding("escape,q", "close", "back"),
        Binding("r", "reload", "reload"),
        Binding("1", "period('1')", "24 h"),
        Binding("7", "period('7')", "7 days"),
        Binding("3", "period('3')", "30 days"),
        Binding("9", "period('9')", "90 days"),
    ]

    def __init__(self, store: str | os.PathLike[str] | Callable[[], Store],
                 sla_config: SlaConfig | None = None, *,
                 clock: Callable[[], datetime] = utcnow, period: str = "7") -> None:
        super().__init__()
        self._open: Callable[[], Store] = (
            store if callable(store) else (lambda p=Path(store): Store(p)))
        self.sla = sla_config or SlaConfig()
        self.clock = clock
        self.period_key = period
        self.data: ReportData | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="reports-body"):
            yield Static(Text("Reports", "bold"), id="reports-title")
            yield Static(Text("computing…", "dim"), id="reports-status")
            yield Static(id="reports-headline")
            yield Static(id="reports-chart")
            yield Static(id="reports-buckets")
            yield Static(id="reports-platforms")
            yield Static(id="reports-agents")

    def on_mount(self) -> None:
        self.action_reload()

    # -- actions ------------------------------------------------------------------------
    def action_close(self) -> None:
        self.app.pop_screen()

    def action_period(self, key: str) -> None:
        if key in PERIODS and key != self.period_key:
            self.period_key = key
            self.action_reload()

    def action_reload(self) -> None:
        self.query_one("#reports-status", Static).update(Text("computing…", "dim"))
        now = self.clock()
        period = metrics.Period.last(PERIODS[self.period_key], now)
        self.run_worker(lambda: self._compute(period, now), thread=True, exclusive=True,
                        group="reports", name="reports")

    # -- the worker -----------------------------------------------------------------------
    def _compute(self, period: metrics.Period, now: datetime) -> ReportData:
        store = self._open()
        try:
            def rep(by: str | None) -> Report:
                return metrics.compute(store, period, sla=self.sla, by=by, now=now)

            return ReportData(rep(None), rep("day"), rep("platform"), rep("agent"))
        finally:
            store.close()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "reports":
            return
        status = self.query_one("#reports-status", Static)
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            status.update(Text(f"could not compute the report: {error}", "bold red"))
        elif event.state == WorkerState.SUCCESS and isinstance(event.worker.result, ReportData):
            self.show(event.worker.result)

    def show(self, data: ReportData) -> None:
        self.data = data
        rep = data.headline
        span = short_duration(PERIODS[self.period_key].total_seconds())
        self.query_one("#reports-status", Static).update(Text(
            f"last {span} to {rep.now.strftime('%Y-%m-%d %H:%M')} UTC (days in {rep.zone}), "
            f"against the {span} before  ·  1/7/3/9 period · r reload · esc back", "dim"))
        self.query_one("#reports-headline", Static).update(
            headline_table(rep.current, rep.previous))
        self.query_one("#reports-chart", Static).update(day_chart(data.by_day))
        buckets = Text()
        buckets.append_text(bucket_text(rep.current.first_response,
                                        "First response buckets (calendar time)"))
        buckets.append_text(bucket_text(rep.current.first_response_business,
                                        "First response buckets (business hours)"))
        self.query_one("#reports-buckets", Static).update(buckets)
        self.query_one("#reports-platforms", Static).update(
            group_table(data.by_platform, "By platform"))
        self.query_one("#reports-agents", Static).update(
            group_table(data.by_agent, "By agent (who sent the reply)"))
