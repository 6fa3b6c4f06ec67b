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
from symback.render.latex import latex, mathml
from symback.render.notation import (
    PRIME_NAMES,
    Delta,
    FunctionOf,
    FunctionPrime,
    Partial,
    Product,
    activation_forms,
    cost_form,
    examples_form,
    expanded_form,
    plain,
    step_form,
    text,
)
from symback.symbolic.activations import ACTIVATIONS, Z, get_activation
from symback.symbolic.costs import COSTS

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
    assert text(eq(cancel.delta, cancel.steps[-1])) == "δ(L)_0 = a(L)_0 − y_0"
    # The written sum's second term, −a_0 a_1 · (−y_1/a_1), gives its sign to the sum: "− a…", never "+ −a…".
    assert text(cancel.steps[0]) == "a(L)_0·(1 − a(L)_0) (−y_0/a(L)_0) − a(L)_0·a(L)_1 (−y_1/a(L)_1)"
    assert "+ -" not in latex(cancel.steps[0]) and "<mo>+</mo><mrow><mo>\u2212</mo>" not in mathml(cancel.steps[0])
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
    ("sigmoid", "σ′(z)", "a (1 − a)"),
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


def _combinations():
    """Every (output activation, cost) pair of the registries that a network accepts (the cross-entropies
    need a softmax output, which the network itself enforces; the test below checks it says so)."""
    from symback.errors import SpecError

    accepted, refused = [], []
    for activation in sorted(ACTIVATIONS):
        for cost in sorted(COSTS):
            try:
                Network([2, 2], activation, cost)
            except SpecError as error:
                refused.append((activation, cost, str(error)))
            else:
                accepted.append((activation, cost))
    return accepted, refused


def test_the_registries_combinations_left_out_are_refused_by_the_network():
    accepted, refused = _combinations()
    assert len(accepted) + len(refused) == len(ACTIVATIONS) * len(COSTS)
    assert all("needs a softmax output layer" in message for _, _, message in refused)
    assert ("softmax", "categorical_cross_entropy") in accepted and len(accepted) > len(refused)


@pytest.mark.parametrize(("activation", "cost"), _combinations()[0])
def test_shown_forms_are_equal_and_no_bigger_than_the_product(activation, cost):
    """Over both registries (every activation, softmax included, with every cost): each factor's shown
    forms equal SymPy's derivative, and neither the product in chain order nor a cancellation's result
    is bigger (count_ops) than the plain product of SymPy's factors summed over the paths."""
    network = Network([2, 2], activation, cost)
    derivation = derive(network, "w(L)_0_1")
    form = derivation.presentation
    plain = sp.Add(*(sp.Mul(*(f.derivative for f in path)) for path in derivation.paths))
    for item in form.factors:
        if item.kind == "activation":
            continue  # σ′ and its output forms: test_activation_output_forms_are_proven
        outputs = {}
        if item.kind == "softmax":  # a_r(1 − a_r), −a_r a_q: in the outputs, read back through the softmax
            outputs = {f.of: f.local for path in derivation.paths for f in path if f.of.name.startswith("a(")}
        for candidate in (item.named, item.simplest, *item.line):
            assert sp.simplify(sp.expand(_plain(candidate).xreplace(outputs)) - item.factor.derivative) == 0
    assert _ops(form.chain_order) <= sp.count_ops(plain)
    for cancellation in form.cancellations:
        assert sp.count_ops(cancellation.steps[-1]) <= sp.count_ops(plain)


@pytest.mark.parametrize("activation", _elementwise_activations())
def test_activation_output_forms_are_proven(activation):
    act = get_activation(activation)
    a = sp.Symbol("a", real=True)
    forms = activation_forms(act, Z, a)
    for form in forms.shown[1:]:
        back = plain(form).xreplace({a: act.formula})
        if isinstance(back, FunctionOf):
            back = get_activation({v: k for k, v in PRIME_NAMES.items()}[back.name]).at(Z)
        difference = sp.piecewise_fold((back - act.derivative).rewrite(sp.Piecewise))
        assert sp.simplify(difference) == 0, (activation, form)


def _ops(expr: sp.Expr) -> int:
    """count_ops of a shown form with its notation nodes read as the products and differences they are."""
    return sp.count_ops(_plain(expr))


