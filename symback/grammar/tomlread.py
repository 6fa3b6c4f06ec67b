"""Reading TOML (spec and claims files) within bounds: every failure one line, never a RecursionError.

``tomllib`` recurses once per ``[`` or ``{``, so 1,000 nested arrays overflow the stack; a
dotted key of 3,000 parts or table headers as deep build structures that later code
walks recursively.  :func:`parse_toml` refuses nesting past :data:`MAX_NESTING` levels:
brackets before parsing (:func:`check_nesting`, one pass over the text), keys after.

>>> parse_toml("a.b.c = 1")
{'a': {'b': {'c': 1}}}
>>> check_nesting("layers = [[1, 2], [3]]  # [[[ in a comment")
>>> check_nesting("x = " + "[" * 40 + "]" * 40, "spec.toml")
Traceback (most recent call last):
...
symback.errors.SpecError: spec.toml: line 1 nests arrays and tables more than 32 levels deep
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..errors import SpecError

__all__ = ["MAX_NESTING", "check_nesting", "decimals_as_floats", "parse_toml"]

#: The deepest nesting of arrays, inline tables and (dotted) keys a TOML file may have.
MAX_NESTING = 32

# What the nesting scan stops at: string openings, comments, brackets and newlines.
_SCAN = re.compile(r"\"\"\"|'''|[\"'#\[\]{}\n]")
_BASIC_END = re.compile(r'(?:[^"\\\n]|\\.)*"')
_LITERAL_END = re.compile(r"[^'\n]*'")


def _prefix(where: str | None) -> str:
    return f"{where}: " if where else ""


def check_nesting(text: str, where: str | None = None) -> None:
    """Refuse TOML whose ``[``/``{`` (outside strings and comments) nest deeper than :data:`MAX_NESTING`.

    Text the scan cannot follow (an unterminated string) ends the scan: ``tomllib`` then
    reports it, and :func:`parse_toml` catches a RecursionError anyway.
    """
    depth, position, line = 0, 0, 1
    while True:
        match = _SCAN.search(text, position)
        if match is None:
            return
        token, position = match.group(), match.end()
        if token in "[{":
            depth += 1
            if depth > MAX_NESTING:
                raise SpecError(
                    f"{_prefix(where)}line {line} nests arrays and tables more than {MAX_NESTING} levels deep"
                )
        elif token in "]}":
            depth = max(depth - 1, 0)
        elif token == "\n":
            line += 1
        elif token == "#":
            end = text.find("\n", position)
            position = len(text) if end < 0 else end
        elif len(token) == 3:
            end = _multiline_end(text, position, token)
            if end < 0:
                return
            line += text.count("\n", position, end)
            position = end
        else:
            found = (_BASIC_END if token == '"' else _LITERAL_END).match(text, position)
            if found is None:
                return
            position = found.end()


def _multiline_end(text: str, start: int, quotes: str) -> int:
    """Where the multi-line string opened by ``quotes`` just before ``start`` ends (past its quotes), or -1."""
    position = start
    while True:
        end = text.find(quotes, position)
        if end < 0:
            return -1
        backslashes = 0
        if quotes[0] == '"':  # a basic string: an escaped quote does not close it
            while end - backslashes - 1 >= start and text[end - backslashes - 1] == "\\":
                backslashes += 1
        if backslashes % 2 == 0:
            while text.startswith(quotes[0], end + 3) and text.startswith(quotes, end + 1):
                end += 1  # up to two more quotes belong to the content
            return end + 3
        position = end + 1


def _depth(value: Any) -> int:
    """How deeply tables and arrays nest in parsed TOML (counted without recursion; stops past the limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            break
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def parse_toml(text: str, where: str | None = None, **options: Any) -> dict[str, Any]:
    """``tomllib.loads(text, **options)``; every failure is a one-line SpecError starting with ``where``.

    An integer literal of more than 4,300 digits (a ValueError from ``int()`` inside ``tomllib``)
    is named as such.

    >>> parse_toml(".".join(["k"] * 40) + " = 1", "spec.toml")
    Traceback (most recent call last):
    ...
    symback.errors.SpecError: spec.toml: tables, keys and arrays nest more than 32 levels deep
    """
    check_nesting(text, where)
    try:
        raw = tomllib.loads(text, **options)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{_prefix(where)}invalid TOML: {error}") from None
    except RecursionError:
        raise SpecError(f"{_prefix(where)}invalid TOML: nested too deeply to read") from None
    except ValueError as error:  # int() of a literal past sys.get_int_max_str_digits()
        reason = str(error).split(";")[0]
        raise SpecError(f"{_prefix(where)}invalid TOML: a number too long to read ({reason})") from None
    if _depth(raw) > MAX_NESTING:
        raise SpecError(f"{_prefix(where)}tables, keys and arrays nest more than {MAX_NESTING} levels deep")
    return raw


def decimals_as_floats(value: Any) -> Any:
    """``value`` with every Decimal (from ``parse_float=Decimal``, kept for the digits written) as a float.

    >>> decimals_as_floats({"x": [Decimal("0.5"), 2], "name": "w1"})
    {'x': [0.5, 2], 'name': 'w1'}
    """
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {k: decimals_as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decimals_as_floats(v) for v in value]
    return value
