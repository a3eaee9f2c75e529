"""Use ragkit from application code: index a folder, then answer a question with citations.

Run from the project root (no API key needed to see the retrieval half):

    .venv/bin/python examples/ask_from_code.py "How are BM25 and vector rankings fused?"

With ANTHROPIC_API_KEY set, Claude answers from the retrieved chunks and cites them; without it,
the script shows the chunks that would have been sent.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import ragkit

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    question = " ".join(sys.argv[1:]) or "How does ragkit decide not to answer?"
    # Incremental: the second run re-embeds nothing unless docs/ changed.
    index = ragkit.index_folder(ROOT / "docs", ROOT / ".ragkit" / "example-index")
    print(f"{index!r}")

    if not os.environ.get("ANTHROPIC_API_KEY"):
        print("ANTHROPIC_API_KEY is not set; the chunks that would be sent:")
        for hit in index.search(question, k=4):
            print(f"  {hit.chunk.id:<32} {hit.score:.4f}  {hit.chunk.text[:70]!r}")
        return 0

    try:
        result = ragkit.answer(ragkit.Query(question, k=4), index)
    except ragkit.AnswerError as exc:
        print(f"Claude call failed (status {exc.status_code}, request {exc.request_id}): {exc}")
        return 1
    print(result.text)
    if result.abstained:
        print("(the documents do not contain the answer)")
    for citation in result.citations:
        print(f"  [{citation.chunk_id}] {citation.cited_text[:80]!r}")
    print(f"cost ≈ ${result.usage.cost_usd or 0:.5f}, strategy {result.strategy}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
