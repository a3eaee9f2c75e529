"""Retrieval evaluation: read BEIR-layout test collections and score ranked runs against them.

This module loads a dataset (corpus, queries, relevance judgments), computes the standard IR
metrics (nDCG@k, Recall@k, MRR@k) exactly as trec_eval / pytrec_eval do on tie-free runs, times
a search callable over every judged query, and maps chunk-level hits to document-level hits.

It leaves out indexing, chunking and retriever choice (the caller builds the index and hands in
a ``search`` callable) and all output: nothing here prints or formats (that is the CLI's job).

Ties: metrics read a ranking in the order it is given. trec_eval instead re-sorts every run by
score descending and then by document ID *descending*; ragkit's retrievers already return a
deterministic order (score descending, then ID ascending), and that order is what a user of the
retriever sees, so it is the one scored. Runs without tied scores give identical numbers.
"""

from __future__ import annotations

import json
import math
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

import numpy as np

from ragkit.errors import LoadError

__all__ = [
    "DEFAULT_KS",
    "BeirDataset",
    "EvalReport",
    "Run",
    "chunk_hits_to_documents",
    "evaluate",
    "evaluate_run",
    "load_beir",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
]

Run: TypeAlias = Mapping[str, Sequence[tuple[str, float]]]
"""query_id -> ranked ``(doc_id, score)`` pairs, best first."""

DEFAULT_KS: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {"ndcg": (10,), "recall": (10, 100), "mrr": (10,)}
)
"""The cut-offs :func:`evaluate_run` reports by default: ndcg@10, recall@10, recall@100, mrr@10."""

_REPORT_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


# --------------------------------------------------------------------------- dataset


@dataclass(frozen=True, slots=True)
class BeirDataset:
    """A test collection in memory: documents, judged queries and their relevance judgments.

    Attributes:
        corpus: doc_id -> ``(title, text)``, in corpus-file order.
        queries: query_id -> text, only the queries with at least one relevant document in the
            qrels used, in queries-file order.
        qrels: query_id -> {doc_id: relevance}, relevance > 0 only.
    """

    corpus: Mapping[str, tuple[str, str]]
    queries: Mapping[str, str]
    qrels: Mapping[str, Mapping[str, int]]

    def __post_init__(self) -> None:
        # Read-only views, so a dataset can be shared and never changes under a running eval.
        if not isinstance(self.corpus, MappingProxyType):
            object.__setattr__(self, "corpus", MappingProxyType(dict(self.corpus)))
        if not isinstance(self.queries, MappingProxyType):
            object.__setattr__(self, "queries", MappingProxyType(dict(self.queries)))
        if not isinstance(self.qrels, MappingProxyType) or not all(
            isinstance(judged, MappingProxyType) for judged in self.qrels.values()
        ):
            frozen = {qid: MappingProxyType(dict(judged)) for qid, judged in self.qrels.items()}
            object.__setattr__(self, "qrels", MappingProxyType(frozen))

    def document_text(self, doc_id: str) -> str:
        """The text to index for one document: ``"title\\n\\ntext"``, or just the text if untitled.

        Raises:
            KeyError: ``doc_id`` is not in the corpus.

        Example:
            >>> BeirDataset({"d": ("Cats", "Cats sleep.")}, {}, {}).document_text("d")
            'Cats\\n\\nCats sleep.'
        """
        title, text = self.corpus[doc_id]
        return f"{title}\n\n{text}" if title.strip() else text


