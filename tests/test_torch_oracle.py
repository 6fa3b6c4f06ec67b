"""PyTorch (CPU, float64) autograd as a third oracle for the derived gradients."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symback
from symback import Dataset, Network, Parameters, derive

from .tools import require_module

TORCH_ACTIVATIONS = {
    "identity": lambda t, z: z,
    "sigmoid": lambda t, z: t.sigmoid(z),
    "tanh": lambda t, z: t.tanh(z),
    "relu": lambda t, z: t.relu(z),
    "leaky_relu": lambda t, z: t.nn.functional.leaky_relu(z, 0.01),
    "softplus": lambda t, z: t.nn.functional.softplus(z),
    "elu": lambda t, z: t.nn.functional.elu(z),
    "silu": lambda t, z: t.nn.functional.silu(z),
    "softmax": lambda t, z: t.softmax(z, dim=1),
}

TORCH_COSTS = {
    "squared_error": lambda t, a, y: ((a - y) ** 2).sum(1).mean(),
    "half_squared_error": lambda t, a, y: (0.5 * (a - y) ** 2).sum(1).mean(),
    "ssr": lambda t, a, y: ((y - a) ** 2).sum(),
    "mse": lambda t, a, y: ((a - y) ** 2).mean(),
    "binary_cross_entropy": lambda t, a, y: t.nn.functional.binary_cross_entropy(a, y, reduction="sum") / a.shape[0],
    "categorical_cross_entropy": lambda t, a, y: -(y * t.log(a)).sum(1).mean(),
}


@st.composite
def torch_networks(draw):
    depth = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 4)) for _ in range(depth + 1)]
    activations = [draw(st.sampled_from(sorted(set(TORCH_ACTIVATIONS) - {"softmax"}))) for _ in range(depth)]
    cost = draw(st.sampled_from(sorted(TORCH_COSTS)))
    if cost == "binary_cross_entropy":
        activations[-1] = "sigmoid"
    if cost == "categorical_cross_entropy":
        activations[-1] = "softmax"
        sizes[-1] = max(2, sizes[-1])
    return Network(sizes, activations, cost)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=torch_networks(), seed=st.integers(0, 2**16))
def test_gradients_match_torch_autograd(network, seed):
    torch = require_module("torch")
    rng = np.random.default_rng(seed)
    params = Parameters.initialize(network, "xavier", seed=seed)
    for bias in params.biases:
        bias[:] = rng.normal(scale=0.3, size=bias.shape)
    X = rng.normal(size=(5, network.sizes[0]))
    if network.cost.name == "categorical_cross_entropy":
        Y = np.eye(network.sizes[-1])[rng.integers(0, network.sizes[-1], 5)]
    elif network.cost.name == "binary_cross_entropy":
        Y = rng.integers(0, 2, size=(5, network.sizes[-1])).astype(float)
    else:
        Y = rng.normal(size=(5, network.sizes[-1]))
    data = Dataset.from_arrays(X, Y)

    weights = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in params.weights]
    biases = [torch.tensor(b, dtype=torch.float64, requires_grad=True) for b in params.biases]
    a = torch.tensor(X)
    for activation, W, b in zip(network.activations, weights, biases):
        a = TORCH_ACTIVATIONS[activation.name](torch, a @ W.T + b)
    loss = TORCH_COSTS[network.cost.name](torch, a, torch.tensor(Y))
    loss.backward()

    compiled = symback.CompiledNetwork(network)
    assert compiled.cost(params, data) == pytest.approx(loss.item(), rel=1e-10)
    gradients = compiled.gradient(params, data)
    # Elementwise and relative: a small entry is held to its own size, not to the gradient's norm.
    for mine, theirs in zip(gradients.weights + gradients.biases, weights + biases):
        assert_elementwise_close(mine, theirs.grad.numpy())
    # And the derivation objects themselves, for one weight of the first layer.
    ref = symback.NodeRef("w", 1, 0, 0)
    for form in ("explicit", "indexed"):
        value = derive(network, ref, form=form).value(params, data)
        assert_elementwise_close(np.array([value]), weights[0].grad[0, 0].numpy().reshape(1))


#: Relative tolerance of every entry; below FLOOR an entry is compared absolutely (a float64 sum of
#: terms near 1 that cancel to 1e-300 carries no relative digits in either implementation).
RTOL, FLOOR = 1e-9, 1e-300


def assert_elementwise_close(mine: np.ndarray, theirs: np.ndarray) -> None:
    error = np.abs(mine - theirs)
    allowed = RTOL * np.maximum(np.abs(theirs), FLOOR)
    assert np.all(error <= allowed), f"worst relative error {np.max(error / np.maximum(np.abs(theirs), FLOOR)):.3g}"
