"""ragkit: small, fast, honest retrieval-augmented question answering over Claude."""

from __future__ import annotations

__version__ = "0.1.0"
