"""Every layer kind, on random small networks mixing kinds (conv1d, conv2d, recurrent, dense), from the
``[[layer]]`` spec form: the derived partials (the chain-rule engine's index expressions, evaluated entry
by entry with SymPy), the compiled gradients (the lowering), central finite differences of the plain
NumPy reference forward pass and PyTorch autograd agree to 1e-8 relative in float64."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symback
from symback import Dataset, Parameters
from symback.spec.layer_table import network_from_tables
from symback.symbolic.chain import derive_backward, grid_tuple
from symback.symbolic.layers_recurrent import LastStep

from . import reference
from .tools import require_module

SMOOTH = ["tanh", "sigmoid", "identity", "softplus"]  # finite differences need no kinks
RTOL = 1e-8


@st.composite
def mixed_networks(draw):
    """(network, input grid): one or two convolution / recurrent layers, a dense readout, a cost."""
    rank = draw(st.sampled_from([2, 3]))
    if rank == 3:
        grid = (draw(st.integers(1, 2)), draw(st.integers(3, 4)), draw(st.integers(3, 4)))
        kinds = ["conv2d"] * draw(st.integers(1, 2))
    else:
        grid = (draw(st.integers(2, 4)), draw(st.integers(2, 4)))
        kinds = draw(st.lists(st.sampled_from(["conv1d", "recurrent"]), min_size=1, max_size=2))
    tables, shape = [], grid
    for kind in kinds:
        activation = draw(st.sampled_from(SMOOTH))
        if kind == "recurrent":
            table = {"kind": kind, "hidden": draw(st.integers(1, 3)), "activation": activation}
            shape = (shape[0], table["hidden"])
        else:
            mode = draw(st.sampled_from(["valid", "same"]))
            kernel = [draw(st.integers(1, min(3, n) if mode == "valid" else 3)) for n in shape[1:]]
            filters = draw(st.integers(1, 2))
            table = {"kind": kind, "filters": filters, "kernel": kernel, "padding": mode, "activation": activation}
            positions = [n - k + 1 if mode == "valid" else n for n, k in zip(shape[1:], kernel)]
            shape = (filters, *positions)
        tables.append(table)
    if draw(st.booleans()):
        tables.append({"size": draw(st.integers(1, 3)), "activation": draw(st.sampled_from(SMOOTH))})
    cost = draw(st.sampled_from(["squared_error", "binary_cross_entropy", "categorical_cross_entropy", "ssr"]))
    outputs = draw(st.integers(2, 3))
    output = {"binary_cross_entropy": "sigmoid", "categorical_cross_entropy": "softmax"}.get(
        cost, draw(st.sampled_from(["identity", "sigmoid"]))
    )
    top = {"size": outputs, "activation": output}
    if tables[-1].get("kind") == "recurrent" and draw(st.booleans()):
        top["reads"] = "last"  # the cost sees the final state only
    tables.append(top)
    return network_from_tables({"inputs": list(grid), "cost": cost}, tables), grid


def _plain_layers(network, params):
    """The network as tests/reference.py's plain tuples (no symback object crosses over)."""
    plain = []
    for layer, W, b in zip(network.layers, params.weights, params.biases):
        f = layer.activation.name
        if layer.kind in ("conv1d", "conv2d"):
            plain.append(("conv", W, b, layer.padding, f))
        elif layer.kind == "recurrent":
            H = layer.hidden
            plain.append(("rnn", W[:, :H], W[:, H:], b, f))
        elif isinstance(layer, LastStep):
            plain.append(("last", W, b, f))
        elif f == "softmax":
            plain.append(("softmax", W, b))
        else:
            plain.append(("dense", W, b, f))
    return plain


def _torch_cost(torch, network, params, X, Y):
    F = torch.nn.functional
    functions = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda z: z, "softplus": F.softplus,
                 "softmax": lambda z: torch.softmax(z, dim=1)}
    weights = [torch.tensor(w, requires_grad=True) for w in params.weights]
    biases = [torch.tensor(b, requires_grad=True) for b in params.biases]
    a = torch.tensor(X)
    for layer, W, b in zip(network.layers, weights, biases):
        f = functions[layer.activation.name]
        if layer.kind in ("conv1d", "conv2d"):
            conv = F.conv1d if layer.kind == "conv1d" else F.conv2d
            with warnings.catch_warnings():  # an even 'same' kernel: PyTorch warns it pads a copy
                warnings.simplefilter("ignore", UserWarning)
                a = f(conv(a, W, b, padding=layer.padding))
        elif layer.kind == "recurrent":
            H = layer.hidden
            h, states = torch.zeros(a.shape[0], H, dtype=torch.float64), []
            for t in range(a.shape[1]):
                h = f(h @ W[:, :H].T + a[:, t] @ W[:, H:].T + b)
                states.append(h)
            a = torch.stack(states, 1)
        elif isinstance(layer, LastStep):
            a = f(a[:, -1] @ W.T + b)
        else:
            a = f(a.reshape(a.shape[0], -1) @ W.reshape(W.shape[0], -1).T + b)
    y = torch.tensor(Y)
    cost = network.cost.name
    if cost == "categorical_cross_entropy":
        loss = -(y * torch.log(a)).sum(1).mean()
    elif cost == "binary_cross_entropy":
        loss = -(y * torch.log(a) + (1 - y) * torch.log(1 - a)).sum(1).mean()
    elif cost == "ssr":
        loss = ((y - a) ** 2).sum()
    else:
        loss = ((a - y) ** 2).sum(1).mean()
    loss.backward()
    return loss.item(), [t.grad.numpy() for t in weights + biases]


