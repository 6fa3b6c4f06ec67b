"""symback.training.backends: the registry, ``auto``, the NumPy runner (today's loop) and the JAX runner against it.

The JAX backend is checked against the NumPy backend (itself checked against finite differences, a plain
NumPy reference and PyTorch in tests/test_kinds.py): after training, float64 parameters agree to 1e-12
relative, entry by entry, on networks of every layer kind (dense, residual, softmax, conv1d and conv2d with
valid and same padding, recurrent with a readout of every step or of the last) fixed and random (mixed as
tests/test_kinds.py mixes them), under every optimizer, with clipping, frozen and tied parameters, the
tolerance rule, the NaN stop, resumes across backends and two devices.

Kept fast: a JAX runner is compiled per network, optimizer and batch shape, so the data sets here are
whole batches (one shape per fit), one compiled network serves both backends, and each fixed network
runs one optimizer (the optimizer's update is per parameter array, blind to the layer kind; the random
networks draw theirs).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symback
from symback import Dataset, Network, Parameters
from symback.errors import SpecError
from symback.spec.layer_table import network_from_tables
from symback.training.backends import BACKENDS, candidates, choose, installed, make_runner
from symback.training.optimizers import OPTIMIZERS
from symback.training.train import Trainer, TrainingConfig, load_checkpoint

from .test_kinds import _targets, mixed_networks
from .tools import require_module

ROOT = Path(__file__).resolve().parent.parent
RTOL = 1e-12
#: Every optimizer registered, each once (aliases left out).
OPTIMIZER_NAMES = sorted({factory.name: name for name, factory in OPTIMIZERS.items()}.values())


def _jax():
    return require_module("jax")


def _relative_gap(a: Parameters, b: Parameters) -> float:
    """The largest |a − b| / max(|a|, |b|, tiny) over every entry."""
    gap = 0.0
    for x, y in zip(a.weights + a.biases, b.weights + b.biases):
        scale = np.maximum(np.maximum(np.abs(x), np.abs(y)), 1e-300)
        gap = max(gap, float(np.max(np.abs(x - y) / scale)))
    return gap


def _both(net, params, data, backend="jax", **settings):
    """The same run on the NumPy backend and on ``backend`` (one compiled network: derived once)."""
    compiled = symback.CompiledNetwork(net)
    runs = {}
    for name in ("numpy", backend):
        runs[name] = Trainer(net, TrainingConfig(backend=name, **settings), compiled=compiled).fit(params, data)
    return runs["numpy"], runs[backend]


#: The library each compiled backend needs (installed by the README's test command; in CI missing fails).
NEEDS = {"jax": "jax", "fused": "numba"}


def _needs(backend):
    return require_module(NEEDS[backend])


def _same_runs(numpy_run, jax_run, what=""):
    """Parameters to RTOL entry by entry; the same steps, losses, hits, step sizes and gradient norms."""
    assert _relative_gap(numpy_run.parameters, jax_run.parameters) < RTOL, what
    assert numpy_run.steps == jax_run.steps, what
    np.testing.assert_allclose(jax_run.history.loss, numpy_run.history.loss, rtol=RTOL, err_msg=what)
    assert jax_run.history.accuracy == numpy_run.history.accuracy, what
    np.testing.assert_allclose(jax_run.history.step_sizes, numpy_run.history.step_sizes, rtol=1e-10, err_msg=what)
    np.testing.assert_allclose(jax_run.history.gradient_norms, numpy_run.history.gradient_norms, rtol=1e-10,
                               err_msg=what)


def _classes(rng, n, inputs, outputs):
    X = rng.normal(size=(n, inputs))
    return Dataset(X, np.eye(outputs)[(X @ rng.normal(size=(inputs, outputs))).argmax(axis=1)])


# -- registry and auto ---------------------------------------------------------------------------


def test_registry_names_every_backend_and_importing_it_loads_no_jax():
    assert BACKENDS.names() == ["fused", "jax", "numpy"]
    code = "import symback.training.backends, symback.training.train, sys; print('jax' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"]


def test_an_unknown_backend_is_one_clear_spec_error():
    with pytest.raises(SpecError, match=r"unknown backend 'jx' .*did you mean 'jax'"):
        TrainingConfig(backend="jx")
    with pytest.raises(SpecError, match="backend must be a name"):
        TrainingConfig(backend=3)


def test_auto_picks_by_batch_size_and_what_is_installed():
    only = lambda *names: (lambda name: name in names)  # noqa: E731
    assert choose("auto", batch=1, installed=only("fused", "jax")) == "fused"
    assert choose("auto", batch=1, installed=only("jax")) == "jax"
    assert choose("auto", batch=1, installed=only()) == "numpy"
    assert choose("auto", batch=4096, installed=only("fused")) == "numpy"
    assert choose("jax", batch=4096, installed=only()) == "jax"  # a named backend is never second-guessed


def test_auto_hands_a_network_the_backend_it_picks_refuses_to_the_next(monkeypatch):
    """``auto`` at batch 1 picks ``fused``; an optimizer registered without a fused (or JAX) update goes on
    to the next backend, down to NumPy; named, ``fused`` refuses it in one line.  A convolution is fused."""
    _jax()
    require_module("numba")
    from symback.training.optimizers import SGD

    class Nesterov(SGD):
        pass

    monkeypatch.setitem(OPTIMIZERS, "nesterov", Nesterov)
    net = network_from_tables({"inputs": [2, 3], "cost": "squared_error"},
                              [{"kind": "conv1d", "filters": 1, "kernel": [2], "activation": "tanh"},
                               {"size": 1, "activation": "identity"}])
    compiled = symback.CompiledNetwork(net)
    assert candidates("auto", batch=1) == ["fused", "jax", "numpy"]
    assert type(make_runner(compiled, TrainingConfig(backend="auto"), batch=1)).__name__ == "FusedRunner"
    runner = make_runner(compiled, TrainingConfig(backend="auto", optimizer="nesterov"), batch=1)
    assert type(runner).__name__ == "NumPyRunner"
    with pytest.raises(SpecError, match="the fused backend has no update for the"):
        make_runner(compiled, TrainingConfig(backend="fused", optimizer="nesterov"), batch=1)


@pytest.mark.parametrize("learning_rate", [0.5, 1e306, 1e308])
def test_fused_nan_stop_on_a_convolution_keeps_the_last_good_parameters(learning_rate):
    """As the JAX test below, on a conv1d network run one example at a time by the fused kernel."""
    require_module("numba")
    rng = np.random.default_rng(2)
    net = network_from_tables({"inputs": [1, 6], "cost": "squared_error"},
                              [{"kind": "conv1d", "filters": 2, "kernel": [3], "activation": "identity"},
                               {"size": 2, "activation": "identity"}])
    data = Dataset(rng.normal(size=(40, 6)) * 3, rng.normal(size=(40, 2)))
    numpy_run, fused_run = _both(net, Parameters.initialize(net, seed=0), data, "fused",
                                 learning_rate=learning_rate, epochs=20, batch_size=4)
    assert numpy_run.stop_reason == fused_run.stop_reason == "non_finite"
    # the same step and message, but for the value: sums of overflowing terms in another order give inf or nan
    same = lambda message: re.sub(r"became -?(inf|nan)", "became non-finite", message)  # noqa: E731
    assert numpy_run.steps == fused_run.steps and same(fused_run.message) == same(numpy_run.message)
    assert ("overflows" in fused_run.message) == (learning_rate == 1e308)
    assert all(np.isfinite(a).all() for a in fused_run.parameters.weights + fused_run.parameters.biases)
    assert _relative_gap(numpy_run.parameters, fused_run.parameters) < 1e-10


def test_a_backend_whose_module_is_absent_says_so(monkeypatch):
    monkeypatch.setitem(BACKENDS, "fused", "symback.training.backends.no_such_module")
    net = Network([2, 1], "sigmoid", "squared_error")
    with pytest.raises(SpecError, match=r"backend 'fused' is not part of this symback"):
        make_runner(symback.CompiledNetwork(net), TrainingConfig(backend="fused"), batch=1)
    assert not installed("fused")


def test_the_spec_reads_the_backend_from_training():
    config = TrainingConfig.from_section({"backend": "numpy", "epochs": 2})
    assert config.backend == "numpy"


# -- the NumPy runner: the loop body of fit --------------------------------------------------------


def test_numpy_runner_stops_where_asked_and_counts_what_it_ran():
    net = Network([3, 4, 2], "tanh", "squared_error")
    rng = np.random.default_rng(1)
    data = Dataset(rng.normal(size=(10, 3)), rng.normal(size=(10, 2)))
    config = TrainingConfig(learning_rate=0.05)
    compiled = symback.CompiledNetwork(net)
    params = Parameters.initialize(net, seed=0).astype(np.float64)
    optimizer = config.make_optimizer()
    ran = make_runner(compiled, config, batch=3).run(params, optimizer, data.X, data.Y, 0, 6, 3,
                                                      last_batch_of_epoch_at=10)
    assert (ran.offset, ran.steps, ran.stopped, optimizer.steps) == (6, 2, None, 2)
    # the same two steps by hand: loss_and_gradient, then SGD
    by_hand, total = Parameters.initialize(net, seed=0).astype(np.float64), 0.0
    for start in (0, 3):
        loss, gradients, _ = compiled.loss_and_gradient(by_hand, data.X[start:start + 3], data.Y[start:start + 3])
        total += loss * 3
        config.make_optimizer().step(by_hand, gradients)
    assert by_hand == params and ran.loss_sum == total
    assert len(ran.layer_norms) == 2 and ran.step_size > 0


# -- JAX against NumPy -----------------------------------------------------------------------------


#: Networks of every layer kind, each with one training feature on: (name, [network], [[layer]] tables,
#: settings).  Together: dense, residual (a skip edge), softmax, conv1d and conv2d (valid and same
#: padding, one and two channels), recurrent (read at every step, and at the last), both clippings,
#: frozen and tied entries (of flat layers: the names address a dense layer's matrix).
KIND_MIXES = [
    ("conv1d, recurrent, dense, residual, softmax, frozen, tied",
     {"inputs": [3, 4], "cost": "categorical_cross_entropy"},
     [{"kind": "conv1d", "filters": 2, "kernel": [3], "padding": "same", "activation": "tanh"},
      {"kind": "recurrent", "hidden": 3, "activation": "sigmoid"}, {"size": 4, "activation": "tanh"},
      {"size": 4, "activation": "softplus"}, {"size": 4, "activation": "tanh", "kind": "residual", "skip": 3},
      {"size": 3, "activation": "softmax"}], {}),
    ("conv2d valid, conv2d same, dense", {"inputs": [1, 4, 4], "cost": "binary_cross_entropy"},
     [{"kind": "conv2d", "filters": 2, "kernel": [2, 2], "activation": "softplus"},
      {"kind": "conv2d", "filters": 1, "kernel": [1, 2], "padding": "same", "activation": "sigmoid"},
      {"size": 2, "activation": "sigmoid"}], {"clip_norm": 0.5}),
    ("recurrent, last-step readout", {"inputs": [5, 2], "cost": "squared_error"},
     [{"kind": "recurrent", "hidden": 3, "activation": "tanh"},
      {"size": 2, "activation": "identity", "reads": "last"}], {"clip_value": 0.2}),
    ("dense", {"inputs": 4, "cost": "squared_error"},
     [{"size": 5, "activation": "relu"}, {"size": 3, "activation": "sigmoid"}], {}),
]


#: The first network's frozen entries (array, index; weights then biases) and tied pair, by name and place.
FROZEN = {"w(4)_0_2": (3, (0, 2)), "b(L)_1": (11, (1,))}
TIED = {"w(L)_0_0": (5, (0, 0)), "w(L)_2_3": (5, (2, 3))}


def _kind_case(index: int):
    """(name, network, 16 examples, settings, parameters) of ``KIND_MIXES[index]`` (cycled)."""
    index %= len(KIND_MIXES)
    name, network, tables, settings = KIND_MIXES[index]
    options = {"frozen": list(FROZEN), "names": dict.fromkeys(TIED, "shared")} if index == 0 else {}
    net = network_from_tables(network, tables, **options)
    rng = np.random.default_rng(index)
    X = rng.normal(size=(16, net.sizes[0]))
    params = Parameters.initialize(net, seed=index)
    if index == 0:
        (array, first), (_, second) = TIED.values()
        params.weights[array][second] = params.weights[array][first]  # a tied parameter's entries start equal
    return name, net, Dataset(X, _targets(net, len(X), rng)), settings, params


#: (backend, KIND_MIXES index, optimizer).  JAX: each network under one optimizer, cycled.  Fused: the mixed
#: first network (conv1d, recurrent, dense, residual, softmax, frozen and tied) under every optimizer and
#: the others under one each (a fused kernel is compiled per network and optimizer: seconds each).
KIND_RUNS = [("jax", index, optimizer) for index, optimizer in enumerate(OPTIMIZER_NAMES)] + [
    ("fused", 0, optimizer) for optimizer in OPTIMIZER_NAMES] + [
    ("fused", index, OPTIMIZER_NAMES[index % len(OPTIMIZER_NAMES)]) for index in range(1, len(KIND_MIXES))]


@pytest.mark.parametrize("backend, index, optimizer", KIND_RUNS)
def test_every_backend_trains_every_layer_kind_as_numpy_does_under_every_optimizer(backend, index, optimizer):
    _needs(backend)
    name, net, data, settings, params = _kind_case(index)
    numpy_run, jax_run = _both(net, params, data, backend, optimizer=optimizer, learning_rate=0.05, epochs=2,
                               batch_size=4, seed=5, **settings)
    assert numpy_run.steps == 2 * 4
    _same_runs(numpy_run, jax_run, name)
    if index == 0:
        before, after = params.weights + params.biases, jax_run.parameters.weights + jax_run.parameters.biases
        assert all(after[array][where] == before[array][where] for array, where in FROZEN.values())
        (array, first), (_, second) = TIED.values()
        assert after[array][first] == after[array][second] != before[array][first]


def _random_mixed_run(backend, case, optimizer, seed):
    net, grid = case
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(6, *grid)).reshape(6, -1)
    params = Parameters.initialize(net, "xavier", seed=seed)
    numpy_run, other_run = _both(net, params, Dataset(X, _targets(net, len(X), rng)), backend, optimizer=optimizer,
                                 learning_rate=0.05, epochs=2, batch_size=3, seed=seed)
    _same_runs(numpy_run, other_run, f"{backend}: {net}, {optimizer}")


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mixed_networks(), optimizer=st.sampled_from(OPTIMIZER_NAMES), seed=st.integers(0, 2**16))
def test_jax_trains_random_mixed_networks_as_numpy_does(case, optimizer, seed):
    """Random conv1d / conv2d / recurrent mixes with a dense readout (tests/test_kinds.py's strategy)."""
    _jax()
    _random_mixed_run("jax", case, optimizer, seed)


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mixed_networks(), optimizer=st.sampled_from(OPTIMIZER_NAMES), seed=st.integers(0, 2**16))
def test_fused_trains_random_mixed_networks_as_numpy_does(case, optimizer, seed):
    """The same strategy on the fused backend (two examples: each is a kernel compiled, seconds)."""
    require_module("numba")
    _random_mixed_run("fused", case, optimizer, seed)


