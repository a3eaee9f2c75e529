"""Deprecated module path (kept for one release): ``ragkit.context`` became three modules.

Token counting is :mod:`ragkit.tokens`, the evidence gate :mod:`ragkit.gate`, and passages,
packing, :class:`~ragkit.plan.AnswerOptions` and :func:`~ragkit.plan.retrieve_context`
:mod:`ragkit.plan`. Every name this module had is re-exported here unchanged.
"""

from __future__ import annotations

import warnings

from ragkit.gate import (
    DEFAULT_GATE,
    MIN_COSINE,
    MIN_COVERAGE,
    EvidenceGate,
    GateCalibration,
    GateVerdict,
    calibrate_gate,
    default_gate,
    query_coverage,
)
from ragkit.plan import (
    BLOCK_OVERHEAD_TOKENS,
    CREDENTIAL_VARIABLES,
    DEFAULT_BUDGET_TOKENS,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
    MERGE_GAP_CHARS,
    AnswerOptions,
    ContextPlan,
    Passage,
    Segment,
    chunk_label,
    corpus_passages,
    estimate_passage_tokens,
    has_credentials,
    merge_passages,
    pack,
    resolve_request,
    retrieve_context,
)
from ragkit.tokens import count_tokens

warnings.warn(
    "ragkit.context is deprecated: import from ragkit.plan, ragkit.gate or ragkit.tokens",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "BLOCK_OVERHEAD_TOKENS",
    "CREDENTIAL_VARIABLES",
    "DEFAULT_BUDGET_TOKENS",
    "DEFAULT_GATE",
    "DEFAULT_MODEL",
    "DEFAULT_TIMEOUT",
    "MERGE_GAP_CHARS",
    "MIN_COSINE",
    "MIN_COVERAGE",
    "AnswerOptions",
    "ContextPlan",
    "EvidenceGate",
    "GateCalibration",
    "GateVerdict",
    "Passage",
    "Segment",
    "calibrate_gate",
    "chunk_label",
    "corpus_passages",
    "count_tokens",
    "default_gate",
    "estimate_passage_tokens",
    "has_credentials",
    "merge_passages",
    "pack",
    "query_coverage",
    "resolve_request",
    "retrieve_context",
]
