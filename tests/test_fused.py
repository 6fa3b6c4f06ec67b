"""The fused backend (symback.training.backends.fused) against NumPy semantics: a plain loop of
CompiledNetwork.loss_and_gradient and symback's own optimizer.step, the body of Trainer.fit's loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symback import Network, Parameters
from symback.compile.compiler import CompiledNetwork, Gradients, stabilize
from symback.errors import SpecError
from symback.training.optimizers import get_optimizer
from symback.training.train import TrainingConfig, _clip, _peak, below_tolerance

from .tools import require_module

numba = require_module("numba")  # in CI (CI=true) a missing numba fails here instead of skipping

from symback.training.backends import fused  # noqa: E402  (imports no numba itself: make_runner does)

ELEMENTWISE = ["elu", "identity", "leaky_relu", "relu", "sigmoid", "silu", "softplus", "tanh"]
OPTIMIZERS = ["sgd", "momentum", "rmsprop", "adam"]


@pytest.fixture(autouse=True)
def kernel_cache(tmp_path_factory, monkeypatch):
    """Generated kernels go to a cache folder of the test session, not the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


def numpy_chunk(compiled, config, params, optimizer, X, Y, begin, end, batch, last_at):
    """The reference: Trainer.fit's loop body (NaN stop, clipping, tolerance, overflow), on NumPy."""
    gradients = Gradients.zeros_like(params)
    limit = float(np.finfo(np.float64).max)
    steps, loss_sum, step_size = 0, 0.0, 0.0
    for b in range(begin, end, batch):
        xb, yb = X[b : b + batch], Y[b : b + batch]
        loss, gradients, _ = compiled.loss_and_gradient(params, xb, yb, out=gradients)
        if not (np.isfinite(loss) and np.isfinite(_peak(gradients))):
            return b, steps, loss_sum, "non_finite"
        if config.clip_value is not None or config.clip_norm is not None:
            _clip(gradients, config.clip_value, config.clip_norm, compiled.ties)
        step_size = config.learning_rate * _peak(gradients)
        if b >= last_at and below_tolerance(step_size, config.tolerance):
            return end, steps, loss_sum + loss * (len(xb) if compiled._mean_examples else 1), "converged"
        if not step_size <= limit:
            return b, steps, loss_sum, "non_finite"
        optimizer.step(params, gradients)
        steps += 1
        loss_sum += loss * (len(xb) if compiled._mean_examples else 1)
    return end, steps, loss_sum, None


def relative(a: np.ndarray, b: np.ndarray) -> float:
    scale = np.maximum(np.abs(b), 1e-300)
    return float(np.max(np.abs(a - b) / scale))


def data_for(network: Network, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, network.sizes[0]))
    outputs = network.sizes[-1]
    if network.cost.name == "categorical_cross_entropy":
        Y = np.eye(outputs)[rng.integers(0, outputs, n)]
    elif network.cost.name == "binary_cross_entropy":
        Y = rng.uniform(size=(n, outputs))
    else:
        Y = rng.normal(size=(n, outputs))
    return X, Y


@st.composite
def dense_cases(draw):
    depth = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 5), min_size=depth + 1, max_size=depth + 1))
    hidden = draw(st.lists(st.sampled_from(ELEMENTWISE), min_size=depth - 1, max_size=depth - 1))
    output = draw(st.sampled_from([*ELEMENTWISE, "softmax"]))
    costs = ["squared_error", "mse", "half_squared_error"]
    if output in ("sigmoid", "softmax"):
        costs.append("binary_cross_entropy")
    if output == "softmax":
        sizes[-1] = max(sizes[-1], 2)
        costs.append("categorical_cross_entropy")
    cost = draw(st.sampled_from(costs))
    optimizer = draw(st.sampled_from(OPTIMIZERS))
    n = draw(st.integers(1, 12))
    batch = draw(st.integers(1, n))
    clip = draw(st.sampled_from([{}, {"clip_value": 0.05}, {"clip_norm": 0.1}, {"clip_value": 0.05, "clip_norm": 0.1}]))
    seed = draw(st.integers(0, 2**16))
    return Network(sizes, [*hidden, output], cost), optimizer, n, batch, clip, seed


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dense_cases())
def test_an_epoch_agrees_with_the_numpy_loop(case):
    network, name, n, batch, clip, seed = case
    rng = np.random.default_rng(seed)
    X, Y = data_for(network, n, rng)
    compiled = CompiledNetwork(network)
    config = TrainingConfig(optimizer=name, learning_rate=0.05, **clip)
    start = Parameters.initialize(network, seed=seed).packed()
    mine, theirs = start.copy().packed(), start.copy().packed()
    mine_opt, their_opt = get_optimizer(name, learning_rate=0.05), get_optimizer(name, learning_rate=0.05)
    last_at = (n - 1) // batch * batch
    ran = fused.make_runner(compiled, config).run(mine, mine_opt, X, Y, 0, n, batch, last_batch_of_epoch_at=n)
    offset, steps, loss_sum, stopped = numpy_chunk(compiled, config, theirs, their_opt, X, Y, 0, n, batch, last_at)
    assert (ran.stopped, ran.offset, ran.steps) == (stopped, offset, steps)
    assert relative(mine.buffer, theirs.buffer) <= 1e-12
    assert ran.loss_sum == pytest.approx(loss_sum, rel=1e-12, abs=1e-300)
    assert mine_opt.steps == their_opt.steps
    for slot in their_opt.slots:
        assert relative(np.concatenate([a.ravel() for a in mine_opt.state[slot]]),
                        np.concatenate([a.ravel() for a in their_opt.state[slot]])) <= 1e-12


