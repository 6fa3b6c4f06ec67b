"""The fused backend (symback.training.backends.fused) against NumPy semantics: a plain loop of
CompiledNetwork.loss_and_gradient and symback's own optimizer.step, the body of Trainer.fit's loop."""

from __future__ import annotations

import math
from functools import cache

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
    """The largest |a − b| relative to |b|, an entry's scale floored at 1e-4 of the array's largest: an entry
    that cancels far below the terms it is summed from carries their rounding, not its own (measured: a
    bias of −7.4e-7 in a buffer up to 0.9 differed by 1.7e-18, 2.3e-12 of itself, between two summation
    orders)."""
    scale = np.maximum(np.abs(b), max(1e-4 * float(np.max(np.abs(b), initial=0.0)), 1e-300))
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


#: The networks the tests train, each with the optimizer its kernel is generated for.  A kernel is
#: compiled once per (network structure, optimizer, layout) and shared by every test and example that
#: trains that structure (fused._load keeps it by the hash of its source; frozen names and ties are
#: arguments, not source).  Together: every elementwise activation, softmax, every cost and each of
#: its paths to δ(L) (the fused output δ, σ(z) in z for cross-entropy, log-softmax, softmax with
#: cross-entropy's a·Σy − y, the derived softmax Jacobian), every optimizer, sums of 9 (four
#: accumulators and a remainder), residual layers (a skip from the input, a sigmoid's with its σ' in
#: z), a sigmoid output with its σ' as a·σ(−z) — in both layouts.
CASES = {
    "leaky identity softmax/cce": (Network([3, 4, 4, 3], ["leaky_relu", "identity", "softmax"],
                                           "categorical_cross_entropy"), "adam"),
    "tanh sigmoid/bce": (Network([3, 4, 2], ["tanh", "sigmoid"], "binary_cross_entropy"), "momentum"),
    "sigmoid softmax/se": (Network([3, 4, 3], ["sigmoid", "softmax"], "squared_error"), "rmsprop"),
    "relu softmax/bce": (Network([3, 4, 3], ["relu", "softmax"], "binary_cross_entropy"), "sgd"),
    "softplus identity/mse": (Network([9, 8, 2], ["softplus", "identity"], "mse"), "sgd"),
    "residual silu sigmoid elu sigmoid/half": (Network([3, 3, 3, 3, 2], ["silu", "sigmoid", "elu", "sigmoid"],
                                                       "half_squared_error", skips={2: 0, 3: 1}), "adam"),
}
LAYOUTS = {"one example": (1, fused.BATCH_FROM - 1), "batch": (fused.BATCH_FROM, 12)}


@cache
def compiled_case(name: str) -> tuple[Network, CompiledNetwork, str]:
    network, optimizer = CASES[name]
    return network, CompiledNetwork(network), optimizer


def agree_after_an_epoch(network, compiled, name, X, Y, batch, config, seed, *, tolerance=1e-12):
    """One epoch of fused steps and of the NumPy loop from the same start: the same stop, steps,
    parameters, loss sum and optimizer state (relative ``tolerance``)."""
    n = len(X)
    start = Parameters.initialize(network, seed=seed).packed()
    mine, theirs = start.copy().packed(), start.copy().packed()
    rate = config.learning_rate
    mine_opt, their_opt = get_optimizer(name, learning_rate=rate), get_optimizer(name, learning_rate=rate)
    last_at = (n - 1) // batch * batch
    ran = fused.make_runner(compiled, config).run(mine, mine_opt, X, Y, 0, n, batch, last_batch_of_epoch_at=n)
    offset, steps, loss_sum, stopped = numpy_chunk(compiled, config, theirs, their_opt, X, Y, 0, n, batch, last_at)
    assert (ran.stopped, ran.offset, ran.steps) == (stopped, offset, steps)
    assert relative(mine.buffer, theirs.buffer) <= tolerance
    assert ran.loss_sum == pytest.approx(loss_sum, rel=tolerance, abs=1e-300)
    assert mine_opt.steps == their_opt.steps
    for slot in their_opt.slots:
        assert relative(np.concatenate([a.ravel() for a in mine_opt.state[slot]]),
                        np.concatenate([a.ravel() for a in their_opt.state[slot]])) <= tolerance
    return mine, ran


