"""Build 625-20-20-10 and derive it per layer (index form): must take well under a second.

Symbolic work must not grow with layer width, so the same work is timed on the
1-1-1-1 chain and the ratio printed (the machine is noisy: compare ratios, not
absolute times).  Run:  python benchmarks/bench_derive.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import symback  # noqa: E402


def build_and_derive(sizes: list[int]) -> dict[str, object]:
    """Network + one derivation per layer (weight and bias) + the δ recursion, in index form."""
    network = symback.Network(sizes, "sigmoid", "squared_error")
    derivations = []
    for layer in range(1, network.depth + 1):
        derivations.append(symback.derive(network, symback.NodeRef("w", layer, 0, 0), form="indexed"))
        derivations.append(symback.derive(network, symback.NodeRef("b", layer, 0), form="indexed"))
    equations = symback.backprop_equations(network)
    return {"network": network, "derivations": derivations, "equations": equations}


def best_of(repeats: int, sizes: list[int]) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        sp.core.cache.clear_cache()  # time the real symbolic work, not SymPy's cache
        start = time.perf_counter()
        build_and_derive(sizes)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> int:
    result = build_and_derive([625, 20, 20, 10])
    network = result["network"]
    print(f"625-20-20-10: {network.n_weights:,} weights, {network.n_biases} biases")
    print("index-form chain for w(1)_0_0:", result["derivations"][0].chain_notation())
    wide_best, wide_median = best_of(7, [625, 20, 20, 10])
    chain_best, chain_median = best_of(7, [1, 1, 1, 1])
    print(f"build + per-layer derivation + BP1-BP4, 625-20-20-10: best {wide_best * 1e3:.1f} ms, median {wide_median * 1e3:.1f} ms")
    print(f"same work, 1-1-1-1 chain:                         best {chain_best * 1e3:.1f} ms, median {chain_median * 1e3:.1f} ms")
    print(f"ratio 625-20-20-10 / 1-1-1-1: {wide_best / chain_best:.2f}x (1.0x = no growth with width)")
    return 0 if wide_best < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
