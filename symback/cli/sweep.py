"""``symback sweep``: train under several learning rates / activations / optimizers; one table and plot."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from .command import Command
from .train import DTYPES

__all__ = ["commands"]


def _configure_sweep(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="TOML spec file ([training] gives shared settings, [sweep] the grid)")
    # -o/--output as in every other command; --out, this command's first spelling, still works.
    parser.add_argument("-o", "--output", "--out", dest="output", required=True, metavar="OUTDIR",
                        help="folder for sweep.md/.csv/.json/.png")
    parser.add_argument("--learning-rate", type=float, nargs="+", metavar="η", help="learning rates to try")
    parser.add_argument("--activation", nargs="+", metavar="NAME",
                        help="hidden-layer activations to try (the output layer keeps its own)")
    parser.add_argument("--optimizer", nargs="+", metavar="NAME", help="optimizers to try: sgd, momentum, rmsprop, adam")
    parser.add_argument("--epochs", type=int, help="epochs per run")
    parser.add_argument("--batch-size", type=int, help="examples per step (default: all)")
    parser.add_argument("--clip-norm", type=float, help="clip the whole gradient to this norm")
    parser.add_argument("--clip-value", type=float, help="clip every gradient entry to [-v, v]")
    parser.add_argument("--seed", type=int, help="shuffling (and data split) seed")
    parser.add_argument("--dataset", help="train on a shipped data set instead of [data] (e.g. digits)")
    parser.add_argument("--dtype", choices=DTYPES, help="float64 (default) or float32")


def _grid_axis(flag: Any, section: Mapping[str, Any], key: str, fallback: Any) -> Any:
    """The values to try for one axis: the flag's, else the spec's [sweep] list, else the one fallback."""
    from ..errors import SpecError

    if flag is not None:
        return flag
    if key in section:
        value = section[key]
        if isinstance(value, list) and not value:
            raise SpecError(f"[sweep] {key} is an empty list")
        return value
    return [fallback]


def _run_sweep_command(args: argparse.Namespace) -> int:
    from ..spec.loader import load_spec
    from ..training.sweep import grid, run_sweep, write_sweep
    from ..training.train import TrainingConfig, training_data

    spec = load_spec(args.spec)
    training = dict(spec.sections.get("training", {}))
    sweep = spec.sections.get("sweep", {})
    config = TrainingConfig.from_section(
        training,
        epochs=args.epochs,
        batch_size=args.batch_size,
        clip_norm=args.clip_norm,
        clip_value=args.clip_value,
        seed=args.seed,
        dataset=args.dataset,
        dtype=args.dtype,
    )
    runs = grid(
        learning_rates=_grid_axis(args.learning_rate, sweep, "learning_rate", config.learning_rate),
        activations=_grid_axis(args.activation, sweep, "activation", None),
        optimizers=_grid_axis(args.optimizer, sweep, "optimizer", config.optimizer),
    )
    train, test = training_data(spec, config)
    print(f"sweep: {len(runs)} run(s) of {spec.network!r}")
    result = run_sweep(spec.network, spec.parameters, train, runs, test=test, config=config, stream=sys.stdout)
    files = write_sweep(result, args.output)
    print()
    print(result.markdown(), end="")
    best = result.best()
    if best is not None:
        print(f"\nlowest final loss: {best.run.label} ({best.final_loss:.4g})")
    print("wrote " + ", ".join(str(p) for p in files.paths))
    if files.note:
        print(f"no picture: {files.note}")
    return 130 if result.interrupted else 0


def commands() -> dict[str, Command]:
    return {
        "sweep": Command(
            "train under several learning rates / activations / optimizers; one comparison plot and table",
            _configure_sweep,
            _run_sweep_command,
        )
    }
