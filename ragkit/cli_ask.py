"""``ragkit search`` and ``ragkit ask``: the query side of the command line.

They build a :class:`~ragkit.base.Query` and :class:`~ragkit.plan.AnswerOptions` and call the
library; the formatting is ``ragkit.cli_render``'s. This module leaves out indexing and the
other commands (``ragkit.cli``).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from .cli_options import (
    _errors,
    _filter,
    _index_path,
    _load_index,
    _one_line,
    _reranker,
    _shown,
    embedder_option,
    filter_options,
    index_option,
    json_option,
    rerank_option,
)
from .cli_render import (
    _NO_GATE_HINT,
    _answer_json,
    _chunk_json,
    _gate_decision,
    _gate_json,
    _gate_note,
    _print_passages,
    _show_plan,
    _source,
    _terminal_text,
)
from .errors import RagkitError
from .types import Answer

if TYPE_CHECKING:
    from .base import SearchMode
    from .filters import Filter
    from .index import Index
    from .plan import AnswerOptions


@click.command("search")
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
@embedder_option
@json_option
def search_cmd(
    query: str,
    embedder_name: str | None,
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
        index = _load_index(index_path, embedder_name, keyword_search=mode == "bm25")
        try:
            results = index.search(
                query, k, mode=cast("SearchMode | None", mode), where=where, rerank=reranker
            )
        except ValueError as exc:
            raise click.UsageError(_one_line(str(exc))) from exc
    if as_json:
        click.echo(
            json.dumps({"query": query, "k": k, "results": [_chunk_json(r) for r in results]})
        )
    elif not results:
        click.echo("No matching chunks.")
        for line in _filter_problems(index, wheres, paths) if where is not None else ():
            click.echo(f"  {line}")
    else:
        _print_passages(results)


_KEY_SAMPLE = 2_000
"""Chunks read to list the metadata keys an index has, when a filter names an unknown one."""


def _filter_problems(index: Index, wheres: Sequence[str], paths: Sequence[str]) -> list[str]:
    """Why a filtered search found nothing: each condition that matches no chunk on its own,
    and whether its key exists at all (with the keys that do)."""
    from itertools import islice

    from .filters import Field, parse_cli

    def matching(spec: Any) -> int:
        return index.store.stats(spec).chunks

    problems: list[str] = []
    keys: list[str] | None = None
    for raw in wheres:
        condition = parse_cli([raw])
        if condition is None or matching(condition) > 0:
            continue
        key = re.split(r"!=|>=|<=|=|<|>", raw.strip().lstrip("!"), maxsplit=1)[0].strip()
        have = matching(Field(key, "exists", True)) if key else 0
        if have:
            problems.append(f"--where {raw}: {have} chunks have {key!r}, none matches")
            continue
        if keys is None:
            seen: set[str] = set()
            for chunk in islice(index.store.chunks(), _KEY_SAMPLE):
                seen.update(chunk.metadata)
            keys = sorted(seen)
        known = ", ".join(keys) if keys else "none"
        problems.append(
            f"--where {raw}: no chunk has the key {key!r} (keys in this index: {known})"
        )
    if paths and matching(parse_cli((), paths)) == 0:
        shown = ", ".join(map(repr, paths))
        problems.append(
            f"--path {shown}: no document path matches (paths are relative to the indexed "
            "folder, e.g. 'guide/**')"
        )
    if not problems:
        problems.append("each condition matches some chunks, but no chunk matches all of them")
    return problems


@click.command("ask")
@click.argument("question", required=False)
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
    "--min-score",
    type=click.FloatRange(0, 1),
    default=None,
    metavar="X",
    help="The evidence gate's threshold: best cosine (keyword-only index: share of the "
    "question's terms) [default: 0.35 / 0.34].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Seconds to wait for Claude to connect and to send each part of the reply, per "
    "attempt (the SDK retries twice) [default: 60].",
)
@click.option(
    "--no-stream", is_flag=True, help="Print the answer when complete instead of streaming."
)
@click.option(
    "--audit",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append a JSON Lines audit record to this file.",
)
@filter_options
@rerank_option
@embedder_option
@json_option
def ask_cmd(
    question: str | None,
    embedder_name: str | None,
    index_path: str | None,
    k: int,
    model: str | None,
    strategy: str,
    max_tokens: int,
    budget: int | None,
    no_gate: bool,
    min_score: float | None,
    timeout: float | None,
    no_stream: bool,
    audit: Path | None,
    wheres: tuple[str, ...],
    paths: tuple[str, ...],
    rerank: str | None,
    as_json: bool,
) -> None:
    """Answer QUESTION from the indexed documents, citing chunk IDs.

    With no QUESTION, asks at a prompt (or each line of standard input) with the index and
    embedder loaded once. Without ANTHROPIC_API_KEY, prints the passages that would be sent,
    with their chunk IDs. A failed call is a one-line message and exit code 1; an answer
    Claude cut short (e.g. at --max-tokens) is printed with a warning, and --json reports
    "complete": false.

    \b
    Examples:
        ragkit ask "How does incremental indexing work?"
        ragkit ask "What does the gate do?" -k 8 --json --audit audit.jsonl
        ragkit ask "Who wrote the spec?" --min-score 0.3 --timeout 20
        ragkit ask "How long do refunds take?" --where team=billing --path 'faq/**'
    """
    from .gate import EvidenceGate, default_gate
    from .plan import DEFAULT_BUDGET_TOKENS, DEFAULT_MODEL, DEFAULT_TIMEOUT, AnswerOptions

    if question is not None and not question.strip():
        raise click.UsageError("QUESTION must not be empty")
    if no_gate and min_score is not None:
        raise click.UsageError("--min-score sets the gate's threshold; drop it or --no-gate")
    where = _filter(wheres, paths)
    with _errors():
        reranker = _reranker(rerank)  # a missing key fails before the index is loaded
        index = _load_index(index_path, embedder_name)
        gate: EvidenceGate | bool = False if no_gate else default_gate(index)
        if min_score is not None:
            gate = (
                EvidenceGate(min_cosine=min_score)
                if index.has_vectors
                else EvidenceGate(min_coverage=min_score)
            )
        # The library's own values, built once for the session: no option list of our own.
        settings = _Ask(
            options=AnswerOptions(
                model=model or os.environ.get("RAGKIT_MODEL") or DEFAULT_MODEL,
                max_tokens=max_tokens,
                strategy=strategy,  # type: ignore[arg-type]
                budget_tokens=budget or DEFAULT_BUDGET_TOKENS,
                gate=gate,
                rerank=reranker,
                timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
            ),
            k=k,
            where=where,
            audit=audit,
            no_stream=no_stream,
            as_json=as_json,
        )
    if question is not None:
        _ask_one(question, index, settings)
        return
    # No question: a prompt that keeps the index (and the embedder) loaded between questions.
    interactive = sys.stdin.isatty()
    if interactive:
        click.echo(
            f"ragkit: asking {_shown(_index_path(index_path))}; an empty line or Ctrl-D ends.",
            err=True,
        )
    while True:
        try:
            line = input("? " if interactive else "")
        except EOFError:
            break
        if not line.strip():
            if interactive:
                break
            continue
        try:
            _ask_one(line.strip(), index, settings)
        except click.ClickException as exc:
            exc.show()  # one question failed; the session goes on
        if interactive:
            click.echo()


@dataclass(frozen=True, slots=True)
class _Ask:
    """One ``ragkit ask`` session: the library's options, built once, and how to print."""

    options: AnswerOptions
    k: int
    where: Filter | None
    audit: Path | None
    no_stream: bool
    as_json: bool