def test_jax_clips_and_keeps_frozen_and_tied_parameters_as_numpy_does():
    _jax()
    rng = np.random.default_rng(11)
    net = Network([3, 4, 2], "tanh", "squared_error", frozen=["w(1)_0_1", "b(L)_0", "b(L)_1"],
                  names={"w(2)_0_0": "shared", "w(2)_1_3": "shared"})
    data = Dataset(rng.normal(size=(12, 3)) * 4, rng.normal(size=(12, 2)) * 4)
    params = Parameters.initialize(net, seed=2)
    params.weights[1][1, 3] = params.weights[1][0, 0]  # a tied parameter's entries start equal
    for clip in ({"clip_norm": 0.1}, {"clip_value": 0.3, "clip_norm": 0.2}):  # clip_value alone: KIND_MIXES
        numpy_run, jax_run = _both(net, params, data, optimizer="momentum", learning_rate=0.1, epochs=3, batch_size=5,
                                   **clip)
        assert _relative_gap(numpy_run.parameters, jax_run.parameters) < RTOL, clip
        trained = jax_run.parameters
        assert trained.weights[0][0, 1] == params.weights[0][0, 1]
        assert np.array_equal(trained.biases[1], params.biases[1])
        assert trained.weights[1][0, 0] == trained.weights[1][1, 3]


