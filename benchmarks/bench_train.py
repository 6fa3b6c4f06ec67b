"""Training-step throughput: symback's compiled kernels vs a hand-written NumPy backprop (and PyTorch CPU).

Seed 000's 625-20-20-10 network, sigmoid everywhere, squared error (Σ over outputs, mean over the
batch), plain gradient descent.  One "step" is forward + cost + gradient + parameter update, the same
work on both sides.  Both run in this process on the same data (the shipped digits), so the ratios are
like for like.  Also: peak memory of one step (tracemalloc) and the time to derive and compile.

    python benchmarks/bench_train.py            # all batch sizes, float64 and float32
    python benchmarks/bench_train.py --quick    # fewer repeats

Set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS to pin the BLAS threads (both sides use the same BLAS).
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import symback  # noqa: E402
from symback.compile.compiler import CompiledNetwork, Gradients  # noqa: E402
from symback.datasets import load_digits  # noqa: E402
from symback.training.optimizers import get_optimizer  # noqa: E402

SIZES = [625, 20, 20, 10]
RATE = 0.5


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class NumpyBaseline:
    """Hand-written backprop of the same network: what one would write without symback."""

    def __init__(self, weights, biases):
        self.W = [w.copy() for w in weights]
        self.b = [b.copy() for b in biases]

    def step(self, X, Y):
        W1, W2, W3 = self.W
        b1, b2, b3 = self.b
        n = X.shape[0]
        a1 = _sigmoid(X @ W1.T + b1)
        a2 = _sigmoid(a1 @ W2.T + b2)
        a3 = _sigmoid(a2 @ W3.T + b3)
        loss = float(((a3 - Y) ** 2).sum() / n)
        d3 = 2.0 * (a3 - Y) * a3 * (1.0 - a3)
        d2 = (d3 @ W3) * a2 * (1.0 - a2)
        d1 = (d2 @ W2) * a1 * (1.0 - a1)
        grads = [(d1.T @ X) / n, (d2.T @ a1) / n, (d3.T @ a2) / n]
        bias_grads = [d1.sum(axis=0) / n, d2.sum(axis=0) / n, d3.sum(axis=0) / n]
        for p, g in zip(self.W + self.b, grads + bias_grads):
            p -= RATE * g
        return loss


class SymbackStep:
    """symback's training step: the compiled loss_and_gradient and the sgd optimizer, as Trainer runs
    them (packed parameters, one gradient buffer reused by every step)."""

    def __init__(self, compiled, params):
        self.compiled = compiled
        self.params = params.copy()
        self.gradients = Gradients.zeros_like(self.params)
        self.optimizer = get_optimizer("sgd", learning_rate=RATE)

    def step(self, X, Y):
        loss, gradients, _ = self.compiled.loss_and_gradient(self.params, X, Y, out=self.gradients)
        self.optimizer.step(self.params, gradients)
        return loss


class TorchStep:
    def __init__(self, weights, biases, dtype):
        import torch

        self.torch = torch
        kind = torch.float64 if dtype == np.float64 else torch.float32
        self.params = [torch.tensor(p, dtype=kind, requires_grad=True) for p in list(weights) + list(biases)]
        self.optimizer = torch.optim.SGD(self.params, lr=RATE)
        self.kind = kind

    def step(self, X, Y):
        torch = self.torch
        W1, W2, W3, b1, b2, b3 = self.params
        self.optimizer.zero_grad(set_to_none=True)
        a = torch.sigmoid(X @ W1.T + b1)
        a = torch.sigmoid(a @ W2.T + b2)
        a = torch.sigmoid(a @ W3.T + b3)
        loss = ((a - Y) ** 2).sum() / X.shape[0]
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def _batches(X, Y, batch, to=None):
    out = [(X[i : i + batch], Y[i : i + batch]) for i in range(0, len(X) - batch + 1, batch)]
    return [(to(x), to(y)) for x, y in out] if to else out


def _throughput(steppers, batches, repeats):
    """Best samples/s of each stepper over ``repeats`` rounds, the steppers taking turns within each round
    (after one warm-up pass each), so a slow moment of the machine hits all of them alike."""
    samples = sum(len(x) for x, _ in batches)
    for stepper in steppers:
        for x, y in batches:
            stepper.step(x, y)
    best = [0.0] * len(steppers)
    for _ in range(repeats):
        for index, stepper in enumerate(steppers):
            start = time.perf_counter()
            for x, y in batches:
                stepper.step(x, y)
            best[index] = max(best[index], samples / (time.perf_counter() - start))
    return best


def _peak_bytes(make_stepper, x, y):
    """Peak memory from building a stepper through its second step: what one step allocates, plus
    what a stepper keeps between steps (its copy of the parameters; symback's gradient buffer)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    stepper = make_stepper()
    stepper.step(x, y)
    stepper.step(x, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--samples", type=int, default=4096, help="examples per timed pass")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7

    start = time.perf_counter()
    network = symback.Network(SIZES, "sigmoid", "squared_error")
    equations = symback.backprop_equations(network)
    derivation = symback.derive(network, "w(1)_0_0")
    derived = time.perf_counter()
    compiled_network = CompiledNetwork(network)
    compiled = time.perf_counter()
    print(f"625-20-20-10 sigmoid/squared error: derive (BP1-BP4 + ∂C/∂w(1)_0_0, {derivation.form} form) "
          f"{derived - start:.3f} s, compile {compiled - derived:.3f} s, total {compiled - start:.3f} s "
          f"({len(equations.hidden)} hidden-layer equations)")

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch = None
        torch_version = None
    print(f"numpy {np.__version__}" + (f", torch {torch_version} (threads {torch.get_num_threads()})" if torch else ", torch not installed"))

    train, _ = load_digits(0.2, seed=0)
    reps = -(-args.samples // len(train))
    X_all = np.concatenate([train.X] * reps)[: args.samples]
    Y_all = np.concatenate([train.Y] * reps)[: args.samples]
    header = f"{'dtype':<8}{'batch':>6}{'numpy/s':>12}{'symback/s':>12}{'ratio':>7}{'np peak':>10}{'sb peak':>10}{'ratio':>7}"
    if torch:
        header += f"{'torch/s':>12}{'sb/torch':>9}"
    print(header)
    for dtype in (np.float64, np.float32):
        params = symback.Parameters.initialize(network, "xavier", seed=0, dtype=dtype)
        X, Y = X_all.astype(dtype), Y_all.astype(dtype)
        for batch in (1, 32, 256):
            samples = min(args.samples, 512) if batch == 1 else args.samples
            batches = _batches(X[:samples], Y[:samples], batch)
            baseline = NumpyBaseline(params.weights, params.biases)
            ours = SymbackStep(compiled_network, params)
            # both first take the same step and must agree: same network, same numbers
            check_b, check_s = baseline.step(*batches[0]), SymbackStep(compiled_network, params).step(*batches[0])
            assert abs(check_b - check_s) <= 1e-5 * abs(check_b), (check_b, check_s)
            rate_np, rate_sb = _throughput([baseline, ours], batches, repeats)
            peak_np = _peak_bytes(lambda: NumpyBaseline(params.weights, params.biases), *batches[0])
            peak_sb = _peak_bytes(lambda: SymbackStep(compiled_network, params), *batches[0])
            line = (f"{np.dtype(dtype).name:<8}{batch:>6}{rate_np:>12,.0f}{rate_sb:>12,.0f}{rate_sb / rate_np:>7.2f}"
                    f"{peak_np / 1024:>9.0f}k{peak_sb / 1024:>9.0f}k{peak_sb / peak_np:>7.2f}")
            if torch:
                tb = _batches(X[:samples], Y[:samples], batch, to=torch.from_numpy)
                (rate_t,) = _throughput([TorchStep(params.weights, params.biases, dtype)], tb, repeats)
                line += f"{rate_t:>12,.0f}{rate_sb / rate_t:>9.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
