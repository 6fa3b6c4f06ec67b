"""``symback verify`` (a hand calculation judged line by line) and ``symback check`` (finite differences)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .command import Command

__all__ = ["FORMATS", "WORKING_SUFFIXES", "commands"]

FORMATS = ("text", "json", "html", "tex", "md")

#: Plain-text working (judged by :mod:`symback.verification.working`); every other file is a TOML claims file.
WORKING_SUFFIXES = (".md", ".txt", ".markdown")


def _configure_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("claims", help="claims file (TOML), or a worked example as plain text (.md, .txt) "
                        "with a +++ TOML front matter naming the network")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default text)")
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random points of symbolic checks")
    parser.add_argument("--explain", action="store_true", help="show the full chain-rule derivation behind each wrong line")


def _write(text: str, output: str | None) -> None:
    from ..files import write_atomic

    if output is None:
        print(text)
        return
    write_atomic(output, text if text.endswith("\n") else text + "\n")


def _run_verify(args: argparse.Namespace) -> int:
    from ..verification.verify import INVALID, render

    if Path(args.claims).suffix.lower() in WORKING_SUFFIXES:
        from ..verification.working import judge, load_working

        report = judge(load_working(args.claims), seed=args.seed)
    else:
        from ..verification.claims import load_claims
        from ..verification.verify import verify

        report = verify(load_claims(args.claims), seed=args.seed)
    if args.format == "json":
        text = report.to_json()
    elif args.format == "text":
        text = report.text(explain=args.explain)
    else:
        text = render(report, args.format)
    _write(text, args.output)
    for verdict in report.verdicts:
        if verdict.status == INVALID:
            print(f"symback: error: {verdict.message}", file=sys.stderr)
    return report.exit_status


def _configure_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="TOML spec file with [data]")
    parser.add_argument("--tolerance", type=float, default=1e-5, help="largest relative error allowed (default 1e-5)")
    parser.add_argument("--step", type=float, default=1e-4, help="finite-difference step h (default 1e-4)")


def _run_check(args: argparse.Namespace) -> int:
    from ..errors import SpecError
    from ..spec.loader import load_spec
    from ..verification.verify import gradient_check

    if not (args.tolerance > 0 and args.step > 0):
        raise SpecError("--tolerance and --step must be positive")
    spec = load_spec(args.spec)
    result = gradient_check(spec.network, spec.parameters, spec.require_data(), h=args.step, tolerance=args.tolerance)
    print(result.text())
    return 0 if result.passed else 1


def commands() -> dict[str, Command]:
    return {
        "verify": Command("check a hand calculation (claims file) line by line", _configure_verify, _run_verify),
        "check": Command(
            "compare every derived partial with central finite differences", _configure_check, _run_check
        ),
    }
