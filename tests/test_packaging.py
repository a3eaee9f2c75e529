"""The package as a user installs it: sdist and wheel build offline, their metadata is valid, and
the wheel, installed into a fresh venv, runs ``ragkit --version`` and a search.

A packaging slip (a module or package-data file left out of the wheel, a wrong entry point, the
wrong distribution name) fails here rather than on a user's machine. The fresh venv borrows the
test environment's dependencies through a ``.pth`` file (no network at test time); ragkit itself
comes only from the wheel.
"""

from __future__ import annotations

import email
import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("build")
pytest.importorskip("twine")

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "ragkit-claude"


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist and wheel built from the files git would commit (the wheel from the sdist)."""
    source = tmp_path_factory.mktemp("source")
    listed = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    for rel in filter(None, listed.split("\0")):
        if (ROOT / rel).is_file():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, source / rel)
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source)
    return out


def test_sdist_and_wheel_carry_the_right_name_and_valid_metadata(dist: Path) -> None:
    wheels = list(dist.glob("*.whl"))
    sdists = list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1
    assert len(sdists) == 1
    _run(sys.executable, "-m", "twine", "check", "--strict", *wheels, *sdists)
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(wheel.read(metadata_name))
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = wheel.read(entry_points).decode()
    assert metadata["Name"] == DISTRIBUTION
    import ragkit

    assert metadata["Version"] == ragkit.__version__
    assert "ragkit = ragkit.cli:main" in scripts
    # Every module and package-data file of the source tree is in the wheel.
    expected = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "ragkit").rglob("*")
        if p.is_file() and p.suffix in {".py", ".json", ".typed"} and "__pycache__" not in p.parts
    }
    assert expected - names == set()


def test_the_installed_wheel_runs_version_and_a_search(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    # The test environment's dependencies, not its ragkit (that is an editable install whose
    # .pth file a plain path entry does not run).
    (site / "_test_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8"
    )
    (wheel,) = dist.glob("*.whl")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    ragkit = venv / "bin" / "ragkit"
    assert _run(ragkit, "--version", cwd=tmp_path).strip() == f"ragkit, version {_version()}"
    where = _run(python, "-c", "import ragkit; print(ragkit.__file__)", cwd=tmp_path)
    assert where.startswith(str(site))

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees.\n", "utf-8")
    (docs / "coffee.md").write_text("# Coffee\n\nEspresso is brewed under pressure.\n", "utf-8")
    (docs / "bread.md").write_text("# Bread\n\nSourdough rises overnight.\n", "utf-8")
    _run(ragkit, "index", docs, "--index", tmp_path / "ix", cwd=tmp_path)
    found = json.loads(
        _run(ragkit, "search", "espresso", "--index", tmp_path / "ix", "--json", cwd=tmp_path)
    )
    assert found["results"][0]["id"] == "coffee.md#0"


def _version() -> str:
    import ragkit

    return ragkit.__version__


def test_every_install_line_names_this_distribution() -> None:
    """No README, docs page, message or example tells a user to install PyPI's other `ragkit`."""
    import re

    wrong = re.compile(r"pip install\s+(-e\s+)?['\"]?ragkit(?![-\w])")
    places = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "ragkit").rglob("*.py")]
    places += [*(ROOT / "examples").glob("*.py"), ROOT / "Makefile"]
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in places
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if wrong.search(line)
    ]
    assert found == []
