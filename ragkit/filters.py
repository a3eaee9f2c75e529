"""Metadata filters: one small language, parsed once, evaluated by every store.

A filter is written as a mapping (or built from the :class:`Field` / :class:`AllOf` /
:class:`AnyOf` / :class:`Not` values it parses into)::

    {"team": "billing"}                          equality on every key (all must hold)
    {"team": {"$in": ["billing", "support"]}}    one of several values
    {"year": {"$gte": 2020, "$lt": 2024}}         numeric range (dates: ISO 8601 text ranges)
    {"draft": {"$exists": False}}                the key is absent
    {"path": {"$glob": "docs/api/**"}}           path glob: * within a segment, ** across
    {"$or": [{...}, {...}]}, {"$and": [...]}, {"$not": {...}}

Operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists $glob``. Rules every store follows:

- A list-valued field (``tags``) equals a value when any element does (``$eq``, ``$in``;
  ``$ne``/``$nin`` when none does).
- Ranges compare numbers with numbers and text with text; a value of another type (or a
  missing key) does not match. ``True`` is not the number 1.
- ``$ne``, ``$nin`` and ``$not`` match chunks that lack the key.

From the command line, :func:`parse_cli` reads ``--where KEY=VALUE`` (also ``!=``, ``>``, ``>=``,
``<``, ``<=``, a bare ``KEY`` for "exists" and ``!KEY`` for "absent"; a value that reads as a
number, ``true``, ``false`` or ``null`` matches that value or the same text, so ``version=1.10``
matches ``1.1`` and ``"1.10"``) and ``--path GLOB``; several
``--where`` must all hold, several ``--path`` globs are alternatives.

This module leaves out where a filter is applied: each store applies it inside its search,
before the top k (the memory store with a mask over its rows, Postgres in SQL).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Union

__all__ = [
    "AllOf",
    "AnyOf",
    "Field",
    "Filter",
    "FilterSpec",
    "Not",
    "Operator",
    "glob_to_regex",
    "matches",
    "parse_cli",
    "parse_filter",
]

Operator = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists", "glob"]
_OPERATORS: frozenset[str] = frozenset(
    ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists", "glob")
)
_RANGE = frozenset(("gt", "gte", "lt", "lte"))


@dataclass(frozen=True, slots=True)
class Field:
    """One condition on one metadata key.

    Attributes:
        key: the metadata key.
        op: the operator (without ``$``).
        value: a scalar; a tuple for ``in``/``nin``; a bool for ``exists``; a glob for ``glob``.
    """

    key: str
    op: Operator
    value: Any

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"filter key must be a non-empty string, got {self.key!r}")
        if self.op not in _OPERATORS:
            raise ValueError(
                f"filter operator ${self.op} is not one of "
                + ", ".join(f"${o}" for o in sorted(_OPERATORS))
            )
        v = self.value
        if self.op in ("in", "nin"):
            if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple, set, frozenset)):
                raise ValueError(f"${self.op} on {self.key!r} needs a list of values, got {v!r}")
            object.__setattr__(self, "value", tuple(_scalar(self.key, x) for x in v))
        elif self.op == "exists":
            if not isinstance(v, bool):
                raise ValueError(f"$exists on {self.key!r} needs true or false, got {v!r}")
        elif self.op == "glob":
            if not isinstance(v, str) or not v:
                raise ValueError(f"$glob on {self.key!r} needs a non-empty pattern, got {v!r}")
        elif self.op in _RANGE:
            if hasattr(v, "isoformat"):
                v = str(v.isoformat())
                object.__setattr__(self, "value", v)
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise ValueError(
                    f"${self.op} on {self.key!r} needs a number or text (ISO 8601 for dates), "
                    f"got {v!r}"
                )
        else:
            object.__setattr__(self, "value", _scalar(self.key, v))


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every part must match (an empty ``AllOf`` matches everything)."""

    parts: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one part must match (an empty ``AnyOf`` matches nothing)."""

    parts: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The part must not match."""

    part: Filter


