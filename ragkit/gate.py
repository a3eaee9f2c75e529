"""The evidence gate: stop the Claude call when retrieval found nothing related to the question.

:class:`EvidenceGate` judges the retrieved chunks by the best embedding cosine (when the
retriever declares cosine scores) and by the idf-weighted share of the question's content terms
found in one chunk; :func:`default_gate` gives the calibrated thresholds for an index's
embedder, and :func:`calibrate_gate` measures pass and stop rates on your own questions.

This module leaves out retrieval and packing (``ragkit.plan``) and the call (``ragkit.answering``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

import Stemmer

from ragkit.base import Corpus, Query, Retriever
from ragkit.types import Chunk, ScoredChunk

__all__ = [
    "DEFAULT_GATE",
    "MIN_COSINE",
    "MIN_COVERAGE",
    "EvidenceGate",
    "GateCalibration",
    "GateVerdict",
    "calibrate_gate",
    "default_gate",
    "query_coverage",
]

# Gate thresholds: calibrated on SciFact train queries by bench/calibrate_gate.py (see
# docs/answering.md for the table of pass/stop rates and the exact figures behind them).
MIN_COSINE = 0.35
"""The best chunk's embedding cosine at or above which retrieval counts as evidence.

SciFact train, hybrid index (all-MiniLM-L6-v2 + BM25), k=5: 98.6% of the 809 judged train
queries pass, 96.8% of the 62 unrelated questions are stopped (0.30: 99.8% / 82.3%;
0.40: 97.0% / 100%)."""

MIN_COVERAGE = 0.34
"""The idf-weighted share of the question's content terms (stemmed) found in one of the top
chunks at or above which retrieval counts as evidence; used when the index has no vectors.

SciFact train, keyword-only index, k=5, terms weighted by idf: 94.4% of train queries pass,
67.7% of unrelated questions are stopped (unweighted: 95.5% / 54.8%). A weaker signal than
the cosine (claims paraphrase their abstracts), so the default gate prefers the cosine whenever
there is one."""


# -- the evidence gate ---------------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves""".split()
)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    return Stemmer.Stemmer("english")


def _terms(text: str, analyzer: Callable[[str], list[str]] | None = None) -> set[str]:
    """The content terms of ``text``: question words dropped, then analysed.

    With the index's analyzer the terms are exactly those the keyword index holds; without it,
    lower-cased words stemmed by Snowball English.
    """
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1]
    if analyzer is not None:
        return set(analyzer(" ".join(words)))
    return set(_stemmer().stemWords(words))


IdfFn = Callable[[Sequence[str]], Sequence[float]]
"""Maps stemmed terms to their idf in the index (``Index.keyword_idf``)."""


def query_coverage(
    question: str,
    chunks: Iterable[Chunk],
    *,
    idf: IdfFn | None = None,
    analyzer: Callable[[str], list[str]] | None = None,
) -> float | None:
    """The largest share of the question's content terms that one chunk contains (0..1).

    Terms are lower-cased, stop words dropped and Snowball-stemmed (PyStemmer), so "mice" and
    "mouse" differ but "studies" and "study" match. With ``idf`` each term counts by its idf in
    the index, so matching "salmon" weighs more than matching "well", and a term the corpus never
    uses (the highest idf) pulls the coverage down. With ``analyzer`` (the index's) question and
    chunks are analysed exactly as the keyword index analyses them. ``None`` when the question
    has no content terms. Unlike a raw BM25 score it is comparable across questions.

    Example:
        >>> query_coverage("what do cats eat", [Chunk("c#0", "A cat eats fish.", "c", 0, 16)])
        1.0
    """
    wanted = sorted(_terms(question, analyzer))
    if not wanted:
        return None
    weights = [float(w) for w in idf(wanted)] if idf is not None else [1.0] * len(wanted)
    total = sum(weights)
    if total <= 0:
        return None
    best = 0.0
    for chunk in chunks:
        have = set(analyzer(chunk.text)) if analyzer is not None else _terms(chunk.text)
        best = max(best, sum(w for t, w in zip(wanted, weights, strict=True) if t in have) / total)
    return best


_NOTHING_RETRIEVED = (
    "Retrieval returned nothing: no chunk matches the question, or the index is empty."
)


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """What the evidence gate saw and decided.

    Attributes:
        passed: true when the call may go ahead.
        reason: one sentence for the user (why it passed or stopped).
        top_cosine: the best vector cosine among the retrieved chunks (``None`` without vectors).
        coverage: :func:`query_coverage` of the retrieved chunks (``None`` without content terms).
    """

    passed: bool
    reason: str
    top_cosine: float | None = None
    coverage: float | None = None


