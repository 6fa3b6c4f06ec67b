"""``symback exercise`` and ``symback grade``: the classroom commands (write sheets, mark a class).

CLI glue only: the stage modules (:mod:`symback.classroom.exercise`, :mod:`symback.classroom.grade`) are imported when a
command runs, and they never import the CLI.
"""

from __future__ import annotations

import argparse

from .command import Command

__all__ = ["commands"]


def _configure_exercise(parser: argparse.ArgumentParser) -> None:
    # only argparse here: it runs for every `symback ...`
    parser.add_argument("spec", help="exercise spec (TOML): network, number ranges, what to ask")
    parser.add_argument("--variants", type=int, default=1, metavar="N", help="number of variants (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the numbers (same seed, same files)")
    parser.add_argument("--output", "-o", required=True, metavar="DIR", help="folder for the sheets and key.json")
    parser.add_argument("--no-pdf", action="store_true", help="skip the PDFs (no pdflatex needed)")


def _run_exercise(args: argparse.Namespace) -> int:
    from ..classroom.exercise import draw_variants, load_exercise, solve, write_exercise

    exercise = load_exercise(args.spec)
    paths = write_exercise(exercise, args.variants, args.seed, args.output, pdf=not args.no_pdf)
    marks = solve(exercise, draw_variants(exercise, 1, seed=args.seed)[0]).marks
    print(f"wrote {len(paths)} files for {args.variants} variant(s) ({marks:g} marks each) to {args.output}")
    return 0


def _configure_grade(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", help="the key.json written by symback exercise")
    parser.add_argument("submissions", nargs="+", help="one file per student: working (.md, .txt) or claims (.toml)")
    parser.add_argument("--output", "-o", required=True, metavar="DIR", help="folder for the gradebook and verdicts")


def _run_grade(args: argparse.Namespace) -> int:
    from ..classroom.grade import grade, load_key, summary_line, write_grades

    key = load_key(args.key)
    marked = grade(key, args.submissions)
    write_grades(key, marked, args.output)
    print(f"{summary_line(key, marked)}; wrote {args.output}")
    return 0


def commands() -> dict[str, Command]:
    """The ``exercise`` and ``grade`` subcommands (see :mod:`symback.cli`)."""
    return {
        "exercise": Command("write exercise sheets with answer keys, one variant per student", _configure_exercise,
                            _run_exercise),
        "grade": Command("mark a class's working against an exercise key, with follow-through credit",
                         _configure_grade, _run_grade),
    }