Filter = Union[Field, AllOf, AnyOf, Not]  # noqa: UP007 - a runtime alias on Python 3.10
"""A parsed filter."""

FilterSpec = Union[Filter, Mapping[str, Any]]  # noqa: UP007
"""What users pass as ``where=``: a parsed :data:`Filter` or the mapping form."""


def _scalar(key: str, value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    raise ValueError(
        f"filter value for {key!r} must be a string, number, bool, null or date, got {value!r}"
    )


def parse_filter(spec: FilterSpec | None) -> Filter | None:
    """The parsed form of a ``where=`` argument (``None`` and ``{}`` mean no filter).

    Raises:
        TypeError: ``spec`` is neither a mapping nor a parsed filter.
        ValueError: an unknown operator or a value of the wrong form, naming the key.

    Example:
        >>> parse_filter({"team": "billing"})
        Field(key='team', op='eq', value='billing')
    """
    if spec is None:
        return None
    if isinstance(spec, (Field, AllOf, AnyOf, Not)):
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(
            f"where must be a mapping such as {{'team': 'billing'}} or a ragkit filter, "
            f"got {type(spec).__name__}"
        )
    parts = _parse_mapping(spec)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _parse_mapping(spec: Mapping[str, Any]) -> list[Filter]:
    parts: list[Filter] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise TypeError(f"filter keys must be strings, got {key!r}")
        if key in ("$and", "$or"):
            if isinstance(value, Mapping) or not isinstance(value, (list, tuple)):
                raise ValueError(f"{key} needs a list of filters, got {value!r}")
            subs = tuple(_parse_one(v, key) for v in value)
            parts.append(AllOf(subs) if key == "$and" else AnyOf(subs))
        elif key == "$not":
            parts.append(Not(_parse_one(value, key)))
        elif key.startswith("$"):
            raise ValueError(f"unknown filter operator {key!r}; use $and, $or or $not at the top")
        elif isinstance(value, Mapping):
            if not value:
                raise ValueError(f"filter on {key!r} has no operator")
            for op, operand in value.items():
                if not isinstance(op, str) or not op.startswith("$"):
                    raise ValueError(
                        f"filter on {key!r}: {op!r} is not an operator (write {{'$eq': ...}})"
                    )
                parts.append(Field(key, op[1:], operand))  # type: ignore[arg-type]
        elif isinstance(value, (list, tuple)):
            raise ValueError(
                f"filter on {key!r}: a list is ambiguous; write {{'$in': [...]}} for one of them"
            )
        else:
            parts.append(Field(key, "eq", value))
    return parts


def _parse_one(value: Any, where: str) -> Filter:
    if isinstance(value, (Field, AllOf, AnyOf, Not)):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} needs filters (mappings), got {value!r}")
    parts = _parse_mapping(value)
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


# -- evaluation in Python ---------------------------------------------------------------------


