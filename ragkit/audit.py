"""An append-only JSON Lines audit trail of answers: who asked what, what was sent, what came back.

Each :meth:`AuditLog.log_answer` call appends one JSON object on one line: the UTC time, the
question, model, strategy, the retrieved chunk IDs with their scores and documents, the cited
chunk IDs, the abstained and complete flags, the stop reason, token usage and the estimated
cost. A line is written with a single ``os.write`` on a file descriptor opened with
``O_APPEND``, so lines from several threads (or processes) never interleave; a lock also
serialises writers in-process.

Secrets stay out: nothing from the client or environment is recorded, and any string that looks
like an Anthropic API key (``sk-ant-...``) or equals the key in the environment is redacted
before writing, even inside a question (:func:`redact_secrets`, also used for error messages).

This module leaves out reading, rotating and shipping logs, and it never imports ``anthropic``.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ragkit.types import Answer

__all__ = ["AuditLog", "answer_record", "redact_secrets"]

_KEY_PATTERN = re.compile(r"sk-ant-[A-Za-z0-9_\-]+")
_REDACTED = "[REDACTED]"
_KEY_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")


def redact_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with API keys replaced by ``[REDACTED]``.

    Redacts anything shaped like an Anthropic key (``sk-ant-...``), the values of
    ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_AUTH_TOKEN``, and each of ``secrets`` (a client's own
    key), whatever their shape. Values shorter than 8 characters are left alone (too likely to
    be ordinary words).

    Example:
        >>> redact_secrets("key sk-ant-api03-abc in a message")
        'key [REDACTED] in a message'
    """
    for secret in (*secrets, *(os.environ.get(name) for name in _KEY_VARIABLES)):
        if secret and len(secret) >= 8 and secret in text:
            text = text.replace(secret, _REDACTED)
    return _KEY_PATTERN.sub(_REDACTED, text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_secrets(value)
    if isinstance(value, Mapping):
        return {str(k): _redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v) for v in value]
    return value


def answer_record(question: str, answer: Answer, *, time: datetime | None = None) -> dict[str, Any]:
    """The audit record of one answer, as a JSON-ready dict (keys documented in docs/answering.md).

    Args:
        question: the question asked.
        answer: what :func:`ragkit.answer` returned.
        time: the time to record (default: now, UTC).
    """
    when = (time or datetime.now(timezone.utc)).astimezone(timezone.utc)
    usage = answer.usage
    return {
        "time": when.isoformat().replace("+00:00", "Z"),
        "question": question,
        "model": answer.model,
        "strategy": answer.strategy,
        "retrieved": [
            {
                "chunk_id": sc.chunk.id,
                "document_id": sc.chunk.document_id,
                "score": sc.score,
                "scores": dict(sc.scores),
            }
            for sc in answer.chunks
        ],
        "cited_chunk_ids": list(answer.cited_chunk_ids),
        "dropped_citations": answer.dropped_citations,
        "abstained": answer.abstained,
        "complete": answer.complete,
        "stop_reason": answer.stop_reason,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        },
        "cost_usd": usage.cost_usd,
    }


class AuditLog:
    """Appends one JSON object per line to ``path``; safe to share between threads.

    The file is created with mode 0600 (questions can be sensitive) and its parent folder with
    it. Each write opens, appends with one ``os.write`` and closes, so no descriptor is held
    between answers and a log rotated away is simply recreated.

    Example:
        >>> log = AuditLog("/tmp/ragkit-audit.jsonl")  # doctest: +SKIP
        >>> log.log_answer("What do cats eat?", answer)  # doctest: +SKIP
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def write(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` as one JSON line (API-key-like strings redacted).

        Raises:
            OSError: the file cannot be written, or the write was short (disk full).
            TypeError: the record holds a value JSON cannot encode.
        """
        line = json.dumps(
            _redact(record), ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
        data = (line + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            # O_NONBLOCK: opening a FIFO with no reader would otherwise block the answer forever.
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK
            fd = os.open(self.path, flags, 0o600)
            try:
                # One write call per line: with O_APPEND the kernel positions and writes it as
                # one unit, so concurrent writers never interleave inside a line.
                written = os.write(fd, data)
            finally:
                os.close(fd)
        if written != len(data):
            raise OSError(f"short write to audit log {self.path}: {written} of {len(data)} bytes")

    def log_answer(self, question: str, answer: Answer) -> None:
        """Append the audit record of ``answer`` (see :func:`answer_record`)."""
        self.write(answer_record(question, answer))
