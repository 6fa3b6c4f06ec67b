"""Claims files: claimed numbers keep their written digits; quantities in the author's notation parse safely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symback import Network, load_spec
from symback.errors import FormulaError, SpecError
from symback.verification.claims import (
    ClaimValue,
    InvalidClaim,
    Notation,
    NumericClaim,
    UpdateClaim,
    claims_from_text,
    load_claims,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def notation() -> Notation:
    return Notation(load_spec(EXAMPLES / "seed002.toml").network)


# -- claimed values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "true", "right"),
    [
        ("-15.7", -15.655108, True),  # rounds to the digits written
        ("-15.7", -15.75, True),  # exactly half-way counts as right
        ("-15.7", -15.6, False),
        ("-15.70", -15.655108, False),  # four significant digits written: -15.66
        ("1.57", 1.5655, True),
        ("-1.57", 1.5655, False),
        ("1.20e3", 1204.9, True),
        ("1.20e3", 1205.1, False),
        ("2", 2.4, True),
        ("2", 2.6, False),
        ("−0.626", -0.62620, True),  # a typographic minus
    ],
)
def test_value_matches_when_the_true_value_rounds_to_the_written_digits(written: str, true: float, right: bool) -> None:
    assert ClaimValue.parse(written).matches(true) is right


def test_explicit_tolerance_overrides_the_digits() -> None:
    value = ClaimValue.parse("-6.26", tolerance=0.05)
    assert value.matches(-6.235) and not value.matches(-6.32)


@pytest.mark.parametrize("bad", ["abc", "", "nan", "inf", True, [1]])
def test_bad_values_are_rejected(bad: object) -> None:
    with pytest.raises(SpecError):
        ClaimValue.parse(bad)


@settings(max_examples=200, deadline=None)
@given(
    true=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).filter(lambda v: v == 0 or abs(v) > 1e-9),
    digits=st.integers(min_value=1, max_value=8),
)
def test_a_value_rounded_to_any_digits_is_right_and_two_units_off_is_wrong(true: float, digits: int) -> None:
    written = ClaimValue.parse(format(true, f".{digits}g"))
    assert written.matches(true)
    off = ClaimValue.parse(str(written.decimal + 4 * Decimal_unit(written)))
    assert not off.matches(true)


def Decimal_unit(value: ClaimValue):  # noqa: N802 - reads like the quantity it is
    from decimal import Decimal

    exponent = value.decimal.as_tuple().exponent
    return Decimal(1).scaleb(exponent)


# -- the author's notation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dSSR/db3", "Derivative(SSR, b3)"),
        ("d(SSR)/d(b3)", "Derivative(SSR, b3)"),
        ("∂SSR/∂b3", "Derivative(SSR, b3)"),
        ("dssr/dpredicted", "Derivative(SSR, predicted)"),  # names match ignoring case
        ("d(C)/d(w(L)_0_1)", "Derivative(SSR, w4)"),  # canonical names inside d(...)
        ("d(a(L-1)_0)/d(z(L-1)_0)", "Derivative(a(L-1)_0, z(L-1)_0)"),
        ("(Observed - Predicted)^2", "(observed - predicted)**2"),
        ("residual", "observed - predicted"),
        ("a(1 - a)", "predicted*(1 - predicted)"),  # implicit multiplication by a node
        ("dssr/dpredicted * dpredicted/db3", "Derivative(SSR, predicted)*Derivative(predicted, b3)"),
        ("d(observed - predicted)/d(predicted)", "Derivative(observed - predicted, predicted)"),
        ("2*w1 + exp(b1)", "2*w1 + exp(b1)"),
        ("1e-3*b3", "b3/1000"),
    ],
)
def test_quantities_parse_in_the_authors_notation(notation: Notation, text: str, expected: str) -> None:
    assert str(notation.parse(text)) == expected


def test_derivatives_stay_unevaluated_for_the_judge(notation: Notation) -> None:
    parsed = notation.parse("dpredicted/db3")
    assert isinstance(parsed, sp.Derivative)
    assert parsed.expr == notation.names["predicted"] and parsed.variables == (notation.names["b3"],)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dfoo/db3", "unknown symbol 'dfoo'"),
        ("d(SSR)/d(b3 + 1)", "with respect to one node name"),
        ("(b3", "expected ')'"),
        ("__import__('os')", "double underscore"),
        ("import('os')", "unexpected character"),
        ("d(SSR^2)/d(b3)", "the cost may appear in d(...) only on its own"),
        ("d(dSSR/db3)/d(b3)", "second derivatives"),
        ("open(b3)", "unknown function 'open'"),
    ],
)
def test_bad_quantities_raise_a_formula_error(notation: Notation, text: str, message: str) -> None:
    with pytest.raises(FormulaError, match=None) as caught:
        notation.parse(text)
    assert message in str(caught.value)


def test_case_insensitive_matching_refuses_ambiguous_names() -> None:
    net = Network([1, 2, 1], "sigmoid", "ssr", names={"w(1)_0_0": "Ab", "w(1)_1_0": "aB"})
    notation = Notation(net)
    assert str(notation.parse("Ab + aB")) == "Ab + aB"  # exact spellings are fine
    with pytest.raises(FormulaError, match="ambiguous"):
        notation.parse("ab")


@settings(max_examples=60, deadline=None)
@given(
    numerator=st.sampled_from(["SSR", "ssr", "C", "predicted", "z", "a", "a(L-1)_1", "z(1)_0"]),
    denominator=st.sampled_from(["w1", "W2", "b3", "B1", "w(L)_0_1", "b(1)_1", "z(L)", "a(L-1)_0"]),
    top=st.sampled_from(["d({})", "d{}", "∂{}", "d ({})"]),
    bottom=st.sampled_from(["d({})", "d{}", "∂{}"]),
    slash=st.sampled_from(["/", " / "]),
)
def test_every_derivative_spelling_parses_to_the_same_derivative(
    notation: Notation, numerator: str, denominator: str, top: str, bottom: str, slash: str
) -> None:
    # Canonical names carry parentheses, so they are written inside d(...).
    top = top if "(" not in numerator else "d({})"
    bottom = bottom if "(" not in denominator else "d({})"
    parsed = notation.parse(top.format(numerator) + slash + bottom.format(denominator))
    assert isinstance(parsed, sp.Derivative)
    assert parsed.expr == notation.parse(numerator)
    assert parsed.variables == (notation.parse(denominator),)


# -- claims files -----------------------------------------------------------------------------------

HEADER = f'spec = "{(EXAMPLES / "seed002.toml").as_posix()}"\n'


def test_the_seed_example_reads_into_frozen_claims_in_order() -> None:
    claims = load_claims(EXAMPLES / "seed002_claims.toml")
    assert [c.kind for c in claims.claims] == ["symbolic"] * 6 + ["numeric", "update", "update", "update"]
    assert not claims.invalid
    numeric = claims.claims[6]
    assert isinstance(numeric, NumericClaim) and numeric.value.text == "-15.7" and numeric.at[0][1] == 0.0
    update = claims.claims[7]
    assert isinstance(update, UpdateClaim) and update.new is not None and update.new.text == "-1.57"
    assert claims.claims[-1].until_step_below == pytest.approx(0.001)  # type: ignore[union-attr]
    assert claims.claims[0].line is not None
    with pytest.raises(AttributeError):
        numeric.value = None  # type: ignore[misc]


def test_toml_floats_keep_their_written_digits() -> None:
    claims = claims_from_text(HEADER + '[[claim]]\nquantity = "dSSR/db3"\nvalue = -15.70\n')
    value = claims.claims[0].value  # type: ignore[union-attr]
    assert value.text == "-15.70" and value.half_unit == pytest.approx(0.005)


@pytest.mark.parametrize(
    ("claim", "message"),
    [
        ('quantity = "dSSR/db3"\nvalue = "1"\ncolour = "red"', "unknown key 'colour' in a numeric claim"),
        ('quantity = "dSSR/dq"\nvalue = "1"', "unknown symbol 'dSSR'"),
        ('quantity = "dSSR/db3"', "exactly one of value"),
        ('quantity = "dSSR/db3"\nvalue = "1"\nexpression = "1"', "exactly one of value"),
        ('update = "b3"\nnew = "1"', "needs learning_rate"),
        ('update = "predicted"\nlearning_rate = 0.1\nnew = "1"', "not a weight or bias"),
        ('update = "b3"\nlearning_rate = 0.1\nsteps = 3\nslope = "1"', "slope and step belong to a single step"),
        ('set = { predicted = 1 }', "not a weight or bias"),
        ('value = "1"', "exactly one of quantity"),
        ('quantity = "dSSR/db3"\nvalue = "one"', "is not a number"),
    ],
)
def test_a_malformed_claim_names_its_line_and_the_others_still_parse(claim: str, message: str) -> None:
    text = HEADER + '[[claim]]\nquantity = "b3"\nvalue = "0"\n\n[[claim]]\n' + claim + '\n\n[[claim]]\nset = { b3 = 1 }\n'
    claims = claims_from_text(text)
    bad = claims.claims[1]
    assert isinstance(bad, InvalidClaim)
    assert bad.message.startswith("claim 2 (line 6): ") and message in bad.message
    assert "\n" not in bad.message
    assert [c.kind for c in claims.claims] == ["numeric", "invalid", "set"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[claim]\n", "invalid TOML"),
        ('spec = "no-such-file.toml"\n[[claim]]\nquantity = "b3"\nvalue = "0"\n', "not found"),
        ('[[claim]]\nquantity = "b3"\nvalue = "0"\n', "no network"),
        (HEADER, "no claims"),
        (HEADER + "colour = 1\n", "unknown key or section 'colour'"),
        (HEADER + '[network]\nlayers = [1, 1]\n[[claim]]\nquantity = "b3"\nvalue = "0"\n', "not both"),
    ],
)
def test_an_unusable_file_is_one_spec_error(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=None) as caught:
        claims_from_text(text, base=EXAMPLES)
    assert message in str(caught.value)


def test_inline_network_and_overrides() -> None:
    text = """
