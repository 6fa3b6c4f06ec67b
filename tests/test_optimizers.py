"""Optimizers: each lowers the loss, and each update equals a hand-written reference for several steps."""

from __future__ import annotations

import numpy as np
import pytest

from symback import Dataset, Network, Parameters
from symback.compile.compiler import CompiledNetwork, Gradients
from symback.errors import SpecError, UnknownNameError
from symback.training.optimizers import OPTIMIZERS, get_optimizer


def _problem():
    net = Network([3, 4, 2], "tanh", "squared_error")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    Y = np.tanh(X @ rng.normal(size=(3, 2)))
    return net, Parameters.initialize(net, "xavier", seed=1), Dataset(X, Y)


@pytest.mark.parametrize("name, rate", [("sgd", 0.1), ("momentum", 0.05), ("rmsprop", 0.01), ("adam", 0.01)])
def test_each_optimizer_lowers_the_loss(name, rate):
    net, params, data = _problem()
    compiled = CompiledNetwork(net)
    start = compiled.cost(params, data)
    optimizer = get_optimizer(name, learning_rate=rate)
    for _ in range(100):
        optimizer.step(params, compiled.gradient(params, data))
    assert compiled.cost(params, data) < 0.5 * start


def _reference_updates(name, p0, grads, lr):
    """Textbook update rules written out for one array."""
    p = p0.copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    out = []
    for t, g in enumerate(grads, start=1):
        if name == "momentum":
            m = 0.9 * m + g
            p = p - lr * m
        elif name == "rmsprop":
            v = 0.9 * v + 0.1 * g**2
            p = p - lr * g / (np.sqrt(v) + 1e-8)
        elif name == "adam":
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g**2
            m_hat, v_hat = m / (1 - 0.9**t), v / (1 - 0.999**t)
            p = p - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        else:
            p = p - lr * g
        out.append(p.copy())
    return out


