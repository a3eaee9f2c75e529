"""Tests of ragkit._arrays.KeyRows, the key -> row map of the keyword and vector indexes."""

from __future__ import annotations

import numpy as np
import pytest

from ragkit._arrays import KeyRows


def test_behaves_like_a_dict_dense_and_sparse() -> None:
    rows = KeyRows()
    want: dict[int, int] = {}
    rows.assign(np.arange(10), np.arange(100, 110))
    want.update(zip(range(10), range(100, 110), strict=True))
    rows[3] = 7
    want[3] = 7
    assert rows.pop(5) == 105
    del want[5]
    assert dict(rows) == want
    assert rows._dense is not None  # small keys: the dense array
    assert 5 not in rows
    assert "3" not in rows
    assert len(rows) == 9
    dense_bytes = rows.memory_bytes()
    rows.assign(np.array([10**12]), np.array([1]))  # far beyond the count: a dict for good
    want[10**12] = 1
    assert rows._dense is None
    assert dict(rows) == want
    assert rows.memory_bytes() > dense_bytes
    with pytest.raises(KeyError, match="^5$"):
        rows[5]
    with pytest.raises(KeyError, match="^11$"):
        del rows[11]
    assert rows.get(-1) is None
