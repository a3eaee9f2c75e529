"""`make demo` shows a useful result: its two queries, over the repository's own docs/, with the
real offline embedder, retrieve the sections that answer them within the `-k` the Makefile uses.

The Makefile is read, not copied, so a change of the demo's questions or `-k` is tested as is.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import ragkit
from ragkit.embedders import local_embedder_available

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not local_embedder_available(), reason="needs the 'local' extra"),
]

# What answers each demo question: (document, a heading on the chunk's path).
ANSWERS = {
    "search": {("fusion", None), ("how-it-works.md", "Why hybrid")},
    "ask": {("answering.md", "The evidence gate"), ("answering.md", "Abstention")},
}


def _demo_commands() -> dict[str, tuple[str, int]]:
    """The demo's `ragkit search|ask QUESTION ... -k N` lines from the Makefile."""
    block = re.search(r"^demo:.*?\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert block, "no demo target in the Makefile"
    found: dict[str, tuple[str, int]] = {}
    for line in block.group(1).splitlines():
        words = shlex.split(line.strip())
        if len(words) > 2 and words[1] in ("search", "ask"):
            found[words[1]] = (words[2], int(words[words.index("-k") + 1]))
    return found


def _answers(hit: ragkit.ScoredChunk, wanted: set[tuple[str, str | None]]) -> bool:
    chunk = hit.chunk
    return any(
        doc in chunk.document_id and (heading is None or heading in chunk.headings)
        for doc, heading in wanted
    )


@pytest.fixture(scope="module")
def docs_index(tmp_path_factory: pytest.TempPathFactory) -> ragkit.Index:
    return ragkit.index_folder(ROOT / "docs", tmp_path_factory.mktemp("demo") / "idx")


@pytest.mark.parametrize("command", ["search", "ask"])
def test_demo_question_retrieves_its_answer_within_k(
    docs_index: ragkit.Index, command: str
) -> None:
    question, k = _demo_commands()[command]
    hits = docs_index.search(question, k=k)
    assert len(hits) == k
    assert any(_answers(hit, ANSWERS[command]) for hit in hits), [h.chunk.id for h in hits]
