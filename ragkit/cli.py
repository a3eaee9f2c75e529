"""The ``ragkit`` command: parse arguments, call the library, format the result.

Results go to stdout (``--json`` prints one JSON object, for scripts); progress and warnings go
to stderr. A :class:`~ragkit.errors.RagkitError` becomes a one-line message and exit code 1;
usage errors exit with 2. This module holds no retrieval or answering logic of its own.

The command group and the indexing side live here (``index``, ``--watch``, ``migrate``, ``mcp``);
``ragkit.cli_ask`` holds ``search`` and ``ask``, ``ragkit.cli_measure`` ``calibrate``, ``eval``
and ``cost``, ``ragkit.cli_options`` the options they share and ``ragkit.cli_render`` what
they print.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .cli_options import (
    DEFAULT_TYPES,
    FolderPath,
    _chunk_request,
    _embedder_arg,
    _errors,
    _Group,
    _index_path,
    _shown,
    embedder_option,
    index_option,
    json_option,
)
from .errors import RagkitError

if TYPE_CHECKING:
    from .index import Index
    from .loaders import LoadResult

# Commands whose module is imported only when they run (or when --help lists them): a search
# process does not pay for the measuring commands, nor they for each other.
_LAZY_COMMANDS = {
    "search": "ragkit.cli_ask:search_cmd",
    "ask": "ragkit.cli_ask:ask_cmd",
    "calibrate": "ragkit.cli_measure:calibrate_cmd",
    "eval": "ragkit.cli_measure:eval_cmd",
    "cost": "ragkit.cli_measure:cost_cmd",
}


@click.group(
    cls=_Group,
    lazy_commands=_LAZY_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
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
    _invoked[:] = [click.get_current_context().invoked_subcommand or ""]


_invoked: list[str] = []
"""The command this process ran (set by the group; read by :func:`main`)."""


@cli.command("index")
@click.argument("folder", type=FolderPath(file_okay=False, path_type=Path))
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
    from .cli_render import _load_notes, _reembedded
    from .index import open_index, writing
    from .ingest import source_for, sync
    from .progress import Progress

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


def _watch(folder: Path, path: str, index: Index, as_json: bool) -> None:
    """Watch FOLDER after `ragkit index --watch` (read as the index recorded); one line (or
    JSON object) per update."""
    from .cli_render import _printable, _reembedded
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
            names = ", ".join(
                _printable(name) for name in [*u.added, *u.replaced, *(f"-{r}" for r in u.removed)]
            )
            detail = f" ({_reembedded(u)})" if u.chunks_reused else ""
            click.echo(f"Updated ({event.seconds:.2f}s): {names}{detail}")

    with _errors():
        try:
            watch_folder(folder, path, index=index, on_update=report)
        except KeyboardInterrupt:
            if not as_json:
                click.echo("Stopped watching.", err=True)


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
    from .stores import local_path, open_store

    location = _index_path(index_path)
    if local_path(location) is not None:  # a database URL (or a plugin store's) has a schema
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


_ENDS_AT_ONCE = frozenset({"search"})
"""Commands that only read an index and print: when one has finished, :func:`main` flushes the
output and ends the process at once (:func:`_end_now`)."""


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``ragkit`` console script and ``python -m ragkit``."""
    args = list(argv) if argv is not None else sys.argv[1:]
    command = next((a for a in args if not a.startswith("-")), None)
    if command in _ENDS_AT_ONCE and "numpy" not in sys.modules:
        # One query's scores gain nothing from BLAS threads, and numpy's BLAS starts one per
        # core when it is imported (a user's own setting wins).
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        cli.main(args=args, prog_name="ragkit")
    except SystemExit as done:
        code = 0 if done.code is None else done.code
        if _invoked and _invoked[0] in _ENDS_AT_ONCE and isinstance(code, int):
            _end_now(code)
        raise


def _end_now(code: int) -> None:
    """End the process with ``code`` without the interpreter's teardown.

    For a command that has only read (files it opened are closed by then) and printed: the
    teardown frees every module and object one by one and joins the threads of numpy's BLAS and
    of onnxruntime, which costs a search process a large part of its run (bench/RESULTS.md) and
    does nothing a user can see. Logging is shut down and both output streams are flushed
    first, as a normal exit would; a flush that fails (a closed pipe) gives exit code 120, as
    Python's own exit does.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120
    os._exit(code)