def _finite_differences(network, params, X, Y):
    """Fourth-order central differences of the reference cost, every entry (error ~h⁴, h = 1e-3)."""
    h = 1e-3
    arrays = [np.array(a) for a in params.weights + params.biases]
    depth = len(params.weights)

    def cost() -> float:
        rebuilt = Parameters(arrays[:depth], arrays[depth:])
        return reference.stack_cost(_plain_layers(network, rebuilt), X, Y, network.cost.name)

    result = []
    for array in arrays:
        gradient = np.zeros_like(array)
        for index in np.ndindex(*array.shape):
            saved = array[index]
            values = []
            for step in (-2, -1, 1, 2):
                array[index] = saved + step * h
                values.append(cost())
            array[index] = saved
            gradient[index] = (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * h)
        result.append(gradient)
    return result


def _at(expression, mapping):
    return expression.xreplace({i: sp.Integer(v) for i, v in mapping.items()})


def _number(expression, env) -> float:
    """A derived index expression at integer indices: its sums written out, every entry looked up
    (zero outside its array: a shifted read past the edge), evaluated by SymPy."""
    expanded = expression.doit()
    values = {}
    for indexed in expanded.atoms(sp.Indexed):
        array = env[indexed.base]
        index = tuple(int(i) for i in indexed.indices)
        inside = len(index) == array.ndim and all(0 <= i < n for i, n in zip(index, array.shape))
        values[indexed] = sp.Float(float(array[index]), 30) if inside else sp.S.Zero
    return float(expanded.xreplace(values).evalf(30))


def derived_gradients(network, params, X, Y, entries):
    """∂C/∂θ at ``entries`` ({parameter array number: [index, ...]}) from chain.derive_backward's index
    expressions only, evaluated example by example and entry by entry, with z and a from the reference."""
    backward = derive_backward(network)
    im = backward.model
    L = network.depth
    forward = reference.stack_forward(_plain_layers(network, params), X)
    scale = 1.0 / len(X) if network.cost.example_reduction == "mean" else 1.0
    totals = {key: np.zeros(len(indices)) for key, indices in entries.items()}
    for n in range(len(X)):
        env = {im.activations[0]: X[n], im.targets: Y[n]}
        for l in range(1, L + 1):
            z, a = forward[l - 1]
            env[im.zs[l]] = z[n].reshape(network.layers[l - 1].grid)
            env[im.activations[l]] = a[n].reshape(network.layers[l - 1].grid)
            env[im.weights[l]], env[im.biases[l]] = params.weights[l - 1], params.biases[l - 1]
        for l in range(L, 0, -1):
            grid = network.layers[l - 1].grid
            own = grid_tuple(backward.own_index[l])
            env[backward.nabla[l]] = np.zeros(grid)
            env[backward.delta[l]] = np.zeros(grid)
            # last step first: a recurrent layer's ∇h[t] reads its δ[t + 1]
            points = sorted(itertools.product(*(range(g) for g in grid)), reverse=True)
            adjoint = backward.adjoint(l)
            elementwise = network.layers[l - 1].activation.elementwise
            for point in points:
                env[backward.nabla[l]][point] = _number(_at(adjoint, dict(zip(own, point))), env)
                if elementwise:
                    env[backward.delta[l]][point] = _number(_at(backward.deltas[l], dict(zip(own, point))), env)
            if not elementwise:  # softmax: δ reads every ∇a of the layer
                for point in points:
                    env[backward.delta[l]][point] = _number(_at(backward.deltas[l], dict(zip(own, point))), env)
        for key, indices in entries.items():
            l, name = (key % L) + 1, ("w" if key < L else "b")
            expression, letters = backward.gradients[l][name], backward.parameter_indices[l][name]
            for position, index in enumerate(indices):
                totals[key][position] += _number(_at(expression, dict(zip(letters, index))), env) * scale
    return totals


