"""SMTP server for the e2e tests (run by email.sh with its own venv's python).

aiosmtpd storing every accepted message in a Maildir, on two ports:
  * PORT: plain, STARTTLS offered (not required); AUTH offered only after STARTTLS
  * SMTPS_PORT: implicit TLS with AUTH
AUTH accepts USER/PASSWORD only, like a real submission server; mail without AUTH is
accepted too (a loopback relay), so plain-mode tests need no credentials.
"""

from __future__ import annotations

import argparse
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--smtps-port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--user", default="testuser")
    ap.add_argument("--password", default="testpass")
    args = ap.parse_args()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == args.user.encode()
              and auth_data.password == args.password.encode())
        return AuthResult(success=ok)

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    common = {"authenticator": authenticator, "auth_required": False,
              "auth_require_tls": True}
    starttls = Controller(Mailbox(args.maildir), hostname="127.0.0.1", port=args.port,
                          server_kwargs={**common, "tls_context": ctx,
                                         "require_starttls": False})
    smtps = Controller(Mailbox(args.maildir), hostname="127.0.0.1", port=args.smtps_port,
                       ssl_context=ctx, server_kwargs=common)
    starttls.start()
    smtps.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    starttls.stop()
    smtps.stop()


if __name__ == "__main__":
    main()
