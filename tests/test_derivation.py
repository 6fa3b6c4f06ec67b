"""Every derived partial against independent oracles: finite differences, a hand-written NumPy
backprop (tests/reference.py), SymPy's own diff of the fully expanded cost, and PyTorch when installed."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import symback
from symback import Dataset, Network, NodeRef, Parameters, derive

from . import reference

ELEMENTWISE = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "elu", "silu"]
USER_ACTIVATIONS = [{"formula": "z/(1+exp(-z))"}, {"formula": "log(1 + z^2) + z/2"}, {"formula": "tanh(z)*0.5 + z"}]
COSTS = ["squared_error", "half_squared_error", "ssr", "mse"]
USER_COSTS = [{"formula": "(a - y)^2 + (a - y)^4", "reduction": "sum"}, {"formula": "log(cosh(a - y))"}]


@st.composite
def networks(draw, max_depth=3, max_width=3):
    """A random small network: mixed registered and user-formula activations and costs."""
    depth = draw(st.integers(1, max_depth))
    sizes = [draw(st.integers(1, max_width)) for _ in range(depth + 1)]
    activations = [draw(st.sampled_from(ELEMENTWISE + USER_ACTIVATIONS)) for _ in range(depth)]
    kind = draw(st.sampled_from(["plain", "user", "bce", "cce"]))
    if kind == "plain":
        cost = draw(st.sampled_from(COSTS))
    elif kind == "user":
        cost = draw(st.sampled_from(USER_COSTS))
    elif kind == "bce":
        activations[-1], cost = "sigmoid", "binary_cross_entropy"
    else:
        sizes[-1] = max(sizes[-1], 2)
        activations[-1], cost = "softmax", "categorical_cross_entropy"
    return Network(sizes, activations, cost)


def _problem(network, seed, n_examples=4):
    rng = np.random.default_rng(seed)
    params = Parameters.initialize(network, "xavier", seed=seed)
    rng_bias = np.random.default_rng(seed + 1)
    for bias in params.biases:
        bias[:] = rng_bias.normal(scale=0.5, size=bias.shape)
    X = rng.normal(size=(n_examples, network.sizes[0]))
    if network.cost.name == "categorical_cross_entropy":
        Y = np.eye(network.sizes[-1])[rng.integers(0, network.sizes[-1], n_examples)]
    elif network.cost.name == "binary_cross_entropy":
        Y = rng.integers(0, 2, size=(n_examples, network.sizes[-1])).astype(float)
    else:
        Y = rng.normal(size=(n_examples, network.sizes[-1]))
    return params, Dataset.from_arrays(X, Y)


_COMPILED: dict[int, tuple] = {}


def _compiled(network):
    """The network's CompiledNetwork, made once per network object (a hypothesis example asks for it
    once per parameter and per tolerance: compiling it each time was most of this module's time)."""
    if id(network) not in _COMPILED or _COMPILED[id(network)][0] is not network:
        if len(_COMPILED) > 64:
            _COMPILED.clear()
        _COMPILED[id(network)] = (network, symback.CompiledNetwork(network))
    return _COMPILED[id(network)][1]


def _finite_difference(network, params, data, ref, h=1e-4):
    """Fourth-order central difference (-f(2h) + 8f(h) - 8f(-h) + f(-2h)) / 12h of the cost."""
    compiled = _compiled(network)

    def cost_at(offset):
        moved = params.copy()
        moved.set(ref, params.get(ref) + offset)
        return compiled.cost(moved, data)

    return (-cost_at(2 * h) + 8 * cost_at(h) - 8 * cost_at(-h) + cost_at(-2 * h)) / (12 * h)


def _close(network, params, data):
    """Tolerance of a finite difference: truncation O(h^4) plus round-off, which grows with |C| / h."""
    scale = abs(_compiled(network).cost(params, data))
    return {"rel": 1e-5, "abs": 1e-7 + 1e-10 * scale}


KINKED = {"relu", "leaky_relu", "elu"}


def _away_from_kinks(network, params, data, margin=1e-3):
    """No weighted input of a ReLU-like layer within ``margin`` of its kink at 0, where a finite
    difference straddles two slopes and no derivative oracle applies."""
    forward = _compiled(network).forward(params, data.X)
    return all(
        activation.name not in KINKED or np.min(np.abs(z)) > margin
        for activation, z in zip(network.activations, forward.zs)
    )