CLIPS = [{}, {"clip_value": 0.05}, {"clip_norm": 0.1}, {"clip_value": 0.05, "clip_norm": 0.1}]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES)
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_an_epoch_agrees_with_the_numpy_loop(case, layout, data):
    network, compiled, name = compiled_case(case)
    low, high = LAYOUTS[layout]
    batch = data.draw(st.integers(low, high), label="batch")
    n = data.draw(st.integers(batch, 3 * batch), label="examples")
    clip = data.draw(st.sampled_from(CLIPS), label="clip")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    X, Y = data_for(network, n, np.random.default_rng(seed))
    config = TrainingConfig(optimizer=name, learning_rate=0.05, **clip)
    agree_after_an_epoch(network, compiled, name, X, Y, batch, config, seed)


def test_tied_parameters_train_as_on_numpy_in_both_layouts():
    # the structure of a case: the same kernels, the ties are their arguments
    network = Network([3, 4, 2], ["tanh", "sigmoid"], "binary_cross_entropy",
                      names={"w(1)_0_1": "v", "w(2)_1_0": "v", "w(1)_2_2": "v", "b(1)_0": "c", "b(1)_3": "c"})
    compiled = CompiledNetwork(network)
    rng = np.random.default_rng(8)
    for batch, clip in ((3, {}), (8, {"clip_norm": 0.05}), (9, {"clip_value": 0.01, "clip_norm": 0.02})):
        X, Y = data_for(network, 20, rng)
        config = TrainingConfig(optimizer="momentum", learning_rate=0.3, **clip)
        mine, _ = agree_after_an_epoch(network, compiled, "momentum", X, Y, batch, config, seed=batch)
        w1, w2 = mine.weights
        assert w1[0, 1] == w2[1, 0] == w1[2, 2] and mine.biases[0][0] == mine.biases[0][3]


def normwise(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b))


@pytest.mark.parametrize(("case", "batch"), [("sigmoid softmax/se", 3), ("softplus identity/mse", 9)])
def test_float32_is_as_close_to_float64_as_numpys_float32(case, batch):
    """After an epoch, fused float32 is within 2·d + ε of float64, d being NumPy float32's own distance
    from float64 (normwise): both store every value in float32 (a floor of ε = 2⁻²³ for parameters
    stored at each step), the fused kernel rounds no more often (float64 between stores), so twice
    NumPy's own error bounds it; by the triangle inequality fused and NumPy float32 are then within
    3·d + ε of each other (measured: d ≈ 0.6–1.4e-7, fused within 1.14·d of float64)."""
    network, compiled, name = compiled_case(case)
    X, Y = data_for(network, 40, np.random.default_rng(batch))
    start = Parameters.initialize(network, seed=batch)
    runs = {}
    for dtype in ("float64", "float32"):
        config = TrainingConfig(optimizer=name, learning_rate=0.05, dtype=dtype)
        theirs = start.packed(np.dtype(dtype)).copy().packed()
        numpy_chunk(compiled, config, theirs, get_optimizer(name, learning_rate=0.05), X.astype(dtype),
                    Y.astype(dtype), 0, 40, batch, 40 - batch)
        runs[dtype] = theirs.buffer
    mine = start.packed(np.float32).copy().packed()
    ran = fused.make_runner(compiled, TrainingConfig(optimizer=name, learning_rate=0.05, dtype="float32")).run(
        mine, get_optimizer(name, learning_rate=0.05), X, Y, 0, 40, batch, last_batch_of_epoch_at=40)
    assert mine.buffer.dtype == np.float32 and ran.steps == -(-40 // batch)
    epsilon = float(np.finfo(np.float32).eps)
    theirs_off = normwise(runs["float32"], runs["float64"])
    assert normwise(mine.buffer, runs["float64"]) <= 2 * theirs_off + epsilon
    assert normwise(mine.buffer, runs["float32"].astype(np.float64)) <= 3 * theirs_off + epsilon


def test_seed000_sized_network_agrees_after_an_epoch_at_batch_32():
    network = Network([625, 20, 20, 10], "sigmoid", "squared_error")
    rng = np.random.default_rng(3)
    X, Y = rng.uniform(size=(96, 625)), np.eye(10)[rng.integers(0, 10, 96)]
    _, ran = agree_after_an_epoch(network, CompiledNetwork(network), "sgd", X, Y, 32,
                                  TrainingConfig(learning_rate=0.5), seed=2)
    assert ran.steps == 3


@pytest.mark.parametrize("batch", [2, 10])
def test_correct_counts_argmax_hits_like_numpy(batch):
    network, compiled, _ = compiled_case("relu softmax/bce")
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(10, 3)), np.eye(3)[rng.integers(0, 3, 10)]
    params = Parameters.initialize(network, seed=0).packed()
    before = params.copy()
    ran = fused.make_runner(compiled, TrainingConfig()).run(
        params, get_optimizer("sgd", learning_rate=1e-300), X, Y, 0, 10, batch, last_batch_of_epoch_at=10
    )
    hits = int(np.count_nonzero(compiled.predict(before, X).argmax(axis=1) == Y.argmax(axis=1)))
    assert ran.correct == hits


