"""Tests of ragkit.embedders: validation, batching, the registry and the local embedders."""

from __future__ import annotations

import builtins
import importlib.metadata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragkit.embedders import (
    MINILM_NAME,
    MINILM_V1_NAME,
    MINILM_V3_NAME,
    Embedder,
    MiniLMEmbedder,
    SentenceTransformerEmbedder,
    available_embedders,
    check_embeddings,
    default_embedder,
    embedder_families,
    gate_threshold,
    get_embedder,
    minilm_available,
    plan_batches,
    register_embedder,
    registry,
)
from ragkit.embedders import minilm as minilm_module
from ragkit.embedders.st import st_available
from ragkit.errors import EmbeddingError, MissingDependencyError, UnknownNameError

needs_local = pytest.mark.skipif(not minilm_available(), reason="extra 'local' not installed")


class _Fake:
    name = "fake/4"
    dim = 4
    batch_size = 8
    max_input_tokens = 16

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.ones((len(texts), 4), dtype=np.float32) / 2

    def embed_query(self, text: str) -> np.ndarray:
        return np.ones(4, dtype=np.float32) / 2


# -- check_embeddings --------------------------------------------------------------------------


def test_check_embeddings_converts_to_contiguous_float32() -> None:
    data = np.arange(12, dtype=np.float64).reshape(4, 3)[:, ::-1]
    out = check_embeddings(data, n=4, dim=3)
    assert out.dtype == np.float32
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, data.astype(np.float32))


def test_check_embeddings_accepts_nested_lists_and_any_width() -> None:
    out = check_embeddings([[1, 2], [3, 4]], n=2)
    assert out.shape == (2, 2)
    assert out.dtype == np.float32


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


# -- batching ----------------------------------------------------------------------------------


def test_plan_batches_sorts_by_length_and_bounds_padded_tokens() -> None:
    lengths = [30, 5, 12, 5, 200, 7, 30, 11]
    batches = plan_batches(lengths, max_items=3, max_tokens=64)
    covered = np.concatenate(batches)
    assert sorted(covered.tolist()) == list(range(len(lengths)))  # every text exactly once
    longest = [max(lengths[i] for i in b) for b in batches]
    assert longest == sorted(longest)  # short texts first
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 64
    assert [b.tolist() for b in batches if 4 in b] == [[4]]  # too long: a batch of its own


def test_plan_batches_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="max_items"):
        plan_batches([1], max_items=0, max_tokens=10)


# -- protocol and registry ---------------------------------------------------------------------


def test_embedder_protocol_is_structural() -> None:
    assert isinstance(_Fake(), Embedder)
    assert isinstance(MiniLMEmbedder(), Embedder)
    assert isinstance(SentenceTransformerEmbedder(), Embedder)
    assert not isinstance(object(), Embedder)


def test_builtin_names_carry_model_and_dimension() -> None:
    assert MiniLMEmbedder().name == MINILM_NAME == "minilm-l6-v2-int8/v2/384"
    # Other graph versions have their own names: their vectors differ, so their indexes never
    # get the default's.
    assert MiniLMEmbedder(version=3).name == MINILM_V3_NAME == "minilm-l6-v2-int8/v3/384"
    assert MiniLMEmbedder(version=1).name == MINILM_V1_NAME == "minilm-l6-v2-int8/384"
    with pytest.raises(ValueError, match=r"version \(4\) must be 1, 2 or 3"):
        MiniLMEmbedder(version=4)
    st = SentenceTransformerEmbedder()
    assert st.name == "sentence-transformers/all-MiniLM-L6-v2/384"
    assert st.name != MINILM_NAME  # two backends' vectors never share an index


def test_families_include_the_builtins() -> None:
    assert {"minilm-l6-v2-int8", "sentence-transformers", "voyage", "openai"} <= set(
        available_embedders()
    )


def test_embedder_families_is_a_deprecated_name_of_available_embedders() -> None:
    with pytest.warns(DeprecationWarning, match=r"embedder_families\(\) is deprecated"):
        assert embedder_families() == available_embedders()


def test_unknown_name_lists_the_known_families() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown embedder 'nope/1'.*minilm-l6-v2-int8"):
        get_embedder("nope/1")
    with pytest.raises(ValueError, match="unknown embedder"):  # what callers caught before
        get_embedder("nope/1")


def test_get_embedder_rejects_a_non_string() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        get_embedder(3)  # type: ignore[arg-type]


