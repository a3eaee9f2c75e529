"""One registry mechanism for every extension point: embedders, rerankers, loaders and stores.

Each extension point is a :class:`Registry`: names (an embedder family, a reranker kind, a file
suffix, a URL scheme) mapped to an object (a factory, or a loader). A name comes from one of
three places, and one precedence rule picks among them:

1. **registered** in this process (``register_embedder``, ``register_reranker``,
   ``register_loader``, ``register_store``, all :meth:`Registry.register` underneath);
2. a **built-in**, which ragkit declares as ``"module:attribute"`` (loaded on first use; its own
   entry points in pyproject.toml name the same targets);
3. an **entry point** of an installed package, in the registry's group (``ragkit.embedders``,
   ``ragkit.rerankers``, ``ragkit.loaders``, ``ragkit.stores``).

So installing a package adds names but never changes what a built-in name means: an index built
with ``minilm-l6-v2-int8/384`` or a folder read with the built-in ``.pdf`` loader cannot silently
switch to another package's code (the lesson of dependency confusion). Taking over a built-in
is an explicit call: ``register_*(..., replace=True)``. It also means naming a built-in needs no
scan of the installed packages. Registering a name that is already known needs ``replace=True``.
Looking up a name nobody provides raises :class:`~ragkit.errors.UnknownNameError`, which lists
the known names. Entry points are read once per registry, on the first lookup a registration
or built-in does not answer (:meth:`Registry.reload` reads them again); a plugin that cannot be
imported is logged and left out of the registries whose names come from the loaded object
(loaders), and raises when it is asked for by name in the others.

This module leaves out what the objects are and how they are called: each extension point's
own module (``ragkit.embedders.registry``, ``ragkit.rerankers``, ``ragkit.loaders.registry``,
``ragkit.stores``) wraps its registry in the calls users make.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast

from .errors import UnknownNameError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["REGISTRIES", "Registry", "Source", "entry_points"]

logger = logging.getLogger("ragkit")

T = TypeVar("T")

REGISTRIES: list[Registry[Any]] = []
"""Every registry made, in order (for tools and tests that list or reload them all)."""

Source = Literal["registered", "built-in", "entry point"]
"""Where a registry's name came from, highest precedence first."""


def entry_points(group: str) -> tuple[EntryPoint, ...]:
    """The installed entry points of ``group``, except ragkit's own (its built-ins)."""
    import importlib.metadata  # the scan of installed packages: only when a lookup needs it

    return tuple(
        ep
        for ep in importlib.metadata.entry_points(group=group)
        if not ep.value.startswith("ragkit.")
    )


_PLUGIN = "entry point "  # the key prefix of a loaded plugin (built-ins are "module:attr")


def _import(target: str) -> object:
    module, _, attr = target.partition(":")
    found: object = importlib.import_module(module)
    for part in attr.split("."):
        found = getattr(found, part)
    return found


