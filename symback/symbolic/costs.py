"""Cost functions: each one a small object carrying its SymPy term in ``a`` and ``y``.

A cost is a per-output term ``term(a_j, y_j)``, combined over the output
neurons (sum, or mean) and then over the training examples (sum, or mean).
``∂C/∂a`` is ``sympy.diff`` of the term, never hand-written.

>>> ssr = get_cost("ssr")
>>> ssr.term
(-a + y)**2
>>> ssr.derivative
2*a - 2*y
>>> ssr.example_reduction
'sum'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sympy as sp

from ..errors import FormulaError, SpecError
from ..grammar.formula import parse_formula
from ..registry import Registry, merged_settings

__all__ = ["A", "COSTS", "Cost", "Y", "cost_from_formula", "get_cost", "register_cost"]

#: The generic output activation and target every cost term is written in.
A = sp.Symbol("a", real=True)
Y = sp.Symbol("y", real=True)

_REDUCTIONS = ("sum", "mean")


@dataclass(frozen=True, eq=False)
class Cost:
    """``C = reduce_examples( reduce_outputs( term(a_j, y_j) ) )``.

    Arguments:
        name: registry name or a label for a user formula.
        term: SymPy expression in :data:`A` and :data:`Y`.
        output_reduction: ``"sum"`` (Σ_j, seed 001's C0) or ``"mean"`` (1/m Σ_j).
        example_reduction: ``"sum"`` (seed 002's SSR) or ``"mean"`` (average over examples).
        output_activation: the output activation the cost is defined for, if any
            (categorical cross-entropy needs ``"softmax"``).
    """

    name: str
    term: sp.Expr
    output_reduction: str = "sum"
    example_reduction: str = "mean"
    output_activation: str | None = None

    def __post_init__(self) -> None:
        extra = self.term.free_symbols - {A, Y}
        if extra:
            names = ", ".join(sorted(str(s) for s in extra))
            raise FormulaError(f"cost {self.name!r} uses symbols other than a and y: {names}")
        for which in (self.output_reduction, self.example_reduction):
            if which not in _REDUCTIONS:
                raise SpecError(f"cost reduction must be 'sum' or 'mean', not {which!r}")

    @cached_property
    def derivative(self) -> sp.Expr:
        """``∂term/∂a``, derived by SymPy from :attr:`term`."""
        return sp.diff(self.term, A)

    def at(self, a: sp.Expr, y: sp.Expr) -> sp.Expr:
        return self.term.subs({A: a, Y: y}, simultaneous=True)

    def derivative_at(self, a: sp.Expr, y: sp.Expr) -> sp.Expr:
        return self.derivative.subs({A: a, Y: y}, simultaneous=True)

    def per_example(self, outputs: list[sp.Expr], targets: list[sp.Expr]) -> sp.Expr:
        """Explicit cost of one example: Σ_j term(a_j, y_j) (divided by m for a mean)."""
        total = sp.Add(*(self.at(a, y) for a, y in zip(outputs, targets, strict=True)))
        return total / len(outputs) if self.output_reduction == "mean" else total

    def indexed(self, a: sp.IndexedBase, y: sp.IndexedBase, j: sp.Idx) -> sp.Expr:
        """Index form of one example's cost: ``Sum(term(a[j], y[j]), j)``."""
        total = sp.Sum(self.at(a[j], y[j]), j)
        if self.output_reduction == "mean":
            return total / (j.upper + 1)
        return total

    @property
    def label(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cost) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple:
        # The class is part of the identity, as for activations: a subclass is a different cost.
        return (type(self), self.name, self.term, self.output_reduction, self.example_reduction, self.output_activation)

    def __repr__(self) -> str:
        return (
            f"Cost({self.name!r}: {self.term}, outputs={self.output_reduction}, examples={self.example_reduction})"
        )


#: Registry: name -> factory taking keyword settings (``reduction`` for the example reduction).
COSTS: Registry[Callable[..., Cost]] = Registry("cost", {
    # 3Blue1Brown's C0 = Σ_j (a_j − y_j)², averaged over the training examples.
    "squared_error": lambda reduction="mean": Cost("squared_error", (A - Y) ** 2, "sum", reduction),
    # Nielsen's quadratic cost C = 1/(2n) Σ_x ||y − a||².
    "half_squared_error": lambda reduction="mean": Cost(
        "half_squared_error", sp.Rational(1, 2) * (A - Y) ** 2, "sum", reduction
    ),
    # The sum of squared residuals of seed 002, written (observed − predicted)².
    "ssr": lambda reduction="sum": Cost("ssr", (Y - A) ** 2, "sum", reduction),
    # Mean over every output of every example, as sklearn, Keras and PyTorch define it.
    "mse": lambda reduction="mean": Cost("mse", (A - Y) ** 2, "mean", reduction),
    "binary_cross_entropy": lambda reduction="mean": Cost(
        "binary_cross_entropy", -(Y * sp.log(A) + (1 - Y) * sp.log(1 - A)), "sum", reduction
    ),
    "categorical_cross_entropy": lambda reduction="mean": Cost(
        "categorical_cross_entropy", -Y * sp.log(A), "sum", reduction, output_activation="softmax"
    ),
}, hint='or write {formula = "..."} in a and y')
COSTS["sse"] = COSTS["ssr"]
COSTS["cross_entropy"] = COSTS["categorical_cross_entropy"]


def register_cost(name: str, factory: Callable[..., Cost]) -> None:
    """Make ``factory`` available as ``get_cost(name, **settings)``."""
    COSTS.register(name, factory)


def cost_from_formula(text: str, *, reduction: str = "mean", outputs: str = "sum", name: str | None = None) -> Cost:
    """A cost from a per-output formula in ``a`` and ``y``, parsed without ``eval``.

    >>> cost_from_formula("(a - y)^4").derivative
    4*(a - y)**3
    """
    term = parse_formula(text, {"a": A, "y": Y})
    return Cost(name or text, term, outputs, reduction)


def get_cost(spec: str | Mapping[str, Any] | Cost, **settings: Any) -> Cost:
    """Resolve a cost from a name, ``{name=..., reduction=...}`` or ``{formula=..., reduction=...}``.

    >>> get_cost({"formula": "abs(a - y)", "reduction": "sum"}).example_reduction
    'sum'
    """
    if isinstance(spec, Cost):
        return spec
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "formula" in options:
            formula = options.pop("formula")
            reduction = options.pop("reduction", "mean")
            outputs = options.pop("outputs", "sum")
            label = options.pop("name", None)
            if options:
                raise SpecError(f"unexpected keys for a formula cost: {', '.join(sorted(options))}")
            return cost_from_formula(formula, reduction=reduction, outputs=outputs, name=label)
        if "name" not in options:
            raise SpecError(f"a cost table needs 'name' or 'formula', got {sorted(options)}")
        name = options.pop("name")
        return get_cost(name, **merged_settings(options, settings, "cost"))
    if not isinstance(spec, str):
        raise SpecError(f"a cost must be a name or a table, not {spec!r}")
    return COSTS.build(spec, settings)