@dataclass(frozen=True, slots=True)
class EvidenceGate:
    """Stop the call before spending tokens when the best retrieval evidence is too weak.

    Evidence is the best vector cosine among the retrieved chunks (when the index has vectors)
    and the keyword coverage of the question by one chunk (:func:`query_coverage`). With
    ``combine="fallback"`` (default) the cosine decides when there is one and the coverage
    otherwise; with ``"any"`` either signal over its threshold passes; with ``"all"`` every
    available signal must. A threshold of ``None`` ignores that signal. The defaults are
    calibrated on SciFact train queries by ``bench/calibrate_gate.py`` (docs/answering.md).

    Attributes:
        min_cosine: threshold on the top vector cosine.
        min_coverage: threshold on the keyword coverage.
        combine: ``"fallback"``, ``"any"`` or ``"all"``.
        window: how many of the top chunks the coverage looks at.
    """

    min_cosine: float | None = MIN_COSINE
    min_coverage: float | None = MIN_COVERAGE
    combine: Literal["fallback", "any", "all"] = "fallback"
    window: int = 3

    def __post_init__(self) -> None:
        if self.combine not in ("fallback", "any", "all"):
            raise ValueError(f"combine ({self.combine!r}) must be 'fallback', 'any' or 'all'")
        if self.window < 1:
            raise ValueError(f"window ({self.window}) must be >= 1")

    def passes(self, top_cosine: float | None, coverage: float | None) -> bool | None:
        """The rule on the two signals: pass or not, or ``None`` when no signal can judge.

        Example:
            >>> EvidenceGate(min_cosine=0.35).passes(0.5, 0.0)
            True
        """
        votes: list[bool] = []
        if self.min_cosine is not None and top_cosine is not None:
            votes.append(top_cosine >= self.min_cosine)
        # "fallback": the keyword signal only judges when there is no cosine to judge by.
        if self.min_coverage is not None and coverage is not None:
            if self.combine != "fallback" or not votes:
                votes.append(coverage >= self.min_coverage)
        if not votes:
            return None
        return all(votes) if self.combine == "all" else any(votes)

    def check(
        self,
        question: str,
        retrieved: Sequence[ScoredChunk],
        *,
        retriever: Retriever | None = None,
        idf: IdfFn | None = None,
        analyzer: Callable[[str], list[str]] | None = None,
    ) -> GateVerdict:
        """Judge the evidence in ``retrieved`` (best first) for ``question``.

        Args:
            question: the question asked.
            retrieved: the retrieved chunks, best first.
            retriever: the retriever that returned them; its declared score kinds say which
                scores are cosines (its own, or a fused contributor's).
            idf: term weights for the coverage signal (``Index.keyword_idf``); unweighted
                without it.
            analyzer: the index's analyzer, so the question's terms are the index's terms.
        """
        if not retrieved:
            return GateVerdict(False, _NOTHING_RETRIEVED)
        top_cosine = _top_cosine(retrieved, retriever)
        window = [sc.chunk for sc in retrieved[: self.window]]
        coverage = query_coverage(question, window, idf=idf, analyzer=analyzer)
        # Each signal that votes is shown with its threshold, so a reader sees what decided.
        # The hint to turn the gate off is the caller's to word (gate=False, --no-gate).
        cosine_votes = self.min_cosine is not None and top_cosine is not None
        facts = []
        if top_cosine is not None:
            limit = f", needs {self.min_cosine:.2f}" if cosine_votes else ""
            facts.append(f"best cosine {top_cosine:.2f}{limit}")
        if coverage is not None:
            votes = self.min_coverage is not None and (
                self.combine != "fallback" or not cosine_votes
            )
            limit = f", needs {self.min_coverage:.0%}" if votes else ""
            facts.append(f"{coverage:.0%} of the question's terms in one passage{limit}")
        seen = "; ".join(facts) or "no usable signal"
        passed = self.passes(top_cosine, coverage)
        if passed is None:
            return GateVerdict(
                True, f"No evidence signal to judge ({seen}); not gated.", top_cosine, coverage
            )
        if passed:
            return GateVerdict(True, f"Evidence is sufficient ({seen}).", top_cosine, coverage)
        return GateVerdict(
            False,
            f"The retrieved passages look unrelated to the question ({seen}): "
            "the gate stops the call to Claude.",
            top_cosine,
            coverage,
        )


