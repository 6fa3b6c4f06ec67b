"""The presentation forms (issue 12): golden LaTeX, MathML and terminal text for the seeds' own forms.

Each case is what the seeds and the textbooks write: 3Blue1Brown's a(L−1) σ′(z(L)) 2(a(L) − y),
seed 002's −2(observed − predicted), Nielsen's a_k δ_j, and δ(L) = a(L) − y where activation and
cost cancel.  One table-driven test checks, over the registries, that no shown form is bigger than
the plain product of SymPy's factors, and that every shown form equals SymPy's derivative.
"""

from __future__ import annotations

import pytest
import sympy as sp

from symback import Network, derive
from symback.activations import ACTIVATIONS, Z, get_activation
from symback.costs import COSTS
from symback.latex import latex, mathml
from symback.notation import PRIME_NAMES, Delta, FunctionOf, FunctionPrime, Partial, Product, activation_forms, cost_form, text

TIGHT = '<mo stretchy="false" lspace="0" rspace="0">'
L = "<mrow>" + TIGHT + "(</mo><mi>L</mi>" + TIGHT + ")</mo></mrow>"
L1 = "<mrow>" + TIGHT + "(</mo><mi>L</mi>" + TIGHT + "\u2212</mo><mn>1</mn>" + TIGHT + ")</mo></mrow>"


def shown(network, target):
    return derive(network, target).presentation


def eq(lhs, rhs):
    return sp.Eq(lhs, rhs, evaluate=False)


# -- seed 001: the 3Blue1Brown chain ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain3():
    return shown(Network([1, 1, 1], "sigmoid", "squared_error", names={"cost": "C0"}), "w(L)")


def test_seed001_chain_latex(chain3):
    assert latex(eq(chain3.lhs, chain3.chain_order)) == (
        r"\frac{\partial C_{0}}{\partial w^{(L)}} = a^{(L-1)} \sigma'\left(z^{(L)}\right) 2 \left(a^{(L)} - y\right)"
    )
    sigma = next(f for f in chain3.factors if f.kind == "activation")
    assert [latex(f) for f in (sigma.named, sigma.forms[-1])] == [
        r"\sigma'\left(z^{(L)}\right)", r"a^{(L)} \left(1 - a^{(L)}\right)"]
    assert latex(eq(chain3.lhs, chain3.delta_form)) == r"\frac{\partial C_{0}}{\partial w^{(L)}} = a^{(L-1)} \delta^{(L)}"


def test_seed001_chain_mathml(chain3):
    assert mathml(eq(chain3.lhs, chain3.chain_order)) == (
        "<math><mrow><mfrac><mrow><mo>∂</mo><msub><mi>C</mi><mrow><mn>0</mn></mrow></msub></mrow>"
        "<mrow><mo>∂</mo><msup><mi>w</mi>" + L + "</msup></mrow></mfrac><mo>=</mo>"
        "<mrow><msup><mi>a</mi>" + L1 + "</msup><mo>\u2062</mo>"
        '<mrow><msup><mi>σ</mi><mo>′</mo></msup><mo stretchy="false">(</mo><msup><mi>z</mi>' + L + "</msup>"
        '<mo stretchy="false">)</mo></mrow><mo>\u2062</mo>'
        '<mrow><mn>2</mn><mo>\u2062</mo><mrow><mo stretchy="false">(</mo><mrow><msup><mi>a</mi>' + L + "</msup>"
        '<mo>\u2212</mo><mi>y</mi></mrow><mo stretchy="false">)</mo></mrow></mrow></mrow></mrow></math>'
    )


def test_seed001_chain_text(chain3):
    assert text(eq(chain3.lhs, chain3.chain_order)) == "∂C0/∂w(L) = a(L-1) σ′(z(L)) 2(a(L) − y)"
    assert text(eq(chain3.lhs, chain3.delta_form)) == "∂C0/∂w(L) = a(L-1) δ(L)"
    assert [text(e) for e in chain3.deltas] == ["δ(L) = σ′(z(L)) 2(a(L) − y)"]


