"""A whitelisting parser for user formulas.

``sympy.sympify`` and ``parse_expr`` run ``eval`` on their input, so they must
never see text from a spec or claims file.  This module tokenises the text and
builds the SymPy expression itself with a small recursive-descent parser that
knows only numbers, the symbols the caller allows, ``+ - * / ^`` (and ``**``,
``−``, ``×``, ``·``, ``÷``), parentheses and a fixed set of functions.

>>> import sympy as sp
>>> z = sp.Symbol("z")
>>> parse_formula("z/(1+exp(-z))", {"z": z})
z/(1 + exp(-z))
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import mpmath
import sympy as sp

from ..errors import FormulaError

__all__ = ["FUNCTIONS", "CONSTANTS", "parse_formula"]

#: Functions a formula may call, by name, with their arity.
FUNCTIONS: dict[str, tuple[int, Callable[..., sp.Expr]]] = {
    "exp": (1, sp.exp),
    "log": (1, sp.log),
    "ln": (1, sp.log),
    "sqrt": (1, sp.sqrt),
    "abs": (1, sp.Abs),
    "tanh": (1, sp.tanh),
    "sinh": (1, sp.sinh),
    "cosh": (1, sp.cosh),
    "sin": (1, sp.sin),
    "cos": (1, sp.cos),
    "tan": (1, sp.tan),
    "atan": (1, sp.atan),
    "erf": (1, sp.erf),
    "sigmoid": (1, lambda x: 1 / (1 + sp.exp(-x))),
    "softplus": (1, lambda x: sp.log(1 + sp.exp(x))),
    "max": (2, sp.Max),
    "min": (2, sp.Min),
}

#: Named constants; a symbol of the same name given by the caller wins.
CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "e": sp.E}

_MAX_LENGTH = 5000
_MAX_DEPTH = 100
_MAX_INTEGER_EXPONENT = 1000

# Numbers are checked in bounded precision (quadruple, 113 bits) before SymPy sees them: an exact
# 10^(10^6) or exp(10^10) sends SymPy's own evaluation into hours of arithmetic that no signal
# can interrupt.  Constants are exact while their numerator and denominator fit a float64's
# 53-bit significand (0.1 stays 1/10); larger ones become Floats of 17 digits, which NumPy can
# take (a Python integer past 2^63 cannot go into numpy.sqrt or numpy.tan).
_PRECISION = 113
_EXACT_LIMIT = 2**53
_FLOAT_DIGITS = 17
_FLOAT_MAX = mpmath.mpf(1.7976931348623157e308)
_FLOAT_TINY = mpmath.mpf(5e-324)  # the smallest positive (subnormal) float64
#: Roots kept exact only up to this degree (8^(1/3) = 2, sqrt(2)); x^(1/1000000) becomes a Float.
_MAX_EXACT_ROOT = 12

_PERIODIC = frozenset({"sin", "cos", "tan"})

#: mpmath twins of :data:`FUNCTIONS`, to check a constant before SymPy builds it.
_NUMERIC: dict[str, Callable[..., mpmath.mpf]] = {
    "exp": mpmath.exp,
    "log": mpmath.log,
    "ln": mpmath.log,
    "sqrt": mpmath.sqrt,
    "abs": mpmath.fabs,
    "tanh": mpmath.tanh,
    "sinh": mpmath.sinh,
    "cosh": mpmath.cosh,
    "sin": mpmath.sin,
    "cos": mpmath.cos,
    "tan": mpmath.tan,
    "atan": mpmath.atan,
    "erf": mpmath.erf,
    "sigmoid": lambda x: 1 / (1 + mpmath.exp(-x)),
    "softplus": lambda x: mpmath.log1p(mpmath.exp(x)),
    "max": max,
    "min": min,
}

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|[-+*/^(),\u2212\u00d7\u00b7\u22c5\u00f7])
    """,
    re.VERBOSE,
)
_OP_ALIASES = {"\u2212": "-", "\u00d7": "*", "\u00b7": "*", "\u22c5": "*", "\u00f7": "/", "**": "^"}


