"""A calculus rule trace: how a derivative follows from the power, chain, quotient … rules.

SymPy has no "show steps" for derivatives.  :func:`trace` walks the same SymPy
expression that :func:`sympy.diff` differentiates and records, for every
sub-expression, which rule applies (a tree of frozen rule records, in the
spirit of SymPy Gamma's ``diffsteps``).  Each record computes its own result
from its sub-steps; :func:`trace` then checks that the root's result equals
``sympy.diff`` — Gamma's steps drifted from ``diff`` because nothing checked.

>>> import sympy as sp
>>> z = sp.Symbol("z", real=True)
>>> t = trace(1 / (1 + sp.exp(-z)), z)
>>> type(t.rule).__name__, t.result
('ChainRule', exp(-z)/(1 + exp(-z))**2)
>>> [type(r).__name__ for r in t.rule.walk()]
['ChainRule', 'PowerRule', 'AddRule', 'ConstantRule', 'ChainRule', 'ExpRule', 'ConstantMultipleRule', 'IdentityRule']

A derivative can often be written in the function's own value, which is how
textbooks state it; :func:`rewrite_in_terms_of` finds that form and checks it:

>>> rewrite_in_terms_of(1 / (1 + sp.exp(-z)), z, sp.Symbol("a")).rewritten
a*(1 - a)
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import ClassVar

import sympy as sp

from ..budget import attempt
from ..symbolic.model import collapse_delta_sums

__all__ = [
    "AddRule",
    "ChainRule",
    "ConstantMultipleRule",
    "ConstantRule",
    "ElementaryRule",
    "ExpRule",
    "HyperbolicRule",
    "IdentityRule",
    "IndexSumRule",
    "IndexedVariableRule",
    "LogRule",
    "PiecewiseRule",
    "PowerRule",
    "ProductRule",
    "QuotientRule",
    "RewriteRule",
    "Rewriting",
    "Rule",
    "SymPyRule",
    "Trace",
    "TraceMismatchError",
    "TrigRule",
    "rewrite_in_terms_of",
    "trace",
]


class TraceMismatchError(AssertionError):
    """A rule trace ended somewhere other than ``sympy.diff``: a bug in the trace, never hidden."""


@dataclass(frozen=True)
class Rule:
    """One step: ``d expr / d var`` by the rule named :attr:`title`; :attr:`result` is computed from sub-steps."""

    expr: sp.Expr
    var: sp.Expr

    title: ClassVar[str] = "rule"

    @property
    def result(self) -> sp.Expr:  # pragma: no cover - every rule overrides it
        raise NotImplementedError

    @property
    def substeps(self) -> tuple[Rule, ...]:
        found: list[Rule] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Rule):
                found.append(value)
            elif isinstance(value, tuple):
                found.extend(v for v in value if isinstance(v, Rule))
                found.extend(v[0] for v in value if isinstance(v, tuple) and v and isinstance(v[0], Rule))
        return tuple(found)

    def walk(self) -> Iterator[Rule]:
        """This step, then its sub-steps depth first."""
        yield self
        for step in self.substeps:
            yield from step.walk()


@dataclass(frozen=True)
class ConstantRule(Rule):
    title: ClassVar[str] = "constant rule"

    @property
    def result(self) -> sp.Expr:
        return sp.S.Zero


@dataclass(frozen=True)
class IdentityRule(Rule):
    title: ClassVar[str] = "variable rule"

    @property
    def result(self) -> sp.Expr:
        return sp.S.One


@dataclass(frozen=True)
class IndexedVariableRule(Rule):
    """``∂w_{jd}/∂w_{jk} = δ_{dk}``: another entry of the same indexed quantity."""

    title: ClassVar[str] = "index rule"

    @property
    def result(self) -> sp.Expr:
        return sp.Mul(*(sp.KroneckerDelta(a, b) for a, b in zip(self.expr.indices, self.var.indices, strict=True)))


@dataclass(frozen=True)
class PowerRule(Rule):
    base: sp.Expr
    exponent: sp.Expr
    title: ClassVar[str] = "power rule"

    @property
    def result(self) -> sp.Expr:
        return self.exponent * self.base ** (self.exponent - 1)


@dataclass(frozen=True)
class AddRule(Rule):
    terms: tuple[Rule, ...]
    title: ClassVar[str] = "sum rule"

    @property
    def result(self) -> sp.Expr:
        return sp.Add(*(t.result for t in self.terms))


@dataclass(frozen=True)
class ConstantMultipleRule(Rule):
    constant: sp.Expr
    other: sp.Expr
    step: Rule
    title: ClassVar[str] = "constant multiple rule"

    @property
    def result(self) -> sp.Expr:
        return self.constant * self.step.result


@dataclass(frozen=True)
class ProductRule(Rule):
    factors: tuple[sp.Expr, ...]
    steps: tuple[Rule, ...]
    title: ClassVar[str] = "product rule"

    @property
    def result(self) -> sp.Expr:
        terms = []
        for position, step in enumerate(self.steps):
            others = [f for index, f in enumerate(self.factors) if index != position]
            terms.append(step.result * sp.Mul(*others))
        return sp.Add(*terms)


@dataclass(frozen=True)
class QuotientRule(Rule):
    numerator: sp.Expr
    denominator: sp.Expr
    numerator_step: Rule
    denominator_step: Rule
    title: ClassVar[str] = "quotient rule"

    @property
    def result(self) -> sp.Expr:
        n, d = self.numerator, self.denominator
        return (self.numerator_step.result * d - n * self.denominator_step.result) / d**2


@dataclass(frozen=True)
class ExpRule(Rule):
    title: ClassVar[str] = "exponential rule"

    @property
    def result(self) -> sp.Expr:
        return self.expr


@dataclass(frozen=True)
class LogRule(Rule):
    title: ClassVar[str] = "logarithm rule"

    @property
    def result(self) -> sp.Expr:
        return 1 / self.var


# Derivatives of the elementary functions in their own argument (the table a calculus book gives).
_TABLE = {
    sp.sin: ("trig", lambda u: sp.cos(u)),
    sp.cos: ("trig", lambda u: -sp.sin(u)),
    sp.tan: ("trig", lambda u: 1 + sp.tan(u) ** 2),
    sp.tanh: ("hyperbolic", lambda u: 1 - sp.tanh(u) ** 2),
    sp.sinh: ("hyperbolic", lambda u: sp.cosh(u)),
    sp.cosh: ("hyperbolic", lambda u: sp.sinh(u)),
    sp.atan: ("elementary", lambda u: 1 / (1 + u**2)),
    sp.erf: ("elementary", lambda u: 2 * sp.exp(-(u**2)) / sp.sqrt(sp.pi)),
    sp.Abs: ("elementary", lambda u: sp.sign(u)),
}


@dataclass(frozen=True)
class TrigRule(Rule):
    func: str
    title: ClassVar[str] = "trigonometric rule"

    @property
    def result(self) -> sp.Expr:
        return _TABLE[type(self.expr)][1](self.var)


@dataclass(frozen=True)
class HyperbolicRule(TrigRule):
    title: ClassVar[str] = "hyperbolic rule"


@dataclass(frozen=True)
class ElementaryRule(TrigRule):
    title: ClassVar[str] = "table of derivatives"


@dataclass(frozen=True)
class ChainRule(Rule):
    """``d f(inner)/d var = f'(u)|_{u=inner} · d inner/d var``."""

    substep: Rule  # d f(u) / d u
    inner: sp.Expr
    u: sp.Symbol
    innerstep: Rule  # d inner / d var
    title: ClassVar[str] = "chain rule"

    @property
    def result(self) -> sp.Expr:
        return self.substep.result.xreplace({self.u: self.inner}) * self.innerstep.result