def load_beir(
    folder: str | Path,
    *,
    qrels: str | Path | None = None,
    split: str = "test",
) -> BeirDataset:
    """Load a BEIR-layout dataset folder.

    The folder holds ``corpus.jsonl`` (``{"_id", "title", "text"}`` per line; ``title`` may be
    absent), ``queries.jsonl`` (``{"_id", "text"}``) and the judgments, a TSV file with the header
    ``query-id<TAB>corpus-id<TAB>score``: ``qrels.tsv``, or else BEIR's ``qrels/{split}.tsv``.
    Rows with a score <= 0 mean "not relevant" and are dropped; a query is kept only if at least
    one relevant document remains. When a (query, document) pair repeats, the last row wins, as
    in BEIR's own loader. Judged documents missing from the corpus are kept (they count against
    recall, as they do in trec_eval).

    Args:
        folder: the dataset folder.
        qrels: a judgments file to use instead (e.g. ``qrels-train.tsv`` for tuning); a relative
            path is looked up in ``folder`` first, then in the current directory.
        split: which ``qrels/{split}.tsv`` to use when ``qrels.tsv`` is absent.

    Returns:
        The dataset, with only the judged queries.

    Raises:
        LoadError: a file is missing or unreadable, a line is not valid JSON (or nested too
            deeply to read) or lacks a field, a TSV row is malformed or its score is not a
            relevance grade, the corpus has no documents, a judged query is not in
            ``queries.jsonl`` or its text is blank, or no query has a relevant document. The
            reason names the line.
    """
    root = Path(folder)
    try:
        is_dir = root.is_dir()
    except OSError as exc:  # a name too long, a path through a file...
        raise LoadError(root, f"cannot be read ({exc.strerror or exc})") from exc
    if not is_dir:
        raise LoadError(root, "not a directory (expected a BEIR dataset folder)")
    qrels_path = _find_qrels(root, qrels, split)
    judgments, first_line = _read_qrels(qrels_path)

    corpus: dict[str, tuple[str, str]] = {}
    corpus_path = root / "corpus.jsonl"
    for lineno, row in _read_jsonl(corpus_path):
        doc_id = _field_id(row, corpus_path, lineno)
        text = _field_str(row, "text", corpus_path, lineno)
        title = _field_str(row, "title", corpus_path, lineno) if "title" in row else ""
        if doc_id in corpus:
            raise LoadError(corpus_path, f"line {lineno}: duplicate _id {doc_id!r}")
        corpus[doc_id] = (title, text)
    if not corpus:
        raise LoadError(corpus_path, "no documents (one JSON object per line: _id, title, text)")

    all_queries: dict[str, str] = {}
    query_lines: dict[str, int] = {}
    queries_path = root / "queries.jsonl"
    for lineno, row in _read_jsonl(queries_path):
        query_id = _field_id(row, queries_path, lineno)
        text = _field_str(row, "text", queries_path, lineno)
        if query_id in all_queries:
            raise LoadError(queries_path, f"line {lineno}: duplicate _id {query_id!r}")
        all_queries[query_id] = text
        query_lines[query_id] = lineno

    relevant: dict[str, Mapping[str, int]] = {}
    for query_id, judged in judgments.items():
        positive = {doc_id: score for doc_id, score in judged.items() if score > 0}
        if not positive:
            continue  # judged, but nothing relevant: no metric is defined for it
        if query_id not in all_queries:
            raise LoadError(
                queries_path,
                f"query-id {query_id!r} (line {first_line[query_id]} of {qrels_path.name}) "
                f"is not in {queries_path.name}",
            )
        relevant[query_id] = MappingProxyType(positive)
    if not relevant:
        raise LoadError(qrels_path, "no query has a relevant document (every score is <= 0)")
    queries = {q: text for q, text in all_queries.items() if q in relevant}
    for query_id, text in queries.items():
        if not text.strip():
            raise LoadError(
                queries_path,
                f"line {query_lines[query_id]}: query {query_id!r} is judged but its text is "
                "empty; give it a text or remove its judgments",
            )
    ordered_qrels = {q: relevant[q] for q in queries}
    return BeirDataset(
        corpus=MappingProxyType(corpus),
        queries=MappingProxyType(queries),
        qrels=MappingProxyType(ordered_qrels),
    )


def _find_qrels(root: Path, qrels: str | Path | None, split: str) -> Path:
    if qrels is not None:
        given = Path(qrels)
        for candidate in (given,) if given.is_absolute() else (root / given, given):
            try:
                if candidate.is_file():
                    return candidate
            except OSError as exc:  # a name too long...
                raise LoadError(candidate, f"cannot be read ({exc.strerror or exc})") from exc
        raise LoadError(given, f"qrels file not found (looked in {root} and the current directory)")
    for candidate in (root / "qrels.tsv", root / "qrels" / f"{split}.tsv"):
        if candidate.is_file():
            return candidate
    raise LoadError(root / "qrels.tsv", f"missing (nor is there qrels/{split}.tsv)")


def _open_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line without its newline), mapping I/O errors to LoadError."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the read forever
            raise LoadError(path, "not a regular file")
        with path.open(encoding="utf-8") as handle:
            lineno = 0
            try:
                for lineno, line in enumerate(handle, start=1):
                    yield lineno, line.rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise LoadError(path, f"not UTF-8 (after line {lineno})") from exc
    except FileNotFoundError as exc:
        raise LoadError(path, "missing") from exc
    except OSError as exc:
        raise LoadError(path, f"unreadable ({exc.strerror or exc})") from exc


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in _open_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LoadError(path, f"line {lineno}: invalid JSON ({exc.msg})") from exc
        except RecursionError as exc:  # the decoder recurses once per nested array or object
            raise LoadError(path, f"line {lineno}: JSON nested too deeply to read") from exc
        if not isinstance(row, dict):
            raise LoadError(path, f"line {lineno}: expected a JSON object")
        yield lineno, row