class Registry(Generic[T]):
    """Names → objects from registrations, built-ins and entry points (in that precedence).

    Args:
        kind: what the names stand for, in messages (``"embedder"``, ``"reranker"``, ...).
        group: the entry-point group third parties declare theirs in.
        builtins: name → ``"module:attribute"``, imported on first use.
        accept: turns a loaded object into a ``T`` (a class into an instance, say), raising
            ``TypeError`` when it is not one.
        normalise: the canonical form of a name (``".MD"`` → ``".md"``), applied everywhere.
        names_of: for registries whose names come from the objects (a loader's suffixes, not
            the entry point's own name): the names an object provides. Entry points are then
            loaded when first read, and one that fails is logged and skipped.
        hint: appended to the unknown-name message (how a name is spelled, where to register).
    """

    def __init__(
        self,
        kind: str,
        group: str,
        builtins: Mapping[str, str],
        *,
        accept: Callable[[object], T],
        normalise: Callable[[str], str] = str.strip,
        names_of: Callable[[T], Iterable[str]] | None = None,
        hint: str = "",
    ) -> None:
        self.kind = kind
        self.group = group
        self.hint = hint
        self._accept = accept
        self._normalise = normalise
        self._names_of = names_of
        self._builtins = {normalise(name): target for name, target in builtins.items()}
        self._registered: dict[str, T] = {}
        self._plugins: dict[str, T | EntryPoint] | None = None
        self._loaded: dict[str, T] = {}  # by built-in target, or _PLUGIN + entry-point name
        self._lock = threading.RLock()
        REGISTRIES.append(self)

    def normalise(self, name: str) -> str:
        """The canonical form of ``name``."""
        return self._normalise(name)

    def reload(self) -> None:
        """Read the installed entry points again on the next lookup."""
        with self._lock:
            self._plugins = None
            self._loaded = {  # built-ins stay loaded; plugins are read again
                k: v for k, v in self._loaded.items() if not k.startswith(_PLUGIN)
            }

    def _entry_points(self) -> dict[str, T | EntryPoint]:
        """Name → the entry point (loaded on first use), or the object it gave (``names_of``)."""
        with self._lock:
            if self._plugins is not None:
                return self._plugins
            found: dict[str, T | EntryPoint] = {}
            for ep in entry_points(self.group):
                if self._names_of is None:
                    found[self._normalise(ep.name)] = ep
                    continue
                try:
                    obj = self._accept(ep.load())
                    names = [self._normalise(name) for name in self._names_of(obj)]
                except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the rest
                    logger.warning(
                        "%s plugin %r (%s) not used: %s: %s",
                        self.kind,
                        ep.name,
                        getattr(ep, "value", "?"),
                        type(exc).__name__,
                        exc,
                    )
                    continue
                for name in names:
                    found[name] = obj
            self._plugins = found
            return found

    def source(self, name: str) -> Source | None:
        """Where ``name`` comes from under the precedence rule, or ``None`` if nowhere."""
        key = self._normalise(name)
        with self._lock:
            if key in self._registered:
                return "registered"
            if key in self._builtins:
                return "built-in"
            if key in self._entry_points():
                return "entry point"
        return None

    def names(self) -> list[str]:
        """Every known name, sorted."""
        with self._lock:
            return sorted(set(self._registered) | set(self._entry_points()) | set(self._builtins))

    def find(self, name: str) -> T | None:
        """The object for ``name`` under the precedence rule, or ``None`` when none has it.

        Raises:
            ImportError: the plugin or built-in providing it cannot be imported.
            TypeError: what it provides is not a valid object of this kind.
        """
        key = self._normalise(name)
        with self._lock:
            if key in self._registered:
                return self._registered[key]
            target = self._builtins.get(key)
            if target is not None:
                return self._load(target, lambda: _import(target))
            plugin = self._entry_points().get(key)
            if plugin is None:
                return None
            if self._names_of is not None:
                return cast(T, plugin)  # loaded when the entry points were read
            point = cast("EntryPoint", plugin)
            return self._load(f"{_PLUGIN}{point.name}", point.load)

    def _load(self, target: str, load: Callable[[], object]) -> T:
        if target not in self._loaded:
            self._loaded[target] = self._accept(load())
        return self._loaded[target]

    def get(self, name: str, *, shown: str | None = None) -> T:
        """The object for ``name``, like :meth:`find`, but an unknown name raises.

        Args:
            name: the name to look up.
            shown: how to quote the name in the error (the full name it was cut from).

        Raises:
            UnknownNameError: nothing provides ``name``; the message lists the known names.
        """
        found = self.find(name)
        if found is None:
            raise UnknownNameError(
                self.kind, name if shown is None else shown, tuple(self.names()), self.hint
            )
        return found

    def register(self, name: str, obj: T, *, replace: bool = False) -> None:
        """Provide ``obj`` under ``name`` in this process, over built-ins and entry points.

        Raises:
            ValueError: ``name`` is already known (built-in, plugin or registered) and
                ``replace`` is false.
        """
        key = self._normalise(name)
        with self._lock:
            source = self.source(key)
            if not replace and source is not None and self._registered.get(key) is not obj:
                raise ValueError(
                    f"{self.kind} {key!r} is already provided ({source}); pass "
                    "replace=True to take it over"
                )
            self._registered[key] = obj

    def unregister(self, name: str) -> None:
        """Forget a registration (the entry point or built-in of that name shows again)."""
        with self._lock:
            self._registered.pop(self._normalise(name), None)