@dataclass(frozen=True)
class _Token:
    kind: str  # "number", "name", "op" or "end"
    text: str
    position: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise FormulaError(
                f"unexpected character {text[position]!r} at position {position} in formula {text!r}"
            )
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            token_text = match.group()
            if kind == "op":
                token_text = _OP_ALIASES.get(token_text, token_text)
            tokens.append(_Token(kind, token_text, position))
        position = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    """Recursive descent over the grammar::

        expr   := term (("+" | "-") term)*
        term   := unary (("*" | "/") unary)*
        unary  := ("+" | "-") unary | power
        power  := atom ("^" unary)?          # right-associative, binds tighter than unary minus
        atom   := NUMBER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"
    """

    def __init__(self, text: str, symbols: Mapping[str, sp.Basic], functions: Mapping[str, tuple[int, Callable]]):
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0
        self.symbols = symbols
        self.functions = functions

    # -- helpers -----------------------------------------------------------
    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, message: str, token: _Token | None = None) -> FormulaError:
        token = token or self.current
        where = "end" if token.kind == "end" else f"position {token.position}"
        shown = self.text if len(self.text) <= 100 else self.text[:97] + "..."
        return FormulaError(f"{message} at {where} in formula {shown!r}")

    def expect(self, op: str) -> None:
        if self.current.kind != "op" or self.current.text != op:
            found = "end of formula" if self.current.kind == "end" else repr(self.current.text)
            raise self.error(f"expected {op!r} but found {found}")
        self.advance()

    def is_op(self, *ops: str) -> bool:
        return self.current.kind == "op" and self.current.text in ops

    # -- grammar -----------------------------------------------------------
    def parse(self) -> sp.Expr:
        if self.current.kind == "end":
            raise FormulaError(f"empty formula {self.text!r}")
        result = self.expr()
        if self.current.kind != "end":
            raise self.error(f"unexpected {self.current.text!r}")
        return result

    def expr(self) -> sp.Expr:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.error("formula nested too deeply")
        start = self.current.position
        result = self.term()
        while self.is_op("+", "-"):
            op = self.advance().text
            right = self.term()
            if op == "+":
                result = self.constant(start, operator.add, operator.add, result, right)
            else:
                result = self.constant(start, operator.sub, operator.sub, result, right)
        self.depth -= 1
        return result

    def term(self) -> sp.Expr:
        start = self.current.position
        result = self.unary()
        while self.is_op("*", "/"):
            op = self.advance().text
            right = self.unary()
            if op == "/" and right == 0:
                raise self.error("division by zero")
            if op == "*":
                result = self.constant(start, operator.mul, operator.mul, result, right)
            else:
                result = self.constant(start, operator.truediv, operator.truediv, result, right)
        return result

    def unary(self) -> sp.Expr:
        if self.is_op("+", "-"):
            op = self.advance().text
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise self.error("formula nested too deeply")
            operand = self.unary()
            self.depth -= 1
            return -operand if op == "-" else operand
        return self.power()

    def power(self) -> sp.Expr:
        start = self.current.position
        base = self.atom()
        if self.is_op("^"):
            caret = self.advance()
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise self.error("formula nested too deeply")
            exponent = self.unary()
            self.depth -= 1
            if base == 0 and exponent.is_number and exponent.is_negative:
                raise self.error("division by zero", caret)
            if base.is_number and exponent.is_number:
                return self.constant(start, _power, mpmath.power, base, exponent)
            if exponent.is_Integer and abs(exponent) > _MAX_INTEGER_EXPONENT:
                # (z+1)^1000000 would expand into a million terms wherever SymPy expands it.
                raise self.error(f"exponent too large (at most {_MAX_INTEGER_EXPONENT})", caret)
            return base**exponent
        return base

    def atom(self) -> sp.Expr:
        token = self.current
        if token.kind == "number":
            self.advance()
            exponent = token.text.lower().partition("e")[2]
            if exponent and abs(int(exponent)) > _MAX_INTEGER_EXPONENT:
                raise self.error("number too large", token)  # 1e999999999 would be a billion-digit integer
            return self.literal(token)
        if token.kind == "name":
            self.advance()
            if self.is_op("("):
                return self.call(token)
            if token.text in self.symbols:
                return self.symbols[token.text]
            if token.text in CONSTANTS:
                return CONSTANTS[token.text]
            if token.text in self.functions:
                raise self.error(f"function {token.text!r} needs parentheses", token)
            allowed = ", ".join(sorted(self.symbols)) or "none"
            raise self.error(f"unknown symbol {token.text!r} (allowed symbols: {allowed})", token)
        if self.is_op("("):
            self.advance()
            result = self.expr()
            self.expect(")")
            return result
        if token.kind == "end":
            raise self.error("formula ends unexpectedly")
        raise self.error(f"unexpected {token.text!r}")

    def call(self, name: _Token) -> sp.Expr:
        if name.text not in self.functions:
            allowed = ", ".join(sorted(self.functions))
            raise self.error(f"unknown function {name.text!r} (allowed functions: {allowed})", name)
        arity, build = self.functions[name.text]
        self.expect("(")
        arguments = [self.expr()]
        while self.is_op(","):
            self.advance()
            arguments.append(self.expr())
        self.expect(")")
        if len(arguments) != arity:
            raise self.error(f"function {name.text!r} takes {arity} argument(s), got {len(arguments)}", name)
        result = self.constant(name.position, build, _NUMERIC.get(name.text), *arguments)
        if name.text in _PERIODIC and result.is_number and not result.is_Number:
            with mpmath.workprec(_PRECISION):
                if abs(_value(arguments[0])) > 1024:
                    # NumPy would round the argument to a float64 first, and cos of a large rounded
                    # argument is another number: keep the value evaluated exactly instead.
                    return self.as_number(_value(result), name.position, self.current.position)
        return result

    # -- numbers -----------------------------------------------------------
    def literal(self, token: _Token) -> sp.Expr:
        """A number as written: exact (Rational) when small, else a Float; never past float64's range."""
        match = re.fullmatch(r"(\d*)\.?(\d*)(?:[eE]([+-]?\d+))?", token.text)
        assert match is not None  # the tokenizer matched the same pattern
        whole, fraction, exponent = match.group(1), match.group(2), int(match.group(3) or 0)
        digits = (whole + fraction).lstrip("0") or "0"
        scale = exponent - len(fraction)  # the value is digits × 10^scale
        if len(digits) <= 16 and -16 <= scale and len(digits) + scale <= 16:
            # Exact while small (the same rule as arithmetic on constants), so 0.1*z stays z/10 and
            # symbolic comparisons are exact.
            exact = sp.Integer(digits) * sp.Rational(10) ** scale
            if _small(exact):
                return exact
        kept = digits[:40]  # 40 digits decide a float64's rounding; more would only cost time
        with mpmath.workprec(_PRECISION):
            value = mpmath.mpf(f"{kept}e{scale + len(digits) - len(kept)}")
        return self.as_number(value, token.position, token.position + len(token.text))

    def constant(
        self, start: int, build: Callable[..., sp.Expr], numeric: Callable[..., object] | None, *operands: sp.Expr
    ) -> sp.Expr:
        """``build(*operands)``; when every operand is a number, its value is checked first.

        The value, computed by mpmath in bounded precision from the operands' values, must be a
        finite real number in float64's range; a result whose exact form would be huge is kept
        as a Float instead.
        """
        if not all(operand.is_number for operand in operands):
            return build(*operands)
        end = self.current.position
        with mpmath.workprec(_PRECISION):
            values = [_value(operand) for operand in operands]
            if numeric is None:
                value = _value(build(*operands))
            else:
                try:
                    value = numeric(*values)
                except (ZeroDivisionError, ValueError, OverflowError):
                    raise self.error(f"{self.span(start, end)} is not a finite number",
                                     _Token("number", "", start)) from None
            self.check_number(value, start, end)
            if all(operand.is_Rational for operand in operands) and build is not _power:
                result = build(*operands)  # exact arithmetic of small rationals stays small
            elif build is _power and _exact_power(*operands):
                result = build(*operands)
            elif build is _power or any(operand.is_Float for operand in operands):
                return self.as_number(value, start, end)
            else:
                result = build(*operands)  # exp(2), sqrt(2), log(3): exact and symbolic
        if result.is_Rational and not _small(result):
            return self.as_number(value, start, end)
        return result

    def as_number(self, value: object, start: int, end: int) -> sp.Expr:
        """``value`` (an mpmath number) as a SymPy number, exact when small."""
        self.check_number(value, start, end)
        return sp.Float(value, _FLOAT_DIGITS)

    def check_number(self, value: object, start: int, end: int) -> None:
        text = self.span(start, end)
        at = _Token("number", text, start)
        if isinstance(value, mpmath.mpc):
            if value.imag != 0:
                raise self.error(f"{text} is not a real number (it is {mpmath.nstr(value, 4)})", at)
            value = value.real
        if not mpmath.isfinite(value):
            raise self.error(f"{text} is not a finite number", at)
        magnitude = abs(value)
        if magnitude > _FLOAT_MAX:
            raise self.error(f"number too large: {text} is about {mpmath.nstr(value, 3)} "
                             "(a float64 holds at most 1.8e308)", at)
        if 0 < magnitude < _FLOAT_TINY:
            raise self.error(f"number too small: {text} is about {mpmath.nstr(value, 3)} "
                             "(a float64 would hold 0)", at)

    def span(self, start: int, end: int) -> str:
        text = self.text[start:end].strip() or self.text
        return text if len(text) <= 40 else text[:37] + "..."


