"""The ``ragkit`` command: parse arguments, call the library, format the result.

Results go to stdout (``--json`` prints one JSON object, for scripts); progress and warnings go
to stderr. A :class:`~ragkit.errors.RagkitError` becomes a one-line message and exit code 1;
usage errors exit with 2. This module holds no retrieval or answering logic of its own.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from . import __version__
from .errors import RagkitError
from .fusion import FUSION_METHODS, FusionMethod
from .loaders import DEFAULT_INCLUDE
from .types import Answer, ScoredChunk

if TYPE_CHECKING:
    from .base import SearchMode
    from .index import Index

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_INDEX = ".ragkit/index"


def _index_path(value: str | None) -> str:
    """The index location: a directory or a ``postgresql://`` URL (kept as given)."""
    return str(value or os.environ.get("RAGKIT_INDEX") or DEFAULT_INDEX)


def _shown(location: str) -> str:
    """A location safe to print: a URL without its password."""
    from .stores import redact

    return redact(location)


def index_option(f: F) -> F:
    return click.option(
        "--index",
        "index_path",
        metavar="PATH|URL",
        default=None,
        help=f"Index directory or postgresql:// URL (default: $RAGKIT_INDEX or {DEFAULT_INDEX}).",
    )(f)


def filter_options(f: F) -> F:
    f = click.option(
        "--path",
        "paths",
        multiple=True,
        metavar="GLOB",
        help="Only documents whose path matches GLOB, e.g. 'docs/api/**' (repeatable: any).",
    )(f)
    return click.option(
        "--where",
        "wheres",
        multiple=True,
        metavar="KEY=VALUE",
        help="Only chunks whose metadata matches: KEY=VALUE, KEY!=VALUE, KEY>=N, KEY<N, KEY "
        "(exists), !KEY (absent). Repeatable: all must hold.",
    )(f)


def _filter(wheres: Sequence[str], paths: Sequence[str]) -> Any:
    from .filters import parse_cli

    try:
        return parse_cli(wheres, paths)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def rerank_option(f: F) -> F:
    return click.option(
        "--rerank",
        default=None,
        metavar="NAME",
        help="Re-score the top candidates with a reranker: voyage, voyage:rerank-2.5-lite, "
        "cross-encoder:PATH, embedder (see docs/reranking.md).",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object to stdout.")(
        f
    )


@contextmanager
def _errors() -> Iterator[None]:
    """Run-time errors: one-line message, exit 1. Bad option values (ValueError): exit 2."""
    try:
        yield
    except RagkitError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:  # a bad value the user passed through an option
        raise click.UsageError(str(exc)) from exc