def test_seed001_five_factor_product():
    deep = shown(Network([1, 1, 1, 1], "sigmoid", "squared_error", names={"cost": "C0"}), "w(L-1)")
    assert latex(eq(deep.lhs, deep.chain_order)) == (
        r"\frac{\partial C_{0}}{\partial w^{(L-1)}} = a^{(L-2)} \sigma'\left(z^{(L-1)}\right) w^{(L)} "
        r"\sigma'\left(z^{(L)}\right) 2 \left(a^{(L)} - y\right)"
    )
    assert text(eq(deep.lhs, deep.chain_order)) == "∂C0/∂w(L-1) = a(L-2) σ′(z(L-1)) w(L) σ′(z(L)) 2(a(L) − y)"
    assert [text(e) for e in deep.deltas] == ["δ(L) = σ′(z(L)) 2(a(L) − y)", "δ(L-1) = σ′(z(L-1)) w(L) δ(L)"]
    printed = mathml(eq(deep.lhs, deep.chain_order))
    assert printed.count("<msup><mi>σ</mi><mo>′</mo></msup>") == 2 and "-" not in printed


# -- seed 002: its own form ----------------------------------------------------------------------------


def test_seed002_b3_in_the_seeds_form(seed002):
    form = shown(seed002.network, "b3")
    assert latex(eq(form.lhs, form.chain_order)) == (
        r"\frac{\partial \mathrm{SSR}}{\partial b_{3}} = - 2 \left(\mathrm{observed} - \mathrm{predicted}\right)"
    )
    assert mathml(eq(form.lhs, form.chain_order)) == (
        '<math><mrow><mfrac><mrow><mo>∂</mo><mi mathvariant="normal">SSR</mi></mrow><mrow><mo>∂</mo><msub><mi>b</mi>'
        "<mrow><mn>3</mn></mrow></msub></mrow></mfrac><mo>=</mo><mrow><mo>\u2212</mo><mn>2</mn><mo>\u2062</mo><mrow>"
        '<mo stretchy="false">(</mo><mrow><mi mathvariant="normal">observed</mi><mo>\u2212</mo>'
        '<mi mathvariant="normal">predicted</mi></mrow><mo stretchy="false">)</mo></mrow></mrow></mrow></math>'
    )
    assert text(eq(form.lhs, form.chain_order)) == "∂SSR/∂b3 = −2(observed − predicted)"


# -- a 2-2-2 first-layer weight: the sum over its two paths in δ form ------------------------------------------


def test_two_paths_in_delta_form():
    form = shown(Network([2, 2, 2], "sigmoid", "squared_error"), "w(L-1)_0_0")
    assert latex(eq(form.lhs, form.path_deltas)) == (
        r"\frac{\partial C}{\partial w^{(L-1)}_{00}} = x_{0} \sigma'\left(z^{(L-1)}_{0}\right) w^{(L)}_{00} "
        r"\delta^{(L)}_{0} + x_{0} \sigma'\left(z^{(L-1)}_{0}\right) w^{(L)}_{10} \delta^{(L)}_{1}"
    )
    assert text(eq(form.lhs, form.path_deltas)) == (
        "∂C/∂w(L-1)_0_0 = x_0 σ′(z(L-1)_0) w(L)_0_0 δ(L)_0 + x_0 σ′(z(L-1)_0) w(L)_1_0 δ(L)_1"
    )
    assert text(eq(form.lhs, form.delta_form)) == "∂C/∂w(L-1)_0_0 = x_0 δ(L-1)_0"
    assert [text(e) for e in form.deltas] == [
        "δ(L)_0 = σ′(z(L)_0) 2(a(L)_0 − y_0)",
        "δ(L)_1 = σ′(z(L)_1) 2(a(L)_1 − y_1)",
        "δ(L-1)_0 = σ′(z(L-1)_0) (w(L)_0_0 δ(L)_0 + w(L)_1_0 δ(L)_1)",
    ]
    # b^{(L)}_j-style scripts: one msubsup each, the index under the layer.
    printed = mathml(eq(form.lhs, form.path_deltas))
    assert "<msubsup><mi>δ</mi><mrow><mn>0</mn></mrow>" + L + "</msubsup>" in printed
    assert "<msubsup><mi>w</mi><mrow><mn>1</mn><mn>0</mn></mrow>" + L + "</msubsup>" in printed


# -- derived cancellations -----------------------------------------------------------------------------


