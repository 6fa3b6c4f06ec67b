"""Backends: where :meth:`~symback.training.train.Trainer.fit`'s inner loop runs (``[training] backend``).

A backend is a module with ``make_runner(compiled, config) -> StepRunner``: the same derived kernels
(:mod:`symback.compile.compiler`, :mod:`symback.compile.lowering`) run on an array library.  ``Trainer.fit`` keeps
everything around the inner loop (shuffling, epochs, records, checkpoints, Ctrl-C, callbacks, resume)
and asks the runner for a chunk of consecutive batches at a time.

* ``numpy`` (default): the kernels as compiled, one step at a time.
* ``jax``: the whole step jitted, a chunk of steps as one ``lax.scan``, the batch sharded over
  ``jax.local_devices()`` (the ``symback[jax]`` extra; a GPU when JAX has one).
* ``fused``: one compiled loop nest per step for small batches (``symback.training.backends.fused``).
* ``auto``: see :func:`choose`; a backend that does not take the network (``fused`` and a
  convolution) hands it to the next of :func:`candidates`.

Modules are imported only when chosen: ``import symback.training.backends`` loads neither JAX nor numba.

>>> sorted(BACKENDS.names())
['fused', 'jax', 'numpy']
>>> choose("numpy", batch=1, installed=lambda name: True)
'numpy'
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ...errors import SpecError
from ...registry import Registry

__all__ = ["AUTO_JAX_BATCH", "BACKENDS", "Ran", "StepRunner", "candidates", "choose", "make_runner", "register_backend"]

#: Backend name -> the module that implements it (imported when the backend is chosen).
BACKENDS: Registry[str] = Registry(
    "backend",
    {"numpy": "symback.training.backends.numpy", "jax": "symback.training.backends.jax", "fused": "symback.training.backends.fused"},
    hint="or 'auto'",
    error=SpecError,
)

#: What each backend needs installed besides symback: the modules it imports and the extra that brings them
#: (numba's ``np.dot`` is BLAS through SciPy).  The one source of :func:`missing`'s message.
_NEEDS = {"jax": (("jax",), "symback[jax]"), "fused": (("numba", "scipy"), "symback[fused]")}

#: Under this batch size ``auto`` picks JAX on a CPU (when installed and the fused backend is not).
#: Measured (Trainer.fit, 625-20-20-10 sigmoid/SSE/SGD float64, one epoch of 4,096 examples, best of 3,
#: 2 shared CPU cores): JAX/NumPy samples/s 3.9x at batch 1, 2.1x at 8, 1.0x at 16, 1.0x at 32, 0.7x at
#: 64 and 128, 0.5x at 256.  Under 16 NumPy is call overhead, which one jitted ``lax.scan`` removes;
#: from 16 up NumPy's BLAS calls are as fast or faster.  With a GPU or TPU ``auto`` always picks JAX.
AUTO_JAX_BATCH = 16
#: Up to this batch size ``auto`` picks the fused kernel when numba is installed and it trains the network.
#: Measured (625-20-20-10 sigmoid/SSE/SGD float64, 4,096 examples, one BLAS thread, CPU time, best of 5-7),
#: fused/symback-NumPy samples/s: at load 1 on the 2 cores 3.2x at batch 1, 1.3x at 32, 1.04x at 128,
#: 0.98x at 256; at load 5, 3.8x, 1.5x, 1.2x, 1.1x (0.96x at 1024).  From 128 on both are the same BLAS
#: calls, and the fused kernel's first compile (seconds) is not won back.
AUTO_FUSED_BATCH = 128


@dataclass
class Ran:
    """What one :meth:`StepRunner.run` call did (see RUNNER.md's semantics).

    ``loss_sum`` is Σ loss·(batch length when the cost is a mean over examples, else 1) over the
    batches run; ``step_size`` and ``layer_norms`` are of the last batch run (after clipping);
    ``stopped`` is None, ``"non_finite"`` (the step was not applied; ``message`` says what became
    non-finite, without the epoch and step, which ``fit`` adds) or ``"converged"`` (the tolerance
    rule held on the epoch's last batch, whose step was not taken) or ``"interrupted"`` (a
    KeyboardInterrupt inside a step: that step was not applied, ``fit`` stops as on Ctrl-C).
    """

    offset: int
    steps: int
    loss_sum: float
    correct: int
    step_size: float
    layer_norms: list[float]
    stopped: str | None = None
    message: str | None = None


class StepRunner(Protocol):
    """Runs the batches ``X[b:b + batch]`` for ``b`` in ``range(begin, end, batch)``; a batch whose
    end reaches ``last_batch_of_epoch_at`` (the epoch's example count) is the epoch's last, where the
    tolerance rule is tested.  Updates ``params`` and ``optimizer`` (state and step count) in place.

    ``interrupted`` (Ctrl-C) may be checked between steps: a runner that sees it set returns early,
    after a whole step, with ``offset`` where it stopped; one that does not check it is interrupted
    between calls (``fit`` then hands it fewer batches per call, :attr:`batches_per_call`).
    """

    #: How many batches ``fit`` hands over per call.
    batches_per_call: int

    def run(
        self, params: Any, optimizer: Any, X: np.ndarray, Y: np.ndarray, begin: int, end: int, batch: int, *,
        last_batch_of_epoch_at: int, interrupted: threading.Event | None = None,
    ) -> Ran: ...


def register_backend(name: str, module: str) -> None:
    """Make ``[training] backend = name`` run ``module.make_runner``."""
    BACKENDS.register(name, module)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(name: str) -> str | None:
    """The one line saying which library backend ``name`` needs and how to install it, or None when
    everything it needs can be imported (nothing is imported to find out).

    >>> missing("numpy") is None
    True
    """
    modules, extra = _NEEDS.get(name, ((), ""))
    for module in modules:
        if not _importable(module):
            return f"[training] backend {name!r} needs {module}, which is not installed: pip install '{extra}'"
    return None


def installed(name: str) -> bool:
    """Whether backend ``name``'s own module and what it needs can be imported (without importing them)."""
    return name in BACKENDS and _importable(BACKENDS[name]) and missing(name) is None


def _accelerated() -> bool:
    """Whether JAX (already importable) has a GPU or TPU; imports JAX, so asked only when choosing it."""
    import jax

    return jax.default_backend() != "cpu"


def choose(name: str, *, batch: int, installed: Callable[[str], bool] = installed) -> str:
    """The backend that runs: ``name`` itself, or for ``auto`` by batch size and what is installed.

    ``auto``: ``fused`` for batches up to :data:`AUTO_FUSED_BATCH` when numba (and the fused module)
    is installed, unless from :data:`AUTO_JAX_BATCH` on JAX is installed and has a GPU/TPU; else ``jax``
    when installed and either it has a GPU/TPU or the batch is under :data:`AUTO_JAX_BATCH` (on a CPU
    the scan only beats NumPy where NumPy is call overhead); else ``numpy``.  (:func:`make_runner`
    passes over ``fused`` for a network or setting it refuses.)

    >>> choose("auto", batch=1, installed=lambda name: name == "jax")
    'jax'
    >>> choose("auto", batch=256, installed=lambda name: name == "numpy")
    'numpy'
    """
    return next(_candidates(name, batch=batch, installed=installed))


def candidates(name: str, *, batch: int, installed: Callable[[str], bool] = installed) -> list[str]:
    """The backends to try in order: ``[name]``, or for ``auto`` those :func:`choose` would pick, best
    first, ending with ``numpy`` (a backend that does not take the network, such as ``fused`` for a
    convolution, passes it on to the next).

    >>> candidates("auto", batch=1, installed=lambda name: True)
    ['fused', 'jax', 'numpy']
    """
    return list(_candidates(name, batch=batch, installed=installed))


def _candidates(name: str, *, batch: int, installed: Callable[[str], bool]) -> Iterator[str]:
    # a generator: what is not reached is not asked (asking whether JAX has a GPU imports JAX)
    if name != "auto":
        BACKENDS.lookup(name)
        yield name
        return
    if batch <= AUTO_FUSED_BATCH and installed("fused"):
        if batch < AUTO_JAX_BATCH or not (installed("jax") and _accelerated()):
            yield "fused"
    if installed("jax") and (batch < AUTO_JAX_BATCH or _accelerated()):
        yield "jax"
    yield "numpy"


def check_name(name: Any) -> None:
    """A SpecError unless ``name`` is a known backend or ``auto`` (the spec's check: nothing imported)."""
    if not isinstance(name, str):
        raise SpecError(f"[training] backend must be a name, not {name!r}")
    if name != "auto":
        BACKENDS.lookup(name)


def make_runner(compiled: Any, config: Any, *, batch: int) -> StepRunner:
    """The step runner of ``config.backend`` (``auto``: the first of :func:`candidates` for ``batch``
    that takes the network).

    A backend whose module or library is not installed is a SpecError saying what to install; so is a
    named backend that does not take the network.
    """
    # Kept on the compiled network (collected with it): a jitted runner is traced and compiled once,
    # not once per fit (a sweep, a resumed run, an evaluation loop train the same network again).
    made = compiled.__dict__.setdefault("_backend_runners", {})
    for name in _candidates(config.backend, batch=batch, installed=installed):
        try:
            key: tuple | None = (name, config, hash(config))
        except TypeError:  # an optimizer given as a table: not hashable, not cached
            key = None
        if key is not None and key in made:
            return made[key]
        try:
            runner = _import(name).make_runner(compiled, config)
        except SpecError:
            if config.backend != "auto" or name == "numpy":
                raise
            continue  # auto: this backend does not take the network (or is not installed); the next may
        if key is not None:
            made[key] = runner
        return runner
    raise AssertionError("candidates() always ends with a backend")


def _import(name: str) -> Any:
    module_name = BACKENDS.lookup(name)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing_name = error.name or module_name
        if missing_name == module_name or module_name.startswith(missing_name + "."):
            raise SpecError(
                f"[training] backend {name!r} is not part of this symback ({module_name} is missing)"
            ) from None
        if missing_name.split(".")[0] in _NEEDS.get(name, ((), ""))[0]:
            raise SpecError(missing(name) or f"[training] backend {name!r} needs {missing_name}") from None
        raise
    return module
