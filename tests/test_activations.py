"""Activations: registry, SymPy-derived derivatives, user formulas."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from symback import ACTIVATIONS, Activation, get_activation, register_activation
from symback.compile.compiler import elementwise
from symback.errors import FormulaError, UnknownNameError
from symback.symbolic.activations import Z

from . import reference


@pytest.mark.parametrize("name", sorted(set(ACTIVATIONS) - {"softmax"}))
def test_derivative_is_sympy_diff_and_matches_the_hand_written_one(name):
    activation = get_activation(name)
    assert activation.derivative == sp.diff(activation.formula, Z)
    z = np.linspace(-4, 4, 81) + 0.013  # avoid the kink at exactly 0
    forward, derivative = reference.ACTIVATIONS[name]
    np.testing.assert_allclose(elementwise([Z], activation.formula)(z), forward(z), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(elementwise([Z], activation.derivative)(z), derivative(z), rtol=1e-10, atol=1e-15)


def test_leaky_relu_slope_is_configurable():
    leaky = get_activation({"name": "leaky_relu", "slope": 0.2})
    assert leaky.derivative.subs(Z, -1) == sp.Rational(1, 5)
    assert leaky.label == "leaky_relu(slope=0.2)"


def test_user_formula_is_derived_like_a_builtin():
    swish = get_activation({"formula": "z/(1+exp(-z))"})
    assert sp.simplify(swish.derivative - sp.diff(Z / (1 + sp.exp(-Z)), Z)) == 0
    assert sp.simplify(swish.formula - get_activation("silu").formula) == 0


def test_registry_and_errors():
    register_activation("cube", lambda: Activation("cube", Z**3))
    try:
        assert get_activation("cube").derivative == 3 * Z**2
    finally:
        del ACTIVATIONS["cube"]
    with pytest.raises(UnknownNameError, match="unknown activation 'cube'"):
        get_activation("cube")
    with pytest.raises(FormulaError, match="other than z"):
        Activation("bad", Z + sp.Symbol("q"))


def test_equality_includes_the_class_so_softmax_keeps_its_own_kernels():
    """A plain Activation("softmax", exp(z)) is elementwise; it must not equal Softmax() or share its cached kernels."""
    from symback import Softmax
    from symback.compile.compiler import _layer_kernels

    plain = Activation("softmax", sp.exp(Z))
    assert plain != Softmax() and Softmax() != plain and Softmax() == Softmax()
    assert len({plain, Softmax()}) == 2
    assert get_activation("sigmoid") == get_activation("sigmoid")
    assert hash(get_activation("sigmoid")) == hash(get_activation("sigmoid"))
    _layer_kernels(Softmax())  # cached first, as a network with a softmax output would
    kernels = _layer_kernels(plain)
    assert kernels.activation is plain and kernels.derivative is not None  # elementwise exp, not the softmax
    np.testing.assert_allclose(kernels.forward(np.array([[0.0, 1.0]])), [[1.0, np.e]])
