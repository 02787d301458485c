"""WAL checkpoints on a thread of their own, so that ingest's commits do not wait for them.

In WAL mode SQLite appends every commit to the write-ahead log and copies the log back into
the database file (a checkpoint) when a commit finds the log over ``wal_autocheckpoint``
pages. The commit that trips it waits for the copy, which after a large batch is most of
the commit's time. SQLite's documentation suggests the alternative used here for busy
writers: the writing connection checkpoints only as a safety limit, and a thread with its
own connection runs PASSIVE checkpoints (they never wait for, or block, a reader or a
writer). The sqlite3 module releases the GIL while SQLite works, so the copy runs beside
ingest instead of inside it.

If this process dies, the log simply stays until the next checkpoint by anyone: nothing is
lost, since committed data is durable in the log itself.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

#: How often the thread checkpoints; a PASSIVE checkpoint with nothing to copy is cheap.
INTERVAL_S = 0.25
#: The writer's own limit (pages), reached only if this thread falls far behind.
SAFETY_PAGES = 16_000


class Checkpointer:
    def __init__(self, path: Path, interval: float = INTERVAL_S) -> None:
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        # Held during each checkpoint, so `catch_up` never runs beside one.
        self._busy = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint",
                                        daemon=True)

    def start(self) -> None:
        self._conn = sqlite3.connect(str(self.path), isolation_level=None,
                                     check_same_thread=False)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def catch_up(self) -> None:
        """Checkpoint everything committed so far, now (waits for a running checkpoint)."""
        self._checkpoint()

    def _checkpoint(self) -> None:
        with self._busy:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # e.g. the disk is full: the writer's limit holds
                log.warning("background checkpoint failed: %s", exc)

    def _run(self) -> None:
        try:
            while True:
                self._checkpoint()
                if self._stop.wait(self.interval):
                    return
        finally:
            with self._busy:
                self._conn.close()