@needs_local
def test_get_embedder_resolves_the_default_by_name_and_family() -> None:
    assert get_embedder(MINILM_NAME).name == MINILM_NAME
    assert get_embedder("minilm-l6-v2-int8").name == MINILM_NAME
    assert get_embedder("minilm-l6-v2-int8").version == 2
    # The names indexes built with other graph versions carry reopen them with those versions.
    for name, version in ((MINILM_V3_NAME, 3), (MINILM_V1_NAME, 1)):
        old = get_embedder(name)
        assert isinstance(old, MiniLMEmbedder)
        assert (old.name, old.version) == (name, version)
        assert gate_threshold(name) == gate_threshold(MINILM_NAME)


def test_get_embedder_refuses_another_dimension_of_minilm() -> None:
    with pytest.raises(ValueError, match="384"):
        get_embedder("minilm-l6-v2-int8/768")


def test_missing_local_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minilm_module, "minilm_available", lambda: False)
    with pytest.raises(
        MissingDependencyError, match=r"pip install 'ragkit-claude\[local\]'"
    ) as info:
        get_embedder(MINILM_NAME)
    assert isinstance(info.value, ImportError)  # catchable as the builtin too
    monkeypatch.setattr(registry, "minilm_available", lambda: False)
    assert default_embedder() is None


def test_missing_st_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ragkit.embedders.st.st_available", lambda model="": False)
    with pytest.raises(MissingDependencyError, match=r"pip install 'ragkit-claude\[st\]'"):
        get_embedder("sentence-transformers/all-MiniLM-L6-v2/384")


def test_st_names_parse_model_with_slashes_and_dimension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ragkit.embedders.st.st_available", lambda model="": True)
    emb = get_embedder("sentence-transformers/BAAI/bge-small-en-v1.5/384")
    assert isinstance(emb, SentenceTransformerEmbedder)
    assert (emb.model, emb.dim, emb.name) == (
        "BAAI/bge-small-en-v1.5",
        384,
        "sentence-transformers/BAAI/bge-small-en-v1.5/384",
    )
    # The name ragkit 0.1 stored reopens the same bundled model.
    assert get_embedder("sentence-transformers/all-MiniLM-L6-v2").name.endswith("/384")


def test_third_party_entry_point_is_found(plugins: dict[str, list[Any]]) -> None:
    plugins[registry.ENTRY_POINT_GROUP] = [
        importlib.metadata.EntryPoint(
            name="fake", value="tests.test_embedders:_make_fake", group=registry.ENTRY_POINT_GROUP
        )
    ]
    assert "fake" in available_embedders()
    assert get_embedder("fake/4").name == "fake/4"


def test_precedence_is_registered_then_builtin_then_entry_point(
    plugins: dict[str, list[Any]],
) -> None:
    plugins[registry.ENTRY_POINT_GROUP] = [
        importlib.metadata.EntryPoint(
            name="openai", value="tests.test_embedders:_make_any", group=registry.ENTRY_POINT_GROUP
        )
    ]
    registry.EMBEDDERS.reload()
    # installing a package never changes what a built-in family means
    assert registry.EMBEDDERS.source("openai") == "built-in"
    with pytest.raises(ValueError, match=r"embedder 'openai' is already provided \(built-in\)"):
        register_embedder("openai", lambda rest: _Fake())
    register_embedder("openai", lambda rest: _Fake(), replace=True)
    assert registry.EMBEDDERS.source("openai") == "registered"
    assert get_embedder("openai/x").name == "fake/4"
    registry.EMBEDDERS.unregister("openai")
    assert registry.EMBEDDERS.source("openai") == "built-in"
    plugins[registry.ENTRY_POINT_GROUP] = []
    registry.EMBEDDERS.reload()
    assert registry.EMBEDDERS.source("openai") == "built-in"


def _make_any(spec: str) -> _Fake:
    return _Fake()


def _make_fake(spec: str) -> _Fake:
    assert spec == "4"
    return _Fake()


def test_default_embedder_is_the_onnx_minilm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "minilm_available", lambda: True)
    found = default_embedder()
    assert isinstance(found, MiniLMEmbedder)
    assert found.name == MINILM_NAME


def test_gate_threshold_per_embedder() -> None:
    assert gate_threshold(MINILM_NAME) is not None
    assert gate_threshold("openai/text-embedding-3-small/1536") is None  # not calibrated

    class Own(_Fake):
        gate_min_cosine = 0.42

    assert gate_threshold(Own()) == 0.42
    assert gate_threshold(_Fake()) is None


# -- the MiniLM embedder without its model -----------------------------------------------------


