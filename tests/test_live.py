"""One real call to the Claude API: opt in with RAGKIT_LIVE_TESTS=1 and ANTHROPIC_API_KEY.

Skipped everywhere else (CI, this machine): no test needs the network by default. The key is
read at import, before the autouse fixture removes it from the environment.
"""

from __future__ import annotations

import os

import anthropic
import pytest

from ragkit.index import Index
from ragkit.types import Document

KEY = os.environ.get("ANTHROPIC_API_KEY", "")
LIVE = os.environ.get("RAGKIT_LIVE_TESTS") == "1" and bool(KEY)


@pytest.mark.network
@pytest.mark.skipif(not LIVE, reason="set RAGKIT_LIVE_TESTS=1 and ANTHROPIC_API_KEY to run")
def test_live_answer_cites_the_right_chunk() -> None:
    import ragkit

    index = Index(embedder=None)
    index.add(
        [
            Document(
                "cats.md", "# Cats\n\nThe office cat is named Biscuit and sleeps on the printer."
            ),
            Document("dogs.md", "# Dogs\n\nThe office dog is named Pixel and likes tennis balls."),
            Document("plants.md", "# Plants\n\nThe office fern is watered every Tuesday."),
        ]
    )
    client = anthropic.Anthropic(api_key=KEY)
    result = ragkit.answer(
        "What is the office cat called?", index, client=client, strategy="retrieve", gate=False
    )
    assert "Biscuit" in result.text
    assert "cats.md#0" in result.cited_chunk_ids
    unknown = ragkit.answer(
        "Who is the CEO?", index, client=client, strategy="retrieve", gate=False
    )
    assert unknown.abstained