@dataclass(frozen=True)
class PiecewiseRule(Rule):
    pieces: tuple[tuple[Rule, sp.Basic], ...]
    title: ClassVar[str] = "piecewise rule"

    @property
    def result(self) -> sp.Expr:
        return sp.Piecewise(*((step.result, condition) for step, condition in self.pieces))


@dataclass(frozen=True)
class IndexSumRule(Rule):
    """``∂/∂x Σ_d f_d = Σ_d ∂f_d/∂x``; a Kronecker δ then picks the one term that depends on ``x``."""

    step: Rule
    title: ClassVar[str] = "sum over an index"

    @property
    def result(self) -> sp.Expr:
        return collapse_delta_sums(sp.Sum(self.step.result, *self.expr.limits))


@dataclass(frozen=True)
class RewriteRule(Rule):
    """Differentiate an equal expression instead (``b^g = e^{g log b}``, ``max`` as cases)."""

    rewritten: sp.Expr
    step: Rule
    title: ClassVar[str] = "rewrite"

    @property
    def result(self) -> sp.Expr:
        return self.step.result


@dataclass(frozen=True)
class SymPyRule(Rule):
    """No textbook rule known here: the derivative is taken by ``sympy.diff`` directly (said so in reports)."""

    title: ClassVar[str] = "derivative by SymPy"

    @property
    def result(self) -> sp.Expr:
        return sp.diff(self.expr, self.var)


