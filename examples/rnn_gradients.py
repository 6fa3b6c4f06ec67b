"""Seed 003 through time: a recurrent layer's per-time-step gradients vanish, explode, and clipping cures it.

A recurrent layer reads the shipped 25×25 digits row by row — 25 time steps of 25 pixels — keeps 16
hidden units, h_t = f(W h_{t−1} + U x_t + b), and a softmax readout sees only the last state h_25, so
every earlier step reaches the cost through the recurrence alone (spec: ``examples/rnn_digits.toml``).

1. Why, from the chain rule: symback's engine derives backpropagation through time from the layer's one
   formula — ∂C/∂h[τ, κ] = (readout) + Σ_j δ[τ+1, j] W[j, κ] — and the unrolled chain gives
   ∂h_T/∂h_0 = Π_t W f′(z_t): one factor W·f′ per step, with max f′ = 1 (tanh) or 1/4 (sigmoid), found by
   SymPy.  Below 1 per step the product vanishes; above 1 it explodes.
2. At initialisation, the per-time-step error ‖δ_t‖ = ‖∂C/∂z_t‖ (the compiled BPTT's, mean over the
   digits) from the last step back: tanh and sigmoid vanish; with the recurrent weights W multiplied by 4
   it explodes.
3. Training with SGD, same starting weights: a linear recurrence (identity f) with W×1.3, whose gradient
   at the start is 205, and the large-W tanh network, each without and with ``clip_norm = 1`` (the
   Trainer's clipping).  Unclipped, the linear one overflows in its first epoch (non-finite loss,
   stopped with the last good parameters); clipped, every recorded gradient norm is at most 1 and it
   learns.  The tanh one is reported, not asserted: its saturating units keep the loss finite either way,
   and in 6 epochs neither run gets far from chance (9.2 % unclipped, 16.4 % clipped).

Run:  python examples/rnn_gradients.py [--out DIR] [--fast]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

import symback
from symback.datasets import load_digits
from symback.files import write_atomic
from symback.spec.layer_table import network_from_tables
from symback.symbolic.activations import Z
from symback.symbolic.chain import derive_backward
from symback.training.train import Trainer, TrainingConfig

HIDDEN, STEPS = 16, 25
PROFILES = (("tanh", 1.0), ("sigmoid", 1.0), ("tanh", 4.0))  # (activation, factor on W)
RUNS = (("tanh", 4.0), ("identity", 1.3))
CLIP_NORM = 1.0


def network(activation: str) -> symback.Network:
    """``examples/rnn_digits.toml``'s network with ``activation`` on the recurrent layer."""
    return network_from_tables(
        {"inputs": [STEPS, 25], "cost": "categorical_cross_entropy"},
        [{"kind": "recurrent", "hidden": HIDDEN, "activation": activation},
         {"size": 10, "activation": "softmax", "reads": "last"}],
    )


def starting_parameters(net: symback.Network, factor: float) -> symback.Parameters:
    """Xavier (seed 0), then the recurrent block W = w[:, :hidden] of w = [W | U] multiplied by ``factor``."""
    params = symback.Parameters.initialize(net, "xavier", seed=0)
    params.weights[0][:, :HIDDEN] *= factor
    return params


def per_step_errors(net: symback.Network, params: symback.Parameters, data: symback.Dataset) -> np.ndarray:
    """‖δ_t‖ = ‖∂C_i/∂z_t‖ per time step, mean over the examples (the compiled backward scan's δ)."""
    deltas = symback.CompiledNetwork(net).deltas(params, data)[0]  # (examples, steps, hidden)
    return np.linalg.norm(deltas, axis=2).mean(axis=0)


