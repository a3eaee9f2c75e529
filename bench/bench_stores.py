"""Before/after benchmark of the store seam (issue 7): the code before the redesign vs now.

Usage::

    .venv/bin/python bench/bench_stores.py prepare                      # MiniLM vectors, once
    .venv/bin/python bench/bench_stores.py latency --baseline /work/baseline --n 100000 1000000
    .venv/bin/python bench/bench_stores.py scifact --baseline /work/baseline
    .venv/bin/python bench/bench_stores.py report                       # markdown from bench/out

Two versions of ragkit are measured in one run: ``--baseline ROOT`` (a checkout from before the
redesign) and ``--current ROOT`` (default: this checkout). Each runs in its own long-lived worker
process (``PYTHONPATH=ROOT``), both built from the same corpus and the same vectors; the parent
sends every query to both workers in turn (alternating which goes first) and each worker times
only the library call, so machine noise hits both alike. Reported: medians, p95 and the ratio
current / baseline.

``latency`` measures through the public ``Index`` of each version:

- ``Index.search`` in bm25, vector and hybrid mode (k=10) at each ``--n`` (one chunk per
  ``bench/corpus.py`` passage; vectors are MiniLM-like 384-d vectors from
  ``bench/bench_vectors.py``; query embedding excluded: a lookup embedder returns the real
  MiniLM vector of each SciFact claim). Both versions must return the same top 10 (checked).
- add one document / remove one document at the smallest ``--n`` (the real chunker; vectors
  from a hashing embedder).
- current only: filtered search (1 % and 10 % of the chunks match) in every mode, with the
  vector part's Recall@10 against an exact numpy search of the matching rows, and the cost of
  the first query with a new filter (the mask is built then, and cached until the next write).

The build bypasses the token-aware chunker (one chunk per passage; the chunker is the same code
in both versions and is not what the store seam changed) and feeds the precomputed vectors in
order through each version's own ``Index.add``.

``scifact`` runs ``ragkit eval`` on SciFact (test qrels) for each version and mode, one version
after the other (quality is deterministic), and records which embedder each run used.

This module leaves out the Postgres store (measured elsewhere) and query embedding time.
Outputs: bench/out/stores_latency.json, bench/out/stores_scifact.json (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = Path(os.environ.get("RAGKIT_BENCH_DATA", HERE / "data"))
OUT = HERE / "out"
PY = sys.executable
SCIFACT = Path(os.environ.get("RAGKIT_SCIFACT", ROOT.parent / "shared" / "data" / "scifact"))
PASSAGES_FILE = DATA / "scifact_passages_minilm.npy"  # as written by bench_vectors.real_vectors
QUERIES_FILE = DATA / "scifact_queries_minilm.npy"
K = 10


def git_commit(root: Path) -> str:
    """The checkout's short commit (``ROOT/.commit`` names it for an exported tree)."""
    if (root / ".commit").is_file():
        return (root / ".commit").read_text().strip()
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def env_for(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root)
    return env


# -- prepare: real MiniLM vectors of SciFact passages and claims --------------------------------


def cmd_prepare(args: argparse.Namespace) -> None:
    """Embed once (bench_vectors.real_vectors' cache files) and write the synthetic matrices."""
    if not (PASSAGES_FILE.exists() and QUERIES_FILE.exists()):
        # bench_vectors puts this checkout first on sys.path: run it with the current code.
        code = (
            "import sys; sys.path.insert(0, 'bench'); import bench_vectors as b; b.real_vectors()"
        )
        subprocess.run([PY, "-c", code], cwd=ROOT, env=env_for(ROOT), check=True)
    for n in args.n:
        synthetic_vectors(n)


def synthetic_vectors(n: int) -> Path:
    """bench_vectors.synthesize(real, n) saved as .npy (workers memory-map it)."""
    path = DATA / f"stores_vectors_{n}.npy"
    if not path.exists():
        sys.path.insert(0, str(HERE))
        from bench_vectors import synthesize

        real = np.load(PASSAGES_FILE)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, synthesize(real, n))
        tmp.replace(path)
    return path


