"""Small numpy helpers shared by the keyword and vector indexes: a repeated-key check and a
compact key -> row map.

This module leaves out what the arrays mean: each index names its own errors.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, MutableMapping

import numpy as np


def first_repeated(keys: np.ndarray) -> int | None:
    """The smallest key that appears twice, or ``None`` (a sort, not ``np.unique``, which
    imports ``numpy.ma`` on first use: a cost a search process would pay at start-up)."""
    ordered = np.sort(keys)
    same = ordered[1:] == ordered[:-1]
    return int(ordered[1:][same][0]) if same.any() else None


class KeyRows(MutableMapping[int, int]):
    """A map of non-negative int keys to rows: a dense int32 array indexed by key while the
    keys are small next to their count (the stores assign keys 0, 1, 2, ...), a dict otherwise.

    4 bytes per key value up to the largest key, against ~100 bytes per entry for a dict of
    Python ints. When the largest key grows past ``8 * len + 2**20`` (keys chosen by a caller,
    or many removals) it turns into a dict for good. :meth:`assign` sets many at once.
    """

    __slots__ = ("_count", "_dense", "_sparse")

    def __init__(self) -> None:
        self._dense: np.ndarray | None = np.empty(0, dtype=np.int32)
        self._sparse: dict[int, int] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count if self._dense is not None else len(self._sparse)

    def __iter__(self) -> Iterator[int]:
        if self._dense is None:
            return iter(self._sparse)
        return iter(np.flatnonzero(self._dense >= 0).tolist())

    def __contains__(self, key: object) -> bool:
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
            return False
        if self._dense is None:
            return int(key) in self._sparse
        k = int(key)
        return 0 <= k < len(self._dense) and bool(self._dense[k] >= 0)

    def __getitem__(self, key: int) -> int:
        if self._dense is None:
            return self._sparse[key]
        k = int(key)
        if 0 <= k < len(self._dense):
            row = int(self._dense[k])
            if row >= 0:
                return row
        raise KeyError(key)

    def __setitem__(self, key: int, row: int) -> None:
        self.assign(np.array([key], dtype=np.int64), np.array([row], dtype=np.int64))

    def __delitem__(self, key: int) -> None:
        if self._dense is None:
            del self._sparse[key]
            return
        self[key]  # KeyError when absent
        self._dense[int(key)] = -1
        self._count -= 1

    def assign(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """``self[keys[i]] = rows[i]`` for every ``i`` (keys distinct, non-negative)."""
        if not len(keys):
            return
        dense = self._dense
        if dense is not None:
            top = int(keys.max()) + 1
            if top > 8 * (self._count + len(keys)) + (1 << 20):
                self._sparse = dict(
                    zip(
                        np.flatnonzero(dense >= 0).tolist(), dense[dense >= 0].tolist(), strict=True
                    )
                )
                self._dense = dense = None
            else:
                if top > len(dense):
                    grown = np.full(max(top, len(dense) * 5 // 4, 16), -1, dtype=np.int32)
                    grown[: len(dense)] = dense
                    self._dense = dense = grown
                self._count += int(np.count_nonzero(dense[keys] < 0))
                dense[keys] = rows
                return
        self._sparse.update(zip(keys.tolist(), rows.tolist(), strict=True))

    def memory_bytes(self) -> int:
        """Bytes held (the dense array, or the dict with its int objects, estimated)."""
        if self._dense is not None:
            return int(self._dense.nbytes)
        return sys.getsizeof(self._sparse) + 64 * len(self._sparse)