def test_sigmoid_with_binary_cross_entropy_cancels_to_a_minus_y():
    form = shown(Network([1, 1], "sigmoid", "binary_cross_entropy"), "w(L)")
    (cancel,) = form.cancellations
    assert [latex(s) for s in (cancel.delta, *cancel.steps)] == [
        r"\delta^{(L)}",
        r"\sigma'\left(z^{(L)}\right) \left(\frac{1 - y}{1 - a^{(L)}} - \frac{y}{a^{(L)}}\right)",
        r"a^{(L)} \left(1 - a^{(L)}\right) \left(\frac{1 - y}{1 - a^{(L)}} - \frac{y}{a^{(L)}}\right)",
        r"a^{(L)} - y",
    ]
    assert text(eq(cancel.delta, cancel.steps[-1])) == "δ(L) = a(L) − y"
    assert mathml(eq(cancel.delta, cancel.steps[-1])) == (
        "<math><mrow><msup><mi>δ</mi>" + L + "</msup><mo>=</mo><mrow><msup><mi>a</mi>" + L + "</msup>"
        "<mo>\u2212</mo><mi>y</mi></mrow></mrow></math>"
    )
    assert cancel.condition == ""


def test_softmax_with_categorical_cross_entropy_cancels_to_a_minus_y():
    form = shown(Network([2, 2], "softmax", "categorical_cross_entropy"), "w(L)_0_1")
    (cancel,) = form.cancellations
    assert latex(eq(cancel.delta, cancel.steps[-1])) == r"\delta^{(L)}_{0} = a^{(L)}_{0} - y_{0}"
    assert text(eq(cancel.delta, cancel.steps[-2])) == "δ(L)_0 = a(L)_0·(y_0 + y_1) − y_0"
    assert cancel.condition == "the targets sum to 1 (y_0 + y_1 = 1)"
    assert mathml(eq(cancel.delta, cancel.steps[-1])) == (
        "<math><mrow><msubsup><mi>δ</mi><mrow><mn>0</mn></mrow>" + L + "</msubsup><mo>=</mo><mrow>"
        "<msubsup><mi>a</mi><mrow><mn>0</mn></mrow>" + L + "</msubsup><mo>\u2212</mo><msub><mi>y</mi><mrow><mn>0</mn>"
        "</mrow></msub></mrow></mrow></math>"
    )
    # The softmax factor in the outputs, proven from its formula: a_0(1 − a_0) and −a_0 a_1.
    softmax = [f for f in form.factors if f.kind == "softmax" and f.factor.wrt.name == "z(L)_0"]
    assert sorted(text(f.named) for f in softmax) == ["a(L)_0·(1 − a(L)_0)", "−a(L)_0·a(L)_1"]


def test_identity_with_half_squared_error_is_a_minus_y_directly():
    form = shown(Network([1, 1], "identity", "half_squared_error"), "w(L)")
    assert [text(e) for e in form.deltas] == ["δ(L) = a(L) − y"]
    assert text(eq(form.lhs, form.chain_order)) == "∂C/∂w(L) = x (a(L) − y)"


def test_no_cancellation_is_claimed_where_there_is_none():
    assert shown(Network([1, 1], "sigmoid", "squared_error"), "w(L)").cancellations == ()


# -- the layer's function names its derivative --------------------------------------------------------------


@pytest.mark.parametrize(("name", "named", "last"), [
    ("sigmoid", "σ′(z)", "a·(1 − a)"),
    ("tanh", "tanh′(z)", "1 − a^2"),
    ("softplus", "softplus′(z)", "σ(z)"),
    ("relu", "ReLU′(z)", "H(z)"),
    ("leaky_relu", "LeakyReLU′(z)", "{1 if z > 0; 1/100 otherwise}"),  # 0.01 + 0.99 H(z) would be bigger
])
def test_activation_forms(name, named, last):
    forms = activation_forms(get_activation(name), Z, sp.Symbol("a", real=True))
    assert text(forms.named) == named and text(forms.shown[-1]) == last


def test_a_user_formula_is_f_prime():
    forms = activation_forms(get_activation({"formula": "z^3"}), Z, sp.Symbol("a"))
    assert text(forms.named) == "f′(z)" and latex(forms.named) == r"f'\left(z\right)"