def run(out: Path | None = None, fast: bool = False) -> dict[str, Any]:
    n_train, n_test, epochs = (500, 300, 3) if fast else (1000, 500, 6)
    train, test = load_digits(0.2, seed=0)
    pick = np.random.default_rng(0)
    train = train.take(np.sort(pick.permutation(len(train))[:n_train]))
    test = test.take(np.sort(pick.permutation(len(test))[:n_test]))
    results: dict[str, Any] = {"examples": (n_train, n_test), "epochs": epochs}
    lines: list[str] = [f"# Vanishing and exploding gradients through time ({n_train} / {n_test} digits, {epochs} epochs)", ""]

    # 1. The derivation.
    print("1. Backpropagation through time, derived")
    backward = derive_backward(network("tanh"))
    adjoint = backward.adjoints[1]
    print(f"   ∇h[k, k_1] = {adjoint}")
    assert adjoint.has(backward.delta[1]), "∂C/∂h_t reads δ of the next step"
    steepest = {}
    for name in ("tanh", "sigmoid"):
        derivative = symback.get_activation(name).derivative
        critical = [c for c in sp.solve(sp.diff(derivative, Z), Z) if c.is_real]
        steepest[name] = sp.nsimplify(max(derivative.subs(Z, c) for c in critical))
    assert steepest == {"tanh": 1, "sigmoid": sp.Rational(1, 4)}
    print(f"   ∂h_T/∂h_0 = Π_t W·f′(z_t); max f′: tanh {steepest['tanh']}, sigmoid {steepest['sigmoid']} (SymPy)\n")
    results["steepest"] = {k: float(v) for k, v in steepest.items()}
    lines += ["∇h at step k (derived): `" + str(adjoint) + "`", "",
              f"max f′ (SymPy): tanh {steepest['tanh']}, sigmoid {steepest['sigmoid']}", ""]

    # 2. Per-time-step errors at initialisation.
    print("2. ‖δ_t‖ per time step at initialisation (mean over the training digits)")
    lines += ["| recurrent layer | ‖δ_1‖ | ‖δ_7‖ | ‖δ_13‖ | ‖δ_19‖ | ‖δ_25‖ | ‖δ_1‖ / ‖δ_25‖ |", "|---|---|---|---|---|---|---|"]
    profiles = {}
    for activation, factor in PROFILES:
        net = network(activation)
        norms = per_step_errors(net, starting_parameters(net, factor), train)
        label = f"{activation}, W×{factor:g}"
        profiles[label] = norms
        ratio = norms[0] / norms[-1]
        shown = " ".join(f"{v:9.2e}" for v in norms[::6])
        print(f"   {label:14s} {shown}   first/last {ratio:.2e}")
        lines.append(f"| {label} | " + " | ".join(f"{v:.2e}" for v in norms[::6]) + f" | {ratio:.2e} |")
    results["ratios"] = {label: float(n[0] / n[-1]) for label, n in profiles.items()}
    assert results["ratios"]["tanh, W×1"] < 1e-2 and results["ratios"]["sigmoid, W×1"] < 1e-8
    assert results["ratios"]["tanh, W×4"] > 1e2
    print()

    # 3. Training without and with clipping.
    print(f"3. SGD, batches of 32, η = 0.1, {epochs} epochs: without and with clip_norm = {CLIP_NORM:g}")
    lines += ["", "| recurrent layer | clipping | stopped | loss (first → last epoch) | test accuracy | largest recorded ‖∂C/∂θ(l)‖ |",
              "|---|---|---|---|---|---|"]
    fits = {}
    for activation, factor in RUNS:
        net = network(activation)
        params = starting_parameters(net, factor)
        start_gradient = symback.CompiledNetwork(net).gradient(params, train).norm()
        results.setdefault("start gradients", {})[f"{activation}, W×{factor:g}"] = start_gradient
        for clip in (None, CLIP_NORM):
            config = TrainingConfig(optimizer="sgd", learning_rate=0.1, epochs=epochs, batch_size=32, seed=0,
                                    clip_norm=clip, progress=False)
            result = Trainer(net, config).fit(params, train, test)
            history = result.history
            key = (f"{activation}, W×{factor:g}", clip)
            fits[key] = result
            loss = f"{history.loss[0]:.3f} → {history.loss[-1]:.3f}" if history.loss else "—"
            accuracy = f"{history.test_accuracy[-1]:.1%}" if history.test_accuracy else "—"
            largest = max((max(norms) for norms in history.gradient_norms), default=float("nan"))
            print(f"   {key[0]:14s} clip {clip!s:5s} {result.stop_reason:10s} loss {loss:17s} test {accuracy:6s} "
                  f"largest ‖∂C/∂θ(l)‖ {largest:.3g} (at the start ‖∂C/∂θ‖ = {start_gradient:.3g})")
            lines.append(f"| {key[0]} | {clip if clip else 'none'} | {result.stop_reason} | {loss} | {accuracy} | {largest:.3g} |")
    results["fits"] = {f"{k[0]} clip {k[1]}": (r.stop_reason, r.history.loss, r.history.test_accuracy) for k, r in fits.items()}
    linear_free, linear_clipped = fits[("identity, W×1.3", None)], fits[("identity, W×1.3", CLIP_NORM)]
    assert linear_free.stop_reason == "non_finite" and linear_clipped.stop_reason == "epochs"
    assert linear_clipped.history.loss[-1] < linear_clipped.history.loss[0]
    tanh_clipped = fits[("tanh, W×4", CLIP_NORM)]
    for result in (linear_clipped, tanh_clipped):
        assert all(np.linalg.norm(norms) <= CLIP_NORM * (1 + 1e-9) for norms in result.history.gradient_norms)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "rnn_gradients.md", "\n".join(lines) + "\n")
        print(f"\nwrote {out / 'rnn_gradients.md'}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="folder for rnn_gradients.md")
    parser.add_argument("--fast", action="store_true", help="fewer digits and epochs (what the tests run)")
    args = parser.parse_args()
    run(args.out, args.fast)


if __name__ == "__main__":
    main()
