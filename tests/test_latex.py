"""symback's printer: seed 001 notation, index sums, escaping (tables of input → exact output)."""

from __future__ import annotations

import pytest
import sympy as sp

from symback import Network, derive
from symback.render.latex import ChainProduct, Partial, SymbackLatexPrinter, escape_latex, latex, mathml, name_latex

j, k = sp.Idx("j", 3), sp.Idx("k", 12)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("w1", "w_{1}"),
        ("b3", "b_{3}"),
        ("predicted", r"\mathrm{predicted}"),
        ("SSR", r"\mathrm{SSR}"),
        ("w(L)_0_1", "w^{(L)}_{01}"),
        ("w(L)_0_12", "w^{(L)}_{0,12}"),
        ("a(L-1)", "a^{(L-1)}"),
        ("a(L-1)_2", "a^{(L-1)}_{2}"),
        ("delta(L)", r"\delta^{(L)}"),
        ("x_0", "x_{0}"),
        ("C", "C"),
        ("sigma", r"\sigma"),
        ("dC/dw(L)[j, k]", r"\frac{\partial C}{\partial w^{(L)}_{jk}}"),
        ("nabla_b(L) C", r"\nabla_{b^{(L)}} C"),
        ("sigma'(z(L-1))", r"\sigma'\left(z^{(L-1)}\right)"),
    ],
)
def test_names(name, expected):
    assert name_latex(name) == expected
    assert latex(sp.Symbol(name)) == expected


def test_indexed_idx_and_sums():
    w = sp.IndexedBase("w(L)")
    delta = sp.IndexedBase("delta(L)")
    assert latex(w[j, k]) == "w^{(L)}_{jk}"
    assert latex(j) == "j"  # no range
    assert latex(delta[j]) == r"\delta^{(L)}_{j}"
    assert latex(sp.Sum(w[j, k] * delta[j], j)) == r"\sum_{j} \delta^{(L)}_{j} w^{(L)}_{jk}"
    assert latex(sp.IndexedBase("y")[j]) == "y_{j}"


def test_chain_products_keep_their_order():
    C, a, z, w = sp.symbols("C a(L) z(L) w(L)")
    chain = ChainProduct(Partial(C, a), Partial(a, z), Partial(z, w))
    assert latex(chain) == (
        r"\frac{\partial C}{\partial a^{(L)}} \cdot \frac{\partial a^{(L)}}{\partial z^{(L)}}"
        r" \cdot \frac{\partial z^{(L)}}{\partial w^{(L)}}"
    )


def test_golden_3blue1brown_chain():
    d = derive(Network([1, 1, 1], "sigmoid", "squared_error"), "w(L)")
    assert [latex(f.derivative) for f in d.paths[0]] == [
        r"2 a^{(L)} - 2 y",
        r"\frac{e^{- z^{(L)}}}{\left(1 + e^{- z^{(L)}}\right)^{2}}",
        r"a^{(L-1)}",
    ]
    assert latex(d.product) == (
        r"\frac{a^{(L-1)} \left(2 a^{(L)} - 2 y\right) e^{- z^{(L)}}}{\left(1 + e^{- z^{(L)}}\right)^{2}}"
    )


def test_golden_seed002_b3(seed002):
    d = derive(seed002.network, "b3")
    assert [latex(f.derivative) for f in d.paths[0]] == [r"- 2 \mathrm{observed} + 2 \mathrm{predicted}", "1", "1"]
    assert latex(d.simplified) == r"2 \left(- \mathrm{observed} + \mathrm{predicted}\right)"


EVIL = [r"w_{evil}\input{/etc/passwd}", "<script>alert(1)</script>", "$x$ & #1 ^ % ~ }{"]


@pytest.mark.parametrize("name", EVIL)
def test_names_that_are_not_identifiers_are_escaped(name):
    printed = latex(sp.Symbol(name))
    assert printed.startswith(r"\text{") and printed.endswith("}")
    body = printed[len(r"\text{") : -1]
    assert "\\input" not in body and "$" not in body.replace(r"\$", "")
    # Every brace inside is escaped: the \text{...} group cannot be closed early.
    assert body.replace(r"\{", "").replace(r"\}", "").replace("{}", "").count("{") == 0
    html = mathml(sp.Symbol(name))
    assert "<script" not in html and "<mtext>" in html


def test_escape_latex_table():
    assert escape_latex("a_b") == r"a\_b"
    assert escape_latex("\\") == r"\textbackslash{}"
    assert escape_latex("50% & $1 #2 ~ ^") == r"50\% \& \$1 \#2 \textasciitilde{} \textasciicircum{}"
    assert escape_latex("line\nbreak\x00") == "linebreak"


def test_mathml_structure():
    assert mathml(sp.Symbol("w(L)_0_1")) == (
        "<math><msubsup><mi>w</mi><mrow><mn>0</mn><mn>1</mn></mrow>"
        '<mrow><mo stretchy="false" lspace="0" rspace="0">(</mo><mi>L</mi>'
        '<mo stretchy="false" lspace="0" rspace="0">)</mo></mrow></msubsup></math>'
    )
    # SymPy's entity names come out as characters, not as escaped text.
    assert "&amp;" not in mathml(sp.Symbol("x") * sp.Symbol("y"))
    x = sp.Symbol("x")
    assert "&amp;" not in mathml(sp.Derivative(sp.Function("f")(x, sp.Symbol("y")), x))
    assert mathml(sp.Symbol("&lt;b&gt;")) == "<math><mtext>&lt;b&gt;</mtext></math>"  # still escaped


