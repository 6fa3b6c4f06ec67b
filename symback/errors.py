"""Exceptions raised by symback.

Every error a user can cause derives from :class:`SymbackError` and carries a
one-line message naming the problem, so the command line can print it without
a traceback (exit status 2).  :func:`shown` quotes a user's value in such a
message: on one line, and short however large the value is.

>>> shown("w1\\n")
"'w1\\\\n'"
>>> shown("9" * 500)
"'9999999999999999999999999999999999999999999999999… (502 characters)"
"""

from __future__ import annotations

from typing import Any

#: How many characters of a user's value a message quotes.
SHOWN_LENGTH = 50


class SymbackError(Exception):
    """Base class of every error caused by user input."""


class SpecError(SymbackError, ValueError):
    """A network description (Python arguments or TOML spec) is unusable."""


class FormulaError(SymbackError, ValueError):
    """A user formula is malformed or uses something outside the whitelist."""


class UnknownNameError(SymbackError, KeyError):
    """A name (activation, cost, parameter, ...) is not known.

    ``KeyError`` quotes its message when printed; this class does not.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def shown(value: Any, limit: int = SHOWN_LENGTH) -> str:
    """``repr(value)`` for a one-line message: cut to ``limit`` characters, with the full length said.

    Never fails: a value whose ``repr`` cannot be made (an integer of more than 4,300 digits,
    a structure nested too deep) is described by its type.
    """
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__} too large to show"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"