class _Progress:
    """A tqdm bar on stderr, created on the first update (nothing shown when there is no work)."""

    def __init__(self, desc: str, enabled: bool) -> None:
        self.desc = desc
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="chunk", file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _chunk_settings(chunk_size: int | None, overlap: int | None) -> tuple[int, int]:
    """--chunk-size and --overlap with their defaults; a default overlap shrinks with the size."""
    from .chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE

    size = chunk_size if chunk_size is not None else DEFAULT_CHUNK_SIZE
    lap = overlap if overlap is not None else min(DEFAULT_CHUNK_OVERLAP, size // 4)
    if lap >= size:
        raise click.UsageError(f"--overlap ({lap}) must be smaller than --chunk-size ({size})")
    return size, lap


def _chunk_request(chunk_size: int | None, overlap: int | None) -> tuple[int | None, int | None]:
    """The chunk settings the user asked for; ``None`` where an existing index's own apply."""
    if chunk_size is None and overlap is None:
        return None, None
    return _chunk_settings(chunk_size, overlap)


def _chunk_json(sc: ScoredChunk) -> dict[str, Any]:
    c = sc.chunk
    return {
        "id": c.id,
        "document_id": c.document_id,
        "score": sc.score,
        "scores": dict(sc.scores),
        "start": c.start,
        "end": c.end,
        "headings": list(c.headings),
        "text": c.text,
    }


def _print_passages(results: Sequence[ScoredChunk]) -> None:
    for rank, sc in enumerate(results, start=1):
        parts = ", ".join(f"{name} {value:.3f}" for name, value in sc.scores.items())
        detail = f" ({parts})" if parts else ""
        heading = f"  [{' > '.join(sc.chunk.headings)}]" if sc.chunk.headings else ""
        click.echo(f"[{rank}] {sc.chunk.id}  score {sc.score:.4f}{detail}{heading}")
        text = " ".join(sc.chunk.text.split())
        click.echo(f"    {text[:400]}{'…' if len(text) > 400 else ''}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="ragkit")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def cli(verbose: bool) -> None:
    """ragkit: ask questions of your documents, answered by Claude from cited chunks.

    \b
    Quick start:
        ragkit index docs/                  # build or update the index
        ragkit search "fusion of rankings"  # retrieval only, no API key needed
        ragkit ask "How are rankings fused?"
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="ragkit: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )


@cli.command("index")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@index_option
@click.option(
    "--include",
    "--glob",
    "include",
    multiple=True,
    metavar="GLOB",
    help="Files to index, relative glob (repeatable; default: markdown, text, rst, html).",
)
@click.option("--exclude", multiple=True, metavar="GLOB", help="Files to skip (repeatable).")
@click.option(
    "--chunk-size", type=click.IntRange(min=16), default=None, help="Chunk size in tokens."
)
@click.option(
    "--overlap", type=click.IntRange(min=0), default=None, help="Chunk overlap in tokens."
)
@click.option("--keyword-only", is_flag=True, help="Skip embeddings: BM25 search only.")
@click.option(
    "--contextualize",
    is_flag=True,
    help="Have Claude situate each new chunk in its document before indexing it (contextual "
    "retrieval; needs ANTHROPIC_API_KEY; shows the estimated cost first).",
)
@click.option(
    "--context-model",
    default=None,
    metavar="MODEL",
    help="Model that writes chunk contexts [default: claude-haiku-4-5].",
)
@click.option("--yes", is_flag=True, help="Do not ask before paying for --contextualize.")
@click.option(
    "--fallback-encoding",
    default=None,
    metavar="ENCODING",
    help="Read files that are not UTF-8 with this encoding (e.g. cp1252).",
)
@json_option
def index_cmd(
    folder: Path,
    index_path: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    chunk_size: int | None,
    overlap: int | None,
    keyword_only: bool,
    contextualize: bool,
    context_model: str | None,
    yes: bool,
    fallback_encoding: str | None,
    as_json: bool,
) -> None:
    """Build or update the index of FOLDER (only changed files are re-embedded).

    \b
    Examples:
        ragkit index docs/
        ragkit index notes/ --index ~/.ragkit/notes --include '**/*.md' --exclude 'drafts/**'
    """
    from .index import open_index, update_from_folder

    path = _index_path(index_path)
    size, lap = _chunk_request(chunk_size, overlap)
    with _errors():
        if not folder.is_dir():
            raise RagkitError(f"{folder} is not a directory")
        started = time.perf_counter()
        index = open_index(
            path, embedder=None if keyword_only else "default", chunk_size=size, chunk_overlap=lap
        )
        contextualizer = _contextualizer(path, context_model, yes) if contextualize else None
        progress = _Progress("embedding", enabled=not as_json and index.has_vectors)
        try:
            update, loaded = update_from_folder(
                index,
                folder,
                include=include or DEFAULT_INCLUDE,
                exclude=exclude,
                fallback_encoding=fallback_encoding,
                progress=progress,
                contextualizer=contextualizer,
            )
        finally:
            progress.close()
        index.save(path)
        elapsed = time.perf_counter() - started
    summary = {
        "index": _shown(path),
        "documents": len(index.document_ids),
        "chunks": len(index),
        "added": list(update.added),
        "replaced": list(update.replaced),
        "removed": list(update.removed),
        "unchanged": len(update.unchanged),
        "skipped": [{"path": s.path, "reason": s.reason} for s in loaded.skipped],
        "chunks_embedded": update.chunks_embedded,
        "embedder": index.embedder.name if index.embedder else None,
        "seconds": round(elapsed, 3),
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    mode = f"embedder {summary['embedder']}" if index.embedder else "keyword-only (no embedder)"
    click.echo(
        f"Indexed {folder}: {summary['documents']} documents, {summary['chunks']} chunks, {mode}.\n"
        f"  {len(update.added)} added, {len(update.replaced)} changed, "
        f"{len(update.removed)} removed, "
        f"{len(update.unchanged)} unchanged, {len(loaded.skipped)} skipped; {elapsed:.1f}s → "
        f"{_shown(path)}"
    )


def _contextualizer(path: str, model: str | None, yes: bool) -> Any:
    """The CLI's contextualizer: cached beside the index, asking before it spends."""
    from .contextual import DEFAULT_CONTEXT_MODEL, ContextCost, Contextualizer, cache_path_for

    def confirm(cost: ContextCost) -> bool:
        click.echo(cost.describe(), err=True)
        if yes:
            return True
        if not sys.stdin or not sys.stdin.isatty():
            click.echo("Not a terminal: pass --yes to accept the cost.", err=True)
            return False
        return click.confirm("Proceed?", default=False, err=True)

    return Contextualizer(
        model=model or DEFAULT_CONTEXT_MODEL, cache_path=cache_path_for(path), confirm=confirm
    )


def _reranker(name: str | None) -> Any:
    """The reranker named by ``--rerank`` (resolved once), or ``None``."""
    if name is None:
        return None
    from .rerankers import get_reranker

    try:
        return get_reranker(name)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def _load_index(index_path: str | None) -> Index:
    from .index import Index

    return Index.load(_index_path(index_path))


@cli.command("search")
@click.argument("query")
@index_option
@click.option(
    "-k", type=click.IntRange(min=1), default=5, show_default=True, help="Chunks to return."
)
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "bm25", "vector"]),
    default=None,
    help="Retrieval mode (default: hybrid when the index has vectors, else bm25).",
)
@filter_options
@rerank_option
@json_option
def search_cmd(
    query: str,
    index_path: str | None,
    k: int,
    mode: str | None,
    wheres: tuple[str, ...],
    paths: tuple[str, ...],
    rerank: str | None,
    as_json: bool,
) -> None:
    """Retrieve the chunks that best match QUERY (no API key needed).

    \b
    Examples:
        ragkit search "reciprocal rank fusion" -k 3
        ragkit search "BM25 parameters" --mode bm25 --json
        ragkit search "refunds" --where team=billing --path 'docs/api/**'
    """
    if not query.strip():
        raise click.UsageError("QUERY must not be empty")
    where = _filter(wheres, paths)
    with _errors():
        reranker = _reranker(rerank)
        index = _load_index(index_path)
        try:
            results = index.search(
                query, k, mode=cast("SearchMode | None", mode), where=where, rerank=reranker
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
    if as_json:
        click.echo(
            json.dumps({"query": query, "k": k, "results": [_chunk_json(r) for r in results]})
        )
    elif not results:
        click.echo("No matching chunks.")
    else:
        _print_passages(results)


def _answer_json(question: str, result: Answer) -> dict[str, Any]:
    u = result.usage
    return {
        "question": question,
        "answer": result.text,
        "abstained": result.abstained,
        "strategy": result.strategy,
        "model": result.model,
        "stop_reason": result.stop_reason,
        "citations": [
            {"chunk_id": c.chunk_id, "cited_text": c.cited_text} for c in result.citations
        ],
        "dropped_citations": result.dropped_citations,
        "chunks": [_chunk_json(sc) for sc in result.chunks],
        "usage": {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
            "cache_creation_input_tokens": u.cache_creation_input_tokens,
        },
        "cost_usd": u.cost_usd,
    }


@cli.command("ask")
@click.argument("question")
@index_option
@click.option(
    "-k", type=click.IntRange(min=1), default=5, show_default=True, help="Chunks to retrieve."
)
@click.option(
    "-m", "--model", default=None, help="Claude model (default: $RAGKIT_MODEL or claude-haiku-4-5)."
)
@click.option(
    "--strategy",
    type=click.Choice(["auto", "retrieve", "full"]),
    default="auto",
    show_default=True,
    help="Retrieve chunks, send the whole corpus, or choose by size.",
)
@click.option("--max-tokens", type=click.IntRange(min=1), default=1024, show_default=True)
@click.option(
    "--budget",
    type=click.IntRange(min=1),
    default=None,
    help="Context budget in (estimated) tokens [default: 20000].",
)
@click.option("--no-gate", is_flag=True, help="Call Claude even when retrieval evidence is weak.")
@click.option(
    "--no-stream", is_flag=True, help="Print the answer when complete instead of streaming."
)
@click.option(
    "--audit",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append a JSON Lines audit record to this file.",
)
@rerank_option
@json_option
def ask_cmd(
    question: str,
    index_path: str | None,
    k: int,
    model: str | None,
    strategy: str,
    max_tokens: int,
    budget: int | None,
    no_gate: bool,
    no_stream: bool,
    audit: Path | None,
    rerank: str | None,
    as_json: bool,
) -> None:
    """Answer QUESTION from the indexed documents, citing chunk IDs.

    Without ANTHROPIC_API_KEY, prints the passages that would be sent, with their chunk IDs.

    \b
    Examples:
        ragkit ask "How does incremental indexing work?"
        ragkit ask "What does the gate do?" -k 8 --json --audit audit.jsonl
    """
    from .answering import DEFAULT_MODEL, answer, answer_stream
    from .context import DEFAULT_BUDGET_TOKENS, retrieve_context

    budget = budget or DEFAULT_BUDGET_TOKENS
    if not question.strip():
        raise click.UsageError("QUESTION must not be empty")
    model = model or os.environ.get("RAGKIT_MODEL") or DEFAULT_MODEL
    with _errors():
        reranker = _reranker(rerank)
        index = _load_index(index_path)
        if not os.environ.get("ANTHROPIC_API_KEY"):
            try:
                plan = retrieve_context(
                    question,
                    index,
                    k=k,
                    strategy=strategy,  # type: ignore[arg-type]
                    budget_tokens=budget,
                    gate=not no_gate,
                    rerank=reranker,
                )
            except ValueError as exc:
                raise click.UsageError(str(exc)) from exc
            shown = list(plan.retrieved) or index.search(question, k, rerank=reranker)
            if plan.strategy == "full":
                would = (
                    f"the whole corpus ({len(plan.chunks)} chunks, ~{plan.estimated_tokens} tokens)"
                )
            elif plan.strategy == "none":
                would = "nothing: " + (plan.gate.reason if plan.gate else "the gate stopped it")
            else:
                would = (
                    f"{len(plan.passages)} passages (~{plan.estimated_tokens} tokens, estimated)"
                )
            if as_json:
                click.echo(
                    json.dumps(
                        {
                            "question": question,
                            "answer": None,
                            "api_key": False,
                            "strategy": plan.strategy,
                            "estimated_tokens": plan.estimated_tokens,
                            "gate": None
                            if plan.gate is None
                            else {
                                "passed": plan.gate.passed,
                                "reason": plan.gate.reason,
                                "top_cosine": plan.gate.top_cosine,
                                "coverage": plan.gate.coverage,
                            },
                            "chunks": [_chunk_json(r) for r in shown],
                        }
                    )
                )
            else:
                _print_passages(shown)
                click.echo(f"Would send {would} to {model}.")
            click.echo(
                "ANTHROPIC_API_KEY is not set: showed the retrieved passages instead of asking "
                f"{model}. Set the key to get an answer.",
                err=as_json,
            )
            return
        options: dict[str, Any] = {
            "k": k,
            "model": model,
            "strategy": strategy,
            "max_tokens": max_tokens,
            "gate": not no_gate,
            "audit": audit,
            "budget_tokens": budget,
            "rerank": reranker,
        }
        if as_json or no_stream:
            result = answer(question, index, **options)
            if not as_json:
                click.echo(result.text)
        else:
            final: Answer | None = None
            for event in answer_stream(question, index, **options):
                if isinstance(event, Answer):
                    final = event
                else:
                    click.echo(event, nl=False)
            click.echo()
            if final is None:  # pragma: no cover - answer_stream always ends with an Answer
                raise RagkitError("the answer stream ended without a final answer")
            result = final
    if as_json:
        click.echo(json.dumps(_answer_json(question, result)))
        return
    if result.citations:
        click.echo("\nSources: " + ", ".join(result.cited_chunk_ids))
    cost = f", ~${result.usage.cost_usd:.5f}" if result.usage.cost_usd is not None else ""
    click.echo(
        f"[{result.strategy}; {len(result.chunks)} chunks; {result.usage.input_tokens} in / "
        f"{result.usage.output_tokens} out tokens{cost}"
        f"{'; abstained' if result.abstained else ''}]",
        err=True,
    )


@cli.command("eval")
@click.argument("dataset_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--retriever",
    "mode",
    type=click.Choice(["hybrid", "bm25", "vector"]),
    default="hybrid",
    show_default=True,
    help="What to evaluate; bm25 builds no embeddings.",
)
@click.option(
    "--fusion",
    type=click.Choice(list(FUSION_METHODS)),
    default=None,
    help="Fusion method for hybrid (default: the index default).",
)
@click.option(
    "--qrels",
    default=None,
    metavar="FILE",
    help="Judgments file (default: qrels.tsv, or qrels/test.tsv, in DATASET_DIR).",
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the built index here and update it incrementally on the next run.",
)
@click.option(
    "--chunk-size", type=click.IntRange(min=16), default=None, help="Chunk size in tokens."
)
@click.option(
    "--overlap", type=click.IntRange(min=0), default=None, help="Chunk overlap in tokens."
)
@click.option(
    "-k",
    type=click.IntRange(min=10),
    default=100,
    show_default=True,
    help="Documents retrieved per query (recall@100 needs 100).",
)
@json_option
def eval_cmd(
    dataset_dir: Path,
    mode: str,
    fusion: str | None,
    qrels: str | None,
    cache: Path | None,
    chunk_size: int | None,
    overlap: int | None,
    k: int,
    as_json: bool,
) -> None:
    """Measure retrieval quality on a BEIR-layout dataset (corpus.jsonl, queries.jsonl, qrels).

    Reports nDCG@10, Recall@10, Recall@100 and MRR@10 over the judged queries, plus index time
    and query latency (p50, p95; query embedding included).

    \b
    Examples:
        ragkit eval ../shared/data/scifact --retriever bm25
        ragkit eval ../shared/data/scifact --cache .cache/scifact --json
        ragkit eval ../shared/data/scifact --qrels qrels-train.tsv --fusion minmax
    """
    from .base import DEFAULT_FUSION, SearchMode
    from .evaluation import build_dataset_index, evaluate, load_beir

    size, lap = _chunk_settings(chunk_size, overlap)
    with _errors():
        dataset = load_beir(dataset_dir, qrels=qrels)
        progress = _Progress("embedding", enabled=not as_json and mode != "bm25")
        started = time.perf_counter()
        try:
            index = build_dataset_index(
                dataset.corpus,
                keyword_only=mode == "bm25",
                cache=cache,
                chunk_size=size,
                chunk_overlap=lap,
                progress=progress,
            )
        finally:
            progress.close()
        index_s = time.perf_counter() - started
        try:
            retriever = index.retriever(
                cast(SearchMode, mode), fusion=cast("FusionMethod | None", fusion)
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        depth = min(len(index), k * 3)

        from .evaluation import chunk_hits_to_documents

        def search(query: str, n: int) -> list[tuple[str, float]]:
            hits = retriever.retrieve(query, depth)
            return chunk_hits_to_documents([(h.chunk.id, h.score) for h in hits], n)

        name = f"{mode}-{fusion or DEFAULT_FUSION}" if mode == "hybrid" else mode
        report = evaluate(search, dataset, k=k, index_s=index_s, retriever=name)
    result = report.as_dict()
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{dataset_dir} — {name}, {report.n_queries} queries, {len(index)} chunks")
    for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10"):
        click.echo(f"  {key:<11} {result[key]:.4f}")
    click.echo(f"  index       {report.index_s:.1f} s")
    click.echo(f"  query       p50 {report.query_p50_ms:.2f} ms, p95 {report.query_p95_ms:.2f} ms")


@cli.command("cost")
@click.option(
    "--chunks",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Chunks sent per query.",
)
@click.option(
    "--chunk-tokens",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Tokens per chunk.",
)
@click.option(
    "--context-tokens",
    type=click.IntRange(min=0),
    default=None,
    help="Context tokens per query (overrides --chunks x --chunk-tokens).",
)
@click.option(
    "--output-tokens",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Answer tokens per query (0 prices the context alone).",
)
@click.option("--queries-per-day", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option(
    "--cached",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of context tokens read from the prompt cache.",
)
@click.option("-m", "--model", default="claude-haiku-4-5", show_default=True)
@json_option
def cost_cmd(
    chunks: int,
    chunk_tokens: int,
    context_tokens: int | None,
    output_tokens: int,
    queries_per_day: int,
    cached: float,
    model: str,
    as_json: bool,
) -> None:
    """Model a deployment's cost: context tokens per query x queries per day x price.

    Prices are an estimate from ragkit's dated table (ragkit.pricing); the bill is the authority.

    \b
    Examples:
        ragkit cost --model claude-3-5-haiku            # 3 x 500 tokens: $0.0012 per query
        ragkit cost --chunks 5 --chunk-tokens 256 --queries-per-day 20000 --json
    """
    from .pricing import PRICES_AS_OF, estimate_query_cost

    tokens = context_tokens if context_tokens is not None else chunks * chunk_tokens
    try:
        est = estimate_query_cost(
            tokens,
            queries_per_day=queries_per_day,
            model=model,
            output_tokens=output_tokens,
            cached_fraction=cached,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if as_json:
        click.echo(
            json.dumps(
                {
                    "model": est.model,
                    "context_tokens": est.context_tokens,
                    "output_tokens": est.output_tokens,
                    "queries_per_day": est.queries_per_day,
                    "per_query_usd": est.per_query,
                    "per_day_usd": est.per_day,
                    "per_month_usd": est.per_month,
                    "prices_as_of": PRICES_AS_OF,
                }
            )
        )
        return
    click.echo(
        f"{est.model}: {est.context_tokens} context + {est.output_tokens} output tokens per query\n"
        f"  per query  ${est.per_query:.6f}\n"
        f"  per day    ${est.per_day:.2f}  ({est.queries_per_day} queries)\n"
        f"  per month  ${est.per_month:.2f}  (30 days)\n"
        f"  estimate from prices as of {PRICES_AS_OF}; token counts are estimates too"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``ragkit`` console script and ``python -m ragkit``."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="ragkit")
