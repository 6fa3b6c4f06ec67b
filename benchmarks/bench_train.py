"""Training throughput, peak memory and compile time of every backend against hand-written peers, in one run.

Seed 000's 625-20-20-10 network, sigmoid everywhere, squared error (Σ over outputs, mean over the batch),
plain SGD (η = 0.5), on the shipped digits.  Per dtype (float64, float32) and batch (1, 32, 256), every
method trains from the same initial parameters on the same examples in the same batch order:

* ``symback-numpy``, ``symback-jax``, ``symback-fused``: the public backend path users take
  (``TrainingConfig(backend=...)`` and ``symback.training.backends.make_runner``, run as ``Trainer.fit`` runs it);
* ``symback-step``: the bare compiled step (``CompiledNetwork.loss_and_gradient`` + ``optimizer.step``), the
  only symback method that also exists before the backends (issue 14's before/after);
* ``hand-numpy``: an independent hand-written NumPy backprop (the reference every ratio is taken to);
* ``hand-jax-jit`` (one jitted step per batch), ``hand-jax-scan`` (one ``lax.scan`` over the epoch);
* ``torch-eager``: PyTorch CPU, eager autograd and ``torch.optim.SGD``.

First every method trains one epoch from the same start (JITs compile, caches fill); its parameters'
loss then (one float64 evaluation, the same code for all) must agree with hand-numpy's: float64 to 10
significant digits (relative 1e-10), float32 to relative 1e-5 (see ``FLOAT32_TOLERANCE``).  Throughput:
then the methods take turns, one epoch each (A B C … A B C …); best and median samples/s of the rounds.
A backend that refuses a configuration is printed as ``refused: <its reason>``.

Peak memory: each method in its own spawned process, the growth of the peak resident set (the kernel's
``VmHWM``, which ru_maxrss reports, reset once imports and setup are done: data, parameters, the method
built) through the first epoch (a JIT's compile included), and through a second epoch over the state
after the first (what training keeps needing); ratios to hand-numpy's.
Compile time: derive + compile of the network, and each compiling method's first epoch minus its
second (the fused kernel with an empty cache folder, then cached; JAX's first jit call), each in a
fresh process.

    python benchmarks/bench_train.py                     # everything (several minutes)
    python benchmarks/bench_train.py --quick             # fewer examples and rounds
    python benchmarks/bench_train.py --json PATH         # also the results as JSON
    python benchmarks/bench_train.py --json benchmarks/results/bench_train.json --readme   # the README's table
    python benchmarks/bench_train.py --smoke             # a few steps of everything (the test's mode)
    python benchmarks/bench_train.py --threads 1         # one thread each for BLAS, XLA, PyTorch (a loaded machine)
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import re
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run from a checkout: its symback, unless PYTHONPATH names one (issue 14's before/after times an old commit's
# symback with this file: PYTHONPATH=/tmp/before python benchmarks/bench_train.py --only symback-step).
if (__name__ == "__main__" or __name__ == "__mp_main__") and not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(ROOT))
# Before NumPy loads: the AVX2 kernels the README's other figures use (same rounding on every x86-64).
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import numpy as np  # noqa: E402

import symback  # noqa: E402
from symback.datasets import load_digits  # noqa: E402

try:  # the layout since the stage subpackages; the old one times commit 71de145 (issue 14's "before")
    from symback.compile.compiler import CompiledNetwork, Gradients
    from symback.training.optimizers import get_optimizer
except ImportError:  # pragma: no cover - only when PYTHONPATH points at an old checkout
    from symback.compiler import CompiledNetwork, Gradients
    from symback.optimizers import get_optimizer

SIZES = (625, 20, 20, 10)
RATE = 0.5
DTYPES = ("float64", "float32")
BATCHES = (1, 32, 256)
#: float64: "equal to 10 significant digits".
FLOAT64_TOLERANCE = 1e-10
#: float32: each step's sums are rounded in a different order by OpenBLAS, XLA and PyTorch (unit roundoff
#: 6·10⁻⁸; a 625-term dot product's error bound is ~625 of those), and SGD carries those differences
#: along the epoch's steps (500 at batch 1), so the losses after one epoch are compared to 1e-5 relative,
#: ~170 float32 ulps: above the spread measured (3·10⁻⁸ after one epoch at batch 1, 4·10⁻⁷ after three),
#: far below what a wrong gradient or a learning rate off by 1 % gives.  Each run's spread is in its results.
FLOAT32_TOLERANCE = 1e-5
README = ROOT / "README.md"
TABLE_BEGIN = "<!-- bench_train table: generated by `python benchmarks/bench_train.py --json benchmarks/results/bench_train.json --readme`; do not edit by hand -->"  # noqa: E501
TABLE_END = "<!-- end of the bench_train table -->"


class Refused(Exception):
    """A method that does not run a configuration (a backend's one-line SpecError, a missing library)."""


@dataclass(frozen=True)
class Workload:
    """What every method of one configuration trains on: the same examples, order and start."""

    dtype: str
    batch: int
    samples: int

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        train, _ = load_digits(0.2, seed=0)
        order = np.random.default_rng(0).permutation(len(train.X))  # one fixed order for every method
        X = np.ascontiguousarray(train.X[order][: self.samples], dtype=self.dtype)
        Y = np.ascontiguousarray(train.Y[order][: self.samples], dtype=self.dtype)
        return X, Y

    def initial(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        params = symback.Parameters.initialize(network(), "xavier", seed=0, dtype=np.dtype(self.dtype))
        return [w.copy() for w in params.weights], [b.copy() for b in params.biases]


_NETWORK: list[Any] = []


def network() -> Any:
    if not _NETWORK:
        _NETWORK.append(symback.Network(list(SIZES), "sigmoid", "squared_error"))
    return _NETWORK[0]


_COMPILED: list[Any] = []


def compiled_network() -> Any:
    """One compiled network per process (its runners are cached on it, as in a program that trains twice)."""
    if not _COMPILED:
        _COMPILED.append(CompiledNetwork(network()))
    return _COMPILED[0]


class Method:
    """One way of training: built for a workload (raises :class:`Refused`), then ``epoch()`` trains once
    over the workload's batches and returns Σ batch loss · batch length; ``parameters()`` are its
    current W1, W2, W3, b1, b2, b3 as NumPy arrays."""

    name = ""

    def __init__(self, workload: Workload, X: np.ndarray, Y: np.ndarray,
                 weights: list[np.ndarray], biases: list[np.ndarray]) -> None:
        raise NotImplementedError

    def epoch(self) -> float:
        raise NotImplementedError

    def parameters(self) -> list[np.ndarray]:
        raise NotImplementedError


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class HandNumPy(Method):
    """Backprop written by hand in NumPy: what one would write without symback (in-place updates)."""

    name = "hand-numpy"
    rate = RATE

    def __init__(self, workload, X, Y, weights, biases):
        self.W = [w.copy() for w in weights]
        self.b = [b.copy() for b in biases]
        self.batches = _batches(X, Y, workload.batch)

    def step(self, X: np.ndarray, Y: np.ndarray) -> float:
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
        for p, g in zip(self.W + self.b, grads + bias_grads, strict=True):
            p -= self.rate * g
        return loss

    def epoch(self):
        return sum(self.step(x, y) * len(x) for x, y in self.batches)

    def parameters(self):
        return self.W + self.b


class SymbackBackend(Method):
    """A backend as ``Trainer.fit`` drives it: ``make_runner(compiled, TrainingConfig(backend=...))``, chunks
    of ``runner.batches_per_call`` batches over the epoch."""

    backend = "numpy"

    def __init__(self, workload, X, Y, weights, biases):
        try:
            from symback.errors import SpecError
            from symback.training.backends import make_runner
            from symback.training.train import TrainingConfig
        except ImportError as error:
            raise Refused(f"this symback has no backends ({error})") from None
        try:
            self.config = TrainingConfig(learning_rate=RATE, batch_size=workload.batch, dtype=workload.dtype,
                                         shuffle=False, backend=self.backend)
            self.runner = make_runner(compiled_network(), self.config, batch=workload.batch)
        except SpecError as error:
            raise Refused(str(error)) from None
        self.params = _symback_parameters(weights, biases)
        self.optimizer = self.config.make_optimizer()
        self.X, self.Y, self.batch = X, Y, workload.batch
        self.n = len(X) // workload.batch * workload.batch  # whole batches only, as every peer takes

    def epoch(self):
        offset, total = 0, 0.0
        while offset < self.n:
            end = min(self.n, offset + self.runner.batches_per_call * self.batch)
            ran = self.runner.run(self.params, self.optimizer, self.X, self.Y, offset, end, self.batch,
                                  last_batch_of_epoch_at=self.n)
            if ran.stopped is not None:
                raise RuntimeError(f"{self.name} stopped: {ran.stopped} {ran.message}")
            offset, total = ran.offset, total + ran.loss_sum
        return total

    def parameters(self):
        return list(self.params.weights) + list(self.params.biases)


class SymbackNumPy(SymbackBackend):
    name, backend = "symback-numpy", "numpy"


class SymbackJax(SymbackBackend):
    name, backend = "symback-jax", "jax"


class SymbackFused(SymbackBackend):
    name, backend = "symback-fused", "fused"


class SymbackStep(Method):
    """The bare compiled step: ``loss_and_gradient`` into one reused gradient buffer, then ``sgd.step``."""

    name = "symback-step"

    def __init__(self, workload, X, Y, weights, biases):
        self.compiled = compiled_network()
        self.params = _symback_parameters(weights, biases)
        self.gradients = Gradients.zeros_like(self.params)
        self.optimizer = get_optimizer("sgd", learning_rate=RATE)
        self.batches = _batches(X, Y, workload.batch)

    def epoch(self):
        total = 0.0
        for x, y in self.batches:
            loss, gradients, _ = self.compiled.loss_and_gradient(self.params, x, y, out=self.gradients)
            self.optimizer.step(self.params, gradients)
            total += loss * len(x)
        return total

    def parameters(self):
        return list(self.params.weights) + list(self.params.biases)


def _symback_parameters(weights: list[np.ndarray], biases: list[np.ndarray]) -> Any:
    params = symback.Parameters.initialize(network(), "xavier", seed=0, dtype=weights[0].dtype)
    for target, value in zip(list(params.weights) + list(params.biases), weights + biases, strict=True):
        target[...] = value
    return params


def _jax() -> Any:
    try:
        import jax
    except ImportError as error:
        raise Refused(f"jax is not installed ({error})") from None
    jax.config.update("jax_enable_x64", True)  # float64 arrays stay float64; float32 ones stay float32
    return jax


def _jax_loss(params: tuple, x: Any, y: Any) -> Any:
    import jax
    import jax.numpy as jnp

    W1, W2, W3, b1, b2, b3 = params
    a = jax.nn.sigmoid(x @ W1.T + b1)
    a = jax.nn.sigmoid(a @ W2.T + b2)
    a = jax.nn.sigmoid(a @ W3.T + b3)
    return jnp.sum((a - y) ** 2) / x.shape[0]


def _jax_step(params: tuple, total: Any, x: Any, y: Any) -> tuple[tuple, Any]:
    import jax

    loss, grads = jax.value_and_grad(_jax_loss)(params, x, y)
    return tuple(p - RATE * g for p, g in zip(params, grads, strict=True)), total + loss * x.shape[0]


class HandJaxJit(Method):
    """Idiomatic JAX: ``jax.grad`` of the loss, the whole step jitted, one call per batch."""

    name = "hand-jax-jit"

    def __init__(self, workload, X, Y, weights, biases):
        jax = _jax()
        self.jax = jax
        self.params = tuple(jax.device_put(p) for p in weights + biases)
        self.batches = [(jax.device_put(x), jax.device_put(y)) for x, y in _batches(X, Y, workload.batch)]
        self.step = jax.jit(_jax_step, donate_argnums=(0,))
        self.zero = jax.device_put(np.zeros((), dtype=workload.dtype))

    def epoch(self):
        params, total = self.params, self.zero
        for x, y in self.batches:
            params, total = self.step(params, total, x, y)
        self.params = params
        return float(total)

    def parameters(self):
        return [np.asarray(p) for p in self.params]


class HandJaxScan(Method):
    """Idiomatic JAX for an epoch: the jitted step under one ``lax.scan`` over the stacked batches."""

    name = "hand-jax-scan"

    def __init__(self, workload, X, Y, weights, biases):
        jax = _jax()
        from jax import lax

        n = len(X) // workload.batch * workload.batch
        shape = (n // workload.batch, workload.batch)
        self.X = jax.device_put(X[:n].reshape(shape + X.shape[1:]))
        self.Y = jax.device_put(Y[:n].reshape(shape + Y.shape[1:]))
        self.params = tuple(jax.device_put(p) for p in weights + biases)
        zero = np.zeros((), dtype=workload.dtype)

        def epoch(params, X, Y):
            def body(carry, batch):
                return _jax_step(*carry, *batch), None

            return lax.scan(body, (params, zero), (X, Y))[0]

        self.run = jax.jit(epoch, donate_argnums=(0,))

    def epoch(self):
        self.params, total = self.run(self.params, self.X, self.Y)
        return float(total)

    def parameters(self):
        return [np.asarray(p) for p in self.params]


class TorchEager(Method):
    """PyTorch CPU, eager: autograd of the loss and ``torch.optim.SGD``."""

    name = "torch-eager"

    def __init__(self, workload, X, Y, weights, biases):
        try:
            import torch
        except ImportError as error:
            raise Refused(f"torch is not installed ({error})") from None
        self.torch = torch
        self.params = [torch.tensor(p, requires_grad=True) for p in weights + biases]
        self.optimizer = torch.optim.SGD(self.params, lr=RATE)
        self.batches = _batches(X, Y, workload.batch, to=torch.from_numpy)

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

    def epoch(self):
        return sum(self.step(x, y) * len(x) for x, y in self.batches)

    def parameters(self):
        return [p.detach().numpy().copy() for p in self.params]


#: Every method, in the order they take turns and are printed; hand-numpy is the reference.
METHODS: dict[str, type[Method]] = {
    m.name: m for m in (HandNumPy, SymbackNumPy, SymbackStep, SymbackJax, SymbackFused, HandJaxJit, HandJaxScan,
                        TorchEager)
}
REFERENCE = HandNumPy.name


def _batches(X: np.ndarray, Y: np.ndarray, batch: int, to: Callable[[np.ndarray], Any] | None = None) -> list:
    out = [(X[i : i + batch], Y[i : i + batch]) for i in range(0, len(X) - batch + 1, batch)]
    return [(to(x), to(y)) for x, y in out] if to else out


def final_loss(parameters: Sequence[np.ndarray], X: np.ndarray, Y: np.ndarray) -> float:
    """The mean squared error of ``parameters`` on (X, Y), evaluated in float64 the same way for every method."""
    W1, W2, W3, b1, b2, b3 = (np.asarray(p, dtype=np.float64) for p in parameters)
    a = _sigmoid(_sigmoid(_sigmoid(X @ W1.T + b1) @ W2.T + b2) @ W3.T + b3)
    return float(((a - Y) ** 2).sum() / len(X))


def tolerance(dtype: str) -> float:
    return FLOAT64_TOLERANCE if dtype == "float64" else FLOAT32_TOLERANCE


def agreement(losses: dict[str, float], dtype: str, reference: str = REFERENCE) -> dict[str, Any]:
    """Whether every method's final loss equals the reference's within the dtype's relative tolerance.

    >>> agreement({"hand-numpy": 0.25, "a": 0.25 * (1 + 1e-12)}, "float64")["agree"]
    True
    >>> agreement({"hand-numpy": 0.25, "a": 0.25 * (1 + 1e-8)}, "float64")["disagree"]
    ['a']
    """
    target = losses[reference]
    differences = {name: abs(value - target) / abs(target) for name, value in losses.items()}
    disagree = [name for name, difference in differences.items() if not difference <= tolerance(dtype)]
    return {"reference": reference, "tolerance": tolerance(dtype), "relative_differences": differences,
            "disagree": disagree, "agree": not disagree}


# -- throughput ---------------------------------------------------------------------------------------


@dataclass
class Timing:
    dtype: str
    batch: int
    method: str
    status: str  # "ok" or "refused"
    reason: str | None = None
    samples_per_s_best: float | None = None
    samples_per_s_median: float | None = None
    ratio_best: float | None = None  # to hand-numpy's best, the same run
    ratio_median: float | None = None
    final_loss: float | None = None


def build(names: Sequence[str], workload: Workload) -> tuple[dict[str, Method], dict[str, str], np.ndarray, np.ndarray]:
    """The methods of ``names`` for ``workload`` (those that refuse, with their reasons)."""
    X, Y = workload.data()
    weights, biases = workload.initial()
    built, refused = {}, {}
    for name in names:
        try:
            built[name] = METHODS[name](workload, X, Y, weights, biases)
        except Refused as error:
            refused[name] = str(error)
    return built, refused, X, Y


def throughput(names: Sequence[str], workload: Workload, rounds: int) -> tuple[list[Timing], dict[str, Any]]:
    """One epoch per method from the same start (JITs compile, caches fill), whose final losses must agree;
    then interleaved timed rounds of one epoch per method."""
    built, refused, X, Y = build(names, workload)
    samples = len(X) // workload.batch * workload.batch
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    losses = {}
    for name, method in built.items():
        method.epoch()
        losses[name] = final_loss(method.parameters(), X64, Y64)
    # After one epoch: further epochs over the same few examples at η = 0.5 amplify rounding differences
    # chaotically (float64 runs that agree to 1e-16 after three epochs differ in the fifth digit after eight).
    check = agreement(losses, workload.dtype)
    check.update(dtype=workload.dtype, batch=workload.batch, epochs=1)
    rates: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(rounds):
        for name, method in built.items():
            start = time.perf_counter()
            method.epoch()
            rates[name].append(samples / (time.perf_counter() - start))
    reference = rates.get(REFERENCE)
    timings = []
    for name in names:
        if name in refused:
            timings.append(Timing(workload.dtype, workload.batch, name, "refused", refused[name]))
            continue
        best, median = max(rates[name]), statistics.median(rates[name])
        timings.append(Timing(
            workload.dtype, workload.batch, name, "ok", None, best, median,
            best / max(reference) if reference else None,
            median / statistics.median(reference) if reference else None, losses[name],
        ))
    return timings, check


# -- peak memory and compile time, each in a fresh process ---------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        found = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(found.group(1)) if found else None


def reset_peak_rss() -> int:
    """The resident set size now, in KiB, with the kernel's high-water mark (``VmHWM``, what ru_maxrss reports
    for this process) reset to it: what imports and setup touched and freed no longer hides what training needs.
    Where /proc cannot reset it, the running peak (ru_maxrss) is the baseline instead."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        now = _status_kib("VmRSS")
        if now is not None:
            return now
    except OSError:
        pass
    return peak_rss()


def peak_rss() -> int:
    """The peak resident set size since :func:`reset_peak_rss`, in KiB."""
    peak = _status_kib("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss // 1024 if sys.platform == "darwin" else maxrss  # bytes on macOS, KiB on Linux


def _import_libraries(name: str) -> None:
    # The method's libraries count as imports, not as what the method's training needs.
    if "jax" in name:
        import contextlib

        with contextlib.suppress(ImportError):
            _jax()
    if "torch" in name:
        import contextlib

        with contextlib.suppress(ImportError):
            import torch  # noqa: F401
    if "fused" in name:
        import contextlib

        with contextlib.suppress(ImportError):
            import numba  # noqa: F401


def _memory_worker(name: str, workload: Workload) -> dict[str, Any]:
    _import_libraries(name)
    built, refused, _, _ = build([name], workload)
    if name in refused:
        return {"status": "refused", "reason": refused[name]}
    before = reset_peak_rss()
    built[name].epoch()
    first = peak_rss() - before  # a JIT's compile included
    after_first = reset_peak_rss()
    built[name].epoch()
    return {"status": "ok", "growth_kib": peak_rss() - after_first, "first_epoch_growth_kib": first,
            "rss_before_kib": before}


def _compile_worker(name: str, workload: Workload, environment: dict[str, str]) -> dict[str, Any]:
    os.environ.update(environment)  # before numba or JAX is imported in this process
    _import_libraries(name)
    started = time.perf_counter()
    built, refused, _, _ = build([name], workload)
    setup = time.perf_counter() - started
    if name in refused:
        return {"status": "refused", "reason": refused[name]}
    method = built[name]
    start = time.perf_counter()
    method.epoch()
    first = time.perf_counter() - start
    start = time.perf_counter()
    method.epoch()
    second = time.perf_counter() - start
    return {"status": "ok", "setup_s": setup, "first_epoch_s": first, "second_epoch_s": second,
            "compile_s": first - second}


def _derive_worker() -> dict[str, Any]:
    started = time.perf_counter()
    net = network()
    symback.backprop_equations(net)
    symback.derive(net, "w(1)_0_0")
    derived = time.perf_counter()
    compiled_network()
    return {"derive_s": derived - started, "compile_s": time.perf_counter() - derived,
            "total_s": time.perf_counter() - started}


def in_fresh_process(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` in a new spawned interpreter (nothing imported, compiled or cached before it)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(function, args)


def memory(names: Sequence[str], workloads: Sequence[Workload]) -> list[dict[str, Any]]:
    rows = []
    for workload in workloads:
        found = {name: in_fresh_process(_memory_worker, name, workload) for name in names}
        reference = found.get(REFERENCE, {}).get("growth_kib")
        first_reference = found.get(REFERENCE, {}).get("first_epoch_growth_kib")
        for name, row in found.items():
            growth, first = row.get("growth_kib"), row.get("first_epoch_growth_kib")
            ratio = growth / reference if growth is not None and reference else None
            first_ratio = first / first_reference if first is not None and first_reference else None
            rows.append({"dtype": workload.dtype, "batch": workload.batch, "method": name, **row, "ratio": ratio,
                         "first_epoch_ratio": first_ratio})
            print(f"  memory {workload.dtype:<8}{workload.batch:>5} {name:<15}"
                  + (f"first epoch {first:>9,d} KiB ({_ratio(first_ratio)}), later {growth:>7,d} KiB ({_ratio(ratio)})"
                     if growth is not None else f"refused: {row['reason']}"), flush=True)
    return rows


def compile_times(names: Sequence[str], batches: Sequence[int], *, fused_cold: bool = True) -> dict[str, Any]:
    """Derive + compile of the network, then each compiling method's first epoch minus its second at float64,
    in fresh processes (the fused kernel with an empty cache folder, then again with that folder filled)."""
    out: dict[str, Any] = {"derive_and_compile": in_fresh_process(_derive_worker)}
    derive = out["derive_and_compile"]
    print(f"  derive {derive['derive_s']:.2f} s, compile {derive['compile_s']:.2f} s", flush=True)
    jitted = [n for n in ("symback-jax", "hand-jax-jit", "hand-jax-scan") if n in names]
    runs = []
    for batch in batches:
        workload = Workload("float64", batch, 8 * batch)
        if "symback-fused" in names and fused_cold:
            with tempfile.TemporaryDirectory(prefix="symback-bench-cache-") as empty:
                environment = {"XDG_CACHE_HOME": empty, "NUMBA_CACHE_DIR": os.path.join(empty, "numba")}
                for cache in ("cold", "cached"):
                    runs.append(("symback-fused", cache, batch,
                                 in_fresh_process(_compile_worker, "symback-fused", workload, environment)))
        for name in jitted:
            runs.append((name, "first call", batch, in_fresh_process(_compile_worker, name, workload, {})))
    out["jit"] = [{"method": name, "cache": cache, "batch": batch, "dtype": "float64", **row}
                  for name, cache, batch, row in runs]
    for row in out["jit"]:
        print(f"  compile {row['method']:<15}{row['cache']:<11} batch {row['batch']:>3}: "
              + (f"first epoch {row['first_epoch_s']:.3f} s, second {row['second_epoch_s']:.3f} s"
                 if row["status"] == "ok" else f"refused: {row['reason']}"), flush=True)
    return out


# -- the machine ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, load, library versions, BLAS."""
    cpu = "unknown"
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    versions = {"python": platform.python_version(), "numpy": np.__version__, "symback": symback.__version__}
    for module in ("sympy", "jax", "jaxlib", "numba", "torch"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    blas = None
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # older NumPy: no dict mode
        pass
    running = None
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0]) - 1
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "versions": versions, "blas": blas,
        "environment": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                       "MKL_NUM_THREADS", "XLA_FLAGS", "SYMBACK_BENCH_THREADS")},
        "loadavg": list(os.getloadavg()), "other_runnable_processes": running,
    }


