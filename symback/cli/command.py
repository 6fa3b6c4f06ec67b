"""What a subcommand is: its help line, how it adds its arguments, and what it runs.

A command's ``configure`` only adds argparse arguments (it runs whenever the parser is built, even for
``symback --version``, so it imports no stage); its ``run`` imports the stages it calls.

>>> import argparse
>>> def configure(parser):
...     parser.add_argument("name")
>>> hello = Command("say hello", configure, lambda args: print("hi", args.name) or 0)
>>> parser = argparse.ArgumentParser(prog="demo")
>>> hello.configure(parser)
>>> hello.run(parser.parse_args(["Ada"]))
hi Ada
0
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Command"]


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help, how to add its arguments, and what it runs (returns the exit status)."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
