"""``symback info`` (what a spec describes) and ``symback derive`` (one partial by the chain rule)."""

from __future__ import annotations

import argparse

from .command import Command

__all__ = ["commands"]


def _configure_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="TOML spec file")


def _run_info(args: argparse.Namespace) -> int:
    from ..spec.loader import load_spec

    spec = load_spec(args.spec)
    print(spec.network.summary())
    if spec.data is not None:
        print(f"data        {len(spec.data)} example(s)")
    return 0


def _configure_derive(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="TOML spec file")
    parser.add_argument("--wrt", required=True, metavar="NAME", help="parameter or node, e.g. b3, 'w(L)', 'a(L-1)_0'")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    parser.add_argument(
        "--form", choices=("auto", "explicit", "indexed"), default="auto", help="explicit paths or index form"
    )
    parser.add_argument("--expanded", action="store_true",
                        help="add the derivative written out in the inputs, a factor a line (explicit form, text)")


def _run_derive(args: argparse.Namespace) -> int:
    from ..render.derivation import derive
    from ..spec.loader import load_spec

    spec = load_spec(args.spec)
    derivation = derive(spec.network, args.wrt, form=args.form)
    data = spec.data
    if args.format == "json":
        print(derivation.to_json(spec.parameters if data is not None else None, data))
    else:
        print(derivation.text(spec.parameters if data is not None else None, data, expanded=args.expanded))
    return 0


def commands() -> dict[str, Command]:
    return {
        "info": Command("describe the network in a spec file", _configure_info, _run_info),
        "derive": Command("derive ∂C/∂NAME by the chain rule, factor by factor", _configure_derive, _run_derive),
    }
