"""The ``ragkit`` command: parse arguments, call the library, format the result.

Results go to stdout (``--json`` prints one JSON object, for scripts); progress and warnings go
to stderr. A :class:`~ragkit.errors.RagkitError` becomes a one-line message and exit code 1;
usage errors exit with 2. This module holds no retrieval or answering logic of its own.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from . import __version__
from .errors import RagkitError
from .fusion import FUSION_METHODS, FusionMethod
from .loaders.defaults import DEFAULT_INCLUDE
from .progress import Progress
from .types import Answer, ScoredChunk

if TYPE_CHECKING:
    from .base import SearchMode
    from .filters import Filter
    from .index import Index, IndexUpdate
    from .loaders import LoadResult
    from .plan import AnswerOptions, ContextPlan

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_INDEX = ".ragkit/index"

DEFAULT_TYPES = tuple(pattern.rsplit("*", 1)[-1] for pattern in DEFAULT_INCLUDE)
"""The suffixes `ragkit index` reads by default (plugin loaders add theirs)."""


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
        help=(
            "Index directory or postgresql:// URL; in a URL, ?ragkit_schema=NAME picks the "
            f"schema (default: $RAGKIT_INDEX or {DEFAULT_INDEX})."
        ),
    )(f)


def _embedder_arg(name: str | None) -> Any:
    """--embedder NAME as an embedder, or "default" (an existing index's own, else the
    offline default)."""
    if name is None:
        return "default"
    from .embedders import get_embedder

    return get_embedder(name)


def embedder_option(f: F) -> F:
    return click.option(
        "--embedder",
        "embedder_name",
        metavar="NAME",
        default=None,
        help="Embedder by name, e.g. minilm-l6-v2-int8/384, openai/text-embedding-3-small/1536, "
        "voyage/voyage-4-lite/1024 (default: the offline one; an existing index uses its own).",
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
        "metadata": {k: list(v) if isinstance(v, tuple) else v for k, v in c.metadata.items()},
        "text": c.text,
    }


def _source(result: Answer, chunk_id: str) -> str:
    """A cited chunk ID, with its page(s) when its document has pages (``a.pdf#3 (p. 12)``)."""
    from .plan import chunk_label

    for sc in result.chunks:
        if sc.chunk.id == chunk_id:
            label = chunk_label(sc.chunk)
            return chunk_id if label == sc.chunk.document_id else f"{chunk_id} ({label})"
    return chunk_id


def _print_passages(results: Sequence[ScoredChunk]) -> None:
    from .plan import chunk_label

    for rank, sc in enumerate(results, start=1):
        parts = ", ".join(f"{name} {value:.3f}" for name, value in sc.scores.items())
        detail = f" ({parts})" if parts else ""
        heading = f"  [{' > '.join(sc.chunk.headings)}]" if sc.chunk.headings else ""
        label = chunk_label(sc.chunk)
        where = f"  ({label})" if label != sc.chunk.document_id else ""
        click.echo(f"[{rank}] {sc.chunk.id}{where}  score {sc.score:.4f}{detail}{heading}")
        text = " ".join(sc.chunk.text.split())
        click.echo(f"    {text[:400]}{'…' if len(text) > 400 else ''}")


def _project_defaults(group: click.Group, start: Path) -> tuple[dict[str, Any], Path | None]:
    """Option defaults from ``ragkit.toml`` or ``[tool.ragkit]`` of ``pyproject.toml``.

    Looked up in ``start`` and its parents (the nearest file wins). Top-level keys apply to
    every command with an option of that name (``index = "..."``, ``model = "..."``); a table
    ``[tool.ragkit.commands.NAME]`` applies to that command only and wins. Keys are option
    names without dashes (``chunk-size`` or ``chunk_size``).
    """
    config: dict[str, Any] | None = None
    found: Path | None = None
    for folder in (start, *start.parents):
        for name in ("ragkit.toml", "pyproject.toml"):
            path = folder / name
            if not path.is_file():
                continue
            try:
                import tomllib
            except ImportError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef, import-not-found, unused-ignore]
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise click.UsageError(f"{path} is not valid TOML: {exc}") from exc
            section = data.get("tool", {}).get("ragkit") if name == "pyproject.toml" else data
            if section is not None:
                if not isinstance(section, dict):
                    raise click.UsageError(f"{path}: the ragkit settings must be a table")
                config, found = section, path
                break
        if config is not None:
            break
    if config is None:
        return {}, None
    commands = config.get("commands", {})
    if not isinstance(commands, dict):
        raise click.UsageError(f"{found}: 'commands' must be a table of per-command tables")
    shared = {k: v for k, v in config.items() if k != "commands"}
    default_map: dict[str, Any] = {}
    for command_name, command in group.commands.items():
        by_option: dict[str, str] = {}
        for param in command.params:
            for opt in getattr(param, "opts", []):
                by_option[opt.lstrip("-").replace("-", "_")] = str(param.name)
        values: dict[str, Any] = {}
        own = commands.get(command_name, {})
        for table in (shared, own if isinstance(own, dict) else {}):
            for key, value in table.items():
                target = by_option.get(str(key).replace("-", "_"))
                if target is not None:
                    values[target] = tuple(value) if isinstance(value, list) else value
        if values:
            default_map[command_name] = values
    known = {n for c in group.commands.values() for p in c.params for n in _names(p)}
    unknown = sorted(str(k) for k in shared if str(k).replace("-", "_") not in known) + sorted(
        f"commands.{k}" for k in commands if k not in group.commands
    )
    if unknown:
        raise click.UsageError(f"{found}: unknown ragkit settings: {', '.join(unknown)}")
    return default_map, found