def test_seed000_sized_network_agrees_after_an_epoch_at_batch_1_and_32():
    network = Network([625, 20, 20, 10], "sigmoid", "squared_error")
    compiled = CompiledNetwork(network)
    rng = np.random.default_rng(3)
    X, Y = rng.uniform(size=(96, 625)), np.eye(10)[rng.integers(0, 10, 96)]
    for batch in (1, 32):
        start = Parameters.initialize(network, seed=2).packed()
        mine, theirs = start.copy().packed(), start.copy().packed()
        config = TrainingConfig(learning_rate=0.5)
        ran = fused.make_runner(compiled, config).run(
            mine, get_optimizer("sgd", learning_rate=0.5), X, Y, 0, 96, batch, last_batch_of_epoch_at=96
        )
        _, steps, loss_sum, _ = numpy_chunk(compiled, config, theirs, get_optimizer("sgd", learning_rate=0.5),
                                            X, Y, 0, 96, batch, 96 - batch)
        assert ran.steps == steps == 96 // batch
        assert relative(mine.buffer, theirs.buffer) <= 1e-12
        assert ran.loss_sum == pytest.approx(loss_sum, rel=1e-12)


def test_correct_counts_argmax_hits_like_numpy():
    network = Network([4, 3, 3], "tanh", "squared_error")
    compiled = CompiledNetwork(network)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(10, 4)), np.eye(3)[rng.integers(0, 3, 10)]
    params = Parameters.initialize(network, seed=0).packed()
    before = params.copy()
    ran = fused.make_runner(compiled, TrainingConfig()).run(
        params, get_optimizer("sgd", learning_rate=1e-300), X, Y, 0, 10, 10, last_batch_of_epoch_at=10
    )
    hits = int(np.count_nonzero(compiled.predict(before, X).argmax(axis=1) == Y.argmax(axis=1)))
    assert ran.correct == hits


def test_a_nan_stops_before_its_step_and_keeps_the_last_good_parameters():
    network = Network([3, 4, 2], "sigmoid", "squared_error")
    compiled = CompiledNetwork(network)
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(12, 3)), rng.normal(size=(12, 2))
    X[7, 1] = np.nan  # in the batch starting at 6 (batch 3): two steps are taken first
    start = Parameters.initialize(network, seed=1).packed()
    mine, theirs = start.copy().packed(), start.copy().packed()
    optimizer = get_optimizer("adam", learning_rate=0.01)
    ran = fused.make_runner(compiled, TrainingConfig(optimizer="adam")).run(
        mine, optimizer, X, Y, 0, 12, 3, last_batch_of_epoch_at=12
    )
    reference = get_optimizer("adam", learning_rate=0.01)
    offset, steps, _, stopped = numpy_chunk(compiled, TrainingConfig(), theirs, reference, X, Y, 0, 12, 3, 9)
    assert (ran.stopped, ran.steps, ran.offset) == ("non_finite", 2, 6) == (stopped, steps, offset)
    assert ran.message == "the loss became nan"
    assert relative(mine.buffer, theirs.buffer) <= 1e-12
    assert optimizer.steps == 2


def test_an_overflowing_step_is_not_taken():
    network = Network([2, 1], "identity", "squared_error")
    compiled = CompiledNetwork(network)
    X, Y = np.array([[1e200, 1e200]]), np.array([[0.0]])
    params = Parameters.initialize(network, seed=0).packed()
    before = params.buffer.copy()
    ran = fused.make_runner(compiled, TrainingConfig(learning_rate=1e150)).run(
        params, get_optimizer("sgd", learning_rate=1e150), X, Y, 0, 1, 1, last_batch_of_epoch_at=1
    )
    assert ran.stopped in ("non_finite",) and ran.steps == 0
    assert np.array_equal(params.buffer, before)