def _field_id(row: Mapping[str, Any], path: Path, lineno: int) -> str:
    value = row.get("_id")
    # Some BEIR exports write numeric IDs as JSON numbers; qrels always hold them as text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise LoadError(path, f"line {lineno}: missing or empty '_id'")
    return value


def _field_str(row: Mapping[str, Any], name: str, path: Path, lineno: int) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        what = "missing" if value is None else f"not a string ({type(value).__name__})"
        raise LoadError(path, f"line {lineno}: field {name!r} {what}")
    return value


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


_MAX_GRADE = 2**53
"""The largest relevance grade accepted: nDCG computes with floats, exact up to 2**53."""


def _read_qrels(path: Path) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """All judgments (any score) and the line where each query first appears."""
    judgments: dict[str, dict[str, int]] = {}
    first_line: dict[str, int] = {}
    for lineno, line in _open_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if lineno == 1 and len(fields) == 3 and not _is_int(fields[2]):
            continue  # the header, `query-id\tcorpus-id\tscore` in BEIR
        if len(fields) != 3:
            raise LoadError(
                path,
                f"line {lineno}: expected 3 tab-separated fields "
                f"(query-id, corpus-id, score), got {len(fields)}",
            )
        query_id, doc_id, raw_score = (f.strip() for f in fields)
        if not query_id or not doc_id:
            raise LoadError(path, f"line {lineno}: empty query-id or corpus-id")
        try:
            score = int(raw_score)
        except ValueError as exc:
            raise LoadError(path, f"line {lineno}: score {raw_score!r} is not an integer") from exc
        if abs(score) > _MAX_GRADE:
            shown = raw_score if len(raw_score) <= 20 else raw_score[:20] + "..."
            raise LoadError(
                path,
                f"line {lineno}: score {shown} is too large for a relevance grade (at most "
                "2**53 either way; BEIR grades are 0, 1, 2)",
            )
        judgments.setdefault(query_id, {})[doc_id] = score
        first_line.setdefault(query_id, lineno)
    return judgments, first_line


# --------------------------------------------------------------------------- metrics


