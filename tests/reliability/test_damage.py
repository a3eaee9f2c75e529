"""Damaged or tampered index files: every one is refused with an error naming the file.

Two kinds of damage. *Raw* damage (flipped bytes, truncation, swapped records, a file replaced by
a FIFO, a link, a directory or a device) is what a disk, a copy or a hand edit does; the
checksums catch it. *Forged* damage rewrites a file and recomputes every checksum, as a buggy
writer would; the loader's own checks (types, counts, keys) catch what would otherwise fail later
at search time. A forged but self-consistent change of content (another chunk text, rows of
vectors swapped with their keys) is out of reach of any check and is not tested.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ragkit.cli import cli
from ragkit.errors import IndexFormatError
from ragkit.index import Index
from ragkit.stores.memory import MemoryStore
from ragkit.types import Document

from ..conftest import FakeEmbedder

ROOT = Path(__file__).resolve().parents[2]


def _build(path: Path, *, vectors: bool) -> Path:
    index = Index(embedder=FakeEmbedder() if vectors else None, chunk_size=16, chunk_overlap=0)
    docs = [
        Document(
            f"doc{i}.md",
            f"Document {i} talks about topic{i % 3} and shared words in a longer text "
            f"so that it has a few chunks: alpha beta gamma delta epsilon {i} zeta eta theta.",
            metadata={"team": "a" if i % 2 else "b"},
        )
        for i in range(6)
    ]
    index.add(docs)
    index.remove(["doc2.md"])  # leaves tombstones and a gap in the keys
    index.save(path)
    return path


def _as_version_2(root: Path) -> Path:
    """Rewrite the live generation as ragkit wrote it before format 3: chunks as JSON lines."""
    store = MemoryStore.load(root)
    gen = _gen(root)
    manifest = json.loads((gen / "manifest.json").read_text())
    lines = []
    for key, c in sorted(store._chunks.items()):
        record = {
            "key": key,
            "id": c.id,
            "document_id": c.document_id,
            "start": c.start,
            "end": c.end,
            "headings": list(c.headings),
            "text": c.text,
        }
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    (gen / "chunks.jsonl").write_text("".join(lines), encoding="utf-8")
    (gen / "chunks.npz").unlink()
    manifest["files"].pop("chunks.npz")
    manifest["files"]["chunks.jsonl"] = {}
    manifest["version"] = 2
    (gen / "manifest.json").write_text(json.dumps(manifest))
    _reseal(root)
    return root


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("pristine")
    return {
        "hybrid": _build(base / "hybrid", vectors=True),
        "keyword": _build(base / "keyword", vectors=False),
        "hybrid-v2": _as_version_2(_build(base / "hybrid-v2", vectors=True)),
    }


def test_an_index_of_format_version_2_still_loads(pristine: dict[str, Path]) -> None:
    old, new = MemoryStore.load(pristine["hybrid-v2"]), MemoryStore.load(pristine["hybrid"])
    assert old._chunks == new._chunks
    assert old.document_hashes() == new.document_hashes()
    assert old.keyword_search("alpha topic1", 5) == new.keyword_search("alpha topic1", 5)


def _gen(root: Path) -> Path:
    return root / (root / "CURRENT").read_text().split()[0]


def _file(root: Path, name: str) -> Path:
    return root / "CURRENT" if name == "CURRENT" else _gen(root) / name


def _reseal(root: Path) -> None:
    """Recompute every checksum after an edit (a forger's or a buggy writer's save)."""
    gen = _gen(root)
    manifest = json.loads((gen / "manifest.json").read_text())
    for name in manifest["files"]:
        data = (gen / name).read_bytes()
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    body = json.dumps(manifest).encode()
    (gen / "manifest.json").write_bytes(body)
    (root / "CURRENT").write_text(f"{gen.name} {hashlib.sha256(body).hexdigest()}\n")


def _edit_manifest(root: Path, change: Callable[[dict], None]) -> None:
    path = _gen(root) / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _edit_npz(root: Path, name: str, change: Callable[[dict], None]) -> None:
    path = _gen(root) / name
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


# -- raw damage ---------------------------------------------------------------------------------

FILES = ["CURRENT", "manifest.json", "chunks.npz", "bm25.npz", "vectors.npz"]


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for pos in (len(data) // 3, len(data) // 2, len(data) - 2):
        data[pos] ^= 0x5A
    path.write_bytes(bytes(data))


def _truncate_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _delete(path: Path) -> None:
    path.unlink()


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _symlink_outside(path: Path) -> None:
    # Same bytes, so only the link itself is wrong: content from outside must not be read.
    outside = path.parents[2] / f"outside-{path.name}"
    outside.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(outside)


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _device(path: Path) -> None:
    path.unlink()
    try:
        os.mknod(path, 0o644 | stat.S_IFCHR, os.makedev(1, 3))  # like /dev/null
    except PermissionError:
        pytest.skip("creating a device node needs root")


RAW: dict[str, Callable[[Path], None]] = {
    "flipped": _flip,
    "truncated": _truncate_half,
    "emptied": _empty,
    "deleted": _delete,
    "fifo": _fifo,
    "symlink-outside": _symlink_outside,
    "directory": _directory,
    "device": _device,
}


def _copy(pristine: dict[str, Path], kind: str, tmp_path: Path) -> Path:
    root = tmp_path / "idx"
    shutil.copytree(pristine[kind], root)
    return root


def _assert_refused(root: Path, name: str) -> None:
    with pytest.raises(IndexFormatError, match=f"{name.replace('.', '[.]')}") as info:
        MemoryStore.load(root)
    assert str(root) in str(info.value) or name in str(info.value)


@pytest.mark.parametrize("damage", list(RAW))
@pytest.mark.parametrize("name", FILES)
def test_raw_damage_to_any_file_is_refused_naming_it(
    pristine: dict[str, Path], tmp_path: Path, name: str, damage: str
) -> None:
    root = _copy(pristine, "hybrid", tmp_path)
    RAW[damage](_file(root, name))
    _assert_refused(root, name)


@pytest.mark.parametrize(
    "tamper",
    ["swapped-chunk-texts", "shuffled-vector-rows", "embedder-renamed", "reversed-bm25-keys"],
)
def test_tampering_without_resealing_is_caught_by_the_checksums(
    pristine: dict[str, Path], tmp_path: Path, tamper: str
) -> None:
    root = _copy(pristine, "hybrid", tmp_path)
    if tamper == "swapped-chunk-texts":  # the texts' bytes in reverse order: same sizes
        _edit_npz(root, "chunks.npz", lambda a: a.update(text=a["text"][::-1].copy()))
        name = "chunks.npz"
    elif tamper == "shuffled-vector-rows":
        _edit_npz(root, "vectors.npz", lambda a: a.update(vectors=a["vectors"][::-1].copy()))
        name = "vectors.npz"
    elif tamper == "embedder-renamed":
        _edit_manifest(root, lambda m: m["settings"].update(embedder="other-model/64"))
        name = "manifest.json"
    else:
        _edit_npz(root, "bm25.npz", lambda a: a.update(keys=a["keys"][::-1].copy()))
        name = "bm25.npz"
    with pytest.raises(IndexFormatError, match="checksum") as info:
        MemoryStore.load(root)
    assert name in str(info.value)
    # and says what to do: the documents are still in their folder
    assert str(info.value).endswith(
        f"rebuild it: move {root} aside (or delete it), then `ragkit index FOLDER --index {root}`"
    )


# -- forged damage (checksums recomputed) -------------------------------------------------------


def _first_doc(m: dict) -> dict:
    return next(iter(m["documents"].values()))


FORGED_MANIFEST: dict[str, Callable[[dict], None]] = {
    "documents-is-a-list": lambda m: m.update(documents=list(m["documents"])),
    "documents-is-a-string": lambda m: m.update(documents="doc0.md"),
    "documents-is-null": lambda m: m.update(documents=None),
    "a-document-is-a-list": lambda m: m["documents"].update({"doc0.md": [1, 2]}),
    "keys-match-no-chunk": lambda m: _first_doc(m).update(keys=[9999]),
    "keys-are-strings": lambda m: _first_doc(m).update(keys=["0"]),
    "keys-are-booleans": lambda m: _first_doc(m).update(keys=[True]),
    "metadata-is-a-list": lambda m: _first_doc(m).update(metadata=["team"]),
    "sha256-is-a-number": lambda m: _first_doc(m).update(sha256=5),
    "a-document-dropped": lambda m: m["documents"].pop("doc0.md"),
    "counts-wrong": lambda m: m["counts"].update(chunks=1),
    "counts-is-a-list": lambda m: m.update(counts=[1]),
    "next-key-too-small": lambda m: m.update(next_key=1),
    "next-key-is-a-string": lambda m: m.update(next_key="99"),
    "settings-missing": lambda m: m.pop("settings"),
    "settings-chunk-size-string": lambda m: m["settings"].update(chunk_size="16"),
    # Found by an outside probe: these loaded, then the next `ragkit index` failed with a usage
    # error about a size nobody passed, or an OverflowError traceback on the first new chunk.
    "settings-chunk-size-negative": lambda m: m["settings"].update(chunk_size=-5),
    "settings-overlap-not-below-size": lambda m: m["settings"].update(chunk_overlap=9999),
    "next-key-beyond-64-bits": lambda m: m.update(next_key=10**30),
    "keys-beyond-64-bits": lambda m: _first_doc(m).update(keys=[10**30]),
    "settings-dim-negative": lambda m: m["settings"].update(dim=-3),
    "settings-dim-changed": lambda m: m["settings"].update(dim=32),
    "settings-embedder-number": lambda m: m["settings"].update(embedder=7),
    "settings-bm25-k1-string": lambda m: m["settings"]["bm25"].update(k1="high"),
    "settings-bm25-unknown": lambda m: m["settings"]["bm25"].update(colour="red"),
    "settings-analyzer-bad-stemmer": lambda m: m["settings"]["analyzer"].update(stemmer="klingon"),
    "settings-analyzer-is-a-list": lambda m: m["settings"].update(analyzer=[1]),
    "keyword-only-claim": lambda m: m["settings"].update(embedder=None, dim=None),
    "files-escapes-folder": lambda m: m["files"].update(
        {"../CURRENT": {"sha256": "0" * 64, "bytes": 1}}
    ),
    "files-bytes-negative": lambda m: m["files"]["bm25.npz"].update(bytes=-1),
    "files-is-a-list": lambda m: m.update(files=[]),
    "format-version-4": lambda m: m.update(version=4),
    "format-version-1": lambda m: m.update(version=1),
    "format-version-true": lambda m: m.update(version=True),
    "format-version-2-without-jsonl": lambda m: m.update(version=2),
}


@pytest.mark.parametrize("damage", list(FORGED_MANIFEST))
def test_forged_manifest_damage_is_refused_naming_the_manifest(
    pristine: dict[str, Path], tmp_path: Path, damage: str
) -> None:
    root = _copy(pristine, "hybrid", tmp_path)
    _edit_manifest(root, FORGED_MANIFEST[damage])
    if damage not in ("files-escapes-folder", "files-bytes-negative", "files-is-a-list"):
        _reseal(root)
    else:  # the file listing itself is what the reseal would need: seal the manifest only
        gen = _gen(root)
        body = (gen / "manifest.json").read_bytes()
        (root / "CURRENT").write_text(f"{gen.name} {hashlib.sha256(body).hexdigest()}\n")
    names = ("manifest.json", "chunks.npz", "bm25.npz", "vectors.npz", "version")
    with pytest.raises(IndexFormatError, match="|".join(map(re.escape, names))):
        MemoryStore.load(root)


def test_a_forged_manifest_nested_too_deeply_is_refused_not_a_recursion_error(
    pristine: dict[str, Path], tmp_path: Path
) -> None:
    root = _copy(pristine, "hybrid", tmp_path)
    _edit_manifest(root, lambda m: _first_doc(m)["metadata"].update(deep="DEEP"))
    path = _gen(root) / "manifest.json"
    path.write_bytes(path.read_bytes().replace(b'"DEEP"', b"[" * 100_000 + b"]" * 100_000))
    body = path.read_bytes()
    (root / "CURRENT").write_text(f"{_gen(root).name} {hashlib.sha256(body).hexdigest()}\n")
    with pytest.raises(IndexFormatError, match=r"manifest\.json is corrupt: nested too deeply"):
        MemoryStore.load(root)


FORGED_CHUNKS: dict[str, Callable[[list[dict]], None]] = {
    "not-json": lambda r: r.append("{not json"),  # type: ignore[arg-type]
    "text-is-a-number": lambda r: r[0].update(text=5),
    "headings-is-a-string": lambda r: r[0].update(headings="Intro"),
    "headings-hold-numbers": lambda r: r[0].update(headings=[1, 2]),
    "start-is-a-float": lambda r: r[0].update(start=1.5),
    "key-is-a-string": lambda r: r[0].update(key="0"),
    "key-repeated": lambda r: r[1].update(key=r[0]["key"]),
    "document-unknown": lambda r: r[0].update(document_id="ghost.md"),
    "id-elsewhere": lambda r: r[0].update(id="doc9.md#0"),
    "metadata-is-a-list": lambda r: r[0].update(metadata=[1]),
    "record-is-a-list": lambda r: r.__setitem__(0, [1, 2]),  # type: ignore[arg-type]
    "a-chunk-dropped": lambda r: r.pop(),
}


@pytest.mark.parametrize("damage", list(FORGED_CHUNKS))
def test_forged_chunk_damage_to_a_version_2_index_is_refused_naming_chunks_jsonl(
    pristine: dict[str, Path], tmp_path: Path, damage: str
) -> None:
    root = _copy(pristine, "hybrid-v2", tmp_path)
    path = _gen(root) / "chunks.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    FORGED_CHUNKS[damage](records)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    _reseal(root)
    with pytest.raises(IndexFormatError, match="chunks[.]jsonl"):
        MemoryStore.load(root)


def _utf8(value: object) -> np.ndarray:
    return np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)


FORGED_COLUMNS: dict[str, Callable[[dict], None]] = {
    "keys-missing": lambda a: a.pop("keys"),
    "keys-float": lambda a: a.update(keys=a["keys"].astype(np.float64)),
    "keys-repeated": lambda a: a["keys"].__setitem__(1, a["keys"][0]),
    "keys-descending": lambda a: a.update(keys=a["keys"][::-1].copy()),
    "keys-foreign": lambda a: a.update(keys=a["keys"] + 1000),
    "keys-2d": lambda a: a.update(keys=a["keys"][:, None].copy()),
    "a-chunk-dropped": lambda a: a.update(
        {k: a[k][:-1].copy() for k in ("keys", "starts", "ends", "heading_ids")}
    ),
    "starts-short": lambda a: a.update(starts=a["starts"][:-1].copy()),
    "span-empty": lambda a: a["ends"].__setitem__(0, a["starts"][0]),
    "span-negative": lambda a: a["starts"].__setitem__(0, -1),
    "text-short": lambda a: a.update(text=a["text"][:-1].copy()),
    "text-not-utf8": lambda a: a["text"].__setitem__(0, 0xFF),
    "text-is-int64": lambda a: a.update(text=a["text"].astype(np.int64)),
    "headings-not-json": lambda a: a.update(headings=np.frombuffer(b"[[", dtype=np.uint8)),
    "headings-hold-numbers": lambda a: a.update(headings=_utf8([[1, 2]])),
    "heading-id-out-of-range": lambda a: a["heading_ids"].__setitem__(0, 10_000),
    "metadata-is-a-list": lambda a: a.update(metadata=_utf8([1])),
    "metadata-of-no-chunk": lambda a: a.update(metadata=_utf8({"9999": {"team": "x"}})),
    "metadata-key-not-a-number": lambda a: a.update(metadata=_utf8({"first": {}})),
    "metadata-value-a-list": lambda a: a.update(metadata=_utf8({"0": [1]})),
    "object-array": lambda a: a.update(starts=np.array([object()] * len(a["starts"]))),
}


@pytest.mark.parametrize("damage", list(FORGED_COLUMNS))
def test_forged_chunk_table_damage_is_refused_naming_chunks_npz(
    pristine: dict[str, Path], tmp_path: Path, damage: str
) -> None:
    root = _copy(pristine, "hybrid", tmp_path)
    path = _gen(root) / "chunks.npz"
    with np.load(path) as data:
        arrays = {k: data[k].copy() for k in data.files}
    FORGED_COLUMNS[damage](arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # an object array is pickled inside: loading must not unpickle it
    path.write_bytes(buf.getvalue())
    _reseal(root)
    with pytest.raises(IndexFormatError, match="chunks[.]npz"):
        MemoryStore.load(root)


FORGED_NPZ: dict[str, tuple[str, Callable[[dict], None]]] = {
    "bm25-keys-reversed": ("bm25.npz", lambda a: a.update(keys=a["keys"][::-1].copy())),
    "bm25-keys-foreign": ("bm25.npz", lambda a: a.update(keys=a["keys"] + 1000)),
    "bm25-keys-missing": ("bm25.npz", lambda a: a.pop("keys")),
    "bm25-keys-float": ("bm25.npz", lambda a: a.update(keys=a["keys"].astype(np.float64))),
    "bm25-postings-out-of-range": (
        "bm25.npz",
        lambda a: a.update(post_docs=a["post_docs"] + 10_000),
    ),
    "bm25-indptr-decreasing": ("bm25.npz", lambda a: a.update(indptr=a["indptr"][::-1].copy())),
    "bm25-vocab-not-utf8": ("bm25.npz", lambda a: a.update(vocab=np.full_like(a["vocab"], 0xFF))),
    "bm25-doc-len-short": ("bm25.npz", lambda a: a.update(doc_len=a["doc_len"][:-1].copy())),
    "bm25-object-array": (
        "bm25.npz",
        lambda a: a.update(keys=np.array([object()] * len(a["keys"]), dtype=object)),
    ),
    "vectors-keys-foreign": ("vectors.npz", lambda a: a.update(keys=a["keys"] + 1000)),
    "vectors-keys-repeated": ("vectors.npz", lambda a: a.update(keys=np.zeros_like(a["keys"]))),
    "vectors-dim-changed": ("vectors.npz", lambda a: a.update(vectors=a["vectors"][:, :32].copy())),
    "vectors-not-unit": ("vectors.npz", lambda a: a.update(vectors=a["vectors"] * 3)),
    "vectors-nan": ("vectors.npz", lambda a: a["vectors"].__setitem__((0, 0), np.nan)),
    "vectors-row-missing": ("vectors.npz", lambda a: a.update(vectors=a["vectors"][:-1].copy())),
    "vectors-missing": ("vectors.npz", lambda a: a.pop("vectors")),
}


@pytest.mark.parametrize("damage", list(FORGED_NPZ))
def test_forged_array_damage_is_refused_naming_the_file(
    pristine: dict[str, Path], tmp_path: Path, damage: str
) -> None:
    name, change = FORGED_NPZ[damage]
    root = _copy(pristine, "hybrid", tmp_path)
    if damage == "bm25-object-array":
        path = _gen(root) / name
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        change(arrays)
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # pickled inside the npz: loading must not unpickle it
        path.write_bytes(buf.getvalue())
    else:
        _edit_npz(root, name, change)
    _reseal(root)
    with pytest.raises(IndexFormatError, match=name.replace(".", "[.]")):
        MemoryStore.load(root)


@pytest.mark.parametrize(
    "pointer",
    [b"", b"gen-x", b"../../etc 00", b"gen-../x " + b"0" * 64, b"\xff\xfe", b"a b c"],
)
def test_a_damaged_current_pointer_is_refused(
    pristine: dict[str, Path], tmp_path: Path, pointer: bytes
) -> None:
    root = _copy(pristine, "keyword", tmp_path)
    (root / "CURRENT").write_bytes(pointer)
    with pytest.raises(IndexFormatError, match="CURRENT|older ragkit|manifest"):
        MemoryStore.load(root)


@pytest.mark.parametrize("pointer", [b"garbage", b"xK3+9/a==", b"CURRENT"])
def test_a_current_pointer_of_one_foreign_word_is_damage_not_an_old_format(
    pristine: dict[str, Path], tmp_path: Path, pointer: bytes
) -> None:
    # Found by an outside probe: any one-word CURRENT was reported as "written by an older
    # ragkit (format version 1)", whose pointers held a generation's name alone.
    root = _copy(pristine, "keyword", tmp_path)
    (root / "CURRENT").write_bytes(pointer)
    with pytest.raises(IndexFormatError, match=r"CURRENT is corrupt: .*; rebuild it: move") as info:
        MemoryStore.load(root)
    assert "older ragkit" not in str(info.value)
    (root / "CURRENT").write_bytes(b"gen-20240101T000000-deadbeef\n")  # a version 1 pointer
    with pytest.raises(IndexFormatError, match=r"older ragkit \(format version 1\)"):
        MemoryStore.load(root)


# -- the CLI: one line, exit 1, no hang ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("chunks.npz", "flipped"),
        ("bm25.npz", "truncated"),
        ("manifest.json", "symlink-outside"),
        ("CURRENT", "directory"),
        ("chunks.npz", "fifo"),
    ],
)
def test_ragkit_search_on_a_damaged_index_prints_one_line_and_exits_1(
    pristine: dict[str, Path], tmp_path: Path, name: str, damage: str
) -> None:
    root = _copy(pristine, "keyword", tmp_path)
    RAW[damage](_file(root, name))
    result = CliRunner().invoke(cli, ["search", "alpha", "--index", str(root)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert name in lines[0] or "CURRENT" in lines[0]


@pytest.mark.parametrize("forged", ["keys-match-no-chunk", "documents-is-a-list"])
def test_ragkit_search_on_a_forged_index_prints_one_line(
    pristine: dict[str, Path], tmp_path: Path, forged: str
) -> None:
    root = _copy(pristine, "keyword", tmp_path)
    _edit_manifest(root, FORGED_MANIFEST[forged])
    _reseal(root)
    result = CliRunner().invoke(cli, ["search", "alpha", "--index", str(root)])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "manifest.json" in lines[0], result.output


def test_a_fifo_in_place_of_an_index_file_never_hangs_the_cli(
    pristine: dict[str, Path], tmp_path: Path
) -> None:
    root = _copy(pristine, "keyword", tmp_path)
    _fifo(_file(root, "bm25.npz"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "ragkit", "search", "alpha", "--index", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 1
    assert "bm25.npz" in done.stderr
    assert "Traceback" not in done.stderr


# -- the archive around the arrays --------------------------------------------------------------


def _rewrite_npz(root: Path, name: str, save: Callable[..., None]) -> None:
    path = _gen(root) / name
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    buf = io.BytesIO()
    save(buf, **arrays)
    path.write_bytes(buf.getvalue())
    _reseal(root)


def test_arrays_read_without_zipfile_equal_numpys_own_reading(pristine: dict[str, Path]) -> None:
    from ragkit.stores.disk import _stored_arrays

    buf = io.BytesIO()
    arrays = {
        "empty": np.zeros(0, np.int64),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "scalar": np.array(3),
        "strings": np.array(["ab", "c"]),
        "no_rows": np.zeros((0, 5), np.float32),
    }
    np.savez(buf, **arrays)
    archives = [buf.getvalue()] + [
        _file(pristine["hybrid"], name).read_bytes()
        for name in ("chunks.npz", "bm25.npz", "vectors.npz")
    ]
    for raw in archives:
        read = _stored_arrays(raw)
        assert read is not None
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            assert sorted(read) == sorted(data.files)
            for key in data.files:
                assert read[key].dtype == data[key].dtype
                assert read[key].shape == data[key].shape
                assert np.array_equal(read[key], data[key])


def test_a_compressed_archive_still_loads(pristine: dict[str, Path], tmp_path: Path) -> None:
    root = _copy(pristine, "hybrid", tmp_path)
    _rewrite_npz(root, "vectors.npz", np.savez_compressed)
    _rewrite_npz(root, "chunks.npz", np.savez_compressed)
    loaded, original = MemoryStore.load(root), MemoryStore.load(pristine["hybrid"])
    assert loaded._chunks == original._chunks
    assert loaded.keyword_search("alpha topic1", 5) == original.keyword_search("alpha topic1", 5)
    query = FakeEmbedder().embed_query("alpha topic1")
    assert loaded.vector_search(query, 5) == original.vector_search(query, 5)


ARCHIVE_DAMAGE: dict[str, Callable[[bytearray], None]] = {
    # the first member's local header signature
    "local-header": lambda b: b.__setitem__(slice(0, 4), b"XXXX"),
    # the directory's first entry points past the archive
    "member-offset": lambda b: b.__setitem__(
        slice(b.rfind(b"PK\x01\x02") + 42, b.rfind(b"PK\x01\x02") + 46), b"\xff\xff\xff\x7f"
    ),
    # an .npy header that is not one
    "npy-magic": lambda b: b.__setitem__(
        slice(b.find(b"\x93NUMPY"), b.find(b"\x93NUMPY") + 6), b"NUMPY!"
    ),
}


@pytest.mark.parametrize("damage", list(ARCHIVE_DAMAGE))
def test_forged_archive_damage_is_refused_naming_the_file(
    pristine: dict[str, Path], tmp_path: Path, damage: str
) -> None:
    root = _copy(pristine, "hybrid", tmp_path)
    path = _gen(root) / "bm25.npz"
    raw = bytearray(path.read_bytes())
    ARCHIVE_DAMAGE[damage](raw)
    path.write_bytes(bytes(raw))
    _reseal(root)
    with pytest.raises(IndexFormatError, match="bm25[.]npz is corrupt"):
        MemoryStore.load(root)


# -- vectors read when first used ---------------------------------------------------------------


def test_vectors_read_when_used_are_the_same_and_saved_with_the_rest(
    pristine: dict[str, Path], tmp_path: Path
) -> None:
    root = _copy(pristine, "hybrid", tmp_path)
    eager = MemoryStore.load(root)
    lazy = MemoryStore.load(root, vectors="when used")
    assert lazy.keyword_search("alpha topic1", 5) == eager.keyword_search("alpha topic1", 5)
    query = FakeEmbedder().embed_query("alpha topic1")
    assert lazy.vector_search(query, 5) == eager.vector_search(query, 5)
    untouched = MemoryStore.load(root, vectors="when used")
    untouched.save(tmp_path / "copy")  # a save writes the vectors it had not read yet
    assert MemoryStore.load(tmp_path / "copy").vector_search(query, 5) == eager.vector_search(
        query, 5
    )


def test_damaged_vectors_read_when_used_are_refused_at_first_use(
    pristine: dict[str, Path], tmp_path: Path
) -> None:
    root = _copy(pristine, "hybrid", tmp_path)
    _edit_npz(root, "vectors.npz", lambda a: a.update(keys=a["keys"] + 1000))
    _reseal(root)
    with pytest.raises(IndexFormatError, match="vectors[.]npz"):
        MemoryStore.load(root)
    store = MemoryStore.load(root, vectors="when used")
    assert store.keyword_search("alpha topic1", 5)  # a keyword search never reads them
    query = FakeEmbedder().embed_query("alpha topic1")
    for _ in range(2):  # and every use after the first still refuses them
        with pytest.raises(IndexFormatError, match="vectors[.]npz"):
            store.vector_search(query, 5)
    raw = bytearray(_file(root, "vectors.npz").read_bytes())
    raw[-30] ^= 0xFF  # raw damage: the checksum is checked at first use too
    _file(root, "vectors.npz").write_bytes(bytes(raw))
    with pytest.raises(IndexFormatError, match="vectors[.]npz does not match its checksum"):
        MemoryStore.load(root, vectors="when used").vector_search(query, 5)


def test_a_bm25_search_on_the_command_line_leaves_damaged_vectors_unread(
    pristine: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ragkit.index.default_embedder", FakeEmbedder)  # the index's own
    root = _copy(pristine, "hybrid", tmp_path)
    (_gen(root) / "vectors.npz").write_bytes(b"not an archive")
    runner = CliRunner()
    bm25 = runner.invoke(cli, ["search", "alpha topic1", "--index", str(root), "--mode", "bm25"])
    assert bm25.exit_code == 0, bm25.output
    assert "doc" in bm25.stdout
    hybrid = runner.invoke(cli, ["search", "alpha topic1", "--index", str(root)])
    assert hybrid.exit_code == 1
    assert "vectors.npz does not match its checksum" in hybrid.stderr
