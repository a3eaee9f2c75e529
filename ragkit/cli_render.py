"""What the ``ragkit`` command prints: chunks and answers as JSON objects or text, the gate's
decision, the plan shown without an API key, and notes on what indexing left out.

This module leaves out parsing options (``ragkit.cli_options``) and calling the library (the
commands).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from .types import Answer, ScoredChunk

if TYPE_CHECKING:
    from .filters import Filter
    from .index import Index, IndexUpdate
    from .loaders import LoadResult
    from .plan import ContextPlan


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
        "metadata": {k: list(v) if isinstance(v, tuple) else v for k, v in c.metadata.items()},
        "text": c.text,
    }


def _printable(name: str) -> str:
    """A document or chunk ID, heading or label safe to print on one terminal line: control
    characters (a newline, an escape sequence) are shown escaped, as ``repr`` would; ``--json``
    keeps names as they are."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _terminal_text(text: str) -> str:
    """Document or answer text safe to print: newlines and tabs are kept, every other control
    character (an escape sequence inside a document, which a terminal would obey) is shown
    escaped, as ``repr`` would. Format characters (joiners, bidi marks) are left alone: scripts
    need them. ``--json`` keeps text as it is."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def _source(result: Answer, chunk_id: str) -> str:
    """A cited chunk ID, with its page(s) when its document has pages (``a.pdf#3 (p. 12)``)."""
    from .passages import chunk_label

    for sc in result.chunks:
        if sc.chunk.id == chunk_id:
            label = chunk_label(sc.chunk)
            shown = _printable(chunk_id)
            return shown if label == sc.chunk.document_id else f"{shown} ({_printable(label)})"
    return _printable(chunk_id)


def _print_passages(results: Sequence[ScoredChunk]) -> None:
    from .passages import chunk_label

    for rank, sc in enumerate(results, start=1):
        parts = ", ".join(f"{name} {value:.3f}" for name, value in sc.scores.items())
        detail = f" ({parts})" if parts else ""
        path = " > ".join(sc.chunk.headings)
        heading = f"  [{_printable(path)}]" if path else ""
        label = chunk_label(sc.chunk)
        where = f"  ({_printable(label)})" if label != sc.chunk.document_id else ""
        shown = _printable(sc.chunk.id)
        click.echo(f"[{rank}] {shown}{where}  score {sc.score:.4f}{detail}{heading}")
        text = " ".join(sc.chunk.text.split())
        click.echo(f"    {_terminal_text(text[:400])}{'…' if len(text) > 400 else ''}")


def _reembedded(update: IndexUpdate) -> str:
    """``"1 of 1,310 chunks re-embedded"`` for an update that kept stored vectors."""
    total = update.chunks_embedded + update.chunks_reused
    return f"{update.chunks_embedded:,} of {total:,} chunks re-embedded"


def _load_notes(loaded: LoadResult) -> list[str]:
    """What the user should know about the files: left out by type, hidden, and the documents
    that dominate the index (one file with half the text skews every search)."""
    notes = []
    left_out = loaded.describe_not_indexed()
    if left_out:
        notes.append(f"{left_out}; use --include to add them")
    if loaded.hidden:
        names = ", ".join(repr(h) for h in loaded.hidden[:3])
        more = f" and {len(loaded.hidden) - 3} more" if len(loaded.hidden) > 3 else ""
        notes.append(f"{len(loaded.hidden)} hidden left out ({names}{more}); --hidden adds them")
    total = sum(len(d.text) for d in loaded.documents)
    if total and len(loaded.documents) >= 5:
        biggest = sorted(loaded.documents, key=lambda d: -len(d.text))[:3]
        heavy = [d for d in biggest if len(d.text) / total >= 0.2]
        if heavy:
            shares = ", ".join(f"{d.id!r}: {len(d.text) / total:.0%}" for d in heavy)
            notes.append(f"largest documents by share of the text: {shares}")
    return notes


def _gate_decision(verdict: Any, gate: Any) -> tuple[str, float, float] | None:
    """The signal that decided ``verdict`` under ``gate`` (its "fallback" rule): name, score,
    threshold; ``None`` when no gate ran or no signal could judge."""
    if verdict is None or gate is None:
        return None
    if gate.min_cosine is not None and verdict.top_cosine is not None:
        return "cosine", verdict.top_cosine, gate.min_cosine
    if gate.min_coverage is not None and verdict.coverage is not None:
        return "coverage", verdict.coverage, gate.min_coverage
    return None


def _gate_json(verdict: Any, gate: Any) -> dict[str, Any] | None:
    if verdict is None:
        return None
    decided = _gate_decision(verdict, gate)
    return {
        "passed": verdict.passed,
        "reason": verdict.reason,
        "top_cosine": verdict.top_cosine,
        "coverage": verdict.coverage,
        "decided_by": decided[0] if decided else None,
        "score": decided[1] if decided else None,
        "threshold": decided[2] if decided else None,
    }


def _gate_note(verdict: Any, gate: Any) -> str:
    decided = _gate_decision(verdict, gate)
    if decided is None:
        return ""
    name, score, threshold = decided
    return f"; gate: {name} {score:.2f} {'>=' if score >= threshold else '<'} {threshold:.2f}"


def _answer_json(question: str, result: Answer, gate: dict[str, Any] | None) -> dict[str, Any]:
    u = result.usage
    return {
        "question": question,
        "answer": result.text,
        "complete": result.complete,
        "abstained": result.abstained,
        "strategy": result.strategy,
        "model": result.model,
        "stop_reason": result.stop_reason,
        "gate": gate,
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


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


_NO_GATE_HINT = "Run again with --no-gate to ask anyway, or lower --min-score."


def _show_plan(
    question: str,
    index: Index,
    plan: ContextPlan,
    gate: Any,
    k: int,
    model: str,
    as_json: bool,
    where: Filter | None = None,
) -> None:
    """Without a key: what would be sent, and the passages behind it, said as it is."""
    if plan.strategy == "full":
        # The corpus is too long to print: its best matches (within the filter).
        shown = index.search(question, k, where=where)
        would = (
            f"Above: the {len(shown)} of {len(plan.chunks)} chunks that best match the question. "
            f"With a key, all {len(plan.chunks)} (the whole corpus, ~{plan.estimated_tokens} "
            f"tokens, estimated) would go to {model}."
        )
    elif plan.strategy == "none":
        shown = list(plan.retrieved)
        reason = plan.gate.reason if plan.gate is not None else "nothing to send."
        would = f"Nothing would be sent: {reason}" + (
            f" {_NO_GATE_HINT}" if _gate_decision(plan.gate, gate) else ""
        )
    else:
        shown = list(plan.chunks)
        would = (
            f"Would send these {_count(len(plan.chunks), 'chunk')} as "
            f"{_count(len(plan.passages), 'passage')} (~{plan.estimated_tokens} tokens, "
            f"estimated) to {model}."
        )
    if as_json:
        data = {
            "question": question,
            "answer": None,
            "api_key": False,
            "strategy": plan.strategy,
            "estimated_tokens": plan.estimated_tokens,
            "gate": _gate_json(plan.gate, gate),
            "chunks": [_chunk_json(r) for r in shown],
        }
        click.echo(json.dumps(data))
    else:
        _print_passages(shown)
        click.echo(would)
    if plan.strategy == "none":
        tail = "ANTHROPIC_API_KEY is not set (and nothing would be sent for this question)."
    else:
        tail = (
            f"ANTHROPIC_API_KEY is not set: showed the passages instead of asking {model}. "
            "Set the key to get an answer."
        )
    click.echo(tail, err=as_json)
