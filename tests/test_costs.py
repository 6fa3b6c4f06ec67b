"""Costs: registry, SymPy-derived ∂C/∂a, reductions, user formulas."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from symback import COSTS, get_cost
from symback.compile.compiler import elementwise
from symback.errors import SpecError, UnknownNameError
from symback.symbolic.costs import A, Y

from . import reference


@pytest.mark.parametrize("name", sorted(reference.COSTS))
def test_derivative_is_sympy_diff_and_matches_the_hand_written_one(name):
    cost = get_cost(name)
    assert cost.derivative == sp.diff(cost.term, A)
    term, derivative, per_output_mean, reduction = reference.COSTS[name]
    a = np.linspace(0.05, 0.95, 19)
    y = np.linspace(1, 0, 19)
    np.testing.assert_allclose(elementwise([A, Y], cost.term)(a, y), term(a, y), rtol=1e-12)
    np.testing.assert_allclose(elementwise([A, Y], cost.derivative)(a, y), derivative(a, y), rtol=1e-12)
    assert (cost.output_reduction == "mean") == per_output_mean
    assert cost.example_reduction == reduction


def test_seed001_and_seed002_costs():
    assert get_cost("squared_error").derivative == 2 * A - 2 * Y  # 3Blue1Brown: 2(a(L) - y)
    ssr = get_cost("ssr")
    assert sp.expand(ssr.derivative - (-2 * (Y - A))) == 0  # seed 002: -2(observed - predicted)
    assert ssr.example_reduction == "sum"


def test_user_formula_cost_and_reduction_override():
    cost = get_cost({"formula": "(a - y)^4", "reduction": "sum"})
    assert cost.derivative == 4 * (A - Y) ** 3
    assert cost.example_reduction == "sum"
    assert get_cost({"name": "squared_error", "reduction": "sum"}).example_reduction == "sum"
    assert set(COSTS) >= {"squared_error", "half_squared_error", "ssr", "mse", "binary_cross_entropy", "categorical_cross_entropy"}


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("hinge", UnknownNameError, "unknown cost 'hinge'"),
        ({"formula": "(a - y)^2", "reduction": "median"}, SpecError, "'sum' or 'mean'"),
        ({"formula": "(a - y)^2", "weight": 2}, SpecError, "unexpected keys"),
        ({"reduction": "sum"}, SpecError, "needs 'name' or 'formula'"),
        (3, SpecError, "must be a name or a table"),
    ],
)
def test_bad_costs(spec, error, message):
    with pytest.raises(error, match=message):
        get_cost(spec)


def test_equality_includes_the_class():
    from symback import get_cost
    from symback.symbolic.costs import Cost

    class Special(Cost):
        pass

    ssr = get_cost("ssr")
    twin = Special(ssr.name, ssr.term, ssr.output_reduction, ssr.example_reduction)
    assert ssr == get_cost("ssr") and hash(ssr) == hash(get_cost("ssr"))
    assert ssr != twin and twin != ssr and len({ssr, twin}) == 2
