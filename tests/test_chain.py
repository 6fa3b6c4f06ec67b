"""symback.symbolic.chain: the δ recursion and parameter gradients derived from the layers' formulas, and the
derived partials = compiled gradients = high-precision central differences = PyTorch autograd."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symback import CompiledNetwork, Dataset, Network, Parameters, derive
from symback.errors import SpecError
from symback.symbolic.chain import collapse, delta_recursion, derive_backward, explicit_paths, indexed_chain
from symback.symbolic.model import ExplicitModel, IndexedModel

from .tools import require_module


def test_dense_delta_recursion_is_sum_of_w_delta_times_sigma_prime():
    net = Network([4, 3, 5, 2], "sigmoid", "squared_error")
    backward = derive_backward(net)
    im = backward.model
    for layer in (1, 2):
        k = backward.own_index[layer]
        j = backward.neuron_index[layer + 1]
        w, delta = im.weights[layer + 1], backward.delta[layer + 1]
        sigma_prime = net.activation(layer).derivative_at(im.zs[layer][k])
        expected = sigma_prime * sp.Sum(w[j, k] * delta[j], (j, 0, net.sizes[layer + 1] - 1))
        assert delta_recursion(backward, layer) == expected


def test_parameter_gradients_are_delta_times_input():
    net = Network([3, 2, 2], "tanh", "half_squared_error")
    backward = derive_backward(net)
    im = backward.model
    for layer in (1, 2):
        j, k = backward.parameter_indices[layer]["w"]
        assert backward.gradients[layer]["w"] == backward.delta[layer][j] * im.activations[layer - 1][k]
        (jb,) = backward.parameter_indices[layer]["b"]
        assert backward.gradients[layer]["b"] == backward.delta[layer][jb]


def test_output_adjoint_is_the_cost_derivative():
    backward = derive_backward(Network([2, 3], "identity", "half_squared_error"))
    k = backward.own_index[1]
    assert backward.output_adjoint == backward.model.activations[1][k] - backward.model.targets[k]


def test_residual_gives_the_gradient_highway():
    net = Network([3, 3, 3, 3, 2], "tanh", "squared_error", skips={3: 1})
    backward = derive_backward(net)
    im = backward.model
    k, j = backward.own_index[1], backward.neuron_index[2]
    highway = backward.nabla[3][k]  # ∂C/∂a(3), carried back unchanged to a(1)
    through_w = sp.Sum(im.weights[2][j, k] * backward.delta[2][j], (j, 0, 2))
    assert backward.adjoints[1] == through_w + highway
    # δ(1) = σ'(z(1))·(Σ_j w(2)_jk δ(2)_j + ∇a(3)_k): the highway term survives the recursion
    assert delta_recursion(backward, 1) == net.activation(1).derivative_at(im.zs[1][k]) * (through_w + highway)
    # layers the skip does not touch keep the plain recursion
    j3, k2 = backward.neuron_index[3], backward.own_index[2]
    assert backward.adjoints[2] == sp.Sum(im.weights[3][j3, k2] * backward.delta[3][j3], (j3, 0, 2))


def test_softmax_delta_is_its_jacobian_contracted_in_a():
    net = Network([2, 4], "softmax", "squared_error")
    backward = derive_backward(net)
    a, g = backward.model.activations[1], backward.nabla[1]
    k = backward.own_index[1]
    j = sp.Idx("j", 4)
    assert sp.simplify(backward.deltas[1] - (a[k] * g[k] - a[k] * sp.Sum(a[j] * g[j], (j, 0, 3)))) == 0
    assert not backward.deltas[1].has(sp.exp)


def test_relu_delta_keeps_sigma_prime_a_factor():
    net = Network([2, 3, 1], ["relu", "identity"], "squared_error")
    backward = derive_backward(net)
    k = backward.own_index[1]
    z = backward.model.zs[1][k]
    assert backward.deltas[1] == backward.nabla[1][k] * sp.Piecewise((1, z > 0), (0, True))


def test_collapse_keeps_sums_symbolic_whatever_the_width():
    """The derived recursion of a 2-wide and a 600-wide layer differ only in the Idx ranges."""
    small = derive_backward(Network([3, 2, 2, 2], "sigmoid", "squared_error"))
    wide = derive_backward(Network([3, 600, 600, 2], "sigmoid", "squared_error"))
    for layer in (1, 2):
        assert sp.count_ops(small.adjoints[layer]) == sp.count_ops(wide.adjoints[layer])
        assert sp.count_ops(small.deltas[layer]) == sp.count_ops(wide.deltas[layer])
    assert not wide.adjoints[1].has(sp.Indexed(wide.delta[2], 599))  # no entry written out


def test_collapse_fires_deltas_term_by_term():
    j, k = sp.Idx("j", 5), sp.Idx("k", 5)
    f, g = sp.IndexedBase("f"), sp.IndexedBase("g")
    summed = sp.Sum((f[j] + g[j]) * sp.KroneckerDelta(j, k) + 3 * f[j], j)
    assert collapse(summed) == f[k] + g[k] + 3 * sp.Sum(f[j], (j, 0, 4))


def test_indexed_chain_refuses_a_target_below_a_skip():
    net = Network([2, 2, 2, 2], "tanh", "squared_error", skips={3: 1})
    with pytest.raises(SpecError, match="skip edge"):
        indexed_chain(IndexedModel(net), net.resolve("w(1)_0_0"))
    factors, _, _ = indexed_chain(IndexedModel(net), net.resolve("w(3)_0_0"))
    assert len(factors) == 3  # above the skip: C ← a(3) ← z(3) ← w(3)
    with pytest.raises(SpecError, match="skip edge"):
        derive(net, "w(1)_0_0", form="indexed")


def test_explicit_paths_follow_the_skip_edge():
    net = Network([1, 1, 1, 1], "tanh", "squared_error", skips={3: 1})
    paths = explicit_paths(ExplicitModel(net), net.resolve("b(1)"))
    # through z(2), z(3) and through the skip a(1) → a(3)
    assert len(paths) == 2
    assert sorted(len(path) for path in paths) == [4, 7]  # C←a(3)←a(1)←z(1)←b(1), and C←a(3)←z(3)←a(2)←z(2)←a(1)←z(1)←b(1)


# -- oracles ----------------------------------------------------------------------------------------

SMOOTH = ["identity", "sigmoid", "tanh", "softplus", "silu"]
COSTS = ["squared_error", "half_squared_error", "ssr", "mse"]


def _mp_activation(name, z):
    if name == "identity":
        return z
    if name == "sigmoid":
        return 1 / (1 + mpmath.exp(-z))
    if name == "tanh":
        return mpmath.tanh(z)
    if name == "softplus":
        return mpmath.log(1 + mpmath.exp(z))
    return z / (1 + mpmath.exp(-z))  # silu


def _mp_cost(network, weights, biases, X, Y):
    """The cost in 40-digit arithmetic, written from the textbook formulas (no symback code)."""
    skips = network.skips
    total = mpmath.mpf(0)
    for x, y in zip(X, Y):
        acts = [[mpmath.mpf(float(v)) for v in x]]
        for layer, (W, b) in enumerate(zip(weights, biases), start=1):
            name = network.activations[layer - 1].name
            out = []
            for j in range(len(W)):
                z = sum((W[j][k] * acts[-1][k] for k in range(len(W[j]))), mpmath.mpf(0)) + b[j]
                value = _mp_activation(name, z)
                if layer in skips:
                    value += acts[skips[layer]][j]
                out.append(value)
            acts.append(out)
        a = acts[-1]
        terms = [(a[j] - float(y[j])) ** 2 for j in range(len(a))]
        cost = network.cost.name
        example = sum(terms) / (2 if cost == "half_squared_error" else 1)
        total += example / (len(a) if cost == "mse" else 1)
    return total / (1 if network.cost.name == "ssr" else len(X))


def _mp_gradient(network, params, data):
    """Central differences of the 40-digit cost, h = 1e-15: truncation ~1e-30, far below 1e-8."""
    weights = [[[mpmath.mpf(float(v)) for v in row] for row in W] for W in params.weights]
    biases = [[mpmath.mpf(float(v)) for v in b] for b in params.biases]
    h = mpmath.mpf("1e-15")

    def cost():
        return _mp_cost(network, weights, biases, data.X, data.Y)

    def central(holder, index):
        saved = holder[index]
        holder[index] = saved + h
        up = cost()
        holder[index] = saved - h
        down = cost()
        holder[index] = saved
        return float((up - down) / (2 * h))

    dW = [np.array([[central(row, k) for k in range(len(row))] for row in W]) for W in weights]
    db = [np.array([central(b, j) for j in range(len(b))]) for b in biases]
    return dW, db


@st.composite
def dense_or_residual_networks(draw):
    depth = draw(st.integers(1, 4))
    width = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 3))] + [width] * (depth - 1) + [draw(st.integers(1, 3))]
    skips = {}
    for layer in range(2, depth + 1):
        source = draw(st.integers(0, layer - 2))
        if sizes[source] == sizes[layer] and draw(st.booleans()):
            skips[layer] = source
    activations = [draw(st.sampled_from(SMOOTH)) for _ in range(depth)]
    return Network(sizes, activations, draw(st.sampled_from(COSTS)), skips=skips)


TORCH = {
    "identity": lambda t, z: z,
    "sigmoid": lambda t, z: t.sigmoid(z),
    "tanh": lambda t, z: t.tanh(z),
    "softplus": lambda t, z: t.logaddexp(t.zeros_like(z), z),
    "silu": lambda t, z: t.nn.functional.silu(z),
}


def _torch_gradient(network, params, data):
    torch = require_module("torch")
    weights = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in params.weights]
    biases = [torch.tensor(b, dtype=torch.float64, requires_grad=True) for b in params.biases]
    acts = [torch.tensor(data.X, dtype=torch.float64)]
    for layer, (activation, W, b) in enumerate(zip(network.activations, weights, biases), start=1):
        a = TORCH[activation.name](torch, acts[-1] @ W.T + b)
        if layer in network.skips:
            a = a + acts[network.skips[layer]]
        acts.append(a)
    squares = (acts[-1] - torch.tensor(data.Y, dtype=torch.float64)) ** 2
    cost = network.cost.name
    per_example = squares.sum(1) / (2 if cost == "half_squared_error" else 1) / (squares.shape[1] if cost == "mse" else 1)
    loss = per_example.sum() if cost == "ssr" else per_example.mean()
    loss.backward()
    return [w.grad.numpy() for w in weights], [b.grad.numpy() for b in biases]


def _close(mine, theirs, rtol=1e-8, floor=1e-12):
    error = np.abs(np.asarray(mine) - np.asarray(theirs))
    assert np.all(error <= rtol * np.maximum(np.abs(theirs), floor)), (mine, theirs)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=dense_or_residual_networks(), seed=st.integers(0, 2**16))
def test_derived_compiled_finite_differences_and_torch_agree(network, seed):
    rng = np.random.default_rng(seed)
    params = Parameters.initialize(network, "xavier", seed=seed)
    for bias in params.biases:
        bias[:] = rng.normal(scale=0.3, size=bias.shape)
    data = Dataset.from_arrays(rng.normal(size=(3, network.sizes[0])), rng.normal(size=(3, network.sizes[-1])))
    compiled = CompiledNetwork(network).gradient(params, data)
    with mpmath.workdps(40):
        numeric_w, numeric_b = _mp_gradient(network, params, data)
    torch_w, torch_b = _torch_gradient(network, params, data)
    for mine, numeric, theirs in zip(compiled.weights + compiled.biases, numeric_w + numeric_b, torch_w + torch_b):
        _close(mine, numeric)
        _close(theirs, numeric)
    # The derivation itself (every path written out, evaluated) for the first and last parameters.
    refs = list(network.parameter_refs())
    for ref in (refs[0], refs[-1]):
        value = derive(network, ref, form="explicit").value(params, data)
        array = numeric_w if ref.kind == "w" else numeric_b
        index = (ref.j, ref.k) if ref.kind == "w" else (ref.j,)
        _close(np.array([value]), np.array([array[ref.layer - 1][index]]))


@pytest.mark.parametrize("cost", ["mse", "ssr", "squared_error"])
def test_a_skip_into_the_output_layer_carries_the_reduced_highway(cost):
    """∇a(L) read by the highway is reduced over examples and outputs exactly as δ(L) is."""
    network = Network([2, 2, 2, 2], ["tanh", "sigmoid", "identity"], cost, skips={3: 1})
    rng = np.random.default_rng(11)
    params = Parameters.initialize(network, "xavier", seed=4)
    data = Dataset.from_arrays(rng.normal(size=(4, 2)), rng.normal(size=(4, 2)))
    compiled = CompiledNetwork(network).gradient(params, data)
    with mpmath.workdps(40):
        numeric_w, numeric_b = _mp_gradient(network, params, data)
    for mine, numeric in zip(compiled.weights + compiled.biases, numeric_w + numeric_b):
        _close(mine, numeric)