def _power(base: sp.Expr, exponent: sp.Expr) -> sp.Expr:
    return base**exponent


def _small(number: sp.Rational) -> bool:
    return abs(number.p) <= _EXACT_LIMIT and number.q <= _EXACT_LIMIT


def _exact_power(base: sp.Expr, exponent: sp.Expr) -> bool:
    """Whether SymPy may compute ``base^exponent`` exactly: small rationals, a small result or root."""
    if not (base.is_Rational and exponent.is_Rational):
        return not (base.is_Float or exponent.is_Float)  # pi^2, e^(1/2): symbolic and cheap
    if exponent.q > _MAX_EXACT_ROOT:
        return False
    # |p|^|e| and q^|e| must stay within 2^53: about 53 bits in all.
    bits = max(abs(base.p).bit_length(), base.q.bit_length()) * abs(exponent.p)
    return bits <= 53


def _value(expression: sp.Expr) -> mpmath.mpf | mpmath.mpc:
    """An mpmath value of a checked constant (every one within float64's range, so this is quick)."""
    if expression.is_Rational:
        return mpmath.mpf(expression.p) / expression.q
    if expression.is_Float:
        return mpmath.mpf(expression._mpf_)
    real, imaginary = expression.evalf(30).as_real_imag()
    if not (real.is_Number and imaginary.is_Number):
        return mpmath.mpf("nan")
    parts = [mpmath.mpf(part.p) / part.q if part.is_Rational else mpmath.mpf(part._mpf_) for part in (real, imaginary)]
    return parts[0] if parts[1] == 0 else mpmath.mpc(*parts)


def parse_formula(
    text: str,
    symbols: Mapping[str, sp.Basic],
    *,
    functions: Mapping[str, tuple[int, Callable[..., sp.Expr]]] | None = None,
) -> sp.Expr:
    """Parse ``text`` into a SymPy expression without ever calling ``eval``.

    Arguments:
        text: the formula, e.g. ``"z/(1+exp(-z))"`` or ``"(a - y)^2"``.
        symbols: the names the formula may use, mapped to SymPy objects.
        functions: the callable names allowed (default :data:`FUNCTIONS`).

    Returns:
        The SymPy expression.

    Raises:
        FormulaError: one line naming the offending token and its position.

    >>> import sympy as sp
    >>> a, y = sp.symbols("a y")
    >>> parse_formula("(a − y)^2", {"a": a, "y": y})
    (a - y)**2
    """
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be a string, not {type(text).__name__}")
    if len(text) > _MAX_LENGTH:
        raise FormulaError(f"formula longer than {_MAX_LENGTH} characters")
    parser = _Parser(text, symbols, FUNCTIONS if functions is None else functions)
    result = parser.parse()
    if not isinstance(result, sp.Expr):
        raise FormulaError(f"formula {text!r} is not an arithmetic expression")
    return result