def _plain(expr):
    from symback.render.notation import Difference, OrderedSum, Parenthesized

    if isinstance(expr, Product):
        return sp.Mul(*(_plain(a) for a in expr.args), evaluate=False)
    if isinstance(expr, OrderedSum):
        return sp.Add(*(_plain(a) for a in expr.args), evaluate=False)
    if isinstance(expr, Difference):
        return sp.Add(_plain(expr.args[0]), sp.Mul(-1, _plain(expr.args[1]), evaluate=False), evaluate=False)
    if isinstance(expr, (FunctionPrime, FunctionOf)):
        return sp.Function(expr.name)(expr.arg)
    if isinstance(expr, Parenthesized):
        return _plain(expr.args[0])
    if isinstance(expr, (sp.Mul, sp.Add, sp.Pow)):
        return expr.func(*(_plain(a) for a in expr.args), evaluate=False)
    return expr


# -- ReLU′ is the unit step, proven from the formula ---------------------------------------------------------


def test_relu_prime_is_the_step_function():
    form = shown(Network([2, 2], "relu", "squared_error"), "w(L)_0_1")
    (relu,) = [f for f in form.factors if f.kind == "activation" and not isinstance(f.factor.wrt, sp.Indexed)]
    assert [text(f) for f in relu.line] == ["ReLU′(z(L)_0)", "H(z(L)_0)"]
    assert [latex(f) for f in relu.line] == [r"\mathrm{ReLU}'\left(z^{(L)}_{0}\right)", r"H\left(z^{(L)}_{0}\right)"]
    assert mathml(relu.line[-1]) == (
        '<math><mrow><mi>H</mi><mo stretchy="false">(</mo><msubsup><mi>z</mi><mrow><mn>0</mn></mrow>' + L
        + '</msubsup><mo stretchy="false">)</mo></mrow></math>')
    # H(0) is the derivative's own value at the jump (z > 0 is strict: 0), read from SymPy's Piecewise.
    (step,) = relu.simplest.atoms(sp.Heaviside)
    assert step.args[1] == 0


def test_step_form_is_only_claimed_when_it_is_proven_and_no_bigger():
    z = sp.Symbol("z", real=True)
    assert step_form(sp.Piecewise((1, z > 0), (0, True)), z) == sp.Heaviside(z, 0)
    assert step_form(sp.Piecewise((1, z >= 0), (0, True)), z) == sp.Heaviside(z, 1)  # H(0) = 1 here
    assert step_form(sp.Piecewise((1, z > 0), (sp.Rational(1, 100), True)), z) is None  # bigger than the brace
    assert step_form(sp.Piecewise((1, z > 0), (sp.exp(z), True)), z) is None  # not a step
    assert step_form(sp.Integer(1), z) is None


# -- the Kronecker delta is not written δ (the error's letter) ---------------------------------------------


def test_kronecker_delta_is_an_iverson_bracket_in_every_printer():
    j, q = sp.Idx("j", 2), sp.Idx("q", 2)
    delta = sp.KroneckerDelta(j, q)
    assert latex(delta) == r"\left[j = q\right]"
    assert text(delta) == "[j = q]"
    assert mathml(delta) == ('<math><mrow><mo stretchy="false">[</mo><mi>j</mi><mo>=</mo><mi>q</mi>'
                             '<mo stretchy="false">]</mo></mrow></math>')


# -- more golden MathML: the five-factor chain and the two paths in δ form ------------------------------------

L2 = "<mrow>" + TIGHT + "(</mo><mi>L</mi>" + TIGHT + "\u2212</mo><mn>2</mn>" + TIGHT + ")</mo></mrow>"
SIGMA_PRIME = '<msup><mi>σ</mi><mo>′</mo></msup><mo stretchy="false">(</mo>'


