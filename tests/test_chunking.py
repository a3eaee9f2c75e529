"""Tests for ragkit.chunking: invariants as properties, then the boundary rules by example."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragkit.chunking import (
    DEFAULT_CHUNK_OVERLAP,
    DEFAULT_CHUNK_SIZE,
    ENCODING_NAME,
    chunk_document,
    chunk_text,
    get_encoding,
)
from ragkit.tokens import count_tokens
from ragkit.types import Chunk, Document

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Building blocks that exercise every boundary kind: headings (ATX, setext, in code fences),
# paragraphs, sentences, long words, runs without spaces, emoji and CJK.
FRAGMENTS = [
    "# Title\n\n",
    "## Section two\n",
    "### Deep\n\n",
    "Setext\n======\n\n",
    "Sub\n---\n\n",
    "```\n# not a heading\ncode();\n```\n",
    "The quick brown fox jumps over the lazy dog. ",
    "Is this a question? Yes! ",
    "Tokenization of extraordinarily long antidisestablishmentarianism words. ",
    "\n\n",
    "\n",
    "   ",
    "\t",
    "x" * 120,
    "a1b2c3" * 30,
    "naïve café déjà vu. ",
    "emoji 😀🎉👍🏽 here. ",
    "中文句子。日本語の文です。",
    "- item one\n- item two\n",
    "Table 1: Sizes\n| name | size |\n| --- | --- |\n",
    "| row | 12 words of a cell that goes on |\n",
]

texts = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join),
    st.text(max_size=400),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=30)), max_size=25).map("".join),
)


@st.composite
def size_and_overlap(draw: st.DrawFn) -> tuple[int, int]:
    # size >= 8: one character is at most 4 tokens (4 UTF-8 bytes), so every chunk can fit.
    size = draw(st.integers(min_value=8, max_value=80))
    overlap = draw(st.integers(min_value=0, max_value=size - 1))
    return size, overlap


def check_invariants(
    text: str,
    chunks: list[Chunk],
    size: int,
    overlap: int,
    counter: Callable[[str], int] = count_tokens,
) -> None:
    assert [c.id for c in chunks] == [f"doc#{i}" for i in range(len(chunks))]
    covered = bytearray(len(text))
    for c in chunks:
        assert c.document_id == "doc"
        assert text[c.start : c.end] == c.text
        assert counter(c.text) <= size, (c.text, counter(c.text))
        assert not c.text[0].isspace()
        assert not c.text[-1].isspace()
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
    missing = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert missing == []
    for prev, nxt in pairwise(chunks):
        assert prev.start < nxt.start
        assert prev.end < nxt.end
        if overlap == 0:
            assert nxt.start >= prev.end
        elif nxt.start < prev.end:
            assert counter(text[nxt.start : prev.end]) <= overlap


@PROPERTY
@given(text=texts, so=size_and_overlap())
def test_chunk_invariants(text: str, so: tuple[int, int]) -> None:
    size, overlap = so
    chunks = chunk_text(text, document_id="doc", size=size, overlap=overlap)
    check_invariants(text, chunks, size, overlap)
    assert (chunks == []) == (text.strip() == "")
    # Deterministic: the same text gives the same chunks.
    assert chunk_text(text, document_id="doc", size=size, overlap=overlap) == chunks


def words(text: str) -> int:
    return len(text.split())


@PROPERTY
@given(text=texts, so=size_and_overlap())
def test_custom_counter_bounds_every_chunk(text: str, so: tuple[int, int]) -> None:
    size, overlap = so
    for counter in (words, len):
        chunks = chunk_text(
            text, document_id="doc", size=size, overlap=overlap, count_tokens=counter
        )
        check_invariants(text, chunks, size, overlap, counter)


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \n"])
def test_empty_or_whitespace_gives_no_chunks(text: str) -> None:
    assert chunk_text(text, document_id="doc") == []


@pytest.mark.parametrize(
    ("size", "overlap", "message"),
    [
        (0, 0, r"size \(0\) must be >= 1"),
        (10, -1, r"overlap \(-1\) must be >= 0"),
        (10, 10, r"overlap \(10\) must be smaller than size \(10\)"),
    ],
)
def test_bad_size_or_overlap_is_a_value_error(size: int, overlap: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chunk_text("some text", document_id="doc", size=size, overlap=overlap)


def test_defaults_and_encoding_work_offline() -> None:
    assert DEFAULT_CHUNK_OVERLAP < DEFAULT_CHUNK_SIZE
    enc = get_encoding()
    assert enc.name == ENCODING_NAME
    text = "Offline token counting, with ümlauts and 😀."
    assert enc.decode(enc.encode_ordinary(text)) == text
    assert count_tokens(text) == len(enc.encode_ordinary(text))
    assert count_tokens("<|endoftext|>") > 1  # special-token text counts as ordinary text


NESTED = """\
Preamble before any heading.

