"""Long lists of values asked for with SQL ``IN (…)``, a bounded number at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

#: Values per statement: well under SQLite's bound-parameter limit (999 before 3.32).
CHUNK = 500


def in_chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[tuple[Sequence[T], str]]:
    """Each slice of ``values``, with the ``?,?,…`` placeholders for its ``IN`` list."""
    for i in range(0, len(values), size):
        chunk = values[i:i + size]
        yield chunk, ",".join("?" * len(chunk))