def test_printer_rejects_unknown_settings():
    with pytest.raises(TypeError):
        SymbackLatexPrinter({"no_such_setting": 1})


def test_the_mathml_printer_escapes_through_every_entry_point():
    import sympy as sp

    from symback.render.latex import SymbackMathMLPrinter

    printed = SymbackMathMLPrinter().doprint(sp.Symbol("<script>alert(1)</script>"))
    assert "<script>" not in printed and "&lt;script&gt;" in printed


def test_names_with_a_final_newline_are_text_not_notation():
    """``$`` matched before a final newline, so "w1\\n" was typeset as w_{1} (issue 11: match whole names)."""
    from symback.render.latex import parse_name

    for name in ("w1\n", "w(L)_0\n", "x_0\n", "sigma(z)\n"):
        assert parse_name(name).kind == "text", name
    assert parse_name("dC/dw1\n").parts[1].kind == "text"
    assert parse_name("w1").kind == "script" and parse_name("w(L)_0").kind == "script"


# -- MathML that is right (issue 12, item 7) ---------------------------------------------------------------

TIGHT = '<mo stretchy="false" lspace="0" rspace="0">'


def test_mathml_differentiated_sum_keeps_its_parentheses():
    # Seed 002's ∂/∂b3 (a0 w3 + a1 w4 + b3) and σ's d/dz (1 + e^{−z}): without the parentheses the
    # page read "∂/∂b₃ a₀w₃ + a₁w₄ + b₃ = 1".
    z, b3 = sp.Symbol("z"), sp.Symbol("b3")
    assert mathml(sp.Derivative(1 + sp.exp(-z), z, evaluate=False)) == (
        "<math><mrow><mfrac><mrow><mi>d</mi></mrow><mrow><mi>d</mi><mi>z</mi></mrow></mfrac>"
        '<mrow><mo stretchy="false">(</mo><mrow><mn>1</mn><mo>+</mo><msup><mi>e</mi><mrow><mo>\u2212</mo>'
        '<mi>z</mi></mrow></msup></mrow><mo stretchy="false">)</mo></mrow></mrow></math>'
    )
    a0, w3 = sp.Symbol("a0"), sp.Symbol("w3")
    assert mathml(sp.Derivative(a0 * w3 + b3, b3, evaluate=False)) == (
        "<math><mrow><mfrac><mrow><mo>∂</mo></mrow><mrow><mo>∂</mo><msub><mi>b</mi><mrow><mn>3</mn></mrow></msub>"
        '</mrow></mfrac><mrow><mo stretchy="false">(</mo><mrow><mrow><msub><mi>a</mi><mrow><mn>0</mn></mrow></msub>'
        "<mo>\u2062</mo><msub><mi>w</mi><mrow><mn>3</mn></mrow></msub></mrow><mo>+</mo><msub><mi>b</mi><mrow><mn>3</mn>"
        '</mrow></msub></mrow><mo stretchy="false">)</mo></mrow></mrow></math>'
    )
    # A negative term too, as the LaTeX printer writes \frac{d}{d z} \left(- z\right).
    assert mathml(sp.Derivative(-z, z, evaluate=False)) == (
        "<math><mrow><mfrac><mrow><mi>d</mi></mrow><mrow><mi>d</mi><mi>z</mi></mrow></mfrac>"
        '<mrow><mo stretchy="false">(</mo><mrow><mo>\u2212</mo><mi>z</mi></mrow><mo stretchy="false">)</mo></mrow></mrow></math>'
    )
    # A product needs none (LaTeX agrees: \frac{d}{dz} 2 z).
    assert "(" not in mathml(sp.Derivative(2 * z * sp.Symbol("y"), z, evaluate=False))


def test_mathml_minus_is_the_minus_sign():
    a, y = sp.Symbol("a(L)"), sp.Symbol("y")
    printed = mathml(a - y)
    assert "-" not in printed.replace("<math>", "") and printed.count("\u2212") == 1
    assert mathml(sp.Float("-15.7", 3)) == "<math><mn>\u221215.7</mn></math>"
    assert "-" not in mathml(-sp.Symbol("x") / 2) and "\u2212" in mathml(-sp.Symbol("x") / 2)


def test_mathml_layer_scripts_are_tight_msup_and_msubsup():
    # b^{(L)}_j is one msubsup (the j sits under the (L), not pushed right) and (L−1) has no gaps.
    b = sp.IndexedBase("b(L-1)")
    j = sp.Idx("j", 2)
    assert mathml(b[j]) == (
        "<math><msubsup><mi>b</mi><mrow><mi>j</mi></mrow><mrow>" + TIGHT + "(</mo><mi>L</mi>"
        + TIGHT + "\u2212</mo><mn>1</mn>" + TIGHT + ")</mo></mrow></msubsup></math>"
    )
    assert mathml(sp.Symbol("a(L)")) == (
        "<math><msup><mi>a</mi><mrow>" + TIGHT + "(</mo><mi>L</mi>" + TIGHT + ")</mo></mrow></msup></math>"
    )


def test_mathml_parentheses_stretch_only_around_tall_content():
    x = sp.Symbol("x")
    assert 'stretchy="false">(' in mathml((x + 1) ** 2)
    tall = mathml((x + 1 / (x + 2)) ** 2)
    assert "<mfrac>" in tall and "<mo>(</mo>" in tall
