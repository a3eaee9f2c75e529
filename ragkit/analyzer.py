"""Text analysis for keyword search: lowercase, ``\\w+`` tokens, stopwords, Snowball stemming.

:class:`Analyzer` turns text into terms the same way for documents and queries (Lucene's
English stopwords, PyStemmer's Snowball stemmers). It leaves out scoring and the index
(ragkit.bm25) and any language detection: one analyzer, one language.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Mapping
from typing import Any, cast

import Stemmer

__all__ = ["ENGLISH_STOPWORDS", "Analyzer"]

# Lucene's EnglishAnalyzer default stop set (the 33 words of Anserini's default analyzer).
ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)

_TOKEN = re.compile(r"\w+")
_CACHE_LIMIT = 1 << 20


class Analyzer:
    """Text to terms: lowercase, ``\\w+`` tokens, stopwords removed, Snowball-stemmed.

    Stopwords are removed before stemming (as Lucene does), and compared after lowercasing when
    ``lowercase`` is on. Digits are kept as tokens. The same analyzer must be used for documents
    and queries; :class:`BM25Index` does that for you.

    Args:
        lowercase: lowercase the text before tokenising.
        stopwords: ``"english"`` (Lucene's 33-word list), ``None`` for none, or your own words.
        stemmer: a PyStemmer algorithm name (``Stemmer.algorithms()``) or ``None`` for none.
        min_token_len: drop tokens shorter than this many characters (before stemming).

    Example:
        >>> Analyzer()("The cats are running")
        ['cat', 'run']
    """

    def __init__(
        self,
        *,
        lowercase: bool = True,
        stopwords: str | Collection[str] | None = "english",
        stemmer: str | None = "english",
        min_token_len: int = 1,
    ) -> None:
        if isinstance(stopwords, str):
            if stopwords != "english":
                raise ValueError(
                    f"stopwords ({stopwords!r}) must be 'english', None or a collection of words"
                )
            stop: frozenset[str] = ENGLISH_STOPWORDS
        elif stopwords is None:
            stop = frozenset()
        else:
            words = list(stopwords)
            if not all(isinstance(w, str) for w in words):
                raise TypeError("stopwords must contain only strings")
            stop = frozenset(w.lower() for w in words) if lowercase else frozenset(words)
        if stemmer is not None and stemmer not in Stemmer.algorithms():
            choices = ", ".join(sorted(Stemmer.algorithms()))
            raise ValueError(f"stemmer ({stemmer!r}) must be None or one of: {choices}")
        if isinstance(min_token_len, bool) or not isinstance(min_token_len, int):
            raise TypeError(f"min_token_len ({min_token_len!r}) must be an int")
        if min_token_len < 1:
            raise ValueError(f"min_token_len ({min_token_len}) must be at least 1")
        self._lowercase = bool(lowercase)
        self._stopwords_spec: str | None | list[str] = (
            stopwords if stopwords is None or isinstance(stopwords, str) else sorted(stop)
        )
        self._stop = stop
        self._stemmer_name = stemmer
        self._min_len = min_token_len
        # PyStemmer objects are not thread-safe: one per thread.
        self._local = threading.local()
        # token -> term ("" when dropped): a dict lookup is ~3x cheaper than stemming each token.
        self._cache: dict[str, str] = {}

    def _stemmer(self) -> Any:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = Stemmer.Stemmer(self._stemmer_name)
            self._local.stemmer = stemmer
        return stemmer

    def tokens(self, text: str) -> list[str]:
        """``text``'s tokens before stopwords and stemming (lowercased when ``lowercase``);
        ``self(text)`` is ``[self.terms(tokens)[t] for t in tokens]`` without the empty ones."""
        if self._lowercase:
            text = text.lower()
        tokens: list[str] = _TOKEN.findall(text)
        return tokens

    def terms(self, tokens: Collection[str]) -> dict[str, str]:
        """Each distinct token of ``tokens`` (from :meth:`tokens`) mapped to its term, ``""``
        when it is dropped (a stopword, or shorter than ``min_token_len``)."""
        return self._fill(list(tokens))

    def __call__(self, text: str) -> list[str]:
        """Analyse one text into its list of terms, in order, repeats kept."""
        tokens = self.tokens(text)
        cache = self._cache
        try:
            # One pass: each distinct token maps to its term, or to "" when it is dropped.
            return [term for term in map(cache.__getitem__, tokens) if term]
        except KeyError:
            # Looked up in this call's own map: another thread may clear the shared cache.
            terms = self._fill(tokens)
            return [term for term in map(terms.__getitem__, tokens) if term]

    def _fill(self, tokens: list[str]) -> dict[str, str]:
        """Each distinct token's term ("" when dropped), also stored in the shared cache."""
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        distinct = set(tokens)
        terms: dict[str, str] = {}
        missing: list[str] = []
        for token in distinct:
            term = cache.get(token)
            if term is None:
                missing.append(token)
            else:
                terms[token] = term
        kept = [t for t in missing if len(t) >= self._min_len and t not in self._stop]
        found = dict.fromkeys(missing, "")
        stems = self._stemmer().stemWords(kept) if self._stemmer_name is not None else kept
        found.update(zip(kept, stems, strict=True))
        cache.update(found)
        terms.update(found)
        return terms

    def config(self) -> dict[str, object]:
        """The constructor arguments, JSON-serialisable; :meth:`from_config` inverts it."""
        stopwords = self._stopwords_spec
        return {
            "lowercase": self._lowercase,
            "stopwords": list(stopwords) if isinstance(stopwords, list) else stopwords,
            "stemmer": self._stemmer_name,
            "min_token_len": self._min_len,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> Analyzer:
        """Rebuild an analyzer from :meth:`config` output.

        Raises:
            ValueError: on unknown keys or invalid values.
        """
        unknown = set(config) - {"lowercase", "stopwords", "stemmer", "min_token_len"}
        if unknown:
            raise ValueError(f"unknown analyzer config keys: {sorted(unknown)}")
        return cls(**cast(dict[str, Any], dict(config)))

    def __reduce__(self) -> tuple[Any, tuple[dict[str, object]]]:
        # Picklable by configuration (the per-thread stemmers and the cache are rebuilt).
        return (Analyzer.from_config, (self.config(),))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Analyzer):
            return NotImplemented
        return self.config() == other.config()

    def __hash__(self) -> int:
        return hash(repr(self.config()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"Analyzer({args})"
