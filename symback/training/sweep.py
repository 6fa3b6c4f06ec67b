"""Sweeps (seed 003's experiment): train one network under several settings and compare the loss curves.

Seed 003 invites the reader to "adjust a parameter, such as the learning rate or activation function,
and observe its effect", and recommends ReLU/LeakyReLU and Adam/RMSprop.  A sweep trains every
combination of learning rates × hidden-layer activations × optimizers from the same starting
parameters on the same data, and writes one comparison picture (loss curves side by side) and one
table (Markdown, CSV, JSON).  The activation replaces the *hidden* layers' activation; the output
layer keeps its own, because the cost is tied to it (softmax with cross-entropy).

>>> from symback import Dataset, Network, Parameters
>>> net = Network([1, 2, 1], ["sigmoid", "identity"], "ssr")
>>> data = Dataset.from_arrays([0.0, 0.5, 1.0], [0.0, 1.0, 0.0])
>>> runs = grid(learning_rates=[0.01, 0.1], activations=["sigmoid", "relu"])
>>> [run.label for run in runs]
['η=0.01 · sigmoid', 'η=0.01 · relu', 'η=0.1 · sigmoid', 'η=0.1 · relu']
>>> result = run_sweep(net, Parameters.initialize(net, seed=0), data, runs, config=TrainingConfig(epochs=5))
>>> [(row["learning_rate"], row["activation"], row["epochs"], row["stop_reason"]) for row in result.rows()][:2]
[(0.01, 'sigmoid', 5, 'epochs'), (0.01, 'relu', 5, 'epochs')]
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import product
from pathlib import Path
from typing import Any, TextIO

from ..compile.compiler import CompiledNetwork
from ..data import Dataset
from ..errors import SpecError
from ..files import write_atomic
from ..symbolic.activations import Activation, get_activation
from ..symbolic.network import Network
from ..symbolic.parameters import Parameters
from .optimizers import get_optimizer
from .train import Trainer, TrainingConfig

__all__ = [
    "COLUMNS",
    "Run",
    "RunResult",
    "SweepFiles",
    "SweepResult",
    "grid",
    "run_sweep",
    "with_hidden_activation",
    "write_sweep",
]

#: The table's columns, in order (Markdown, CSV and the JSON rows use the same keys).
COLUMNS = (
    "run",
    "activation",
    "optimizer",
    "learning_rate",
    "epochs",
    "final_loss",
    "test_loss",
    "accuracy",
    "test_accuracy",
    "seconds",
    "stop_reason",
)


@dataclass(frozen=True)
class Run:
    """One configuration: hidden activation (None keeps the network's own), optimizer, learning rate."""

    label: str
    activation: Activation | None
    optimizer: str | Mapping[str, Any]
    learning_rate: float

    @property
    def activation_label(self) -> str:
        return self.activation.label if self.activation is not None else "(network's own)"

    @cached_property
    def optimizer_name(self) -> str:
        """The optimizer's registry name (worked out once: every table row asks for it)."""
        return get_optimizer(self.optimizer, learning_rate=self.learning_rate).name


@dataclass(frozen=True)
class RunResult:
    """What one run measured: the loss per epoch, final metrics, time and why it stopped.

    ``loss`` is each epoch's running loss (:attr:`symback.training.train.History.loss`); ``final_loss`` and
    ``accuracy`` are those of the parameters the run ended with, on the whole training set (a run
    whose last parameters give a non-finite loss keeps its last finished epoch's loss; a hand-made
    result without ``final_loss`` takes it too).  ``gradient_norms[e]`` holds one ‖∂C/∂W(l), ∂C/∂b(l)‖
    per layer of epoch ``e``'s last step (after clipping).
    """

    run: Run
    loss: tuple[float, ...]
    test_loss: float | None
    accuracy: float | None
    test_accuracy: float | None
    epochs: int
    seconds: float
    stop_reason: str
    message: str
    gradient_norms: tuple[tuple[float, ...], ...] = ()
    activations: str = ""  # the hidden layers' activation(s) actually trained, e.g. "sigmoid"
    final_loss: float | None = None

    def __post_init__(self) -> None:
        if (self.final_loss is None or not math.isfinite(self.final_loss)) and self.loss:
            object.__setattr__(self, "final_loss", self.loss[-1])

    def row(self) -> dict[str, Any]:
        run = self.run
        return {
            "run": run.label,
            "activation": self.activations or run.activation_label,
            "optimizer": run.optimizer_name,
            "learning_rate": run.learning_rate,
            "epochs": self.epochs,
            "final_loss": self.final_loss,
            "test_loss": self.test_loss,
            "accuracy": self.accuracy,
            "test_accuracy": self.test_accuracy,
            "seconds": self.seconds,
            "stop_reason": self.stop_reason,
        }


@dataclass(frozen=True)
class SweepResult:
    """Every finished run, in grid order; ``interrupted`` when Ctrl-C ended the sweep early."""

    results: tuple[RunResult, ...]
    interrupted: bool = False
    description: str = ""

    def rows(self) -> list[dict[str, Any]]:
        return [result.row() for result in self.results]

    def curves(self) -> dict[str, tuple[float, ...]]:
        """Label -> loss per epoch, for the runs that finished at least one epoch.

        Hand-made runs may share a label; the later ones get ``#n`` (their place in the sweep) so no
        curve is lost.
        """
        curves: dict[str, tuple[float, ...]] = {}
        for index, result in enumerate(self.results, start=1):
            if result.loss:
                label = result.run.label
                curves[f"{label} #{index}" if label in curves else label] = result.loss
        return curves

    def best(self) -> RunResult | None:
        """The run with the lowest final loss among those that did not diverge.

        Runs that stopped on a NaN/inf (``non_finite``) or finished no epoch are left out; None when
        that is every run.
        """
        finished = [r for r in self.results if r.final_loss is not None and r.stop_reason != "non_finite"]
        return min(finished, key=lambda r: r.final_loss) if finished else None

    def markdown(self) -> str:
        """A Markdown table (numbers to 4 significant digits; an empty cell where a column does not apply)."""
        headers = ["run", "activation", "optimizer", "η", "epochs", "final loss", "test loss", "accuracy",
                   "test accuracy", "seconds", "stopped"]
        lines = []
        if self.description:
            lines += [self.description, ""]
        lines += ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        for row in self.rows():
            cells = [
                row["run"], row["activation"], row["optimizer"], f"{row['learning_rate']:g}", str(row["epochs"]),
                _number(row["final_loss"]), _number(row["test_loss"]), _percent(row["accuracy"]),
                _percent(row["test_accuracy"]), f"{row['seconds']:.2f}", row["stop_reason"],
            ]
            lines.append("| " + " | ".join(_markdown_cell(c) for c in cells) + " |")
        if self.interrupted:
            lines += ["", "The sweep was interrupted (Ctrl-C); the table holds the runs that finished."]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows():
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        return buffer.getvalue()

    def to_json(self) -> str:
        """Rows plus each run's loss per epoch and stop message; non-finite numbers become null."""
        runs = []
        for result, row in zip(self.results, self.rows()):
            runs.append({
                **row,
                "message": result.message,
                "loss_per_epoch": list(result.loss),
                "gradient_norms_per_epoch": [list(norms) for norms in result.gradient_norms],
            })
        document = {"description": self.description, "interrupted": self.interrupted, "columns": list(COLUMNS),
                    "runs": runs}
        return json.dumps(_finite(document), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def grid(
    learning_rates: Iterable[float] = (0.1,),
    activations: Iterable[str | Mapping[str, Any] | Activation | None] = (None,),
    optimizers: Iterable[str | Mapping[str, Any]] = ("sgd",),
) -> tuple[Run, ...]:
    """Every combination, learning rate slowest; labels name only the settings that vary.

    Names are checked here, so a typo fails before any training (naming the unknown name).  Labels
    are unique: two activations with the same name get their formulas, two optimizer tables of the
    same name their settings (and a last resort ``#n``, the run's place in the grid).

    >>> [run.label for run in grid(optimizers=[{"name": "adam", "beta1": 0.8}, {"name": "adam", "beta1": 0.5}])]
    ['adam(beta1=0.8)', 'adam(beta1=0.5)']
    """
    rates = _unique(learning_rates, "learning_rate")
    for rate in rates:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
            raise SpecError(f"a learning rate must be a positive number, not {rate!r}")
    acts = [None if a is None else get_activation(a) for a in _unique(activations, "activation")]
    opts = _unique(optimizers, "optimizer")
    for opt in opts:
        get_optimizer(opt, learning_rate=rates[0])  # unknown name or bad setting: fails now
    vary = {"rate": len(rates) > 1, "act": len(acts) > 1, "opt": len(opts) > 1}
    if not any(vary.values()):
        vary = {"rate": True, "act": acts[0] is not None, "opt": True}
    act_labels = _distinct(
        [act.label if act is not None else "own activation" for act in acts],
        [f"{act.label}: {act.formula}" if act is not None else "own activation" for act in acts],
    )
    opt_names = [get_optimizer(opt, learning_rate=rates[0]).name for opt in opts]
    opt_labels = _distinct(opt_names, [_optimizer_label(name, opt) for name, opt in zip(opt_names, opts)])
    runs = []
    for rate, (a, act), (o, opt) in product(rates, enumerate(acts), enumerate(opts)):
        parts = []
        if vary["rate"]:
            parts.append(f"η={float(rate):g}")
        if vary["act"]:
            parts.append(act_labels[a])
        if vary["opt"]:
            parts.append(opt_labels[o])
        runs.append(Run(" · ".join(parts), act, opt, float(rate)))
    labels = _distinct([run.label for run in runs], [f"{run.label} #{i}" for i, run in enumerate(runs, start=1)])
    return tuple(replace(run, label=label) for run, label in zip(runs, labels))


def _distinct(labels: list[str], detailed: list[str]) -> list[str]:
    """``labels``, with the detailed form where a label would otherwise appear twice."""
    return [detail if labels.count(label) > 1 else label for label, detail in zip(labels, detailed)]


def _optimizer_label(name: str, optimizer: str | Mapping[str, Any]) -> str:
    """``adam(beta1=0.8)``: the name and the settings a table gives (none for a plain name)."""
    if not isinstance(optimizer, Mapping):
        return name
    settings = ", ".join(
        f"{key}={value:g}" if isinstance(value, (int, float)) else f"{key}={value}"
        for key, value in optimizer.items() if key != "name"
    )
    return f"{name}({settings})" if settings else name


def with_hidden_activation(network: Network, activation: Activation | str | Mapping[str, Any]) -> Network:
    """The same network (sizes, cost, names, frozen parameters) with every hidden layer's activation replaced.

    >>> net = Network([2, 3, 3, 1], "sigmoid", "squared_error")
    >>> with_hidden_activation(net, "relu")
    Network(2-3-3-1, [relu, relu, sigmoid], squared_error)
    """
    if network.depth < 2:
        raise SpecError(
            f"the network {'-'.join(map(str, network.sizes))} has no hidden layer: a swept activation replaces "
            f"hidden layers only (the output layer keeps {network.activations[-1].label})"
        )
    activation = get_activation(activation)
    # A group name ("output" = "predicted") also names its node; give it once, as the group.
    grouped = set(network.group_names.values())
    names = {network.canonical_name(ref): name for ref, name in network.names.items() if name not in grouped}
    names.update(network.group_names)
    return Network(
        network.sizes,
        [activation] * (network.depth - 1) + [network.activations[-1]],
        network.cost,
        names=names,
        frozen=[network.canonical_name(ref) for ref in network.frozen],
    )


def run_sweep(
    network: Network,
    params: Parameters,
    train: Dataset,
    runs: Sequence[Run],
    *,
    test: Dataset | None = None,
    config: TrainingConfig | None = None,
    stream: TextIO | None = None,
) -> SweepResult:
    """Train every run from the same ``params`` (each on its own copy) and collect the results.

    ``config`` gives everything the runs share (epochs, batch size, clipping, seed, dtype).  Each
    run prints one line to ``stream`` when given.  Ctrl-C ends the current run cleanly (the
    Trainer keeps its finished epochs) and stops the sweep; the finished runs are returned.
    """
    base = replace(config or TrainingConfig(), progress=False, checkpoint=None, checkpoint_every=None)
    # Every network is built (and so checked) before the first run trains; kernels are compiled when first needed.
    # Keyed by the Activation itself: two user formulas with the same name are different networks.
    networks = {run.activation: network if run.activation is None else with_hidden_activation(network, run.activation)
                for run in runs}
    compiled: dict[Activation | None, CompiledNetwork] = {}
    results: list[RunResult] = []
    interrupted = False
    for index, run in enumerate(runs, start=1):
        if stream is not None:
            stream.write(f"[{index}/{len(runs)}] {run.label} ... ")
            stream.flush()
        try:
            net = networks[run.activation]
            if run.activation not in compiled:
                compiled[run.activation] = CompiledNetwork(net)
            kernels = compiled[run.activation]
            settings = replace(base, optimizer=run.optimizer, learning_rate=run.learning_rate)
            started = time.perf_counter()
            fit = Trainer(net, settings, compiled=kernels).fit(params, train, test)
            seconds = time.perf_counter() - started
        except KeyboardInterrupt:  # between runs or while compiling: keep what finished
            interrupted = True
            if stream is not None:
                stream.write("interrupted\n")
            break
        history = fit.history
        result = RunResult(
            run,
            history.loss,
            history.test_loss[-1] if history.test_loss else None,
            fit.final_accuracy,
            history.test_accuracy[-1] if history.test_accuracy else None,
            len(history.loss),
            seconds,
            fit.stop_reason,
            fit.message,
            history.gradient_norms,
            _hidden_activations(net),
            fit.final_loss,
        )
        results.append(result)
        if stream is not None:
            stream.write(_summary_line(result) + "\n")
            stream.flush()
        if fit.stop_reason == "interrupted":
            interrupted = True
            break
    return SweepResult(tuple(results), interrupted, _describe(network, train, test, base))


@dataclass(frozen=True)
class SweepFiles:
    """The files a sweep wrote; ``picture`` is None (and ``note`` says why) without matplotlib."""

    markdown: Path
    csv: Path
    json: Path
    picture: Path | None
    note: str | None = None

    @property
    def paths(self) -> list[Path]:
        return [p for p in (self.markdown, self.csv, self.json, self.picture) if p is not None]


def write_sweep(result: SweepResult, out: str | os.PathLike[str], *, name: str = "sweep",
                title: str = "loss per epoch") -> SweepFiles:
    """``name``.md / .csv / .json and, with matplotlib, ``name``.png in ``out``; each file written atomically."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpecError(f"output folder {str(out)!r} is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SpecError(f"cannot create output folder {str(out)!r}: {error}") from None
    markdown = write_atomic(out / f"{name}.md", result.markdown())
    table = write_atomic(out / f"{name}.csv", result.csv())
    document = write_atomic(out / f"{name}.json", result.to_json())
    from . import plots

    curves = result.curves()
    if not curves:
        return SweepFiles(markdown, table, document, None, "no run finished an epoch: no loss curves to draw")
    try:
        png = plots.loss_curves(curves, title=title)
    except plots.MissingExtraError as error:
        return SweepFiles(markdown, table, document, None, str(error))
    return SweepFiles(markdown, table, document, write_atomic(out / f"{name}.png", png))


# -- helpers ------------------------------------------------------------------------------------


def _unique(values: Iterable[Any], what: str) -> list[Any]:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        values = [values]
    out: list[Any] = []
    for value in values:
        if value not in out:
            out.append(value)
    if not out:
        raise SpecError(f"a sweep needs at least one {what}")
    return out


def _describe(network: Network, train: Dataset, test: Dataset | None, config: TrainingConfig) -> str:
    sizes = "-".join(map(str, network.sizes))
    batch = f"batch {config.batch_size}" if config.batch_size else "full batch"
    data = f"{len(train)} training" + (f" / {len(test)} test" if test is not None else "") + " examples"
    clip = "".join(
        f", {name} {value:g}" for name, value in (("clip_norm", config.clip_norm), ("clip_value", config.clip_value))
        if value is not None
    )
    return (f"Sweep of {sizes} ({network.cost.name}) on {data}: up to {config.epochs} epochs, "
            f"{batch}, seed {config.seed}, {config.dtype}{clip}.")


def _hidden_activations(network: Network) -> str:
    hidden = network.activations[:-1] or network.activations
    return "/".join(dict.fromkeys(a.label for a in hidden))


def _summary_line(result: RunResult) -> str:
    # The loss of the parameters the run ended with (a diverged run: its last finished epoch's).
    text = f"final loss {result.final_loss:.4g}" if result.loss else "no epoch finished"
    if result.test_accuracy is not None:
        text += f", test accuracy {result.test_accuracy:.1%}"
    elif result.accuracy is not None:
        text += f", accuracy {result.accuracy:.1%}"
    text += f", {result.seconds:.2f} s, {result.stop_reason}"
    if result.stop_reason == "non_finite":
        text += f" ({result.message})"
    return text


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _markdown_cell(text: str) -> str:
    # A label from a user formula may hold '|', which would split the cell.
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