def _ask_one(question: str, index: Index, s: _Ask) -> None:
    """Plan, show or ask, and print one answer (the body of ``ragkit ask``).

    The anthropic SDK is imported only when a call is made (a key is set)."""
    from .base import Query
    from .gate import EvidenceGate
    from .plan import has_credentials, retrieve_context

    options, as_json = s.options, s.as_json
    model, max_tokens = options.model, options.max_tokens
    gate = options.gate if isinstance(options.gate, EvidenceGate) else None
    with _errors():  # planning: a bad option value is a usage error (exit 2)
        query = Query(question, s.k, where=s.where)
        plan = retrieve_context(query, index, options)
    if not has_credentials():
        _show_plan(question, index, plan, gate, s.k, model, as_json, s.where)
        return
    from .answering import answer, answer_stream

    streamed = False
    try:
        if as_json or s.no_stream or plan.strategy == "none":
            result = answer(query, index, options, plan=plan, audit=s.audit)
        else:
            final: Answer | None = None
            for event in answer_stream(query, index, options, plan=plan, audit=s.audit):
                if isinstance(event, Answer):
                    final = event
                else:
                    streamed = True
                    click.echo(_terminal_text(event), nl=False)
            if final is None:  # pragma: no cover - answer_stream always ends with an Answer
                raise RagkitError("the answer stream ended without a final answer")
            result = final
    except RagkitError as exc:
        if streamed:
            click.echo()  # end the partial line; the error says the answer is incomplete
        raise click.ClickException(_one_line(str(exc))) from exc
    gate_json = _gate_json(plan.gate, gate)
    if as_json:
        click.echo(json.dumps(_answer_json(question, result, gate_json)))
    elif result.strategy == "none":
        reason = plan.gate.reason if plan.gate is not None else result.text
        hint = f" {_NO_GATE_HINT}" if _gate_decision(plan.gate, gate) else ""
        click.echo(f"{reason}{hint}")
    elif streamed:
        click.echo()
    else:
        click.echo(_terminal_text(result.text))
    if not result.complete:
        more = (
            f": raise --max-tokens (now {max_tokens})" if result.stop_reason == "max_tokens" else ""
        )
        click.echo(
            f"ragkit: WARNING: the answer was cut off (stop reason {result.stop_reason}){more}.",
            err=True,
        )
    if as_json:
        return
    if result.citations:
        click.echo(
            "\nSources: " + ", ".join(_source(result, cid) for cid in result.cited_chunk_ids)
        )
    cost = f", ~${result.usage.cost_usd:.5f}" if result.usage.cost_usd is not None else ""
    flags = "; abstained" if result.abstained else ""
    flags += "; CUT OFF" if not result.complete else ""
    click.echo(
        f"[{result.strategy}; {len(result.chunks)} chunks; {result.usage.input_tokens} in / "
        f"{result.usage.output_tokens} out tokens{cost}{_gate_note(plan.gate, gate)}{flags}]",
        err=True,
    )
