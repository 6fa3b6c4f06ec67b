"""``symback train``: train a spec's network ([training] gives the defaults, options override them)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from .command import Command

__all__ = ["DTYPES", "commands"]

#: The --dtype choices: the keys of symback.training.train's dtype table (tests/test_cli.py keeps the two equal).
DTYPES = ("float32", "float64")


def _configure_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="TOML spec file (its [training] section gives the defaults)")
    parser.add_argument("--epochs", type=int, help="number of passes over the training data")
    parser.add_argument("--learning-rate", type=float, help="η")
    parser.add_argument("--optimizer", help="sgd, momentum, rmsprop or adam")
    parser.add_argument("--batch-size", type=int, help="examples per step (default: all)")
    parser.add_argument("--tolerance", type=float, help="stop at a step whose every |η·gradient| is below this (not taking it)")
    parser.add_argument("--seed", type=int, help="shuffling seed")
    parser.add_argument("--dataset", help="train on a shipped data set instead of [data] (e.g. digits)")
    parser.add_argument("--dtype", choices=DTYPES, help="float64 (default) or float32")
    parser.add_argument("--save", metavar="PATH", help="write the trained parameters (.npz; also the Ctrl-C checkpoint)")
    parser.add_argument("--resume", metavar="PATH", help="continue from a checkpoint written by --save")
    parser.add_argument("--init-from", metavar="PATH", help="start from parameters in an .npz")
    parser.add_argument(
        "--plots", metavar="DIR", help="write loss.png, gradient-norms.png and dials.png here (needs matplotlib)"
    )
    bar = parser.add_mutually_exclusive_group()
    bar.add_argument("--progress", action="store_true", default=None, help="always show the progress bar")
    bar.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_train(args: argparse.Namespace) -> int:
    from ..errors import SpecError
    from ..files import check_output
    from ..spec.loader import load_spec
    from ..training.train import Trainer, TrainingConfig, load_parameters, training_data

    spec = load_spec(args.spec)
    section = spec.sections.get("training", {})
    config = TrainingConfig.from_section(
        section,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        optimizer=args.optimizer,
        batch_size=args.batch_size,
        tolerance=args.tolerance,
        seed=args.seed,
        dataset=args.dataset,
        dtype=args.dtype,
        progress=False if args.quiet else args.progress,
    )
    if args.save:
        check_output(args.save, "--save ", [".npz"])  # found now, not after the training it would have lost
        config = replace(config, checkpoint=args.save)
    if args.plots:  # both found now, not after the training they would have followed
        from ..training import plots

        if not plots.have_matplotlib():
            raise plots.MissingExtraError(f"--plots: {plots.PLOT_HINT}")
        if Path(args.plots).exists() and not Path(args.plots).is_dir():
            raise SpecError(f"--plots {args.plots!r} is a file; give a folder for the pictures")
    train, test = training_data(spec, config)
    params = spec.parameters
    if args.init_from:
        params = load_parameters(args.init_from, spec.network)
    trainer = Trainer(spec.network, config)
    result = trainer.fit(params, train, test, resume=args.resume)
    history = result.history
    print(f"stopped     {result.stop_reason}: {result.stop_message}")
    print(f"epochs      {result.epochs} this run, {len(history.loss)} in all; {result.steps} step(s) in all")
    if result.final_loss is not None:  # both on the whole training set: where this run started, what it returns
        print(f"loss        {result.initial_loss:.6g} -> {result.final_loss:.6g} (training set, start -> end)")
    if result.final_accuracy is not None:
        print(f"accuracy    {result.final_accuracy:.2%} (training set, at the end)")
    if history.test_accuracy:
        print(f"test        loss {history.test_loss[-1]:.6g}, accuracy {history.test_accuracy[-1]:.2%}")
    if spec.network.n_weights + spec.network.n_biases <= 30:
        trainable = {spec.network.name_of(ref) for ref in spec.network.parameter_refs() if ref not in spec.network.frozen}
        for name, value in result.parameters.named().items():
            if name in trainable:
                print(f"{name:<11} {value:.6g}")
    if result.checkpoint is not None:
        print(f"saved       {result.checkpoint}")
    if args.plots:
        print(f"plots       {', '.join(str(p) for p in _write_plots(args.plots, trainer, result, train))}")
    status = 130 if result.stop_reason == "interrupted" else (1 if result.stop_reason == "non_finite" else 0)
    if args.save and result.checkpoint is None:
        print(f"symback: error: the trained parameters were not saved: {result.save_error or 'no file was written'}", file=sys.stderr)
        status = status or 2
    return status


def _write_plots(folder: str, trainer: Any, result: Any, train: Any) -> list[Path]:
    """``train --plots``: the loss curve, per-layer gradient norms and the dials at the trained parameters."""
    import numpy as np

    from ..errors import SpecError
    from ..training import plots
    from ..training.dials import rank_dials

    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SpecError(f"cannot create the --plots folder {folder!r}: {error}") from None
    network = trainer.network
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        gradients = trainer.compiled.gradient(result.parameters, train.astype(result.parameters.weights[0].dtype),
                                              respect_frozen=False)
    dials = rank_dials(network, result.parameters, gradients=gradients, learning_rate=trainer.config.learning_rate,
                       top=12)
    layers = [f"layer {network.layer_label(layer)}" for layer in range(1, network.depth + 1)]
    return [plots.save_png(png, out / name) for name, (_, png) in plots.training_figures(result.history, layers, dials).items()]


def commands() -> dict[str, Command]:
    return {"train": Command("train a network (spec [training] section; options override it)", _configure_train, _run_train)}