# -- building the trace ------------------------------------------------------------------------------


def _depends(expr: sp.Basic, var: sp.Expr) -> bool:
    if isinstance(var, sp.Indexed):
        return any(isinstance(i, sp.Indexed) and i.base == var.base for i in expr.atoms(sp.Indexed))
    return expr.has(var)


def _fresh(expr: sp.Expr, var: sp.Expr) -> sp.Symbol:
    taken = {str(s) for s in expr.free_symbols} | {str(var)}
    for name in ("u", "v", "t", "s"):
        if name not in taken:
            return sp.Symbol(name, real=True)
    return sp.Dummy("u", real=True)


def _build(expr: sp.Expr, var: sp.Expr) -> Rule:
    if expr == var:
        return IdentityRule(expr, var)
    if not _depends(expr, var):
        return ConstantRule(expr, var)
    if isinstance(expr, sp.Indexed) and isinstance(var, sp.Indexed) and expr.base == var.base:
        return IndexedVariableRule(expr, var)
    if isinstance(expr, sp.Add):
        return AddRule(expr, var, tuple(_build(term, var) for term in expr.args))
    if isinstance(expr, sp.Mul):
        return _mul(expr, var)
    if isinstance(expr, sp.Pow):
        return _pow(expr, var)
    if isinstance(expr, sp.exp):
        return _chain(expr, var, ExpRule)
    if isinstance(expr, sp.log) and len(expr.args) == 1:
        return _chain(expr, var, LogRule)
    if type(expr) in _TABLE:
        kind = _TABLE[type(expr)][0]
        record = {"trig": TrigRule, "hyperbolic": HyperbolicRule, "elementary": ElementaryRule}[kind]
        return _chain(expr, var, lambda e, v: record(e, v, type(expr).__name__))
    if isinstance(expr, sp.Piecewise):
        return PiecewiseRule(expr, var, tuple((_build(value, var), condition) for value, condition in expr.args))
    if isinstance(expr, (sp.Max, sp.Min)):
        rewritten = expr.rewrite(sp.Piecewise)
        if isinstance(rewritten, sp.Piecewise):
            return RewriteRule(expr, var, rewritten, _build(rewritten, var))
    if isinstance(expr, sp.Sum) and not any(_depends(limit[1:], var) for limit in expr.limits):
        return IndexSumRule(expr, var, _build(expr.function, var))
    return SymPyRule(expr, var)


def _chain(expr: sp.Expr, var: sp.Expr, record) -> Rule:  # type: ignore[no-untyped-def]
    inner = expr.args[0]
    if inner == var:
        return record(expr, var)
    u = _fresh(expr, var)
    outer = expr.func(u)
    return ChainRule(expr, var, record(outer, u), inner, u, _build(inner, var))