def test_empty_batch_loads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = MiniLMEmbedder()

    def fail() -> None:
        raise AssertionError("model loaded")

    monkeypatch.setattr(embedder, "_load", fail)
    out = embedder.embed_documents([])
    assert out.shape == (0, 384)
    assert out.dtype == np.float32


def test_rejects_a_single_string_and_non_strings() -> None:
    with pytest.raises(TypeError, match="single str"):
        MiniLMEmbedder().embed_documents("just one text")
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        MiniLMEmbedder().embed_documents(["a", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="query must be a str"):
        MiniLMEmbedder().embed_query(["a"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs", [{"batch_size": 0}, {"threads": 0}, {"threads": True}, {"version": 4}]
)
def test_rejects_bad_settings(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        MiniLMEmbedder(**kwargs)


def _block_import(monkeypatch: pytest.MonkeyPatch, blocked: str) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] == blocked:
            raise ModuleNotFoundError(f"No module named {blocked!r}", name=blocked)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_missing_runtime_at_first_call_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _block_import(monkeypatch, "onnxruntime")
    with pytest.raises(MissingDependencyError, match=r"ragkit-claude\[local\].*onnxruntime"):
        MiniLMEmbedder().embed_documents(["hello"])


def test_runtime_failure_becomes_embedding_error() -> None:
    class Broken:
        def run(self, *args: object, **kwargs: object) -> object:
            raise RuntimeError("out of memory")

    embedder = MiniLMEmbedder()
    with pytest.raises(EmbeddingError, match="out of memory") as info:
        embedder._run(Broken(), [101, 102])
    assert isinstance(info.value.__cause__, RuntimeError)


def test_wrong_model_checksum_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(minilm_module, "_MODEL_SHA256", "0" * 64)
    if not minilm_available():
        pytest.skip("extra 'local' not installed")
    with pytest.raises(EmbeddingError, match="sha256.*reinstall"):
        minilm_module._prepared_model()


# -- the real models ---------------------------------------------------------------------------

_TEXTS = [
    "The cat sat on the mat.",
    "A cat was sitting on the rug.",
    "Quarterly revenue rose because of strong bond trading.",
]


@needs_local
def test_minilm_real_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(tmp_path))
    embedder = MiniLMEmbedder(threads=2)
    vectors = embedder.embed_documents(_TEXTS + ["word " * 600])  # the last one is truncated
    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    # A text's vector does not depend on the call: alone, as a query, or among others.
    np.testing.assert_array_equal(embedder.embed_query(_TEXTS[0]), vectors[0])
    np.testing.assert_array_equal(embedder.embed_documents(_TEXTS[::-1])[::-1], vectors[:3])
    # The rewritten graph and its optimised form were cached, and a new embedder loads them
    # with the same result.
    assert sorted(p.suffix or "dir" for p in tmp_path.iterdir()) == [".onnx", "dir"]
    np.testing.assert_array_equal(MiniLMEmbedder(threads=1).embed_documents(_TEXTS), vectors[:3])


@needs_local
@pytest.mark.parametrize("version", [2, 3])
def test_minilm_vector_is_independent_of_its_batch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: int
) -> None:
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(17)
    words = "cells protein receptor bone glucocorticoid signal tumour growth the of and".split()
    texts = [" ".join(rng.choice(words, size=n)) for n in (1, 3, 12, 40, 90, 170, 300, 700)]
    embedder = MiniLMEmbedder(threads=2, version=version)
    together = embedder.embed_documents(texts)
    alone = np.stack(
        [MiniLMEmbedder(threads=1, version=version).embed_documents([t])[0] for t in texts]
    )
    np.testing.assert_array_equal(together, alone)
    order = rng.permutation(len(texts))
    for batch in np.array_split(order, 3):  # other batch-mates, other order, other sizes
        np.testing.assert_array_equal(
            embedder.embed_documents([texts[i] for i in batch]), alone[batch]
        )
    np.testing.assert_array_equal(np.stack([embedder.embed_query(t) for t in texts]), alone)