def test_tolerance_on_the_epochs_last_batch_converges_without_taking_the_step():
    network = Network([3, 2, 1], "tanh", "mse")
    compiled = CompiledNetwork(network)
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(9, 3)), rng.normal(size=(9, 1))
    config = TrainingConfig(learning_rate=0.1, tolerance=1e6)  # every step is under it: only the last one counts
    start = Parameters.initialize(network, seed=3).packed()
    mine, theirs = start.copy().packed(), start.copy().packed()
    ran = fused.make_runner(compiled, config).run(mine, get_optimizer("sgd", learning_rate=0.1), X, Y, 0, 9, 2,
                                                   last_batch_of_epoch_at=9)
    offset, steps, loss_sum, stopped = numpy_chunk(compiled, config, theirs, get_optimizer("sgd", learning_rate=0.1),
                                                   X, Y, 0, 9, 2, 8)
    assert (ran.stopped, ran.steps, ran.offset) == ("converged", 4, 9) == (stopped, steps, offset)
    assert ran.loss_sum == pytest.approx(loss_sum, rel=1e-12)
    assert relative(mine.buffer, theirs.buffer) <= 1e-12


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_state_after_a_fused_chunk_continues_identically_on_numpy(name):
    network = Network([4, 5, 3], ["relu", "softmax"], "categorical_cross_entropy")
    compiled = CompiledNetwork(network)
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(16, 4)), np.eye(3)[rng.integers(0, 3, 16)]
    config = TrainingConfig(optimizer=name, learning_rate=0.05)
    start = Parameters.initialize(network, seed=4).packed()
    # fused for the first half, then the state through state_dict into a fresh optimizer, numpy for the rest
    mine, first = start.copy().packed(), get_optimizer(name, learning_rate=0.05)
    fused.make_runner(compiled, config).run(mine, first, X, Y, 0, 8, 2, last_batch_of_epoch_at=16)
    saved = {key: np.array(value) for key, value in first.state_dict().items()}
    second = get_optimizer(name, learning_rate=0.05)
    second.load_state_dict(saved)
    numpy_chunk(compiled, config, mine, second, X, Y, 8, 16, 2, 14)
    theirs, reference = start.copy().packed(), get_optimizer(name, learning_rate=0.05)
    numpy_chunk(compiled, config, theirs, reference, X, Y, 0, 16, 2, 14)
    assert relative(mine.buffer, theirs.buffer) <= 1e-12
    assert second.steps == reference.steps == 8


def test_frozen_parameters_stay_put_and_the_rest_agree():
    network = Network([3, 3, 2], "sigmoid", "squared_error", frozen=["w(1)_0_1", "b(2)_*"])
    compiled = CompiledNetwork(network)
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    start = Parameters.initialize(network, seed=5).packed()
    mine, theirs = start.copy().packed(), start.copy().packed()
    fused.make_runner(compiled, TrainingConfig()).run(mine, get_optimizer("momentum", learning_rate=0.1), X, Y,
                                                      0, 6, 2, last_batch_of_epoch_at=6)
    numpy_chunk(compiled, TrainingConfig(), theirs, get_optimizer("momentum", learning_rate=0.1), X, Y, 0, 6, 2, 4)
    assert mine.weights[0][0, 1] == start.weights[0][0, 1]
    assert np.array_equal(mine.biases[1], start.biases[1])
    assert relative(mine.buffer, theirs.buffer) <= 1e-12


def test_what_it_does_not_train_is_refused_in_one_line():
    from .test_conv import conv_network
    from .test_recurrent import recurrent_network

    refused = [
        (Network([3, 3, 3, 3, 2], "tanh", "squared_error", skips={3: 1}), TrainingConfig()),
        (conv_network(1, "valid"), TrainingConfig()),
        (recurrent_network(), TrainingConfig()),
        (Network([2, 2, 1], names={"b(1)_0": "b1", "b(1)_1": "b1"}), TrainingConfig()),
        (Network([2, 2, 1]), TrainingConfig(dtype="float32")),
    ]
    for network, config in refused:
        with pytest.raises(SpecError) as error:
            fused.make_runner(CompiledNetwork(network), config)
        assert "\n" not in str(error.value) and "fused backend" in str(error.value)


def test_an_optimizer_without_a_fused_update_is_refused():
    from symback.training.optimizers import SGD

    class Halving(SGD):
        name = "halving"

    network = Network([2, 1])
    runner = fused.make_runner(CompiledNetwork(network), TrainingConfig())
    params = Parameters.initialize(network).packed()
    with pytest.raises(SpecError, match="no update for the halving optimizer"):
        runner.run(params, Halving(0.1), np.zeros((1, 2)), np.zeros((1, 1)), 0, 1, 1, last_batch_of_epoch_at=1)


