"""The ``ragkit`` command's shared options and settings: where the index is, which embedder,
filters and reranker, chunk sizes, project defaults from ``ragkit.toml``/``pyproject.toml``, and
how errors become exit codes.

This module leaves out the commands themselves (``ragkit.cli``, ``ragkit.cli_ask``,
``ragkit.cli_measure``) and what they print (``ragkit.cli_render``).
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .errors import RagkitError
from .loaders.defaults import DEFAULT_INCLUDE

if TYPE_CHECKING:
    from .index import Index


F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_INDEX = ".ragkit/index"

DEFAULT_TYPES = tuple(pattern.rsplit("*", 1)[-1] for pattern in DEFAULT_INCLUDE)
"""The suffixes `ragkit index` reads by default (plugin loaders add theirs)."""


class FolderPath(click.Path):
    """A folder argument that refuses the empty string: ``Path("")`` is the current folder, so
    ``ragkit index "$DOCS"`` with ``DOCS`` unset would index wherever the shell stands."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("must not be empty (write . for the current folder)", param, ctx)
        return super().convert(value, param, ctx)


def _index_path(value: str | None) -> str:
    """The index location: a directory or a ``postgresql://`` URL (kept as given)."""
    return str(value or os.environ.get("RAGKIT_INDEX") or DEFAULT_INDEX)


def _shown(location: str) -> str:
    """A location safe to print: a URL without its password."""
    from .stores import redact

    return redact(location)


def index_option(f: F) -> F:
    return click.option(
        "--index",
        "index_path",
        metavar="PATH|URL",
        default=None,
        help=(
            "Index directory or postgresql:// URL; in a URL, ?ragkit_schema=NAME picks the "
            f"schema (default: $RAGKIT_INDEX or {DEFAULT_INDEX})."
        ),
    )(f)


def _embedder_arg(name: str | None) -> Any:
    """--embedder NAME as an embedder, or "default" (an existing index's own, else the
    offline default)."""
    if name is None:
        return "default"
    from .embedders import get_embedder

    return get_embedder(name)


def embedder_option(f: F) -> F:
    return click.option(
        "--embedder",
        "embedder_name",
        metavar="NAME",
        default=None,
        help="Embedder by name, e.g. minilm-l6-v2-int8/v2/384, openai/text-embedding-3-small/1536, "
        "voyage/voyage-4-lite/1024 (default: the offline one; an existing index uses its own).",
    )(f)


def filter_options(f: F) -> F:
    f = click.option(
        "--path",
        "paths",
        multiple=True,
        metavar="GLOB",
        help="Only documents whose path matches GLOB, e.g. 'docs/api/**' (repeatable: any).",
    )(f)
    return click.option(
        "--where",
        "wheres",
        multiple=True,
        metavar="KEY=VALUE",
        help="Only chunks whose metadata matches: KEY=VALUE, KEY!=VALUE, KEY>=N, KEY<N, KEY "
        "(exists), !KEY (absent). Repeatable: all must hold.",
    )(f)


def _filter(wheres: Sequence[str], paths: Sequence[str]) -> Any:
    from .filters import parse_cli

    try:
        return parse_cli(wheres, paths)
    except ValueError as exc:
        raise click.UsageError(_one_line(str(exc))) from exc


def rerank_option(f: F) -> F:
    return click.option(
        "--rerank",
        default=None,
        metavar="NAME",
        help="Re-score the top candidates with a reranker: voyage, voyage:rerank-2.5-lite, "
        "cross-encoder:PATH, embedder (see docs/reranking.md).",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object to stdout.")(
        f
    )


