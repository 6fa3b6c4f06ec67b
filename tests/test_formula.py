"""The whitelisting parser: what it accepts, what it refuses, and that it never evaluates text."""

from __future__ import annotations

import mpmath
import pytest
import sympy as sp
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from symback.errors import FormulaError
from symback.grammar.formula import parse_formula

z, a, y = sp.symbols("z a y")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("z/(1+exp(-z))", z / (1 + sp.exp(-z))),
        ("(a − y)^2", (a - y) ** 2),
        ("(a - y)**2", (a - y) ** 2),
        ("2×z ÷ 4", z / 2),
        ("2·z", 2 * z),
        ("-z^2", -(z**2)),
        ("2^3^2", sp.Integer(512)),
        ("0.01*z", z / 100),
        ("1e-3 + z", z + sp.Rational(1, 1000)),
        (".5*z", z / 2),
        ("max(0, z)", sp.Max(0, z)),
        ("sigmoid(z)", 1 / (1 + sp.exp(-z))),
        ("ln(e)", sp.Integer(1)),
        ("sqrt(z) + abs(z) - pi", sp.sqrt(z) + sp.Abs(z) - sp.pi),
    ],
)
def test_parses_arithmetic_and_whitelisted_functions(text, expected):
    assert parse_formula(text, {"z": z, "a": a, "y": y}) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('x')", "unexpected character \"'\""),
        ("__import__(z)", "unknown function '__import__'"),
        ("z.__class__", "unexpected character '.'"),
        ("eval(z)", "unknown function 'eval'"),
        ("q + z", "unknown symbol 'q' (allowed symbols: z)"),
        ("(z + 1", "expected ')' but found end of formula"),
        ("z +", "formula ends unexpectedly"),
        ("z z", "unexpected 'z'"),
        ("", "empty formula"),
        ("exp", "function 'exp' needs parentheses"),
        ("max(z)", "function 'max' takes 2 argument(s), got 1"),
        ("z / 0", "division by zero"),
        ("9^9^9^9", "number too large"),
        ("z*1e999999999", "number too large"),
        ("z*1e-999999999", "number too large"),
        ("(" * 200 + "z" + ")" * 200, "nested too deeply"),
        ("z; import os", "unexpected character ';'"),
        ("lambda: 1", "unexpected character ':'"),
    ],
)
def test_refuses_with_one_line_naming_the_problem(text, message):
    with pytest.raises(FormulaError) as info:
        parse_formula(text, {"z": z})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_never_calls_eval(monkeypatch):
    import builtins

    def forbidden(*args, **kwargs):
        raise AssertionError("eval was called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(sp, "sympify", forbidden)
    assert parse_formula("log(1 + exp(z))", {"z": z}) == sp.log(1 + sp.exp(z))


# -- property: printing a random expression and parsing it back gives the same expression ----------

_leaves = st.one_of(st.sampled_from([z, a, y]), st.integers(-9, 9).map(sp.Integer), st.fractions(-5, 5, max_denominator=9).map(sp.Rational))


def _extend(children):
    unary = st.sampled_from([sp.exp, sp.tanh, sp.sin, sp.log, sp.cos])
    return st.one_of(
        st.tuples(children, children).map(lambda p: p[0] + p[1]),
        st.tuples(children, children).map(lambda p: p[0] * p[1]),
        st.tuples(children, children).map(lambda p: p[0] - p[1]),
        st.tuples(children, st.integers(1, 4)).map(lambda p: p[0] ** p[1]),
        st.tuples(unary, children).map(lambda p: p[0](p[1])),
    )


@settings(max_examples=200, deadline=None)
@given(st.recursive(_leaves, _extend, max_leaves=12))
@example(sp.sin(sp.exp(7)))  # exp(7) = 1096.6: the periodic-argument rule below
def test_round_trip_of_printed_expressions(expression):
    assume(not expression.has(sp.zoo, sp.oo, -sp.oo, sp.nan, sp.I))
    text = sp.sstr(expression).replace("**", "^").replace("E", "e")  # SymPy prints exp(1) as E
    try:
        parsed = parse_formula(text, {"z": z, "a": a, "y": y})
    except FormulaError as error:
        # A constant past float64's range (exp(1296)) or not real is refused, and only such a one.
        constants = [node for node in sp.preorder_traversal(expression) if node.is_number and not node.is_Rational]
        assert "number too large" in str(error) or "not a real number" in str(error) or "not a finite" in str(error)
        assert any(abs(complex(sp.N(c, 30))) > 1.7e308 or sp.im(sp.N(c, 30)) != 0 for c in constants)
        return
    # Structure may differ only where SymPy itself auto-distributes (-(a + z) -> -a - z).
    if parsed == expression or sp.expand(parsed - expression) == 0:
        return
    # A rational past 2^53 is read as a correctly rounded Float (the parser's documented rule), and only
    # such a one: then the two agree to float64 rounding.
    big = [r for r in sp.preorder_traversal(expression) if r.is_Rational and max(abs(r.p), r.q) > 2**53]
    # sin/cos/tan of a constant past 1024 is evaluated exactly and kept as a Float (the parser's rule:
    # NumPy would round the argument first), and only such a one.
    periodic = [f for f in sp.preorder_traversal(expression) if isinstance(f, (sp.sin, sp.cos, sp.tan))
                and f.args[0].is_number and abs(sp.N(f.args[0], 30)) > 1024]
    assert big or periodic, (parsed, expression)
    point = {z: sp.Rational(7, 10), a: sp.Rational(3, 10), y: sp.Rational(1, 5)}
    want, got = complex(sp.N(expression.subs(point), 30)), complex(sp.N(parsed.subs(point), 30))
    assert abs(got - want) <= 1e-12 * max(abs(want), 1e-300), (parsed, expression)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="za+-*/^()., 0123456789expltgqs_'\"[]{};:", max_size=40))
