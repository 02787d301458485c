"""The ``jsonl`` source: inbound messages appended to a JSON Lines file, replies to another.

Each poll reads the complete lines appended since the cursor (a partially written last
line waits for the next poll). The cursor records the byte offset, the line number and the
file's identity (device, inode, and a digest of the bytes already read), so a file that was
truncated, rotated or rewritten is noticed and read again from the start; ingest is
idempotent on (source, id), so that re-read adds nothing twice. A malformed line is
recorded in :attr:`JsonlSource.problems` with its line number and skipped.

Replies are appended to ``reply_path``, one JSON object per line, flushed and fsync'd.
Before writing, the file is searched for the reply's idempotency key, so a retry after a
crash never writes the same reply twice.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from replydeck.inbox.model import Message, Reply
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
    parse_json_line,
    parse_message,
    reply_record,
)

log = logging.getLogger(__name__)

#: Messages returned by one fetch at most; the rest follow at once (``Batch.more``).
MAX_BATCH = 5000
_CHUNK = 1 << 20
#: A line longer than this is skipped as malformed instead of being held in memory.
MAX_LINE = 8 << 20
#: Bytes at the start and just before the offset that identify the file already read.
_PROBE = 1024
# Errors a retry cannot fix without a person changing something.
_PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOENT, errno.EISDIR, errno.ENOTDIR,
                     errno.EROFS}


@dataclass
class _Position:
    offset: int = 0
    line: int = 0
    dev: int = 0
    ino: int = 0
    size: int = 0
    probe: str = ""

    @classmethod
    def load(cls, cursor: Cursor | None) -> _Position | None:
        if not cursor:
            return None
        try:
            data = json.loads(cursor)
            pos = cls(**{k: data[k] for k in ("offset", "line", "dev", "ino", "size", "probe")})
        except (ValueError, TypeError, KeyError):
            log.warning("jsonl cursor is unreadable; reading the file from the start")
            return None
        if not all(isinstance(v, int) and v >= 0 for v in (pos.offset, pos.line, pos.dev,
                                                           pos.ino, pos.size)):
            return None
        return pos

    def dump(self) -> Cursor:
        return json.dumps(asdict(self), sort_keys=True)


def _probe(f: Any, offset: int) -> str:
    """A digest of the first bytes and of the bytes just before ``offset``."""
    digest = hashlib.sha256()
    f.seek(0)
    digest.update(f.read(min(offset, _PROBE)))
    f.seek(max(0, offset - _PROBE))
    digest.update(f.read(min(offset, _PROBE)))
    return digest.hexdigest()[:32]


class JsonlSource(BaseSource):
    type_name = "jsonl"
    platform = "jsonl"
    limits = Limits()
    idempotent_send = True

    def __init__(self, name: str, *, path: str | Path, reply_path: str | Path | None = None,
                 max_batch: int = MAX_BATCH) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.reply_path = Path(reply_path) if reply_path else None
        if self.reply_path is None:
            self.limits = Limits(supports_public=False, supports_private=False)
        self.max_batch = max_batch
        self.problems = Problems(name)
        self._send_lock = asyncio.Lock()
        # idempotency key -> created_at of the reply line; built on first send.
        self._sent: dict[str, str] = {}
        self._indexed: tuple[int, int, int] | None = None  # (dev, ino, offset)

    @classmethod
    def from_config(cls, table: Any) -> JsonlSource:
        # file_path: "~" expanded, relative paths taken from the config file's folder.
        return cls(table.name, path=table.file_path("path"),
                   reply_path=table.file_path("reply_path", None))

    def limits_for(self, platform: str) -> Limits:
        """The reply limits of a message's own platform, when it is a well-known one."""
        if self.reply_path is None:
            return self.limits
        return PLATFORM_LIMITS.get(platform, self.limits)

    # -- fetching ---------------------------------------------------------------------

    async def fetch(self, cursor: Cursor | None) -> Batch:
        return await asyncio.to_thread(self._fetch, cursor)

    def _fetch(self, cursor: Cursor | None) -> Batch:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed below, after fstat
        except FileNotFoundError:
            raise TransientError(f"{self.path}: no such file (waiting for it)") from None
        except OSError as exc:
            raise TransientError(f"{self.path}: {exc.strerror or exc}") from None
        with f:
            st = os.fstat(f.fileno())
            pos = _Position.load(cursor)
            if pos is not None and not self._same_file(f, st, pos):
                log.info("source %s: %s was truncated or replaced; reading it from the start",
                         self.name, self.path)
                pos = None
            if pos is None:
                pos = _Position(dev=st.st_dev, ino=st.st_ino)
            items, more = self._read_lines(f, pos)
            pos.dev, pos.ino, pos.size = st.st_dev, st.st_ino, os.fstat(f.fileno()).st_size
            pos.probe = _probe(f, pos.offset)
        return Batch(items=items, cursor=pos.dump(), more=more)

    @staticmethod
    def _same_file(f: Any, st: os.stat_result, pos: _Position) -> bool:
        if (st.st_dev, st.st_ino) != (pos.dev, pos.ino) or st.st_size < pos.offset:
            return False
        return _probe(f, pos.offset) == pos.probe

    def _read_lines(self, f: Any, pos: _Position) -> tuple[list[Message], bool]:
        """Parse complete lines from ``pos`` on, advancing it past each one consumed."""
        items: list[Message] = []
        f.seek(pos.offset)
        buf = bytearray()
        skipping = 0  # bytes of an overlong line seen so far, while looking for its end
        while len(items) < self.max_batch:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            if skipping:
                nl = chunk.find(b"\n")
                if nl < 0:
                    skipping += len(chunk)
                    continue
                pos.offset += skipping + nl + 1
                pos.line += 1
                self.problems.add(f"line {pos.line}: longer than {MAX_LINE} bytes")
                skipping = 0
                chunk = chunk[nl + 1:]
            buf += chunk
            start = 0
            while len(items) < self.max_batch:
                nl = buf.find(b"\n", start)
                if nl < 0:
                    break
                raw = bytes(buf[start:nl])
                start = nl + 1
                pos.offset += len(raw) + 1
                pos.line += 1
                message = self._parse(raw, pos.line)
                if message is not None:
                    items.append(message)
            del buf[:start]
            if len(items) < self.max_batch and len(buf) > MAX_LINE:
                skipping = len(buf)
                buf.clear()
        return items, len(items) >= self.max_batch

    def _parse(self, raw: bytes, lineno: int) -> Message | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.problems.add(f"line {lineno}: not valid UTF-8 (byte {exc.start + 1})")
            return None
        text = text.removeprefix("\ufeff").rstrip("\r")
        if not text.strip():
            return None
        try:
            return parse_message(parse_json_line(text, lineno), self.name, line=lineno)
        except SchemaError as exc:
            self.problems.add(str(exc))
            return None

    # -- sending ----------------------------------------------------------------------

    async def send(self, reply: Reply) -> Receipt:
        if self.reply_path is None:
            raise PermanentError(f"source {self.name} has no reply_path: set one to send replies")
        async with self._send_lock:
            return await asyncio.to_thread(self._send, reply)

    def _send(self, reply: Reply) -> Receipt:
        assert self.reply_path is not None
        key = reply.idempotency_key
        try:
            self._refresh_index()
            if key not in self._sent:
                record = reply_record(reply, datetime.now(timezone.utc))
                self._append(json.dumps(record, ensure_ascii=False) + "\n")
                self._sent[key] = record["created_at"]
        except OSError as exc:
            problem = f"{self.reply_path}: {exc.strerror or exc}"
            if exc.errno in _PERMANENT_ERRNOS:
                raise PermanentError(problem) from None
            raise TransientError(problem) from None
        sent_at = _parse_time(self._sent[key])
        return Receipt(remote_id=f"jsonl-{key}", sent_at=sent_at)

    def _refresh_index(self) -> None:
        """Add the keys of reply lines written since the last look (by us or anyone)."""
        assert self.reply_path is not None
        try:
            f = open(self.reply_path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return
        with f:
            st = os.fstat(f.fileno())
            offset = 0
            if self._indexed and self._indexed[:2] == (st.st_dev, st.st_ino) \
                    and self._indexed[2] <= st.st_size:
                offset = self._indexed[2]
            f.seek(offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a partial last line is not a sent reply
        for raw in data[:end].splitlines():
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("idempotency_key"), str):
                self._sent[obj["idempotency_key"]] = str(obj.get("created_at") or "")
        self._indexed = (st.st_dev, st.st_ino, offset + end)

    def _append(self, line: str) -> None:
        assert self.reply_path is not None
        created = not self.reply_path.exists()
        fd = os.open(self.reply_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            data = line.encode("utf-8")
            size = os.fstat(fd).st_size
            if size and _last_byte(self.reply_path, size) != b"\n":
                # A crash left half a line: end it so ours stays parseable on its own.
                data = b"\n" + data
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.reply_path.parent)

    # -- doctor -----------------------------------------------------------------------

    async def check(self) -> CheckResult:
        details: list[str] = []
        ok = True
        if not self.path.exists():
            ok = False
            details.append(f"{self.path}: no such file yet")
        elif not os.access(self.path, os.R_OK):
            ok = False
            details.append(f"{self.path}: not readable")
        if self.reply_path is not None:
            folder = self.reply_path.parent
            if not folder.is_dir() or not os.access(folder, os.W_OK):
                ok = False
                details.append(f"{folder}: replies cannot be written there")
        else:
            details.append("no reply_path: replies cannot be sent from this source")
        if self.problems.total:
            details.append(f"{self.problems.total} malformed lines skipped; latest: "
                           f"{self.problems.entries[-1]}")
        summary = f"reading {self.path}" if ok else "not ready"
        return CheckResult(ok, summary, details)


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the data itself is synced
    finally:
        os.close(fd)


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
