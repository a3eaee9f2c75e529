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

Validation happens here, once, while a filter is parsed (every :class:`Field` checks itself),
so no store ever sees a filter another store would refuse: anything malformed raises
:class:`~ragkit.errors.FilterError` naming the key and the rule. Limits:

- keys hold no control characters (Unicode category Cc: NUL, tab, newline, ...);
- text values and globs hold no NUL (U+0000), which Postgres cannot store or compare;
  other control characters in values are compared like any other character;
- a number is not NaN (it would match nothing anywhere);
- ``$and`` / ``$or`` / ``$not`` nest at most :data:`MAX_FILTER_DEPTH` deep (every store walks a
  filter recursively);
- a ``$glob`` is at most :data:`MAX_GLOB_LENGTH` characters with at most
  :data:`MAX_GLOB_STARS` ``*``/``**`` wildcards. Globs are matched in Python without
  backtracking (a bit-parallel automaton when a pattern has two or more stars), so a pattern
  such as ``*a*a*a*a*a*a*a*a*b`` costs time linear in the text; the limits keep the SQL regular
  expression Postgres compiles small (thousands of consecutive stars take it minutes).

This module leaves out where a filter is applied: each store applies it inside its search,
before the top k (the memory store with a mask over its rows, Postgres in SQL).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Union

from .errors import FilterError

