"""Seed 003 ("The Chain Rule: The Math Powering Neural Networks"): vanishing and exploding gradients, made visible.

The seed says gradients "can vanish (approach zero) or explode (grow excessively)", recommends ReLU or
Leaky ReLU, gradient clipping, and Adam or RMSprop, and invites the reader to "adjust a parameter, such
as the learning rate or activation function, and observe its effect".  This example measures each of
those statements on a deep network — 625-16×8-10: eight hidden layers of 16, softmax output,
cross-entropy — trained on a subset of the shipped 25×25 digits:

1. Why, from the chain rule: ∂C/∂w(1) multiplies one σ'(z(l)) per layer, and SymPy finds the largest
   sigmoid slope is σ'(0) = 1/4, while ReLU' and LeakyReLU' are 1 for z > 0.
2. At initialisation, the gradient of every layer, ‖∂C/∂W(l)‖, and the backpropagated error
   ‖δ(l)‖ = ‖∂C/∂z(l)‖: with sigmoid they shrink towards the input, with (Leaky)ReLU they do not, and
   with every weight doubled δ doubles at each layer back (exploding).
3. Training (a sweep, symback.training.sweep): sigmoid / ReLU / LeakyReLU × SGD / RMSprop / Adam from the same
   starting weights; per-layer gradient norms per epoch and the loss curves side by side.
4. The learning rate: the same sweep over η for sigmoid and LeakyReLU with SGD.
5. Clipping: the doubled-weights network diverges at its first step; clipped by norm its gradient
   norm never exceeds the clip value, clipped by value no step exceeds η·v, and the loss stays finite.

Run:  python examples/seed003_gradients.py [--out DIR] [--fast]
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import sympy as sp

import symback
from symback.datasets import load_digits
from symback.files import write_atomic
from symback.symbolic.activations import Z
from symback.training import plots
from symback.training.sweep import Run, SweepResult, grid, run_sweep, write_sweep
from symback.training.train import Trainer, TrainingConfig

HIDDEN, WIDTH = 8, 16  # eight hidden layers of 16 neurons: deep enough for the chain rule to show
ACTIVATIONS = ("sigmoid", "relu", "leaky_relu")
OPTIMIZERS = (("sgd", 0.1), ("rmsprop", 0.003), ("adam", 0.01))  # section 4 tries SGD at other rates
BATCH = 32
EXPLODING_GAIN = 2.0  # every He-initialised weight doubled
CLIP_NORM, CLIP_VALUE, CLIP_RATE = 1.0, 0.1, 0.05


def deep_network(activation: str) -> symback.Network:
    """625-16×8-10 with ``activation`` on the hidden layers and softmax + cross-entropy on top."""
    return symback.Network(
        [625] + [WIDTH] * HIDDEN + [10], [activation] * HIDDEN + ["softmax"], "categorical_cross_entropy"
    )


class Profile(NamedTuple):
    """Per-layer gradient sizes of one network at one point (layer 1 = first hidden layer)."""

    setup: str
    weight_norms: tuple[float, ...]  # ‖∂C/∂W(l), ∂C/∂b(l)‖ of the mean cost
    delta_norms: tuple[float, ...]  # mean over examples of ‖δ(l)‖ = ‖∂C_i/∂z(l)‖

    @property
    def ratio(self) -> float:
        """‖∂C/∂W(1)‖ / ‖∂C/∂W(L)‖: first layer against last."""
        return self.weight_norms[0] / self.weight_norms[-1]

    @property
    def delta_factor(self) -> float:
        """The geometric mean of ‖δ(l)‖ / ‖δ(l+1)‖: what one layer back multiplies the error by."""
        return (self.delta_norms[0] / self.delta_norms[-1]) ** (1 / (len(self.delta_norms) - 1))

    @property
    def total(self) -> float:
        return math.sqrt(sum(n * n for n in self.weight_norms))


def profile(setup: str, network: symback.Network, params: symback.Parameters, data: symback.Dataset) -> Profile:
    compiled = symback.CompiledNetwork(network)
    gradients = compiled.gradient(params, data)
    deltas = compiled.deltas(params, data)
    return Profile(
        setup,
        tuple(gradients.layer_norms()),
        tuple(float(np.linalg.norm(delta, axis=1).mean()) for delta in deltas),
    )


def scaled(params: symback.Parameters, gain: float) -> symback.Parameters:
    return symback.Parameters([w * gain for w in params.weights], [b.copy() for b in params.biases])


def run(out: Path | None = None, fast: bool = False) -> dict[str, Any]:
    n_train, n_test, epochs = (1000, 300, 8) if fast else (2000, 500, 10)
    train, test = load_digits(0.2, seed=0)
    # A seeded random subset of the (already shuffled) split, the same for every run of the example.
    pick = np.random.default_rng(0)
    train = train.take(np.sort(pick.permutation(len(train))[:n_train]))
    test = test.take(np.sort(pick.permutation(len(test))[:n_test]))
    results: dict[str, Any] = {"examples": (n_train, n_test), "epochs": epochs}
    tables: list[str] = []
    pictures: dict[str, bytes] = {}
    print(f"Seed 003 on {deep_network('sigmoid')!r}: {n_train} training / {n_test} test digits, {epochs} epochs\n")

    # 1. Why: the chain rule multiplies one σ'(z(l)) per layer.
    print("1. The chain rule through a deep chain")
    sigmoid = symback.get_activation("sigmoid")
    critical = sp.solve(sp.diff(sigmoid.derivative, Z), Z)
    steepest = sp.simplify(sigmoid.derivative.subs(Z, critical[0]))
    grid_values = symback.lambdify([Z], sigmoid.derivative)(np.linspace(-20, 20, 4001))
    assert critical == [0] and steepest == sp.Rational(1, 4) and grid_values.max() <= 0.25
    relu_slope = [symback.get_activation("relu").derivative.subs(Z, z) for z in (-1, 1)]
    leaky_slope = [symback.get_activation("leaky_relu").derivative.subs(Z, z) for z in (-1, 1)]
    assert relu_slope == [0, 1] and [float(s) for s in leaky_slope] == [0.01, 1.0]
    print(f"   σ'(z) = {sigmoid.derivative}: largest at z = 0, σ'(0) = {steepest}")
    print(f"   ReLU'(−1), ReLU'(1) = {relu_slope[0]}, {relu_slope[1]};  LeakyReLU'(−1), LeakyReLU'(1) = "
          f"{float(leaky_slope[0]):g}, {float(leaky_slope[1]):g}")
    chain = symback.Network([1] * (HIDDEN + 2), "sigmoid", "squared_error")
    path = symback.derive(chain, "w(1)").paths[0]
    slopes = [f for f in path if str(f.of).startswith("a(") and str(f.wrt).startswith("z(")]
    assert all(sp.simplify(f.derivative - sigmoid.derivative_at(f.wrt)) == 0 for f in slopes)
    print(f"   1-neuron chain with {chain.depth} layers: ∂C/∂w(1) has {len(path)} factors, {len(slopes)} of them "
          f"σ'(z(l)) ≤ 1/4, so they alone scale it by at most (1/4)^{len(slopes)} = {0.25 ** len(slopes):.2g}\n")
    results["sigmoid max slope"] = float(steepest)
    results["chain slope factors"] = len(slopes)
    results["chain factors"] = len(path)

    # 2. Gradient sizes per layer at initialisation.
    print("2. Per-layer gradients at initialisation (seed 0)")
    nets = {name: deep_network(name) for name in ACTIVATIONS}
    xavier = symback.Parameters.initialize(nets["sigmoid"], "xavier", seed=0)
    he = symback.Parameters.initialize(nets["relu"], "he", seed=0)
    setups = [
        ("sigmoid, Xavier", nets["sigmoid"], xavier),
        ("sigmoid, He", nets["sigmoid"], he),
        ("relu, He", nets["relu"], he),
        ("leaky_relu, He", nets["leaky_relu"], he),
        (f"leaky_relu, He × {EXPLODING_GAIN:g}", nets["leaky_relu"], scaled(he, EXPLODING_GAIN)),
    ]
    profiles = {name: profile(name, net, params, train) for name, net, params in setups}
    table = _profile_table(list(profiles.values()), nets["sigmoid"])
    print(_indent(table))
    tables.append("## Per-layer gradients at initialisation\n\n" + table)
    vanishing, exploding = profiles["sigmoid, Xavier"], profiles[f"leaky_relu, He × {EXPLODING_GAIN:g}"]
    # What the numbers show (measured: see the table); margins are wide so other seeds hold too.
    assert vanishing.ratio < 1e-3 and profiles["sigmoid, He"].ratio < 1e-2
    assert all(b < a for a, b in zip(vanishing.delta_norms[1:], vanishing.delta_norms))  # shrinks every layer back
    assert vanishing.delta_factor < 0.5
    for name in ("relu, He", "leaky_relu, He"):
        assert profiles[name].ratio > 0.3 and 0.6 < profiles[name].delta_factor < 1.5, name
        assert profiles[name].ratio > 100 * vanishing.ratio
    assert 1.5 < exploding.delta_factor < 2.5
    assert exploding.total > 100 * profiles["leaky_relu, He"].total
    print(f"   sigmoid: the first layer's gradient is {vanishing.ratio:.2g} × the last one's; each layer back "
          f"multiplies δ by {vanishing.delta_factor:.2f} (vanishing)")
    print(f"   ReLU / LeakyReLU (He): {profiles['relu, He'].ratio:.2f} / {profiles['leaky_relu, He'].ratio:.2f}; "
          f"δ factor {profiles['relu, He'].delta_factor:.2f} / {profiles['leaky_relu, He'].delta_factor:.2f} per layer")
    print(f"   weights × {EXPLODING_GAIN:g}: δ grows ×{exploding.delta_factor:.2f} per layer back, whole gradient "
          f"‖∂C/∂θ‖ = {exploding.total:.3g} against {profiles['leaky_relu, He'].total:.3g} (exploding)\n")
    results["init"] = {
        p.setup: {"ratio": p.ratio, "delta_factor": p.delta_factor, "total": p.total, "norms": p.weight_norms}
        for p in profiles.values()
    }

    # 3. Training: activation × optimizer, same starting weights (Xavier, seed 0) for every run.
    print("3. Training: activation × optimizer (the same starting weights for every run)")
    config = TrainingConfig(epochs=epochs, batch_size=BATCH, seed=0)
    runs = [
        Run(f"{activation} · {optimizer} η={rate:g}", symback.get_activation(activation), optimizer, rate)
        for activation in ACTIVATIONS
        for optimizer, rate in OPTIMIZERS
    ]
    sweep = run_sweep(nets["sigmoid"], xavier, train, runs, test=test, config=config, stream=_Indented())
    by = {(r.run.activation.name, r.run.optimizer): r for r in sweep.results}
    assert all(r.stop_reason == "epochs" for r in sweep.results)
    for optimizer, _ in OPTIMIZERS:
        for activation in ("relu", "leaky_relu"):
            # Judged by test accuracy: with SGD η = 0.1 the loss of the *final* parameters is noisy (fast mode,
            # LeakyReLU: 3.2 at 35.7 % test accuracy, while the epoch's running loss was far lower).
            assert by[activation, optimizer].test_accuracy > by["sigmoid", optimizer].test_accuracy + 0.1, (
                activation, optimizer)
    chance = math.log(10)  # the cross-entropy of guessing: a network that has learnt nothing
    assert by["sigmoid", "sgd"].final_loss > 0.97 * chance
    for optimizer in ("rmsprop", "adam"):
        assert by["sigmoid", optimizer].final_loss < by["sigmoid", "sgd"].final_loss - 0.05, optimizer
    for activation in ("relu", "leaky_relu"):
        # Measured: 78.4 % / 76.8 % against 11.2 % (fast mode: 39.7 % / 35.7 % against 10.7 %).
        assert by[activation, "sgd"].test_accuracy > by["sigmoid", "sgd"].test_accuracy + 0.1, activation
    sgd_ratios = {a: [n[0] / n[-1] for n in by[a, "sgd"].gradient_norms] for a in ACTIVATIONS}
    assert max(sgd_ratios["sigmoid"]) < 1e-3
    assert min(min(sgd_ratios["relu"]), min(sgd_ratios["leaky_relu"])) > 0.1
    for activation in ACTIVATIONS:
        print(f"   {activation} · sgd: first/last layer gradient norm between {min(sgd_ratios[activation]):.2g} and "
              f"{max(sgd_ratios[activation]):.2g} over the epochs")
    print(f"   sigmoid + SGD ends at loss {by['sigmoid', 'sgd'].final_loss:.3f} (chance: ln 10 = {chance:.3f}); Adam {by['sigmoid', 'adam'].final_loss:.3f}, "
          f"RMSprop {by['sigmoid', 'rmsprop'].final_loss:.3f} (per-parameter step sizes reach the starved layers)")
    print(f"   with SGD, test accuracy: sigmoid {by['sigmoid', 'sgd'].test_accuracy:.1%}, relu "
          f"{by['relu', 'sgd'].test_accuracy:.1%}, leaky_relu {by['leaky_relu', 'sgd'].test_accuracy:.1%}\n")
    tables.append("## Training: activation × optimizer\n\n" + sweep.markdown())
    tables.append("## Per-layer gradient norms while training with SGD (first and last epoch)\n\n"
                  + _training_table(sweep, nets["sigmoid"]))
    for activation in ACTIVATIONS:
        norms = np.array(by[activation, "sgd"].gradient_norms)
        curves = {f"layer {l} ({nets['sigmoid'].layer_label(l)})": norms[:, l - 1] for l in range(1, norms.shape[1] + 1)}
        pictures[f"seed003_norms_{activation}"] = ("gradient_norm_curves", curves,
                                                   f"{activation}: ‖∂C/∂W(l)‖ per layer, SGD η=0.1")
    results["training"] = {r.run.label: r.row() for r in sweep.results}
    results["sgd first/last ratio"] = {a: (min(v), max(v)) for a, v in sgd_ratios.items()}

    # 4. The learning rate, the other parameter the seed invites us to adjust.
    print("4. The learning rate (SGD)")
    rates = grid(learning_rates=[0.01, 0.1, 1.0], activations=["sigmoid", "leaky_relu"], optimizers=["sgd"])
    lr_sweep = run_sweep(nets["sigmoid"], xavier, train, rates, test=test, config=config, stream=_Indented())
    lr = {(r.run.activation.name, r.run.learning_rate): r for r in lr_sweep.results}
    # No step size rescues sigmoid with SGD; LeakyReLU has a sweet spot: too small is slow, too large stalls.
    assert all(lr["sigmoid", rate].final_loss > 0.97 * chance for rate in (0.01, 0.1, 1.0))
    # Judged by test accuracy, as above (the final parameters' loss is noisy with SGD).
    assert lr["leaky_relu", 0.1].test_accuracy > lr["leaky_relu", 0.01].test_accuracy + 0.1
    assert _worse(lr["leaky_relu", 1.0], lr["leaky_relu", 0.1], by=0.1)
    print("   sigmoid, final loss at η = 0.01 / 0.1 / 1: "
          + " / ".join(_loss_text(lr["sigmoid", rate]) for rate in (0.01, 0.1, 1.0)) + "  (all near chance)")
    print("   leaky_relu, final loss at η = 0.01 / 0.1 / 1: "
          + " / ".join(_loss_text(lr["leaky_relu", rate]) for rate in (0.01, 0.1, 1.0)) + "\n")
    tables.append("## The learning rate\n\n" + lr_sweep.markdown())
    results["learning rate"] = {r.run.label: r.row() for r in lr_sweep.results}

    # 5. Exploding gradients and clipping.
    print(f"5. Clipping the exploding network (LeakyReLU, He weights × {EXPLODING_GAIN:g}, SGD η={CLIP_RATE:g})")
    start = scaled(he, EXPLODING_GAIN)
    clipped = {}
    for name, settings in (("no clipping", {}), (f"clip_norm {CLIP_NORM:g}", {"clip_norm": CLIP_NORM}),
                           (f"clip_value {CLIP_VALUE:g}", {"clip_value": CLIP_VALUE})):
        settings = TrainingConfig(learning_rate=CLIP_RATE, epochs=epochs, batch_size=BATCH, seed=0, **settings)
        clipped[name] = Trainer(nets["leaky_relu"], settings).fit(start, train, test)
    free, by_norm, by_value = clipped.values()
    assert free.stop_reason == "non_finite"
    norms = [math.sqrt(sum(n * n for n in epoch)) for epoch in by_norm.history.gradient_norms]
    assert exploding.total > 100 * CLIP_NORM and max(norms) <= CLIP_NORM * (1 + 1e-9)
    assert max(by_value.history.step_sizes) <= CLIP_RATE * CLIP_VALUE * (1 + 1e-9)
    for fit in (by_norm, by_value):
        assert fit.stop_reason == "epochs" and all(math.isfinite(v) for v in fit.history.loss)
        assert fit.final_loss < fit.initial_loss / 5
    print(f"   no clipping: stopped ({free.stop_reason}) after {free.epochs} epoch(s): {free.message}")
    print(f"   clip_norm {CLIP_NORM:g}: ‖∂C/∂θ‖ was {exploding.total:.3g} at the start; the recorded norm never "
          f"exceeds {max(norms):.4g}; loss {by_norm.initial_loss:.3g} → {by_norm.final_loss:.3g}, "
          f"test accuracy {by_norm.history.test_accuracy[-1]:.1%}")
    print(f"   clip_value {CLIP_VALUE:g}: the largest step |η·g| is {max(by_value.history.step_sizes):.3g} "
          f"(η·v = {CLIP_RATE * CLIP_VALUE:g}); loss {by_value.initial_loss:.3g} → {by_value.final_loss:.3g}, "
          f"test accuracy {by_value.history.test_accuracy[-1]:.1%}\n")
    tables.append("## Clipping the exploding network\n\n" + _clipping_table(clipped))
    pictures["seed003_clipping_loss"] = ("loss_curves", {k: v.history.loss for k, v in clipped.items() if v.history.loss},
                                         f"LeakyReLU, weights × {EXPLODING_GAIN:g} (unclipped: {free.stop_reason} "
                                         f"at step {free.steps + 1})")
    results["clipping"] = {
        "no clipping": free.stop_reason,
        "start norm": exploding.total,
        "max clipped norm": max(norms),
        "stop message": free.message,
        "clip_norm loss": (by_norm.initial_loss, by_norm.final_loss),  # on the training set, start and end
        "max step by value": max(by_value.history.step_sizes),
        "clip_value loss": (by_value.initial_loss, by_value.final_loss),
    }

    if out is not None:
        results["files"] = _write(out, tables, pictures, sweep, lr_sweep)
    return results


# -- output ---------------------------------------------------------------------------------------


def _write(out: Path, tables: list[str], pictures: dict, sweep: SweepResult, lr_sweep: SweepResult) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    text = "# Seed 003: vanishing and exploding gradients\n\n" + "\n".join(tables)
    written = [str(write_atomic(out / "seed003_gradients.md", text))]
    files = write_sweep(sweep, out, name="seed003_sweep_optimizers", title="loss per epoch: activation × optimizer")
    lr_files = write_sweep(lr_sweep, out, name="seed003_sweep_learning_rate", title="loss per epoch: learning rate (SGD)")
    written += [str(p) for p in files.paths + lr_files.paths]
    if plots.have_matplotlib():
        for name, (kind, curves, title) in pictures.items():
            draw = plots.gradient_norm_curves if kind == "gradient_norm_curves" else plots.loss_curves
            written.append(str(plots.save_png(draw(curves, title=title), out / f"{name}.png")))
    else:
        print(f"   (no pictures: {plots.PLOT_HINT})")
    for path in written:
        print(f"   wrote {path}")
    return written


def _profile_table(profiles: list[Profile], network: symback.Network) -> str:
    head = "| layer | " + " | ".join(f"‖∂C/∂W‖ {p.setup} | ‖δ‖ {p.setup}" for p in profiles) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(profiles))]
    for index in range(len(profiles[0].weight_norms)):
        label = f"{index + 1} ({network.layer_label(index + 1)})"
        cells = [f"{p.weight_norms[index]:.3g} | {p.delta_norms[index]:.3g}" for p in profiles]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| first/last | " + " | ".join(
        f"{p.ratio:.3g} | {p.delta_norms[0] / p.delta_norms[-1]:.3g}" for p in profiles) + " |")
    lines.append("| δ factor per layer back | " + " | ".join(f" | {p.delta_factor:.3g}" for p in profiles) + " |")
    lines.append("| whole gradient ‖∂C/∂θ‖ | " + " | ".join(f"{p.total:.3g} | " for p in profiles) + " |")
    return "\n".join(lines) + "\n"


def _training_table(sweep: SweepResult, network: symback.Network) -> str:
    runs = [r for r in sweep.results if r.run.optimizer == "sgd"]
    lines = ["| layer | " + " | ".join(f"{r.run.activation.name} epoch 1 | {r.run.activation.name} epoch {r.epochs}"
                                       for r in runs) + " |", "|" + "---|" * (1 + 2 * len(runs))]
    for index in range(network.depth):
        cells = [f"{r.gradient_norms[0][index]:.3g} | {r.gradient_norms[-1][index]:.3g}" for r in runs]
        lines.append(f"| {index + 1} ({network.layer_label(index + 1)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _clipping_table(fits: dict) -> str:
    lines = ["| run | epochs | stopped | loss at the start | loss at the end | largest recorded ‖∂C/∂θ‖ | largest step |",
             "|---|---|---|---|---|---|---|"]
    for name, fit in fits.items():
        h = fit.history
        norm = max((math.sqrt(sum(n * n for n in e)) for e in h.gradient_norms), default=None)
        cells = [name, str(fit.epochs), fit.stop_reason, _g(fit.initial_loss),  # training set, whole
                 _g(fit.final_loss), _g(norm), _g(max(h.step_sizes, default=None))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _g(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _worse(a, b, by: float) -> bool:
    """Run ``a`` diverged, or ended with a test accuracy lower than ``b``'s by more than ``by``."""
    return a.stop_reason == "non_finite" or a.test_accuracy is None or a.test_accuracy < b.test_accuracy - by


def _loss_text(result) -> str:
    if result.stop_reason == "non_finite":
        return f"diverged ({result.message.split(';')[0]})"
    return f"{result.final_loss:.3f}"


def _indent(text: str) -> str:
    return re.sub(r"(?m)^", "   ", text.rstrip("\n")) + "\n"


class _Indented:
    """A stream for run_sweep's progress lines, indented under the example's headings."""

    def __init__(self) -> None:
        self.fresh = True

    def write(self, text: str) -> None:
        for piece in re.split(r"(\n)", text):
            if piece and self.fresh and piece != "\n":
                print("   ", end="")
                self.fresh = False
            print(piece, end="")
            if piece == "\n":
                self.fresh = True

    def flush(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the tables and pictures")
    parser.add_argument("--fast", action="store_true",
                        help="fewer digits and epochs, a quicker look (the tests run it in full)")
    args = parser.parse_args()
    run(args.out, args.fast)


if __name__ == "__main__":
    main()
