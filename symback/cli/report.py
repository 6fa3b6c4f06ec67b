"""``symback report``: a step-by-step derivation, or the whole network's δ recursion, as .tex/.pdf/.html/.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from .command import Command

__all__ = ["commands"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="TOML spec file")
    parser.add_argument("--wrt", metavar="NAME", help="parameter or node, e.g. b3, 'w(L)'")
    parser.add_argument("--network", action="store_true", help="the whole network's δ recursion (BP1–BP4)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="report file: .tex, .pdf, .html or .md")
    parser.add_argument("--form", choices=("auto", "explicit", "indexed"), default="auto")
    parser.add_argument("--descent", action="store_true", help="add the gradient-descent iteration table")
    parser.add_argument("--learning-rate", type=float, default=0.1, help="for --descent (default 0.1)")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="stop at a step with |step size| < this, not taking it (default 1e-3)")
    parser.add_argument("--max-steps", type=int, default=1000, help="most iterations for --descent (default 1000)")
    parser.add_argument("--expanded", action="store_true",
                        help="add the derivative written out in the inputs, broken over lines (explicit form)")
    parser.add_argument("--title", help="the title page's title (default: the spec's [report] title, "
                        "else what was derived)")
    parser.add_argument("--author", help="the title page's author (default: the spec's [report] author, "
                        "else symback)")


def _run(args: argparse.Namespace) -> int:
    from ..errors import SpecError
    from ..render.derivation import Derivation, derive
    from ..render.report import write_report
    from ..spec.loader import load_spec
    from ..symbolic.network import Network

    spec = load_spec(args.spec)
    source = Path(args.spec).name
    if args.network == (args.wrt is not None):
        raise SpecError("give either --wrt NAME or --network")
    if args.network:
        obj: Derivation | Network = spec.network
        descent = None
    else:
        obj = derive(spec.network, args.wrt, form=args.form)
        descent = None
        if args.descent:
            spec.require_data()
            descent = {"learning_rate": args.learning_rate, "tolerance": args.tolerance, "max_steps": args.max_steps}
    path = write_report(obj, args.output, params=spec.parameters, data=spec.data, descent=descent, source=source,
                        title=args.title or spec.title, author=args.author or spec.author,
                        **({"expanded": True} if args.expanded else {}))
    print(f"wrote {path}")
    return 0


def commands() -> dict[str, Command]:
    return {"report": Command("write a step-by-step derivation report (.tex, .pdf, .html, .md)", _configure, _run)}
