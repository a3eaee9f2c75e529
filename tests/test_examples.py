"""The examples run offline, end to end, with the real local embedder and no API key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_ask_from_code_example_shows_cited_chunk_ids_without_a_key() -> None:
    result = _run("ask_from_code.py", "How are BM25 and vector rankings fused?")
    assert result.returncode == 0, result.stderr
    assert "ANTHROPIC_API_KEY is not set" in result.stdout
    assert ".md#" in result.stdout


@pytest.mark.slow
def test_custom_retriever_example_fuses_a_subclass() -> None:
    result = _run("custom_retriever.py", "chunk size")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if ".md#" in line]
    assert lines
    assert "heading-boost=" in lines[0]
