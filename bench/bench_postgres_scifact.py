"""SciFact test nDCG@10 per mode: the memory store against the Postgres store, same chunks.

Indexes SciFact into a memory index (with the default embedder, or keyword-only with
``--bm25-only``), writes the same chunks (and vectors) into a Postgres store on the bundled server
(ragkit.stores.local_postgres, temp folder) in one write (a bulk load), then evaluates each mode
on both and checks BM25 parity query by query: the same top 10 chunk IDs and the largest score
difference. Run::

    .venv/bin/python bench/bench_postgres_scifact.py [--bm25-only]
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from ragkit.base import DocumentEntry
from ragkit.evaluation import chunk_hits_to_documents, evaluate, load_beir
from ragkit.index import Index, keyword_text
from ragkit.stores import local_postgres, open_store
from ragkit.types import Document

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--bm25-only", action="store_true", help="keyword-only (no embedder)")
args = parser.parse_args()

DATA = Path(
    os.environ.get("RAGKIT_SCIFACT", Path(__file__).resolve().parents[2] / "shared/data/scifact")
)
ds = load_beir(DATA)
docs = [
    Document(d, f"# {t.strip()}\n\n{x}" if t.strip() else x)
    for d, (t, x) in ds.corpus.items()
    if (t + x).strip()
]
t = time.perf_counter()
mem = Index(embedder=None) if args.bm25_only else Index(embedder="default")
mem.add(docs)
print("indexed", len(mem), "chunks in", round(time.perf_counter() - t, 1), "s", flush=True)
srv = local_postgres.start(tempfile.mkdtemp(prefix="ragkit-pg-"), delete=True)
pg_store = open_store(srv.url + "&ragkit_schema=scifact2", migrate=True)
pg_store.configure(mem.settings)
ms = mem.store
entries = []
for doc_id, keys in ms._doc_keys.items():
    chunks = tuple(ms._chunks[k] for k in keys)
    entries.append(
        DocumentEntry(
            doc_id,
            ms._doc_hash[doc_id],
            ms._doc_meta[doc_id],
            chunks,
            tuple(keyword_text(c) for c in chunks),
            None if args.bm25_only else ms._vectors.get(keys),
        )
    )
t = time.perf_counter()
pg_store.write(entries)
print("pg load", round(time.perf_counter() - t, 1), "s", flush=True)
pg = Index(pg_store, embedder=None if args.bm25_only else mem.embedder)

same, worst = 0, 0.0
for q in ds.queries.values():
    a, b = mem.search(q, 10, mode="bm25"), pg.search(q, 10, mode="bm25")
    if [h.id for h in a] == [h.id for h in b]:
        same += 1
        worst = max([worst, *(abs(x.score - y.score) for x, y in zip(a, b, strict=True))])
out: dict[str, object] = {
    "bm25_top10_identical": f"{same}/{len(ds.queries)}",
    "bm25_max_score_diff": worst,
}
# The pruned (MaxScore) and the exhaustive BM25 on the same queries, interleaved, k = 10.
from ragkit.stores import _pg_bm25  # noqa: E402

timing: dict[str, list[float]] = {"pruned": [], "exhaustive": []}
for q in ds.queries.values():
    for name, limit in (("pruned", _pg_bm25._PRUNE_POSTINGS), ("exhaustive", 10**15)):
        saved, _pg_bm25._PRUNE_POSTINGS = _pg_bm25._PRUNE_POSTINGS, limit
        t = time.perf_counter()
        pg_store.keyword_search(q, 10)
        timing[name].append(time.perf_counter() - t)
        _pg_bm25._PRUNE_POSTINGS = saved
for name, values in timing.items():
    values.sort()
    out[f"postgres/bm25_k10_{name}_p50_ms"] = round(1000 * values[len(values) // 2], 2)
    out[f"postgres/bm25_k10_{name}_p95_ms"] = round(1000 * values[int(len(values) * 0.95)], 2)
out["load_average"] = os.getloadavg()
print(out, flush=True)
modes = ("bm25",) if args.bm25_only else ("bm25", "vector", "hybrid")
for name, index in (("memory", mem), ("postgres", pg)):
    for mode in modes:

        def search(q, k, index=index, mode=mode):
            hits = index.search(q, 3 * k, mode=mode)
            return chunk_hits_to_documents([(h.id, h.score) for h in hits], k)

        rep = evaluate(search, ds, k=100).as_dict()
        out[f"{name}/{mode}"] = {
            k: rep[k] for k in ("ndcg@10", "recall@100", "query_p50_ms", "query_p95_ms")
        }
        print(name, mode, out[f"{name}/{mode}"], flush=True)
pg.close()
srv.stop()
print(json.dumps(out, indent=1))