def default_gate(index: Corpus | Retriever) -> EvidenceGate:
    """The calibrated gate: the cosine threshold of the index's own embedder when it has one
    (each model spreads cosines differently), :data:`MIN_COSINE` otherwise."""
    if isinstance(index, Corpus) and index.settings.embedder is not None:
        from ragkit.embedders import gate_threshold

        threshold = gate_threshold(index.embedder or index.settings.embedder)
        if threshold is not None and threshold != DEFAULT_GATE.min_cosine:
            return replace(DEFAULT_GATE, min_cosine=threshold)
    return DEFAULT_GATE


def _top_cosine(retrieved: Sequence[ScoredChunk], retriever: Retriever | None) -> float | None:
    """The best cosine among the results, read by the retriever's declared score kinds."""
    if retriever is None:
        return None
    if retriever.score_kind == "cosine":
        return max(sc.score for sc in retrieved)
    names = [name for name, kind in retriever.score_kinds().items() if kind == "cosine"]
    cosines = [sc.scores[n] for sc in retrieved for n in names if n in sc.scores]
    return max(cosines) if cosines else None


DEFAULT_GATE = EvidenceGate()


@dataclass(frozen=True, slots=True)
class GateCalibration:
    """A threshold for the evidence gate chosen on a folder's own example questions.

    Attributes:
        signal: ``"cosine"`` (the index has vectors) or ``"coverage"`` (keyword-only).
        threshold: the chosen threshold (``ragkit ask --min-score``, ``EvidenceGate``'s
            ``min_cosine`` or ``min_coverage``).
        answerable: ``(question, score)`` for the questions the documents answer.
        unanswerable: ``(question, score)`` for the questions they do not.
        passed: answerable questions the threshold lets through.
        stopped: unanswerable questions it stops.
    """

    signal: Literal["cosine", "coverage"]
    threshold: float
    answerable: tuple[tuple[str, float], ...]
    unanswerable: tuple[tuple[str, float], ...]
    passed: int
    stopped: int

    @property
    def gate(self) -> EvidenceGate:
        """The gate with this threshold."""
        if self.signal == "cosine":
            return EvidenceGate(min_cosine=self.threshold)
        return EvidenceGate(min_coverage=self.threshold)


def calibrate_gate(
    index: Corpus,
    answerable: Sequence[str],
    unanswerable: Sequence[str],
    *,
    k: int = 5,
) -> GateCalibration:
    """Choose the gate's threshold from example questions the documents do and do not answer.

    Each question is retrieved as ``ragkit.answer`` would retrieve it, and its deciding signal
    read (the best cosine with vectors, the keyword coverage without). The threshold is the one
    that classifies the most examples right, placed midway between the scores it separates; on
    a tie the more permissive one wins (a wrongly stopped question costs more than a call that
    Claude itself can answer with "I don't have that information").

    Raises:
        ValueError: no answerable or no unanswerable example, or an empty question.
    """
    if not answerable or not unanswerable:
        raise ValueError(
            "calibration needs at least one answerable and one unanswerable question "
            f"(got {len(answerable)} and {len(unanswerable)})"
        )
    vectors = index.embedder is not None and index.settings.embedder is not None
    signal: Literal["cosine", "coverage"] = "cosine" if vectors else "coverage"
    probe = EvidenceGate(min_cosine=None, min_coverage=None)

    def score(question: str) -> float:
        query = Query(question, k)
        retriever = index.retriever_for(query)
        hits = retriever.retrieve(query)
        verdict = probe.check(
            question,
            hits,
            retriever=retriever,
            idf=index.keyword_idf,
            analyzer=index.store.analyzer,
        )
        value = verdict.top_cosine if signal == "cosine" else verdict.coverage
        return float(value) if value is not None else 0.0

    good = tuple((q, score(q)) for q in answerable)
    bad = tuple((q, score(q)) for q in unanswerable)
    # Candidate thresholds: midway between consecutive distinct scores (a margin on both
    # sides), and just below the lowest score (pass everything).
    values = sorted({v for _, v in good} | {v for _, v in bad})
    candidates = [values[0] - 1e-6] + [
        (x + y) / 2 for x, y in zip(values, values[1:], strict=False)
    ]
    best: tuple[int, float] | None = None
    for t in candidates:  # ascending: on a tie the more permissive threshold is kept
        right = sum(v >= t for _, v in good) + sum(v < t for _, v in bad)
        if best is None or right > best[0]:
            best = (right, t)
    assert best is not None
    threshold = round(best[1], 4)
    return GateCalibration(
        signal=signal,
        threshold=threshold,
        answerable=good,
        unanswerable=bad,
        passed=sum(v >= threshold for _, v in good),
        stopped=sum(v < threshold for _, v in bad),
    )


"""The gate :func:`ragkit.answer` uses with ``gate=True``."""
