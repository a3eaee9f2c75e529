"""Progress of a long indexing run on stderr: the one helper of ``ragkit index``, ``ragkit eval``
and ``index_folder(progress=True)``.

On a terminal it is a tqdm bar of the chunks done; in a log (stderr not a terminal) it is one
plain line per tenth of the work, so no bar leftovers end up glued to a summary. Nothing is shown
when there is no work.

This module leaves out what is measured: callers pass ``(done, total)`` as the library's
``progress`` callbacks do.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["Progress"]


class Progress:
    """A ``progress(done, total)`` callback that shows itself on stderr.

    Args:
        desc: what is counted (``"embedding"``).
        enabled: ``False`` shows nothing (``--json`` output, say).

    Example:
        >>> Progress("embedding", enabled=False)(5, 10)
    """

    def __init__(self, desc: str = "embedding", *, enabled: bool = True) -> None:
        self.desc = desc
        self.enabled = enabled
        self.bar: Any = None
        self.tty = sys.stderr.isatty()
        self.shown = -1

    def note(self, message: str) -> None:
        """One line about a phase (loading, saving), when progress is shown."""
        if self.enabled:
            sys.stderr.write(f"ragkit: {message}\n")
            sys.stderr.flush()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        if not self.tty:
            tenth = done * 10 // total
            if tenth > self.shown:
                self.shown = tenth
                self.note(f"{self.desc}: {done}/{total} chunks")
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="chunk", file=sys.stderr, leave=False)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        """Remove the bar, if one was drawn."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
