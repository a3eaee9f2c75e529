"""Import cost: ``import ragkit`` loads no loader, index, evaluation or Claude SDK module until a
name that needs one is used (a fresh ``ragkit search`` process pays only for what it runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("ragkit.loaders", "ragkit.index", "ragkit.evaluation", "ragkit.answering", "anthropic")


def loaded_after(code: str, cwd: Path | None = None) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=cwd
    ).stdout
    return set(out.split())


def test_import_ragkit_loads_no_heavy_module() -> None:
    loaded = loaded_after("import ragkit")
    assert not loaded & set(HEAVY)


def test_public_names_load_on_first_use() -> None:
    import ragkit

    assert ragkit.Index.__module__ == "ragkit.index"
    assert ragkit.load_folder.__module__.startswith("ragkit.loaders")
    assert set(ragkit.__all__) <= set(dir(ragkit))
    loaded = loaded_after("import ragkit\nragkit.open_index")
    assert "ragkit.index" in loaded
    assert "anthropic" not in loaded


# What a search never needs: the loaders (docx, pdf, html, the folder walk, YAML front matter),
# the Claude SDK, answering and evaluation, the onnx package (it only rewrites the graph once),
# the hosted and torch embedders, the chunker and the token counter (tiktoken), numpy.ma
# (np.unique imports it: ~20 ms of a process's start), the other commands' modules and what
# only they use (the answer plan and the evidence gate), and zipfile (the index's arrays are
# read from the verified bytes directly).
SEARCH_NEVER = (
    "ragkit.cli_measure",
    "ragkit.plan",
    "ragkit.gate",
    "zipfile",
    "ragkit.chunking",
    "tiktoken",
    "numpy.ma",
    "ragkit.loaders.docx",
    "ragkit.loaders.pdf",
    "ragkit.loaders.html",
    "ragkit.loaders.folder",
    "yaml",
    "anthropic",
    "ragkit.answering",
    "ragkit.evaluation",
    "onnx",
    "ragkit.embedders._http",
    "ragkit.embedders.st",
)


def test_a_search_process_imports_no_loader_or_sdk(tmp_path: Path) -> None:
    import ragkit
    from ragkit.types import Document

    index = ragkit.Index(embedder=None)
    index.add([Document("a", "BM25 ranks chunks by term weights. " * 5, {"path": "a.md"})])
    index.add([Document("b", "Vectors rank chunks by cosine similarity. " * 5, {"path": "b.md"})])
    index.add([Document("c", "Fusion merges both rankings into one. " * 5, {"path": "c.md"})])
    index.save(tmp_path / "index")
    loaded = loaded_after(
        "from ragkit.cli import cli\n"
        f"cli.main(['search', 'cosine', '--index', {str(tmp_path / 'index')!r}], "
        "standalone_mode=False)"
    )
    assert "ragkit.stores.memory" in loaded  # the search ran
    assert not loaded & set(SEARCH_NEVER)


# A keyword search needs no embedder, even on an index built with one; a pyproject.toml without
# ragkit settings is not parsed.
BM25_SEARCH_NEVER = (*SEARCH_NEVER, "onnxruntime", "tokenizers", "tomllib")


def test_a_bm25_search_of_an_index_with_vectors_loads_no_embedder_runtime(tmp_path: Path) -> None:
    import ragkit
    from ragkit.embedders import MINILM_NAME, minilm_available
    from ragkit.types import Document

    from .conftest import FakeEmbedder

    index = ragkit.Index(embedder=FakeEmbedder(dim=384, name=MINILM_NAME))
    for doc_id in "abc":
        index.add([Document(doc_id, f"Chunk {doc_id} about cosine and BM25. " * 5, {})])
    index.save(tmp_path / "index")
    search = (
        "from ragkit.cli import cli\n"
        f"cli.main(['search', 'cosine', '--index', {str(tmp_path / 'index')!r}, '--mode', "
        "'{mode}'], standalone_mode=False)"
    )
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\n\n[tool.ruff]\n')
    loaded = loaded_after(search.format(mode="bm25"), cwd=tmp_path)
    assert "ragkit.stores.memory" in loaded  # the search ran
    assert not loaded & set(BM25_SEARCH_NEVER)
    if minilm_available():  # the same search by vector does load them: the check above can fail
        assert {"onnxruntime", "tokenizers"} <= loaded_after(search.format(mode="vector"))