def _top_k(ranked: Sequence[str], k: int) -> Sequence[str]:
    if k < 1:
        raise ValueError(f"k ({k}) must be at least 1")
    top = ranked[:k]
    if len(set(top)) != len(top):
        # A repeated document would collect its gain twice, inflating every metric.
        seen: set[str] = set()
        for doc in top:
            if doc in seen:
                raise ValueError(f"ranked contains document {doc!r} more than once")
            seen.add(doc)
    return top


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain of the top ``k`` of a ranking.

    DCG@k = sum over ranks i = 1..k of rel_i / log2(i + 1), divided by the same sum over the
    judgments sorted by relevance (the ideal ranking). Gain is the relevance grade itself, not
    2^rel - 1: this is trec_eval's ``ndcg_cut`` (m_ndcg_cut.c), which pytrec_eval and BEIR use;
    Järvelin & Kekäläinen, "Cumulated gain-based evaluation of IR techniques", TOIS 2002.

    Args:
        ranked: document IDs, best first.
        relevant: doc_id -> relevance grade; grades <= 0 count as not relevant.
        k: the cut-off.

    Returns:
        A value in [0, 1]; 0.0 when nothing is relevant.

    Raises:
        ValueError: ``k < 1``, or a document appears twice in the top ``k``.

    Example:
        >>> round(ndcg_at_k(["x", "a"], {"a": 1}, k=10), 4)
        0.6309
    """
    top = _top_k(ranked, k)
    dcg = sum(
        relevant.get(doc, 0) / math.log2(rank + 1)
        for rank, doc in enumerate(top, start=1)
        if relevant.get(doc, 0) > 0
    )
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Fraction of the relevant documents found in the top ``k``: |relevant ∩ top-k| / |relevant|.

    trec_eval's ``recall.k`` (m_recall.c); grades <= 0 count as not relevant.

    Returns:
        A value in [0, 1]; 0.0 when nothing is relevant.

    Raises:
        ValueError: ``k < 1``, or a document appears twice in the top ``k``.

    Example:
        >>> recall_at_k(["a", "x", "b"], {"a": 1, "b": 2, "c": 1}, k=2)
        0.3333333333333333
    """
    top = _top_k(ranked, k)
    n_relevant = sum(1 for g in relevant.values() if g > 0)
    if n_relevant == 0:
        return 0.0
    found = sum(1 for doc in top if relevant.get(doc, 0) > 0)
    return found / n_relevant


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant document in the top ``k``, else 0.

    Averaged over queries this is MRR@k (Voorhees, TREC-8 QA track, 1999); it equals
    trec_eval's ``recip_rank`` on a run cut at ``k`` and ir_measures' ``RR@k``.

    Raises:
        ValueError: ``k < 1``, or a document appears twice in the top ``k``.

    Example:
        >>> mrr_at_k(["x", "y", "a"], {"a": 1}, k=10)
        0.3333333333333333
    """
    for rank, doc in enumerate(_top_k(ranked, k), start=1):
        if relevant.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


_Metric: TypeAlias = Callable[[Sequence[str], Mapping[str, int], int], float]
_METRICS: Mapping[str, _Metric] = MappingProxyType(
    {"ndcg": ndcg_at_k, "recall": recall_at_k, "mrr": mrr_at_k}
)


def evaluate_run(
    run: Run,
    qrels: Mapping[str, Mapping[str, int]],
    *,
    ks: Mapping[str, Sequence[int]] = DEFAULT_KS,
) -> dict[str, float]:
    """Mean metrics of a run over every query in ``qrels``.

    A judged query missing from the run scores 0 on every metric (BEIR, through pytrec_eval,
    would silently leave it out of the mean, flattering a retriever that fails on some queries).
    Run queries without judgments are ignored. Each ranking is read in its given order.

    Args:
        run: query_id -> ranked ``(doc_id, score)`` pairs, best first.
        qrels: query_id -> {doc_id: relevance}.
        ks: metric name (``"ndcg"``, ``"recall"``, ``"mrr"``) -> cut-offs.

    Returns:
        ``{"ndcg@10": ..., "recall@10": ..., "recall@100": ..., "mrr@10": ..., "n_queries": N}``
        for the default ``ks``; every mean is 0.0 when ``qrels`` is empty.

    Raises:
        ValueError: an unknown metric name or a cut-off below 1, or a ranking lists a document
            twice within a cut-off.
    """
    cuts: list[tuple[str, _Metric, int]] = []
    for name, values in ks.items():
        if name not in _METRICS:
            raise ValueError(f"ks has unknown metric {name!r}; choose from {sorted(_METRICS)}")
        for k in values:
            if k < 1:
                raise ValueError(f"ks[{name!r}] has cut-off {k}; cut-offs must be at least 1")
            cuts.append((f"{name}@{k}", _METRICS[name], k))

    totals = dict.fromkeys((key for key, _, _ in cuts), 0.0)
    for query_id, relevant in qrels.items():
        ranked = [doc for doc, _ in run.get(query_id, ())]
        for key, metric, k in cuts:
            totals[key] += metric(ranked, relevant, k)
    n = len(qrels)
    result: dict[str, float] = {key: total / n if n else 0.0 for key, total in totals.items()}
    result["n_queries"] = n
    return result


# --------------------------------------------------------------------------- end to end


@dataclass(frozen=True, slots=True)
class EvalReport:
    """The outcome of :func:`evaluate`: quality metrics and timings.

    Attributes:
        metrics: mean ``ndcg@10``, ``recall@10``, ``recall@100``, ``mrr@10``.
        n_queries: judged queries evaluated.
        index_s: seconds spent building the index (measured by the caller).
        query_p50_ms: median search latency, milliseconds.
        query_p95_ms: 95th-percentile search latency, milliseconds.
        retriever: a label for the retriever evaluated (``"bm25"``, ``"hybrid/rrf"``, ...).
    """

    metrics: Mapping[str, float]
    n_queries: int
    index_s: float
    query_p50_ms: float
    query_p95_ms: float
    retriever: str

    def __post_init__(self) -> None:
        missing = [key for key in _REPORT_METRICS if key not in self.metrics]
        if missing:
            raise ValueError(f"metrics is missing {missing}; it needs {list(_REPORT_METRICS)}")
        if not isinstance(self.metrics, MappingProxyType):
            object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))

    def as_dict(self) -> dict[str, float | int | str]:
        """A flat dict for JSON output, keys in a fixed order.

        Keys: ``ndcg@10, recall@10, recall@100, mrr@10, index_s, query_p50_ms, query_p95_ms,
        n_queries, retriever``.
        """
        out: dict[str, float | int | str] = {key: self.metrics[key] for key in _REPORT_METRICS}
        out["index_s"] = self.index_s
        out["query_p50_ms"] = self.query_p50_ms
        out["query_p95_ms"] = self.query_p95_ms
        out["n_queries"] = self.n_queries
        out["retriever"] = self.retriever
        return out


def evaluate(
    search: Callable[[str, int], Sequence[tuple[str, float]]],
    dataset: BeirDataset,
    *,
    k: int = 100,
    index_s: float = 0.0,
    retriever: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Run ``search`` on every judged query, time each call and score the run.

    Queries run one at a time in dataset order, so the latencies are single-query latencies.

    Args:
        search: ``search(query_text, k)`` -> ranked ``(document_id, score)`` pairs, best first,
            at most one entry per document (see :func:`chunk_hits_to_documents`).
        dataset: the dataset; only its queries and qrels are used.
        k: how many documents to ask for; 100 or more makes recall@100 meaningful.
        index_s: indexing time to report, measured by the caller.
        retriever: a label to report.
        progress: called as ``progress(done, total)`` after each query.

    Returns:
        The report.

    Raises:
        ValueError: ``k < 1``, or ``search`` returned a document twice.
    """
    if k < 1:
        raise ValueError(f"k ({k}) must be at least 1")
    run: dict[str, tuple[tuple[str, float], ...]] = {}
    latencies_ms: list[float] = []
    total = len(dataset.queries)
    for done, (query_id, text) in enumerate(dataset.queries.items(), start=1):
        started = time.perf_counter()
        hits = search(text, k)
        latencies_ms.append((time.perf_counter() - started) * 1000.0)
        run[query_id] = tuple((str(doc), float(score)) for doc, score in hits)
        if progress is not None:
            progress(done, total)
    qrels = {query_id: dataset.qrels[query_id] for query_id in dataset.queries}
    means = evaluate_run(run, qrels)
    p50, p95 = (
        (float(v) for v in np.percentile(latencies_ms, [50, 95])) if latencies_ms else (0.0, 0.0)
    )
    return EvalReport(
        metrics=MappingProxyType({key: means[key] for key in _REPORT_METRICS}),
        n_queries=int(means["n_queries"]),
        index_s=index_s,
        query_p50_ms=p50,
        query_p95_ms=p95,
        retriever=retriever,
    )


