"""PDF text extraction: speed and text quality of the PDF libraries on real PDFs.

Reads the PDFs that Debian's `bash-doc` (groff and TeX output) and `r-doc-pdf` (TeX) ship
(`apt-get install bash-doc r-doc-pdf wamerican poppler-utils`) with each library available and
reports, per library: seconds per 100 pages (median of the runs, and the ratio to pypdfium2
measured in the same run), split words per 10,000 words ("tilde e xpansion": two adjacent
tokens that are not both dictionary words but whose concatenation is one), merged words per
10,000 words ("invokedcommand": a token that is not a word but splits into two words of at
least three letters) and the share of tokens found in the dictionary (/usr/share/dict/words).

    python bench/bench_pdf.py [--runs 3] [--libs pypdfium2,pdftotext,pypdf,pdfminer]

With ``--tables`` it measures instead what ragkit's PDF table finder costs: ``PdfLoader`` with
``tables=True`` against ``tables=False`` on the same real PDFs (interleaved runs, medians), and
on a generated 100-page report (reportlab) with two tables a page (a grid and a rules-only one),
where pdfplumber's table finder (if installed) is timed on the same pages for comparison.

    python bench/bench_pdf.py --tables [--runs 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

FILES = [
    "/usr/share/doc/bash-doc/bash.pdf",
    "/usr/share/doc/bash-doc/bashref.pdf",
    "/usr/share/doc/r-doc-pdf/manual/R-intro.pdf",
    "/usr/share/doc/r-doc-pdf/manual/R-FAQ.pdf",
    "/usr/share/doc/r-doc-pdf/manual/R-data.pdf",
    "/usr/share/doc/r-doc-pdf/manual/R-lang.pdf",
]
WORD = re.compile(r"[A-Za-z]+")


def pypdfium2_pages(path: str) -> list[str]:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(path)
    out = []
    for i in range(len(doc)):
        page = doc[i]
        textpage = page.get_textpage()
        out.append(textpage.get_text_bounded())
        textpage.close()
        page.close()
    doc.close()
    return out


def ragkit_pages(path: str) -> list[str]:
    """What ragkit's PdfLoader keeps (pypdfium2 plus its clean-up), pages joined."""
    from ragkit.loaders import PdfLoader

    doc = PdfLoader().load(Path(path).read_bytes(), document_id=path)
    return [doc.text]


def pypdf_pages(path: str) -> list[str]:
    import pypdf

    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    return [p.extract_text() or "" for p in pypdf.PdfReader(path).pages]


def pdfminer_pages(path: str) -> list[str]:
    from pdfminer.high_level import extract_text

    return [extract_text(path)]


def pdftotext_pages(path: str) -> list[str]:
    out = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", path, "-"], capture_output=True, check=True
    ).stdout
    return [out.decode("utf-8", "replace")]


LIBS: dict[str, tuple[Callable[[str], list[str]], str]] = {
    "pypdfium2": (pypdfium2_pages, "Apache-2.0 or BSD-3-Clause (PDFium: BSD-3/Apache-2.0)"),
    "ragkit": (ragkit_pages, "(ragkit's PdfLoader on pypdfium2)"),
    "pdftotext": (pdftotext_pages, "GPL-2/3 (poppler-utils, an external program)"),
    "pypdf": (pypdf_pages, "BSD-3-Clause"),
    "pdfminer": (pdfminer_pages, "MIT"),
}


def quality(text: str, words: set[str]) -> tuple[float, float, float, int]:
    tokens = [t.lower() for t in WORD.findall(text.replace("\x02", ""))]
    n = max(len(tokens), 1)
    split = 0
    for a, b in zip(tokens, tokens[1:], strict=False):
        if (a not in words or b not in words) and len(a + b) >= 5 and a + b in words:
            split += 1
    merged = 0
    for t in tokens:
        if len(t) >= 7 and t not in words:
            if any(t[:i] in words and t[i:] in words for i in range(3, len(t) - 2)):
                merged += 1
    known = sum(t in words for t in tokens)
    return 1e4 * split / n, 1e4 * merged / n, known / n, len(tokens)


def page_count(path: str) -> int:
    import pypdfium2 as pdfium

    return len(pdfium.PdfDocument(path))


def table_report(pages: int = 100) -> bytes:
    """A report of ``pages`` pages, each with text, a ruled grid and a booktabs-style table."""
    import io

    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Table, TableStyle

    sheet = getSampleStyleSheet()
    grid = TableStyle([("GRID", (0, 0), (-1, -1), 0.5, (0, 0, 0))])
    rules = TableStyle(
        [
            ("LINEABOVE", (0, 0), (-1, 0), 1, (0, 0, 0)),
            ("LINEBELOW", (0, 0), (-1, 0), 0.5, (0, 0, 0)),
            ("LINEBELOW", (0, -1), (-1, -1), 1, (0, 0, 0)),
        ]
    )
    story: list[object] = []
    for p in range(pages):
        rows = [["Region", "Quarter", "Revenue", "Change"]] + [
            [f"Region {r}", f"Q{r % 4 + 1}", f"{(p + 1) * r * 1.7:,.1f}", f"{r - 4:+d}%"]
            for r in range(10)
        ]
        story += [
            Paragraph(f"Section {p + 1}", sheet["Heading2"]),
            Paragraph(
                "Revenue by region for the quarter, with the change from last year. " * 4,
                sheet["BodyText"],
            ),
            Paragraph(f"Table {2 * p + 1}: Revenue", sheet["BodyText"]),
            Table(rows, style=grid),
            Paragraph("Costs follow the same pattern, see below. " * 3, sheet["BodyText"]),
            Paragraph(f"Table {2 * p + 2}: Costs", sheet["BodyText"]),
            Table(rows[:8], style=rules),
            PageBreak(),
        ]
    out = io.BytesIO()
    SimpleDocTemplate(out).build(story)
    return out.getvalue()