def _names(param: click.Parameter) -> list[str]:
    return [o.lstrip("-").replace("-", "_") for o in getattr(param, "opts", [])]


class _Group(click.Group):
    """Reads project defaults (ragkit.toml / pyproject.toml) before parsing a command."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        if "default_map" not in extra:
            defaults, _ = _project_defaults(self, Path.cwd())
            if defaults:
                extra["default_map"] = defaults
        return super().make_context(info_name, args, parent, **extra)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="ragkit")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def cli(verbose: bool) -> None:
    """ragkit: ask questions of your documents, answered by Claude from cited chunks.

    \b
    Quick start:
        ragkit index docs/                  # build or update the index
        ragkit search "fusion of rankings"  # retrieval only, no API key needed
        ragkit ask "How are rankings fused?"

    Project defaults for any option can live in ragkit.toml or [tool.ragkit] of pyproject.toml
    (e.g. index = "postgresql://...", [tool.ragkit.commands.index] exclude = ["drafts/**"]).
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
    help="Files to index, relative glob (repeatable; default: the globs the index recorded, "
    "else every type a loader reads: " + " ".join(DEFAULT_TYPES) + ").",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="GLOB",
    help="Files to skip (repeatable; default: the globs the index recorded).",
)
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
@click.option(
    "--hidden/--no-hidden",
    default=None,
    help="Also index dot-named files and folders (default: as the index recorded, else not).",
)
@click.option(
    "--replace-source",
    is_flag=True,
    help="Confirm removing the documents that other folder options (or another folder) leave "
    "out; without it such a run changes nothing and lists them.",
)
@click.option("--watch", is_flag=True, help="Then keep updating the index as files change.")
@embedder_option
@json_option
def index_cmd(
    folder: Path,
    embedder_name: str | None,
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
    hidden: bool | None,
    replace_source: bool,
    watch: bool,
    as_json: bool,
) -> None:
    """Build or update the index of FOLDER (only changed files are re-embedded).

    The index records how FOLDER was read (--include, --exclude, --hidden, --fallback-encoding):
    later runs, --watch and `ragkit mcp --watch` read it the same way unless told otherwise.

    \b
    Examples:
        ragkit index docs/
        ragkit index notes/ --index ~/.ragkit/notes --include '**/*.md' --exclude 'drafts/**'
        ragkit index docs/ --watch         # then re-index each file as it is saved (Ctrl-C stops)
    """
    from .index import open_index, writing
    from .ingest import source_for, sync

    path = _index_path(index_path)
    size, lap = _chunk_request(chunk_size, overlap)
    with _errors():
        if not folder.is_dir():
            raise RagkitError(f"{folder} is not a directory")
        started = time.perf_counter()
        # The writer lock is held from the load to the last save: concurrent runs take turns.
        with writing(path):
            index = open_index(
                path,
                embedder=None if keyword_only else _embedder_arg(embedder_name),
                chunk_size=size,
                chunk_overlap=lap,
            )
            source = source_for(
                index,
                folder,
                include=include or None,
                exclude=exclude or None,
                skip_hidden=None if hidden is None else not hidden,
                fallback_encoding=fallback_encoding,
            )
            contextualizer = _contextualizer(path, context_model, yes) if contextualize else None
            progress = Progress("embedding", enabled=not as_json)
            progress.note(f"reading {folder} ...")

            def loaded_note(result: LoadResult, changed: int) -> None:
                work = f"{changed} to index" + (" (embedding)" if index.has_vectors else "")
                progress.note(f"read {len(result.documents)} documents; {work}")

            before = len(index.document_ids)
            try:
                synced = sync(
                    index,
                    source,
                    replace_source=replace_source,
                    progress=progress,
                    checkpoint=lambda: index.save(path),
                    contextualizer=contextualizer,
                    on_loaded=loaded_note,
                )
            except KeyboardInterrupt:
                # Every batch written so far is complete: keep it, and say so.
                progress.close()
                index.save(path)
                click.echo(
                    f"Interrupted: kept what was indexed so far in {_shown(path)} "
                    f"({len(index.document_ids)} documents, {before} before this run); "
                    "run the same command again to index the rest.",
                    err=True,
                )
                raise SystemExit(130) from None
            finally:
                progress.close()
            progress.note(f"saving to {_shown(path)} ...")
            index.save(path)
        elapsed = time.perf_counter() - started
    update, loaded = synced.update, synced.loaded
    summary = {
        "index": _shown(path),
        "documents": len(index.document_ids),
        "chunks": len(index),
        "added": list(update.added),
        "replaced": list(update.replaced),
        "removed": list(update.removed),
        "unchanged": len(update.unchanged),
        "skipped": [{"path": s.path, "reason": s.reason} for s in loaded.skipped],
        "not_indexed": dict(loaded.not_indexed),
        "hidden": list(loaded.hidden),
        "chunks_embedded": update.chunks_embedded,
        "chunks_reused": update.chunks_reused,
        "embedder": index.embedder.name if index.embedder else None,
        "seconds": round(elapsed, 3),
    }
    if as_json:
        click.echo(json.dumps(summary))
        if watch:
            _watch(folder, path, index, as_json)
        return
    mode = f"embedder {summary['embedder']}" if index.embedder else "keyword-only (no embedder)"
    click.echo(
        f"Indexed {folder}: {summary['documents']} documents, {summary['chunks']} chunks, {mode}.\n"
        f"  {len(update.added)} added, {len(update.replaced)} changed, "
        f"{len(update.removed)} removed, "
        f"{len(update.unchanged)} unchanged, {len(loaded.skipped)} skipped; {elapsed:.1f}s → "
        f"{_shown(path)}"
    )
    if update.chunks_reused:
        click.echo(f"  {_reembedded(update)}")
    if synced.source_changed and index.document_ids:
        click.echo(f"  folder source recorded: {synced.source.describe()}")
    for line in _load_notes(loaded):
        click.echo(f"  {line}")
    if watch:
        _watch(folder, path, index, as_json)