def _gradient_entry(gradients, ref):
    if ref.kind == "w":
        return gradients.weights[ref.layer - 1][ref.j, ref.k]
    return gradients.biases[ref.layer - 1][ref.j]


def _is_referenced(network):
    names = {a.name for a in network.activations}
    return names <= set(reference.ACTIVATIONS) | {"softmax"} and (
        network.cost.name in reference.COSTS or network.cost.name == "categorical_cross_entropy"
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=networks(), seed=st.integers(0, 2**16))
def test_compiled_gradient_matches_finite_differences_and_reference(network, seed):
    params, data = _problem(network, seed)
    assume(_away_from_kinks(network, params, data))
    gradients = _compiled(network).gradient(params, data)
    for ref in network.parameter_refs():
        numeric = _finite_difference(network, params, data, ref)
        assert _gradient_entry(gradients, ref) == pytest.approx(numeric, **_close(network, params, data)), ref
    if _is_referenced(network):
        cost, dW, db = reference.gradients(
            network.sizes, [a.name for a in network.activations], network.cost.name,
            params.weights, params.biases, data.X, data.Y,
        )
        assert _compiled(network).cost(params, data) == pytest.approx(cost, rel=1e-12)
        for mine, theirs in zip(gradients.weights + gradients.biases, dW + db):
            np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-12)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=networks(max_depth=3, max_width=2), seed=st.integers(0, 2**16), pick=st.data())
def test_derivation_value_matches_finite_differences_in_both_forms(network, seed, pick):
    params, data = _problem(network, seed)
    assume(_away_from_kinks(network, params, data))
    refs = list(network.parameter_refs())
    for ref in pick.draw(st.lists(st.sampled_from(refs), min_size=1, max_size=3, unique=True)):
        numeric = _finite_difference(network, params, data, ref)
        explicit = derive(network, ref, form="explicit")
        indexed = derive(network, ref, form="indexed")
        assert explicit.value(params, data) == pytest.approx(numeric, **_close(network, params, data))
        assert indexed.value(params, data) == pytest.approx(numeric, **_close(network, params, data))


@pytest.mark.parametrize(
    ("activation", "cost"),
    [(a, "squared_error") for a in ELEMENTWISE + USER_ACTIVATIONS] + [("tanh", c) for c in COSTS + USER_COSTS],
    ids=str,
)
def test_explicit_expression_equals_sympy_diff_of_the_expanded_cost(activation, cost):
    """The assembled chain-rule product, fully substituted, is what SymPy's diff of C gives."""
    network = Network([2, 2, 1], [activation, "tanh"], cost)
    model = symback.ExplicitModel(network)
    cost_expression = model.forward_expressions[NodeRef("C")]
    symbols = sorted(cost_expression.free_symbols, key=str)
    point = np.random.default_rng(7).normal(size=len(symbols))
    for ref in (NodeRef("w", 1, 1, 0), NodeRef("b", 1, 0), NodeRef("w", 2, 0, 1)):
        derived = derive(network, ref, form="explicit").expression
        oracle = sp.diff(cost_expression, model.symbols[ref])
        assert derived.free_symbols <= set(symbols)
        value = symback.lambdify(symbols, derived)(*point)
        assert value == pytest.approx(symback.lambdify(symbols, oracle)(*point), rel=1e-10)


def test_seed002_dssr_db3_is_minus_15_7_in_the_users_names(seed002):
    derivation = derive(seed002.network, "b3")
    value = derivation.value(seed002.parameters, seed002.data)
    assert round(value, 1) == -15.7
    assert value == pytest.approx(-15.655, abs=5e-4)
    (path,) = derivation.paths
    assert [f.notation for f in path] == ["∂SSR/∂predicted", "∂predicted/∂z(L)", "∂z(L)/∂b3"]
    observed, predicted = sp.symbols("observed predicted", real=True)
    assert sp.simplify(path[0].derivative - (-2 * (observed - predicted))) == 0
    assert path[1].derivative == 1 and path[2].derivative == 1
    # The sum over examples: dSSR/db3 = Σ −2(observed_i − predicted_i).
    assert derivation.reduction == "sum"
    per_example = derivation.evaluate(seed002.parameters, seed002.data).examples
    predictions = symback.CompiledNetwork(seed002.network).predict(seed002.parameters, seed002.data.X)[:, 0]
    np.testing.assert_allclose(per_example, -2 * (seed002.data.Y[:, 0] - predictions))


