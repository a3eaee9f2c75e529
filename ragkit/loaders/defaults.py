"""The folder walk's default patterns and limits: constants only, so that the CLI can show them
without importing any loader.

This module leaves out reading files (``ragkit.loaders.folder``).
"""

from __future__ import annotations

__all__ = ["DEFAULT_EXCLUDE_DIRS", "DEFAULT_INCLUDE", "DEFAULT_MAX_BYTES"]

DEFAULT_INCLUDE: tuple[str, ...] = (
    "**/*.md",
    "**/*.markdown",
    "**/*.mdx",
    "**/*.txt",
    "**/*.rst",
    "**/*.html",
    "**/*.htm",
    "**/*.xhtml",
    "**/*.ipynb",
    "**/*.pdf",
    "**/*.docx",
)
"""Glob patterns of the built-in formats. ``load_folder(include=None)`` (the default) reads these
and any suffix a registered or plugin loader reads."""

DEFAULT_MAX_BYTES: int = 10 * 1024 * 1024
"""Text files larger than this (10 MiB) are skipped: they are almost never prose. PDF, DOCX and
notebook loaders have larger limits of their own (their ``max_bytes`` attribute)."""

DEFAULT_EXCLUDE_DIRS: frozenset[str] = frozenset({"node_modules", "__pycache__", "site-packages"})
"""Folder names not entered unless ``skip_hidden=False``, besides hidden folders and virtualenvs."""