@lru_cache(maxsize=256)
def glob_to_regex(pattern: str) -> str:
    """A regular expression (valid for Python and PostgreSQL) matching ``pattern`` whole.

    ``**`` matches any run of characters including ``/``, ``**/`` also matches nothing, ``*``
    matches within one path segment, ``?`` one character other than ``/``.

    Example:
        >>> bool(re.fullmatch(glob_to_regex("docs/**/*.md"), "docs/api/a.md"))
        True
    """
    out = ["^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c.isalnum() or c in "_/ ":
            out.append(c)
        else:
            out.append("\\" + c)
        i += 1
    out.append("$")
    return "".join(out)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(glob_to_regex(pattern), re.DOTALL)


def _same_kind(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return True
    return isinstance(a, str) and isinstance(b, str)


def _equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return _same_kind(a, b) and a == b


def _values(metadata: Mapping[str, Any], key: str) -> tuple[Any, ...] | None:
    if key not in metadata:
        return None
    value = metadata[key]
    return value if isinstance(value, tuple) else (value,)


def matches(where: Filter | None, metadata: Mapping[str, Any]) -> bool:
    """Whether ``metadata`` satisfies ``where`` (``None`` matches everything).

    Example:
        >>> matches(parse_filter({"tags": "b"}), {"tags": ("a", "b")})
        True
    """
    if where is None:
        return True
    if isinstance(where, AllOf):
        return all(matches(p, metadata) for p in where.parts)
    if isinstance(where, AnyOf):
        return any(matches(p, metadata) for p in where.parts)
    if isinstance(where, Not):
        return not matches(where.part, metadata)
    values = _values(metadata, where.key)
    op = where.op
    if op == "exists":
        return (values is not None) is bool(where.value)
    if op in ("ne", "nin"):
        wanted = where.value if op == "nin" else (where.value,)
        return values is None or not any(_equal(v, w) for v in values for w in wanted)
    if values is None:
        return False
    if op == "eq":
        return any(_equal(v, where.value) for v in values)
    if op == "in":
        return any(_equal(v, w) for v in values for w in where.value)
    if op == "glob":
        pattern = _compiled(where.value)
        return any(isinstance(v, str) and pattern.match(v) is not None for v in values)
    bound = where.value
    for v in values:
        if v is None or not _same_kind(v, bound):
            continue
        if (
            (op == "gt" and v > bound)
            or (op == "gte" and v >= bound)
            or (op == "lt" and v < bound)
            or (op == "lte" and v <= bound)
        ):
            return True
    return False


# -- the command line -------------------------------------------------------------------------

_CLI = re.compile(r"^\s*(?P<key>[^=!<>]+?)\s*(?P<op>!=|>=|<=|=|>|<)\s*(?P<value>.*)$", re.DOTALL)
_CLI_OPS: dict[str, Operator] = {
    "=": "eq",
    "!=": "ne",
    ">": "gt",
    ">=": "gte",
    "<": "lt",
    "<=": "lte",
}


def _cli_value(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if value is None or isinstance(value, (bool, int, float)) else text


def parse_cli(wheres: Sequence[str] = (), paths: Sequence[str] = ()) -> Filter | None:
    """The filter for ``--where`` conditions (all must hold) and ``--path`` globs (any).

    Raises:
        ValueError: a ``--where`` that is not ``KEY=VALUE``, ``KEY<op>VALUE``, ``KEY`` or ``!KEY``.

    Example:
        >>> parse_cli(["team=billing"], ["docs/**"]).parts[1]
        Field(key='path', op='glob', value='docs/**')
    """
    parts: list[Filter] = []
    for raw in wheres:
        text = raw.strip()
        found = _CLI.match(text)
        if found is not None:
            text_value = found["value"].strip()
            value = _cli_value(text_value)
            key, op = found["key"].strip(), _CLI_OPS[found["op"]]
            if op in _RANGE and value is None:
                raise ValueError(f"--where {raw!r}: a range needs a number or text, not null")
            if op in ("eq", "ne") and value is not None and not isinstance(value, str):
                # "version=1.10" should match the text "1.10" as well as the number 1.1.
                either = AnyOf((Field(key, "eq", value), Field(key, "eq", text_value)))
                parts.append(either if op == "eq" else Not(either))
            else:
                parts.append(Field(key, op, value))
        elif text.startswith("!") and text[1:].strip():
            parts.append(Field(text[1:].strip(), "exists", False))
        elif text and not any(c in text for c in "=<>!"):
            parts.append(Field(text, "exists", True))
        else:
            raise ValueError(
                f"--where {raw!r} is not KEY=VALUE (also !=, >, >=, <, <=), KEY (exists) "
                "or !KEY (absent)"
            )
    globs = [Field("path", "glob", p) for p in paths]
    if len(globs) == 1:
        parts.append(globs[0])
    elif globs:
        parts.append(AnyOf(tuple(globs)))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))