@pytest.mark.parametrize("name", ["sgd", "momentum", "rmsprop", "adam"])
def test_updates_match_the_hand_written_rule(name):
    rng = np.random.default_rng(5)
    w0, b0 = rng.normal(size=(2, 3)), rng.normal(size=2)
    grads = [(rng.normal(size=(2, 3)), rng.normal(size=2)) for _ in range(4)]
    params = Parameters([w0.copy()], [b0.copy()])
    optimizer = get_optimizer(name, learning_rate=0.03)
    expected_w = _reference_updates(name, w0, [g for g, _ in grads], 0.03)
    expected_b = _reference_updates(name, b0, [g for _, g in grads], 0.03)
    for step, (gw, gb) in enumerate(grads):
        optimizer.step(params, Gradients([gw], [gb]))
        np.testing.assert_allclose(params.weights[0], expected_w[step], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(params.biases[0], expected_b[step], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", ["momentum", "rmsprop", "adam"])
def test_state_round_trip_continues_identically(name):
    net, params, data = _problem()
    compiled = CompiledNetwork(net)
    first = get_optimizer(name, learning_rate=0.01)
    for _ in range(3):
        first.step(params, compiled.gradient(params, data))
    second = get_optimizer(name, learning_rate=0.01)
    second.load_state_dict({k: v.copy() for k, v in first.state_dict().items()})
    other = params.copy()
    for _ in range(3):
        first.step(params, compiled.gradient(params, data))
        second.step(other, compiled.gradient(other, data))
    assert params == other


def test_frozen_parameters_stay_put_under_adam(seed002):
    compiled = CompiledNetwork(seed002.network)
    params = seed002.parameters.copy()
    optimizer = get_optimizer("adam", learning_rate=0.1)
    for _ in range(5):
        optimizer.step(params, compiled.gradient(params, seed002.data))
    changed = params.flat() != seed002.parameters.flat()
    names = [seed002.network.name_of(ref) for ref in seed002.network.parameter_refs()]
    assert [n for n, c in zip(names, changed) if c] == ["b3"]


def test_registry_and_errors():
    assert {"sgd", "momentum", "rmsprop", "adam"} <= set(OPTIMIZERS)
    with pytest.raises(UnknownNameError, match="'adagrad'"):
        get_optimizer("adagrad")
    with pytest.raises(SpecError, match="beta1"):
        get_optimizer({"name": "adam", "beta1": 1.5})
    with pytest.raises(SpecError, match="learning_rate"):
        get_optimizer("sgd", learning_rate=-1)
    with pytest.raises(SpecError, match="unknown setting 'momentum' for optimizer 'sgd'"):
        get_optimizer("sgd", momentum=0.9)
    with pytest.raises(SpecError, match=r"unknown setting 'beta' for optimizer 'adam' \(did you mean 'beta[12]' or 'beta[12]'\?"):
        get_optimizer({"name": "adam", "beta": 0.9})
    with pytest.raises(SpecError, match="beta1 must be a finite number, got nan"):
        get_optimizer({"name": "adam", "beta1": float("nan")})
    with pytest.raises(SpecError, match="epsilon must be a number, not True"):
        get_optimizer({"name": "rmsprop", "epsilon": True})
    with pytest.raises(SpecError, match="learning_rate must be a finite number, got an integer of about 401 digits"):
        get_optimizer("sgd", learning_rate=10**400)
    with pytest.raises(UnknownNameError, match=r"unknown optimizer 'adma' \(did you mean 'adam'\?"):
        get_optimizer("adma")


def _packed_and_loose(seed=0):
    net = Network([3, 4, 2], "tanh", "squared_error")
    packed = Parameters.initialize(net, "xavier", seed=seed)
    loose = Parameters([w.copy() for w in packed.weights], [b.copy() for b in packed.biases])
    assert packed.buffer is not None and loose.buffer is None
    return net, packed, loose


@pytest.mark.parametrize("name", ["sgd", "momentum", "rmsprop", "adam"])
def test_one_pass_over_the_packed_buffer_equals_one_pass_per_array(name):
    """The packed path (one _update on whole buffers) and the per-array path give the same bits,
    also when an optimizer switches between them (its state is carried across)."""
    net, packed, loose = _packed_and_loose()
    data = _problem()[2]
    compiled = CompiledNetwork(net)
    fast, slow = get_optimizer(name, learning_rate=0.02), get_optimizer(name, learning_rate=0.02)
    out = Gradients.zeros_like(packed)
    for step in range(6):
        _, g_packed, _ = compiled.loss_and_gradient(packed, data.X, data.Y, out=out)
        g_loose = compiled.gradient(loose, data)
        assert g_packed == g_loose
        if step == 3:  # one unpacked step in the middle: state arrays are views, updated in place
            fast.step(packed, g_loose)
        else:
            fast.step(packed, g_packed)
        slow.step(loose, g_loose)
        assert packed == loose
    assert packed.buffer is not None


def test_packed_state_survives_a_state_dict_round_trip():
    net, packed, _ = _packed_and_loose()
    data = _problem()[2]
    compiled = CompiledNetwork(net)
    first = get_optimizer("adam", learning_rate=0.01)
    out = Gradients.zeros_like(packed)
    for _ in range(3):
        first.step(packed, compiled.loss_and_gradient(packed, data.X, data.Y, out=out)[1])
    saved = {k: np.array(v) for k, v in first.state_dict().items()}
    assert sorted(saved) == ["m/0", "m/1", "m/2", "m/3", "steps", "v/0", "v/1", "v/2", "v/3"]
    resumed, twin = get_optimizer("adam", learning_rate=0.01), packed.copy()
    resumed.load_state_dict(saved)
    for _ in range(3):
        g = compiled.loss_and_gradient(packed, data.X, data.Y, out=out)[1]
        first.step(packed, g)
        resumed.step(twin, g)
    assert packed == twin


def test_a_replaced_array_turns_the_packed_path_off():
    net, packed, _ = _packed_and_loose()
    packed.weights[0] = packed.weights[0].copy()
    assert packed.buffer is None
    g = Gradients.zeros_like(packed)
    g.buffer[...] = 1.0
    get_optimizer("sgd", learning_rate=0.5).step(packed, g)
    assert np.all(packed.weights[0] == _packed_and_loose()[1].weights[0] - 0.5)  # the new array was updated


def test_a_copied_optimizer_carries_its_own_state():
    """deepcopy and pickle keep the per-array state; the copy packs it again and goes on alike."""
    import copy
    import pickle

    net, packed, _ = _packed_and_loose()
    data = _problem()[2]
    compiled = CompiledNetwork(net)
    original = get_optimizer("momentum", learning_rate=0.05)
    original.step(packed, compiled.gradient(packed, data))
    for clone in (copy.deepcopy(original), pickle.loads(pickle.dumps(original))):
        mine, theirs = packed.copy(), packed.copy()
        reference = copy.deepcopy(original)
        out = Gradients.zeros_like(mine)
        for _ in range(2):
            clone.step(mine, compiled.loss_and_gradient(mine, data.X, data.Y, out=out)[1])  # packed: one buffer
            reference.step(theirs, compiled.gradient(theirs, data))  # per array
        assert mine == theirs
        for key, value in reference.state_dict().items():
            np.testing.assert_array_equal(clone.state_dict()[key], value)


def test_state_of_another_network_is_a_clear_error():
    net, packed, loose = _packed_and_loose()
    data = _problem()[2]
    optimizer = get_optimizer("momentum", learning_rate=0.05)
    state = {"steps": np.array(1), "velocity/0": np.zeros(1), "velocity/1": np.zeros((2, 4)),
             "velocity/2": np.zeros(4), "velocity/3": np.zeros(2)}
    for params in (packed, loose):
        optimizer.load_state_dict(state)
        with pytest.raises(SpecError, match="belongs to another network"):
            optimizer.step(params, CompiledNetwork(net).gradient(params, data))