def _reembedded(update: IndexUpdate) -> str:
    """``"1 of 1,310 chunks re-embedded"`` for an update that kept stored vectors."""
    total = update.chunks_embedded + update.chunks_reused
    return f"{update.chunks_embedded:,} of {total:,} chunks re-embedded"


def _watch(folder: Path, path: str, index: Index, as_json: bool) -> None:
    """Watch FOLDER after `ragkit index --watch` (read as the index recorded); one line (or
    JSON object) per update."""
    from .watch import WatchUpdate, watch_folder

    def report(event: WatchUpdate) -> None:
        u = event.update
        if event.initial and not as_json:
            click.echo(f"Watching {folder} (Ctrl-C stops)...", err=True)
        if event.initial and not u.changed:
            return
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "added": list(u.added),
                        "replaced": list(u.replaced),
                        "removed": list(u.removed),
                        "skipped": [{"path": s.path, "reason": s.reason} for s in event.skipped],
                        "chunks_embedded": u.chunks_embedded,
                        "chunks_reused": u.chunks_reused,
                        "seconds": round(event.seconds, 3),
                    }
                )
            )
        else:
            names = ", ".join([*u.added, *u.replaced, *(f"-{r}" for r in u.removed)])
            detail = f" ({_reembedded(u)})" if u.chunks_reused else ""
            click.echo(f"Updated ({event.seconds:.2f}s): {names}{detail}")

    with _errors():
        try:
            watch_folder(folder, path, index=index, on_update=report)
        except KeyboardInterrupt:
            if not as_json:
                click.echo("Stopped watching.", err=True)


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


