"""The compiled kernels: σ' in the output's terms, stable rewrites, fused output δ, dtypes, and the
625-20-20-10 network's gradient against finite differences and tests/reference.py.

(tests/test_derivation.py already checks random small networks of every activation and cost against
finite differences and the reference; this file checks what the compiler adds on top.)"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import symback
from symback import Dataset, Network, Parameters
from symback.compile.compiler import (
    COMPLEMENT,
    CompiledNetwork,
    Gradients,
    _NumPyPrinter,
    _sharing_subexpressions,
    derivative_in_output,
    lambdify,
    logistic,
    logistic_array,
    softplus,
    stabilize,
)
from symback.symbolic.activations import Z, activation_from_formula, get_activation
from symback.symbolic.costs import A, Y

from . import reference

ELEMENTWISE = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "elu", "silu"]
GRID = np.linspace(-6, 6, 49)


@pytest.mark.parametrize(
    "name, expected",
    [("sigmoid", A * (1 - A)), ("tanh", 1 - A**2), ("identity", sp.Integer(1))],
)
def test_derivative_in_output_is_found_by_solving(name, expected):
    found = derivative_in_output(get_activation(name).formula)
    assert sp.expand(found - expected) == 0


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "softplus", "silu"])
def test_no_output_form_where_none_is_cheaper(name):
    assert derivative_in_output(get_activation(name).formula) is None


def test_user_formula_for_tanh_gets_the_same_output_form():
    found = derivative_in_output(activation_from_formula("2/(1+exp(-2*z)) - 1").formula)
    assert sp.expand(found - (1 - A**2)) == 0


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_output_form_equals_sigma_prime_numerically(name):
    activation = get_activation(name)
    kernels = CompiledNetwork(Network([1, 1], activation, "squared_error")).layers[0]
    z = GRID.reshape(-1, 1)
    a = kernels.forward(z)
    expected = np.array([float(activation.derivative.subs(Z, v)) if v != 0 or name not in ("relu", "leaky_relu", "elu") else np.nan for v in GRID]).reshape(-1, 1)
    got = kernels.sigma_prime(z, a)
    mask = ~np.isnan(expected)
    np.testing.assert_allclose(got[mask], expected[mask], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.ravel(), [float(activation.formula.subs(Z, v)) for v in GRID], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "silu"])
def test_stable_rewrite_is_proven_equal_symbolically(name):
    formula = get_activation(name).formula
    stable = stabilize(formula)
    assert stable != formula  # the rewrite did something
    assert sp.simplify((stable.rewrite(sp.exp) - formula).rewrite(sp.exp)) == 0


def test_softplus_prints_as_logaddexp_and_differentiates_to_the_stable_sigmoid():
    z = sp.Symbol("z", real=True)
    source = sp.printing.numpy.NumPyPrinter().doprint(softplus(z))
    assert source == "numpy.logaddexp(0, z)"
    assert sp.simplify((softplus(z).diff(z) - 1 / (1 + sp.exp(-z))).rewrite(sp.exp)) == 0


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "silu", "tanh"])
def test_extreme_inputs_give_finite_values_and_no_overflow_warning(name):
    kernels = CompiledNetwork(Network([1, 1], name, "squared_error")).layers[0]
    z = np.array([[-1000.0], [-50.0], [0.0], [50.0], [1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = kernels.forward(z)
        d = kernels.derivative(z)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(d))
    if name == "softplus":
        assert a[-1, 0] == 1000.0 and a[0, 0] == 0.0  # log(1 + e^1000) = 1000 to double precision
        assert d[-1, 0] == 1.0 and d[0, 0] == 0.0
    if name == "sigmoid":
        assert a[0, 0] == 0.0 and a[-1, 0] == 1.0 and a[2, 0] == 0.5


def _generic_delta(compiled, forward, Y):
    """δ(L) through the generic path: compiled ∂C/∂a, then σ' or the softmax Jacobian."""
    grad_a = compiled.output_gradient(forward, Y)
    return compiled.derived_output_delta(forward, grad_a)


