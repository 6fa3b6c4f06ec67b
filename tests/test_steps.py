"""The rule trace ends where sympy.diff ends, for every registered activation and cost and user formulas."""

from __future__ import annotations

import math

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symback.render.steps import (
    ChainRule,
    PowerRule,
    QuotientRule,
    SymPyRule,
    TraceMismatchError,
    _same,
    rewrite_in_terms_of,
    trace,
)
from symback.symbolic.activations import ACTIVATIONS, Z, activation_from_formula
from symback.symbolic.costs import COSTS, A, Y, cost_from_formula


def _equal_numerically(a: sp.Expr, b: sp.Expr, symbols) -> bool:
    """An oracle independent of the trace's own check: both sides at fixed points."""
    fa, fb = sp.lambdify(symbols, a, "math"), sp.lambdify(symbols, b, "math")
    for point in ([0.3, 0.2], [-0.7, 0.9], [1.3, 0.4], [0.05, 0.6]):
        args = point[: len(symbols)]
        assert math.isclose(fa(*args), fb(*args), rel_tol=1e-9, abs_tol=1e-12)
    return True


ELEMENTWISE = sorted(name for name in ACTIVATIONS if name != "softmax")


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_activation(name):
    activation = ACTIVATIONS[name]()
    t = trace(activation.formula, Z)
    assert sp.simplify(t.result - activation.derivative) == 0 or _equal_numerically(t.result, activation.derivative, [Z])
    assert not t.uses_sympy_fallback


@pytest.mark.parametrize("name", sorted(COSTS))
def test_every_cost(name):
    cost = COSTS[name]()
    t = trace(cost.term, A)
    assert sp.simplify(t.result - cost.derivative) == 0
    assert not t.uses_sympy_fallback


@pytest.mark.parametrize(
    "text", ["z/(1+exp(-z))", "tanh(z)^2", "log(1+exp(z))", "sqrt(1+z^2)", "sin(z)*cos(z)", "2^z", "(1+z^2)^z",
             "atan(z)+erf(z)", "max(z, 0.1*z)", "exp(-z^2)/(1+z^2)", "abs(z)"],
)
def test_user_activation_formulas(text):
    activation = activation_from_formula(text)
    t = trace(activation.formula, Z)
    assert _equal_numerically(t.result, activation.derivative, [Z])


@pytest.mark.parametrize("text", ["(a - y)^4", "abs(a - y)", "log(cosh(a - y))", "y*log(y/a)"])
def test_user_cost_formulas(text):
    cost = cost_from_formula(text)
    t = trace(cost.term, A)
    assert _equal_numerically(t.result, cost.derivative, [A, Y])


def test_sigmoid_trace_is_a_chain_of_power_and_exponential():
    t = trace(ACTIVATIONS["sigmoid"]().formula, Z)
    assert isinstance(t.rule, ChainRule)
    assert isinstance(t.rule.substep, PowerRule)
    assert t.result == sp.exp(-Z) / (1 + sp.exp(-Z)) ** 2


def test_quotient_rule_for_a_fraction():
    t = trace(sp.sin(Z) / Z, Z)
    assert isinstance(t.rule, QuotientRule)


def test_indexed_sum_collapses_to_one_term():
    w, a, b = sp.IndexedBase("w"), sp.IndexedBase("a"), sp.IndexedBase("b")
    j, k, d = sp.Idx("j", 3), sp.Idx("k", 4), sp.Idx("d", 4)
    t = trace(sp.Sum(w[j, d] * a[d], d) + b[j], w[j, k])
    assert t.result == a[k]


def test_a_wrong_result_is_detected():
    assert not _same(2 * Z, 3 * Z, {Z})
    assert not _same(sp.exp(Z), sp.exp(Z) + sp.Piecewise((0, Z > 0), (1e-3, True)), {Z})
    assert issubclass(TraceMismatchError, AssertionError)


def test_the_numbers_settle_equality_before_any_budgeted_proof(monkeypatch):
    """A nested rational function whose unbounded ``expand`` took 56 s: numbers decide, nothing is expanded.
    Where no point can be evaluated (an undefined function) a proof within the budget decides."""
    import symback.render.steps as steps
    from symback.budget import attempt

    proofs = []

    def recording(function, expression, **options):
        proofs.append(function)
        return attempt(function, expression, **options)

    monkeypatch.setattr(steps, "attempt", recording)
    x, f = sp.Symbol("x", real=True), sp.Function("f")
    nested = sp.log(x**4 / ((x**2 / 9 + 2)**2 * (x**2 / (9 * (x**2 / 9 + 2)**2) + 2)**2) + 1)
    assert math.isclose(float(trace(nested, x).result.subs(x, 0.7)), float(sp.diff(nested, x).subs(x, 0.7)))
    assert proofs == []
    assert _same(f(x) * (x + 1), f(x) * x + f(x), {x}) and proofs == [sp.expand]
    assert not _same(f(x) * (x + 2), f(x) * x + f(x), {x})


def test_unknown_functions_fall_back_to_sympy_openly():
    t = trace(sp.gamma(Z), Z)
    assert t.uses_sympy_fallback and isinstance(t.rule, SymPyRule)


def test_rewriting_in_the_activations_own_value():
    s = sp.Symbol("s")
    assert rewrite_in_terms_of(ACTIVATIONS["sigmoid"]().formula, Z, s).rewritten == s * (1 - s)
    assert rewrite_in_terms_of(ACTIVATIONS["tanh"]().formula, Z, s).rewritten == 1 - s**2
    assert rewrite_in_terms_of(ACTIVATIONS["softplus"]().formula, Z, s) is None  # not a polynomial in s
    assert rewrite_in_terms_of(ACTIVATIONS["relu"]().formula, Z, s) is None


# -- random expressions -----------------------------------------------------------------------------------

_x = sp.Symbol("x", real=True)
_leaves = st.sampled_from([_x, _x, sp.Integer(2), sp.Rational(1, 3), sp.Integer(-1)])


def _combine(children):
    unary = st.sampled_from([sp.exp, sp.sin, sp.cos, sp.tanh, sp.atan, lambda e: sp.log(1 + e**2)])
    binary = st.sampled_from([sp.Add, sp.Mul, lambda p, q: p / (2 + q**2), lambda p, q: p**2 * q])
    return st.one_of(st.builds(lambda f, c: f(c), unary, children), st.builds(lambda f, p, q: f(p, q), binary, children, children))


@settings(max_examples=60, deadline=None)
@given(st.recursive(_leaves, _combine, max_leaves=8))
def test_random_expressions(expr):
    t = trace(expr, _x)
    expected = sp.diff(expr, _x)
    f, g = sp.lambdify(_x, t.result, "math"), sp.lambdify(_x, expected, "math")
    for point in (0.37, -0.81, 1.2):
        try:
            left, right = f(point), g(point)
        except (OverflowError, ValueError, ZeroDivisionError):
            continue
        assert math.isclose(left, right, rel_tol=1e-7, abs_tol=1e-9)
