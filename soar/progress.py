"""Progress display for long work (rich), silent when SOAR_QUIET is set or output is not a terminal."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

T = TypeVar("T")


def enabled() -> bool:
    return not os.environ.get("SOAR_QUIET") and sys.stderr.isatty()


def track(items: Iterable[T], description: str) -> Iterable[T]:
    """Iterate over `items` with a progress bar and ETA on stderr."""
    if not enabled():
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, transient=True)


def log(*args) -> None:
    """Print a progress line at once (also when stdout is a file or a pipe)."""
    print(*args, flush=True)
