"""Tests of ragkit.plugins: one registry mechanism, one precedence rule, one unknown-name error,
and the built-ins declared in pyproject.toml the same way the registries load them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomllib

from ragkit import plugins as module
from ragkit.embedders import EMBEDDERS
from ragkit.errors import RagkitError, UnknownNameError
from ragkit.loaders import LOADERS, loader_for
from ragkit.rerankers import RERANKERS
from ragkit.stores import STORES, available_stores, open_store, register_store, scheme_of

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_every_extension_point_is_one_registry() -> None:
    assert [r.group for r in (EMBEDDERS, RERANKERS, LOADERS, STORES)] == [
        "ragkit.embedders",
        "ragkit.rerankers",
        "ragkit.loaders",
        "ragkit.stores",
    ]
    assert {EMBEDDERS, RERANKERS, LOADERS, STORES} <= set(module.REGISTRIES)


def test_pyproject_declares_the_builtins_the_registries_load() -> None:
    declared = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["entry-points"]
    for registry in (EMBEDDERS, RERANKERS, STORES):
        assert declared[registry.group] == registry._builtins
    loaders = set(declared[LOADERS.group].values())
    assert loaders == set(LOADERS._builtins.values())
    for target in loaders:  # each built-in loader reads exactly the suffixes the table gives it
        loader = LOADERS._accept(module._import(target))
        assert {s for s, t in LOADERS._builtins.items() if t == target} == set(loader.suffixes)


def test_ragkits_own_entry_points_are_its_builtins_not_plugins() -> None:
    for registry in (EMBEDDERS, RERANKERS, LOADERS, STORES):
        assert all(not ep.value.startswith("ragkit.") for ep in module.entry_points(registry.group))
        assert all(registry.source(name) == "built-in" for name in registry._builtins)


def test_unknown_names_raise_one_error_listing_the_known_ones() -> None:
    for registry, name in ((EMBEDDERS, "nope"), (RERANKERS, "nope"), (STORES, "s3")):
        with pytest.raises(UnknownNameError, match=f"unknown {registry.kind} '{name}'") as info:
            registry.get(name)
        error = info.value
        assert isinstance(error, RagkitError)
        assert isinstance(error, ValueError)
        assert (error.kind, error.name, error.known) == (
            registry.kind,
            name,
            tuple(registry.names()),
        )
        assert ", ".join(registry.names()) in str(error)
    assert loader_for(".nope") is None  # a suffix nobody reads is skipped, not an error


def test_open_store_dispatches_by_scheme_through_the_registry(
    tmp_path: Path, plugins: dict[str, list[Any]]
) -> None:
    assert {"file", "postgres", "postgresql"} <= set(available_stores())
    assert scheme_of("postgresql://db/app") == "postgresql"
    assert scheme_of(tmp_path) == scheme_of(str(tmp_path)) == "file"
    with pytest.raises(UnknownNameError, match=r"unknown store 's3://bucket/idx'; known: file, "):
        open_store("s3://bucket/idx")
    opened: list[tuple[str, bool, str | None]] = []

    def open_s3(location: str, *, migrate: bool, read_url: str | None) -> Any:
        opened.append((location, migrate, read_url))
        return open_store(tmp_path / "idx")

    register_store("S3", open_s3)
    assert "s3" in available_stores()
    store = open_store("s3://bucket/idx", migrate=True)
    assert opened == [("s3://bucket/idx", True, None)]
    assert store.version is None
    with pytest.raises(ValueError, match=r"store 's3' is already provided \(registered\)"):
        register_store("s3", lambda location, *, migrate, read_url: store)


def test_ragkit_migrate_opens_a_plugin_stores_url_with_migrate(
    tmp_path: Path, plugins: dict[str, list[Any]]
) -> None:
    from click.testing import CliRunner

    from ragkit.cli import cli

    opened: list[bool] = []

    def open_fake(location: str, *, migrate: bool, read_url: str | None) -> Any:
        opened.append(migrate)
        return open_store(tmp_path / "idx")

    plugins[STORES.group] = [_Point("fake", open_fake)]
    STORES.reload()
    result = CliRunner().invoke(cli, ["migrate", "--index", "fake://db/idx"])
    assert result.exit_code == 0, result.output
    assert opened == [True]
    directory = CliRunner().invoke(cli, ["migrate", "--index", str(tmp_path / "dir")])
    assert directory.exit_code == 2
    assert "is a directory" in directory.output


class _Point:
    """An installed entry point's shape: name, value, load()."""

    def __init__(self, name: str, obj: Any) -> None:
        self.name, self.value, self.obj = name, f"plugin:{name}", obj

    def load(self) -> Any:
        return self.obj
