"""Generators of the files loaders must survive: bombs, and small valid PDFs and .docx packages.

Everything is built in memory in well under a second: a deflate stream of gigabytes is the
same compressed block repeated (each block ends with a full flush, so it compresses to the same
bytes every time), and zip archives are written by hand so their declared sizes can lie.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

MiB = 1024 * 1024


# --------------------------------------------------------------------------- deflate and zip


def repeated_deflate(block: bytes, times: int) -> tuple[bytes, int, int]:
    """A raw deflate stream of ``block`` repeated ``times``: (stream, crc32, inflated size)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.flush()
    crc = 0
    block_crc = zlib.crc32(block)
    # crc32 of the repetition, computed without building the inflated bytes
    crc = block_crc
    for _ in range(times - 1):
        crc = zlib.crc32(block, crc)
    stream = first + again * (times - 1) + tail
    return stream, crc & 0xFFFFFFFF, len(block) * times


def zip_archive(entries: Sequence[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip of ``(name, deflated, crc, inflated size, declared size)`` entries."""
    out = bytearray()
    central = bytearray()
    for name, data, crc, _size, declared in entries:
        raw_name = name.encode()
        offset = len(out)
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), declared,
            len(raw_name), 0,
        )  # fmt: skip
        out += raw_name + data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), declared,
            len(raw_name), 0, 0, 0, 0, 0, offset,
        )  # fmt: skip
        central += raw_name
    start = len(out)
    out += central
    out += struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), start, 0
    )
    return bytes(out)


def _entry(name: str, data: bytes) -> tuple[str, bytes, int, int, int]:
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = comp.compress(data) + comp.flush()
    return name, raw, zlib.crc32(data) & 0xFFFFFFFF, len(data), len(data)


# --------------------------------------------------------------------------- .docx

W_TRANSITIONAL = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
W_STRICT = "http://purl.oclc.org/ooxml/wordprocessingml/main"
R_TRANSITIONAL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
R_STRICT = "http://purl.oclc.org/ooxml/officeDocument/relationships"

_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Default Extension="rels" '
    b'ContentType="application/vnd.openxmlformats-package.relationships+xml"/></Types>'
)


def _rels(items: Sequence[tuple[str, str]], rel_ns: str) -> bytes:
    body = "".join(
        f'<Relationship Id="rId{i}" Type="{rel_ns}/{kind}" Target="{target}"/>'
        for i, (kind, target) in enumerate(items, 1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns='
        f'"http://schemas.openxmlformats.org/package/2006/relationships">{body}</Relationships>'
    ).encode()


def docx_package(
    body: str,
    *,
    strict: bool = False,
    styles: str = "",
    footnotes: str = "",
    title: str = "",
    document_entry: tuple[str, bytes, int, int, int] | None = None,
) -> bytes:
    """A .docx whose ``w:body`` holds ``body`` (XML with the ``w:`` prefix)."""
    w = W_STRICT if strict else W_TRANSITIONAL
    rel_ns = R_STRICT if strict else R_TRANSITIONAL
    ns = (
        f'xmlns:w="{w}" '
        'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
        'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
        'xmlns:v="urn:schemas-microsoft-com:vml"'
    )
    root = [("officeDocument", "word/document.xml")]
    entries = []
    if title:
        root.append(("metadata/core-properties", "docProps/core.xml"))
        entries.append(
            _entry(
                "docProps/core.xml",
                (
                    '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
                    'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/">'
                    f"<dc:title>{title}</dc:title></cp:coreProperties>"
                ).encode(),
            )
        )
    related = []
    if styles:
        related.append(("styles", "styles.xml"))
        entries.append(_entry("word/styles.xml", f"<w:styles {ns}>{styles}</w:styles>".encode()))
    if footnotes:
        related.append(("footnotes", "footnotes.xml"))
        entries.append(
            _entry("word/footnotes.xml", f"<w:footnotes {ns}>{footnotes}</w:footnotes>".encode())
        )
    document = document_entry or _entry(
        "word/document.xml", f"<w:document {ns}><w:body>{body}</w:body></w:document>".encode()
    )
    return zip_archive(
        [
            _entry("[Content_Types].xml", _CONTENT_TYPES),
            _entry("_rels/.rels", _rels(root, rel_ns)),
            _entry("word/_rels/document.xml.rels", _rels(related, rel_ns)),
            document,
            *entries,
        ]
    )


def paragraph(text: str, style: str = "") -> str:
    """One ``w:p`` with one run (``style`` is a style ID)."""
    ppr = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f'<w:p>{ppr}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'


def docx_bomb(inflated: int = 400 * MiB, *, declared: int | None = None) -> bytes:
    """A .docx whose ``word/document.xml`` inflates to ``inflated`` bytes (about 1 MB zipped).

    ``declared`` is the size its zip headers claim (the true size when ``None``).
    """
    w = W_TRANSITIONAL
    head = f'<w:document xmlns:w="{w}"><w:body>'.encode()
    unit = b"<w:p><w:r><w:t>" + b"A" * 200 + b"</w:t></w:r></w:p>"
    block = unit * (MiB // len(unit))
    times = max(1, (inflated - len(head)) // len(block))
    stream, _crc, size = repeated_deflate(block, times)
    # head + blocks (no closing tags: the parser is stopped long before the end)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head_raw = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    total = len(head) + size
    crc = zlib.crc32(block * 0, zlib.crc32(head))  # the CRC is never reached: wrong on purpose
    entry = ("word/document.xml", head_raw + stream, crc, total, declared or total)
    return docx_package("", document_entry=entry)


# --------------------------------------------------------------------------- PDF


def pdf_file(
    contents: Sequence[bytes],
    *,
    outline: Sequence[tuple[int, str, int]] = (),
    title: str = "",
    compressed: bool = False,
) -> bytes:
    """A PDF with one page per content stream (Helvetica as /F1).

    ``outline`` holds ``(level, title, page index)`` bookmarks (level 0 is the top), in order.
    With ``compressed``, each content stream is already deflated (zlib) and marked FlateDecode.
    """
    objects: list[bytes] = [b"", b""]  # 1 catalog, 2 pages

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for content in contents:
        filt = b" /Filter /FlateDecode" if compressed else b""
        stream = b"<< /Length %d%s >>\nstream\n" % (len(content), filt) + content
        c = add(stream + b"\nendstream")
        kids.append(
            add(
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << "
                b"/F1 %d 0 R >> >> /Contents %d 0 R >>" % (font, c)
            )
        )
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    catalog = b"<< /Type /Catalog /Pages 2 0 R"
    if outline:
        catalog += b" /Outlines %d 0 R" % _outline(objects, add, outline, kids)
    objects[0] = catalog + b" >>"
    info = add(b"<< /Title (%s) >>" % title.encode("latin-1")) if title else 0
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    trailer = b"<< /Size %d /Root 1 0 R" % (len(objects) + 1)
    if info:
        trailer += b" /Info %d 0 R" % info
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def _outline(
    objects: list[bytes], add: object, outline: Sequence[tuple[int, str, int]], kids: list[int]
) -> int:
    """Outline dictionaries for ``(level, title, page)`` items; returns the root's number."""
    root = len(objects) + 1
    objects.append(b"")
    numbers = [root + 1 + i for i in range(len(outline))]
    objects.extend(b"" for _ in outline)
    parents: list[int] = []
    children: dict[int, list[int]] = {root: []}
    for i, (level, _title, _page) in enumerate(outline):
        del parents[level:]
        parent = parents[-1] if parents else root
        children.setdefault(parent, []).append(i)
        children.setdefault(numbers[i], [])
        parents.append(numbers[i])

    def kids_of(number: int) -> list[int]:
        return [numbers[i] for i in children[number]]

    for i, (_level, title, page) in enumerate(outline):
        number = numbers[i]
        parent = next(p for p, c in children.items() if i in c)
        siblings = kids_of(parent)
        at = siblings.index(number)
        body = b"<< /Title (%s) /Parent %d 0 R /Dest [%d 0 R /XYZ 0 792 0]" % (
            title.encode("latin-1"),
            parent,
            kids[page],
        )
        if at > 0:
            body += b" /Prev %d 0 R" % siblings[at - 1]
        if at < len(siblings) - 1:
            body += b" /Next %d 0 R" % siblings[at + 1]
        mine = kids_of(number)
        if mine:
            body += b" /First %d 0 R /Last %d 0 R /Count %d" % (mine[0], mine[-1], len(mine))
        objects[number - 1] = body + b" >>"
    top = kids_of(root)
    objects[root - 1] = b"<< /Type /Outlines /First %d 0 R /Last %d 0 R /Count %d >>" % (
        top[0],
        top[-1],
        len(top),
    )
    return root


def text_page(lines: Sequence[str]) -> bytes:
    """A content stream showing ``lines`` top to bottom."""
    ops = [b"BT /F1 11 Tf 72 720 Td 14 TL"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(b"(" + escaped.encode("latin-1") + b") '")
    ops.append(b"ET")
    return b"\n".join(ops)


def sized_page(lines: Sequence[tuple[int, str]]) -> bytes:
    """A content stream showing ``(font size, text)`` lines top to bottom."""
    ops = [b"BT 72 720 Td"]
    for size, line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(b"/F1 %d Tf %d TL (%s) '" % (size, size + 3, escaped.encode("latin-1")))
    ops.append(b"ET")
    return b"\n".join(ops)


def pdf_bomb(pages: int = 100, inflated: int = 50 * MiB) -> bytes:
    """``pages`` pages whose content streams each inflate to ``inflated`` bytes of text operators.

    PDFium needs seconds and hundreds of MiB per page for such a stream.
    """
    unit = b"BT /F1 1 Tf 10 10 Td (" + b"A" * 40 + b") Tj ET\n"
    block = unit * (MiB // len(unit))
    stream, _crc, _size = repeated_deflate(block, max(1, inflated // len(block)))
    content = b"\x78\x9c" + stream  # a zlib header; no checksum (readers stop at the end)
    return pdf_file([content] * pages, compressed=True)