@contextmanager
def _errors() -> Iterator[None]:
    """Run-time errors: one-line message, exit 1. Bad option values (ValueError): exit 2."""
    try:
        yield
    except RagkitError as exc:
        raise click.ClickException(_one_line(str(exc))) from exc
    except ValueError as exc:  # a bad value the user passed through an option
        raise click.UsageError(_one_line(str(exc))) from exc
    except OSError as exc:  # the last net: a path the system refused, as one line, not a trace
        where = f"{exc.filename}: " if exc.filename is not None else ""
        raise click.ClickException(_one_line(f"{where}{exc.strerror or exc}")) from exc


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _one_line(message: str) -> str:
    """An error message safe to print as one terminal line: a path or name inside it that holds
    a newline or an escape sequence (a hostile file name) shows it escaped, as ``repr`` would."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], message)


def _chunk_settings(chunk_size: int | None, overlap: int | None) -> tuple[int, int]:
    """--chunk-size and --overlap with their defaults; a default overlap shrinks with the size."""
    from .chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE

    size = chunk_size if chunk_size is not None else DEFAULT_CHUNK_SIZE
    lap = overlap if overlap is not None else min(DEFAULT_CHUNK_OVERLAP, size // 4)
    if lap >= size:
        raise click.UsageError(f"--overlap ({lap}) must be smaller than --chunk-size ({size})")
    return size, lap


def _chunk_request(chunk_size: int | None, overlap: int | None) -> tuple[int | None, int | None]:
    """The chunk settings the user asked for; ``None`` where an existing index's own apply."""
    if chunk_size is None and overlap is None:
        return None, None
    return _chunk_settings(chunk_size, overlap)


_MAY_HOLD_RAGKIT = re.compile(
    r"""tool["']?\s*\.\s*["']?ragkit"""  # [tool.ragkit...], tool.ragkit.key = ..., quoted parts
    r"""|^\s*\[\s*["']?tool["']?\s*\]"""  # a [tool] table (ragkit = {...} inside it)
    r"""|^\s*["']?tool["']?\s*=""",  # tool = {ragkit = {...}}
    re.MULTILINE,
)
"""What a ``pyproject.toml`` with ragkit settings contains: most projects' files do not, and are
not parsed (``tomllib`` and the parse are a noticeable part of a search process's start)."""


def _project_defaults(group: click.Group, start: Path) -> tuple[dict[str, Any], Path | None]:
    """Option defaults from ``ragkit.toml`` or ``[tool.ragkit]`` of ``pyproject.toml``.

    Looked up in ``start`` and its parents (the nearest file wins). Top-level keys apply to
    every command with an option of that name (``index = "..."``, ``model = "..."``); a table
    ``[tool.ragkit.commands.NAME]`` applies to that command only and wins. Keys are option
    names without dashes (``chunk-size`` or ``chunk_size``).
    """
    config: dict[str, Any] | None = None
    found: Path | None = None
    for folder in (start, *start.parents):
        for name in ("ragkit.toml", "pyproject.toml"):
            path = folder / name
            if not path.is_file():
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise click.UsageError(f"{path} is not valid TOML: {exc}") from exc
            if name == "pyproject.toml" and not _MAY_HOLD_RAGKIT.search(text):
                continue  # no [tool.ragkit] in any TOML spelling: not parsed
            try:
                import tomllib
            except ImportError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef, import-not-found, unused-ignore]
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise click.UsageError(f"{path} is not valid TOML: {exc}") from exc
            section = data.get("tool", {}).get("ragkit") if name == "pyproject.toml" else data
            if section is not None:
                if not isinstance(section, dict):
                    raise click.UsageError(f"{path}: the ragkit settings must be a table")
                config, found = section, path
                break
        if config is not None:
            break
    if config is None:
        return {}, None
    commands = config.get("commands", {})
    if not isinstance(commands, dict):
        raise click.UsageError(f"{found}: 'commands' must be a table of per-command tables")
    shared = {k: v for k, v in config.items() if k != "commands"}
    every = group.all_commands() if isinstance(group, _Group) else dict(group.commands)
    default_map: dict[str, Any] = {}
    for command_name, command in every.items():
        by_option: dict[str, str] = {}
        for param in command.params:
            for opt in getattr(param, "opts", []):
                by_option[opt.lstrip("-").replace("-", "_")] = str(param.name)
        values: dict[str, Any] = {}
        own = commands.get(command_name, {})
        if not isinstance(own, dict):
            raise click.UsageError(f"{found}: 'commands.{command_name}' must be a table")
        params = {str(p.name): p for p in command.params}
        for table in (shared, own):
            for key, value in table.items():
                target = by_option.get(str(key).replace("-", "_"))
                if target is not None:
                    _check_setting(found, str(key), params[target], value)
                    values[target] = tuple(value) if isinstance(value, list) else value
        if values:
            default_map[command_name] = values
    known = {n for c in every.values() for p in c.params for n in _names(p)}
    unknown = sorted(str(k) for k in shared if str(k).replace("-", "_") not in known) + sorted(
        f"commands.{k}" for k in commands if k not in every
    )
    if unknown:
        raise click.UsageError(f"{found}: unknown ragkit settings: {', '.join(unknown)}")
    return default_map, found