def test_seed002_first_weight_speaks_in_user_names(seed002):
    derivation = derive(seed002.network, "w1")
    names = {str(s) for s in derivation.product.free_symbols}
    assert {"w3", "input", "observed", "predicted"} <= names


def test_chain_of_three_blue_one_brown(chain_network):
    d = derive(chain_network, "w(L)")
    assert d.chain_notation() == "∂C/∂a(L) · ∂a(L)/∂z(L) · ∂z(L)/∂w(L)"
    a_prev = sp.Symbol("a(L-1)", real=True)
    assert d.paths[0][2].derivative == a_prev
    assert derive(chain_network, "b(L)").paths[0][2].derivative == 1
    assert derive(chain_network, "a(L-1)").paths[0][2].derivative == sp.Symbol("w(L)", real=True)
    # Earlier layers go through every layer: 3 factors per later layer.
    assert len(derive(chain_network, "w(L-2)").paths[0]) == 7


def test_sum_over_paths_for_an_earlier_activation():
    """Seed 001: a(L-1)_k reaches C through every neuron j of layer L, and the derivation sums them."""
    network = Network([2, 3, 2], "sigmoid", "squared_error")
    d = derive(network, "a(L-1)_1")
    assert len(d.paths) == 2
    assert [str(i.label) for i in d.sum_indices] == ["j"]
    assert d.chain_notation(indexed=True) == "Σ_j ∂C/∂a(L)[j] · ∂a(L)[j]/∂z(L)[j] · ∂z(L)[j]/∂a(L-1)[k]"
    params, data = _problem(network, 3)
    h = 1e-6
    compiled = symback.CompiledNetwork(network)
    forward = compiled.forward(params, data.X)
    # Finite difference on the activation itself: perturb a(L-1)_1 and re-run the last layer.
    def cost_with(a_hidden):
        z = a_hidden @ params.weights[1].T + params.biases[1]
        a = 1 / (1 + np.exp(-z))
        return ((a - data.Y) ** 2).sum(axis=1)
    bumped_up, bumped_down = forward.activations[1].copy(), forward.activations[1].copy()
    bumped_up[:, 1] += h
    bumped_down[:, 1] -= h
    numeric = (cost_with(bumped_up) - cost_with(bumped_down)) / (2 * h)
    np.testing.assert_allclose(d.evaluate(params, data).examples, numeric, rtol=1e-6)
    np.testing.assert_allclose(derive(network, "a(L-1)_1", form="indexed").evaluate(params, data).examples, numeric, rtol=1e-6)


def test_softmax_jacobian_is_derived_in_index_form():
    network = Network([2, 3], "softmax", "categorical_cross_entropy")
    d = derive(network, "z(L)_0", form="indexed")
    jacobian = d.chain[1].derivative
    a = d.chain[1].of.base
    q, j = d.chain[1].of.indices[0], d.chain[1].wrt.indices[0]
    assert sp.simplify(jacobian - a[q] * (sp.KroneckerDelta(q, j) - a[j])) == 0


def test_large_network_uses_index_form_with_counts():
    network = Network([625, 20, 20, 10], "sigmoid", "squared_error")
    assert (network.n_weights, network.n_biases) == (13_100, 50)
    d = derive(network, "w(1)_3_7")
    assert d.form == "indexed"
    assert len(d.chain) == 7 and len(d.sum_indices) == 2
    params = Parameters.initialize(network, seed=0)
    rng = np.random.default_rng(0)
    data = Dataset.from_arrays(rng.random((5, 625)), np.eye(10)[rng.integers(0, 10, 5)])
    ref = network.resolve("w(1)_3_7")
    assert d.value(params, data) == pytest.approx(_finite_difference(network, params, data, ref), rel=1e-5, abs=1e-9)


