"""Synthetic-but-realistic benchmark corpora built from SciFact text.

``passages(n)`` recombines runs of consecutive sentences from different SciFact abstracts into
passages of ~100-250 words, so term statistics (Zipf tail, scientific vocabulary, sentence
lengths) look like real chunks at any size. ``queries(n)`` samples real SciFact claims.
Deterministic for a given seed; dependency-free apart from numpy.

This module leaves out relevance judgements (synthetic passages have none: use SciFact's qrels
for quality) and caching to disk (generating 100k passages takes about a second).
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["SCIFACT", "passages", "queries"]

SCIFACT = Path(
    os.environ.get("RAGKIT_SCIFACT", Path(__file__).resolve().parents[2] / "shared/data/scifact")
)

# A sentence ends at . ! or ? followed by whitespace and an upper-case letter or digit.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


@lru_cache(maxsize=1)
def _abstracts() -> tuple[tuple[tuple[str, int], ...], ...]:
    """Each SciFact abstract (title first) as its sentences with their word counts."""
    out = []
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            sentences = [doc["title"].strip()] if doc["title"].strip() else []
            sentences += [s.strip() for s in _SENTENCE_END.split(doc["text"]) if s.strip()]
            if sentences:
                out.append(tuple((s, len(s.split())) for s in sentences))
    return tuple(out)


def passages(n: int, *, seed: int = 0, min_words: int = 100, max_words: int = 250) -> list[str]:
    """``n`` passages of ~``min_words``..``max_words`` words mixing SciFact abstracts.

    Each passage draws a target length uniformly, then appends runs of 1-4 consecutive sentences
    from randomly chosen abstracts until it reaches the target (the last run may overshoot it by
    one sentence; very long sentences are kept whole).

    Example:
        >>> len(passages(3))
        3
    """
    if n < 0:
        raise ValueError(f"n ({n}) must be >= 0")
    abstracts = _abstracts()
    rng = np.random.default_rng(seed)
    targets = rng.integers(min_words, max_words + 1, size=n)
    # Draw random numbers in blocks: cheaper than one rng call per sentence run.
    block = 1 << 16
    picks = rng.integers(0, 1 << 62, size=block)
    pos = 0
    out: list[str] = []
    for target in targets.tolist():
        parts: list[str] = []
        words = 0
        while words < target:
            if pos + 3 > block:
                picks = rng.integers(0, 1 << 62, size=block)
                pos = 0
            doc = abstracts[int(picks[pos]) % len(abstracts)]
            start = int(picks[pos + 1]) % len(doc)
            run = 1 + int(picks[pos + 2]) % 4
            pos += 3
            for sentence, count in doc[start : start + run]:
                parts.append(sentence)
                words += count
                if words >= target:
                    break
        out.append(" ".join(parts))
    return out


@lru_cache(maxsize=1)
def _all_queries() -> tuple[str, ...]:
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as fh:
        return tuple(json.loads(line)["text"] for line in fh if line.strip())


def queries(n: int, *, seed: int = 0) -> list[str]:
    """``n`` real SciFact claims in a seeded random order (repeating once all 1,109 are used)."""
    if n < 0:
        raise ValueError(f"n ({n}) must be >= 0")
    pool = _all_queries()
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        out.extend(pool[i] for i in rng.permutation(len(pool))[: n - len(out)].tolist())
    return out