#: float32 carries 24 bits (ε = 6e-8).  The backends round the same formulas in different orders (XLA's
#: dots and reductions against OpenBLAS's and NumPy's), a few ε per step, and 8 SGD steps carry that
#: forward: measured 2.3e-7 worst normwise per array on the network below, 2.0e-6 on the deeper
#: KIND_MIXES networks (2.3e-5 entry by entry there, at an entry near zero: hence normwise).  1e-4
#: leaves a factor of 50 over the worst and stays far below the error of a wrong or missing term
#: (percent, or O(1)).  Not Adam: it divides by √v, so an entry whose
#: gradient is rounding noise moves by ±η whatever the noise (measured 1.6e-5 normwise): that gauges
#: Adam's sensitivity, not the backend.
FLOAT32_RTOL = 1e-4


@pytest.mark.parametrize("backend", ["jax", "fused"])
def test_every_backend_in_float32_agrees_to_float32_rounding_on_every_kind(backend):
    """conv1d, recurrent and a dense softmax readout in one network (conv2d runs the same correlate with a
    second spatial axis; a residual's skip is one more addition)."""
    _needs(backend)
    net = network_from_tables({"inputs": [3, 4], "cost": "categorical_cross_entropy"}, [
        {"kind": "conv1d", "filters": 2, "kernel": [3], "padding": "same", "activation": "tanh"},
        {"kind": "recurrent", "hidden": 3, "activation": "sigmoid"}, {"size": 3, "activation": "softmax"}])
    rng = np.random.default_rng(1)
    X = rng.normal(size=(16, 12))
    numpy_run, jax_run = _both(net, Parameters.initialize(net, seed=1), Dataset(X, _targets(net, 16, rng)),
                               backend, learning_rate=0.05, epochs=2, batch_size=4, dtype="float32")
    name = f"{backend}: conv1d, recurrent, softmax"
    assert numpy_run.steps == jax_run.steps == 8
    pairs = zip(numpy_run.parameters.weights + numpy_run.parameters.biases,
                jax_run.parameters.weights + jax_run.parameters.biases, strict=True)
    for mine, theirs in pairs:
        assert mine.dtype == theirs.dtype == np.float32  # no silent upcast on either backend
        gap = np.linalg.norm(theirs.astype(np.float64) - mine) / np.linalg.norm(mine.astype(np.float64))
        assert gap < FLOAT32_RTOL, name


