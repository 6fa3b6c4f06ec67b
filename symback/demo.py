"""``symback demo``: one command that shows what symback is for, and writes a folder of results.

1. the 3Blue1Brown chain: ∂C/∂w(L) derived factor by factor (HTML, Markdown, LaTeX, and PDF when
   pdflatex is installed);
2. seed 002's worked example checked line by line (which lines are right, the first wrong one);
3. seed 000's 625-20-20-10 network trained on the shipped 25×25 digits, with its loss curve and
   test accuracy;
4. pictures (with the ``plot`` extra): loss curves, per-layer gradient norms, the dials to turn,
   and the first layer's 20 weight and gradient maps as 25×25 images;

and ``index.html``, one self-contained page (pictures embedded) linking everything.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .compile.compiler import compile_network
from .data import Dataset
from .errors import SymbackError
from .files import write_atomic
from .render.derivation import derive
from .render.report import build_report, render_template, write_report
from .resources import example_file
from .spec.loader import load_spec
from .symbolic.network import Network
from .symbolic.parameters import Parameters
from .training import plots
from .training.dials import rank_dials
from .training.train import Trainer, TrainingConfig, TrainingResult, training_data

__all__ = ["DemoResult", "run_demo"]

#: Epochs of the digits run: about 92% test accuracy in a few seconds on 2 cores.
EPOCHS = 20
FAST_EPOCHS = 3


@dataclass
class DemoResult:
    """Where the demo wrote its files and the figures it measured."""

    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    gradient_value: float = float("nan")
    verdicts: dict[str, int] = field(default_factory=dict)
    first_wrong: str = ""
    test_accuracy: float = float("nan")
    loss: tuple[float, ...] = ()
    seconds: float = 0.0


class _Steps:
    """``[2/4] what is happening`` lines, so a user sees progress."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream, self.total, self.number = stream, total, 0

    def start(self, what: str) -> None:
        self.number += 1
        print(f"[{self.number}/{self.total}] {what}", file=self.stream, flush=True)

    def say(self, what: str) -> None:
        print(f"      {what}", file=self.stream, flush=True)


def run_demo(out: str | Path = "symback-demo", *, fast: bool = False, stream: TextIO | None = None) -> DemoResult:
    """Run the four parts and write their results into ``out`` (created if needed).

    ``fast`` trains for a few epochs only (for tests); the figures are then lower.
    """
    stream = stream or sys.stdout
    started = time.perf_counter()
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SymbackError(f"cannot create the output folder {str(folder)!r}: {error.strerror}") from None
    result = DemoResult(folder)
    steps = _Steps(stream, 4)
    context: dict[str, Any] = {}

    steps.start("the 3Blue1Brown chain: ∂C/∂w(L) by the chain rule")
    context["chain"] = _chain(result, steps)

    steps.start("seed 002's worked example, checked line by line")
    context["verification"] = _verification(result, steps)

    epochs = FAST_EPOCHS if fast else EPOCHS
    steps.start(f"training seed 000's 625-20-20-10 network on the shipped 25×25 digits ({epochs} epochs)")
    network, training, train, test = _training(result, steps, epochs)
    context["training"] = _training_summary(result, network, training)

    steps.start("pictures")
    context["pictures"] = _pictures(result, steps, network, training, train, test)

    result.seconds = time.perf_counter() - started
    context["seconds"] = f"{result.seconds:.1f}"
    context["notes"] = result.notes
    context["files"] = [(name, path.name) for name, path in result.files.items()]
    index = folder / "index.html"
    write_atomic(index, render_template("demo.html.j2", "html", **context))
    result.files["index"] = index
    print(f"\ndone in {result.seconds:.1f} s. Open {index} in a browser; all files are in {folder}/", file=stream)
    return result


# -- 1. the chain --------------------------------------------------------------------------------------


def _chain(result: DemoResult, steps: _Steps) -> dict[str, Any]:
    network = Network([1, 1, 1, 1], "sigmoid", "squared_error")
    params = Parameters.initialize(network, "uniform", seed=1)
    data = Dataset.from_arrays([0.8], [1.0])
    derivation = derive(network, "w(L)")
    result.gradient_value = derivation.value(params, data)
    steps.say(f"∂C/∂w(L) = {derivation.chain_notation()} = {result.gradient_value:.4f}")
    report = build_report(derivation, params=params, data=data, source="symback demo")
    for suffix in ("html", "md", "tex", "pdf"):
        path = result.folder / f"chain.{suffix}"
        try:
            write_report(report, path)
        except SymbackError as error:  # pdflatex missing or failing: the other formats still count
            result.notes.append(f"chain.{suffix} not written: {error}")
            steps.say(f"chain.{suffix}: skipped ({error})")
            continue
        result.files[f"chain.{suffix}"] = path
    steps.say("wrote " + ", ".join(p.name for k, p in result.files.items() if k.startswith("chain.")))
    return {
        # One neuron per layer: the single path reads like 3Blue1Brown's, without indices.
        "chain": report.paths[0] if len(report.paths) == 1 else report.chain,
        "factors": [factor.rewriting or factor.result for factor in report.factors],
        "value": f"{result.gradient_value:.4g}",
    }


