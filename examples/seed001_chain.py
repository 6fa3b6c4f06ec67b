"""Seed 001 (3Blue1Brown, "Chain rule application in machine learning"), reproduced and extended.

1. The one-neuron-per-layer chain: ∂C0/∂w(L) = ∂C0/∂a(L) · ∂a(L)/∂z(L) · ∂z(L)/∂w(L) with
   ∂C0/∂a(L) = 2(a(L) − y), ∂a(L)/∂z(L) = σ'(z(L)), ∂z(L)/∂w(L) = a(L−1); ∂z(L)/∂b(L) = 1;
   ∂z(L)/∂a(L−1) = w(L) — each factor derived by SymPy, each value checked by finite differences.
2. Several neurons per layer: indices j (layer L) and k (layer L−1); ∂C0/∂a(L−1)_k sums over every
   path through the neurons j of layer L.

Run:  python examples/seed001_chain.py [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

import symback
from symback.symbolic.activations import Z


def _finite_difference_on_activation(network, params, data, layer, k, h=1e-6) -> float:
    """∂C/∂a(layer)_k by central differences: perturb the activation and rerun the layers above it."""
    compiled = symback.CompiledNetwork(network)
    forward = compiled.forward(params, data.X)

    def cost_from(activations: np.ndarray) -> float:
        a = activations
        for index in range(layer, network.depth):
            a = compiled.layers[index].forward(a @ params.weights[index].T + params.biases[index])
        return float(compiled.cost_term(a, data.Y).sum(axis=1).mean())

    up, down = forward.activations[layer].copy(), forward.activations[layer].copy()
    up[:, k] += h
    down[:, k] -= h
    return (cost_from(up) - cost_from(down)) / (2 * h)


def run(out: Path | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {}

    # 1. The chain: w(L), a(L-1), b(L) -> z(L) -> a(L) -> C0 (with y).
    chain = symback.Network([1, 1, 1, 1], "sigmoid", "squared_error")
    params = symback.Parameters.initialize(chain, "uniform", seed=1)
    data = symback.Dataset.from_arrays([0.8], [1.0])
    a_L, y, z_L, a_prev, w_L = (sp.Symbol(n, real=True) for n in ("a(L)", "y", "z(L)", "a(L-1)", "w(L)"))
    z = Z
    sigma_prime = sp.diff(1 / (1 + sp.exp(-z)), z).subs(z, z_L)
    expected = {
        "w(L)": [2 * a_L - 2 * y, sigma_prime, a_prev],
        "b(L)": [2 * a_L - 2 * y, sigma_prime, sp.Integer(1)],
        "a(L-1)": [2 * a_L - 2 * y, sigma_prime, w_L],
    }
    print("1. One neuron per layer (the 1-1-1-1 chain)\n")
    for name, factors in expected.items():
        derivation = symback.derive(chain, name)
        (path,) = derivation.paths
        assert [sp.simplify(f.derivative - e) for f, e in zip(path, factors)] == [0, 0, 0], name
        value = derivation.value(params, data)
        print(f"  ∂C/∂{name} = {derivation.chain_notation()}")
        for factor in path:
            print(f"      {factor}")
        print(f"    = {value:.6f} at the sample point\n")
        results[name] = value
    for name in ("w(L)", "b(L)"):
        ref = chain.resolve(name)
        bumped_up, bumped_down = params.copy(), params.copy()
        bumped_up.set(ref, params.get(ref) + 1e-6)
        bumped_down.set(ref, params.get(ref) - 1e-6)
        compiled = symback.CompiledNetwork(chain)
        numeric = (compiled.cost(bumped_up, data) - compiled.cost(bumped_down, data)) / 2e-6
        assert abs(numeric - results[name]) < 1e-8, (name, numeric, results[name])
    numeric = _finite_difference_on_activation(chain, params, data, 2, 0)
    assert abs(numeric - results["a(L-1)"]) < 1e-8
    earlier = symback.derive(chain, "w(L-2)")
    print(f"  Earlier layers multiply through every layer: ∂C/∂w(L-2) = {earlier.chain_notation()}\n")
    results["w(L-2) factors"] = len(earlier.paths[0])

    # 2. Several neurons per layer: j in layer L, k in layer L-1, sum over paths.
    wide = symback.Network([3, 4, 2], "sigmoid", "squared_error")
    wide_params = symback.Parameters.initialize(wide, "uniform", seed=2)
    wide_data = symback.Dataset.from_arrays([[0.2, 0.9, 0.4]], [[1.0, 0.0]])
    print("2. Several neurons per layer: indices j (layer L), k (layer L-1)\n")
    weight = symback.derive(wide, "w(L)_1_3")
    print(f"  ∂C0/∂w(L)_jk  = {weight.chain_notation(indexed=True)}   (the same three factors)")
    activation = symback.derive(wide, "a(L-1)_2")
    print(f"  ∂C0/∂a(L-1)_k = {activation.chain_notation(indexed=True)}")
    print(f"    written out for k = 2: {len(activation.paths)} paths, one through each neuron j of layer L:")
    for path in activation.paths:
        print("      " + " · ".join(f.notation for f in path))
    value = activation.value(wide_params, wide_data)
    numeric = _finite_difference_on_activation(wide, wide_params, wide_data, 1, 2)
    assert abs(value - numeric) < 1e-8
    print(f"    = {value:.6f} (finite differences: {numeric:.6f})")
    results["paths for a(L-1)_2"] = len(activation.paths)
    results["a(L-1)_2"] = value

    if out is not None:
        results["reports"] = _write_reports(chain, params, data, out)
    return results


def _write_reports(network, params, data, out: Path) -> list[str]:
    """The derivation of ∂C/∂w(L) as HTML, Markdown, LaTeX and (with pdflatex) PDF."""
    from symback.render.report import build_report, write_report

    report = build_report(symback.derive(network, "w(L)"), params, data, source="examples/seed001_chain.py")
    written = []
    for suffix in ("html", "md", "tex", "pdf"):
        try:
            path = write_report(report, out / f"seed001_chain.{suffix}")
        except symback.SymbackError as error:  # e.g. pdflatex is not installed
            print(f"  ({suffix} not written: {error})")
            continue
        written.append(str(path))
        print(f"  wrote {path}")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the reports")
    run(parser.parse_args().out)


if __name__ == "__main__":
    main()