def test_arbitrary_text_parses_or_raises_formula_error(text):
    try:
        result = parse_formula(text, {"z": z})
    except FormulaError as error:
        assert "\n" not in str(error)
    else:
        assert isinstance(result, sp.Expr)
        assert result.free_symbols <= {z}


# -- numbers: bounded precision, float64's range, one-line errors (issue 11) -------------------------

_HANG_GUARD = 120  # seconds: these formulas hung uninterruptibly before; a regression fails, never hangs


def _parse_in_subprocess(text: str) -> str:
    """The parser's answer in a child process (a C-level big-integer hang cannot be interrupted)."""
    import subprocess
    import sys

    program = (
        "import sympy as sp\n"
        "from symback.grammar.formula import parse_formula\n"
        "from symback.errors import FormulaError\n"
        "z = sp.Symbol('z')\n"
        "try:\n"
        f"    print('ok', parse_formula({text!r}, {{'z': z}}))\n"
        "except FormulaError as error:\n"
        "    print('error', error)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=_HANG_GUARD)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("((0.1^1000)^1000)^1000", "number too small: 0.1^1000 is about 1.0e-1000"),
        ("cos(exp(10^10))^2", "number too large: exp(10^10) is about 1.08e+4342944819"),
        ("z*sin(exp(10^10))", "number too large: exp(10^10)"),
    ],
)
def test_constants_that_hung_the_parser_are_refused(text, message):
    answer = _parse_in_subprocess(text)
    assert answer.startswith("error ") and message in answer
    assert "\n" not in answer


def test_a_huge_integer_to_a_tiny_power_is_a_float():
    answer = _parse_in_subprocess("123456789012345678901234567890^(-0.000001)")
    assert answer.startswith("ok ")
    expected = mpmath.power(mpmath.mpf(123456789012345678901234567890), mpmath.mpf(-1) / 10**6)
    assert abs(float(answer.split()[1]) - float(expected)) <= 1e-16


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max(exp(exp(exp(1000))), z)", "number too large: exp(1000) is about 1.97e+434"),
        ("z*3.14159^1000", "number too large: 3.14159^1000 is about 1.41e+497"),
        ("(a - y)^2 + 1e400", "number too large: 1e400"),
        ("(a - y)^2 + log(0)", "log(0) is not a finite number"),
        ("(a - y)^2 * (-8)^(1/3)", "(-8)^(1/3) is not a real number"),
        ("sqrt(-4) + z", "sqrt(-4) is not a real number"),
        ("z*1e-330", "number too small: 1e-330"),
        ("z*2^-1075", "number too small: 2^-1075"),
        ("1" * 4990, "number too large: 1111"),
        ("z^1001", "exponent too large (at most 1000)"),
    ],
)
def test_numbers_outside_float64_or_not_real_are_one_line_errors(text, message):
    with pytest.raises(FormulaError) as info:
        parse_formula(text, {"z": z, "a": a, "y": y})
    assert message in str(info.value)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def _mp(value: float | mpmath.mpf) -> mpmath.mpf:
    return mpmath.mpf(value)


@pytest.mark.parametrize(
    ("text", "true_constant"),
    [
        # NumPy cannot take tan or sqrt of a Python integer past 2^63: these are Floats, correctly rounded.
        ("z + tan(10^20)", lambda: mpmath.tan(mpmath.mpf(10) ** 20)),
        ("z + sqrt(123456789012345678901234567890)", lambda: mpmath.sqrt(123456789012345678901234567890)),
        # NumPy would take cos of exp(700) rounded to a float64, another number altogether.
        ("z + cos(exp(700))", lambda: mpmath.cos(mpmath.exp(700))),
        ("z + 2^60", lambda: mpmath.mpf(2) ** 60),
        ("z + 1e-310", lambda: mpmath.mpf("1e-310")),
    ],
)
def test_large_constants_are_correctly_rounded_floats(text, true_constant):
    import numpy as np

    parsed = parse_formula(text, {"z": z})
    constant = parsed - z
    assert constant.is_Float
    with mpmath.workdps(400):  # cos(exp(700)) needs the 1,010 bits of exp(700) and more
        expected = true_constant()
        assert abs(mpmath.mpf(constant._mpf_) - expected) <= abs(expected) * 1e-16
    from symback.compile.compiler import lambdify

    values = lambdify([z], parsed)(np.array([0.0, 1.0]))
    assert values.dtype == np.float64 and values[0] == float(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2^60 - 2^60 + z", z),  # exact within 2^53 per part; the Floats cancel to 0
        ("8^(1/3)*z", 2 * z),
        ("sqrt(2)*z", sp.sqrt(2) * z),
        ("exp(2)*z + pi^2", sp.exp(2) * z + sp.pi**2),
        ("0.123456789012345*z", sp.Rational(123456789012345, 10**15) * z),
        ("z^1000", z**1000),
    ],
)
def test_small_constants_stay_exact(text, expected):
    assert sp.simplify(parse_formula(text, {"z": z}) - expected) == 0
