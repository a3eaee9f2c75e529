"""Bring an index in line with a folder: how the folder is read, recorded once, and one sync.

A :class:`FolderSource` is how a folder is read: the folder, the include and exclude globs,
whether hidden files are read, the size limit and the fallback encoding. It is validated once,
when it is built, and the index records it (``IndexSettings.source``) on its first sync, so
every later sync reads the folder the same way: :func:`sync` with no source uses the recorded
one, and :func:`source_for` fills what a caller did not say from it. ``ragkit index``,
``ragkit index --watch``, ``ragkit mcp --watch``, the MCP ``index`` tool, :func:`index_folder`
and :func:`ragkit.watch.watch_folder` all sync through :func:`sync`, so they cannot disagree
about which files belong to the index.

A sync reads the folder, hashes each document once and chunks each new or changed one once
(:meth:`ragkit.index.Index.prepare`), embeds and writes them in batches of about a million
characters with optional checkpoints, and removes the documents whose files are gone. When the
source differs from the recorded one and would remove documents whose files are still there
(they no longer match, or live in another folder), nothing is changed: a
:class:`~ragkit.errors.SourceChangeError` names them, and ``replace_source=True`` confirms.

This module leaves out reading files (``ragkit.loaders``), chunking and embedding
(``ragkit.index``), storage (``ragkit.stores``) and file-system events (``ragkit.watch``).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SourceChangeError
from .index import (
    EmbedderArg,
    Index,
    IndexUpdate,
    ProgressFn,
    open_index,
    writing,
)
from .loaders import LoadResult, load_folder
from .loaders.files import _check_arguments
from .loaders.globs import _glob_regex
from .progress import Progress

if TYPE_CHECKING:
    from .contextual import SupportsContextualize

__all__ = [
    "CHECKPOINT_SECONDS",
    "FolderSource",
    "SyncResult",
    "index_folder",
    "recorded_source",
    "source_for",
    "sync",
    "update_from_folder",
]

logger = logging.getLogger("ragkit")

CHECKPOINT_SECONDS = 60.0
"""How often (at most) a folder update saves its finished work while it embeds."""

_BATCH_CHARS = 1_000_000
"""Characters of changed documents embedded and written to the store between checkpoints."""

_SHOWN = 10
"""Document IDs named in a message before "and N more"."""


def _patterns(name: str, value: str | Sequence[str]) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    for pattern in items:
        if not isinstance(pattern, str):
            raise TypeError(f"{name} patterns must be strings, got {type(pattern).__name__}")
        _glob_regex(pattern)  # an empty or malformed pattern fails here, once
    return items


@dataclass(frozen=True, slots=True)
class FolderSource:
    """How a folder is read into an index; recorded by the index so later syncs read it alike.

    Attributes:
        folder: the folder, as an absolute path.
        include: glob patterns of files to read; ``None`` for every suffix a loader reads.
        exclude: glob patterns of files and folders to leave out.
        skip_hidden: leave out dot-named files and folders and tool folders (``node_modules``).
        max_bytes: larger files are skipped; ``None`` for each format's own limit.
        fallback_encoding: codec for text files that are not UTF-8.

    Raises:
        ValueError: an empty or malformed pattern, ``max_bytes`` < 1 or an unknown codec.
        TypeError: a value of the wrong type.

    Example:
        >>> FolderSource("docs", include=["**/*.md"]).include
        ('**/*.md',)
    """

    folder: str
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    skip_hidden: bool = True
    max_bytes: int | None = None
    fallback_encoding: str | None = None

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] = (),
        skip_hidden: bool = True,
        max_bytes: int | None = None,
        fallback_encoding: str | None = None,
    ) -> None:
        if not isinstance(folder, (str, os.PathLike)) or not os.fspath(folder):
            raise TypeError(f"folder must be a path, got {folder!r}")
        if not isinstance(skip_hidden, bool):
            raise TypeError(f"skip_hidden must be True or False, got {skip_hidden!r}")
        _check_arguments(max_bytes, fallback_encoding)
        object.__setattr__(self, "folder", str(Path(folder).expanduser().resolve()))
        object.__setattr__(
            self, "include", None if include is None else _patterns("include", include)
        )
        object.__setattr__(self, "exclude", _patterns("exclude", exclude))
        object.__setattr__(self, "skip_hidden", skip_hidden)
        object.__setattr__(self, "max_bytes", max_bytes)
        object.__setattr__(self, "fallback_encoding", fallback_encoding)

    def with_options(self, **options: Any) -> FolderSource:
        """This source with the given options replaced; options that are ``None`` are kept.

        Example:
            >>> FolderSource("docs").with_options(skip_hidden=False, include=None).skip_hidden
            False
        """
        fields = self.as_dict()
        for name, value in options.items():
            if name not in fields or name == "folder":
                raise TypeError(f"with_options() got an unexpected option {name!r}")
            if value is not None:
                fields[name] = value
        return FolderSource.from_dict(fields)

    def load(self, *, allow_empty: bool = False) -> LoadResult:
        """Read the folder (:func:`ragkit.loaders.load_folder` with these options)."""
        return load_folder(
            self.folder,
            include=self.include,
            exclude=self.exclude,
            max_bytes=self.max_bytes,
            fallback_encoding=self.fallback_encoding,
            skip_hidden=self.skip_hidden,
            allow_empty=allow_empty,
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form: what the index records."""
        return {
            "folder": self.folder,
            "include": None if self.include is None else list(self.include),
            "exclude": list(self.exclude),
            "skip_hidden": self.skip_hidden,
            "max_bytes": self.max_bytes,
            "fallback_encoding": self.fallback_encoding,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FolderSource:
        """Read :meth:`as_dict`'s form back (validated like a new source)."""
        return cls(
            data["folder"],
            include=data.get("include"),
            exclude=data.get("exclude", ()),
            skip_hidden=data.get("skip_hidden", True),
            max_bytes=data.get("max_bytes"),
            fallback_encoding=data.get("fallback_encoding"),
        )

    def describe(self) -> str:
        """A short description for messages: the folder and the options that are not default.

        Example:
            >>> FolderSource("/srv/docs", include="*.md", skip_hidden=False).describe()
            "/srv/docs (include '*.md'; hidden files read)"
        """
        parts = []
        if self.include is not None:
            parts.append("include " + ", ".join(map(repr, self.include)))
        if self.exclude:
            parts.append("exclude " + ", ".join(map(repr, self.exclude)))
        if not self.skip_hidden:
            parts.append("hidden files read")
        if self.max_bytes is not None:
            parts.append(f"max {self.max_bytes} bytes")
        if self.fallback_encoding is not None:
            parts.append(f"fallback encoding {self.fallback_encoding}")
        return self.folder + (f" ({'; '.join(parts)})" if parts else "")


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What :func:`sync` did.

    Attributes:
        update: what changed in the index, by document ID.
        loaded: what was read from the folder, and what was left out.
        source: the source the sync read (now recorded by the index).
        source_changed: ``True`` when it differs from the source the index had recorded.
    """

    update: IndexUpdate
    loaded: LoadResult
    source: FolderSource
    source_changed: bool = False


def recorded_source(index: Index) -> FolderSource | None:
    """The source ``index`` recorded at its last sync; ``None`` when it has none (built before
    sources were recorded, or never synced with a folder)."""
    data = index.settings.source
    if data is None:
        return None
    try:
        return FolderSource.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        logger.warning(
            "the folder source recorded in the index at %s is unusable (%s); syncs treat it as "
            "unrecorded",
            index.store.location,
            exc,
        )
        return None


def source_for(
    index: Index,
    folder: str | os.PathLike[str] | None = None,
    **options: Any,
) -> FolderSource:
    """The source a sync of ``folder`` reads: the recorded one, with ``options`` that are not
    ``None`` replacing its fields. For another folder than the recorded one (or an index with
    none recorded), the defaults take the place of the recorded options.

    Args:
        index: the index to sync.
        folder: the folder; ``None`` for the recorded one.
        options: ``include``, ``exclude``, ``skip_hidden``, ``max_bytes``,
            ``fallback_encoding``; ``None`` keeps the recorded value.

    Raises:
        RagkitError: no ``folder`` and none recorded.
    """
    recorded = recorded_source(index)
    if folder is None:
        if recorded is None:
            from .errors import RagkitError

            raise RagkitError(
                f"the index at {index.store.location} records no folder to sync: pass one "
                "(ragkit index FOLDER)"
            )
        base = recorded
    else:
        wanted = FolderSource(folder)
        base = recorded if recorded is not None and recorded.folder == wanted.folder else wanted
    return base.with_options(**options)


def _removals_to_confirm(
    gone: Sequence[str], recorded: FolderSource | None, source: FolderSource
) -> list[str]:
    """The documents a changed source would remove although their files are still there."""
    home = Path((recorded or source).folder)
    return [doc_id for doc_id in gone if os.path.lexists(home / doc_id)]


def sync(
    index: Index,
    source: FolderSource | None = None,
    *,
    replace_source: bool = False,
    progress: ProgressFn | None = None,
    checkpoint: Callable[[], object] | None = None,
    checkpoint_every: float = CHECKPOINT_SECONDS,
    contextualizer: SupportsContextualize | None = None,
    on_loaded: Callable[[LoadResult, int], None] | None = None,
) -> SyncResult:
    """Bring ``index`` in line with its folder: add new files, replace changed, remove deleted.

    Args:
        index: the index; it records ``source`` (saved with the index's next save).
        source: how to read the folder; ``None`` for the source the index recorded.
        replace_source: remove the documents a changed source leaves out (see below).
        progress: called as ``progress(done_chunks, total_chunks)`` while embedding, one total
            over every batch.
        checkpoint: called (e.g. ``lambda: index.save(path)``) after a batch once
            ``checkpoint_every`` seconds have passed since the start or the last checkpoint,
            so a run that is killed keeps the batches saved so far and a re-run embeds only
            the rest; the caller makes the final save.
        checkpoint_every: seconds between checkpoints.
        contextualizer: as for :meth:`ragkit.index.Index.add`.
        on_loaded: called once the folder is read, as ``on_loaded(result, changed)`` with the
            number of documents to (re)index: the moment to tell a user what the long part is.

    Files that could not be loaded are listed in ``loaded.skipped`` and left as they were in the
    index (a file that became unreadable is not silently dropped). Removals come last.

    Raises:
        SourceChangeError: ``source`` differs from the recorded source and would remove
            documents whose files are still in the recorded folder, and ``replace_source`` is
            false; nothing was changed. (An index with no recorded source is treated alike.)
        RagkitError: no ``source`` and none recorded.
        NoDocumentsError: the folder holds no document to load.
    """
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, (int, float)):
        raise TypeError(f"checkpoint_every must be a number, got {type(checkpoint_every).__name__}")
    if checkpoint_every < 0:
        raise ValueError(f"checkpoint_every ({checkpoint_every}) must be >= 0 seconds")
    recorded = recorded_source(index)
    if source is None:
        source = source_for(index)
    elif not isinstance(source, FolderSource):
        raise TypeError(f"source must be a FolderSource, got {type(source).__name__}")
    changed_source = source != recorded
    loaded = source.load()
    present = {d.id for d in loaded.documents} | {s.path for s in loaded.skipped}
    gone = [doc_id for doc_id in index.document_ids if doc_id not in present]
    if changed_source and gone and not replace_source:
        kept = _removals_to_confirm(gone, recorded, source)
        if kept:
            raise SourceChangeError(_change_message(index, recorded, source, kept), tuple(kept))
    prepared = index.prepare(loaded.documents)
    if on_loaded is not None:
        on_loaded(loaded, len(prepared.documents))
    if changed_source:
        index.record_source(source.as_dict())
    # One bar over every batch, in chunks written: a batch's embedding progress is scaled to
    # its chunk count (chunks whose vector is reused are not embedded again).
    total = prepared.chunk_count
    done = 0
    batch_chunks = 0
    report: ProgressFn | None = None
    if progress is not None:

        def report(batch_done: int, batch_total: int) -> None:
            share = batch_chunks * batch_done // batch_total if batch_total else batch_chunks
            progress(min(total, done + share), total)

    batches = prepared.batches(_BATCH_CHARS)
    added: list[str] = []
    replaced: list[str] = []
    embedded = reused = 0
    last = time.monotonic()
    for number, batch in enumerate(batches, 1):
        batch_chunks = batch.chunk_count
        step = index.write(batch, progress=report, contextualizer=contextualizer)
        added += step.added
        replaced += step.replaced
        embedded += step.chunks_embedded
        reused += step.chunks_reused
        done += batch_chunks
        if (
            checkpoint is not None
            and number < len(batches)
            and time.monotonic() - last >= checkpoint_every
        ):
            checkpoint()
            last = time.monotonic()
    if gone:
        index.remove(gone)
    update = IndexUpdate(
        tuple(added), tuple(replaced), prepared.unchanged, tuple(gone), embedded, reused
    )
    return SyncResult(update, loaded, source, changed_source)


def _change_message(
    index: Index, recorded: FolderSource | None, source: FolderSource, kept: Sequence[str]
) -> str:
    names = ", ".join(map(repr, kept[:_SHOWN]))
    more = f" and {len(kept) - _SHOWN} more" if len(kept) > _SHOWN else ""
    before = (
        f"was synced from {recorded.describe()}"
        if recorded is not None
        else "records no folder source (it was built before ragkit recorded one)"
    )
    noun = "document" if len(kept) == 1 else "documents"
    return (
        f"the index at {index.store.location} {before}; syncing it from {source.describe()} "
        f"would remove {len(kept)} {noun} whose files are still there: {names}{more}. Nothing "
        "was changed. Sync with the recorded options (leave out the folder options), or "
        "confirm the removal (ragkit index --replace-source, or replace_source=True)"
    )


def update_from_folder(
    index: Index,
    folder: str | Path,
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    max_bytes: int | None = None,
    fallback_encoding: str | None = None,
    skip_hidden: bool = True,
    progress: ProgressFn | None = None,
    checkpoint: Callable[[], object] | None = None,
    checkpoint_every: float = CHECKPOINT_SECONDS,
    contextualizer: SupportsContextualize | None = None,
    on_loaded: Callable[[LoadResult, int], None] | None = None,
) -> tuple[IndexUpdate, LoadResult]:
    """Deprecated (kept for one release): use :func:`sync` with a :class:`FolderSource`.

    Syncs ``index`` with ``folder`` read with exactly these options (the defaults where not
    given, as before), removing whatever they leave out, and records them as the index's source.
    """
    warnings.warn(
        "update_from_folder() is deprecated: use ragkit.ingest.sync(index, FolderSource(...))",
        DeprecationWarning,
        stacklevel=2,
    )
    source = FolderSource(
        folder,
        include=include,
        exclude=exclude,
        skip_hidden=skip_hidden,
        max_bytes=max_bytes,
        fallback_encoding=fallback_encoding,
    )
    done = sync(
        index,
        source,
        replace_source=True,
        progress=progress,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        contextualizer=contextualizer,
        on_loaded=on_loaded,
    )
    return done.update, done.loaded


def index_folder(
    folder: str | Path | FolderSource,
    path: str | Path | None = None,
    *,
    embedder: EmbedderArg = "default",
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    progress: ProgressFn | bool | None = None,
    checkpoint_every: float = CHECKPOINT_SECONDS,
    contextualize: bool | SupportsContextualize = False,
    replace_source: bool = False,
) -> Index:
    """Build or update the index at ``path`` (directory or URL) from ``folder``; return it.

    Incremental: unchanged files (by content hash) are neither re-chunked nor re-embedded,
    changed files are replaced and deleted files removed. An existing index keeps its settings
    and embedder; asking for others is refused (see :func:`open_index`). It also keeps how its
    folder is read: ``include``/``exclude`` left as ``None`` are the recorded ones (see
    :func:`source_for`); a :class:`FolderSource` says everything. A changed source that would
    remove documents raises :class:`~ragkit.errors.SourceChangeError` unless
    ``replace_source=True``. Without ``path`` nothing is saved. ``contextualize=True`` (or a
    contextualizer) indexes each new chunk with Claude's context for it
    (``ragkit.contextual``), cached next to the index.

    The index directory's writer lock is held from the load to the last save, so concurrent
    runs on one path take turns (a second waits up to 30 s, then raises
    ``IndexLockedError``). The work is saved every ``checkpoint_every`` seconds while
    embedding: a killed run's re-run embeds only what was not saved yet. ``progress=True``
    shows a bar of the chunks embedded on stderr; a callable gets ``(done, total)``.

    Example:
        >>> index = index_folder("docs", ".ragkit/index", progress=True)  # doctest: +SKIP
    """
    if isinstance(folder, FolderSource) and (include is not None or exclude is not None):
        raise ValueError("pass include/exclude inside the FolderSource, not next to it")
    with writing(path):
        index = open_index(
            path, embedder=embedder, chunk_size=chunk_size, chunk_overlap=chunk_overlap
        )
        source = (
            folder
            if isinstance(folder, FolderSource)
            else source_for(index, folder, include=include, exclude=exclude)
        )
        contextualizer: SupportsContextualize | None = None
        if contextualize is True:
            from .contextual import Contextualizer, cache_path_for

            contextualizer = Contextualizer(cache_path=cache_path_for(path))
        elif contextualize is not False:
            contextualizer = contextualize
        target = path

        def save() -> object:
            return index.save(target)

        bar = Progress("embedding") if progress is True else None
        report: ProgressFn | None
        if bar is not None:
            report = bar
        elif progress is None or isinstance(progress, bool):
            report = None
        else:
            report = progress
        try:
            sync(
                index,
                source,
                replace_source=replace_source,
                progress=report,
                checkpoint=save if path is not None else None,
                checkpoint_every=checkpoint_every,
                contextualizer=contextualizer,
            )
        finally:
            if bar is not None:
                bar.close()
        if path is not None:
            index.save(path)
    return index
