"""The ``command`` source: any program that prints JSON Lines becomes a source.

Each poll runs ``command`` (split like a shell would, but never run through one) with
``REPLYDECK_CURSOR`` set to the cursor it printed last time (empty the first time). Its
stdout is JSON Lines in the schema of :mod:`replydeck.sources.jsonschema`; a line that is
just ``{"cursor": "..."}`` sets the next cursor. A non-zero exit or a timeout is a
transient error carrying the first line of stderr; malformed lines are recorded in
:attr:`CommandSource.problems` with their line numbers and skipped.

Replies go to ``reply_command`` as one JSON object on stdin, including the
``idempotency_key`` so the program can recognise a retry. Exit 0 means sent (the first
stdout line, or ``{"id": ..., "url": ...}``, is the remote id), exit 75 (EX_TEMPFAIL)
means try later, any other status is a permanent failure shown to the person.

Programs run in the config file's folder, so ``command = "./fetch.py"`` works from cron.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from replydeck.inbox.model import Message, Reply
from replydeck.inbox.sanitize import sanitize_line
from replydeck.sources.base import (
    BaseSource,
    Batch,
    CheckResult,
    Cursor,
    Limits,
    PermanentError,
    Receipt,
    TransientError,
)
from replydeck.sources.jsonschema import (
    PLATFORM_LIMITS,
    Problems,
    SchemaError,
    cursor_line,
    parse_json_line,
    parse_message,
    reply_record,
)

DEFAULT_TIMEOUT = 60.0
#: sysexits.h EX_TEMPFAIL: the reply program asks us to try again later.
EX_TEMPFAIL = 75
_SHOWN = 200  # characters of a program's own message that we repeat in an error


class CommandSource(BaseSource):
    type_name = "command"
    platform = "command"
    idempotent_send = True

    def __init__(self, name: str, *, command: list[str], reply_command: list[str] | None = None,
                 timeout: float = DEFAULT_TIMEOUT, cwd: str | Path | None = None,
                 reply_dedupes: bool = True) -> None:
        super().__init__(name)
        # A reply program that cannot dedupe on the key it is handed must never be run
        # twice for one reply: after a crash mid-send the outbox then holds it as
        # unconfirmed for a person instead.
        self.idempotent_send = reply_dedupes
        if not command:
            raise ValueError("command must name a program")
        self.command = list(command)
        self.reply_command = list(reply_command) if reply_command else None
        self.timeout = timeout
        self.cwd = str(cwd) if cwd else None
        self.problems = Problems(name)
        self.limits = Limits() if self.reply_command else Limits(
            supports_public=False, supports_private=False)

    @classmethod
    def from_config(cls, table: Any) -> CommandSource:
        command = _split(table, "command", table.str("command"))
        reply = table.str("reply_command", None)
        reply_command = _split(table, "reply_command", reply) if reply is not None else None
        timeout = table.number("timeout", DEFAULT_TIMEOUT)
        if timeout <= 0:
            raise table.error("timeout", f"expected a number of seconds > 0, found {timeout:g}")
        return cls(table.name, command=command, reply_command=reply_command,
                   timeout=timeout, cwd=getattr(table, "config_dir", None),
                   reply_dedupes=table.bool("reply_dedupes", True))

    def limits_for(self, platform: str) -> Limits:
        """The reply limits of a message's own platform, when it is a well-known one."""
        if self.reply_command is None:
            return self.limits
        return PLATFORM_LIMITS.get(platform, self.limits)

    # -- fetching ---------------------------------------------------------------------

    async def fetch(self, cursor: Cursor | None) -> Batch:
        env = {**os.environ, "REPLYDECK_CURSOR": cursor or "", "REPLYDECK_SOURCE": self.name}
        code, out, err = await self._run(self.command, env, None)
        if code != 0:
            raise TransientError(f"{_describe_exit(self.command, code)}: {_first_line(err)}")
        items: list[Message] = []
        new_cursor = cursor
        for lineno, raw in enumerate(out.split(b"\n"), start=1):
            try:
                text = raw.decode("utf-8").removeprefix("\ufeff").rstrip("\r")
            except UnicodeDecodeError as exc:
                self.problems.add(f"line {lineno}: not valid UTF-8 (byte {exc.start + 1})")
                continue
            if not text.strip():
                continue
            try:
                obj = parse_json_line(text, lineno)
                given = cursor_line(obj, line=lineno)
                if given is not None:
                    new_cursor = given
                    continue
                items.append(parse_message(obj, self.name, line=lineno))
            except SchemaError as exc:
                self.problems.add(str(exc))
        return Batch(items=items, cursor=new_cursor)

    # -- sending ----------------------------------------------------------------------

    async def send(self, reply: Reply) -> Receipt:
        if self.reply_command is None:
            raise PermanentError(
                f"source {self.name} has no reply_command: set one to send replies")
        now = datetime.now(timezone.utc)
        data = json.dumps(reply_record(reply, now), ensure_ascii=False).encode("utf-8") + b"\n"
        env = {**os.environ, "REPLYDECK_SOURCE": self.name,
               "REPLYDECK_IDEMPOTENCY_KEY": reply.idempotency_key}
        code, out, err = await self._run(self.reply_command, env, data)
        if code == EX_TEMPFAIL:
            raise TransientError(f"reply program asked to retry later (exit 75): "
                                 f"{_first_line(err)}")
        if code != 0:
            raise PermanentError(f"{_describe_exit(self.reply_command, code)}: "
                                 f"{_first_line(err)}")
        remote_id, url = _receipt_fields(out)
        return Receipt(remote_id=remote_id or f"command-{reply.idempotency_key}", url=url,
                       sent_at=now)

    # -- running ----------------------------------------------------------------------

    async def _run(self, argv: list[str], env: dict[str, str],
                   data: bytes | None) -> tuple[int, bytes, bytes]:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if data is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=self.cwd,
                # Its own process group, so a timeout also ends what the program started.
                start_new_session=True,
            )
        except OSError as exc:
            raise PermanentError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(data), self.timeout)
        except asyncio.TimeoutError:
            await _kill(proc)
            raise TransientError(f"{Path(argv[0]).name} timed out after "
                                 f"{self.timeout:g} s and was stopped") from None
        except BaseException:
            await _kill(proc)
            raise
        assert proc.returncode is not None
        return proc.returncode, out, err

    # -- doctor -----------------------------------------------------------------------

    async def check(self) -> CheckResult:
        details: list[str] = []
        ok = True
        for label, argv in (("command", self.command), ("reply_command", self.reply_command)):
            if argv is None:
                details.append(f"no {label}: replies cannot be sent from this source")
                continue
            if _find_program(argv[0], self.cwd) is None:
                ok = False
                details.append(f"{label}: program {argv[0]!r} not found or not executable")
        if self.problems.total:
            details.append(f"{self.problems.total} malformed lines skipped; latest: "
                           f"{self.problems.entries[-1]}")
        summary = f"runs {Path(self.command[0]).name}" if ok else "not ready"
        return CheckResult(ok, summary, details)