def _close(mine, theirs, what, floor=1e-10):
    """Elementwise 1e-8 relative; an entry below ``floor`` × the array's largest is held to that instead
    (a sum that cancels to ~0 keeps no relative digits, and a difference quotient's error is ~1e-13 of
    the cost's scale whatever the entry)."""
    mine, theirs = np.asarray(mine), np.asarray(theirs)
    floor = floor * max(1e-3, float(np.max(np.abs(theirs))))
    error = np.abs(mine - theirs)
    assert np.all(error <= RTOL * np.maximum(np.abs(theirs), floor)), (
        f"{what}: worst relative error {np.max(error / np.maximum(np.abs(theirs), floor)):.3g}"
    )


def _targets(network, n, rng):
    """n targets the network's cost accepts: one-hot rows, 0/1 entries, or any reals."""
    outputs = network.sizes[-1]
    if network.cost.name == "categorical_cross_entropy":
        return np.eye(outputs)[rng.integers(0, outputs, n)]
    if network.cost.name == "binary_cross_entropy":
        return rng.integers(0, 2, size=(n, outputs)).astype(float)
    return rng.normal(size=(n, outputs))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mixed_networks(), seed=st.integers(0, 2**16))
def test_derived_compiled_finite_differences_and_torch_agree(case, seed):
    torch = require_module("torch")
    network, grid = case
    rng = np.random.default_rng(seed)
    params = Parameters.initialize(network, "xavier", seed=seed)
    for bias in params.biases:
        bias[:] = rng.normal(scale=0.3, size=bias.shape)
    n = 2
    X = rng.normal(size=(n, *grid))
    Y = _targets(network, n, rng)

    compiled = symback.CompiledNetwork(network)
    data = Dataset.from_arrays(X.reshape(n, -1), Y)
    gradients = compiled.gradient(params, data)
    mine = gradients.weights + gradients.biases

    loss, theirs = _torch_cost(torch, network, params, X, Y)
    assert compiled.cost(params, data) == pytest.approx(loss, rel=1e-12)
    for array, torch_array in zip(mine, theirs):
        _close(array, torch_array, "compiled vs torch")
    for array, fd in zip(mine, _finite_differences(network, params, X, Y)):
        _close(array, fd, "compiled vs finite differences", floor=1e-3)
    # derived, entry by entry: two entries of every weight and bias array
    entries = {key: [tuple(int(rng.integers(0, s)) for s in array.shape) for _ in range(2)] for key, array in enumerate(mine)}
    derived = derived_gradients(network, params, X, Y, entries)
    for key, indices in entries.items():
        _close(derived[key], [mine[key][index] for index in indices], f"derived vs compiled, array {key}")


def _float32_case(network, grid, seed):
    rng = np.random.default_rng(seed)
    params = Parameters.initialize(network, "xavier", seed=seed)
    n = 3
    X = rng.normal(size=(n, *grid)).reshape(n, -1)
    return params, Dataset.from_arrays(X, _targets(network, n, rng))


def _residual_network():
    tables = [{"size": 4, "activation": "tanh"}, {"size": 4, "activation": "softplus"},
              {"size": 4, "activation": "sigmoid", "kind": "residual", "skip": 1}, {"size": 2, "activation": "identity"}]
    return network_from_tables({"inputs": 3, "cost": "squared_error"}, tables), (3,)


# float32 carries 24 bits (ε = 6e-8); a gradient of these small networks is a few dozen roundings deep (forward
# sums, the δ recursion, the reduction over examples). Over 30 random mixed networks (162 arrays) the normwise
# error was 1.3e-7 median, 3.0e-6 worst: 1e-4 leaves a factor of 30 over the worst seen and stays far below the
# O(1) error of a wrong formula.
FLOAT32_RTOL = 1e-4


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mixed_networks(), seed=st.integers(0, 2**16))
def test_every_kind_trains_in_float32_all_through_and_agrees_with_float64(case, seed):
    _float32_agrees(*case, seed)


def test_a_residual_network_trains_in_float32_all_through_and_agrees_with_float64():
    _float32_agrees(*_residual_network(), 3)


def _float32_agrees(network, grid, seed):
    params, data = _float32_case(network, grid, seed)
    compiled = symback.CompiledNetwork(network)
    wide = compiled.gradient(params, data)
    narrow = compiled.gradient(params.astype(np.float32), data.astype(np.float32))
    for exact, rounded in zip(wide.weights + wide.biases, narrow.weights + narrow.biases, strict=True):
        assert rounded.dtype == np.float32  # no silent upcast on the way
        scale = max(float(np.linalg.norm(exact)), 1e-6)
        assert float(np.linalg.norm(rounded.astype(np.float64) - exact)) <= FLOAT32_RTOL * scale
    from symback.training.train import Trainer, TrainingConfig

    config = TrainingConfig(epochs=2, batch_size=2, learning_rate=0.05, dtype="float32", progress=False)
    result = Trainer(network, config, compiled=compiled).fit(params, data)
    trained = result.parameters.weights + result.parameters.biases
    assert all(array.dtype == np.float32 and np.all(np.isfinite(array)) for array in trained)
    assert result.steps == 4