# Install

Install the package.

## From source

Clone, then build.

### Linux

Use make.

## From PyPI

Use pip.

# Usage

Run it.
"""


def test_heading_paths_follow_nesting() -> None:
    chunks = chunk_text(NESTED, document_id="doc", size=200, overlap=20)
    by_text = {c.text.split("\n")[0]: c.headings for c in chunks}
    assert by_text == {
        "Preamble before any heading.": (),
        "# Install": ("Install",),
        "## From source": ("Install", "From source"),
        "### Linux": ("Install", "From source", "Linux"),
        "## From PyPI": ("Install", "From PyPI"),
        "# Usage": ("Usage",),
    }
    # A chunk that starts at a heading repeats nothing from the section before.
    starts = {c.start for c in chunks}
    for m in re.finditer(r"^#+ ", NESTED, re.M):
        assert m.start() in starts


def test_heading_only_prefix_stays_with_its_content() -> None:
    text = "# Guide\n\n## Intro\n\nWelcome to the guide."
    chunks = chunk_text(text, document_id="doc", size=100, overlap=0)
    assert [c.text for c in chunks] == [text]
    assert chunks[0].headings == ("Guide", "Intro")


def test_hash_lines_in_code_fences_are_not_headings() -> None:
    text = (
        "# Real\n\nText.\n\n```bash\n# install deps\npip install x\n```\n\n"
        "~~~\n## also code\n~~~\n\nAfter the code."
    )
    chunks = chunk_text(text, document_id="doc", size=8, overlap=0)
    assert all(c.headings == ("Real",) for c in chunks)
    assert not any(c.text.startswith(("# install", "## also")) for c in chunks)


def test_setext_and_rst_titles_are_headings() -> None:
    text = (
        "=======\nProject\n=======\n\nIntro.\n\n"
        "Usage\n=====\n\nRun it.\n\n"
        "Options\n-------\n\nFlags.\n\n"
        "Advanced\n~~~~~~~~\n\nDetails.\n\n"
        "Thanks\n======\n\nBye.\n"
    )
    chunks = chunk_text(text, document_id="doc", size=100, overlap=0)
    paths = [c.headings for c in chunks]
    assert paths == [
        ("Project",),
        ("Project", "Usage"),
        ("Project", "Usage", "Options"),
        ("Project", "Usage", "Options", "Advanced"),
        ("Project", "Thanks"),
    ]


def test_markdown_setext_levels_next_to_atx() -> None:
    text = "# Top\n\nA.\n\nChild\n-----\n\nB.\n\nSibling\n=======\n\nC."
    paths = [c.headings for c in chunk_text(text, document_id="doc", size=100, overlap=0)]
    assert paths == [("Top",), ("Top", "Child"), ("Sibling",)]


def test_front_matter_dashes_are_not_a_heading() -> None:
    text = "---\ntitle: x\n---\n\nBody text."
    chunks = chunk_text(text, document_id="doc", size=100, overlap=0)
    assert [c.headings for c in chunks] == [()]


def test_small_paragraphs_are_packed_and_cut_at_blank_lines() -> None:
    paragraphs = [f"Paragraph {i} says something short about topic {i}." for i in range(30)]
    text = "\n\n".join(paragraphs)
    chunks = chunk_text(text, document_id="doc", size=60, overlap=0)
    assert 1 < len(chunks) < len(paragraphs)
    for c in chunks:
        assert c.text.startswith("Paragraph ")
        assert c.text.endswith(".")
        assert c.text.count("\n\n") >= 1  # several paragraphs per chunk
    assert "\n\n".join(c.text for c in chunks) == text


def test_long_paragraph_is_cut_at_sentence_ends() -> None:
    sentences = [f"Sentence number {i} talks about retrieval quality." for i in range(60)]
    text = " ".join(sentences)
    chunks = chunk_text(text, document_id="doc", size=50, overlap=10)
    assert len(chunks) > 3
    for c in chunks[:-1]:
        assert c.text.endswith(".")
    for prev, nxt in pairwise(chunks):
        assert nxt.start < prev.end  # overlapping
        assert text[nxt.start - 1] == " "  # and the overlap starts at a word boundary


def test_overlap_zero_tiles_the_text() -> None:
    text = " ".join(f"word{i}" for i in range(500))
    chunks = chunk_text(text, document_id="doc", size=40, overlap=0)
    assert " ".join(c.text for c in chunks) == text


def test_overlap_starts_at_word_boundaries() -> None:
    text = " ".join(f"w{i}" for i in range(400))
    chunks = chunk_text(text, document_id="doc", size=40, overlap=12)
    for prev, nxt in pairwise(chunks):
        shared = text[nxt.start : prev.end]
        assert 0 < count_tokens(shared) <= 12
        assert text[nxt.start - 1] == " "


def test_long_unbroken_string_is_cut_at_token_boundaries() -> None:
    blob = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(40))
    chunks = chunk_text(blob, document_id="doc", size=30, overlap=0)
    assert len(chunks) > 10
    assert "".join(c.text for c in chunks) == blob
    assert all(count_tokens(c.text) <= 30 for c in chunks)
    # With overlap, a run without spaces overlaps mid-word: nothing else is possible.
    overlapping = chunk_text(blob, document_id="doc", size=30, overlap=5)
    assert any(n.start < p.end for p, n in pairwise(overlapping))


def test_non_ascii_offsets_are_character_offsets() -> None:
    text = ("Emoji 😀🎉 and accents é ü. " * 20) + "\n\n" + ("中文句子。日本語の文です。" * 30)
    chunks = chunk_text(text, document_id="doc", size=24, overlap=6)
    check_invariants(text, chunks, 24, 6)
    assert any("中" in c.text for c in chunks)
    # CJK text is cut after a full stop, not inside a sentence.
    cjk = [c for c in chunks if c.text.startswith(("中", "日"))]
    assert cjk
    assert all(c.text.endswith("。") for c in cjk[:-1])


def test_lone_surrogates_do_not_break_offsets() -> None:
    text = "before \ud800 after. " * 10
    check_invariants(text, chunk_text(text, document_id="doc", size=10, overlap=2), 10, 2)


def test_chunk_document_uses_the_document_id() -> None:
    doc = Document("guide/intro.md", "# Intro\n\nHello there.\n\n# Next\n\nMore.")
    chunks = chunk_document(doc, size=50, overlap=5)
    assert [c.id for c in chunks] == ["guide/intro.md#0", "guide/intro.md#1"]
    assert all(c.document_id == doc.id for c in chunks)
    assert chunks == chunk_text(doc.text, document_id=doc.id, size=50, overlap=5)


def test_empty_document_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="document_id"):
        chunk_text("text", document_id="")


@pytest.mark.parametrize("layout", ["sections", "paragraphs", "lines", "one paragraph"])
@pytest.mark.parametrize("edit", ["append", "insert", "change a word"])
def test_a_local_edit_moves_only_the_chunks_around_it(layout: str, edit: str) -> None:
    """Boundaries depend on nearby text only, so an edit re-embeds a few chunks, not the rest."""
    import random

    rng = random.Random(7)
    words = "the parser cache flag release notes fix feature option index search vector".split()
    units = [
        " ".join(rng.choice(words) for _ in range(rng.randint(15, 90))).capitalize() + "."
        for _ in range(900)
    ]

    def document(parts: list[tuple[int, str]]) -> str:
        if layout == "lines":
            return "\n".join(p for _, p in parts)
        if layout == "one paragraph":
            return " ".join(p for _, p in parts)
        out = []
        for number, part in parts:
            if layout == "sections" and number % 10 == 0:
                out.append(f"## Section {number}")
            out.append(part)
        return "\n\n".join(out) + "\n"

    before = list(enumerate(units))
    if edit == "append":
        after = [*before, (-1, "A new closing remark about the cache.")]
    elif edit == "insert":
        after = [*before[:455], (-1, "An inserted remark about the cache."), *before[455:]]
    else:
        after = [*before[:300], (-1, units[300].replace("the", "THE", 1)), *before[301:]]
    old = {c.text for c in chunk_text(document(before), document_id="d", size=128, overlap=16)}
    new = [c.text for c in chunk_text(document(after), document_id="d", size=128, overlap=16)]
    assert len(new) > 150
    # The chunk the edit falls in, its neighbours through the overlap, and nothing further.
    assert len([t for t in new if t not in old]) <= (3 if edit == "append" else 4)


# --------------------------------------------------------------------------- tables


def table_text(n_rows: int, *, caption: str = "Table 2: Scores") -> str:
    rows = "\n".join(f"| item {i} | value {i} is a number | note {i} |" for i in range(n_rows))
    head = f"{caption}\n" if caption else ""
    return (
        "# Results\n\nIntro paragraph here. It says what the scores mean.\n\n"
        f"{head}| Name | Value | Note |\n| --- | --- | --- |\n{rows}\n\nAfter the table text."
    )


def test_a_small_table_is_one_chunk_with_its_caption() -> None:
    text = table_text(3)
    chunks = chunk_text(text, document_id="d", size=200, overlap=20)
    assert [c.text.split("\n")[0] for c in chunks] == [
        "# Results",
        "Table 2: Scores",
        "After the table text.",
    ]
    assert chunks[1].text.endswith("| item 2 | value 2 is a number | note 2 |")
    assert all(c.headings == ("Results",) for c in chunks)


@pytest.mark.parametrize("size", [40, 64, 120, 250])
@pytest.mark.parametrize("overlap", [0, 20])
@pytest.mark.parametrize("caption", ["Table 2: Scores", ""])
def test_a_large_table_is_split_between_rows_with_its_header_in_the_path(
    size: int, overlap: int, caption: str
) -> None:
    text = table_text(60, caption=caption)
    chunks = chunk_text(text, document_id="d", size=size, overlap=overlap)
    table_start = text.index(caption or "| Name |")
    table_end = text.index("\n\nAfter")
    pieces = [c for c in chunks if table_start <= c.start < table_end]
    assert len(pieces) > 1
    assert pieces[0].start == table_start
    assert pieces[-1].end == table_end
    assert pieces[0].headings == ("Results",)
    header = (caption,) if caption else ()
    for before, piece in pairwise(pieces):
        assert piece.start > before.end  # whole rows, no overlap between pieces
        assert piece.text.startswith("| item ")
        assert piece.text.endswith(" |")
        assert piece.headings == ("Results", *header, "| Name | Value | Note |")
    # Every row is in exactly one piece, and no paragraph is glued to the table.
    rows = re.findall(r"^\| item .*\|$", text, re.M)
    kept = [r for c in pieces for r in c.text.split("\n") if r.startswith("| item")]
    assert sorted(kept) == sorted(rows)
    assert not any("Intro" in c.text or "After" in c.text for c in pieces)


def test_a_row_longer_than_a_chunk_is_cut_inside_the_row() -> None:
    row = "| " + " ".join(["word"] * 200) + " | end |"
    text = f"| A | B |\n| --- | --- |\n{row}\n| short | row |"
    chunks = chunk_text(text, document_id="d", size=60, overlap=0)
    assert all(count_tokens(c.text) <= 60 for c in chunks)
    assert chunks[-1].text.endswith("| short | row |")
    assert "".join(c.text for c in chunks).replace(" ", "").replace("\n", "") == text.replace(
        " ", ""
    ).replace("\n", "")