def test_softmax_cross_entropy_fused_delta_equals_the_generic_jacobian_path():
    net = Network([3, 4], "softmax", "categorical_cross_entropy")
    compiled = CompiledNetwork(net)
    rng = np.random.default_rng(3)
    params = Parameters.initialize(net, seed=3)
    X = rng.normal(size=(6, 3))
    Y = np.eye(4)[rng.integers(0, 4, 6)]
    forward = compiled.forward(params, X)
    fused = compiled.deltas(params, Dataset(X, Y), forward)[-1]
    np.testing.assert_allclose(fused, _generic_delta(compiled, forward, Y), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fused, forward.output - Y, rtol=1e-12, atol=1e-15)  # Σy = 1


def test_softmax_cross_entropy_is_symbolically_a_sum_y_minus_y():
    """Σ_j ∂(−y_j log a_j)/∂a_j · ∂a_j/∂z_i over an explicit 3-way softmax simplifies to a_i Σy − y_i."""
    zs = sp.symbols("z0:3", real=True)
    ys = sp.symbols("y0:3", real=True)
    outputs = symback.Softmax().layer(list(zs))
    cost = sum(-y * sp.log(a) for y, a in zip(ys, outputs))
    for i in range(3):
        assert sp.simplify(sp.diff(cost, zs[i]) - (outputs[i] * sum(ys) - ys[i])) == 0


def test_hand_written_softmax_rules_equal_the_forms_sympy_derives():
    """The four numeric softmax rules of CompiledNetwork against Softmax.layer and sympy.diff of it."""
    from symback.compile.compiler import _log_softmax, _softmax

    zs = sp.symbols("z0:3", real=True)
    gs = sp.symbols("g0:3", real=True)
    ys = sp.symbols("y0:3", real=True)
    outputs = symback.Softmax().layer(list(zs))
    forward = sp.lambdify([zs], outputs, "numpy")
    logs = sp.lambdify([zs], [sp.log(a) for a in outputs], "numpy")
    # vector-Jacobian product: ∂(Σ_j g_j a_j)/∂z_i
    vjp = sp.lambdify([zs, gs], [sp.diff(sum(g * a for g, a in zip(gs, outputs)), z) for z in zs], "numpy")
    fused = sp.lambdify([zs, ys], [sp.diff(sum(-y * sp.log(a) for y, a in zip(ys, outputs)), z) for z in zs], "numpy")
    rng = np.random.default_rng(5)
    Z_ = rng.normal(scale=3.0, size=(8, 3))
    G = rng.normal(size=(8, 3))
    Y_ = rng.uniform(size=(8, 3))  # not one-hot: a·Σy − y holds for any targets
    a = _softmax(Z_)
    derived = np.array([forward(row) for row in Z_])
    np.testing.assert_allclose(a, derived, rtol=1e-13)
    np.testing.assert_allclose(_log_softmax(Z_), [logs(row) for row in Z_], rtol=1e-12, atol=1e-14)
    compiled = CompiledNetwork(Network([3, 3], "softmax", "categorical_cross_entropy"))
    forward_pass = symback.compile.compiler.ForwardPass([Z_], [Z_, a])
    # the derived softmax Jacobian, lowered (a_k g_k − a_k Σ_j a_j g_j), against SymPy's explicit VJP
    np.testing.assert_allclose(
        compiled.derived_output_delta(forward_pass, G), [vjp(z, g) for z, g in zip(Z_, G)], rtol=1e-11, atol=1e-14
    )
    np.testing.assert_allclose(compiled._output_delta_of(forward_pass, Y_), [fused(z, y) for z, y in zip(Z_, Y_)],
                               rtol=1e-11, atol=1e-14)


