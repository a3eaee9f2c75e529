"""``ragkit calibrate``, ``ragkit eval`` and ``ragkit cost``: measuring an index and a setup
(the gate's threshold from your questions, retrieval quality on a BEIR dataset, the cost of a
query) rather than using it.

This module leaves out indexing and asking (``ragkit.cli``, ``ragkit.cli_ask``).
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from .cli_options import (
    FolderPath,
    _chunk_settings,
    _embedder_arg,
    _errors,
    _load_index,
    _one_line,
    embedder_option,
    index_option,
    json_option,
)
from .fusion import FUSION_METHODS, FusionMethod
from .progress import Progress

if TYPE_CHECKING:
    pass


@click.command("calibrate")
@click.argument("questions", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@index_option
@click.option("-k", type=click.IntRange(min=1), default=5, show_default=True)
@json_option
def calibrate_cmd(questions: Path, index_path: str | None, k: int, as_json: bool) -> None:
    """Choose the evidence gate's threshold from your own example questions.

    QUESTIONS is a text file, one question per line: "+ question" for one your documents
    answer, "- question" for one they do not ("#" starts a comment). Prints each question's
    score and the threshold that separates them best; use it with `ragkit ask --min-score X`
    or put `min-score = X` under [tool.ragkit.commands.ask] in pyproject.toml.

    \b
    Example file:
        + How long do refunds take?
        - Who won the 1998 World Cup?
    """
    from .gate import calibrate_gate

    good: list[str] = []
    bad: list[str] = []
    try:
        if not stat.S_ISREG(questions.stat().st_mode):  # a FIFO would block the read forever
            raise click.ClickException(f"{questions} is not a regular file; pass a text file")
        text = questions.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(
            f"{questions} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc
    except OSError as exc:
        raise click.ClickException(f"{questions}: {exc.strerror or exc}") from exc
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line[0] not in "+-" or not line[1:].strip():
            raise click.UsageError(
                f"{questions}:{number}: start the line with '+ ' (answerable) or '- ' "
                f"(not answerable), got {line[:40]!r}"
            )
        (good if line[0] == "+" else bad).append(line[1:].strip())
    with _errors():
        index = _load_index(index_path)
        result = calibrate_gate(index, good, bad, k=k)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "signal": result.signal,
                    "threshold": result.threshold,
                    "passed": result.passed,
                    "stopped": result.stopped,
                    "answerable": [{"question": q, "score": v} for q, v in result.answerable],
                    "unanswerable": [{"question": q, "score": v} for q, v in result.unanswerable],
                }
            )
        )
        return
    for mark, rows in (("+", result.answerable), ("-", result.unanswerable)):
        for question, value in rows:
            verdict = "passes" if value >= result.threshold else "stopped"
            click.echo(f"{mark} {value:.3f}  {verdict:<7}  {question}")
    click.echo(
        f"Threshold on the {result.signal}: {result.threshold} — passes {result.passed} of "
        f"{len(result.answerable)} answerable, stops {result.stopped} of "
        f"{len(result.unanswerable)} unanswerable. Use: ragkit ask --min-score "
        f"{result.threshold} (or min-score = {result.threshold} in [tool.ragkit.commands.ask])."
    )


@click.command("eval")
@click.argument("dataset_dir", type=FolderPath(file_okay=False, path_type=Path))
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
    type=FolderPath(file_okay=False, path_type=Path),
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
@embedder_option
@json_option
def eval_cmd(
    dataset_dir: Path,
    embedder_name: str | None,
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
        ragkit eval ../shared/data/scifact --embedder openai/text-embedding-3-small/512
    """
    from .base import DEFAULT_FUSION, SearchMode
    from .evaluation import build_dataset_index, evaluate, load_beir

    size, lap = _chunk_settings(chunk_size, overlap)
    with _errors():
        dataset = load_beir(dataset_dir, qrels=qrels)
        progress = Progress("embedding", enabled=not as_json and mode != "bm25")
        started = time.perf_counter()
        try:
            index = build_dataset_index(
                dataset.corpus,
                keyword_only=mode == "bm25",
                embedder=_embedder_arg(embedder_name),
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
            raise click.UsageError(_one_line(str(exc))) from exc
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


@click.command("cost")
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
        raise click.UsageError(_one_line(str(exc))) from exc
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
