"""Glob patterns for choosing files: ``**``, ``*``, ``?`` and ``[...]`` over ``/``-separated
relative paths, a bare name matching at any depth (like ``.gitignore``).

The syntax is described at :func:`ragkit.loaders.load_folder`. This module leaves out walking
folders (``folder.py``) and reading files (``files.py``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob pattern (see :func:`load_folder` for the syntax) to a regex."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"glob patterns must be non-empty strings, got {pattern!r}")
    pat = pattern.replace("\\", "/").lstrip("/")
    while pat.startswith("./"):
        pat = pat[2:]
    if "/" not in pat:
        # Like .gitignore: a bare name pattern matches the file name at any depth.
        pat = "**/" + pat
    out: list[str] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if pat.startswith("**", i):
            j = i + 2
            at_start = i == 0 or pat[i - 1] == "/"
            if at_start and pat.startswith("/", j):
                out.append("(?:.*/)?")  # '**/' : zero or more whole folders
                i = j + 1
            elif at_start and j == n:
                out.append(".*")  # trailing '**' : everything below
                i = j
            else:
                out.append("[^/]*")  # '**' inside a name acts like '*'
                i = j
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pat.find(
                "]", i + 2 if pat.startswith("[!", i) or pat.startswith("[]", i) else i + 1
            )
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pat[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out), re.S)


def _suffix(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    """Whether ``rel`` matches a pattern; its suffix matches case-insensitively."""
    if any(_glob_regex(p).fullmatch(rel) is not None for p in patterns):
        return True
    suffix = os.path.splitext(rel)[1]
    if suffix and suffix != suffix.lower():
        lowered = rel[: -len(suffix)] + suffix.lower()
        return any(_glob_regex(p).fullmatch(lowered) is not None for p in patterns)
    return False