def test_softmax_cross_entropy_survives_an_underflowing_probability():
    net = Network([1, 3], "softmax", "categorical_cross_entropy")
    compiled = CompiledNetwork(net)
    params = Parameters([np.array([[1.0], [0.0], [-1.0]])], [np.zeros(3)])
    X = np.array([[800.0]])  # z = (800, 0, −800): the probability of class 2 is exp(−1600) = 0.0
    Y = np.array([[0.0, 0.0, 1.0]])
    data = Dataset(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cost = compiled.cost(params, data)
        gradient = compiled.gradient(params, data)
    assert cost == pytest.approx(1600.0, rel=1e-12)  # −log softmax_2 = 800 + log(1 + e^−800 + e^−1600) − (−800)
    np.testing.assert_allclose(gradient.weights[0].ravel(), [800.0, 0.0, -800.0], rtol=1e-12)


def test_sigmoid_binary_cross_entropy_cancels_to_a_minus_y_and_stays_finite():
    net = Network([1, 1], "sigmoid", "binary_cross_entropy")
    compiled = CompiledNetwork(net)
    # a − y, written in a and c = 1 − a = σ(−z) so that it stays exact where a rounds to 1
    delta = compiled.output_delta_expression
    assert sp.simplify(delta.subs(COMPLEMENT, 1 - A) - (A - sp.Symbol("y", real=True))) == 0
    saturated = compiled.deltas(Parameters([np.array([[1.0]])], [np.zeros(1)]), Dataset(np.array([[40.0]]), np.array([[1.0]])))[-1]
    assert saturated[0, 0] == pytest.approx(-1 / (1 + np.exp(40.0)), rel=1e-15)  # a − y would be 0
    params = Parameters([np.array([[1.0]])], [np.zeros(1)])
    X = np.array([[40.0], [-40.0], [0.5]])  # σ(40) rounds to 1.0: log(1 − a) would be −inf
    Y = np.array([[0.0], [1.0], [1.0]])
    data = Dataset(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        per_example = compiled.example_costs(params, data)
    # −[y log σ(z) + (1 − y) log(1 − σ(z))] = softplus(z) − y z, evaluated with logaddexp.
    expected = np.logaddexp(0, X[:, 0]) - Y[:, 0] * X[:, 0]
    np.testing.assert_allclose(per_example, expected, rtol=1e-13)
    assert per_example[0] == pytest.approx(40.0, rel=1e-15)
    forward = compiled.forward(params, X[2:])
    np.testing.assert_allclose(
        compiled.deltas(params, Dataset(X[2:], Y[2:]))[-1], _generic_delta(compiled, forward, Y[2:]), rtol=1e-12
    )


def _random_problem(sizes, activations, cost, seed, n=16):
    net = Network(sizes, activations, cost)
    rng = np.random.default_rng(seed)
    params = Parameters.initialize(net, "xavier", seed=seed)
    for bias in params.biases:
        bias[:] = rng.normal(scale=0.3, size=bias.shape)
    X = rng.uniform(0, 1, size=(n, sizes[0]))
    if cost == "categorical_cross_entropy":
        Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]
    else:
        Y = rng.uniform(0, 1, size=(n, sizes[-1]))
    return net, params, Dataset(X, Y)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "activations, cost",
    [("sigmoid", "squared_error"), (["tanh", "relu", "softmax"], "categorical_cross_entropy"), ("softplus", "mse")],
)
def test_seed000_size_network_matches_reference_and_finite_differences(activations, cost, seed):
    net, params, data = _random_problem([625, 20, 20, 10], activations, cost, seed)
    compiled = CompiledNetwork(net)
    gradient = compiled.gradient(params, data)
    names = activations if isinstance(activations, list) else [activations] * 3
    total, dW, db = reference.gradients(net.sizes, names, cost, params.weights, params.biases, data.X, data.Y)
    assert compiled.cost(params, data) == pytest.approx(total, rel=1e-12)
    for mine, theirs in zip(gradient.weights + gradient.biases, dW + db):
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-13)
    # central differences along random directions (JAX check_grads style): ⟨∇C, v⟩ = (C(p + hv) − C(p − hv)) / 2h
    rng = np.random.default_rng(seed + 10)
    for _ in range(3):
        direction = [rng.normal(size=w.shape) for w in params.weights] + [rng.normal(size=b.shape) for b in params.biases]
        h = 1e-5

        def moved(sign):
            p = params.copy()
            for array, step in zip(p.weights + p.biases, direction):
                array += sign * h * step
            return compiled.cost(p, data)

        numeric = (moved(1) - moved(-1)) / (2 * h)
        analytic = sum(float(np.vdot(g, v)) for g, v in zip(gradient.weights + gradient.biases, direction))
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softplus", "relu"])
def test_float32_in_float32_out_and_close_to_float64(activation):
    net, params, data = _random_problem([8, 5, 3], activation, "squared_error", seed=4)
    compiled = CompiledNetwork(net)
    p32, d32 = params.astype(np.float32), data.astype(np.float32)
    loss, gradient, forward = compiled.loss_and_gradient(p32, d32.X, d32.Y)
    assert all(a.dtype == np.float32 for a in forward.activations[1:])
    assert all(z.dtype == np.float32 for z in compiled.forward(p32, d32.X).zs)
    assert all(g.dtype == np.float32 for g in gradient.weights + gradient.biases)
    g64 = compiled.gradient(params, data)
    assert loss == pytest.approx(compiled.cost(params, data), rel=1e-5)
    for mine, theirs in zip(gradient.weights + gradient.biases, g64.weights + g64.biases):
        np.testing.assert_allclose(mine, theirs, rtol=2e-4, atol=2e-6)


