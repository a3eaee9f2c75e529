"""The chunk table of a saved memory store, in its two on-disk formats: format 3 writes it as
columns (``chunks.npz``: keys, spans, one UTF-8 run of texts, distinct heading paths, metadata
that differs from its document's), read back column-wise without per-chunk JSON; format 2
(``chunks.jsonl``, one JSON record a chunk) is still read. Every field is checked, and any damage
is an :class:`~ragkit.errors.IndexFormatError` naming the file and saying how to rebuild.

This module leaves out the rest of a save (manifest, generations: ``disk.py``; the BM25 and vector
arrays: ``memory.py``) and the store itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexFormatError, RagkitError
from ..types import Chunk, freeze_metadata
from .disk import rebuild_advice

_CHUNK_FIELDS = ("id", "text", "document_id", "start", "end", "headings", "metadata")
_FIELDS_MATCH = tuple(f.name for f in fields(Chunk)) == _CHUNK_FIELDS


def _chunk_columns(
    items: Sequence[tuple[int, Chunk]], doc_meta: Mapping[str, Mapping[str, Any]]
) -> dict[str, np.ndarray]:
    """The chunk table of a save (format version 3), one array per column.

    ``keys`` (ascending), ``starts``, ``ends``, ``text`` (every chunk's text in key order, UTF-8,
    one after another: a chunk's text is ``end - start`` characters long), ``headings`` (JSON:
    the distinct heading paths) with ``heading_ids`` per chunk, and ``metadata`` (JSON: the
    metadata of the chunks whose metadata is not their document's, by key). A chunk's ID and
    document come from the manifest, which lists every document's chunk keys in order.
    """
    paths: dict[tuple[str, ...], int] = {}
    extra: dict[str, Any] = {}
    for key, c in items:
        paths.setdefault(c.headings, len(paths))
        if c.metadata != doc_meta.get(c.document_id):
            extra[str(key)] = _jsonable(c.metadata)

    def utf8(text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    return {
        "keys": np.array([key for key, _ in items], dtype=np.int64),
        "starts": np.array([c.start for _, c in items], dtype=np.int64),
        "ends": np.array([c.end for _, c in items], dtype=np.int64),
        "text": utf8("".join(c.text for _, c in items)),
        "headings": utf8(json.dumps([list(p) for p in paths], ensure_ascii=False)),
        "heading_ids": np.array([paths[c.headings] for _, c in items], dtype=np.int32),
        "metadata": utf8(json.dumps(extra, ensure_ascii=False)),
    }


def _chunks_from_columns(
    arrays: Mapping[str, np.ndarray],
    chunk_file: Path,
    doc_keys: Mapping[str, Sequence[int]],
    doc_meta: Mapping[str, Mapping[str, Any]],
) -> dict[int, Chunk]:
    """The chunk table of a version-3 index (see :func:`_chunk_columns`), checked column-wise."""

    def column(name: str, kind: str) -> np.ndarray:
        array = arrays.get(name)
        if array is None:
            raise IndexFormatError(f"{chunk_file}: column {name!r} is missing")
        if array.ndim != 1 or array.dtype.kind != kind or (kind == "u" and array.itemsize != 1):
            raise IndexFormatError(
                f"{chunk_file}: column {name!r} has the wrong type ({array.dtype}, {array.shape})"
            )
        return array

    keys, starts, ends, heading_ids = (
        column(name, "i") for name in ("keys", "starts", "ends", "heading_ids")
    )
    text, heading_json, meta_json = (column(name, "u") for name in ("text", "headings", "metadata"))
    n = len(keys)
    if not len(starts) == len(ends) == len(heading_ids) == n:
        raise IndexFormatError(f"{chunk_file}: the columns have different lengths")
    if n and not bool((np.diff(keys) > 0).all()):
        raise IndexFormatError(f"{chunk_file}: keys must be unique and ascending")
    if not bool(((starts >= 0) & (starts < ends)).all()):
        raise IndexFormatError(f"{chunk_file}: a chunk's span is empty or negative")
    texts = text.tobytes().decode("utf-8")
    bounds = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(ends - starts, out=bounds[1:])
    if int(bounds[-1]) != len(texts):
        raise IndexFormatError(f"{chunk_file}: the texts do not fill the chunks' spans")
    raw_paths = json.loads(heading_json.tobytes().decode("utf-8"))
    if not isinstance(raw_paths, list) or not all(
        isinstance(p, list) and all(isinstance(h, str) for h in p) for p in raw_paths
    ):
        raise IndexFormatError(f"{chunk_file}: headings must be lists of strings")
    paths = [tuple(p) for p in raw_paths]
    if n and not (0 <= int(heading_ids.min()) and int(heading_ids.max()) < len(paths)):
        raise IndexFormatError(f"{chunk_file}: a heading id is out of range")
    extra = _expect(json.loads(meta_json.tobytes().decode("utf-8")), dict, chunk_file, "metadata")
    owner = {k: (doc_id, i) for doc_id, listed in doc_keys.items() for i, k in enumerate(listed)}
    key_list = keys.tolist()
    unlisted = [k for k in key_list if k not in owner]
    if unlisted or len(owner) != n:
        missing = sorted(set(owner) - set(key_list))[:3]
        raise IndexFormatError(
            f"{chunk_file.with_name('manifest.json')} and {chunk_file.name} disagree: keys "
            f"{missing} are listed but not in {chunk_file.name}, keys {unlisted[:3]} are there "
            "but not listed"
        )
    special: dict[int, Mapping[str, Any]] = {}
    for name, meta in extra.items():
        key = int(name)
        if key not in owner:
            raise IndexFormatError(f"{chunk_file}: metadata for key {key}, which is no chunk's")
        special[key] = freeze_metadata(_expect(meta, dict, chunk_file, f"metadata[{name!r}]"))
    chunks: dict[int, Chunk] = {}
    cuts = bounds.tolist()
    for i, (key, start, end, path) in enumerate(
        zip(key_list, starts.tolist(), ends.tolist(), heading_ids.tolist(), strict=True)
    ):
        doc_id, ordinal = owner[key]
        chunks[key] = _checked_chunk(
            f"{doc_id}#{ordinal}",
            texts[cuts[i] : cuts[i + 1]],
            doc_id,
            start,
            end,
            paths[path],
            special.get(key, doc_meta[doc_id]),
        )
    return chunks


_SET = object.__setattr__


def _checked_chunk(*values: Any) -> Chunk:
    """A :class:`Chunk` of fields the chunk table's checks already cover (spans, text lengths,
    frozen metadata), without repeating them per chunk: a quarter of the constructor's cost,
    which is most of an index's load time. Falls back to the constructor if Chunk changes."""
    if _FIELDS_MATCH:
        chunk = Chunk.__new__(Chunk)
        for name, value in zip(_CHUNK_FIELDS, values, strict=True):
            _SET(chunk, name, value)
        return chunk
    return Chunk(*values)