# -- 2. verification -----------------------------------------------------------------------------------


def _verification(result: DemoResult, steps: _Steps) -> dict[str, Any]:
    from .verification.claims import load_claims
    from .verification.verify import render, verify

    report = verify(load_claims(example_file("seed002_claims.toml")))
    result.verdicts = report.counts()
    first = report.first_wrong
    result.first_wrong = first.text if first else ""
    for verdict in report.verdicts:
        steps.say(f"{verdict.number:>2}. {verdict.status:<22} {verdict.text}")
    path = result.folder / "verification.html"
    write_atomic(path, render(report, "html"))
    result.files["verification.html"] = path
    text_path = result.folder / "verification.txt"
    write_atomic(text_path, report.text())
    result.files["verification.txt"] = text_path
    return {
        "rows": [
            {
                "number": v.number,
                "text": v.text,
                "status": v.status,
                "css": v.status.replace(" ", "-"),
                "message": v.message.splitlines()[0] if v.message else "",
            }
            for v in report.verdicts
        ],
        "first_wrong": result.first_wrong,
    }


# -- 3. training ---------------------------------------------------------------------------------------


def _training(result: DemoResult, steps: _Steps, epochs: int) -> tuple[Network, TrainingResult, Dataset, Dataset]:
    spec = load_spec(example_file("digits.toml"))
    config = TrainingConfig.from_section(spec.sections["training"], epochs=epochs, progress=False)
    train, test = training_data(spec, config)

    def report_epoch(epoch: int, history: Any) -> None:
        if epoch == 1 or epoch == epochs or epoch % 5 == 0:
            steps.say(f"epoch {epoch:>3}: loss {history.loss[-1]:.4f}, test accuracy {history.test_accuracy[-1]:.1%}")

    training = Trainer(spec.network, config).fit(spec.parameters, train, test, callback=report_epoch)
    result.test_accuracy = training.history.test_accuracy[-1]
    result.loss = training.history.loss
    return spec.network, training, train, test


def _training_summary(result: DemoResult, network: Network, training: TrainingResult) -> dict[str, Any]:
    history = training.history
    return {
        "network": "-".join(map(str, network.sizes)),
        "weights": f"{network.n_weights:,}",
        "biases": f"{network.n_biases:,}",
        "epochs": training.epochs,
        "accuracy": f"{result.test_accuracy:.1%}",
        "rows": [
            (epoch, f"{history.loss[epoch - 1]:.4f}", f"{history.test_accuracy[epoch - 1]:.1%}")
            for epoch in sorted({1, 2, 3, 5, 10, 15, 20, training.epochs})
            if epoch <= len(history.loss)
        ],
        "seconds": f"{sum(history.seconds):.1f}",
    }


# -- 4. pictures ---------------------------------------------------------------------------------------


def _pictures(
    result: DemoResult, steps: _Steps, network: Network, training: TrainingResult, train: Dataset, test: Dataset
) -> dict[str, Any]:
    params = training.parameters.astype(np.float64)
    sample = Dataset(train.X[:500], train.Y[:500])
    # One gradient for both the dials and the gradient maps (frozen parameters, if any, with their real partials).
    gradient = compile_network(network).gradient(params, sample, respect_frozen=False)
    dials = rank_dials(network, params, gradients=gradient, learning_rate=0.1, top=12)
    dial_rows = [
        (d.name, f"{d.value:+.3f}", f"{d.partial:+.2e}", d.direction, f"{d.turn:+.2e}") for d in dials
    ]
    pictures: dict[str, Any] = {"dials": dial_rows, "images": [], "hint": ""}
    if not plots.have_matplotlib():
        pictures["hint"] = plots.PLOT_HINT
        result.notes.append(plots.PLOT_HINT)
        steps.say(plots.PLOT_HINT)
        return pictures
    history = training.history
    layers = [f"layer {network.layer_label(l)}" for l in range(1, network.depth + 1)]
    figures = {
        **plots.training_figures(history, layers, dials),
        "weights.png": ("first-layer weights as 25×25 images", plots.weight_maps(params.weights[0])),
        "gradients.png": (
            "first-layer gradients ∂C/∂w(L-2)_jk as 25×25 images",
            plots.weight_maps(gradient.weights[0], title="first-layer gradients"),
        ),
    }
    for name, (caption, png) in figures.items():
        path = plots.save_png(png, result.folder / name)
        result.files[name] = path
        pictures["images"].append({"caption": caption, "uri": plots.data_uri(png), "file": name})
    steps.say("wrote " + ", ".join(figures))
    return pictures