def test_jax_stops_on_tolerance_like_numpy():
    _jax()
    spec = symback.load_spec(ROOT / "examples" / "seed002.toml")
    numpy_run, jax_run = _both(spec.network, spec.parameters, spec.data, learning_rate=0.1, epochs=1000,
                               tolerance=0.001)
    assert numpy_run.stop_reason == jax_run.stop_reason == "tolerance"
    assert numpy_run.steps == jax_run.steps == 9
    assert _relative_gap(numpy_run.parameters, jax_run.parameters) < RTOL


@pytest.mark.parametrize("learning_rate", [0.5, 1e306, 1e308])
def test_jax_nan_stop_keeps_the_last_good_parameters(learning_rate):
    """A learning rate that blows up (an infinite loss after a few steps or after one; an η·max|g| that
    overflows at once): the same step stops, not applied, on both backends, with the same message, and
    the parameters returned are the last good ones."""
    _jax()
    rng = np.random.default_rng(2)
    net = Network([3, 8, 2], "identity", "squared_error")
    data = Dataset(rng.normal(size=(40, 3)) * 3, rng.normal(size=(40, 2)))
    numpy_run, jax_run = _both(net, Parameters.initialize(net, seed=0), data, learning_rate=learning_rate,
                               epochs=20, batch_size=4)
    assert numpy_run.stop_reason == jax_run.stop_reason == "non_finite"
    assert numpy_run.steps == jax_run.steps and jax_run.message == numpy_run.message
    assert ("overflows" in jax_run.message) == (learning_rate == 1e308)
    assert all(np.isfinite(a).all() for a in jax_run.parameters.weights + jax_run.parameters.biases)
    assert _relative_gap(numpy_run.parameters, jax_run.parameters) < 1e-10