def _mul(expr: sp.Mul, var: sp.Expr) -> Rule:
    constant, other = expr.as_independent(var, as_Add=False) if not isinstance(var, sp.Indexed) else _split(expr, var)
    if constant != 1:
        return ConstantMultipleRule(expr, var, constant, other, _build(other, var))
    numerator, denominator = sp.fraction(expr)
    if denominator != 1 and _depends(denominator, var):
        return QuotientRule(expr, var, numerator, denominator, _build(numerator, var), _build(denominator, var))
    factors = tuple(expr.args)
    return ProductRule(expr, var, factors, tuple(_build(f, var) for f in factors))


def _split(expr: sp.Mul, var: sp.Indexed) -> tuple[sp.Expr, sp.Expr]:
    constant = [f for f in expr.args if not _depends(f, var)]
    other = [f for f in expr.args if _depends(f, var)]
    return sp.Mul(*constant), sp.Mul(*other)


def _pow(expr: sp.Pow, var: sp.Expr) -> Rule:
    base, exponent = expr.as_base_exp()
    if not _depends(exponent, var):
        if base == var:
            return PowerRule(expr, var, base, exponent)
        u = _fresh(expr, var)
        return ChainRule(expr, var, PowerRule(u**exponent, u, u, exponent), base, u, _build(base, var))
    rewritten = sp.exp(exponent * sp.log(base), evaluate=False)
    return RewriteRule(expr, var, rewritten, _build(rewritten, var))


# -- checking against sympy.diff ------------------------------------------------------------------


def _same(a: sp.Expr, b: sp.Expr, symbols: set[sp.Basic]) -> bool:
    """Whether the rule tree's ``a`` equals ``sympy.diff``'s ``b``: numbers first, at random points
    (30 digits; Piecewise, Sums and Kronecker deltas included), and a proof by ``expand`` or ``simplify``
    only where the numbers do not settle it, within a budget (both can run for minutes on a nested
    rational function: ``expand`` took 56 s on one of tests/test_steps.py's random expressions)."""
    difference = a - b
    if difference == 0:
        return True
    agree = _agree_at_random_points(a, b, symbols)
    if agree:
        return True
    proofs = [sp.expand] if difference.has(sp.Piecewise, sp.Sum, sp.KroneckerDelta, sp.Indexed) else [
        sp.expand, sp.simplify]
    for prove in proofs:
        try:
            proved = attempt(prove, difference, seconds=2.0)
        except Exception:  # pragma: no cover - a proof is best effort; the numbers decided above
            continue
        if proved.value is not None and proved.value == 0:
            return True
    return False


def _agree_at_random_points(a: sp.Expr, b: sp.Expr, symbols: set[sp.Basic]) -> bool | None:
    """True where ``a`` and ``b`` agree at three or more of twelve random points, False where they differ at
    one, None where too few points could be evaluated (a pole, a complex value)."""
    rng = random.Random(0)
    atoms = sorted(symbols | a.atoms(sp.Indexed) | b.atoms(sp.Indexed), key=str)
    atoms = [s for s in atoms if not isinstance(s, sp.Idx)]
    checked = 0
    for _ in range(12):
        point = {s: sp.Float(rng.uniform(0.1, 0.9) * rng.choice((-1, 1)) * 2, 30) for s in atoms}
        try:
            va = complex(sp.N(a.xreplace(point).doit(), 30))
            vb = complex(sp.N(b.xreplace(point).doit(), 30))
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if any(v != v or abs(v) == float("inf") for v in (va, vb)):
            continue
        if abs(va - vb) > 1e-9 * (1 + abs(vb)):
            return False
        checked += 1
    return True if checked >= 3 else None


@dataclass(frozen=True)
class Trace:
    """``d expr/d var`` as a rule tree; ``result`` is the tree's answer, ``expected`` what ``sympy.diff`` gives."""

    expr: sp.Expr
    var: sp.Expr
    rule: Rule
    result: sp.Expr
    expected: sp.Expr

    @property
    def uses_sympy_fallback(self) -> bool:
        return any(isinstance(r, SymPyRule) for r in self.rule.walk())