def test_loss_and_gradient_equals_cost_and_gradient():
    net, params, data = _random_problem([4, 3, 2], "sigmoid", "half_squared_error", seed=7)
    compiled = CompiledNetwork(net)
    loss, gradient, _ = compiled.loss_and_gradient(params, data.X, data.Y)
    assert loss == compiled.cost(params, data)
    for mine, theirs in zip(gradient.weights + gradient.biases, compiled.gradient(params, data).weights
                            + compiled.gradient(params, data).biases):
        np.testing.assert_array_equal(mine, theirs)


def test_gradient_norms_are_euclidean():
    net, params, data = _random_problem([3, 2, 1], "tanh", "squared_error", seed=2)
    gradient = CompiledNetwork(net).gradient(params, data)
    per_layer = gradient.layer_norms()
    assert per_layer[0] == pytest.approx(np.sqrt((gradient.weights[0] ** 2).sum() + (gradient.biases[0] ** 2).sum()))
    assert gradient.norm() == pytest.approx(np.linalg.norm(np.concatenate([g.ravel() for g in gradient.weights + gradient.biases])))


def test_gradient_norms_of_float32_do_not_overflow():
    """A float32 sum of squares overflows from entries of about 1.8e19; the norms are summed in float64."""
    from symback.compile.compiler import Gradients

    big = Gradients([np.full((2, 2), 3e20, dtype=np.float32)], [np.full(2, 4e20, dtype=np.float32)])
    with np.errstate(all="ignore"):
        assert not np.isfinite(np.vdot(big.weights[0], big.weights[0]))  # what the old float32 sum gave
    expected = float(np.sqrt(4 * 3e20**2 + 2 * 4e20**2))
    assert big.norm() == pytest.approx(expected, rel=1e-6)
    assert big.layer_norms() == [pytest.approx(expected, rel=1e-6)]
    # Squares beyond even float64 (1e200² = 1e400) are summed after scaling by the largest entry.
    huge = Gradients([np.array([[3e200]])], [np.array([4e200])])
    assert huge.norm() == pytest.approx(5e200, rel=1e-12)
    assert Gradients([np.zeros((1, 1))], [np.zeros(1)]).norm() == 0.0
    # Squares that underflow float32 (1e-25² = 1e-50) are summed in float64 too: not a zero norm.
    tiny = Gradients([np.full((3, 3), 1e-25, dtype=np.float32)], [np.zeros(3, dtype=np.float32)])
    assert tiny.norm() == pytest.approx(3e-25, rel=1e-6)
    rng = np.random.default_rng(1)
    ordinary = Gradients([rng.normal(size=(20, 30)).astype(np.float32)], [rng.normal(size=20).astype(np.float32)])
    wide = np.concatenate([ordinary.weights[0].ravel(), ordinary.biases[0]]).astype(np.float64)
    assert ordinary.norm() == pytest.approx(float(np.sqrt(wide @ wide)), rel=1e-6)


def test_result_objects_compare_by_value_or_identity_without_crashing():
    from symback.compile.compiler import ForwardPass, Gradients

    g = Gradients([np.ones((2, 2))], [np.zeros(2)])
    assert g == Gradients([np.ones((2, 2))], [np.zeros(2)])
    assert g != Gradients([np.ones((2, 2))], [np.ones(2)])
    assert g != Gradients([np.ones((2, 3))], [np.zeros(2)])
    f = ForwardPass([np.ones((1, 1))], [np.ones((1, 1)), np.ones((1, 1))])
    assert f == f and f != ForwardPass([np.ones((1, 1))], [np.ones((1, 1)), np.ones((1, 1))])