@needs_local
@pytest.mark.parametrize("version", [1, 3])
def test_minilm_index_of_another_graph_version_reopens_with_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: int
) -> None:
    from ragkit.errors import SettingsMismatchError
    from ragkit.index import Index
    from ragkit.types import Document

    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(tmp_path / "cache"))
    old, new = MiniLMEmbedder(version=version), MiniLMEmbedder()
    built = old.embed_documents(_TEXTS)
    # The two graphs embed alike, but not identically: never in one index.
    assert ((built * new.embed_documents(_TEXTS)).sum(axis=1) > 0.99).all()
    assert not np.array_equal(built, new.embed_documents(_TEXTS))
    index = Index(embedder=old)
    index.add([Document(f"d{i}", text) for i, text in enumerate(_TEXTS)])
    index.save(tmp_path / "idx")
    reopened = Index.load(tmp_path / "idx")
    assert reopened.embedder is not None
    assert reopened.embedder.name == old.name
    # Reopened with its own graph: a text embeds exactly as when the index was built.
    np.testing.assert_array_equal(reopened.embedder.embed_documents(_TEXTS), built)
    assert reopened.search("a cat on a rug", k=1, mode="vector")[0].chunk.document_id == "d1"
    with pytest.raises(SettingsMismatchError, match=f"built with embedder '{old.name}'"):
        Index.load(tmp_path / "idx", embedder=new)


@needs_local
def test_minilm_graph_version_3_fuses_each_attention_core(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import onnx

    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(tmp_path))

    def graph_of(version: int) -> bytes:
        model = minilm_module._prepared_model(version)
        return model if isinstance(model, bytes) else Path(model).read_bytes()

    graph = onnx.load_from_string(graph_of(3)).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("MultiHeadAttention") == 6
    assert "Softmax" not in ops  # the per-head copies are gone with the unfused core
    assert "Transpose" not in ops
    # A graph of another shape (version 1 adds a mask before each softmax) is refused.
    with pytest.raises(EmbeddingError, match=r"0 attention cores found, 6 expected"):
        minilm_module._rewrite_v3(graph_of(1))


@pytest.mark.slow
@pytest.mark.skipif(not (st_available() and minilm_available()), reason="needs 'st' and 'local'")
def test_minilm_int8_agrees_with_torch() -> None:
    ours = MiniLMEmbedder().embed_documents(_TEXTS)
    torch = SentenceTransformerEmbedder().embed_documents(_TEXTS)
    assert ((ours * torch).sum(axis=1) > 0.98).all()


@needs_local
def test_minilm_optimised_graph_is_cached_and_reused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(tmp_path))
    first = MiniLMEmbedder(threads=1).embed_documents(_TEXTS)
    (folder,) = tmp_path.glob("*-opt-*")
    assert {p.name for p in folder.iterdir()} == {"model.onnx", "weights.data", "manifest.json"}

    # A second start loads the saved graph: it neither rewrites nor optimises.
    def refuse() -> None:
        raise AssertionError("the cached graph was not used")

    monkeypatch.setattr(minilm_module, "_prepared_model", refuse)
    np.testing.assert_array_equal(MiniLMEmbedder(threads=1).embed_documents(_TEXTS), first)


@needs_local
@pytest.mark.parametrize("damage", ["weights", "graph", "manifest", "truncated", "missing"])
def test_minilm_damaged_graph_cache_is_rebuilt(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(tmp_path))
    first = MiniLMEmbedder(threads=1).embed_documents(_TEXTS)
    (folder,) = tmp_path.glob("*-opt-*")
    if damage == "weights":  # same size, other bytes: only the probe run can see it
        path = folder / "weights.data"
        data = bytearray(path.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 4096] = bytes(4096)
        data[-200_000:-190_000] = b"\x7f" * 10_000
        path.write_bytes(bytes(data))
    elif damage == "graph":
        path = folder / "model.onnx"
        path.write_bytes(b"\0" * path.stat().st_size)
    elif damage == "manifest":
        (folder / "manifest.json").write_text("{not json")
    elif damage == "truncated":
        path = folder / "weights.data"
        path.write_bytes(path.read_bytes()[:1000])
    else:
        (folder / "weights.data").unlink()
    with caplog.at_level("WARNING", logger="ragkit.embedders.minilm"):
        again = MiniLMEmbedder(threads=1).embed_documents(_TEXTS)
    np.testing.assert_array_equal(again, first)
    assert "damaged" in caplog.text
    # Rebuilt: the next start finds a sound cache again, and says nothing.
    caplog.clear()
    with caplog.at_level("WARNING", logger="ragkit.embedders.minilm"):
        np.testing.assert_array_equal(MiniLMEmbedder(threads=1).embed_documents(_TEXTS), first)
    assert "damaged" not in caplog.text


@needs_local
def test_minilm_runs_when_the_cache_cannot_be_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(blocked / "cache"))
    vectors = MiniLMEmbedder(threads=1).embed_documents(_TEXTS)
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(tmp_path / "cache"))
    np.testing.assert_array_equal(MiniLMEmbedder(threads=1).embed_documents(_TEXTS), vectors)