@cli.command("calibrate")
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
    for number, raw in enumerate(questions.read_text(encoding="utf-8").splitlines(), 1):
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


@cli.command("migrate")
@index_option
def migrate_cmd(index_path: str | None) -> None:
    """Create or upgrade the ragkit schema of a postgresql:// index (idempotent).

    `ragkit index` runs it too; run it alone when the database user that searches may not run
    DDL, or to prepare a database ahead of time.

    \b
    Example:
        ragkit migrate --index postgresql://app@db/ragkit
    """
    from .stores import is_database_url, open_store

    location = _index_path(index_path)
    if not is_database_url(location):
        raise click.UsageError(
            f"--index {location!r} is a directory: only a postgresql:// index has a schema"
        )
    with _errors():
        store = open_store(location, migrate=True)
        store.close()
    click.echo(f"Schema ready at {_shown(location)}.")


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


def _load_index(index_path: str | None, embedder: str | None = None) -> Index:
    """The index at --index, opened with the embedder it was built with (or --embedder's)."""
    from .index import Index

    chosen: Any = "default"
    if embedder is not None:
        from .embedders import get_embedder

        chosen = get_embedder(embedder)
    return Index.load(_index_path(index_path), embedder=chosen)


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
        index = _load_index(index_path, embedder_name)
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


@cli.command("ask")
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
                    click.echo(event, nl=False)
            if final is None:  # pragma: no cover - answer_stream always ends with an Answer
                raise RagkitError("the answer stream ended without a final answer")
            result = final
    except RagkitError as exc:
        if streamed:
            click.echo()  # end the partial line; the error says the answer is incomplete
        raise click.ClickException(str(exc)) from exc
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
        click.echo(result.text)
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


@cli.command("mcp")
@index_option
@click.option("--http", is_flag=True, help="Serve streamable HTTP on 127.0.0.1, not stdio.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="HTTP port."
)
@click.option("--allow-index", is_flag=True, help="Add the `index` tool (writes to the index).")
@click.option(
    "--watch",
    "watch",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    metavar="FOLDER",
    help="Keep the index in line with FOLDER while serving.",
)
def mcp_cmd(
    index_path: str | None, http: bool, port: int, allow_index: bool, watch: Path | None
) -> None:
    """Serve the index to Claude Code, Claude Desktop and other MCP hosts (stdio by default).

    Tools: search, list_documents, get_chunk; ask when ANTHROPIC_API_KEY is set; index with
    --allow-index. An index rebuilt by `ragkit index` is picked up without a restart.

    \b
    Examples:
        claude mcp add ragkit -- ragkit mcp --index /abs/path/.ragkit/index
        ragkit mcp --index .ragkit/index --http --port 8765
        ragkit mcp --index .ragkit/index --watch docs/
    """
    with _errors():
        from .mcp_server import serve

        serve(
            _index_path(index_path),
            http=http,
            port=port,
            allow_index=allow_index,
            watch=watch,
            on_ready=lambda line: click.echo(f"ragkit: {line}", err=True),
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