# -- the report ----------------------------------------------------------------------------------------


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


#: The symback backends a user picks (``symback-step`` is the bare step under them, not a backend).
BACKENDS = ("symback-numpy", "symback-jax", "symback-fused")


def _best_backend(cell: dict[tuple[str, int, str], Timing], dtype: str, batch: int) -> Timing | None:
    ran = [cell[dtype, batch, name] for name in BACKENDS
           if (dtype, batch, name) in cell and cell[dtype, batch, name].status == "ok"]
    return max(ran, key=lambda t: t.samples_per_s_best, default=None)


def target_rows(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """Issue 16's targets read off ``results``: (target, what was measured, met); None where the run did not
    measure it.  A target is met only where every configuration of the run meets it."""
    timings = [Timing(**row) for row in results["throughput"]]
    cell = {(t.dtype, t.batch, t.method): t for t in timings}
    dtypes = list(dict.fromkeys(t.dtype for t in timings))
    rows: list[tuple[str, str, bool | None]] = []
    for batch, peer, floor in ((1, "hand-jax-scan", 1.0), (32, REFERENCE, 1.2), (256, REFERENCE, 1.0)):
        measured, met = [], []
        for dtype in dtypes:
            best, against = _best_backend(cell, dtype, batch), cell.get((dtype, batch, peer))
            if best is None or against is None or against.status != "ok":
                continue
            ratio = best.samples_per_s_best / against.samples_per_s_best
            measured.append(f"{dtype} {ratio:.2f}× ({best.method})")
            met.append(ratio >= floor)
        rows.append((f"batch {batch}: symback's best backend ≥ {floor:.1f}× {peer}", ", ".join(measured) or "—",
                     all(met) if met else None))
    jit = [j for j in (results.get("compile") or {}).get("jit", []) if j["method"] == "symback-fused"
           and j["status"] == "ok"]
    cold = [j for j in jit if j["cache"] == "cold"]
    cached = {j["batch"]: j["compile_s"] for j in jit if j["cache"] == "cached"}
    rows.append(("symback-fused compiles in under 5 s, and not again from the cache",
                 "; ".join(f"batch {j['batch']}: cold {j['compile_s']:.2f} s, "
                           f"cached {cached.get(j['batch'], math.nan):.2f} s" for j in cold) or "—",
                 all(j["compile_s"] < 5 and cached.get(j["batch"], math.inf) < j["compile_s"] for j in cold)
                 if cold else None))
    memory = [m for m in results.get("memory") or [] if m["status"] == "ok"]
    first = [m for m in memory if m["method"] == "symback-numpy" and m["first_epoch_ratio"] is not None]
    rows.append(("peak memory ≤ 1.2× hand-numpy's: symback-numpy's first epoch",
                 ", ".join(f"{m['dtype']} batch {m['batch']} {m['first_epoch_ratio']:.2f}×" for m in first) or "—",
                 all(m["first_epoch_ratio"] <= 1.2 for m in first) if first else None))
    later = {}
    for m in memory:
        if m["method"] in BACKENDS:
            later[m["method"]] = max(later.get(m["method"], 0), m["growth_kib"])
    reference_later = max((m["growth_kib"] for m in memory if m["method"] == REFERENCE), default=None)
    rows.append(("peak memory ≤ 1.2× hand-numpy's: a later epoch, every backend "
                 f"(hand-numpy grows {reference_later if reference_later is not None else '—'} KiB)",
                 ", ".join(f"{name} up to {kib:,d} KiB" for name, kib in later.items()) or "—",
                 all(kib <= 1.2 * reference_later for kib in later.values())
                 if later and reference_later is not None else None))
    return rows


def render_targets(results: dict[str, Any]) -> str:
    """Issue 16's targets as a Markdown table (part of the README's generated table)."""
    lines = ["| target (issue 16) | measured in this run | met |", "|---|---|---|"]
    for target, measured, met in target_rows(results):
        lines.append(f"| {target} | {measured} | {'—' if met is None else 'yes' if met else '**no**'} |")
    return "\n".join(lines)


def render_table(results: dict[str, Any]) -> str:
    """The README's table (Markdown) from a results JSON: the only place the README's speed figures come from."""
    timings = [Timing(**row) for row in results["throughput"]]
    names = list(dict.fromkeys(t.method for t in timings))
    configs = list(dict.fromkeys((t.dtype, t.batch) for t in timings))
    cell = {(t.dtype, t.batch, t.method): t for t in timings}
    lines = ["| samples/s ÷ hand-numpy's | " + " | ".join(f"{d} batch {b}" for d, b in configs) + " |",
             "|---|" + "---:|" * len(configs)]
    for name in names:
        cells = []
        for d, b in configs:
            t = cell.get((d, b, name))
            cells.append("—" if t is None else "refused" if t.status == "refused" else _ratio(t.ratio_best))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    reference = [cell[d, b, REFERENCE] for d, b in configs if (d, b, REFERENCE) in cell]
    lines.append("| (hand-numpy samples/s) | " + " | ".join(f"{t.samples_per_s_best:,.0f}" for t in reference) + " |")
    memory = results.get("memory") or []
    if memory:
        mem_configs = list(dict.fromkeys((m["dtype"], m["batch"]) for m in memory))
        mem = {(m["dtype"], m["batch"], m["method"]): m for m in memory}
        lines += ["", "| peak RSS growth, KiB: first epoch (÷ hand-numpy's) / a later epoch (÷ hand-numpy's) | "
                  + " | ".join(f"{d} batch {b}" for d, b in mem_configs) + " |",
                  "|---|" + "---:|" * len(mem_configs)]
        for name in dict.fromkeys(m["method"] for m in memory):
            cells = []
            for d, b in mem_configs:
                m = mem.get((d, b, name))
                if m is None:
                    cells.append("—")
                elif m["status"] != "ok":
                    cells.append("refused")
                else:
                    def shown(kib: int, ratio: float | None, name: str = name) -> str:
                        return f"{kib:,d}" + ("" if name == REFERENCE or ratio is None else f" ({ratio:.2f}×)")

                    cells.append(f"{shown(m['first_epoch_growth_kib'], m['first_epoch_ratio'])} / "
                                 f"{shown(m['growth_kib'], m['ratio'])}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    compile_ = results.get("compile")
    if compile_:
        derive = compile_["derive_and_compile"]
        batches = sorted({j["batch"] for j in compile_["jit"]})
        lines += ["", "| compile time (float64), s | " + " | ".join(f"batch {b}" for b in batches) + " |",
                  "|---|" + "---:|" * len(batches),
                  "| symback derive + compile (once per network) | "
                  + " | ".join(f"{derive['total_s']:.2f}" for _ in batches) + " |"]
        jit = {(j["method"], j["cache"], j["batch"]): j for j in compile_["jit"]}
        for method, cache in dict.fromkeys((j["method"], j["cache"]) for j in compile_["jit"]):
            cells = []
            for batch in batches:
                j = jit.get((method, cache, batch))
                cells.append("—" if j is None else "refused" if j["status"] != "ok" else f"{j['compile_s']:.2f}")
            lines.append(f"| {method}, {cache} (first epoch − second) | " + " | ".join(cells) + " |")
    lines += ["", render_targets(results)]
    m = results["machine"]
    v = m["versions"]
    threads = m["environment"].get("SYMBACK_BENCH_THREADS")
    load = ", ".join(f"{x:.1f}" for x in m["loadavg"])
    lines += ["", f"Measured {results['date']} on {m['cores']} cores of an {m['cpu']} "
              f"(load average {load}; {m['other_runnable_processes']} other runnable processes"
              f"{'; the machine was loaded' if results.get('loaded') else ''}), "
              f"NumPy {v['numpy']} ({(m.get('blas') or {}).get('name', 'BLAS')}), JAX {v['jax']}, numba {v['numba']}, "
              f"PyTorch {v['torch']}; "
              + (f"{threads} thread(s) each for BLAS, XLA and PyTorch; " if threads else "each library's own threads; ")
              + f"{results['settings']['rounds']} interleaved rounds, best of each; "
              f"final losses agree with hand-numpy's to {FLOAT64_TOLERANCE:g} (float64) and "
              f"{FLOAT32_TOLERANCE:g} (float32) relative."]
    return "\n".join(lines)


def replace_table(readme: str, table: str) -> str:
    """``readme`` with the text between the table's markers replaced by ``table``."""
    begin, end = readme.index(TABLE_BEGIN) + len(TABLE_BEGIN), readme.index(TABLE_END)
    return readme[:begin] + "\n" + table + "\n" + readme[end:]


def print_throughput(timings: list[Timing], check: dict[str, Any]) -> None:
    for t in timings:
        if t.status == "refused":
            print(f"{t.dtype:<8}{t.batch:>6}  {t.method:<15} refused: {t.reason}")
        else:
            print(f"{t.dtype:<8}{t.batch:>6}  {t.method:<15}{t.samples_per_s_best:>12,.0f}/s  "
                  f"{_ratio(t.ratio_best):>7} (median {_ratio(t.ratio_median)})  final loss {t.final_loss:.12g}")
    worst = max(check["relative_differences"].values())
    print(f"{'':14}agreement: {'PASS' if check['agree'] else 'FAIL ' + ', '.join(check['disagree'])} "
          f"(largest relative difference {worst:.1e}, tolerance {check['tolerance']:g})", flush=True)


@dataclass(frozen=True)
class Plan:
    """What one run measures: the (dtype, batch) configurations of each part and how many examples and rounds."""

    samples: int  # examples per epoch (whole batches of them)
    samples_batch1: int  # at batch 1, where every method is slowest
    rounds: int
    configs: tuple[tuple[str, int], ...] = tuple((d, b) for d in DTYPES for b in BATCHES)
    memory_configs: tuple[tuple[str, int], ...] = tuple((d, b) for d in DTYPES for b in BATCHES)
    memory_methods: tuple[str, ...] | None = None  # None: every method
    compile_batches: tuple[int, ...] = (1, 32)
    compile_methods: tuple[str, ...] | None = None
    fused_cold: bool = True

    def workload(self, dtype: str, batch: int) -> Workload:
        return Workload(dtype, batch, self.samples_batch1 if batch == 1 else self.samples)


PLANS = {
    "full": Plan(samples=4000, samples_batch1=500, rounds=7),
    "quick": Plan(samples=2048, samples_batch1=200, rounds=3),
    # The test's mode: every method and both dtypes on a few steps; memory and compile times of the cheap
    # methods only (a cold numba compile of the fused kernels alone takes tens of seconds).
    "smoke": Plan(samples=16, samples_batch1=4, rounds=1, configs=(("float64", 1), ("float64", 4), ("float32", 1)),
                  memory_configs=(("float64", 4),), memory_methods=("hand-numpy", "symback-numpy"),
                  compile_batches=(1,), compile_methods=("hand-jax-scan",), fused_cold=False),
}


def run(
    names: Sequence[str], plan: Plan, *, measure_memory: bool = True, measure_compile: bool = True
) -> dict[str, Any]:
    """Every measurement of ``plan`` for the methods ``names``; returns the results (the JSON's content)."""
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "machine": machine(),
                               "settings": {"network": list(SIZES), "learning_rate": RATE, "rounds": plan.rounds,
                                            "samples": plan.samples, "samples_batch1": plan.samples_batch1,
                                            "methods": list(names)}}
    print(f"625-20-20-10 sigmoid/squared error/SGD η={RATE}; {results['machine']['cpu']}, "
          f"{results['machine']['cores']} cores, load {results['machine']['loadavg']}", flush=True)
    timings, checks = [], []
    for dtype, batch in plan.configs:
        found, check = throughput(names, plan.workload(dtype, batch), plan.rounds)
        print_throughput(found, check)
        timings += found
        checks.append(check)
    results["throughput"] = [asdict(t) for t in timings]
    results["agreement"] = checks
    if measure_memory:
        chosen = [n for n in names if plan.memory_methods is None or n in plan.memory_methods]
        results["memory"] = memory(chosen, [plan.workload(d, b) for d, b in plan.memory_configs])
    if measure_compile:
        chosen = [n for n in names if plan.compile_methods is None or n in plan.compile_methods]
        results["compile"] = compile_times(chosen, plan.compile_batches, fused_cold=plan.fused_cold)
    results["machine"]["loadavg_after"] = list(os.getloadavg())
    # This machine's other work: a load average above what this single-threaded-at-a-time run adds by itself.
    results["loaded"] = max(results["machine"]["loadavg"][0], results["machine"]["loadavg_after"][0]) > 1.5
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples and rounds")
    parser.add_argument("--smoke", action="store_true", help="a few steps of everything (for the test)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--readme", action="store_true", help="rewrite README.md's table from the results")
    parser.add_argument("--only", nargs="+", choices=list(METHODS), help="these methods (hand-numpy is always run)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--threads", type=int, help="threads for BLAS, XLA and PyTorch (default: each library's own); "
                        "on a loaded machine 1 keeps idle-spinning BLAS threads from swamping the ratios")
    args = parser.parse_args(argv)
    if args.threads is not None and os.environ.get("SYMBACK_BENCH_THREADS") != str(args.threads):
        # Thread counts are read when the libraries load (NumPy's BLAS already has): start again with them set,
        # and the spawned processes inherit them.
        n = str(args.threads)
        os.environ.update({"SYMBACK_BENCH_THREADS": n, "OPENBLAS_NUM_THREADS": n, "OMP_NUM_THREADS": n,
                           "MKL_NUM_THREADS": n, "NUMBA_NUM_THREADS": n,
                           "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen="
                                        f"{'true' if args.threads > 1 else 'false'} intra_op_parallelism_threads={n}"})
        again = sys.argv[1:] if argv is None else list(argv)
        os.execv(sys.executable, [sys.executable, str(Path(__file__).resolve()), *again])
    names = list(METHODS) if not args.only else [REFERENCE, *[n for n in args.only if n != REFERENCE]]
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    results = run(names, PLANS[mode], measure_memory=not args.no_memory, measure_compile=not args.no_compile)
    results["settings"]["mode"] = mode
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=float) + "\n", encoding="utf-8")
    if args.readme:
        README.write_text(replace_table(README.read_text(encoding="utf-8"), render_table(results)), encoding="utf-8")
    failed = [f"{c['dtype']} batch {c['batch']}: {', '.join(c['disagree'])}"
              for c in results["agreement"] if not c["agree"]]
    if failed:
        print("final losses disagree: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