def test_seed001_five_factor_product_mathml():
    deep = shown(Network([1, 1, 1, 1], "sigmoid", "squared_error", names={"cost": "C0"}), "w(L-1)")
    assert mathml(eq(deep.lhs, deep.chain_order)) == (
        "<math><mrow><mfrac><mrow><mo>∂</mo><msub><mi>C</mi><mrow><mn>0</mn></mrow></msub></mrow>"
        "<mrow><mo>∂</mo><msup><mi>w</mi>" + L1 + "</msup></mrow></mfrac><mo>=</mo>"
        "<mrow><msup><mi>a</mi>" + L2 + "</msup><mo>\u2062</mo>"
        "<mrow>" + SIGMA_PRIME + "<msup><mi>z</mi>" + L1 + '</msup><mo stretchy="false">)</mo></mrow><mo>\u2062</mo>'
        "<msup><mi>w</mi>" + L + "</msup><mo>\u2062</mo>"
        "<mrow>" + SIGMA_PRIME + "<msup><mi>z</mi>" + L + '</msup><mo stretchy="false">)</mo></mrow><mo>\u2062</mo>'
        '<mrow><mn>2</mn><mo>\u2062</mo><mrow><mo stretchy="false">(</mo><mrow><msup><mi>a</mi>' + L + "</msup>"
        '<mo>\u2212</mo><mi>y</mi></mrow><mo stretchy="false">)</mo></mrow></mrow></mrow></mrow></math>'
    )


def test_two_paths_in_delta_form_mathml():
    form = shown(Network([2, 2, 2], "sigmoid", "squared_error"), "w(L-1)_0_0")

    def scripted(name, index, layer):
        return f"<msubsup><mi>{name}</mi><mrow>{index}</mrow>{layer}</msubsup>"

    def term(w_index):
        return ("<mrow><msub><mi>x</mi><mrow><mn>0</mn></mrow></msub><mo>\u2062</mo>"
                "<mrow>" + SIGMA_PRIME + scripted("z", "<mn>0</mn>", L1) + '<mo stretchy="false">)</mo></mrow>'
                "<mo>\u2062</mo>" + scripted("w", f"<mn>{w_index}</mn><mn>0</mn>", L)
                + "<mo>\u2062</mo>" + scripted("δ", f"<mn>{w_index}</mn>", L) + "</mrow>")

    assert mathml(eq(form.lhs, form.path_deltas)) == (
        "<math><mrow><mfrac><mrow><mo>∂</mo><mi>C</mi></mrow><mrow><mo>∂</mo>"
        + scripted("w", "<mn>0</mn><mn>0</mn>", L1) + "</mrow></mfrac><mo>=</mo>"
        "<mrow>" + term(0) + "<mo>+</mo>" + term(1) + "</mrow></mrow></math>"
    )


# -- seed 002's sum over the examples, in the seed's own form ----------------------------------------------


def test_seed002_sum_over_examples_golden(seed002):
    form = examples_form(derive(seed002.network, "b3"), 3)
    assert text(form.summed) == "Σ_{i=1}^{3} −2(observed_i − predicted_i) · 1"
    assert text(form.residuals) == "−2(residual_1 + residual_2 + residual_3)"
    assert latex(form.summed) == (
        r"\sum_{i=1}^{3} - 2 \left(\mathrm{observed}_{i} - \mathrm{predicted}_{i}\right) \cdot 1")
    assert latex(form.residuals) == (
        r"- 2 \left(\mathrm{residual}_{1} + \mathrm{residual}_{2} + \mathrm{residual}_{3}\right)")
    residual = '<msub><mi mathvariant="normal">residual</mi><mrow><mn>{}</mn></mrow></msub>'
    assert mathml(form.residuals) == (
        '<math><mrow><mo>\u2212</mo><mn>2</mn><mo>\u2062</mo><mrow><mo stretchy="false">(</mo><mrow>'
        + "<mo>+</mo>".join(residual.format(n) for n in (1, 2, 3))
        + '</mrow><mo stretchy="false">)</mo></mrow></mrow></math>')
    # The residual is the cost's own difference, target first: SymPy agrees it is what the cost squares.
    observed, predicted = (sp.Symbol(n) for n in ("observed", "predicted"))
    assert text(form.definition) == "residual_i = observed_i − predicted_i"
    assert sp.expand(form.coefficient * (observed - predicted)) == sp.expand(sp.diff((observed - predicted) ** 2,
                                                                                      predicted))


# -- expanded in the inputs: checked against finite differences of the forward cost -------------------------


