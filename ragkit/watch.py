"""Watch mode: keep an index in line with a folder as its files are saved, changed and deleted.

:func:`watch_folder` brings the index up to date once, then waits for file-system events
(``watchfiles``, extra ``watch``), groups a burst of them (an editor's save writes a temporary
file, renames it and touches the folder) into one batch, and applies each batch through the same
path as :func:`ragkit.index_folder`: :func:`ragkit.ingest.sync`, then ``save``. The folder is read
the way the index recorded (:func:`ragkit.ingest.source_for`), so a watcher started without the
options the index was built with removes nothing those options added.
Unchanged files are neither re-chunked nor re-embedded, so a one-file change costs one file's
embedding. Searches on the same :class:`~ragkit.index.Index` object keep working while a batch
is applied (the store swaps documents atomically), and readers of the saved directory see the
old generation until the new one is complete.

This module leaves out the file-system notification itself (``watchfiles``), loading and
chunking (``ragkit.loaders``, ``ragkit.index``), and serving searches (``ragkit.mcp_server``).
A batch re-reads the folder to find what changed (content hashes decide), so a very large
folder pays a full walk per batch even when one file changed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Corpus
from .errors import MissingDependencyError, RagkitError
from .index import EmbedderArg, Index, IndexUpdate, open_index
from .ingest import FolderSource, source_for, sync
from .loaders import Skipped
from .stores import local_path

if TYPE_CHECKING:
    import threading

__all__ = ["DEFAULT_DEBOUNCE_MS", "DEFAULT_STEP_MS", "WatchUpdate", "watch_folder"]

logger = logging.getLogger("ragkit")

DEFAULT_DEBOUNCE_MS = 1_600
"""The longest a burst of events is collected before it is applied."""

DEFAULT_STEP_MS = 100
"""A batch is applied once no new event has arrived for this long."""

_TICK_MS = 250
"""How often an idle watcher wakes to look at its stop event."""


@dataclass(frozen=True, slots=True)
class WatchUpdate:
    """One batch applied by :func:`watch_folder`.

    Attributes:
        update: what changed in the index, by document ID.
        skipped: files that matched but could not be read (left as they were in the index).
        paths: the changed paths the watcher reported (empty for the first, full sync).
        seconds: time to load, chunk, embed and save the batch.
        initial: ``True`` for the sync that runs before watching starts.
    """

    update: IndexUpdate
    skipped: tuple[Skipped, ...]
    paths: tuple[str, ...]
    seconds: float
    initial: bool = False


def _watchfiles() -> Any:
    try:
        import watchfiles
    except ImportError as exc:
        raise MissingDependencyError(
            "watch mode needs the 'watch' extra: pip install 'ragkit-claude[watch]'"
        ) from exc
    return watchfiles


def _inside(path: Path, root: Path | None) -> bool:
    if root is None:
        return False
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def watch_folder(
    folder: str | Path | FolderSource | None,
    index_location: str | Path | None,
    *,
    index: Index | None = None,
    embedder: EmbedderArg = "default",
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    fallback_encoding: str | None = None,
    debounce_ms: int = DEFAULT_DEBOUNCE_MS,
    step_ms: int = DEFAULT_STEP_MS,
    initial_sync: bool = True,
    on_update: Callable[[WatchUpdate], None] | None = None,
    stop_event: threading.Event | None = None,
) -> None:
    """Keep the index at ``index_location`` in line with ``folder`` until stopped.

    Runs in the calling thread: run it in a thread of its own to keep serving searches (pass the
    index being searched as ``index``), and stop it with ``stop_event`` or Ctrl-C (the
    ``KeyboardInterrupt`` propagates; the index on disk is always a complete generation). A
    batch that fails (a file locked by another writer, an embedder error) is logged and the
    next batch tries again; bad arguments and a missing extra raise before watching starts.
    When the folder itself is removed, the index is left as it was and the watcher waits for a
    folder of that name, then syncs with it and watches it.

    Args:
        folder: the folder to watch (recursively), read with the options the index recorded
            (see :func:`ragkit.ingest.source_for`); a :class:`~ragkit.ingest.FolderSource` says
            every option; ``None`` watches the folder the index recorded.
        index_location: where the index is saved after each batch (a directory or a
            ``postgresql://`` URL); ``None`` keeps it in memory only.
        index: the open index to update in place (default: opened from ``index_location``).
        embedder: the embedder for a new index (see :func:`ragkit.open_index`).
        include: file globs to index; ``None`` for the recorded ones.
        exclude: file globs to leave out; ``None`` for the recorded ones.
        fallback_encoding: the encoding of files that are not UTF-8; ``None`` for the recorded.
        debounce_ms: the longest a burst of events is collected before it is applied.
        step_ms: a batch is applied once no event has arrived for this long.
        initial_sync: bring the index up to date with the folder once the watcher is
            listening (so nothing saved in between is missed).
        on_update: called with a :class:`WatchUpdate` after the initial sync (then the watcher
            is listening) and after each batch that changed the index.
        stop_event: set it (from another thread) to stop watching.

    Raises:
        MissingDependencyError: ``watchfiles`` is not installed.
        RagkitError: ``folder`` is not a directory, or the index cannot be opened.
        SourceChangeError: the first sync would remove documents because the folder or its
            options differ from the recorded ones (nothing was changed).

    Example:
        >>> stop = threading.Event()  # doctest: +SKIP
        >>> threading.Thread(target=watch_folder, args=("docs", ".ragkit/index"),
        ...                  kwargs={"stop_event": stop}).start()  # doctest: +SKIP
    """
    for name, value in (("debounce_ms", debounce_ms), ("step_ms", step_ms)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} ({value!r}) must be an integer >= 1")
    if index is not None and not isinstance(index, Corpus):
        raise TypeError(f"index must be a ragkit.Index, got {type(index).__name__}")
    watchfiles = _watchfiles()
    if isinstance(folder, (str, Path)) and not Path(folder).is_dir():
        raise RagkitError(f"cannot watch {folder}: it is not a directory")
    idx = index if index is not None else open_index(index_location, embedder=embedder)
    if isinstance(folder, FolderSource):
        if include is not None or exclude is not None or fallback_encoding is not None:
            raise ValueError("pass include/exclude/fallback_encoding inside the FolderSource")
        source = folder
    else:
        source = source_for(
            idx, folder, include=include, exclude=exclude, fallback_encoding=fallback_encoding
        )
    root = Path(source.folder)
    if not root.is_dir():
        raise RagkitError(f"cannot watch {root}: it is not a directory")
    index_dir = local_path(index_location)
    index_root = index_dir.resolve() if index_dir is not None else None

    def apply(paths: tuple[str, ...], initial: bool) -> None:
        started = time.perf_counter()
        done = sync(idx, source)
        update, loaded = done.update, done.loaded
        if index_location is not None and (update.changed or done.source_changed):
            idx.save(index_location)
        if on_update is not None and (update.changed or initial):
            on_update(
                WatchUpdate(update, loaded.skipped, paths, time.perf_counter() - started, initial)
            )

    base_filter = watchfiles.DefaultFilter()

    def relevant(change: Any, path: str) -> bool:
        # The index's own files change on every save: never a reason for another batch.
        return bool(base_filter(change, path)) and not _inside(Path(path).resolve(), index_root)

    def identity() -> tuple[int, int] | None:
        try:
            info = root.stat()
        except OSError:
            return None
        return (info.st_dev, info.st_ino)

    def try_apply(paths: tuple[str, ...]) -> None:
        try:
            apply(paths, False)
        except (RagkitError, OSError) as exc:
            logger.warning("watch: could not apply %d change(s): %s", len(paths), exc)

    first_round = True
    while True:
        # A watch follows the folder's inode: once the folder is removed (or replaced by
        # another of the same name) it sees nothing more, so it is set up again on the new one.
        watched = identity()
        batches = watchfiles.watch(
            root,
            watch_filter=relevant,
            debounce=debounce_ms,
            step=step_ms,
            stop_event=stop_event,
            rust_timeout=_TICK_MS,
            yield_on_timeout=True,
            raise_interrupt=True,
        )
        gone = False
        with closing(batches):
            # The watcher exists once the first batch (or tick) comes back; syncing after that
            # point leaves no gap in which a saved file goes unseen.
            try:
                first = next(batches, None)
            except OSError:  # removed again before the watch was set up
                first, gone = set(), True
            if first is None:
                return
            if not gone:
                if not first_round:
                    try_apply((str(root),))  # what happened while the folder was away
                elif initial_sync:
                    apply((), True)
                elif first:
                    apply(tuple(sorted({p for _, p in first})), False)
                first_round = False
                for changes in batches:
                    if stop_event is not None and stop_event.is_set():
                        break
                    # The folder's own deletion event also counts: a folder made again at
                    # once may get the same inode number back.
                    if identity() != watched or any(Path(p) == root for _, p in changes):
                        gone = True
                        break
                    if not changes:
                        continue
                    try_apply(tuple(sorted({p for _, p in changes})))
        if not gone:
            return
        logger.warning("watch: %s was removed or replaced; waiting for it to be back", root)
        while identity() is None:
            if stop_event is not None:
                if stop_event.wait(_TICK_MS / 1000):
                    return
            else:
                time.sleep(_TICK_MS / 1000)