def test_a_nan_stops_before_its_step_and_keeps_the_last_good_parameters():
    network, compiled, _ = compiled_case("residual silu sigmoid elu sigmoid/half")
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
    network, compiled, _ = compiled_case("softplus identity/mse")
    X, Y = np.full((1, 9), 1e200), np.zeros((1, 2))
    params = Parameters.initialize(network, seed=0).packed()
    before = params.buffer.copy()
    ran = fused.make_runner(compiled, TrainingConfig(learning_rate=1e150)).run(
        params, get_optimizer("sgd", learning_rate=1e150), X, Y, 0, 1, 1, last_batch_of_epoch_at=1
    )
    assert ran.stopped in ("non_finite",) and ran.steps == 0
    assert np.array_equal(params.buffer, before)


def test_tolerance_on_the_epochs_last_batch_converges_without_taking_the_step():
    network, compiled, _ = compiled_case("softplus identity/mse")
    X, Y = data_for(network, 9, np.random.default_rng(2))
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
    case = next(case for case, (_, optimizer) in CASES.items() if optimizer == name)
    network, compiled, _ = compiled_case(case)
    X, Y = data_for(network, 16, np.random.default_rng(4))
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
    # the structure of a case: the same kernel, the frozen entries are its mask argument
    network = Network([3, 4, 2], ["tanh", "sigmoid"], "binary_cross_entropy",
                      frozen=["w(1)_0_1", "b(1)_2", "w(2)_1_0", "w(2)_0_3", "b(2)_*"])
    compiled = CompiledNetwork(network)
    X, Y = data_for(network, 16, np.random.default_rng(5))
    start = Parameters.initialize(network, seed=5).packed()
    weights, biases = network.trainable_masks()
    assert all(np.any(m == 0) for m in [weights[0], weights[1], *biases])  # frozen entries in every array
    for batch in (2, 8):  # both layouts
        mine, theirs = start.copy().packed(), start.copy().packed()
        fused.make_runner(compiled, TrainingConfig()).run(mine, get_optimizer("momentum", learning_rate=0.1), X, Y,
                                                          0, 16, batch, last_batch_of_epoch_at=16)
        numpy_chunk(compiled, TrainingConfig(), theirs, get_optimizer("momentum", learning_rate=0.1), X, Y, 0, 16,
                    batch, 16 - batch)
        for moved, began, trainable in zip(mine.weights + mine.biases, start.weights + start.biases,
                                           [*weights, *biases], strict=True):
            assert np.array_equal(moved[trainable == 0], began[trainable == 0])
            assert np.all(moved[trainable == 1] != began[trainable == 1])
        assert relative(mine.buffer, theirs.buffer) <= 1e-12


def test_every_layer_kind_is_trained_and_what_is_not_is_refused_in_one_line(monkeypatch):
    """Convolutions and recurrent layers are fused (tests/test_backends.py checks their numbers); an optimizer
    registered without a fused update is refused in one line, for any network."""
    from symback.training.optimizers import OPTIMIZERS, SGD

    from .test_conv import conv_network
    from .test_recurrent import recurrent_network

    class Halving(SGD):
        name = "halving"

    monkeypatch.setitem(OPTIMIZERS, "halving", Halving)
    for network in (conv_network(1, "valid"), conv_network(2, "same"), recurrent_network()):
        compiled = CompiledNetwork(network)
        assert fused.refusal(compiled, TrainingConfig()) is None
        with pytest.raises(SpecError) as error:
            fused.make_runner(compiled, TrainingConfig(optimizer="halving"))
        assert "\n" not in str(error.value) and "fused backend has no update for the halving" in str(error.value)


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
    network, compiled, _ = compiled_case("softplus identity/mse")
    fused.make_runner(compiled, TrainingConfig()).run(
        Parameters.initialize(network).packed(), get_optimizer("sgd", learning_rate=0.1),
        np.ones((2, 9)), np.ones((2, 2)), 0, 2, 1, last_batch_of_epoch_at=2,
    )
    folder = fused.cache_folder()
    assert folder == tmp_path / "symback" / "fused"
    kernels = sorted(folder.glob("kernel_*.py"))
    assert len(kernels) == 3 and not list(folder.glob(".*.part"))  # the network's, the update's, the helpers
    update = fused.UPDATES[type(get_optimizer("sgd"))]
    wanted = {fused.generate_source(compiled, update), fused.update_source(update), fused._PRELUDE}
    assert {kernel.read_text(encoding="utf-8") for kernel in kernels} == wanted
    source = "".join(wanted)
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

    network, _, _ = compiled_case("tanh sigmoid/bce")
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
    linear, _, _ = compiled_case("softplus identity/mse")  # no saturation: a large step diverges
    data = Dataset(rng.normal(size=(21, 9)), rng.uniform(size=(21, 2)))
    for backend in ("numpy", "fused"):
        config = TrainingConfig(epochs=5, batch_size=1, learning_rate=5.0, backend=backend, progress=False)
        outcome = Trainer(linear, config).fit(Parameters.initialize(linear, seed=1), data)
        assert outcome.stop_reason == "non_finite" and np.all(np.isfinite(outcome.parameters.weights[0]))
        messages[backend] = outcome.message
    assert messages["fused"] == messages["numpy"]


