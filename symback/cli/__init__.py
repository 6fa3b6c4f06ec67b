"""The ``symback`` command line: the one place that turns arguments into calls of the stages.

Every command group is a module of this package (:mod:`symback.cli.info`, :mod:`~symback.cli.verify`,
:mod:`~symback.cli.report`, :mod:`~symback.cli.train`, :mod:`~symback.cli.demo`, :mod:`~symback.cli.sweep`)
with a ``commands() -> dict[str, Command]``; :data:`COMMAND_MODULES` lists them in help order.  The CLI
imports the stages, never the other way round, and a command's stages are imported only when it runs,
so ``symback --version`` and ``symback --help`` load neither SymPy nor the compiler.
Any :class:`~symback.errors.SymbackError` becomes one line on stderr and exit status 2, never a traceback.
NumPy's floating-point warnings (an overflow, a square root of a negative number) are collected while a
command runs and said once, in words, on stderr (:class:`NumericNotes`).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..errors import SymbackError
from .command import Command

__all__ = ["COMMANDS", "COMMAND_MODULES", "Command", "NumericNotes", "build_parser", "main", "register_command"]

#: Commands added by :func:`register_command` (a plug-in's), after those of :data:`COMMAND_MODULES`.
COMMANDS: dict[str, Command] = {}

#: The command groups, in help order: each module defines ``commands() -> dict[str, Command]``.
#: A new group is one module here and one line in this tuple (see LAYOUT.md).
COMMAND_MODULES: tuple[str, ...] = (
    "symback.cli.info",
    "symback.cli.verify",
    "symback.cli.report",
    "symback.cli.train",
    "symback.cli.demo",
    "symback.cli.sweep",
    "symback.cli.classroom",
)


def register_command(name: str, command: Command) -> None:
    """Add a subcommand from outside the package (a plug-in); the built-in ones live in COMMAND_MODULES."""
    COMMANDS[name] = command


def all_commands() -> dict[str, Command]:
    """Every subcommand by name, in help order (importing the command modules, not the stages)."""
    commands: dict[str, Command] = {}
    for module_name in COMMAND_MODULES:
        commands.update(importlib.import_module(module_name).commands())
    commands.update(COMMANDS)
    return commands


# NumPy's floating-point warnings ("overflow encountered in exp", "invalid value encountered in sqrt", ...).
_FLOATING = re.compile(r"(invalid value|overflow|divide by zero|underflow) encountered in (\w+)")
_IN_WORDS = {
    "invalid value": "invalid values (nan)",
    "overflow": "overflows (inf)",
    "divide by zero": "divisions by zero (inf)",
    "underflow": "underflows (0)",
}


@dataclass
class NumericNotes:
    """Collects NumPy's floating-point RuntimeWarnings inside ``with`` and says them in one line.

    Other warnings pass through as usual.

    >>> import numpy as np
    >>> with NumericNotes() as notes:
    ...     _ = np.sqrt(np.array([-1.0])), np.exp(np.array([1000.0])), np.sqrt(np.array([-4.0]))
    >>> notes.line()
    'note: the computation produced invalid values (nan) in sqrt; overflows (inf) in exp (results may hold nan or inf)'
    """

    seen: dict[str, dict[str, None]] = field(default_factory=dict)

    def __enter__(self) -> NumericNotes:
        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("always", RuntimeWarning)  # every one reaches _show, which keeps it once
        shown = warnings.showwarning

        def _show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            found = _FLOATING.search(str(message)) if issubclass(category, RuntimeWarning) else None
            if found is None:
                shown(message, category, *args, **kwargs)
            else:
                self.seen.setdefault(_IN_WORDS[found[1]], {})[found[2]] = None

        warnings.showwarning = _show
        return self

    def __exit__(self, *exc: Any) -> None:
        self._catch.__exit__(*exc)

    def line(self) -> str | None:
        """The note (None when NumPy said nothing)."""
        if not self.seen:
            return None
        parts = [f"{what} in {', '.join(where)}" for what, where in self.seen.items()]
        return f"note: the computation produced {'; '.join(parts)} (results may hold nan or inf)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="symback",
        description="Symbolic chain-rule derivations for neural networks, with a NumPy backend that trains.",
    )
    parser.add_argument("--version", action="version", version=f"symback {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, command in all_commands().items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    notes = NumericNotes()
    try:
        with notes:
            return args.run(args)
    except SymbackError as error:
        print(f"symback: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("symback: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    finally:
        note = notes.line()
        if note:
            print(f"symback: {note}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
