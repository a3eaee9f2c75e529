"""The docs site builds with --strict, has no broken internal link, and renders in a browser.

Builds the site (mkdocs.yml at the repo root) into a temporary directory, then (a) parses every
built page and checks that each internal link's file and #anchor exist, and (b) loads the
tutorial and the API reference in headless Chromium and checks the rendered DOM holds their
headings and that the theme's scripts ran. Skips when mkdocs (extra `docs`) or Chromium is
missing. External links are not followed: the tests never touch the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_S = 180
BROWSER_TIMEOUT_S = 60

pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
pytest.importorskip("material", reason="mkdocs-material is not installed (extra docs)")
pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed (extra docs)")


class _Page(HTMLParser):
    """Collects a page's element IDs, its links (href/src) and its headings' text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.headings: list[tuple[str, str, str]] = []  # (tag, id, text)
        self._heading: tuple[str, str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"] or "")
        for attr in ("href", "src"):
            if a.get(attr) and tag in ("a", "link", "script", "img"):
                self.links.append(a[attr] or "")
        if tag in ("h1", "h2", "h3"):
            self._heading = (tag, a.get("id") or "")
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._heading is not None and tag == self._heading[0]:
            text = " ".join("".join(self._text).split()).rstrip("¶").strip()
            self.headings.append((*self._heading, text))
            self._heading = None


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    # No --quiet: mkdocs counts warnings for --strict only when they are logged.
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-4000:]}"
    return out


def test_every_internal_link_and_anchor_resolves(site: Path) -> None:
    pages = {p: _parse(p.read_text(encoding="utf-8")) for p in site.rglob("*.html")}
    assert site / "tutorial.html" in pages
    assert site / "reference.html" in pages
    broken: list[str] = []
    checked = 0
    for page_path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
                continue  # external: not followed
            path = unquote(parts.path)
            if not path:
                target = page_path
            elif path.startswith("/"):
                target = site / path.lstrip("/")  # 404.html links from the site root
            else:
                target = (page_path.parent / path).resolve()
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            where = f"{page_path.relative_to(site)}: {link}"
            if not target.is_file():
                broken.append(f"{where} (no file {target})")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else set()
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{where} (no anchor #{parts.fragment})")
    assert checked > 100, f"only {checked} internal links found; is the site empty?"
    assert not broken, "broken internal links:\n" + "\n".join(broken)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium on PATH (Debian: apt-get install chromium)")


def _rendered(page: Path, tmp_path: Path) -> str:
    done = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT_S,
    )
    assert done.returncode == 0, f"chromium failed on {page.name}:\n{done.stderr[-2000:]}"
    return done.stdout


def test_tutorial_renders_in_chromium(site: Path, tmp_path: Path) -> None:
    dom = _rendered(site / "tutorial.html", tmp_path)
    headings = [(tag, text) for tag, _, text in _parse(dom).headings]
    assert ("h1", "Tutorial: from a folder of notes to a cited answer") in headings
    for step in ("Index the folder", "Search", "Ask", "Read the citations", "Update a file"):
        assert any(tag == "h2" and step in text for tag, text in headings), step
    # The theme's script ran: it adds a copy button to every code block.
    assert "md-code__button" in dom


def test_api_reference_renders_in_chromium(site: Path, tmp_path: Path) -> None:
    dom = _rendered(site / "reference.html", tmp_path)
    ids = {hid for _, hid, _ in _parse(dom).headings}
    assert "api-reference" in ids
    # One section per documented module, and the main entry points with their own anchors.
    for name in (
        "ragkit.index",
        "ragkit.base",
        "ragkit.filters",
        "ragkit.stores.memory",
        "ragkit.stores.postgres",
        "ragkit.errors",
    ):
        assert name in ids, name
    for name in (
        "ragkit.index_folder",
        "ragkit.index.Index",
        "ragkit.base.Store",
        "ragkit.errors.RagkitError",
    ):
        assert name in ids, name
    assert "md-code__button" in dom