def tables_main(runs: int) -> None:
    """Seconds per 100 pages with the table finder on and off, in one interleaved run."""
    from ragkit.loaders import PdfLoader

    files = {Path(f).name: Path(f).read_bytes() for f in FILES if os.path.exists(f)}
    files["generated report (2 tables a page)"] = table_report()
    print(f"load average before: {os.getloadavg()}")
    print("| file | pages | tables found | s/100 pages, tables off | tables on | on / off |")
    print("| --- | --- | --- | --- | --- | --- |")
    ratios = []
    for name, data in files.items():
        import pypdfium2 as pdfium

        n_pages = len(pdfium.PdfDocument(data))
        times: dict[bool, list[float]] = {False: [], True: []}
        text = ""
        for _ in range(runs):
            for on in (False, True):
                t0 = time.perf_counter()
                doc = PdfLoader(tables=on).load(data, document_id=name)
                times[on].append(time.perf_counter() - t0)
                if on:
                    text = doc.text
        off, on_ = (100 * statistics.median(times[k]) / n_pages for k in (False, True))
        found = len(re.findall(r"^\| --- \|", text, re.M))
        ratios.append(on_ / off)
        print(f"| {name} | {n_pages} | {found} | {off:.2f} | {on_:.2f} | {on_ / off:.2f}x |")
    try:
        import pdfplumber
    except ImportError:
        print("pdfplumber: not installed")
    else:
        import io

        data = files["generated report (2 tables a page)"]
        t0 = time.perf_counter()
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            found = sum(len(page.find_tables()) for page in pdf.pages)
            n_pages = len(pdf.pages)
        seconds = 100 * (time.perf_counter() - t0) / n_pages
        print(
            f"| pdfplumber find_tables (lines), generated report | {n_pages} | {found} | "
            f"{seconds:.2f} (one run) | | |"
        )
    print(f"\nload average after: {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--libs", default="pypdfium2,ragkit,pdftotext,pypdf,pdfminer")
    parser.add_argument("--tables", action="store_true", help="measure the table finder")
    args = parser.parse_args()
    if args.tables:
        tables_main(args.runs)
        return
    words = {w.strip().lower() for w in open("/usr/share/dict/words", encoding="utf-8")}
    words = {w for w in words if w.isalpha() and (len(w) > 1 or w in ("a", "i"))}
    files = [f for f in FILES if os.path.exists(f)]
    pages = {f: page_count(f) for f in files}
    print(f"load average before: {os.getloadavg()}")
    print(f"{len(files)} files, {sum(pages.values())} pages")
    rows = []
    per_file: dict[str, dict[str, tuple[float, float, float]]] = {}
    for lib in args.libs.split(","):
        fn, licence = LIBS[lib]
        try:
            fn(files[0])
        except Exception as exc:  # noqa: BLE001 - a library that is not installed
            print(f"{lib}: not available ({type(exc).__name__}: {exc})")
            continue
        per100 = []
        split_w = merged_w = known_w = 0.0
        total = 0
        for f in files:
            runs = []
            for _ in range(args.runs if lib in ("pypdfium2", "ragkit", "pdftotext") else 1):
                t0 = time.perf_counter()
                text = "\n".join(fn(f))
                runs.append(time.perf_counter() - t0)
            s, m, k, n = quality(text, words)
            seconds = 100 * statistics.median(runs) / pages[f]
            per_file.setdefault(Path(f).name, {})[lib] = (seconds, s, m)
            per100.append(seconds)
            split_w += s * n
            merged_w += m * n
            known_w += k * n
            total += n
        rows.append(
            (
                lib,
                statistics.median(per100),
                split_w / total,
                merged_w / total,
                known_w / total,
                licence,
            )
        )
    base = next((r[1] for r in rows if r[0] == "pypdfium2"), None)
    print()
    print(
        "| library | s per 100 pages (median over files) | vs pypdfium2 | split words /10k | "
        "merged words /10k | dictionary words | licence |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for lib, sec, split, merged, known, licence in rows:
        ratio = f"{sec / base:.1f}x" if base else "-"
        print(
            f"| {lib} | {sec:.2f} | {ratio} | {split:.1f} | {merged:.1f} | {known:.1%} "
            f"| {licence} |"
        )
    print()
    print("| file | " + " | ".join(f"{r[0]} s/100p, split, merged" for r in rows) + " |")
    print("| --- |" + " --- |" * len(rows))
    for name, libs in per_file.items():
        cells = [
            "{:.2f}, {:.1f}, {:.1f}".format(*libs[r[0]]) if r[0] in libs else "-" for r in rows
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