@pytest.mark.parametrize("first, second", [("jax", "numpy"), ("numpy", "jax")])
def test_a_checkpoint_written_on_one_backend_resumes_on_the_other(tmp_path, first, second):
    _jax()
    rng = np.random.default_rng(9)
    net = Network([3, 5, 3], ["tanh", "softmax"], "categorical_cross_entropy")
    data = _classes(rng, 22, 3, 3)
    params = Parameters.initialize(net, seed=0)
    base = {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 5, "seed": 4}
    straight = Trainer(net, TrainingConfig(epochs=6, **base)).fit(params, data)
    path = tmp_path / "half.npz"
    Trainer(net, TrainingConfig(epochs=3, checkpoint=str(path), backend=first, **base)).fit(params, data)
    checkpoint = load_checkpoint(path, net)
    assert checkpoint.steps == 15 and int(checkpoint.optimizer_state["steps"]) == 15
    resumed = Trainer(net, TrainingConfig(epochs=6, backend=second, **base)).fit(params, data, resume=path)
    assert resumed.steps == straight.steps and resumed.epochs == 3
    assert _relative_gap(straight.parameters, resumed.parameters) < RTOL
    np.testing.assert_allclose(resumed.history.loss, straight.history.loss, rtol=RTOL)


def test_jax_refuses_an_optimizer_it_has_no_update_for_with_a_spec_error(monkeypatch):
    _jax()
    from symback.training.optimizers import SGD

    class Nesterov(SGD):
        pass

    monkeypatch.setitem(OPTIMIZERS, "nesterov", Nesterov)
    net = Network([2, 1], "sigmoid", "squared_error")
    with pytest.raises(SpecError, match="unknown optimizer for the jax backend 'Nesterov'"):
        make_runner(symback.CompiledNetwork(net), TrainingConfig(backend="jax", optimizer="nesterov"), batch=2)


