"""Passwords out of anything ragkit shows: connection URLs, libpq strings and driver messages.

Nothing here parses a URL, so a URL that does not parse (a bad percent-escape, an unquoted ``@``
or ``/`` in the password) is masked like any other:

- :func:`redact` masks a location's password: in a URL (``scheme://...``), everything
  between ``user:`` and the last ``@``, and the value of every ``password=`` (a URL query
  parameter or a libpq ``key=value`` pair).
- :func:`url_secrets` lists the password strings a location holds (as written and
  percent-decoded), and :func:`redact_message` removes them from any text, such as a driver's
  error message that quotes a token of the URL without the URL around it.

This module leaves out API keys (:func:`ragkit.audit.redact_secrets` handles those) and the
store's error classes (each store maps its driver's errors and passes the text through here).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

__all__ = ["MASK", "redact", "redact_message", "url_secrets"]

MASK = "***"
"""What stands in for a password."""

# A URL query parameter (``?password=x`` / ``&pass%77ord=x``): the key is compared after
# percent-decoding, as libpq decodes it.
_QUERY_PARAM = re.compile(r"(?P<lead>[?&])(?P<key>[^=&#\s]*)=(?P<value>[^&#\s]*)")
# A libpq ``key=value`` password: a single-quoted value (with backslash escapes) or a word.
_KEYWORD = re.compile(
    r"(?P<lead>(?:^|\s)password\s*=\s*)(?P<value>'(?P<quoted>(?:[^'\\]|\\.)*)'?|\S*)",
    re.IGNORECASE,
)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _userinfo_span(text: str) -> tuple[int, int] | None:
    """Where the password of a ``scheme://user:password@host`` location is, if it has one.

    The span runs from after the first ``:`` following ``://`` to the last ``@``: libpq takes a
    password up to the last ``@`` of the authority, and masking up to the last ``@`` of the
    text masks more, never less.
    """
    scheme = _SCHEME.match(text)
    if scheme is None:
        return None  # a libpq key=value string (whose password may hold "://")
    start = scheme.end()
    end = text.rfind("@")
    if end < start:
        return None
    colon = text.find(":", start, end)
    if colon < 0 or colon + 1 == end:
        return None  # a user name and no password (or an empty one)
    return colon + 1, end


def redact(location: str | Path) -> str:
    """``location`` safe to print: its password replaced by ``***``, whatever its syntax.

    Example:
        >>> redact("postgresql://app:s3cret@db/ragkit?sslmode=require&password=x")
        'postgresql://app:***@db/ragkit?sslmode=require&password=***'
        >>> redact("host=db password='a b' user=app")
        'host=db password=*** user=app'
    """
    text = str(location)
    span = _userinfo_span(text)
    if span is not None:
        text = text[: span[0]] + MASK + text[span[1] :]
    if _SCHEME.match(text):
        return _QUERY_PARAM.sub(_mask_query_param, text)
    return _KEYWORD.sub(lambda m: m["lead"] + MASK, text)


def _mask_query_param(match: re.Match[str]) -> str:
    if unquote(match["key"]).lower() != "password":
        return match[0]
    return f"{match['lead']}{match['key']}={MASK}"


def url_secrets(location: str | Path) -> tuple[str, ...]:
    """The password strings ``location`` holds, as written and percent-decoded (longest first).

    Example:
        >>> url_secrets("postgresql://app:p%40ss@db/rag")
        ('p%40ss', 'p@ss')
    """
    text = str(location)
    found: list[str] = []
    span = _userinfo_span(text)
    if span is not None:
        found.append(text[span[0] : span[1]])
    if _SCHEME.match(text):
        found += [
            m["value"]
            for m in _QUERY_PARAM.finditer(text)
            if unquote(m["key"]).lower() == "password"
        ]
    else:
        for m in _KEYWORD.finditer(text):
            found.append(m["value"])
            if m["quoted"] is not None:
                found += [m["quoted"], re.sub(r"\\(.)", r"\1", m["quoted"])]
    decoded = [unquote(s) for s in found]
    unique = {s for s in found + decoded if s}
    return tuple(sorted(unique, key=lambda s: (-len(s), s)))


def redact_message(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` (an error message) on one line, without any of ``secrets`` or ``password=``
    value. (The ``user:...@`` rule of :func:`redact` is left out: in a message the last ``@``
    may be far from the URL; a URL's own password is among its :func:`url_secrets`.)

    Example:
        >>> redact_message('invalid token: "p%zz"\\n', url_secrets("postgresql://u:p%zz@h/d"))
        'invalid token: "***"'
    """
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    text = _QUERY_PARAM.sub(_mask_query_param, " ".join(text.split()))
    return _KEYWORD.sub(lambda m: m["lead"] + MASK, text)