def test_piecewise_compiles_to_nested_where_with_first_true_branch_semantics():
    """Piecewise (ReLU, leaky ReLU, ELU) is printed as numpy.where, not the much slower numpy.select."""
    import inspect

    import sympy as sp

    from symback.compile.compiler import lambdify

    x = sp.Symbol("x", real=True)
    piecewise = sp.Piecewise((1, x < -1), (x**2, x < 1), (2, True))
    function = lambdify([x], piecewise)
    source = inspect.getsource(function)
    assert "where" in source and "select" not in source
    points = np.array([-2.0, -1.0, -0.5, 0.0, 0.99, 1.0, 3.0])
    expected = [float(piecewise.subs(x, p)) for p in points]
    np.testing.assert_array_equal(function(points), expected)


# -- logistic ----------------------------------------------------------------------------------------


def test_logistic_is_the_sigmoid_symbolically():
    x = sp.Symbol("x", real=True)
    sigmoid = 1 / (1 + sp.exp(-x))
    assert sp.simplify(logistic(x).rewrite(sp.exp) - sigmoid) == 0
    assert sp.simplify((logistic(x).rewrite(sp.tanh) - sigmoid).rewrite(sp.exp)) == 0
    assert sp.simplify((logistic(x).diff(x) - sp.diff(sigmoid, x)).rewrite(sp.exp)) == 0
    assert stabilize(sigmoid) == logistic(x) and stabilize(1 / (1 + sp.exp(x))) == logistic(-x)
    assert logistic(0) == sp.Rational(1, 2) and logistic(x).is_real and logistic(x).is_positive


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (3,), (4, 5), (64, 40)])  # (64, 40) takes float64's exp form
def test_logistic_array_equals_the_sigmoid_in_its_dtype_without_warnings(dtype, shape):
    rng = np.random.default_rng(0)
    x = (rng.normal(scale=8.0, size=shape)).astype(dtype)
    if x.size >= 4:
        x.flat[:4] = [-1e4, -750.0, 750.0, 1e4]  # e^{-x} overflows float32 and float64 at the first two
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = logistic_array(x)
    expected = 1 / (1 + np.exp(-np.clip(x.astype(np.float64), -700, 700)))
    assert np.asarray(got).dtype == dtype and np.shape(got) == shape
    # tanh(x/2)/2 + 1/2 is exact to the dtype's eps absolutely (not relatively, in the far lower tail)
    np.testing.assert_allclose(got, expected, rtol=4 * np.finfo(dtype).eps, atol=np.finfo(dtype).eps)
    if x.size >= 4:
        assert np.asarray(got).flat[:4].tolist() == [0.0, 0.0, 1.0, 1.0]


def test_logistic_array_of_integers_is_float():
    np.testing.assert_allclose(logistic_array(np.array([0, 1])), [0.5, 1 / (1 + np.exp(-1.0))], rtol=1e-15)
    z = np.array([0, 1])
    np.testing.assert_allclose(logistic_array(z, out=z), [0.5, 1 / (1 + np.exp(-1.0))], rtol=1e-15)


def test_a_network_of_integers_trains_in_float():
    net = Network([2, 3, 1], "sigmoid", "squared_error")
    ints = Parameters([np.ones((3, 2), dtype=int), np.ones((1, 3), dtype=int)], [np.zeros(3, dtype=int), np.zeros(1, dtype=int)])
    loss, gradient, _ = CompiledNetwork(net).loss_and_gradient(ints, np.ones((2, 2), dtype=int), np.ones((2, 1)))
    floats = ints.astype(np.float64)
    assert loss == CompiledNetwork(net).cost(floats, Dataset(np.ones((2, 2)), np.ones((2, 1))))
    assert gradient == CompiledNetwork(net).gradient(floats, Dataset(np.ones((2, 2)), np.ones((2, 1))))


def test_sigmoid_layer_compiles_to_logistic_array():
    kernels = CompiledNetwork(Network([1, 1], "sigmoid", "squared_error")).layers[0]
    assert kernels.stable_formula == logistic(Z)
    z = np.linspace(-5, 5, 11).reshape(-1, 1)
    np.testing.assert_array_equal(kernels.forward(z), logistic_array(z))


# -- printing and shared subexpressions ----------------------------------------------------------------


def test_numpy_printer_starts_a_sum_with_a_positive_term():
    a, y = sp.symbols("a y")
    assert _NumPyPrinter().doprint(-y + a) == "a - y"
    assert _NumPyPrinter().doprint(2 * a * (y - a) * (a - 1)) == "2*a*(y - a)*(a - 1)"
    assert _NumPyPrinter().doprint(-a - y) == "-a - y"