def _check_setting(found: Path | None, key: str, param: click.Parameter, value: Any) -> None:
    """Refuse a setting whose TOML type the option cannot take: click would turn ``index = 5``
    or ``index = [1, 2]`` into the text ``"5"`` or ``"(1, 2)"`` and write an index there."""
    many = bool(getattr(param, "multiple", False)) or param.nargs != 1
    if isinstance(value, dict):
        raise click.UsageError(f"{found}: {key} must be a value, not a table")
    if isinstance(value, list):
        if not many:
            raise click.UsageError(f"{found}: {key} takes one value, not a list")
        items = value
    else:
        items = [value]
    if isinstance(param.type, click.types.StringParamType):
        for item in items:
            if not isinstance(item, str):
                raise click.UsageError(f"{found}: {key} must be text (in quotes), got {item!r}")


def _names(param: click.Parameter) -> list[str]:
    return [o.lstrip("-").replace("-", "_") for o in getattr(param, "opts", [])]


class _Group(click.Group):
    """Reads project defaults (ragkit.toml / pyproject.toml) before parsing a command; the
    commands in ``lazy_commands`` (name: ``"module:attribute"``) are imported when first used."""

    def __init__(
        self, *args: Any, lazy_commands: Mapping[str, str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._command(cmd_name)
        return super().get_command(ctx, cmd_name)

    def all_commands(self) -> dict[str, click.Command]:
        """Every command by name, the lazy ones imported."""
        for name in self.lazy_commands:
            self._command(name)
        return dict(self.commands)

    def _command(self, name: str) -> click.Command | None:
        target = self.lazy_commands.get(name)
        if target is not None and name not in self.commands:
            module, _, attribute = target.partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return self.commands.get(name)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        if "default_map" not in extra:
            defaults, _ = _project_defaults(self, Path.cwd())
            if defaults:
                extra["default_map"] = defaults
        return super().make_context(info_name, args, parent, **extra)


def _reranker(name: str | None) -> Any:
    """The reranker named by ``--rerank`` (resolved once), or ``None``."""
    if name is None:
        return None
    from .rerankers import get_reranker

    try:
        return get_reranker(name)
    except ValueError as exc:
        raise click.UsageError(_one_line(str(exc))) from exc


def _load_index(
    index_path: str | None, embedder: str | None = None, *, keyword_search: bool = False
) -> Index:
    """The index at --index, opened with the embedder it was built with (or --embedder's).

    ``keyword_search``: the command searches by keywords only, so a directory index leaves
    its vectors unread until something uses them (``MemoryStore.load``'s ``vectors``).
    """
    from .index import Index

    chosen: Any = "default"
    if embedder is not None:
        from .embedders import get_embedder

        chosen = get_embedder(embedder)
    location = _index_path(index_path)
    if keyword_search:
        from .stores import local_path
        from .stores.memory import MemoryStore

        root = local_path(location)
        if root is not None:
            return Index(MemoryStore.load(root, vectors="when used"), embedder=chosen)
    return Index.load(location, embedder=chosen)