# -- the worker: one process per version ---------------------------------------------------------


def hash_vectors(texts: list[str], dim: int) -> np.ndarray:
    """Deterministic unit vectors from text (for documents added after the build)."""
    import hashlib

    out = np.empty((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
        out[i] = np.random.default_rng(seed).standard_normal(dim, dtype=np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


class BenchEmbedder:
    """Query vectors by lookup; document vectors fed in order from a precomputed matrix.

    Satisfies both protocols: the current one (``embed_documents``/``embed_query``) and the
    baseline's (``embed``). No model runs, so timings exclude embedding.
    """

    name = "bench-lookup/384"
    dim = 384
    batch_size = 256
    max_input_tokens = 512

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        self.feed: np.ndarray | None = None
        self.pos = 0

    def embed_documents(self, texts: Any) -> np.ndarray:
        texts = list(texts)
        if self.feed is not None:
            rows = np.array(self.feed[self.pos : self.pos + len(texts)], dtype=np.float32)
            if rows.shape[0] != len(texts):
                raise RuntimeError("the precomputed vectors ran out")
            self.pos += len(texts)
            return rows
        return hash_vectors(texts, self.dim)

    def embed_query(self, text: str) -> np.ndarray:
        return self.table[text]

    def embed(self, texts: Any) -> np.ndarray:  # the baseline's protocol
        texts = list(texts)
        if len(texts) == 1 and texts[0] in self.table:
            return self.table[texts[0]][None, :]
        return self.embed_documents(texts)


def bucket_rows(n: int, spec_name: str) -> np.ndarray:
    """Rows (= passage numbers) matching a filter of FILTERS."""
    rows = np.arange(n)
    if spec_name == "1%":
        return rows[rows % 100 == 7]
    return rows[rows % 100 < 10]


FILTERS: dict[str, Any] = {"1%": {"bucket": 7}, "10%": {"bucket": {"$in": list(range(10))}}}


class Worker:
    def __init__(self, version: str, root: Path) -> None:
        import ragkit

        where = Path(ragkit.__file__).resolve()
        if not where.is_relative_to(root.resolve()):
            raise SystemExit(f"{version}: imported ragkit from {where}, not from {root}")
        self.version = version
        self.ragkit_file = str(where)
        try:
            import ragkit.stores.memory  # noqa: F401

            self.seam = True
        except ImportError:
            self.seam = False
        sys.path.insert(0, str(HERE))
        import corpus

        self.corpus = corpus
        claims = list(corpus._all_queries())
        qvecs = np.load(QUERIES_FILE).astype(np.float32)
        self.claims = claims
        self.embedder = BenchEmbedder(dict(zip(claims, qvecs, strict=True)))
        self.index: Any = None
        self.n = 0
        self.feed: np.ndarray | None = None
        self.spare: list[str] = []

    def build(self, n: int, vectors: str) -> dict[str, Any]:
        import gc

        from ragkit.index import Index
        from ragkit.types import Chunk, Document

        self.index = None
        gc.collect()
        texts = self.corpus.passages(n)
        self.spare = self.corpus.passages(200, seed=1)
        self.feed = np.load(vectors, mmap_mode="r")
        self.embedder.feed, self.embedder.pos = self.feed, 0
        seam = self.seam

        def one_chunk(doc: Any, **_: Any) -> list[Any]:
            if seam:
                return [Chunk(f"{doc.id}#0", doc.text, doc.id, 0, len(doc.text), (), doc.metadata)]
            return [Chunk(f"{doc.id}#0", doc.text, doc.id, 0, len(doc.text))]

        # Wherever this version looks the chunker up at call time (ragkit.index in older
        # versions; ragkit.chunking itself since it is imported when a document is chunked).
        import importlib

        holders = []
        for name in ("ragkit.index", "ragkit.entries", "ragkit.chunking"):
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            if "chunk_document" in vars(module):
                holders.append((module, module.chunk_document))
                module.chunk_document = one_chunk
        t0 = time.perf_counter()
        try:
            index = Index(embedder=self.embedder)
            step = 20_000
            for start in range(0, n, step):
                stop = min(n, start + step)
                if seam:
                    docs = [
                        Document(f"p{i}", texts[i], metadata={"bucket": i % 100})
                        for i in range(start, stop)
                    ]
                else:
                    docs = [Document(f"p{i}", texts[i]) for i in range(start, stop)]
                index.add(docs)
        finally:
            for module, real_chunker in holders:
                module.chunk_document = real_chunker
        build_s = time.perf_counter() - t0
        self.embedder.feed = None
        del texts
        gc.collect()
        self.index, self.n = index, n
        return {"build_s": round(build_s, 2), "chunks": len(index)}

    def search(self, mode: str, q: int, where: str | None = None) -> dict[str, Any]:
        text = self.claims[q]
        kwargs: dict[str, Any] = {"mode": mode}
        if where is not None:
            kwargs["where"] = FILTERS[where]
        t = time.perf_counter()
        results = self.index.search(text, K, **kwargs)
        ms = (time.perf_counter() - t) * 1000
        return {"ms": ms, "ids": [r.chunk.id for r in results]}

    def exact(self, q: int, where: str) -> dict[str, Any]:
        """Top 10 by exact cosine among the rows matching ``where`` (numpy, no store)."""
        assert self.feed is not None
        rows = bucket_rows(self.n, where)
        scores = np.asarray(self.feed[rows]) @ self.embedder.table[self.claims[q]]
        top = np.argsort(-scores, kind="stable")[:K]
        return {"ids": [f"p{int(rows[i])}#0" for i in top]}

    def new_filter(self, q: int) -> dict[str, Any]:
        """The first query with a filter not seen since the last write (the mask is built)."""
        value = 1000 + q  # no document has it: the mask is built and matches nothing
        t = time.perf_counter()
        self.index.search(self.claims[q], K, mode="bm25", where={"bucket": value})
        first = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        self.index.search(self.claims[q], K, mode="bm25", where={"bucket": value})
        again = (time.perf_counter() - t) * 1000
        return {"first_ms": first, "again_ms": again}

    def filter_after_write(self, q: int, j: int) -> dict[str, Any]:
        """A filtered search right after a one-document write, its filter used just before."""
        from ragkit.types import Document

        where = FILTERS["1%"]
        self.index.search(self.claims[q], K, mode="bm25", where=where)
        self.index.add([Document(f"fw{j}", self.spare[100 + j % 100])])
        t = time.perf_counter()
        self.index.search(self.claims[q], K, mode="bm25", where=where)
        ms = (time.perf_counter() - t) * 1000
        self.index.remove([f"fw{j}"])
        return {"ms": ms}

    def add_one(self, j: int) -> dict[str, Any]:
        from ragkit.types import Document

        doc = Document(f"new{j}", self.spare[j])
        t = time.perf_counter()
        self.index.add([doc])
        return {"ms": (time.perf_counter() - t) * 1000}

    def warm_updates(self) -> dict[str, Any]:
        """One untimed add and remove (loads the tokenizer the chunker uses)."""
        from ragkit.types import Document

        self.index.add([Document("warm", self.spare[-1])])
        self.index.remove(["warm"])
        return {}

    def remove_one(self, j: int) -> dict[str, Any]:
        t = time.perf_counter()
        self.index.remove([f"p{j}"])
        return {"ms": (time.perf_counter() - t) * 1000}

    def info(self) -> dict[str, Any]:
        import platform

        return {
            "version": self.version,
            "ragkit": self.ragkit_file,
            "seam": self.seam,
            "claims": len(self.claims),
            "python": platform.python_version(),
            "numpy": np.__version__,
        }

    def memory(self) -> dict[str, Any]:
        import resource

        return {"maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def cmd_worker(args: argparse.Namespace) -> None:
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    worker = Worker(args.version, Path(args.root))
    for line in sys.stdin:
        msg = json.loads(line)
        op = msg.pop("op")
        if op == "quit":
            break
        try:
            reply = {"ok": True, **getattr(worker, op)(**msg)}
        except Exception as exc:  # report, let the parent decide
            import traceback

            reply = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "tb": traceback.format_exc(),
            }
        out.write(json.dumps(reply) + "\n")
        out.flush()


class Client:
    """The parent's handle on one worker process."""

    def __init__(self, version: str, root: Path) -> None:
        self.version = version
        self.root = root
        self.proc = subprocess.Popen(
            [
                PY,
                str(Path(__file__).resolve()),
                "worker",
                "--version",
                version,
                "--root",
                str(root),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env_for(root),
            cwd=str(root),
            text=True,
        )

    def send(self, op: str, **kw: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()

    def recv(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.version} died (exit {self.proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        if not reply.pop("ok"):
            raise SystemExit(f"worker {self.version}: {reply['error']}\n{reply['tb']}")
        return reply

    def call(self, op: str, **kw: Any) -> dict[str, Any]:
        self.send(op, **kw)
        return self.recv()

    def close(self) -> None:
        try:
            self.send("quit")
        except (BrokenPipeError, OSError):
            pass
        self.proc.wait(timeout=120)


# -- latency -------------------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values)
    return {
        "p50_ms": round(float(np.median(arr)), 3),
        "p95_ms": round(float(np.percentile(arr, 95)), 3),
        "runs": len(values),
    }


def ratio(cur: list[float], base: list[float], q: float) -> float:
    return round(float(np.percentile(cur, q) / np.percentile(base, q)), 3)


def cmd_latency(args: argparse.Namespace) -> None:
    versions = {"baseline": Path(args.baseline), "current": Path(args.current)}
    for spec in args.extra:
        name, _, root = spec.partition("=")
        versions[name] = Path(root)
    clients = {v: Client(v, root) for v, root in versions.items()}
    others = [v for v in clients if v != "baseline"]
    report: dict[str, Any] = {
        "commits": {v: git_commit(root) for v, root in versions.items()},
        "workers": {v: c.call("info") for v, c in clients.items()},
        "k": K,
        "sizes": [],
    }
    print(json.dumps(report), flush=True)
    modes = ("bm25", "vector", "hybrid")
    rng = np.random.default_rng(7)
    order = list(clients)
    try:
        for n in args.n:
            vectors = synthetic_vectors(n)
            for c in clients.values():  # build all at once (two cores)
                c.send("build", n=n, vectors=str(vectors))
            builds = {v: c.recv() for v, c in clients.items()}
            print(n, json.dumps(builds), flush=True)
            n_queries = args.queries if n <= 200_000 else args.queries_large
            qids = rng.permutation(report["workers"]["baseline"]["claims"])
            warm, qids = qids[:3].tolist(), qids[3 : 3 + n_queries].tolist()
            for q in warm:
                for c in clients.values():
                    for mode in modes:
                        c.call("search", mode=mode, q=q)
            lat = {v: {m: [] for m in modes} for v in clients}
            same: dict[str, dict[str, list[float]]] = {v: {m: [] for m in modes} for v in others}
            filtering = n in args.filter_n and report["workers"]["current"]["seam"]
            filt: dict[str, dict[str, list[float]]] = {f: {m: [] for m in modes} for f in FILTERS}
            filt_recall: dict[str, list[float]] = {f: [] for f in FILTERS}
            filt_ok = {f: True for f in FILTERS}
            for i, q in enumerate(qids):
                turn = order[i % len(order) :] + order[: i % len(order)]
                if (i // len(order)) % 2:
                    turn = turn[::-1]
                for mode in modes:
                    got = {}
                    for v in turn:
                        r = clients[v].call("search", mode=mode, q=q)
                        lat[v][mode].append(r["ms"])
                        got[v] = r["ids"]
                    for v in others:
                        base = got["baseline"]
                        same[v][mode].append(len(set(base) & set(got[v])) / max(1, len(base)))
                if filtering:
                    cur = clients["current"]
                    for f in FILTERS:
                        rows = set(bucket_rows(n, f).tolist())
                        for mode in modes:
                            r = cur.call("search", mode=mode, q=q, where=f)
                            filt[f][mode].append(r["ms"])
                            if any(int(cid[1:].split("#")[0]) not in rows for cid in r["ids"]):
                                filt_ok[f] = False
                            if mode == "vector":
                                truth = cur.call("exact", q=q, where=f)["ids"]
                                filt_recall[f].append(len(set(truth) & set(r["ids"])) / K)
            base_lat = lat["baseline"]
            row: dict[str, Any] = {
                "n": n,
                "queries": len(qids),
                "build": builds,
                "latency": {v: {m: summary(lat[v][m]) for m in modes} for v in clients},
                "ratio_p50": {
                    v: {m: ratio(lat[v][m], base_lat[m], 50) for m in modes} for v in others
                },
                "ratio_p95": {
                    v: {m: ratio(lat[v][m], base_lat[m], 95) for m in modes} for v in others
                },
                # Per query, the ratio of the two versions' times (paired): its median.
                "paired_ratio_median": {
                    v: {
                        m: round(float(np.median(np.divide(lat[v][m], base_lat[m]))), 3)
                        for m in modes
                    }
                    for v in others
                },
                "top10_overlap_vs_baseline": {
                    v: {m: round(float(np.mean(same[v][m])), 4) for m in modes} for v in others
                },
            }
            if filtering:
                row["filtered"] = {
                    f: {
                        "latency": {m: summary(filt[f][m]) for m in modes},
                        "vector_recall@10_vs_exact_filtered": round(
                            float(np.mean(filt_recall[f])), 4
                        ),
                        "all_results_match_filter": filt_ok[f],
                    }
                    for f in FILTERS
                }
                cold = [clients["current"].call("new_filter", q=q) for q in qids[:10]]
                row["filter_mask_build"] = {
                    "first_query_p50_ms": round(statistics.median(c["first_ms"] for c in cold), 3),
                    "same_filter_again_p50_ms": round(
                        statistics.median(c["again_ms"] for c in cold), 3
                    ),
                }
            if n in args.updates_n:
                ops = ("add_one", "remove_one")
                upd = {v: {op: [] for op in (*ops, "after")} for v in clients}
                for c in clients.values():
                    c.call("warm_updates")
                for j in range(args.updates):
                    turn = order if j % 2 == 0 else order[::-1]
                    for v in turn:
                        c = clients[v]
                        upd[v]["add_one"].append(c.call("add_one", j=j)["ms"])
                        upd[v]["after"].append(c.call("search", mode="hybrid", q=qids[j])["ms"])
                        upd[v]["remove_one"].append(c.call("remove_one", j=j)["ms"])
                row["updates"] = {
                    v: {
                        **{
                            op: {**summary(upd[v][op]), "max_ms": round(max(upd[v][op]), 3)}
                            for op in ops
                        },
                        "hybrid_after_update": summary(upd[v]["after"]),
                    }
                    for v in clients
                }
                seams = [v for v in clients if report["workers"][v]["seam"]]
                after_write: dict[str, list[float]] = {v: [] for v in seams}
                for j in range(min(args.updates, 10)):
                    for v in seams:
                        r = clients[v].call("filter_after_write", q=qids[j], j=j)
                        after_write[v].append(r["ms"])
                row["filtered_bm25_after_write"] = {v: summary(after_write[v]) for v in seams}
                row["updates_ratio_p50"] = {
                    v: {op: ratio(upd[v][op], upd["baseline"][op], 50) for op in ops}
                    for v in others
                }
            row["memory"] = {v: c.call("memory") for v, c in clients.items()}
            print(json.dumps(row), flush=True)
            report["sizes"].append(row)
            OUT.mkdir(exist_ok=True)
            (OUT / args.out).write_text(json.dumps(report, indent=1))
    finally:
        for c in clients.values():
            c.close()
    print(latency_tables(report))


# -- scifact -----------------------------------------------------------------------------------


def cmd_scifact(args: argparse.Namespace) -> None:
    versions = {"baseline": Path(args.baseline), "current": Path(args.current)}
    out_file = OUT / "stores_scifact.json"
    report: dict[str, Any] = json.loads(out_file.read_text()) if out_file.exists() else {}
    probe = (
        "from ragkit.embedders import default_embedder; import ragkit, json\n"
        "e = default_embedder()\n"
        "print(json.dumps({'embedder': None if e is None else e.name, "
        "'embedder_class': type(e).__module__ + '.' + type(e).__name__, "
        "'ragkit': ragkit.__file__}))"
    )
    for name, root in versions.items():
        if args.only and name not in args.only:
            continue
        version = f"{name}-{args.label}" if args.label else name
        info = json.loads(
            subprocess.run(
                [PY, "-c", probe],
                env=env_for(root),
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        entry: dict[str, Any] = {"commit": git_commit(root), **info, "modes": {}}
        cache = Path(args.cache) / f"scifact-{version}"
        for mode in ("hybrid", "vector", "bm25"):
            cmd = [PY, "-m", "ragkit", "eval", str(SCIFACT), "--retriever", mode, "--json"]
            if mode != "bm25":
                cmd += ["--cache", str(cache)]
            t = time.perf_counter()
            proc = subprocess.run(cmd, env=env_for(root), cwd=root, capture_output=True, text=True)
            wall = time.perf_counter() - t
            if proc.returncode != 0:
                raise SystemExit(f"{version} {mode} failed:\n{proc.stderr[-3000:]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            result["wall_s"] = round(wall, 1)
            entry["modes"][mode] = result
            print(version, mode, json.dumps(result), flush=True)
        report[version] = entry
        OUT.mkdir(exist_ok=True)
        out_file.write_text(json.dumps(report, indent=1))
    print(scifact_table(report))


def scifact_table(report: dict[str, Any]) -> str:
    lines = [
        "| mode | baseline nDCG@10 | current nDCG@10 | difference "
        "| baseline R@100 | current R@100 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base, cur = report.get("baseline", {}), report.get("current", {})
    for mode in ("bm25", "vector", "hybrid"):
        b = base.get("modes", {}).get(mode, {})
        c = cur.get("modes", {}).get(mode, {})
        if not b or not c:
            continue
        lines.append(
            f"| {mode} | {b['ndcg@10']:.4f} | {c['ndcg@10']:.4f} | "
            f"{c['ndcg@10'] - b['ndcg@10']:+.4f} | {b['recall@100']:.4f} | {c['recall@100']:.4f} |"
        )
    return "\n".join(lines)


def latency_tables(report: dict[str, Any]) -> str:
    c = report["commits"]
    others = [v for v in c if v != "baseline"]
    names = ", ".join(f"{v} {c[v]}" for v in others)
    lines = [
        f"baseline {c['baseline']} vs {names}; ms; ratio = version / baseline "
        "(paired: median over queries of the per-query ratio)",
        "",
        "| N | mode | version | baseline p50 | p50 | **ratio p50** | paired ratio "
        "| baseline p95 | p95 | ratio p95 | same top 10 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["sizes"]:
        for m in ("bm25", "vector", "hybrid"):
            b = row["latency"]["baseline"][m]
            for v in others:
                cur = row["latency"][v][m]
                lines.append(
                    f"| {row['n']:,} | {m} | {v} | {b['p50_ms']:.2f} | {cur['p50_ms']:.2f} | "
                    f"**{row['ratio_p50'][v][m]:.2f}** | {row['paired_ratio_median'][v][m]:.2f} | "
                    f"{b['p95_ms']:.2f} | {cur['p95_ms']:.2f} | {row['ratio_p95'][v][m]:.2f} | "
                    f"{row['top10_overlap_vs_baseline'][v][m]:.3f} |"
                )
    for row in report["sizes"]:
        up = row.get("updates")
        if not up:
            continue
        lines += [
            "",
            f"Updates at {row['n']:,} chunks ({up['baseline']['add_one']['runs']} each, ms):",
            "",
            "| operation | version | p50 | p95 | max | **ratio p50** |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for op in ("add_one", "remove_one"):
            for v in ["baseline", *others]:
                r = up[v][op]
                rr = row["updates_ratio_p50"][v][op] if v != "baseline" else 1.0
                lines.append(
                    f"| {op.replace('_', ' ')} document | {v} | {r['p50_ms']:.3f} | "
                    f"{r['p95_ms']:.3f} | {r['max_ms']:.2f} | **{rr:.2f}** |"
                )
    for row in report["sizes"]:
        filt = row.get("filtered")
        if not filt:
            continue
        cur = row["latency"]["current"]
        lines += [
            "",
            f"Filtered search, current code, {row['n']:,} chunks (unfiltered p50 for reference: "
            f"bm25 {cur['bm25']['p50_ms']:.2f}, vector {cur['vector']['p50_ms']:.2f}, "
            f"hybrid {cur['hybrid']['p50_ms']:.2f} ms):",
            "",
            "| filter | bm25 p50 / p95 | vector p50 / p95 | hybrid p50 / p95 "
            "| vector Recall@10 vs exact filtered | results all match |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for f, fr in filt.items():
            lat = fr["latency"]
            cells = " | ".join(
                f"{lat[m]['p50_ms']:.2f} / {lat[m]['p95_ms']:.2f}"
                for m in ("bm25", "vector", "hybrid")
            )
            lines.append(
                f"| {f} | {cells} | {fr['vector_recall@10_vs_exact_filtered']:.3f} | "
                f"{fr['all_results_match_filter']} |"
            )
        aw = row.get("filtered_bm25_after_write")
        if aw:
            cells = "; ".join(f"{v} {r['p50_ms']:.2f} ms" for v, r in aw.items())
            lines.append(
                f"\nFiltered (1%) bm25 search right after a one-document add, p50: {cells}."
            )
        mb = row.get("filter_mask_build")
        if mb:
            lines.append(
                "\nFirst query with a new filter (mask built): "
                f"p50 {mb['first_query_p50_ms']:.2f} ms; "
                f"the same filter again: {mb['same_filter_again_p50_ms']:.2f} ms (bm25 mode)."
            )
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> None:
    for name in args.files:
        path = OUT / name
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        print(f"## {name}\n")
        print(latency_tables(data) if "sizes" in data else scifact_table(data))
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--n", type=int, nargs="*", default=[100_000])
    p = sub.add_parser("scifact")
    p.add_argument("--baseline", required=True)
    p.add_argument("--current", default=str(ROOT))
    p.add_argument("--cache", default=str(ROOT / ".cache"))
    p.add_argument("--only", nargs="*", choices=["baseline", "current"])
    p.add_argument("--label", help="store the runs as NAME-LABEL (keeps earlier runs)")
    p = sub.add_parser("latency")
    p.add_argument("--baseline", required=True)
    p.add_argument("--current", default=str(ROOT))
    p.add_argument("--n", type=int, nargs="+", default=[100_000])
    p.add_argument("--queries", type=int, default=100, help="queries at N <= 200k")
    p.add_argument("--queries-large", type=int, default=60, help="queries at larger N")
    p.add_argument("--filter-n", type=int, nargs="*", default=[100_000])
    p.add_argument("--updates", type=int, default=30)
    p.add_argument("--updates-n", type=int, nargs="*", default=[100_000])
    p.add_argument("--extra", nargs="*", default=[], help="more versions as NAME=ROOT")
    p.add_argument("--out", default="stores_latency.json")
    p = sub.add_parser("report")
    p.add_argument("files", nargs="*", default=["stores_latency.json", "stores_scifact.json"])
    p = sub.add_parser("worker")
    p.add_argument("--version", required=True)
    p.add_argument("--root", required=True)
    args = parser.parse_args()
    commands = {
        "prepare": cmd_prepare,
        "scifact": cmd_scifact,
        "latency": cmd_latency,
        "report": cmd_report,
        "worker": cmd_worker,
    }
    commands[args.cmd](args)


if __name__ == "__main__":
    main()