def _split(table: Any, key: str, value: str) -> list[str]:
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise table.error(key, f"cannot be split into arguments ({exc})") from None
    if not argv:
        raise table.error(key, "expected a command line, found an empty string")
    # No shell runs it, so expand "~/bin/prog" here as a shell would have.
    argv[0] = os.path.expanduser(argv[0])
    return argv


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        await proc.wait()


def _describe_exit(argv: list[str], code: int) -> str:
    name = Path(argv[0]).name
    if code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = str(-code)
        return f"{name} was stopped by signal {sig}"
    return f"{name} exited with status {code}"


def _first_line(stream: bytes) -> str:
    for raw in stream.split(b"\n"):
        line = sanitize_line(raw.decode("utf-8", "replace"))
        if line:
            return line if len(line) <= _SHOWN else line[:_SHOWN] + "…"
    return "no error output"


def _receipt_fields(out: bytes) -> tuple[str | None, str | None]:
    """The remote id (and url) the reply program printed, if it printed one."""
    for raw in out.split(b"\n"):
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            rid, url = obj.get("id"), obj.get("url")
            rid = sanitize_line(str(rid))[:_SHOWN] if isinstance(rid, (str, int)) else None
            url = sanitize_line(url)[:2000] if isinstance(url, str) else None
            return rid or None, url or None
        return sanitize_line(line)[:_SHOWN] or None, None
    return None, None


def _find_program(program: str, cwd: str | None) -> str | None:
    if os.sep in program:
        path = Path(program)
        if not path.is_absolute() and cwd:
            path = Path(cwd) / path
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(program)