# -- choosing the backend, and what it needs ----------------------------------------------------------


def test_auto_picks_fused_up_to_the_measured_crossover_and_passes_over_what_it_refuses(monkeypatch):
    from symback.training import backends

    only_fused = lambda name: name in ("fused", "numpy")  # noqa: E731
    assert backends.choose("auto", batch=backends.AUTO_FUSED_BATCH, installed=only_fused) == "fused"
    assert backends.choose("auto", batch=backends.AUTO_FUSED_BATCH + 1, installed=only_fused) == "numpy"
    from symback.training.optimizers import OPTIMIZERS, SGD

    from .test_conv import conv_network

    class Halving(SGD):
        name = "halving"

    monkeypatch.setitem(OPTIMIZERS, "halving", Halving)
    conv = CompiledNetwork(conv_network(1, "valid"))
    assert isinstance(backends.make_runner(conv, TrainingConfig(backend="auto"), batch=1), fused.FusedRunner)
    refused = TrainingConfig(backend="auto", optimizer="halving")
    runner = backends.make_runner(conv, refused, batch=1)
    assert not isinstance(runner, fused.FusedRunner) and fused.refusal(conv, refused) is not None
    _, dense, _ = compiled_case("tanh sigmoid/bce")
    assert isinstance(backends.make_runner(dense, TrainingConfig(backend="auto"), batch=1), fused.FusedRunner)


def test_a_missing_library_is_the_same_one_line_from_the_backend_and_from_fused(monkeypatch):
    from symback.training import backends

    monkeypatch.setitem(backends._NEEDS, "fused", (("numba", "no_such_library_for_fused"), "symback[fused]"))
    _, compiled, _ = compiled_case("tanh sigmoid/bce")
    with pytest.raises(SpecError) as direct:
        fused.make_runner(compiled, TrainingConfig())
    with pytest.raises(SpecError) as chosen:
        backends.make_runner(compiled, TrainingConfig(backend="fused"), batch=1)
    assert str(direct.value) == str(chosen.value) == backends.missing("fused") == (
        "[training] backend 'fused' needs no_such_library_for_fused, which is not installed: "
        "pip install 'symback[fused]'")
    assert not backends.installed("fused")


# -- the step's screen ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.one_of(st.floats(width=32, allow_nan=True, allow_infinity=True),
                                 st.sampled_from([0.0, -0.0, 1e-45, -1e-45, 3.4e38, -3.4e38])),
                       min_size=1, max_size=40))
def test_the_bit_screen_finds_max_abs_g_and_every_non_finite_entry_exactly(dtype, values):
    """finish() reads max|g| and finiteness off the bits (sign masked, compared as integers): against NumPy
    on every float kind a gradient holds: ±0, subnormals, the largest finite, ±inf, NaN; and a sum of
    finite entries that would overflow is no reason to stop."""
    from symback.training.optimizers import SGD

    finish = fused._load(fused.update_source(fused.UPDATES[SGD])).finish
    G = np.array(values, dtype=dtype)
    P = np.zeros_like(G)
    empty, none = np.zeros(0, dtype=dtype), np.zeros(0, dtype=np.intp)
    status, step_size, _ = finish(P, G.copy(), empty, empty, np.zeros(0), none, none, np.zeros(0), np.zeros(0),
                                  np.array([1.0]), 0, float(np.finfo(dtype).max), 0.0, 0.0, 0.0, 0.0, False)
    if not np.all(np.isfinite(G)):
        assert status == 1
    else:
        assert status == 0 and step_size == float(np.max(np.abs(G)))
        np.testing.assert_array_equal(P, -G)  # SGD with η = 1 took the step
