"""Small numpy checks shared by the keyword and vector indexes.

This module leaves out what the arrays mean: each index names its own errors.
"""

from __future__ import annotations

import numpy as np


def first_repeated(keys: np.ndarray) -> int | None:
    """The smallest key that appears twice, or ``None`` (a sort, not ``np.unique``, which
    imports ``numpy.ma`` on first use: a cost a search process would pay at start-up)."""
    ordered = np.sort(keys)
    same = ordered[1:] == ordered[:-1]
    return int(ordered[1:][same][0]) if same.any() else None
