"""Extend retrieval by subclassing ``ragkit.Retriever``: implement ``_search``, get the rest.

This retriever boosts chunks whose heading path mentions a query word, on top of BM25, and is
then fused with the index's vector retriever. ``retrieve()`` (inherited) validates the query,
clamps ``k``, sorts by score and breaks ties by chunk ID.

    .venv/bin/python examples/custom_retriever.py "chunk size"
"""

from __future__ import annotations

import sys
from pathlib import Path

import ragkit
from ragkit import Query, Retriever, ScoredChunk
from ragkit.retrievers import HybridRetriever

ROOT = Path(__file__).resolve().parents[1]


class HeadingBoost(Retriever):
    """BM25, plus a bonus for every query word found in the chunk's heading path."""

    name = "heading-boost"

    def __init__(self, *, base: Retriever, bonus: float = 2.0) -> None:
        self.base = base
        self.bonus = bonus

    def size(self) -> int | None:
        return self.base.size()

    def _search(self, query: Query) -> list[ScoredChunk]:
        words = {w.lower() for w in query.text.split()}
        results = []
        for hit in self.base.retrieve(query.with_k(max(query.k * 4, 20))):
            path = " ".join(hit.chunk.headings).lower()
            boost = self.bonus * sum(1 for w in words if w in path)
            results.append(ScoredChunk(hit.chunk, hit.score + boost))
        return results


def main() -> int:
    query = " ".join(sys.argv[1:]) or "chunk size"
    index = ragkit.index_folder(ROOT / "docs", ROOT / ".ragkit" / "example-index")
    boosted = HeadingBoost(base=index.retriever("bm25"))
    retriever: Retriever = boosted
    if index.has_vectors:
        retriever = HybridRetriever([boosted, index.retriever("vector")], fusion="rrf")
    for hit in retriever.retrieve(query, k=5):
        scores = ", ".join(f"{name}={value:.3f}" for name, value in hit.scores.items())
        print(f"{hit.chunk.id:<32} {hit.score:.4f}  {scores}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