def _chunks_from_lines(
    data: bytes, chunk_file: Path, doc_meta: Mapping[str, Mapping[str, Any]]
) -> dict[int, Chunk]:
    """The chunk table of a version-2 index: one JSON object per line, checked field by field."""
    chunks: dict[int, Chunk] = {}
    for line_no, line in enumerate(data.splitlines(), 1):
        with _blame(chunk_file, f"line {line_no}"):
            r = _expect(json.loads(line), dict, chunk_file, f"line {line_no}")
            doc_id = _expect(r.get("document_id"), str, chunk_file, "document_id")
            if doc_id not in doc_meta:
                raise IndexFormatError(
                    f"{chunk_file} line {line_no}: document {doc_id!r} is not in the manifest"
                )
            extra = r.get("metadata")
            meta = (
                doc_meta[doc_id]
                if extra is None
                else freeze_metadata(_expect(extra, dict, chunk_file, "metadata"))
            )
            headings = _expect(r.get("headings"), list, chunk_file, "headings")
            if not all(isinstance(h, str) for h in headings):
                raise IndexFormatError(f"{chunk_file} line {line_no}: headings must be strings")
            start = _expect(r.get("start"), int, chunk_file, "start")
            end = _expect(r.get("end"), int, chunk_file, "end")
            if not 0 <= start <= end:
                raise IndexFormatError(f"{chunk_file} line {line_no}: bad span {start}..{end}")
            chunk = Chunk(
                _expect(r.get("id"), str, chunk_file, "id"),
                _expect(r.get("text"), str, chunk_file, "text"),
                doc_id,
                start,
                end,
                tuple(headings),
                meta,
            )
            key = _expect(r.get("key"), int, chunk_file, "key")
            if key in chunks:
                raise IndexFormatError(f"{chunk_file} line {line_no}: key {key} repeated")
            chunks[key] = chunk
    return chunks


@contextmanager
def _blame(path: Path, detail: str = "") -> Iterator[None]:
    """Turn any failure while reading ``path`` into an :class:`IndexFormatError` naming it."""
    where = f"{path} {detail}".rstrip()
    index = path.parent.parent if path.parent.name.startswith("gen-") else path.parent
    advice = f"; {rebuild_advice(index)}"
    try:
        yield
    except IndexFormatError as exc:
        if str(path) in str(exc):
            raise
        raise IndexFormatError(f"{where} is corrupt: {exc}{advice}") from exc
    except RagkitError as exc:  # e.g. a settings mismatch raised while configuring
        raise IndexFormatError(f"{where} is corrupt: {exc}{advice}") from exc
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        raise IndexFormatError(f"{where} is corrupt: {type(exc).__name__}: {exc}{advice}") from exc


def _jsonable(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in meta.items()}


def _expect(value: Any, kind: type, where: Path, name: str) -> Any:
    """``value`` when it is of ``kind`` (bool is not an int), else an IndexFormatError."""
    if isinstance(value, bool) and kind is not bool:
        ok = False
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise IndexFormatError(
            f"{where}: {name} must be {kind.__name__}, got {type(value).__name__}"
        )
    if kind is int and not -(2**63) <= value < 2**63:  # keys and offsets live in int64 arrays
        raise IndexFormatError(f"{where}: {name} ({value}) does not fit in 64 bits")
    return value