__all__ = [
    "MAX_GLOB_LENGTH",
    "MAX_FILTER_DEPTH",
    "MAX_GLOB_STARS",
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

MAX_GLOB_LENGTH = 1024
"""The longest ``$glob`` pattern accepted, in characters."""

MAX_GLOB_STARS = 32
"""The most ``*`` / ``**`` wildcards one ``$glob`` may hold (``?`` is not counted)."""

MAX_FILTER_DEPTH = 32
"""The deepest nesting of ``$and`` / ``$or`` / ``$not`` accepted (a plain field is depth 1)."""


def _control(text: str) -> str | None:
    """The first control character (category Cc) in ``text`` as ``U+XXXX``, or ``None``."""
    for ch in text:
        if unicodedata.category(ch) == "Cc":
            return f"U+{ord(ch):04X}"
    return None


def _no_nul(key: str, value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise FilterError(
            f"filter value for {key!r} contains NUL (U+0000), which Postgres cannot store or "
            "compare; remove it"
        )
    if isinstance(value, float) and math.isnan(value):
        raise FilterError(f"filter value for {key!r} is NaN, which matches nothing; use a number")
    return value


@dataclass(frozen=True, slots=True, eq=False)
class Field:
    """One condition on one metadata key.

    Two fields are equal (and hash alike) when they match the same chunks: ``{"n": True}`` and
    ``{"n": 1}`` are different fields although ``True == 1`` in Python, while ``1`` and ``1.0``
    are the same number. A store may key a cache by a parsed filter, so this matters.

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
            raise FilterError(f"filter key must be a non-empty string, got {self.key!r}")
        bad = _control(self.key)
        if bad is not None:
            raise FilterError(
                f"filter key {self.key!r} contains the control character {bad}; metadata keys "
                "are names: remove it"
            )
        if self.op not in _OPERATORS:
            raise FilterError(
                f"filter operator ${self.op} is not one of "
                + ", ".join(f"${o}" for o in sorted(_OPERATORS))
            )
        v = self.value
        if self.op in ("in", "nin"):
            if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple, set, frozenset)):
                raise FilterError(f"${self.op} on {self.key!r} needs a list of values, got {v!r}")
            object.__setattr__(self, "value", tuple(_scalar(self.key, x) for x in v))
        elif self.op == "exists":
            if not isinstance(v, bool):
                raise FilterError(f"$exists on {self.key!r} needs true or false, got {v!r}")
        elif self.op == "glob":
            if not isinstance(v, str) or not v:
                raise FilterError(f"$glob on {self.key!r} needs a non-empty pattern, got {v!r}")
            _check_glob(self.key, v)
        elif self.op in _RANGE:
            if hasattr(v, "isoformat"):
                v = str(v.isoformat())
                object.__setattr__(self, "value", v)
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise FilterError(
                    f"${self.op} on {self.key!r} needs a number or text (ISO 8601 for dates), "
                    f"got {v!r}"
                )
            _no_nul(self.key, v)
        else:
            object.__setattr__(self, "value", _scalar(self.key, v))

    def _identity(self) -> tuple[str, str, Any]:
        return (self.key, self.op, _typed(self.value))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Field):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())


def _typed(value: Any) -> Any:
    """``value`` with each scalar tagged by its kind, so that ``True`` and ``1`` differ."""
    if isinstance(value, tuple):
        return tuple(_typed(v) for v in value)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    return (type(value).__name__, value)


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
        return _no_nul(key, value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    raise FilterError(
        f"filter value for {key!r} must be a string, number, bool, null or date, got {value!r}"
    )


def parse_filter(spec: FilterSpec | None) -> Filter | None:
    """The parsed form of a ``where=`` argument (``None`` and ``{}`` mean no filter).

    Raises:
        FilterError: ``spec`` is not a mapping or a parsed filter, an operator is unknown, a
            value has the wrong form, or a limit is passed (see the module docstring); the
            message names the key. (A ``ValueError`` too.)

    Example:
        >>> parse_filter({"team": "billing"})
        Field(key='team', op='eq', value='billing')
    """
    if spec is None:
        return None
    if isinstance(spec, (Field, AllOf, AnyOf, Not)):
        _check_depth(spec)
        return spec
    if not isinstance(spec, Mapping):
        raise FilterError(
            f"where must be a mapping such as {{'team': 'billing'}} or a ragkit filter, "
            f"got {type(spec).__name__}"
        )
    parts = _parse_mapping(spec, 1)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _too_deep() -> FilterError:
    return FilterError(
        f"filter nests $and/$or/$not more than {MAX_FILTER_DEPTH} deep "
        "(ragkit.filters.MAX_FILTER_DEPTH): flatten it, e.g. one $or with a list, or $in"
    )


def _check_depth(where: Filter, start: int = 1) -> None:
    """Raise when a parsed filter found at depth ``start`` nests deeper than MAX_FILTER_DEPTH
    (walked without recursion, so a filter built by hand ten thousand deep is refused too)."""
    stack: list[tuple[Filter, int]] = [(where, start)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_FILTER_DEPTH:
            raise _too_deep()
        if isinstance(node, (AllOf, AnyOf)):
            stack.extend((part, depth + 1) for part in node.parts)
        elif isinstance(node, Not):
            stack.append((node.part, depth + 1))


def _parse_mapping(spec: Mapping[str, Any], depth: int) -> list[Filter]:
    if depth > MAX_FILTER_DEPTH:
        raise _too_deep()
    parts: list[Filter] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise FilterError(f"filter keys must be strings, got {key!r}")
        if key in ("$and", "$or"):
            if isinstance(value, Mapping) or not isinstance(value, (list, tuple)):
                raise FilterError(f"{key} needs a list of filters, got {value!r}")
            subs = tuple(_parse_one(v, key, depth + 1) for v in value)
            parts.append(AllOf(subs) if key == "$and" else AnyOf(subs))
        elif key == "$not":
            parts.append(Not(_parse_one(value, key, depth + 1)))
        elif key.startswith("$"):
            raise FilterError(f"unknown filter operator {key!r}; use $and, $or or $not at the top")
        elif isinstance(value, Mapping):
            if not value:
                raise FilterError(f"filter on {key!r} has no operator")
            for op, operand in value.items():
                if not isinstance(op, str) or not op.startswith("$"):
                    raise FilterError(
                        f"filter on {key!r}: {op!r} is not an operator (write {{'$eq': ...}})"
                    )
                parts.append(Field(key, op[1:], operand))  # type: ignore[arg-type]
        elif isinstance(value, (list, tuple)):
            raise FilterError(
                f"filter on {key!r}: a list is ambiguous; write {{'$in': [...]}} for one of them"
            )
        else:
            parts.append(Field(key, "eq", value))
    return parts


def _parse_one(value: Any, where: str, depth: int) -> Filter:
    if isinstance(value, (Field, AllOf, AnyOf, Not)):
        _check_depth(value, depth)
        return value
    if not isinstance(value, Mapping):
        raise FilterError(f"{where} needs filters (mappings), got {value!r}")
    parts = _parse_mapping(value, depth)
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
    for token in _glob_tokens(pattern):
        if token in _WILDCARD_REGEX:
            out.append(_WILDCARD_REGEX[token])
        elif token.isalnum() or token in "_/ ":
            out.append(token)
        else:
            out.append("\\" + token)
    out.append("$")
    return "".join(out)


_WILDCARD_REGEX = {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}


def _glob_tokens(pattern: str) -> list[str]:
    """``pattern`` split into ``**/``, ``**``, ``*``, ``?`` and single literal characters."""
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        for wildcard in ("**/", "**", "*"):
            if pattern.startswith(wildcard, i):
                tokens.append(wildcard)
                i += len(wildcard)
                break
        else:
            tokens.append(pattern[i])
            i += 1
    return tokens


def _check_glob(key: str, pattern: str) -> None:
    if "\x00" in pattern:
        raise FilterError(
            f"$glob on {key!r} contains NUL (U+0000), which Postgres cannot match; remove it"
        )
    if len(pattern) > MAX_GLOB_LENGTH:
        raise FilterError(
            f"$glob on {key!r} is {len(pattern)} characters long; the limit is "
            f"{MAX_GLOB_LENGTH} (ragkit.filters.MAX_GLOB_LENGTH): shorten the pattern"
        )
    stars = sum(1 for t in _glob_tokens(pattern) if t.startswith("*"))
    if stars > MAX_GLOB_STARS:
        raise FilterError(
            f"$glob on {key!r} has {stars} * or ** wildcards; the limit is {MAX_GLOB_STARS} "
            "(ragkit.filters.MAX_GLOB_STARS): merge runs of stars into one"
        )


class _GlobAutomaton:
    """A glob as a bit-parallel NFA (bit ``i`` set: the first ``i`` tokens have matched).

    Each character costs a few integer operations whatever the pattern, where a backtracking
    regular expression costs up to ``len(text) ** stars``. Same semantics as
    :func:`glob_to_regex` with ``re.DOTALL`` (including ``$`` matching before a final newline).
    Hand-written because the standard library has no non-backtracking matcher and one glob
    shape does not justify a dependency such as RE2.
    """

    __slots__ = ("_accept", "_any1", "_dstar", "_enter", "_literal", "_loops", "_start")

    def __init__(self, pattern: str) -> None:
        literal: dict[str, int] = {}
        any1 = star = dstar = enter = 0
        pos = 0
        for token in _glob_tokens(pattern):
            if token == "**/":
                # (.*/)?: an entry state that skips the group, a loop on anything, then "/".
                enter |= 1 << pos
                dstar |= 1 << (pos + 1)
                literal["/"] = literal.get("/", 0) | 1 << (pos + 2)
                pos += 3
                continue
            if token == "**":
                dstar |= 1 << pos
            elif token == "*":
                star |= 1 << pos
            elif token == "?":
                any1 |= 1 << pos
            else:
                literal[token] = literal.get(token, 0) | 1 << pos
            pos += 1
        self._literal, self._any1, self._dstar, self._enter = literal, any1, dstar, enter
        self._loops = star | dstar
        self._accept = 1 << pos
        self._start = self._close(1)

    def _close(self, state: int) -> int:
        """Add the states reachable without a character (past stars and skipped groups)."""
        while True:
            more = (
                state
                | (state & self._loops) << 1
                | (state & self._enter) << 1
                | (state & self._enter) << 3
            )
            if more == state:
                return state
            state = more

    def _run(self, text: str) -> bool:
        state = self._start
        literal, any1, dstar, loops = self._literal, self._any1, self._dstar, self._loops
        epsilon = loops | self._enter
        for ch in text:
            if ch == "/":
                state = (state & literal.get(ch, 0)) << 1 | (state & dstar)
            else:
                state = (state & (literal.get(ch, 0) | any1)) << 1 | (state & loops)
            if state & epsilon:
                state = self._close(state)
            if not state:
                return False
        return bool(state & self._accept)

    def __call__(self, text: str) -> bool:
        return self._run(text) or (text.endswith("\n") and self._run(text[:-1]))


@lru_cache(maxsize=256)
def _glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A function telling whether a text matches ``pattern`` (see :func:`glob_to_regex`).

    Python's regular expressions (in C, ~30x faster per text than the automaton) backtrack up
    to ``len(text) ** stars`` steps: they take patterns with one star, and patterns with two
    stars on texts of up to ``_REGEX_TWO_STARS`` characters (under a millisecond at worst);
    everything else goes to the automaton.
    """
    stars = sum(1 for t in _glob_tokens(pattern) if t.startswith("*"))
    automaton = _GlobAutomaton(pattern) if stars >= 2 else None
    regex = re.compile(glob_to_regex(pattern), re.DOTALL) if stars <= 2 else None

    def match(text: str) -> bool:
        if regex is not None and (automaton is None or len(text) <= _REGEX_TWO_STARS):
            return regex.match(text) is not None
        assert automaton is not None
        return automaton(text)

    return match


_REGEX_TWO_STARS = 512


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
        glob = _glob_matcher(where.value)
        return any(isinstance(v, str) and glob(v) for v in values)
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
        FilterError: a ``--where`` that is not ``KEY=VALUE``, ``KEY<op>VALUE``, ``KEY`` or ``!KEY``.

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
                raise FilterError(f"--where {raw!r}: a range needs a number or text, not null")
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
            raise FilterError(
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
