"""Exceptions raised by symback.

Every error a user can cause derives from :class:`SymbackError` and carries a
one-line message naming the problem, so the command line can print it without
a traceback (exit status 2).
"""

from __future__ import annotations


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
