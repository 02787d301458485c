"""Real servers on loopback for the e2e tests, started once per session by the project's
own scripts in tests/servers/ (each installs what it needs on first use).

Set REPLYDECK_SKIP_E2E=1 to skip these tests; otherwise a server that fails to start is a
test ERROR, not a skip. Everything lives under E2E_DIR (default <repo>/.e2e, gitignored).
One block per server below: keep them separate.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVERS = REPO / "tests" / "servers"
E2E_DIR = Path(os.environ.get("E2E_DIR", str(REPO / ".e2e")))


def skip_if_disabled() -> None:
    if os.environ.get("REPLYDECK_SKIP_E2E") == "1":
        pytest.skip("REPLYDECK_SKIP_E2E=1: real-server tests disabled")


def server_script(script: str, *args: str, timeout: float = 900,
                  env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
    """Run tests/servers/<script> with E2E_DIR set; raise with its output if it fails."""
    full_env = {**os.environ, "E2E_DIR": str(E2E_DIR), **(env or {})}
    done = subprocess.run([str(SERVERS / script), *args], input=stdin, capture_output=True,
                          timeout=timeout, env=full_env, check=False)
    out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} failed ({done.returncode}):\n"
                           f"{out[-3000:]}")
    return out


# ======================================================================================
# Matrix: Synapse (tests/servers/matrix.sh), users alice (our account), bob, carol
# ======================================================================================
MATRIX_PORT = os.environ.get("MATRIX_PORT", "8008")


class MatrixServer:
    def __init__(self, url: str) -> None:
        self.url = url

    def login(self, user: str, password: str) -> str:
        import httpx

        r = httpx.post(f"{self.url}/_matrix/client/v3/login", timeout=30, json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user}, "password": password})
        r.raise_for_status()
        return r.json()["access_token"]


@pytest.fixture(scope="session")
def matrix_server():
    skip_if_disabled()
    env = {"MATRIX_PORT": MATRIX_PORT}
    server_script("matrix.sh", "start", env=env)
    try:
        yield MatrixServer(f"http://127.0.0.1:{MATRIX_PORT}")
    finally:
        server_script("matrix.sh", "stop", "--wipe", env=env, timeout=60)


# ======================================================================================
# Email: Dovecot IMAP + aiosmtpd sink (tests/servers/email.sh), login testuser/testpass
# ======================================================================================
IMAP_PORT = int(os.environ.get("IMAP_PORT", "1143"))
IMAPS_PORT = int(os.environ.get("IMAPS_PORT", "1993"))
SMTP_PORT = int(os.environ.get("SMTP_PORT", "1025"))
SMTPS_PORT = int(os.environ.get("SMTPS_PORT", "1465"))


class EmailServer:
    imap_port = IMAP_PORT  # plain or STARTTLS
    imaps_port = IMAPS_PORT  # implicit TLS
    smtp_port = SMTP_PORT  # plain or STARTTLS
    smtps_port = SMTPS_PORT  # implicit TLS
    ca_file = E2E_DIR / "dovecot" / "tls" / "cert.pem"  # self-signed, for "localhost"
    user = "testuser"
    password = "testpass"
    address = "testuser@localhost"
    outbox = E2E_DIR / "smtp-outbox"  # Maildir where the SMTP sink keeps what it got

    def deliver(self, raw: bytes, mailbox: str | None = None,
                sender: str = "customer@example.com") -> None:
        """Deliver like an MTA does, through dovecot-lda."""
        args = ["deliver", "/dev/stdin", sender] + ([mailbox] if mailbox else [])
        server_script("email.sh", *args, stdin=raw, timeout=60, env=self._env())

    def reset_uids(self, mailbox: str) -> None:
        server_script("email.sh", "reset-uids", mailbox, timeout=60, env=self._env())

    def _env(self) -> dict[str, str]:
        return {"IMAP_PORT": str(IMAP_PORT), "SMTP_PORT": str(SMTP_PORT),
                "IMAPS_PORT": str(IMAPS_PORT), "SMTPS_PORT": str(SMTPS_PORT)}


@pytest.fixture(scope="session")
def email_server():
    skip_if_disabled()
    server = EmailServer()
    server_script("email.sh", "start", env=server._env())
    try:
        yield server
    finally:
        server_script("email.sh", "stop", "--wipe", env=server._env(), timeout=60)


# ======================================================================================
# Bluesky: @atproto/dev-env PLC + PDS + AppView (tests/servers/bsky.sh), PostgreSQL on
# 127.0.0.1:5433; accounts alice.test (our account) and bob.test (the customer)
# ======================================================================================
class BlueskyNetwork:
    pds = "http://127.0.0.1:2583"

    def __init__(self, accounts: dict[str, tuple[str, str]]) -> None:
        #: handle -> (password, did)
        self.accounts = accounts

    def xrpc(self, method: str, nsid: str, token: str | None = None, **kw):
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = httpx.request(method, f"{self.pds}/xrpc/{nsid}", headers=headers, timeout=30, **kw)
        r.raise_for_status()
        return r.json()

    def login(self, handle: str) -> tuple[str, str]:
        """(accessJwt, did) for a fresh session, as the customer's own app would have."""
        s = self.xrpc("POST", "com.atproto.server.createSession",
                      json={"identifier": handle, "password": self.accounts[handle][0]})
        return s["accessJwt"], s["did"]


@pytest.fixture(scope="session")
def bsky_network():
    skip_if_disabled()
    # First install takes 3-4 minutes (Node 22, npm ci of dev-env, PostgreSQL from apt).
    out = server_script("bsky.sh", "start", timeout=1200)
    accounts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "ACCOUNT":
            accounts[parts[1]] = (parts[2], parts[3])
    if "alice.test" not in accounts or "bob.test" not in accounts:
        raise RuntimeError(f"bsky.sh did not report the test accounts:\n{out[-2000:]}")
    try:
        yield BlueskyNetwork(accounts)
    finally:
        server_script("bsky.sh", "stop", "--wipe", timeout=120)


# ======================================================================================
# Mastodon: the PyPI `mastodon-mock` package (NOT a real Mastodon; tests/servers/
# mastodon_mock.sh), tokens alice_token (our account) and bob_token (the customer)
# ======================================================================================
MASTO_PORT = os.environ.get("MASTO_PORT", "3300")


@pytest.fixture(scope="session")
def mastodon_mock():
    skip_if_disabled()
    env = {"MASTO_PORT": MASTO_PORT}
    server_script("mastodon_mock.sh", "start", env=env, timeout=600)
    try:
        yield f"http://127.0.0.1:{MASTO_PORT}"
    finally:
        server_script("mastodon_mock.sh", "stop", "--wipe", env=env, timeout=60)
