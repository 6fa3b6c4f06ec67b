"""The shifted-index lowering (symback.compile.lowering_shifted) against naive convolution code, same run.

Three ways to compute one convolution layer's forward pass and its three backward sums (input
gradient, kernel gradient, bias gradient) on the digits example's shape — a batch of 1×25×25 pictures,
8 filters of 5×5, valid padding:

* ``positions``: a Python loop over output positions and kernel offsets (tests/reference.py's loops,
  vectorised over the batch only) — what the definition says, term by term;
* ``offsets``: a loop over the kernel offsets only, each a whole shifted slice (the usual hand-written
  NumPy convolution);
* ``lowered``: symback's lowering — sliding_window_view windows contracted by one tensordot each.

    python benchmarks/bench_conv.py [--batch 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout

from symback.compile import lowering_shifted as shifted  # noqa: E402
from tests import reference  # noqa: E402


def by_offsets(A, W, D):
    """Forward and backward with one whole-array slice per kernel offset (valid padding)."""
    n, c, H, Wd = A.shape
    o, _, kh, kw = W.shape
    oh, ow = H - kh + 1, Wd - kw + 1
    Z = np.zeros((n, o, oh, ow))
    dA, dW = np.zeros_like(A), np.zeros_like(W)
    for u in range(kh):
        for v in range(kw):
            window = A[:, :, u:u + oh, v:v + ow]
            Z += np.einsum("ncpq,oc->nopq", window, W[:, :, u, v])
            dA[:, :, u:u + oh, v:v + ow] += np.einsum("nopq,oc->ncpq", D, W[:, :, u, v])
            dW[:, :, u, v] = np.einsum("nopq,ncpq->oc", D, window)
    return Z, dA, dW, D.sum(axis=(0, 2, 3))


def by_positions(A, W, D):
    Z = reference.conv_forward(A, W, np.zeros(W.shape[0]), "valid")
    return (Z, *reference.conv_backward(A, W, D, "valid"))


def lowered(A, W, D):
    pads = shifted.padding(W.shape[2:], "valid")
    Z = shifted.correlate(A, W, pads)
    return (Z, shifted.correlate_transposed(D, W, pads, A.shape[2:]), shifted.kernel_gradient(D, A, pads, W.shape[2:]),
            shifted.bias_gradient(D))


def best_time(function, *arguments, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*arguments)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    A = rng.normal(size=(args.batch, 1, 25, 25))
    W = rng.normal(size=(8, 1, 5, 5))
    D = rng.normal(size=(args.batch, 8, 21, 21))
    results = [f(A, W, D) for f in (by_positions, by_offsets, lowered)]
    for other in results[1:]:
        for mine, theirs in zip(other, results[0]):
            np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-10)
    timed = {f.__name__: best_time(f, A, W, D, repeats=args.repeats) for f in (by_positions, by_offsets, lowered)}
    print(f"conv2d 1x25x25 -> 8x21x21 (5x5 kernel), batch {args.batch}, forward + backward, best of {args.repeats}")
    print("| implementation | ms | × lowered |")
    print("|---|---|---|")
    for name, seconds in timed.items():
        print(f"| {name} | {seconds * 1e3:.2f} | {seconds / timed['lowered']:.2f} |")


if __name__ == "__main__":
    main()
