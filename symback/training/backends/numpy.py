"""The NumPy backend: ``Trainer.fit``'s inner loop, one step at a time on the compiled kernels.

Each batch: :meth:`~symback.compile.compiler.CompiledNetwork.loss_and_gradient` into one packed gradient
buffer, a stop on a non-finite loss or gradient (the step not applied), clipping, the tolerance rule
on the epoch's last batch, a stop when ``η·max|g|`` overflows the dtype, then ``optimizer.step``.

>>> import numpy as np, symback
>>> from symback.training.train import TrainingConfig
>>> net = symback.Network([2, 1], "sigmoid", "squared_error")
>>> params = symback.Parameters.initialize(net, seed=0)
>>> runner = make_runner(symback.CompiledNetwork(net), TrainingConfig(learning_rate=0.5))
>>> X, Y = np.ones((4, 2)), np.zeros((4, 1))
>>> ran = runner.run(params, TrainingConfig().make_optimizer(), X, Y, 0, 4, 2, last_batch_of_epoch_at=4)
>>> ran.offset, ran.steps, ran.stopped
(4, 2, None)
"""

from __future__ import annotations

import math
import threading

import numpy as np

from ...compile.compiler import CompiledNetwork, Gradients
from ...symbolic.parameters import Parameters
from ..optimizers import Optimizer
from ..train import TrainingConfig, _bad_value, _clip, _peak, below_tolerance
from . import Ran

__all__ = ["NumPyRunner", "make_runner", "one_hot"]


class NumPyRunner:
    """The step loop on NumPy arrays: the packed gradient buffer is kept between calls."""

    #: Batches per call: an epoch (Ctrl-C is noticed after every step, through ``interrupted``).
    batches_per_call = 2**62

    def __init__(self, compiled: CompiledNetwork, config: TrainingConfig) -> None:
        self.compiled = compiled
        self.config = config
        self.gradients: Gradients | None = None

    def run(
        self, params: Parameters, optimizer: Optimizer, X: np.ndarray, Y: np.ndarray, begin: int, end: int, batch: int,
        *, last_batch_of_epoch_at: int, interrupted: threading.Event | None = None,
    ) -> Ran:
        config, compiled = self.config, self.compiled
        gradients = self.gradients
        if gradients is None or gradients._shapes != params._shapes or gradients.buffer.dtype != params.buffer.dtype:
            gradients = self.gradients = Gradients.zeros_like(params)  # every step writes here
        limit = float(np.finfo(gradients.buffer.dtype).max)
        clipping = config.clip_value is not None or config.clip_norm is not None
        # Each step writes its predicted classes here; the hits are counted once per call, not per step.
        predicted = np.empty(end - begin, dtype=np.intp) if one_hot(Y[begin:end]) else None
        mean = compiled._mean_examples
        steps, total, step_size, offset = 0, 0.0, 0.0, begin

        def ran(stopped: str | None = None, message: str | None = None) -> Ran:
            correct = 0
            done = min(offset, end) - begin
            if predicted is not None and done > 0:
                hits = predicted[:done] == Y[begin : begin + done].argmax(axis=1)
                correct = int(np.count_nonzero(hits))
            return Ran(offset, steps, total, correct, step_size, gradients.layer_norms(), stopped, message)

        try:  # a KeyboardInterrupt raised inside a step: that step is not applied, the ones before are kept
            for start in range(begin, end, batch):
                xb, yb = X[start : start + batch], Y[start : start + batch]
                loss, gradients, forward = compiled.loss_and_gradient(params, xb, yb, out=gradients)
                # One pass: NaN and inf propagate through max, so a non-finite peak is a bad gradient.
                peak = largest_magnitude(gradients)
                if not (math.isfinite(loss) and math.isfinite(peak)):
                    what = "loss" if not math.isfinite(loss) else "gradient"
                    return ran("non_finite", f"the {what} became {_bad_value(loss, gradients)}")
                if clipping:
                    _clip(gradients, config.clip_value, config.clip_norm, compiled.ties)
                    peak = largest_magnitude(gradients)
                step_size = config.learning_rate * peak
                converged = start + batch >= last_batch_of_epoch_at and below_tolerance(step_size, config.tolerance)
                if not converged:
                    if not step_size <= limit:  # the update itself would overflow to ±inf
                        return ran("non_finite", f"the step η·max|g| = {step_size:.3g} overflows {config.dtype}")
                    optimizer.step(params, gradients)
                    steps += 1
                total += loss * (len(xb) if mean else 1)
                if predicted is not None:
                    np.argmax(forward.output, axis=1, out=predicted[start - begin : start - begin + len(xb)])
                offset = start + batch
                if interrupted is not None and interrupted.is_set() and offset < end:
                    break  # fit raises KeyboardInterrupt: the run stops after this whole step
                if converged:  # this step is not taken (see below_tolerance)
                    return ran("converged")
        except KeyboardInterrupt:
            return ran("interrupted")
        return ran()


def largest_magnitude(gradients: Gradients) -> float:
    """``max |g|`` over the whole gradient, NaN when any entry is (inf when any is infinite): on a packed
    buffer its largest and smallest entry (two passes, no temporary), else every array's ``|g|``.

    >>> import symback
    >>> g = Gradients.zeros_like(symback.Parameters.initialize(symback.Network([2, 1]), seed=0))
    >>> g.buffer[:] = [0.5, -2.0, 1.0]
    >>> largest_magnitude(g)
    2.0
    >>> g.buffer[1] = np.nan
    >>> largest_magnitude(g)
    nan
    """
    buffer = gradients.buffer
    if buffer is None or not buffer.size:
        return _peak(gradients)
    high, low = float(buffer.max()), float(buffer.min())  # NaN propagates through both
    return high if high >= -low or high != high else -low


def one_hot(Y: np.ndarray) -> bool:
    """Whether every row of ``Y`` is one-hot over two or more classes (argmax hits are counted then)."""
    return Y.shape[1] >= 2 and bool(np.all((Y == 0) | (Y == 1)) and np.all(Y.sum(axis=1) == 1))


def make_runner(compiled: CompiledNetwork, config: TrainingConfig) -> NumPyRunner:
    """The NumPy step runner (see :mod:`symback.training.backends`)."""
    return NumPyRunner(compiled, config)