def chunk_hits_to_documents(hits: Sequence[tuple[str, float]], k: int) -> list[tuple[str, float]]:
    """Collapse ranked chunk hits to ranked documents: first ``k`` distinct documents, best score.

    A chunk ID is ``"{document_id}#{ordinal}"``; the document ID is everything before the last
    ``#`` (document IDs may contain ``#`` themselves). An ID without ``#`` is its own document.
    Each document takes the score of its first (best-ranked) chunk and keeps that position: the
    MaxP aggregation of Dai & Callan, "Deeper Text Understanding for IR", SIGIR 2019.

    Raises:
        ValueError: ``k < 1``.

    Example:
        >>> chunk_hits_to_documents([("a#1", 0.9), ("b#0", 0.8), ("a#0", 0.7)], k=5)
        [('a', 0.9), ('b', 0.8)]
    """
    if k < 1:
        raise ValueError(f"k ({k}) must be at least 1")
    best: dict[str, float] = {}
    for chunk_id, score in hits:
        head, sep, _ordinal = chunk_id.rpartition("#")
        document_id = head if sep else chunk_id
        if document_id not in best:
            best[document_id] = score
            if len(best) == k:
                break
    return list(best.items())


def build_dataset_index(
    corpus: Mapping[str, tuple[str, str]],
    *,
    keyword_only: bool = False,
    embedder: Any = "default",
    cache: str | Path | None = None,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Any:
    """Index a test collection's corpus (``doc_id -> (title, text)``), reusing ``cache``.

    Each record becomes one document; a title becomes the document's top heading, so every chunk
    of a long record carries it. With ``cache``, the index is kept under ``cache/<kind>`` and
    updated incrementally, so a second run embeds nothing.
    """
    from ragkit.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
    from ragkit.index import _resolve_embedder, open_index
    from ragkit.types import Document

    size = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    overlap = DEFAULT_CHUNK_OVERLAP if chunk_overlap is None else chunk_overlap
    chosen = None if keyword_only else _resolve_embedder(embedder)
    target: Path | None = None
    if cache is not None:
        kind = "keyword-only" if chosen is None else chosen.name.replace("/", "__")
        target = Path(cache) / f"{kind}-{size}-{overlap}"
    index = open_index(target, embedder=chosen, chunk_size=size, chunk_overlap=overlap)
    documents = [
        Document(doc_id, f"# {title.strip()}\n\n{text}" if title.strip() else text)
        for doc_id, (title, text) in corpus.items()
        if (title + text).strip()
    ]
    index.add(documents, progress=progress)
    gone = [doc_id for doc_id in index.document_ids if doc_id not in corpus]
    if gone:
        index.remove(gone)
    if target is not None:
        index.save(target)
    return index
