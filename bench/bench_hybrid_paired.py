"""Hybrid search against vector-only on one memory store, and the ID-pairs path it replaced.

Usage::

    .venv/bin/python bench/bench_hybrid_paired.py [N]   (default 100000)

Builds bench_hybrid.py's store (N passages with MiniLM-like vectors, exact vector scan below
200k) and times, turn about per SciFact claim: vector-only (k=10); hybrid with ragkit's
defaults as shipped (integer-key fusion, ragkit.base.KeyedRankingStore; BM25 depth 500 read
exhaustively); and hybrid as before (the store seen through RankingStore only, so each side
becomes (chunk ID, score) pairs, and BM25 always pruned). Checks the two hybrids return equal
results and prints medians and ratios to vector-only (of medians, and the paired median).
"""

import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from bench_hybrid import K, LookupEmbedder  # noqa: E402
from bench_vectors import real_vectors, synthesize  # noqa: E402
from corpus import passages, queries  # noqa: E402

import ragkit.bm25 as bm  # noqa: E402
from ragkit.base import DocumentEntry, IndexSettings  # noqa: E402
from ragkit.embedders import LocalEmbedder  # noqa: E402
from ragkit.retrievers import BM25Retriever, HybridRetriever, VectorRetriever  # noqa: E402
from ragkit.stores.memory import MemoryStore  # noqa: E402
from ragkit.types import Chunk  # noqa: E402


class PairsOnly:
    """The store through Store + RankingStore only: hybrid search fuses ID pairs."""

    def __init__(self, store: MemoryStore) -> None:
        self._s = store

    def keyword_search(self, *a: Any) -> Any:
        return self._s.keyword_search(*a)

    def vector_search(self, *a: Any) -> Any:
        return self._s.vector_search(*a)

    def keyword_ranking(self, *a: Any) -> Any:
        return self._s.keyword_ranking(*a)

    def vector_ranking(self, *a: Any) -> Any:
        return self._s.vector_ranking(*a)

    def get_chunks(self, ids: Any) -> Any:
        return self._s.get_chunks(ids)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    qt = queries(83, seed=7)
    emb = LocalEmbedder()
    qm = emb.embed(qt)
    qv = dict(zip(qt, qm, strict=True))
    texts = passages(n)
    real, _ = real_vectors()
    vecs = synthesize(real, n)
    e = LookupEmbedder(qv)
    store = MemoryStore()
    store.configure(IndexSettings(embedder=e.name, dim=384, chunk_size=256, chunk_overlap=0))
    for s in range(0, n, 20000):
        store.write(
            [
                DocumentEntry(
                    f"p{i}",
                    f"{i:064x}",
                    {},
                    (Chunk(f"p{i}#0", texts[i], f"p{i}", 0, len(texts[i])),),
                    (texts[i],),
                    vecs[i : i + 1],
                )
                for i in range(s, min(n, s + 20000))
            ]
        )
    del texts
    v = VectorRetriever(store=store, embedder=e)
    new = HybridRetriever([BM25Retriever(store=store), v])
    ps = PairsOnly(store)
    old = HybridRetriever([BM25Retriever(store=ps), VectorRetriever(store=ps, embedder=e)])

    def run_old(q: str) -> Any:
        saved, bm._EXHAUSTIVE_RATIO = bm._EXHAUSTIVE_RATIO, 0
        try:
            return old.retrieve(q, K)
        finally:
            bm._EXHAUSTIVE_RATIO = saved

    for q in qt[:3]:
        new.retrieve(q, K)
        run_old(q)
        v.retrieve(q, K)
    runs = {
        "vector": lambda q: v.retrieve(q, K),
        "hybrid_new": lambda q: new.retrieve(q, K),
        "hybrid_old": run_old,
    }
    T: dict[str, list[float]] = {name: [] for name in runs}
    for q in qt[3:]:
        got = {}
        for name, f in runs.items():
            t = time.perf_counter()
            got[name] = f(q)
            T[name].append(time.perf_counter() - t)
        assert got["hybrid_new"] == got["hybrid_old"], q
    print("load average", Path("/proc/loadavg").read_text().split()[:3])
    med = {k: statistics.median(x) * 1000 for k, x in T.items()}
    print({k: round(x, 2) for k, x in med.items()})
    for name in ("hybrid_new", "hybrid_old"):
        paired = statistics.median(a / b for a, b in zip(T[name], T["vector"], strict=True))
        print(f"{name}: to vector {med[name] / med['vector']:.2f} (medians), {paired:.2f} (paired)")


if __name__ == "__main__":
    main()