[network]
layers = [1, 1]
activations = "sigmoid"
cost = "squared_error"
[names]
"w(L)" = "w"
[parameters]
w = 0.5
[data]
x = [1.0, 2.0]
y = [0.0, 1.0]
[[claim]]
quantity = "w"
value = "0.5"
"""
    claims = claims_from_text(text)
    assert claims.spec.parameters.weights[0][0, 0] == 0.5 and len(claims.spec.data) == 2
    overridden = claims_from_text(HEADER + "[parameters]\nb3 = 1.5\n[data]\nx = [0]\ny = [1]\n[[claim]]\nquantity = \"b3\"\nvalue = \"1.5\"\n")
    assert overridden.spec.parameters.biases[1][0] == 1.5 and len(overridden.spec.data) == 1


@pytest.mark.parametrize("key", ["steps", "max_steps"])
def test_an_update_claim_past_the_step_limit_is_one_line(key):
    """steps = 10^12 ran for ever; the limit is said on one line before any step is taken."""
    from symback.verification.claims import MAX_CLAIM_STEPS

    extra = "steps = 1000000000000" if key == "steps" else "until_step_below = 0.001\nmax_steps = 1000000000000"
    text = (f"spec = {json.dumps(str(EXAMPLES / 'seed002.toml'))}\n[[claim]]\nupdate = \"b3\"\nlearning_rate = 0.1\n"
            f"at = {{ b3 = 0 }}\n{extra}\nnew = \"2.21\"\n")
    claims = claims_from_text(text)
    (invalid,) = claims.invalid
    assert f"{key} = 1,000,000,000,000 is past the limit of {MAX_CLAIM_STEPS:,} steps" in invalid.message


# -- the notation people type (issue 13) --------------------------------------------------------------

SIGMOID_NET = Network([1, 1], "sigmoid", "squared_error")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dC/da(L)", "Derivative(C, a(L))"),  # was "unknown function '__sb0'"
        ("da(L)/dz(L)", "Derivative(a(L), z(L))"),
        ("dC/dw(L)", "Derivative(C, w(L))"),
        ("dE/dw(L)", "Derivative(C, w(L))"),
        ("∂E_total/∂b(L)", "Derivative(C, b(L))"),
        ("a(L)(1 - a(L))", "a(L)*(1 - a(L))"),
        ("2(a - y)", "2*a(L) - 2*y"),
        ("(a - y)(-1)", "-a(L) + y"),
        ("1/2 (y - a)^2", "(-a(L) + y)**2/2"),
        ("σ(z)", "1/(1 + exp(-z(L)))"),
        ("σ′(z)", "exp(-z(L))/(1 + exp(-z(L)))**2"),
        ("sigma'(z)", "exp(-z(L))/(1 + exp(-z(L)))**2"),
        ("δ", "Derivative(C, z(L))"),
        ("delta(L)", "Derivative(C, z(L))"),
        ("−a", "-a(L)"),
        ("2 × a · 3 * y", "6*a(L)*y"),
        ("-15.7 x 0.1", "-157/100"),
        ("a^2 ** 2", "a(L)**4"),
        ("e^-z", "exp(-z(L))"),
        ("Σ residual", "ExampleSum(-a(L) + y)"),
        ("sum of (y - a)^2", "ExampleSum((-a(L) + y)**2)"),
        ("Σ_i 2(a - y) + 1", "ExampleSum(2*a(L) - 2*y) + 1"),
        ("target1 - output2", "-AtExample(a(L), 1) + AtExample(y, 0)"),
    ],
)
def test_the_notation_people_type(text: str, expected: str) -> None:
    assert str(Notation(SIGMOID_NET, examples=2).parse(text)) == expected


def test_sigma_of_a_weighted_input_is_that_layers_activation() -> None:
    notation = Notation(Network([1, 1, 1], ["tanh", "sigmoid"], "squared_error"))
    assert notation.parse("σ(z(L-1))") == sp.tanh(notation.names["z(L-1)"])
    assert notation.parse("σ′(z(L-1))") == 1 - sp.tanh(notation.names["z(L-1)"]) ** 2


def test_the_seed002_enumerated_sum_reads_each_example() -> None:
    seed = Notation(load_spec(EXAMPLES / "seed002.toml").network, examples=3)
    parsed = seed.parse("-2 * [(Observed1 - Predicted1) * 1 + (Observed3 - Predicted3) * 1]")
    assert str(parsed) == "-2*AtExample(observed, 0) - 2*AtExample(observed, 2) + 2*AtExample(predicted, 0) + 2*AtExample(predicted, 2)"
    with pytest.raises(FormulaError, match="Observed4"):
        seed.parse("Observed4")  # there are three examples


def test_an_unknown_function_is_named_as_written() -> None:
    with pytest.raises(FormulaError) as caught:
        Notation(SIGMOID_NET).parse("dC/da(L) * open(a(L))")
    assert "unknown function 'open'" in str(caught.value) and "__" not in str(caught.value)


_PIECES = st.sampled_from([
    "dC/da(L)", "da(L)/dz(L)", "a(L)", "(", ")", "[", "]", "σ", "σ′(", "sigma'", "δ", "delta(", "Σ", "sum of ",
    "*", "x", " x ", "×", "^", "**", "-", "−", "+", "/", "2", "0.5", "e", "exp(", "d", "∂", "(L)", "_0", "y", "z",
    " ", "foo", "foo(", "Observed1", "w(L-1)", "a(3)", "'", ",", "1e5", "Σ_i", "residual", "b(L)",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, min_size=1, max_size=10).map("".join))
def test_internal_names_never_appear_in_a_message(text: str) -> None:
    notation = Notation(SIGMOID_NET, examples=2)
    try:
        notation.parse(text)
    except FormulaError as error:
        assert "__" not in str(error), str(error)
        assert "\n" not in str(error)