@pytest.mark.parametrize(("network", "target"), [
    (Network([1, 1, 1], "sigmoid", "squared_error"), "w(L-1)"),
    (Network([2, 2, 2], "tanh", "binary_cross_entropy"), "w(L-1)_1_0"),
    (Network([1, 2, 1], ["softplus", "identity"], "ssr"), "b(L-1)_1"),
])
def test_expanded_form_is_the_derivative(network, target):
    """The expanded lines, multiplied and summed back (σ, tanh, softplus as their formulas), match a
    central difference of the forward cost written in the parameters, at a random point."""
    import random

    derivation = derive(network, target)
    shown_form = expanded_form(derivation)
    lines = shown_form.lines(lambda e: True)
    total, term = sp.S.Zero, None
    for join, piece in lines:
        if join in ("=", "+"):
            total += term if term is not None else 0
            term = _formula(piece)
        else:
            term = term * _formula(piece)
    total += term
    model = derivation.model
    cost = model.forward_expressions[next(r for r in model.refs.values() if r.kind == "C")]
    parameter = model.symbols[derivation.target]
    rng = random.Random(12)
    point = {s: sp.Float(rng.uniform(-0.9, 0.9), 30) for s in cost.free_symbols | total.free_symbols}
    point.update({s: sp.Float(rng.choice([0, 1]), 30) for s in point if s.name.startswith("y")})
    h = sp.Float("1e-8", 30)
    numeric = (cost.xreplace({**point, parameter: point[parameter] + h})
               - cost.xreplace({**point, parameter: point[parameter] - h})).evalf(30) / (2 * h)
    assert abs(float(total.xreplace(point).evalf(30)) - float(numeric)) < 1e-9


def test_expanded_form_refuses_the_index_form():
    from symback.errors import SpecError

    with pytest.raises(SpecError, match="needs the explicit form"):
        expanded_form(derive(Network([2, 3, 2], "sigmoid", "squared_error"), "w(L)_0_0", form="indexed"))


def _formula(expr):
    """A shown form as plain SymPy: σ, tanh, softplus as their formulas, notation nodes as what they are."""
    names = {v: k for k, v in PRIME_NAMES.items()}
    replaced = _plain(expr)
    for call in sorted(replaced.atoms(sp.core.function.AppliedUndef), key=lambda c: -sp.count_ops(c)):
        replaced = replaced.xreplace({call: get_activation(names[call.func.__name__]).at(_formula(call.args[0]))})
    return replaced


# -- the numeric screen before a proof of equality ---------------------------------------------------------------


def test_forms_that_differ_are_told_apart_at_a_probe_and_equal_ones_never_are():
    from symback.render.notation import _differ_at_a_probe, _equal

    z, y = sp.Symbol("z"), sp.Symbol("y")
    a_j = sp.IndexedBase("a")[sp.Symbol("j")]
    assert _differ_at_a_probe((z + 1) ** 50 * (z - 1) ** 50, sp.exp(z))
    assert _differ_at_a_probe(a_j * (1 - a_j), a_j - a_j**3)
    assert not _differ_at_a_probe(sp.expand((z + 1) ** 50 * (z - 1) ** 50), (z + 1) ** 50 * (z - 1) ** 50)
    assert not _differ_at_a_probe(a_j * (1 - a_j), a_j - a_j**2)
    assert not _differ_at_a_probe(sp.log(z - 5), sp.log(z - 5) + 0 * y)  # undefined (complex) at every probe: equal
    # A symbol assumed positive may make forms equal that differ at a negative probe: nothing is decided.
    p = sp.Symbol("p", positive=True)
    assert not _differ_at_a_probe(sp.sqrt(p**2), p) and _equal(sp.sqrt(p**2), p)
    # An unevaluated function decides nothing, and then the proof decides.
    f = sp.Function("f")
    assert not _differ_at_a_probe(f(z), f(z) + z - z)
    # Never "differ" where SymPy proves equal, over every pair of registered smooth activations' derivatives.
    from symback.render.notation import _is_zero

    smooth = [name for name in ACTIVATIONS if get_activation(name).elementwise
              and not get_activation(name).formula.has(sp.Piecewise)]
    assert {"sigmoid", "tanh", "softplus", "silu"} <= set(smooth)
    for first in smooth:
        for second in smooth:
            d1, d2 = (get_activation(name).derivative_at(z) for name in (first, second))
            if first == second or _is_zero(d1 - d2):
                assert not _differ_at_a_probe(d1, d2), (first, second)
            else:
                assert _differ_at_a_probe(d1, d2), (first, second)
