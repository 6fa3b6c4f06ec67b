"""Every figure the README quotes from a deterministic run, recomputed by the script that makes it.

Each entry of :data:`FIGURES` runs one example script (or the few lines of the README's quick tour)
and returns the exact phrases of the README that carry its numbers, formatted the way the README
writes them.  The README must contain every phrase (whitespace runs count as one space, so a phrase
may wrap); ``tests/test_readme_figures.py`` fails when one is missing, so a README number cannot
drift from what its script gives, and neither can a script's result drift silently from the README.
Timings are not deterministic and are not rerun: the speed table is checked against the results JSON
its benchmark wrote (committed beside it, with the machine it was measured on).

Run:  python scripts/readme_figures.py [NAME ...]    # prints each phrase, ✓ or ✗; exit 1 when one is missing
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Before NumPy loads: the training figures are made with OpenBLAS's AVX2 (Haswell) kernels, the same on
# every x86-64 machine; its other kernels round differently and chaotic runs end elsewhere.
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def sci(value: float, digits: int = 2) -> str:
    """``4.9·10⁻⁵`` (the README's way of writing small and large numbers).

    >>> sci(4.87e-05), sci(2.5e-24), sci(3.8147e-06)
    ('4.9·10⁻⁵', '2.5·10⁻²⁴', '3.8·10⁻⁶')
    """
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    return f"{mantissa}·10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def minus(text: str) -> str:
    """A number as the README prints it in prose: a real minus sign."""
    return text.replace("-", "−")


def percent(fraction: float) -> str:
    return f"{100 * fraction:.1f} %"


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def load_example(name: str) -> Any:
    """Import ``examples/<name>.py`` as a module (registered, so dataclasses inside it work)."""
    module_name = f"symback_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _quiet(function: Callable[[], Any]) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return function()


@dataclass(frozen=True)
class Figures:
    """Where a group of README numbers comes from, and how to recompute the phrases that hold them."""

    source: str
    phrases: Callable[..., list[str]]
    slow: bool = False  # seconds rather than a fraction of one; still run by the tests


def _quick_tour() -> list[str]:
    import symback

    spec = symback.load_spec(EXAMPLES / "seed002.toml")
    value = symback.derive(spec.network, "b3").value(spec.parameters, spec.data)
    net = symback.Network([625, 20, 20, 10], "sigmoid", "squared_error")
    return [f"# {math.trunc(value * 1000) / 1000:.3f}… (seed 002 prints −15.7)", f"# {net.n_weights} {net.n_biases}"]


def _seed002() -> list[str]:
    results = _quiet(lambda: load_example("seed002_softplus").run(None))
    statuses = results["verdicts"]
    right, wrong = statuses.count("right"), statuses.count("wrong")
    steps, b3, optimum = results["iterations"], results["b3"], results["b3 optimum"]
    slope = minus(f"{results['slope']:.6f}")
    first = results["descent"][0]
    first_slope, first_step = minus(f"{first['slope']:.1f}"), minus(f"{first['step']:.2f}")
    return [
        f"({right} lines right, {wrong} wrong,",
        f"({right} right, {wrong} wrong)",
        f"takes {steps} steps and ends at **b3 = {b3:.4f}**",
        f"b3* = mean(observed − prediction without b3) = **{optimum:.4f}**",
        f"stops at {b3:.4f} ({steps} steps)",
        f"both {slope} (the seed: −15.7)",
        f"descent on b3 alone, {steps} steps to b3 = {b3:.4f} (the exact minimum, the mean residual, is {optimum:.4f};",
        f"SSR {results['ssr before']:.2f} → {sci(results['ssr all'])} in {results['steps all']} steps",
        f"Seed 002's ∂SSR/∂b3 is {first_slope}; with learning rate 0.1 the step size is {first_step} and the new b3 is "
        f"0 − ({first_step}) = {first['new']:.2f}",
    ]


def _digits() -> list[str]:
    results = _quiet(load_example("train_digits").run)
    config, result = results["config"], results["result"]
    history = result.history
    by_epoch = ", ".join(f"{e}: {history.loss[e - 1]:.3f} / {percent(history.test_accuracy[e - 1])}"
                         for e in (1, 3, 5, 10, 20, 40))
    return [
        f"SGD η = {config.learning_rate:.1f}, batches of {config.batch_size}, {config.dtype}, {result.epochs} epochs "
        f"on {results['train']:,} of the shipped digits",
        f"**{percent(history.test_accuracy[-1])} test accuracy** on the {results['test']:,} held-out digits",
        f"Loss / test accuracy by epoch: {by_epoch} (`python examples/train_digits.py` prints this table)",
    ]


def _seed000() -> list[str]:
    results = _quiet(lambda: load_example("seed000_dials").run(None))
    before, after = results["certainties"], results["certainties after step"]
    correct, wrong = 3, results["highest wrong"]
    held, total = results["step holds"]
    if held != total:
        raise AssertionError(f"the README says the step does both for all pictures of class 3; it does for {held} of {total}")
    shrink = abs(results["dials before"][0].partial) / abs(results["dials after"][0].partial)
    return [
        f"{results['weights']:,} weights, {results['biases']} biases",
        f"raises the correct output ({before[correct]:.3f} → {after[correct]:.3f}) and lowers the highest wrong one "
        f"({before[wrong]:.3f} → {after[wrong]:.3f}) — for all {total} test pictures of that class",
        f"(the largest partial falls {shrink:,.0f}×)",
        f"{percent(results['test accuracy'])} test accuracy after {results['epochs']} epochs",
    ]


def _sweep() -> list[str]:
    import symback
    from symback.training.sweep import grid, run_sweep
    from symback.training.train import TrainingConfig, training_data

    spec = symback.load_spec(EXAMPLES / "digits.toml")
    config = TrainingConfig.from_section(spec.sections["training"], epochs=5, progress=False)
    train, test = training_data(spec, config)
    runs = grid(learning_rates=[0.5, 2], activations=["sigmoid", "relu"], optimizers=["sgd", "momentum"])
    result = run_sweep(spec.network, spec.parameters, train, runs, test=test, config=config)
    acc = {(r.run.learning_rate, r.run.activation.name, r.run.optimizer_name): r.test_accuracy for r in result.results}
    # The README's words, checked: which rate suits which activation, and momentum doing worse at both.
    if not (acc[2, "sigmoid", "sgd"] > acc[0.5, "sigmoid", "sgd"] and acc[0.5, "relu", "sgd"] > acc[2, "relu", "sgd"]):
        raise AssertionError(f"η = 2 no longer suits sigmoid best, or η = 0.5 ReLU: {acc}")
    best = {(rate, opt): max(acc[rate, act, opt] for act in ("sigmoid", "relu")) for rate in (0.5, 2) for opt in ("sgd", "momentum")}
    if not all(best[rate, "momentum"] < best[rate, "sgd"] for rate in (0.5, 2)):
        raise AssertionError(f"momentum no longer does worse at both rates: {acc}")
    return [
        f"({len(runs)} runs, about 2 s; here η = 2 suits sigmoid with SGD, {percent(acc[2, 'sigmoid', 'sgd'])} test "
        f"accuracy after {config.epochs} epochs, and η = 0.5 suits ReLU, {percent(acc[0.5, 'relu', 'sgd'])}, while "
        f"momentum (β = 0.9) does worse at both rates.)",
    ]


def _seed003(results: dict[str, Any] | None = None) -> list[str]:
    # ``results``: a full run already made (the tests share one with tests/test_seed003.py).
    if results is None:
        results = _quiet(lambda: load_example("seed003_gradients").run(None))
    init, training, clipping = results["init"], results["training"], results["clipping"]
    n_train, n_test = results["examples"]
    slopes = results["chain slope factors"]

    def cell(activation: str, optimizer: str, rate: str) -> str:
        row = training[f"{activation} · {optimizer} η={rate}"]
        return f"{row['final_loss']:.3f} / {percent(row['test_accuracy'])}"

    table = [
        f"| {shown} | {cell(name, 'sgd', '0.1')} | {cell(name, 'rmsprop', '0.003')} | {cell(name, 'adam', '0.01')} |"
        for name, shown in (("sigmoid", "sigmoid"), ("relu", "ReLU"), ("leaky_relu", "LeakyReLU"))
    ]
    rates = {(row["activation"].split("(")[0], row["learning_rate"]): row for row in results["learning rate"].values()}

    def by_rate(activation: str, bold: float | None = None) -> str:
        cells = []
        for rate in (0.01, 0.1, 1.0):
            row = rates[activation, rate]
            text = f"{row['final_loss']:.3f}" if row["stop_reason"] != "non_finite" else "diverged"
            cells.append(f"**{text}**" if rate == bold else text)
        return " / ".join(cells)

    stop = re.search(r"the (\w+) became (\S+) at epoch \d+, step (\d+)", clipping["stop message"])
    if stop is None:
        raise AssertionError(f"the unclipped run was to stop on a non-finite number: {clipping['stop message']}")
    what, bad, step = stop.groups()
    sig, sig_he, relu, leaky = (init[k] for k in ("sigmoid, Xavier", "sigmoid, He", "relu, He", "leaky_relu, He"))
    explode = init["leaky_relu, He × 2"]
    sgd = results["sgd first/last ratio"]
    return [
        f"on {n_train:,} of the shipped digits (a random subset; {n_test} test digits), {results['epochs']} epochs",
        f"∂C/∂w(1) of a 9-layer chain has {results['chain factors']} factors, {slopes} of them σ'(z(l)), so those alone "
        f"scale it by at most (1/4){str(slopes).translate(_SUPERSCRIPT)} = {sci(0.25 ** slopes)}.",
        f"sigmoid (Xavier) **{sci(sig['ratio'])}**, sigmoid (He) {sci(sig_he['ratio'])}, ReLU (He) **{relu['ratio']:.2g}**, "
        f"LeakyReLU (He) {leaky['ratio']:.2g}.",
        f"by {sig['delta_factor']:.2f} (sigmoid), {relu['delta_factor']:.2f} (ReLU) and, with every He weight doubled, "
        f"**{explode['delta_factor']:.2f}**: the whole gradient is then {explode['total']:.3g} instead of "
        f"{leaky['total']:.3g} (exploding).",
        f"final loss / test accuracy after {results['epochs']} epochs",
        *table,
        f"its first layer's gradient stays {sci(sgd['sigmoid'][0])}–{sci(sgd['sigmoid'][1])} of the last layer's in every "
        f"epoch (ReLU: {sgd['relu'][0]:.2g}–{sgd['relu'][1]:.2g}).",
        f"sigmoid {by_rate('sigmoid')}, all at chance",
        f"LeakyReLU {by_rate('leaky_relu', bold=0.1)} — too small is slow, too large stalls.",
        f"unclipped, the {what} is {bad.replace('nan', 'NaN')} at step {step} and training stops",
        f"never exceeds 1 (it was {clipping['start norm']:.3g}) and the loss goes {clipping['clip_norm loss'][0]:.3g} → "
        f"{clipping['clip_norm loss'][1]:.3g};",
        f"no step exceeds η·0.1 = 0.005 and the loss goes {clipping['clip_value loss'][0]:.3g} → "
        f"{clipping['clip_value loss'][1]:.3g}.",
    ]


def _classroom() -> list[str]:
    import tempfile

    from symback.classroom.exercise import draw_variants, load_exercise, solve

    spec = importlib.util.spec_from_file_location("symback_bench_grade", ROOT / "benchmarks" / "bench_grade.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with tempfile.TemporaryDirectory() as work:
        results = _quiet(lambda: bench.run(Path(work)))
    totals, out_of = results["totals"], results["key"].out_of

    def only(kind: str) -> str:
        (value,) = set(totals[kind])
        return f"{value:g}"

    exercise = load_exercise(EXAMPLES / "exercise_222.toml")
    first = solve(exercise, draw_variants(exercise, 1, seed=7)[0])
    line = next(line for line in first.lines if line.label == "2.3")
    return [
        f"the {len(totals['right'])} model solutions get {only('right')} of {out_of:g}, the {len(totals['one slip'])} "
        f"with σ′(net_o1) left out of ∂E/∂w5 get {only('one slip')}",
        f"the {len(totals['two slips'])} with a second, arithmetic slip in ∂out_h1/∂net_h1 get {only('two slips')}",
        f"the {len(totals['unreadable'])} unreadable files {only('unreadable')} with their reasons",
        f"the slip chart shows \"σ′(z) left out\" {results['slips']['σ′(z) left out']} times",
        line.text,
    ]


def _conv_digits() -> list[str]:
    results = _quiet(lambda: load_example("conv_digits").run())
    conv, dense = results["convolutional"], results["dense 625-20-20-10"]
    return [
        f"softmax readout; {conv['parameters']:,} parameters;",
        f"**{percent(conv['accuracy'])}** test accuracy after {conv['epochs']} epochs, against the dense "
        f"625-20-20-10's {percent(dense['accuracy'])} after {dense['epochs']}",
    ]


def _rnn_gradients() -> list[str]:
    results = _quiet(lambda: load_example("rnn_gradients").run(None))
    ratios, start = results["ratios"], results["start gradients"]
    fits = results["fits"]
    linear = fits["identity, W×1.3 clip 1.0"]
    tanh_free, tanh_clipped = fits["tanh, W×4 clip None"], fits["tanh, W×4 clip 1.0"]
    if fits["identity, W×1.3 clip None"][0] != "non_finite":
        raise AssertionError("the README says the unclipped linear recurrence overflows")
    return [
        f"falls by {sci(ratios['tanh, W×1'])} with tanh and {sci(ratios['sigmoid, W×1'])} with sigmoid",
        f"grows {sci(ratios['tanh, W×4'])}-fold with the recurrent weights W multiplied by 4 (the whole gradient "
        f"{sci(start['tanh, W×4'])})",
        f"A linear recurrence with W×1.3 (gradient {start['identity, W×1.3']:.0f})",
        f"the loss goes {linear[1][0]:.2f} → {linear[1][-1]:.2f} ({percent(linear[2][-1])} test accuracy)",
        f"{percent(tanh_free[2][-1])} unclipped, {percent(tanh_clipped[2][-1])} clipped after {results['epochs']} epochs",
    ]


def _bench_train() -> list[str]:
    # Timings are not rerun here (they are not deterministic): the README's table must be exactly what
    # benchmarks/bench_train.py renders from the results it wrote, committed beside it.
    import json

    name = "symback_benchmark_bench_train"  # registered (its dataclasses need it), the name the tests load it by
    bench = sys.modules.get(name)
    if bench is None:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "bench_train.py")
        bench = importlib.util.module_from_spec(spec)
        sys.modules[name] = bench
        spec.loader.exec_module(bench)
    results = json.loads((ROOT / "benchmarks" / "results" / "bench_train.json").read_text(encoding="utf-8"))
    return [bench.render_table(results)]


#: name -> where the numbers come from and the README phrases that quote them.
FIGURES: dict[str, Figures] = {
    "quick tour": Figures("README.md, Quick tour", _quick_tour),
    "seed002": Figures("examples/seed002_softplus.py", _seed002),
    "digits": Figures("examples/train_digits.py", _digits),
    "seed000": Figures("examples/seed000_dials.py", _seed000, slow=True),
    "sweep": Figures("symback sweep examples/digits.toml --learning-rate 0.5 2 --activation sigmoid relu "
                     "--optimizer sgd momentum --epochs 5", _sweep, slow=True),
    "seed003": Figures("examples/seed003_gradients.py", _seed003, slow=True),
    "classroom": Figures("benchmarks/bench_grade.py and examples/exercise_222.toml", _classroom, slow=True),
    "conv_digits": Figures("examples/conv_digits.py", _conv_digits, slow=True),
    "rnn_gradients": Figures("examples/rnn_gradients.py", _rnn_gradients, slow=True),
    "bench_train": Figures("benchmarks/results/bench_train.json (python benchmarks/bench_train.py --json "
                           "benchmarks/results/bench_train.json --readme)", _bench_train),
}


@functools.cache
def _fresh(name: str) -> tuple[str, ...]:
    # Each group's run once a process: the phrases are checked against more than one README text.
    return tuple(normalise(p) for p in FIGURES[name].phrases())


def missing(name: str, readme: str | None = None, **given: Any) -> tuple[list[str], list[str]]:
    """(every phrase of ``name``, those the README does not contain).

    ``given`` goes to the group's function instead of its run (``results=`` of a full seed003 run).
    """
    text = normalise(README.read_text(encoding="utf-8") if readme is None else readme)
    phrases = [normalise(p) for p in FIGURES[name].phrases(**given)] if given else list(_fresh(name))
    return phrases, [p for p in phrases if p not in text]


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        print(f"unknown figures {', '.join(unknown)} (known: {', '.join(FIGURES)})", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        phrases, absent = missing(name)
        print(f"{name} ({FIGURES[name].source})")
        for phrase in phrases:
            print(f"  {'✗' if phrase in absent else '✓'} {phrase}")
        status = status or (1 if absent else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
