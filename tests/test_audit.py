"""ragkit.audit: one JSON object per line, atomic appends from many threads, no secrets."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

from ragkit.audit import AuditLog, answer_record
from ragkit.types import Answer, Chunk, Citation, ScoredChunk, Usage

CHUNK = Chunk("a.md#0", "Alpha text.", "a.md", 0, 11)


def make_answer(**kw) -> Answer:
    base = dict(
        text="Alpha.",
        citations=(Citation("a.md#0", "Alpha text."),),
        chunks=(ScoredChunk(CHUNK, 0.5, {"bm25": 3.2, "vector": 0.61}),),
        model="claude-haiku-4-5",
        stop_reason="end_turn",
        usage=Usage(100, 10, 0, 0, 0.00015),
    )
    return Answer(**(base | kw))


def test_record_has_the_documented_fields() -> None:
    when = datetime(2025, 11, 1, 12, 0, tzinfo=timezone.utc)
    rec = answer_record("What is alpha?", make_answer(), time=when)
    assert rec["time"] == "2025-11-01T12:00:00Z"
    assert rec["question"] == "What is alpha?"
    assert rec["model"] == "claude-haiku-4-5"
    assert rec["strategy"] == "retrieve"
    assert rec["retrieved"] == [
        {
            "chunk_id": "a.md#0",
            "document_id": "a.md",
            "score": 0.5,
            "scores": {"bm25": 3.2, "vector": 0.61},
        }
    ]
    assert rec["cited_chunk_ids"] == ["a.md#0"]
    assert rec["abstained"] is False
    assert rec["usage"]["input_tokens"] == 100
    assert rec["cost_usd"] == 0.00015


def test_log_appends_lines(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "sub" / "audit.jsonl")
    log.log_answer("q1", make_answer())
    log.log_answer("q2", make_answer(abstained=True, strategy="none"))
    lines = log.path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["question"] for x in lines] == ["q1", "q2"]
    assert (log.path.stat().st_mode & 0o777) == 0o600


def test_an_audit_fifo_without_a_reader_is_an_error_not_a_hang(tmp_path: Path) -> None:
    # Found by an outside probe: `ragkit ask --audit some.fifo` blocked forever in open()
    # waiting for a reader; the answer is now reported as not recorded instead.
    import os

    import pytest

    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    log = AuditLog(fifo)
    with pytest.raises(OSError, match="No such device or address"):
        log.log_answer("q", make_answer())
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # with a reader, the line goes through
    try:
        log.log_answer("q2", make_answer())
        assert json.loads(os.read(reader, 1 << 16).decode().splitlines()[0])["question"] == "q2"
    finally:
        os.close(reader)


def test_api_key_like_strings_are_redacted(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    secret = "sk-ant-api03-AbCdEf_123-xyz"
    log.log_answer(f"my key is {secret}, why does it fail?", make_answer())
    text = log.path.read_text()
    assert secret not in text
    assert "[REDACTED]" in text


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    long_question = "why " * 3000  # ~12 kB per line, larger than a pipe buffer
    per_thread, threads = 25, 6

    def work(n: int) -> None:
        for i in range(per_thread):
            log.log_answer(f"{n}-{i} {long_question}", make_answer())

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    lines = log.path.read_text().splitlines()
    assert len(lines) == per_thread * threads
    seen = {json.loads(line)["question"].split(" ", 1)[0] for line in lines}
    assert len(seen) == per_thread * threads
