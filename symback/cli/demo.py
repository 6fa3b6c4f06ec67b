"""``symback demo``: derive, verify, train and draw, into one folder of results."""

from __future__ import annotations

import argparse

from .command import Command

__all__ = ["commands"]

#: symback.demo's EPOCHS and FAST_EPOCHS, for the help line (tests/test_cli.py keeps them equal);
#: written here so that building the parser imports no stage.
_EPOCHS, _FAST_EPOCHS = 20, 3


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="symback-demo", metavar="DIR", help="folder (default symback-demo)")
    parser.add_argument("--fast", action="store_true", help=f"train {_FAST_EPOCHS} epochs instead of {_EPOCHS}")


def _run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(args.output, fast=args.fast)
    return 0


def commands() -> dict[str, Command]:
    return {"demo": Command("derive, verify, train and draw: writes a folder of results", _configure, _run)}