def test_cli_trains_a_spec_with_backend_jax(tmp_path):
    _jax()
    spec = (ROOT / "examples" / "seed002.toml").read_text()
    path = tmp_path / "net.toml"
    path.write_text(spec.replace("[training]", "[training]\nbackend = \"jax\"") if "[training]" in spec
                    else spec + '\n[training]\nbackend = "jax"\nepochs = 5\nlearning_rate = 0.1\n')
    saved = tmp_path / "out.npz"
    done = subprocess.run([sys.executable, "-m", "symback", "train", str(path), "--save", str(saved)],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    numpy_path = tmp_path / "numpy.toml"
    numpy_path.write_text(path.read_text().replace('backend = "jax"', 'backend = "numpy"'))
    numpy_saved = tmp_path / "numpy.npz"
    subprocess.run([sys.executable, "-m", "symback", "train", str(numpy_path), "--save", str(numpy_saved)],
                   capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    with np.load(saved) as a, np.load(numpy_saved) as b:
        keys = [key for key in a.files if key[0] in "Wb"]  # the parameters (not the history's seconds)
        assert keys and keys == [key for key in b.files if key[0] in "Wb"]
        for key in keys:
            np.testing.assert_allclose(a[key], b[key], rtol=RTOL)


_TWO_DEVICES = """
import json, sys
import numpy as np, jax
import symback
from symback import Dataset, Network, Parameters
from symback.spec.layer_table import network_from_tables
from symback.training.train import Trainer, TrainingConfig
rng = np.random.default_rng(5)
net = network_from_tables({"inputs": [3, 2], "cost": "categorical_cross_entropy"}, [
    {"kind": "recurrent", "hidden": 2, "activation": "tanh"}, {"size": 4, "activation": "softmax"}])
X = rng.normal(size=(64, 6))
data = Dataset(X, np.eye(4)[(X @ rng.normal(size=(6, 4))).argmax(axis=1)])
run = Trainer(net, TrainingConfig(backend="jax", optimizer="adam", learning_rate=0.01, epochs=3, batch_size=16)).fit(
    Parameters.initialize(net, seed=0), data)
print(json.dumps({"devices": len(jax.local_devices()), "flat": run.parameters.flat().tolist(),
                  "loss": list(run.history.loss)}))
"""


def test_two_device_data_parallel_training_equals_one_device():
    """A recurrent network (its time scan inside the jitted step), the batch sharded over two CPU devices."""
    _jax()

    def start(devices: int) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
               "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        return subprocess.Popen([sys.executable, "-c", _TWO_DEVICES], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, cwd=ROOT)

    def result(process: subprocess.Popen) -> dict:
        out, err = process.communicate()
        assert process.returncode == 0, err[-2000:]
        return json.loads(out.strip().splitlines()[-1])

    running = [start(1), start(2)]  # side by side: each is mostly importing and compiling
    one, two = (result(process) for process in running)
    assert (one["devices"], two["devices"]) == (1, 2)
    np.testing.assert_allclose(two["flat"], one["flat"], rtol=RTOL)
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=RTOL)


def test_cli_refuses_an_unknown_backend_in_one_line(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text((ROOT / "examples" / "seed002.toml").read_text() + '\n[training]\nbackend = "jx"\n')
    done = subprocess.run([sys.executable, "-m", "symback", "train", str(path)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "unknown backend 'jx'" in done.stderr
