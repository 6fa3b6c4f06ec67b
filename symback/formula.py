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

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sympy as sp

from .errors import FormulaError

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
        return FormulaError(f"{message} at {where} in formula {self.text!r}")

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
        result = self.term()
        while self.is_op("+", "-"):
            op = self.advance().text
            right = self.term()
            result = result + right if op == "+" else result - right
        self.depth -= 1
        return result

    def term(self) -> sp.Expr:
        result = self.unary()
        while self.is_op("*", "/"):
            op = self.advance().text
            right = self.unary()
            if op == "/" and right == 0:
                raise self.error("division by zero")
            result = result * right if op == "*" else result / right
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
        base = self.atom()
        if self.is_op("^"):
            caret = self.advance()
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise self.error("formula nested too deeply")
            exponent = self.unary()
            self.depth -= 1
            # Guard against 9^9^9-style formulas that would make SymPy compute a huge integer.
            if base.is_number and exponent.is_number and _too_large(base, exponent):
                raise self.error("number too large", caret)
            if base == 0 and exponent.is_number and exponent.is_negative:
                raise self.error("division by zero", caret)
            return base**exponent
        return base

    def atom(self) -> sp.Expr:
        token = self.current
        if token.kind == "number":
            self.advance()
            exponent = token.text.lower().partition("e")[2]
            if exponent and abs(int(exponent)) > _MAX_INTEGER_EXPONENT:
                raise self.error("number too large", token)  # 1e999999999 would be a billion-digit integer
            # Rational keeps decimals exact, so 0.1*z stays z/10 and symbolic comparisons are exact.
            return sp.Rational(token.text)
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
        return build(*arguments)


def _too_large(base: sp.Expr, exponent: sp.Expr) -> bool:
    if not (base.is_real and exponent.is_real):
        return abs(exponent) > _MAX_INTEGER_EXPONENT
    magnitude = abs(float(exponent)) * max(1.0, float(sp.log(abs(base) + 1, 10)))
    return magnitude > _MAX_INTEGER_EXPONENT


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