def test_generated_kernels_are_written_once_to_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    network = Network([2, 3, 1], "tanh", "mse")
    compiled = CompiledNetwork(network)
    fused.make_runner(compiled, TrainingConfig()).run(
        Parameters.initialize(network).packed(), get_optimizer("sgd", learning_rate=0.1),
        np.ones((2, 2)), np.ones((2, 1)), 0, 2, 1, last_batch_of_epoch_at=2,
    )
    folder = fused.cache_folder()
    assert folder == tmp_path / "symback" / "fused"
    kernels = sorted(folder.glob("kernel_*.py"))
    assert len(kernels) == 1 and not list(folder.glob(".*.part"))
    source = kernels[0].read_text(encoding="utf-8")
    assert source == fused.generate_source(compiled, fused.UPDATES[type(get_optimizer("sgd"))])
    assert "fastmath=True" not in source


# -- the printed elementwise forms against 50-digit mpmath ---------------------------------------


def _scalar_kernel(expression: sp.Expr):
    """``expression`` in z, printed by the fused backend's printer, compiled by numba as the kernel is."""
    from symback.symbolic.activations import Z

    text = fused._ScalarPrinter({"fully_qualified_modules": True, "standard": "python3"}).doprint(stabilize(expression))
    prelude = fused._PRELUDE.replace("cache=True", "cache=False")
    namespace: dict = {}
    exec(prelude + f"\n@njit(fastmath=False)\ndef f(z):\n    return {text.replace(str(Z), 'z')}\n", namespace)
    return namespace["f"]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_printed_activation_and_derivative_are_exact_to_rounding_over_the_range(name):
    mpmath = require_module("mpmath")
    from symback.symbolic.activations import Z, get_activation

    activation = get_activation(name)
    stable = stabilize(activation.formula)
    points = np.concatenate([-np.geomspace(1e-8, 700, 60), [0.0], np.geomspace(1e-8, 700, 60)])
    for expression in (stable, stabilize(sp.diff(stable, Z))):
        kernel = _scalar_kernel(expression)
        exact = sp.lambdify(Z, activation.formula if expression is stable else sp.diff(activation.formula, Z), "mpmath")
        mpmath.mp.dps = 400  # 1 − tanh² cancels ~2|z|·log10(e) digits at |z| = 700
        for z in points:
            want = float(exact(mpmath.mpf(float(z))))
            got = kernel(float(z))
            if want == 0.0 or abs(want) < 1e-300:
                assert abs(got) <= 1e-300
            else:
                assert math.isclose(got, want, rel_tol=1e-13), (name, str(expression), z, got, want)


def test_trainer_fit_on_the_fused_backend_gives_the_numpy_backends_numbers_and_messages():
    """Through ``Trainer.fit``: chunks, the epoch's last batch, shuffling, records and the NaN-stop message."""
    from symback import Dataset
    from symback.training.train import Trainer

    network = Network([3, 4, 2], "sigmoid", "squared_error")
    rng = np.random.default_rng(7)
    data = Dataset(rng.normal(size=(21, 3)), rng.uniform(size=(21, 2)))
    start = Parameters.initialize(network, seed=1)
    results = {}
    for backend in ("numpy", "fused"):
        config = TrainingConfig(epochs=3, batch_size=4, learning_rate=0.5, optimizer="momentum", backend=backend,
                                progress=False)
        results[backend] = Trainer(network, config).fit(start, data)
    numpy_run, fused_run = results["numpy"], results["fused"]
    for a, b in zip(numpy_run.parameters.weights + numpy_run.parameters.biases,
                    fused_run.parameters.weights + fused_run.parameters.biases, strict=True):
        assert relative(a, b) <= 1e-12
    assert np.allclose(numpy_run.history.loss, fused_run.history.loss, rtol=1e-12, atol=0)
    assert (numpy_run.stop_reason, numpy_run.steps) == (fused_run.stop_reason, fused_run.steps) == ("epochs", 18)
    messages = {}
    linear = Network([3, 4, 2], "identity", "squared_error")  # no saturation: a large step diverges
    for backend in ("numpy", "fused"):
        config = TrainingConfig(epochs=5, batch_size=1, learning_rate=5.0, backend=backend, progress=False)
        outcome = Trainer(linear, config).fit(Parameters.initialize(linear, seed=1), data)
        assert outcome.stop_reason == "non_finite" and np.all(np.isfinite(outcome.parameters.weights[0]))
        messages[backend] = outcome.message
    assert messages["fused"] == messages["numpy"]
