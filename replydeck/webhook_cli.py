"""``replydeck webhooks``: run the webhook receiver (Meta and LINE) until stopped.

Registered on the main parser by :func:`register`; the receiver itself is
:mod:`replydeck.webhooks`. It only receives and stores; ``replydeck poll`` (or the TUI)
sends replies and runs the polling safety net.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from typing import Any


def register(sub: Any) -> None:
    w = sub.add_parser(
        "webhooks", help="receive Meta (Messenger, Instagram, Page feed) and LINE webhooks",
        description="Run the webhook receiver: GET/POST /webhooks/meta and POST "
                    "/webhooks/line. Put it behind an HTTPS reverse proxy; the platforms "
                    "only call https:// URLs.")
    w.add_argument("--listen", metavar="HOST:PORT",
                   help="address to listen on (default: [webhooks] listen, else "
                        "127.0.0.1:8787)")
    w.set_defaults(func=cmd_webhooks)


def cmd_webhooks(args: argparse.Namespace) -> int:
    import asyncio  # only here: `replydeck list` must not pay for it

    from replydeck.cli import EXIT_USAGE, _load, _store
    from replydeck.webhooks import WebhookReceiver, parse_config, parse_listen

    config = _load(args)
    hooks = parse_config(config.root)
    if args.listen:
        try:
            hooks.host, hooks.port = parse_listen(args.listen)
        except ValueError as exc:
            print(f"replydeck: --listen: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if hooks.app_secret is None and not any(t.type == "line" for t in config.sources):
        print("replydeck: nothing to receive: configure [webhooks.meta] app_secret and/or a "
              "line source", file=sys.stderr)
        return EXIT_USAGE
    store = _store(config)
    sources = [t.source for t in config.sources]
    receiver = WebhookReceiver(store, sources, hooks)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            host, port = await receiver.start()
        except OSError as exc:
            print(f"replydeck: cannot listen on {hooks.host}:{hooks.port}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"listening on http://{host}:{port} (/webhooks/meta, /webhooks/line); "
              "Ctrl-C stops", flush=True)
        try:
            await stop.wait()
        finally:
            await receiver.stop()
            for source in sources:
                with contextlib.suppress(Exception):
                    await source.close()
        return 0

    try:
        return asyncio.run(main())
    finally:
        store.close()
