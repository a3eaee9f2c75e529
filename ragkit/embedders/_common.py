"""What every embedder shares: output validation, input checks, batch planning, thread counts.

``check_embeddings`` is the one place that validates what an embedder returned (ragkit's index
calls it on every embedder, built-in or third-party). ``plan_batches`` turns texts' token
lengths into length-sorted, token-bounded batches, so short texts are not padded to the longest
one in a random batch. ``cpu_threads`` is the number of cores this process may use.

This module leaves out every model, the registry and any network access.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ragkit.base import Embedder
from ragkit.errors import EmbeddingError, RagkitError

__all__ = [
    "check_embeddings",
    "check_query",
    "check_texts",
    "cpu_threads",
    "embed_checked",
    "plan_batches",
    "unit_rows",
]


def check_embeddings(vectors: object, *, n: int, dim: int | None = None) -> np.ndarray:
    """Validate an embedder's output and return it as a C-contiguous float32 matrix.

    Args:
        vectors: anything ``numpy.asarray`` accepts (an array, nested lists, a CPU tensor).
        n: the number of rows expected (the number of texts embedded).
        dim: the number of columns expected, or ``None`` to accept any positive width.

    Returns:
        The vectors as a ``(n, dim)`` C-contiguous float32 array (the input itself when it
        already is one).

    Raises:
        EmbeddingError: the vectors are not numeric, not 2-D, have the wrong number of rows or
            columns, or contain NaN or infinity (also after conversion to float32).

    Example:
        >>> check_embeddings([[1.0, 0.0]], n=1, dim=2).dtype
        dtype('float32')
    """
    try:
        arr = np.asarray(vectors)
    except (ValueError, TypeError) as exc:  # ragged nested lists, unconvertible objects
        raise EmbeddingError(f"embeddings are not a numeric matrix: {exc}") from exc
    if arr.dtype.kind not in "fiu":
        raise EmbeddingError(f"embeddings must be real numbers, got dtype {arr.dtype}")
    if n == 0 and arr.size == 0 and arr.ndim <= 2:
        width = dim if dim is not None else (arr.shape[1] if arr.ndim == 2 else 0)
        return np.zeros((0, width), dtype=np.float32)
    if arr.ndim != 2:
        raise EmbeddingError(
            f"embeddings must be a 2-D matrix (texts x dimensions), got shape {arr.shape}"
        )
    if arr.shape[0] != n:
        raise EmbeddingError(f"expected {n} embeddings (one per text), got {arr.shape[0]}")
    if dim is not None and arr.shape[1] != dim:
        raise EmbeddingError(
            f"expected embeddings of dimension {dim}, got {arr.shape[1]}: "
            "was the index built with another model?"
        )
    if arr.shape[1] == 0:
        raise EmbeddingError("embeddings have dimension 0")
    # Convert before the finiteness check: float64 values beyond float32's range become inf.
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise EmbeddingError(
            f"{bad.size} of {n} embeddings contain NaN or infinity (first: row {int(bad[0])})"
        )
    return out


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, refusing a lone string (a classic slip: it is a sequence too)."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, got a single str")
    batch = list(texts)
    for i, text in enumerate(batch):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}")
    return batch


def check_query(text: str) -> str:
    """``text`` when it is a string (an empty query is the index's business, not ours)."""
    if not isinstance(text, str):
        raise TypeError(f"query must be a str, got {type(text).__name__}")
    return text


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` (float32) with every row scaled to length 1; all-zero rows stay zero."""
    out = np.ascontiguousarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def plan_batches(lengths: Sequence[int], *, max_items: int, max_tokens: int) -> list[np.ndarray]:
    """Split texts into batches of similar length, bounded in items and in padded tokens.

    Texts are sorted by length (stable, so equal lengths keep their order) and cut into runs
    where ``items x longest <= max_tokens`` and ``items <= max_items``; a text longer than
    ``max_tokens`` gets a batch of its own. A padded model then computes on few pad tokens, and
    memory per batch stays bounded whatever the texts.

    Args:
        lengths: each text's length in tokens (after truncation).
        max_items: most texts per batch (>= 1).
        max_tokens: most padded tokens per batch (>= 1).

    Returns:
        Index arrays into ``lengths``; together they cover every index once.

    Example:
        >>> [b.tolist() for b in plan_batches([5, 1, 4, 1], max_items=8, max_tokens=8)]
        [[1, 3], [2], [0]]
    """
    if max_items < 1 or max_tokens < 1:
        raise ValueError(f"max_items ({max_items}) and max_tokens ({max_tokens}) must be >= 1")
    lens = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lens, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < order.size:
        end = start + 1
        # Sorted ascending, so the last text taken is the batch's longest.
        while (
            end < order.size
            and end - start < max_items
            and (end - start + 1) * int(lens[order[end]]) <= max_tokens
        ):
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def cpu_threads() -> int:
    """The number of CPU cores this process may run on (its affinity mask where known)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def embed_checked(
    embedder: Embedder, texts: Sequence[str], *, dim: int | None, query: bool = False
) -> np.ndarray:
    """Call any embedder (built-in or third-party) and validate what it returned.

    Documents come back as a ``(len(texts), dim)`` matrix; with ``query=True`` the one text is
    embedded as a query and returned as a ``(1, dim)`` matrix. A third-party embedder's own
    exception becomes an :class:`~ragkit.errors.EmbeddingError` naming the embedder.

    This is the one boundary every vector from an embedder crosses on its way into ragkit (the
    index, a standalone vector retriever, the embedding reranker): besides the checks of
    :func:`check_embeddings`, an all-zero vector is refused here, since its cosine with
    anything is undefined and such a chunk could never be found.

    Raises:
        EmbeddingError: the embedder failed, or returned vectors of the wrong shape, with NaN
            or infinity, or all zeros; the message names the embedder.
    """
    name = getattr(embedder, "name", type(embedder).__name__)
    try:
        raw = embedder.embed_query(texts[0]) if query else embedder.embed_documents(texts)
    except RagkitError:
        raise
    except Exception as exc:  # a third-party embedder's own failure
        raise EmbeddingError(f"embedder {name!r} failed: {exc}") from exc
    try:
        if query:
            raw = np.asarray(raw).reshape(1, -1)
        out = check_embeddings(raw, n=len(texts) if not query else 1, dim=dim)
    except (EmbeddingError, ValueError, TypeError) as exc:  # reshape of a ragged reply
        raise EmbeddingError(f"embedder {name!r} returned bad vectors: {exc}") from exc
    zero = ~np.any(out, axis=1)
    if zero.any():
        row = int(np.flatnonzero(zero)[0])
        what = "the query" if query else f"{int(zero.sum())} of {len(texts)} texts (first: {row})"
        raise EmbeddingError(
            f"embedder {name!r} returned an all-zero vector for {what}; a zero vector has no "
            "direction and would never match: check the embedder (or its input text)"
        )
    return out
