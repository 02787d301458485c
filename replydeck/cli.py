"""The `replydeck` command: the TUI by default, subcommands for scripts.

Imports stay lazy so `replydeck list` starts quickly and never loads Textual.
Every ConfigError is printed as one clear line and exits with status 2; usage errors
exit with 2 as argparse does; a failed action exits with 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from replydeck import __version__
from replydeck.config.errors import ConfigError
from replydeck.inbox.store import StoreError

EXIT_FAILED = 1
EXIT_USAGE = 2

log = logging.getLogger("replydeck")


class CommandError(Exception):
    """A failed action with a message for the user (exit status 1)."""


# -- helpers -------------------------------------------------------------------------
def _now() -> datetime:
    from replydeck.inbox.model import utcnow

    return utcnow()


#: Libraries that log whole request URLs: Telegram puts the bot token in the path and the
#: Graph API takes ``access_token`` in the query, so their INFO lines would leak secrets.
QUIET_LOGGERS = ("httpx", "httpcore", "hpack", "urllib3")


def _setup_logging(data_dir: Path | None, verbose: bool) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if data_dir is not None:
        try:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            handler: logging.Handler = logging.FileHandler(data_dir / "replydeck.log",
                                                           encoding="utf-8")
            handler.setFormatter(fmt)
            root.addHandler(handler)
        except OSError as exc:
            print(f"replydeck: cannot write the log in {data_dir} "
                  f"({exc.strerror or exc}); continuing without it", file=sys.stderr)
    if verbose:
        err = logging.StreamHandler(sys.stderr)
        err.setFormatter(fmt)
        root.addHandler(err)


def _load(args: argparse.Namespace) -> Any:
    from replydeck.config import paths
    from replydeck.config.loader import load_config

    data = paths.data_dir(args.data_dir)
    _setup_logging(data, args.verbose)
    return load_config(paths.config_path(args.config), data_dir=data)


def _store(config: Any) -> Any:
    """The store with triage and rules, for commands that change conversations."""
    from replydeck.runtime import open_store

    return open_store(config)


def _read_store(config: Any) -> Any:
    """The store for reading only: no triage or rules to load, so `list` starts fast."""
    from replydeck.inbox.store import Store

    return Store(config.database)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=None) + "\n")


def _conv_ids(store: Any, ids: Sequence[int]) -> list[int]:
    for conv_id in ids:
        if store.conversation(conv_id) is None:
            raise CommandError(f"no conversation with id {conv_id}")
    return list(ids)


# -- commands ------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    from replydeck.config import paths
    from replydeck.config.loader import write_example

    path = write_example(paths.config_path(args.config), force=args.force)
    print(f"wrote {path}")
    print("edit it to add your accounts, then run `replydeck doctor` to check it")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    import asyncio

    config = _load(args)
    count = len(config.sources)
    print(f"config: {config.file} (ok, {count} source{'' if count == 1 else 's'})")
    print(f"database: {config.database}")
    problems = 0
    store = _store(config)
    store.close()

    async def check_all() -> list[tuple[str, Any]]:
        async def one(table: Any) -> tuple[str, Any]:
            from replydeck.sources.base import CheckResult

            source = table.source
            try:
                result = await asyncio.wait_for(source.check(), timeout=30)
            except ConfigError as exc:
                result = CheckResult(False, f"secret: {exc.problem}")
            except asyncio.TimeoutError:
                result = CheckResult(False, "no answer within 30 s")
            except Exception as exc:
                result = CheckResult(False, f"{type(exc).__name__}: {exc}")
            finally:
                try:
                    await source.close()
                except Exception:
                    log.exception("closing %s", table.name)
            return table.name, result

        return await asyncio.gather(*(one(t) for t in config.sources))

    for name, result in asyncio.run(check_all()):
        mark = "ok  " if result.ok else "FAIL"
        print(f"{mark} {name}: {result.summary}")
        for line in result.details:
            print(f"     {line}")
        problems += not result.ok
    if problems:
        print(f"{problems} source(s) need attention")
    return EXIT_FAILED if problems else 0


def _install_stop_handlers(loop: Any, stop: Any) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def _poll_report(outcome: Any) -> None:
    if outcome.skipped:
        return
    if outcome.error:
        print(f"{outcome.source}: {outcome.health}: {outcome.error}", file=sys.stderr)
    elif outcome.new_messages:
        print(f"{outcome.source}: {outcome.new_messages} new")


def _outbox_report(report: Any) -> None:
    for rid in report.sent:
        print(f"reply {rid}: sent")
    for rid, err in report.failed:
        print(f"reply {rid}: failed: {err}", file=sys.stderr)
    for rid in report.unconfirmed:
        print(f"reply {rid}: unconfirmed (check it on the platform, then "
              f"`replydeck outbox confirm {rid}` or `replydeck outbox retry {rid}`)",
              file=sys.stderr)


def cmd_poll(args: argparse.Namespace) -> int:
    config = _load(args)
    return _run_services(config, once=args.once)


def _run_services(config: Any, *, once: bool,
                  on_tick: Callable[[Any], None] | None = None,
                  duration: float | None = None) -> int:
    import asyncio

    from replydeck.runtime import (
        ServiceHooks,
        build_services,
        chain,
        make_notifier,
        notification_hooks,
        run_forever,
        run_once,
    )

    store = _store(config)
    notifier = make_notifier(config)
    hooks = chain(ServiceHooks(on_poll=_poll_report, on_outbox=_outbox_report),
                  notification_hooks(store, notifier))
    services = build_services(config, store, hooks)

    async def main() -> int:
        try:
            if once:
                outcomes, _ = await run_once(services, hooks)
                # A source that fetched but works only in part (a notice) is not a failure.
                return EXIT_FAILED if any(o.error and o.ingest is None and not o.skipped
                                          for o in outcomes) else 0
            stop = asyncio.Event()
            _install_stop_handlers(asyncio.get_running_loop(), stop)
            tasks = [asyncio.create_task(run_forever(services, stop, hooks))]
            if on_tick is not None:
                tasks.append(asyncio.create_task(_ticker(store, stop, on_tick)))
            if duration is not None:
                asyncio.get_running_loop().call_later(duration, stop.set)
            await stop.wait()
            await asyncio.gather(*tasks, return_exceptions=True)
            return 0
        finally:
            await services.close()
            if notifier is not None:
                # Give running hooks a moment to finish before the process exits.
                await asyncio.to_thread(notifier.wait_idle, 5.0)
                notifier.close()
            store.close()

    return asyncio.run(main())


async def _ticker(store: Any, stop: Any, on_tick: Callable[[Any], None]) -> None:
    import asyncio

    marker = None
    while not stop.is_set():
        current = await asyncio.to_thread(store.change_marker)
        if current != marker:
            marker = current
            on_tick(store)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


def _filter(args: argparse.Namespace) -> Any:
    from replydeck.inbox.model import Kind, Status
    from replydeck.inbox.store import InboxFilter

    statuses: tuple[Status, ...]
    if args.status == "all":
        statuses = ()
    elif args.status == "open":
        statuses = (Status.OPEN, Status.PENDING)
    else:
        statuses = (Status(args.status),)
    return InboxFilter(
        statuses=statuses,
        platforms=tuple(args.platform or ()),
        kinds=tuple(Kind(k) for k in (args.kind or ())),
        tags=tuple(args.tag or ()),
        assignee=args.assignee,
        search=args.search,
        needs_reply=args.needs_reply,
        breached=args.breached,
    )


def cmd_list(args: argparse.Namespace) -> int:
    from replydeck.output import conversation_json, list_table

    config = _load(args)
    store = _read_store(config)
    try:
        convs = store.window(_filter(args), limit=args.limit)
        undelivered = store.undelivered([c.id for c in convs])
    finally:
        store.close()
    if args.json:
        _print_json([conversation_json(c, undelivered.get(c.id)) for c in convs])
    else:
        width = _terminal_width()
        print(list_table(convs, _now(), width, undelivered))
    return 0


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except OSError:
        return 120


def cmd_show(args: argparse.Namespace) -> int:
    from replydeck.output import (
        conversation_json,
        event_json,
        message_json,
        reply_json,
        show_text,
    )

    config = _load(args)
    store = _read_store(config)
    try:
        conv = store.conversation(args.id)
        if conv is None:
            raise CommandError(f"no conversation with id {args.id}")
        messages = store.messages(conv.id)
        replies = store.replies(conv.id)
        related = store.related_conversations(conv.id)
        if args.json:
            out = conversation_json(conv, store.undelivered([conv.id]).get(conv.id))
            out["messages"] = [message_json(m) for m in messages]
            out["replies"] = [reply_json(r) for r in replies]
            out["events"] = [event_json(e) for e in store.events(conv.id)]
            out["related"] = [c.id for c in related]
            _print_json(out)
        else:
            print(show_text(conv, messages, replies, _now(), related))
    finally:
        store.close()
    return 0


def cmd_reply(args: argparse.Namespace) -> int:
    from replydeck.inbox.outbox import length_problem

    config = _load(args)
    text = sys.stdin.read() if args.stdin else args.text
    if text is None or not text.strip():
        raise CommandError("the reply is empty; give --text \"…\" or --stdin")
    text = text.rstrip("\n")
    store = _store(config)
    try:
        conv = store.conversation(args.id)
        if conv is None:
            raise CommandError(f"no conversation with id {args.id}")
        table = next((t for t in config.sources if t.name == conv.source), None)
        if table is None:
            raise CommandError(f"conversation {args.id} came from source {conv.source!r}, "
                               "which is not in the config; cannot send from here")
        from replydeck.inbox.model import Reply

        probe = Reply(id=0, conversation_id=conv.id, source=conv.source, body=text,
                      private=args.private, idempotency_key="")
        problem = length_problem(probe, table.source, conv.platform)
        if problem:
            raise CommandError(problem)
        reply = store.queue_reply(conv.id, text, private=args.private, agent=config.agent_name)
    finally:
        store.close()
    print(f"reply {reply.id} queued for #{args.id}; `replydeck poll` (or the TUI) sends it")
    return 0


def cmd_status(args: argparse.Namespace, status: str) -> int:
    from replydeck.inbox.model import Status

    config = _load(args)
    store = _store(config)
    try:
        ids = _conv_ids(store, args.ids)
        store.set_status(ids, Status(status), actor=config.agent_name)
    finally:
        store.close()
    print(f"{status if status != 'open' else 'reopened'}: " + ", ".join(f"#{i}" for i in ids))
    return 0


def cmd_snooze(args: argparse.Namespace) -> int:
    from replydeck.inbox.timefmt import parse_when

    config = _load(args)
    until = None
    if not args.until_reply:
        if not args.until:
            raise CommandError("give --until WHEN (2h, tomorrow 9:00, friday, ISO date) "
                               "or --until-reply")
        try:
            until = parse_when(args.until, _now())
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    store = _store(config)
    try:
        ids = _conv_ids(store, args.ids)
        store.snooze(ids, until=until, actor=config.agent_name)
    finally:
        store.close()
    when = until.astimezone().strftime("%a %Y-%m-%d %H:%M") if until else "the customer writes"
    print(f"snoozed until {when}: " + ", ".join(f"#{i}" for i in ids))
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    config = _load(args)
    store = _store(config)
    try:
        ids = _conv_ids(store, args.ids)
        agent = None if args.agent in ("-", "") else args.agent
        if agent == "me":
            agent = config.agent_name
        store.assign(ids, agent, actor=config.agent_name)
    finally:
        store.close()
    print(f"assigned to {agent or 'nobody'}: " + ", ".join(f"#{i}" for i in ids))
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    config = _load(args)
    store = _store(config)
    try:
        ids = _conv_ids(store, args.ids)
        store.tag(ids, args.tag, remove=args.remove, actor=config.agent_name)
    finally:
        store.close()
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from replydeck.inbox.model import ReplyState
    from replydeck.inbox.sanitize import sanitize_line
    from replydeck.output import reply_json

    config = _load(args)
    store = _store(config)
    try:
        if args.action == "retry":
            store.requeue_reply(args.reply_id, actor=config.agent_name)
            print(f"reply {args.reply_id} queued again")
        elif args.action == "confirm":
            reply = store.reply(args.reply_id)
            if reply is None or reply.state != ReplyState.UNCONFIRMED:
                raise CommandError(f"reply {args.reply_id} is not unconfirmed")
            store.mark_sent(args.reply_id, remote_id=f"confirmed-{reply.idempotency_key}")
            print(f"reply {args.reply_id} marked as sent")
        elif args.action == "cancel":
            store.cancel_reply(args.reply_id)
            print(f"reply {args.reply_id} cancelled; its text is the conversation's draft again")
        else:
            pending = store.replies(states=[ReplyState.QUEUED, ReplyState.SENDING,
                                            ReplyState.FAILED, ReplyState.UNCONFIRMED])
            if args.json:
                _print_json([reply_json(r) for r in pending])
            elif not pending:
                print("the outbox is empty")
            for r in [] if args.json else pending:
                print(f"reply {r.id} #{r.conversation_id} [{r.state}] attempts={r.attempts}"
                      + (f": {sanitize_line(r.last_error)}" if r.last_error else ""))
    finally:
        store.close()
    return 0


def cmd_suggest(args: argparse.Namespace) -> int:
    from replydeck.inbox.replies import render
    from replydeck.inbox.suggest import Suggester

    config = _load(args)
    library = config.replies.replies if config.replies is not None else []
    if not library:
        raise CommandError("no saved replies configured ([[replies]] or replies_dir)")
    store = _read_store(config)
    try:
        conv = store.conversation(args.id)
        if conv is None:
            raise CommandError(f"no conversation with id {args.id}")
        customer = [m for m in store.messages(conv.id) if str(m.direction) == "in"]
    finally:
        store.close()
    language = next((m.language for m in reversed(customer) if m.language), None)
    suggester = Suggester(library)
    try:
        ranked = suggester.suggest([m.text for m in customer], language, limit=args.limit)
    finally:
        suggester.close()
    out = [{"name": s.name, "score": round(s.score, 4),
            "text": render(s.reply, platform=conv.platform, customer=conv.author,
                           agent_name=config.agent_name, brand=config.brand)}
           for s in ranked]
    if args.json:
        _print_json(out)
    elif not out:
        print("no saved reply matches this conversation")
    for i, item in enumerate([] if args.json else out, start=1):
        print(f"{i}. {item['name']}  (score {item['score']:.2f})")
        print("   " + item["text"].replace("\n", "\n   "))
    return 0


def cmd_rules_test(args: argparse.Namespace) -> int:

    from replydeck.inbox.timefmt import parse_duration

    config = _load(args)
    if not config.rules:
        raise CommandError("no [[rules]] in the config")
    since = parse_duration(args.since)
    if since is None:
        raise CommandError(f"--since expects a duration such as 7d or 12h, found {args.since!r}")
    from replydeck.runtime import build_assessor

    assessor = build_assessor(config)
    if not hasattr(assessor, "explain"):
        raise CommandError("this build has no rules engine")
    now = _now()
    store = _store(config)
    results = []
    try:
        facts = store.thread_facts(store.conversation_ids(active_since=now - since))
        for f in facts:
            fired = assessor.explain(f, now, as_if_new=True)
            if fired:
                results.append({"id": f.conversation_id, "platform": f.platform,
                                "rules": [{"name": n, "actions": a} for n, a in fired]})
    finally:
        store.close()
    if args.json:
        _print_json(results)
        return 0
    print(f"{len(facts)} conversations since {args.since} ago; rules fire on {len(results)} "
          "(nothing was changed)")
    for r in results:
        for rule in r["rules"]:
            print(f"#{r['id']} ({r['platform']}): {rule['name']}: " + "; ".join(rule["actions"]))
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    config = _load(args)
    from replydeck.tui.app import run

    return run(config)


def cmd_demo(args: argparse.Namespace) -> int:
    from replydeck.config import paths
    from replydeck.config.loader import load_config
    from replydeck.demo_config import write_demo_config

    data = paths.data_dir(args.data_dir) / "demo"
    _setup_logging(data, args.verbose)
    config_file = write_demo_config(data, seed=args.seed, rate=args.rate, fresh=args.fresh)
    config = load_config(config_file, data_dir=data)
    if not args.headless:
        from replydeck.tui.app import run

        return run(config, title="replydeck demo")
    from replydeck.inbox.store import InboxFilter
    from replydeck.output import list_table

    width = _terminal_width()

    def show(store: Any) -> None:
        convs = store.window(InboxFilter(), limit=args.limit)
        total = store.count(InboxFilter())
        print(f"\n== {_now().astimezone().strftime('%H:%M:%S')}  {total} conversations "
              f"need attention (showing {len(convs)}) ==")
        print(list_table(convs, _now(), width))
        sys.stdout.flush()

    print(f"demo data in {data} (Ctrl-C stops)")
    return _run_services(config, once=False, on_tick=show, duration=args.duration)


# -- parser --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="replydeck",
        description="A terminal inbox for answering customers on social media. "
                    "With no command, opens the inbox.")
    p.add_argument("--version", action="version", version=f"replydeck {__version__}")
    p.add_argument("--config", metavar="FILE",
                   help="config file (default: $REPLYDECK_CONFIG or the XDG config dir)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="data folder (default: $REPLYDECK_DATA_DIR or the XDG data dir)")
    p.add_argument("-v", "--verbose", action="store_true", help="log to stderr too")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="open the inbox on built-in simulated traffic")
    d.add_argument("--headless", action="store_true",
                   help="no TUI: poll the demo and print the inbox as it fills")
    d.add_argument("--seed", type=int, default=7, help="same seed, same traffic (default 7)")
    d.add_argument("--rate", type=float, default=6.0, help="new messages per minute (default 6)")
    d.add_argument("--fresh", action="store_true", help="start from an empty demo inbox")
    d.add_argument("--limit", type=int, default=20, help="rows printed with --headless")
    d.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="with --headless: stop after this many seconds")
    d.set_defaults(func=cmd_demo)

    i = sub.add_parser("init", help="write a commented example config")
    i.add_argument("--force", action="store_true", help="replace an existing config file")
    i.set_defaults(func=cmd_init)

    sub.add_parser("doctor", help="check the config, resolve secrets, reach every source"
                   ).set_defaults(func=cmd_doctor)

    po = sub.add_parser("poll", help="run the poller and the outbox without the TUI")
    po.add_argument("--once", action="store_true",
                    help="fetch every source once, send everything queued, then exit")
    po.set_defaults(func=cmd_poll)

    ls = sub.add_parser("list", help="list conversations (most urgent first)")
    ls.add_argument("--json", action="store_true", help="one JSON array, stable schema")
    ls.add_argument("--status", default="open",
                    choices=["open", "pending", "snoozed", "done", "all"],
                    help="open = open and pending (default)")
    ls.add_argument("--platform", action="append", help="only this platform (repeatable)")
    ls.add_argument("--kind", action="append",
                    choices=["mention", "comment", "dm", "reply", "email", "review"])
    ls.add_argument("--tag", action="append", help="only conversations with this tag")
    ls.add_argument("--assignee", help="only conversations assigned to this agent")
    ls.add_argument("--search", metavar="TEXT", help="full-text search in messages")
    ls.add_argument("--needs-reply", action="store_true", help="only those waiting for us")
    ls.add_argument("--breached", action="store_true", help="only those past their target")
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=cmd_list)

    sh = sub.add_parser("show", help="one conversation with every message")
    sh.add_argument("id", type=int)
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_show)

    r = sub.add_parser("reply", help="queue a reply (the outbox sends it)")
    r.add_argument("id", type=int)
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--text")
    src.add_argument("--stdin", action="store_true", help="read the reply from stdin")
    r.add_argument("--private", action="store_true", help="reply privately (DM)")
    r.set_defaults(func=cmd_reply)

    for name, status, text in (("done", "done", "mark conversations done"),
                               ("reopen", "open", "reopen conversations")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("ids", type=int, nargs="+", metavar="ID")
        sp.set_defaults(func=lambda a, s=status: cmd_status(a, s))

    sn = sub.add_parser("snooze", help="hide conversations until a time or the next message")
    sn.add_argument("ids", type=int, nargs="+", metavar="ID")
    sn.add_argument("--until", metavar="WHEN", help="2h, tomorrow 9:00, friday, 2026-12-01")
    sn.add_argument("--until-reply", action="store_true",
                    help="until the customer writes again")
    sn.set_defaults(func=cmd_snooze)

    a = sub.add_parser("assign", help="assign conversations (AGENT 'me', or '-' for nobody)")
    a.add_argument("agent")
    a.add_argument("ids", type=int, nargs="+", metavar="ID")
    a.set_defaults(func=cmd_assign)

    t = sub.add_parser("tag", help="add (or --remove) a tag")
    t.add_argument("tag")
    t.add_argument("ids", type=int, nargs="+", metavar="ID")
    t.add_argument("--remove", action="store_true")
    t.set_defaults(func=cmd_tag)

    sg = sub.add_parser("suggest", help="saved replies ranked for a conversation")
    sg.add_argument("id", type=int)
    sg.add_argument("--json", action="store_true")
    sg.add_argument("--limit", type=int, default=5)
    sg.set_defaults(func=cmd_suggest)

    ru = sub.add_parser("rules", help="automation rules")
    ru_sub = ru.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    rt = ru_sub.add_parser("test", help="show which rules would fire on stored conversations, "
                           "changing nothing")
    rt.add_argument("--since", default="7d", help="conversations active in this period (7d)")
    rt.add_argument("--json", action="store_true")
    rt.set_defaults(func=cmd_rules_test)

    from replydeck.report_cli import register as register_report
    from replydeck.webhook_cli import register as register_webhooks

    register_report(sub)
    register_webhooks(sub)

    o = sub.add_parser("outbox", help="replies not yet delivered; retry, confirm or cancel")
    o.add_argument("action", nargs="?", choices=["list", "retry", "confirm", "cancel"],
                   default="list")
    o.add_argument("reply_id", type=int, nargs="?")
    o.add_argument("--json", action="store_true")
    o.set_defaults(func=cmd_outbox)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if getattr(args, "action", None) in ("retry", "confirm", "cancel") and args.reply_id is None:
        parser.error(f"outbox {args.action} needs a REPLY_ID")
    try:
        if func is None:
            return cmd_tui(args)
        return int(func(args))
    except ConfigError as exc:
        print(f"replydeck: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"replydeck: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except StoreError as exc:
        print(f"replydeck: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `replydeck list | head`: the reader left; that is not an error.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
