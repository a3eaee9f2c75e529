"""SciFact test nDCG@10 per mode: the memory store against the Postgres store, same embeddings.

Embeds SciFact once with the default embedder into a memory index, writes the same chunks and
vectors into a Postgres store on the bundled server (ragkit.stores.local_postgres, temp folder),
then evaluates bm25 / vector / hybrid on both. Run: .venv/bin/python bench/bench_postgres_scifact.py
"""

import json
import tempfile
import time
from pathlib import Path

from ragkit.base import DocumentEntry
from ragkit.evaluation import chunk_hits_to_documents, evaluate, load_beir
from ragkit.index import Index, keyword_text
from ragkit.stores import local_postgres, open_store
from ragkit.types import Document

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
ds = load_beir(DATA)
docs = [
    Document(d, f"# {t.strip()}\n\n{x}" if t.strip() else x)
    for d, (t, x) in ds.corpus.items()
    if (t + x).strip()
]
t = time.perf_counter()
mem = Index(embedder="default")
mem.add(docs)
print(
    "embedded",
    len(mem),
    "chunks in",
    round(time.perf_counter() - t, 1),
    "s",
    mem.settings.embedder,
    flush=True,
)
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
            ms._vectors.get(keys),
        )
    )
t = time.perf_counter()
for i in range(0, len(entries), 500):
    pg_store.write(entries[i : i + 500])
print("pg load", round(time.perf_counter() - t, 1), "s", flush=True)
pg = Index(pg_store, embedder=mem.embedder)
out = {}
for name, index in (("memory", mem), ("postgres", pg)):
    for mode in ("bm25", "vector", "hybrid"):

        def search(q, k, index=index, mode=mode):
            hits = index.search(q, 3 * k, mode=mode)
            return chunk_hits_to_documents([(h.id, h.score) for h in hits], k)

        rep = evaluate(search, ds, k=100).as_dict()
        out[f"{name}/{mode}"] = {
            k: rep[k] for k in ("ndcg@10", "recall@100", "query_p50_ms", "query_p95_ms")
        }
        print(name, mode, out[f"{name}/{mode}"], flush=True)
pg.close()
srv.cleanup()
print(json.dumps(out, indent=1))