def trace(expr: sp.Expr, var: sp.Expr) -> Trace:
    """The rule trace of ``d expr / d var``, checked against ``sympy.diff``.

    Raises TraceMismatchError if the rules and ``sympy.diff`` disagree.
    """
    if not isinstance(expr, sp.Basic):  # never sympify: it would evaluate a string
        raise TypeError(f"trace() takes a SymPy expression, not {type(expr).__name__}")
    rule = _build(expr, var)
    result = rule.result
    expected = collapse_delta_sums(sp.diff(expr, var))
    if not _same(result, expected, expr.free_symbols | {var}):
        raise TraceMismatchError(f"rule trace of d({expr})/d({var}) gave {result}, sympy.diff gives {expected}")
    return Trace(expr, var, rule, result, expected)


# -- writing a derivative in the function's own value ----------------------------------------------------


@dataclass(frozen=True)
class Rewriting:
    """``derivative`` (in ``var``) equals ``rewritten`` (in ``value``, standing for ``formula``)."""

    formula: sp.Expr
    var: sp.Symbol
    derivative: sp.Expr
    value: sp.Symbol
    rewritten: sp.Expr


def rewrite_in_terms_of(formula: sp.Expr, var: sp.Symbol, value: sp.Symbol, *, degree: int = 3) -> Rewriting | None:
    """Write ``d formula/d var`` as a polynomial in ``value`` = ``formula`` (σ' = σ(1−σ)), if there is one.

    Candidate coefficients come from a least-squares fit at a few points, are
    rounded to small rationals, and the candidate is kept only if putting
    ``formula`` back for ``value`` gives the derivative again (symbolically, or at
    random points): a guess that is checked, never trusted.
    """
    import numpy as np

    if formula.has(sp.Piecewise, sp.Max, sp.Min, sp.Abs) or formula.free_symbols != {var}:
        return None
    derivative = sp.diff(formula, var)
    if not derivative.has(var):
        return None
    f = sp.lambdify(var, formula, "math")
    df = sp.lambdify(var, derivative, "math")
    points = [-1.7, -1.1, -0.6, -0.2, 0.3, 0.7, 1.2, 1.9]
    try:
        fs = np.array([float(f(p)) for p in points])
        dfs = np.array([float(df(p)) for p in points])
    except (ValueError, OverflowError, ZeroDivisionError, TypeError):
        return None
    if not (np.all(np.isfinite(fs)) and np.all(np.isfinite(dfs))):
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        basis = np.vander(fs, degree + 1, increasing=True)
    if not np.all(np.isfinite(basis)):  # z^1000: its cube overflows, and no low-degree polynomial fits
        return None
    try:
        coefficients, *_ = np.linalg.lstsq(basis, dfs, rcond=None)
    except np.linalg.LinAlgError:
        return None
    if np.max(np.abs(basis @ coefficients - dfs)) > 1e-8:
        return None
    # Small rationals only (σ' = σ − σ², tanh' = 1 − tanh²); a fit like 2^z' = log(2)·2^z is no such
    # identity, and its long rational would send simplify into a very long search.
    rationals = [Fraction(float(c)).limit_denominator(1000) for c in coefficients]
    if max(abs(float(r) - c) for r, c in zip(rationals, coefficients)) > 1e-10:
        return None
    polynomial = sp.Add(*(sp.Rational(r.numerator, r.denominator) * value**i for i, r in enumerate(rationals)))
    if polynomial.free_symbols != {value}:
        return None
    if not _same(polynomial.xreplace({value: formula}), derivative, {var}):
        return None
    factored = sp.factor(polynomial)
    # a(1 − a) reads better factored; 1 − a² better expanded.
    nicer = _tidy(factored) if isinstance(factored, sp.Mul) and value in factored.args else polynomial
    return Rewriting(formula, var, derivative, value, nicer)


def _tidy(expr: sp.Expr) -> sp.Expr:
    """``-a(a − 1)`` → ``a(1 − a)``: move a leading minus into a factor, as textbooks write it."""
    if isinstance(expr, sp.Mul) and expr.could_extract_minus_sign():
        for factor in expr.args:
            if isinstance(factor, sp.Add):
                others = [f for f in (-expr).args if f != factor]
                return sp.Mul(*others, -factor)
    return expr