_leaves = st.sampled_from([A, Y, sp.Integer(2), sp.Rational(1, 2), sp.Integer(-3)])
_expressions = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.builds(lambda u, v: u + v, inner, inner),
        st.builds(lambda u, v: u - v, inner, inner),
        st.builds(lambda u, v: u * v, inner, inner),
        st.builds(lambda u: -u, inner),
        st.builds(lambda u: u**2, inner),
        st.builds(sp.exp, inner),
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(_expressions)
def test_printed_kernels_equal_sympys_own(expression):
    """Reordered sums print the same numbers: symback's kernel against sympy.lambdify's."""
    values = (np.linspace(-1.5, 1.5, 7), np.linspace(0.9, -0.6, 7))
    with np.errstate(all="ignore"):
        ours = np.asarray(lambdify([A, Y], expression)(*values), dtype=float)
        theirs = np.asarray(sp.lambdify([A, Y], expression, "numpy")(*values), dtype=float)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_shared_subexpression_kernels_agree_bit_for_bit():
    term, delta = (A - Y) ** 2, 2 * A * (Y - A) * (A - 1)
    together, (term_alone, delta_alone) = _sharing_subexpressions([A, Y], [term, delta])
    assert "x0 = " in __import__("inspect").getsource(together)  # a − y is computed once
    rng = np.random.default_rng(2)
    a, y = rng.uniform(size=(5, 3)), rng.uniform(size=(5, 3))
    both = together(a, y)
    np.testing.assert_array_equal(both[0], term_alone(a, y))
    np.testing.assert_array_equal(both[1], delta_alone(a, y))
    np.testing.assert_allclose(both[1], 2 * a * (y - a) * (a - 1), rtol=1e-15)


# -- gradients written in place ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "activations, cost",
    [("sigmoid", "squared_error"), (["tanh", "softmax"], "categorical_cross_entropy"), ("relu", "mse"),
     ("sigmoid", "binary_cross_entropy")],
)
def test_loss_and_gradient_into_out_equals_a_fresh_gradient(activations, cost):
    net, params, data = _random_problem([4, 3, 2], activations, cost, seed=11)
    compiled = CompiledNetwork(net)
    out = Gradients.zeros_like(params)
    out.buffer[...] = np.nan  # stale values must all be overwritten
    loss, written, _ = compiled.loss_and_gradient(params, data.X, data.Y, out=out)
    fresh_loss, fresh, _ = compiled.loss_and_gradient(params, data.X, data.Y)
    assert written is out and loss == fresh_loss and written == fresh
    assert written.buffer is not None  # still the one packed buffer


def test_frozen_parameters_get_zero_gradient_in_out():
    net = Network([2, 2, 1], "sigmoid", "squared_error", frozen=["w(1)_0_1", "b(2)"])
    params = Parameters.initialize(net, seed=3)
    data = Dataset(np.array([[0.5, -1.0], [1.5, 0.2]]), np.array([[1.0], [0.0]]))
    out = Gradients.zeros_like(params)
    CompiledNetwork(net).loss_and_gradient(params, data.X, data.Y, out=out)
    assert out.weights[0][0, 1] == 0.0 and out.biases[1][0] == 0.0
    assert np.count_nonzero(out.buffer) == out.buffer.size - 2


@pytest.mark.parametrize(
    "activations, cost, kept",
    [("sigmoid", "squared_error", [False, False]), (["relu", "sigmoid"], "squared_error", [True, False]),
     ("sigmoid", "binary_cross_entropy", [False, True]),
     # tanh' is computed from z (1 − a² loses every digit where tanh rounds to ±1)
     (["tanh", "softmax"], "categorical_cross_entropy", [True, True]),
     (["softplus", "identity"], "ssr", [True, False])],
)
def test_the_training_forward_pass_keeps_only_the_z_it_reads(activations, cost, kept):
    """Without the dropped z the gradient is still right: equal to the one from a full forward pass."""
    net, params, data = _random_problem([4, 3, 2], activations, cost, seed=5)
    compiled = CompiledNetwork(net)
    _, gradient, forward = compiled.loss_and_gradient(params, data.X, data.Y)
    assert [z is not None for z in forward.zs] == kept
    assert gradient == compiled.gradient(params, data, forward=compiled.forward(params, data.X))
