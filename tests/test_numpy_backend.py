"""The NumPy backend's bookkeeping around each step: max|g| from the packed buffer, the argmax hits counted
once per call — the same numbers as the plain per-array, per-step forms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import symback
from symback.compile.compiler import CompiledNetwork, Gradients
from symback.training.backends.numpy import NumPyRunner, largest_magnitude
from symback.training.train import TrainingConfig

NETWORK = symback.Network([3, 4, 3], "sigmoid", "squared_error")


@pytest.fixture(scope="module")
def compiled():
    return CompiledNetwork(NETWORK)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, 31, elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))
def test_largest_magnitude_is_max_abs_over_every_array(values):
    gradients = Gradients.zeros_like(symback.Parameters.initialize(NETWORK, seed=0))
    gradients.buffer[:] = values
    expected = max(float(np.abs(g).max()) for g in gradients.parts())
    found = largest_magnitude(gradients)
    if np.isnan(values).any():
        assert np.isnan(found)
    else:
        assert found == expected


@pytest.mark.parametrize("chunk", [None, 2])
def test_hits_and_losses_are_those_of_the_plain_step_loop(compiled, chunk):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(11, 3))
    Y = np.eye(3)[rng.integers(0, 3, size=11)]
    config = TrainingConfig(learning_rate=0.5)
    params = symback.Parameters.initialize(NETWORK, seed=1)
    reference = params.copy()
    batch, n = 3, 11
    runner, optimizer = NumPyRunner(compiled, config), config.make_optimizer()
    offset, correct, total = 0, 0, 0.0
    while offset < n:  # as Trainer.fit hands it over: a chunk of batches at a time (or the epoch at once)
        end = n if chunk is None else min(n, offset + chunk * batch)
        ran = runner.run(params, optimizer, X, Y, offset, end, batch, last_batch_of_epoch_at=n)
        offset, correct, total = ran.offset, correct + ran.correct, total + ran.loss_sum
    plain, gradients = config.make_optimizer(), Gradients.zeros_like(reference)
    hits, losses = 0, 0.0
    for start in range(0, n, batch):
        xb, yb = X[start : start + batch], Y[start : start + batch]
        loss, gradients, forward = compiled.loss_and_gradient(reference, xb, yb, out=gradients)
        hits += int(np.sum(forward.output.argmax(axis=1) == yb.argmax(axis=1)))
        losses += loss * len(xb)
        plain.step(reference, gradients)
    assert offset == 12 and correct == hits and total == losses
    assert np.array_equal(params.buffer, reference.buffer)


def test_no_hits_are_counted_for_targets_that_are_not_classes(compiled):
    config = TrainingConfig(learning_rate=0.5)
    X, Y = np.ones((4, 3)), np.full((4, 3), 0.5)
    ran = NumPyRunner(compiled, config).run(symback.Parameters.initialize(NETWORK, seed=0), config.make_optimizer(),
                                            X, Y, 0, 4, 2, last_batch_of_epoch_at=4)
    assert (ran.offset, ran.steps, ran.correct) == (4, 2, 0)