def test_backprop_equations_are_nielsens_bp1_to_bp4():
    network = Network([3, 4, 2], ["tanh", "sigmoid"], "half_squared_error")
    eqs = symback.backprop_equations(network)
    z = sp.Symbol("z", real=True)
    a_L, y, z_L = (sp.IndexedBase(n, real=True) for n in ("a(L)", "y", "z(L)"))
    j = sp.Idx("j", 2)
    expected = (a_L[j] - y[j]) * sp.diff(1 / (1 + sp.exp(-z)), z).subs(z, z_L[j])
    assert sp.simplify(eqs.output.rhs - expected) == 0
    hidden = eqs.hidden[1].rhs
    assert hidden.has(sp.IndexedBase("delta(L)", real=True)) and hidden.has(sp.IndexedBase("w(L)", real=True))
    assert str(eqs.weight[2].rhs) == "a(L-1)[k]*delta(L)[j]"
    assert eqs.bias[1].rhs == eqs.deltas[1][sp.Idx("j", 4)]
    # The hidden layer is tanh: its derivative is named tanh′, not σ′ (issue 12's notation slips).
    assert str(eqs.matrix["BP2"].rhs) == "HadamardProduct(W(L).T*delta(L), tanh'(z(L-1)))"


def test_frozen_parameters_get_zero_gradient_but_are_still_derived(seed002):
    compiled = symback.CompiledNetwork(seed002.network)
    gradients = compiled.gradient(seed002.parameters, seed002.data)
    assert gradients.biases[1][0] == pytest.approx(-15.655, abs=1e-3)
    assert np.all(gradients.weights[0] == 0) and np.all(gradients.weights[1] == 0)
    assert derive(seed002.network, "w1").value(seed002.parameters, seed002.data) != 0


def test_derivation_rejects_inputs_as_targets(seed002):
    with pytest.raises(symback.SpecError, match="weights, biases, z and a"):
        derive(seed002.network, "input")


def test_json_has_factors_expression_and_value(seed002):
    result = derive(seed002.network, "b3").to_dict(seed002.parameters, seed002.data)
    assert [f["notation"] for f in result["factors"]] == ["∂SSR/∂predicted", "∂predicted/∂z(L)", "∂z(L)/∂b3"]
    # Seed 002's own form: −2(observed − predicted), the cost's difference kept in its order.
    assert result["product"]["latex"] == r"- 2 \left(\mathrm{observed} - \mathrm{predicted}\right)"
    assert result["product"]["text"] == "−2(observed − predicted)"
    assert result["product"]["sympy"] == "-2*observed + 2*predicted"  # SymPy's own, still there
    assert round(result["value"], 1) == -15.7
    assert len(result["examples"]) == 3



def test_sum_over_examples_is_a_derived_expression(seed002):
    """Seed 002: dSSR/db3 = Σ_i −2(observed_i − predicted_i), evaluated from its own symbols."""
    derivation = derive(seed002.network, "b3")
    total = derivation.over_examples(3)
    assert isinstance(total, sp.Sum) and total.limits[0][1:] == (1, 3)
    predictions = symback.CompiledNetwork(seed002.network).predict(seed002.parameters, seed002.data.X)[:, 0]
    observed = sp.IndexedBase("observed", real=True)
    predicted = sp.IndexedBase("predicted", real=True)
    values = {observed[i + 1]: seed002.data.Y[i, 0] for i in range(3)}
    values |= {predicted[i + 1]: predictions[i] for i in range(3)}
    assert float(total.doit().xreplace(values)) == pytest.approx(derivation.value(seed002.parameters, seed002.data))
    mean = derive(Network([1, 1], "sigmoid", "squared_error"), "b(L)").over_examples(4)
    assert isinstance(mean, sp.Mul) and sp.Rational(1, 4) in mean.args


def test_deep_networks_get_more_index_letters():
    """Twelve layers after the input need more path indices than there are single letters."""
    network = Network([2] * 13, "tanh", "squared_error")
    d = derive(network, "w(1)_0_1", form="indexed")
    assert len(d.sum_indices) == 11 and len({str(i.label) for i in d.sum_indices}) == 11
    params, data = _problem(network, 5)
    ref = network.resolve("w(1)_0_1")
    assert d.value(params, data) == pytest.approx(_finite_difference(network, params, data, ref), **_close(network, params, data))