def test_cost_form_keeps_the_costs_own_order():
    a, y = sp.Symbol("a"), sp.Symbol("y")
    assert text(cost_form(2 * a - 2 * y, (a - y) ** 2, a)) == "2(a − y)"
    assert text(cost_form(2 * a - 2 * y, (y - a) ** 2, a)) == "−2(y − a)"
    assert text(cost_form(a - y, sp.Rational(1, 2) * (a - y) ** 2, a)) == "a − y"


def test_notation_objects_print_in_sympys_own_printers_too():
    z = sp.Symbol("z")
    assert sp.latex(FunctionPrime("sigma", z)) == r"\sigma'\left(z\right)"
    assert str(FunctionOf("sigma", z)) == "σ(z)"
    assert str(Partial(sp.Symbol("C"), z)) == "∂C/∂z"
    assert str(Delta(sp.Symbol("z(L)_1"))) == "δ(L)_1"
    assert sp.latex(Product(sp.Symbol("x"), sp.Symbol("y") + 1)) == r"x \left(y + 1\right)"


# -- every registered activation and cost: shown forms are equal and no bigger than the product -------------------


def _elementwise_activations():
    return sorted(name for name, factory in ACTIVATIONS.items() if factory().elementwise)


@pytest.mark.parametrize("cost", sorted(set(COSTS) - {"categorical_cross_entropy", "cross_entropy"}))
@pytest.mark.parametrize("activation", _elementwise_activations())
def test_shown_forms_are_equal_and_no_bigger_than_the_product(activation, cost):
    form = shown(Network([1, 1], activation, cost), "w(L)")
    derivation = derive(Network([1, 1], activation, cost), "w(L)")
    plain = sp.Mul(*(f.derivative for f in derivation.paths[0]))
    for item in form.factors:
        if item.kind == "activation":
            continue  # σ′ and its output forms: test_activation_output_forms_are_proven
        for candidate in (item.named, item.simplest):
            assert sp.simplify(sp.expand(_plain(candidate)) - item.factor.derivative) == 0
    assert _ops(form.chain_order) <= sp.count_ops(plain)
    for cancellation in form.cancellations:
        assert sp.count_ops(cancellation.steps[-1]) <= sp.count_ops(plain)


@pytest.mark.parametrize("activation", _elementwise_activations())
def test_activation_output_forms_are_proven(activation):
    act = get_activation(activation)
    a = sp.Symbol("a", real=True)
    forms = activation_forms(act, Z, a)
    for form in forms.shown[1:]:
        back = form.xreplace({a: act.formula})
        if isinstance(back, FunctionOf):
            back = get_activation({v: k for k, v in PRIME_NAMES.items()}[back.name]).at(Z)
        difference = sp.piecewise_fold((back - act.derivative).rewrite(sp.Piecewise))
        assert sp.simplify(difference) == 0, (activation, form)


def test_softmax_with_cross_entropy_is_no_bigger_than_the_product():
    net = Network([2, 2], "softmax", "categorical_cross_entropy")
    form = shown(net, "w(L)_0_1")
    plain = sp.Add(*(sp.Mul(*(f.derivative for f in path)) for path in derive(net, "w(L)_0_1").paths))
    assert _ops(form.chain_order) <= sp.count_ops(plain)
    assert sp.count_ops(form.cancellations[0].steps[-1]) <= sp.count_ops(plain)


def _ops(expr: sp.Expr) -> int:
    """count_ops of a shown form with its notation nodes read as the products and differences they are."""
    return sp.count_ops(_plain(expr))


def _plain(expr):
    from symback.notation import Difference, OrderedSum

    if isinstance(expr, Product):
        return sp.Mul(*(_plain(a) for a in expr.args), evaluate=False)
    if isinstance(expr, OrderedSum):
        return sp.Add(*(_plain(a) for a in expr.args), evaluate=False)
    if isinstance(expr, Difference):
        return sp.Add(_plain(expr.args[0]), sp.Mul(-1, _plain(expr.args[1]), evaluate=False), evaluate=False)
    if isinstance(expr, (FunctionPrime, FunctionOf)):
        return sp.Function(expr.name)(expr.arg)
    if isinstance(expr, (sp.Mul, sp.Add, sp.Pow)):
        return expr.func(*(_plain(a) for a in expr.args), evaluate=False)
    return expr
