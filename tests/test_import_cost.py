"""Import cost: ``import ragkit`` loads no loader, index, evaluation or Claude SDK module until a
name that needs one is used (a fresh ``ragkit search`` process pays only for what it runs)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("ragkit.loaders", "ragkit.index", "ragkit.evaluation", "ragkit.answering", "anthropic")


def loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_import_ragkit_loads_no_heavy_module() -> None:
    loaded = loaded_after("import ragkit")
    assert not loaded & set(HEAVY)


def test_public_names_load_on_first_use() -> None:
    import ragkit

    assert ragkit.Index.__module__ == "ragkit.index"
    assert ragkit.load_folder.__module__.startswith("ragkit.loaders")
    assert set(ragkit.__all__) <= set(dir(ragkit))
    loaded = loaded_after("import ragkit\nragkit.open_index")
    assert "ragkit.index" in loaded
    assert "anthropic" not in loaded
