"""Bring an index in line with a folder: read it, add new and changed files, remove deleted ones.

:func:`update_from_folder` does one sync (batches of changed documents embedded and written, with
checkpoints); :func:`index_folder` opens the index, holds its writer lock, syncs and saves.

This module leaves out reading files (``ragkit.loaders``), chunking and embedding
(``ragkit.index``) and storage (``ragkit.stores``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .chunking import chunk_document
from .index import (
    EmbedderArg,
    Index,
    IndexUpdate,
    ProgressFn,
    document_hash,
    open_index,
    writing,
)
from .loaders import LoadResult, load_folder
from .types import Document

if TYPE_CHECKING:
    from .contextual import SupportsContextualize

__all__ = ["CHECKPOINT_SECONDS", "index_folder", "update_from_folder"]

CHECKPOINT_SECONDS = 60.0
"""How often (at most) a folder update saves its finished work while it embeds."""

_BATCH_CHARS = 1_000_000
"""Characters of changed documents embedded and written to the store between checkpoints."""


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
    """Bring ``index`` in line with ``folder``: add new files, replace changed, remove deleted.

    ``on_loaded(result, changed)`` is called once the folder is read, with the number of
    documents that will be (re)indexed: the moment to tell a user what the long part will be.

    Files that could not be loaded are reported in the returned ``LoadResult.skipped`` and are
    left as they were in the index (a file that became unreadable is not silently dropped).

    Changed documents are embedded and written in batches (about a million characters each).
    With ``checkpoint`` (e.g. ``lambda: index.save(path)``), it is called after a batch once
    ``checkpoint_every`` seconds have passed since the start or the last checkpoint, so a run
    that is killed keeps the batches saved so far and a re-run embeds only the rest. Removals
    of deleted files come last; the caller makes the final save.
    """
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, (int, float)):
        raise TypeError(f"checkpoint_every must be a number, got {type(checkpoint_every).__name__}")
    if checkpoint_every < 0:
        raise ValueError(f"checkpoint_every ({checkpoint_every}) must be >= 0 seconds")
    loaded = load_folder(
        folder,
        include=include,
        exclude=exclude,
        max_bytes=max_bytes,
        fallback_encoding=fallback_encoding,
        skip_hidden=skip_hidden,
    )
    known = index.documents
    changed = [d for d in loaded.documents if known.get(d.id) != document_hash(d)]
    if on_loaded is not None:
        on_loaded(loaded, len(changed))
    batches: list[list[Document]] = [[]]
    size = 0
    for doc in changed:
        if batches[-1] and size + len(doc.text) > _BATCH_CHARS:
            batches.append([])
            size = 0
        batches[-1].append(doc)
        size += len(doc.text)
    report = progress
    if progress is not None and index.has_vectors and len(batches) > 1:
        # One bar over every batch: count the chunks to embed up front.
        total = sum(
            len(chunk_document(d, size=index.chunk_size, overlap=index.chunk_overlap))
            for d in changed
        )
        done = [0]

        def report(batch_done: int, _batch_total: int) -> None:
            progress(min(total, done[0] + batch_done), total)

    added: list[str] = []
    replaced: list[str] = []
    embedded = reused = 0
    last = time.monotonic()
    for number, batch in enumerate(batches, 1):
        if not batch:
            continue
        step = index.add(batch, progress=report, contextualizer=contextualizer)
        added += step.added
        replaced += step.replaced
        embedded += step.chunks_embedded
        reused += step.chunks_reused
        if report is not progress:
            done[0] += step.chunks_embedded
        if (
            checkpoint is not None
            and number < len(batches)
            and time.monotonic() - last >= checkpoint_every
        ):
            checkpoint()
            last = time.monotonic()
    present = {d.id for d in loaded.documents} | {s.path for s in loaded.skipped}
    gone = [doc_id for doc_id in index.document_ids if doc_id not in present]
    if gone:
        index.remove(gone)
    changed_ids = {d.id for d in changed}
    unchanged = tuple(d.id for d in loaded.documents if d.id not in changed_ids)
    return (
        IndexUpdate(tuple(added), tuple(replaced), unchanged, tuple(gone), embedded, reused),
        loaded,
    )


def index_folder(
    folder: str | Path,
    path: str | Path | None = None,
    *,
    embedder: EmbedderArg = "default",
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    progress: ProgressFn | bool | None = None,
    checkpoint_every: float = CHECKPOINT_SECONDS,
    contextualize: bool | SupportsContextualize = False,
) -> Index:
    """Build or update the index at ``path`` (directory or URL) from ``folder``; return it.

    Incremental: unchanged files (by content hash) are neither re-chunked nor re-embedded,
    changed files are replaced and deleted files removed. An existing index keeps its settings
    and embedder; asking for others is refused (see :func:`open_index`). Without ``path``
    nothing is saved. ``contextualize=True`` (or a contextualizer) indexes each new chunk with
    Claude's context for it (``ragkit.contextual``), cached next to the index.

    The index directory's writer lock is held from the load to the last save, so concurrent
    runs on one path take turns (a second waits up to 30 s, then raises
    ``IndexLockedError``). The work is saved every ``checkpoint_every`` seconds while
    embedding: a killed run's re-run embeds only what was not saved yet. ``progress=True``
    shows a bar of the chunks embedded on stderr; a callable gets ``(done, total)``.

    Example:
        >>> index = index_folder("docs", ".ragkit/index", progress=True)  # doctest: +SKIP
    """
    with writing(path):
        index = open_index(
            path, embedder=embedder, chunk_size=chunk_size, chunk_overlap=chunk_overlap
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

        bar = _TqdmProgress() if progress is True else None
        report: ProgressFn | None
        if bar is not None:
            report = bar
        elif progress is None or isinstance(progress, bool):
            report = None
        else:
            report = progress
        update_from_folder(
            index,
            folder,
            include=include,
            exclude=exclude,
            progress=report,
            checkpoint=save if path is not None else None,
            checkpoint_every=checkpoint_every,
            contextualizer=contextualizer,
        )
        if bar is not None:
            bar.close()
        if path is not None:
            index.save(path)
    return index


class _TqdmProgress:
    """``index_folder(progress=True)``: a tqdm bar of the chunks embedded, on stderr."""

    def __init__(self) -> None:
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="embedding", unit="chunk", leave=False)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
