"""The ``symback`` command line.

Subcommands are registered in :data:`COMMANDS` (name -> :class:`Command`), one
small function pair each, so a new stage adds its command without touching
the others.  Any :class:`~symback.errors.SymbackError` becomes one line on
stderr and exit status 2, never a traceback.  NumPy's floating-point warnings
(an overflow, a square root of a negative number) are collected while a command
runs and said once, in words, on stderr (:class:`NumericNotes`).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .errors import SymbackError

__all__ = ["COMMANDS", "Command", "NumericNotes", "main", "register_command"]


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help, how to add its arguments, and what it runs (returns the exit status)."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}

#: Modules of later stages that add subcommands: each defines ``commands() -> dict[str, Command]``.
#: They are imported only when the parser is built, so importing symback stays light.
COMMAND_MODULES: tuple[str, ...] = ("symback.verify", "symback.report", "symback.train", "symback.demo", "symback.sweep")


def register_command(name: str, command: Command) -> None:
    COMMANDS[name] = command


# -- symback info -----------------------------------------------------------------------------------


def _configure_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="TOML spec file")


def _run_info(args: argparse.Namespace) -> int:
    from .spec import load_spec

    spec = load_spec(args.spec)
    print(spec.network.summary())
    if spec.data is not None:
        print(f"data        {len(spec.data)} example(s)")
    return 0


# -- symback derive ---------------------------------------------------------------------------------


def _configure_derive(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="TOML spec file")
    parser.add_argument("--wrt", required=True, metavar="NAME", help="parameter or node, e.g. b3, 'w(L)', 'a(L-1)_0'")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    parser.add_argument(
        "--form", choices=("auto", "explicit", "indexed"), default="auto", help="explicit paths or index form"
    )


def _run_derive(args: argparse.Namespace) -> int:
    from .derivation import derive
    from .spec import load_spec

    spec = load_spec(args.spec)
    derivation = derive(spec.network, args.wrt, form=args.form)
    data = spec.data
    if args.format == "json":
        print(derivation.to_json(spec.parameters if data is not None else None, data))
    else:
        print(derivation.text(spec.parameters if data is not None else None, data))
    return 0


register_command("info", Command("describe the network in a spec file", _configure_info, _run_info))
register_command(
    "derive", Command("derive ∂C/∂NAME by the chain rule, factor by factor", _configure_derive, _run_derive)
)


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
    commands = dict(COMMANDS)
    for module_name in COMMAND_MODULES:
        commands.update(importlib.import_module(module_name).commands())
    for name, command in commands.items():
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
